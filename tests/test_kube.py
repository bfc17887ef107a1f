"""The chart and the injector against a real Kubernetes API server (scripts/kube: kube-apiserver
and etcd built from the Go module proxy, token auth, RBAC, the default admission plugins).
There is no kubelet, scheduler, controller-manager or container runtime here: objects are
stored and admitted exactly as on a cluster, but no container ever runs.

- `helm install` and `helm upgrade` of the chart, every object accepted by the server, the
  migrate hook's Job validated by the server (server-side dry run: a Job that never runs would
  hold `helm install` forever without a kubelet);
- the injector (`watchkeeper injector`, serving the chart's own certificate and template,
  registered by the chart's own MutatingWebhookConfiguration) called by the API server when
  Pods are created: annotated Pods are stored with the native sidecar and the OTEL_*
  variables, others unchanged, a labelled namespace injects all, a malformed annotation is
  refused with its reason, and with the injector down Pods are still created (Ignore).

scripts/kube builds once into ~/.cache/watchkeeper (minutes); without Go or the proxy the
module skips with the reason, except under CI, where that is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import IN_CI, ROOT

CHART = ROOT / "helm" / "watchkeeper"
RELEASE = "wk"
NAMESPACE = "watchkeeper"
SIDECAR = "watchkeeper-sidecar"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first build takes minutes


@dataclass
class Cluster:
    kubeconfig: Path
    client: httpx.Client

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return dict(response.json())

    def create(self, path: str, body: dict[str, Any], **params: str) -> httpx.Response:
        return self.client.post(path, json=body, params=params)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespace with the `default` ServiceAccount, which a controller-manager would
        create and the ServiceAccount admission plugin requires of every Pod."""
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}}}
        assert self.create("/api/v1/namespaces", body).status_code in (201, 409)
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        assert self.create(f"/api/v1/namespaces/{name}/serviceaccounts",
                           account).status_code in (201, 409)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fresh API server for this module (its own etcd data), stopped at the end."""
    env = {**os.environ, "KUBE_DATA_DIR": str(tmp_path_factory.mktemp("kube"))}
    script = str(ROOT / "scripts" / "kube")
    try:
        proc = subprocess.run([script, "start"], capture_output=True, text=True, env=env,
                              timeout=1500, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"scripts/kube could not run: {exc}"
    else:
        if proc.returncode == 0:
            reason = ""
        else:
            reason = f"scripts/kube start failed ({proc.returncode}): {proc.stderr[-3000:]}"
    if reason:
        if IN_CI:
            pytest.fail(f"CI needs a Kubernetes API server: {reason}")
        pytest.skip(reason)
    kubeconfig = Path(proc.stdout.strip().splitlines()[-1])
    config = yaml.safe_load(kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(server["certificate-authority-data"]).decode())
    token = config["users"][0]["user"]["token"]
    with httpx.Client(base_url=server["server"], verify=context, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield Cluster(kubeconfig, client)
    subprocess.run([script, "stop"], env=env, timeout=120, check=False, capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def injector_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def installed(cluster: Cluster, helm: str, injector_port: int,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`helm install` of the chart, with the example app (a native sidecar in a Deployment),
    NetworkPolicies and the injector registered at a URL on this host (the injector runs here,
    not in a pod: there is no kubelet to run it)."""
    values = {"exampleApp": {"enabled": True}, "networkPolicy": {"enabled": True},
              "injector": {"webhook": {"url": f"https://127.0.0.1:{injector_port}"},
                           "tls": {"ipAddresses": ["127.0.0.1"]}},
              "sidecar": {"sampling": {"ratio": 0.5}}}
    values_file = tmp_path_factory.mktemp("values") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    proc = helm_run(helm, cluster, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--create-namespace", "--no-hooks", "--values", str(values_file))
    assert proc.returncode == 0, proc.stderr
    return {"values": values_file}


def helm_run(helm: str, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args, "--kubeconfig", str(cluster.kubeconfig)],
                          capture_output=True, text=True, timeout=300, check=False)


# Where each kind the chart renders lives in the API.
API_PATHS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "Secret": "/api/v1/namespaces/{ns}/secrets/{name}",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
    "MutatingWebhookConfiguration":
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}


def manifest(helm: str, cluster: Cluster) -> list[dict[str, Any]]:
    proc = helm_run(helm, cluster, "get", "manifest", RELEASE, "--namespace", NAMESPACE)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_helm_install_every_object_is_stored(cluster: Cluster, helm: str,
                                             installed: dict[str, Any]) -> None:
    docs = manifest(helm, cluster)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "MutatingWebhookConfiguration", "PodDisruptionBudget",
            "Secret", "Service", "ConfigMap", "NetworkPolicy"} <= kinds
    for doc in docs:
        path = API_PATHS[doc["kind"]].format(ns=NAMESPACE, name=doc["metadata"]["name"])
        stored = cluster.get(path)
        assert stored["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The API server kept the native sidecar as one: an init container that keeps running.
    app = cluster.get(API_PATHS["Deployment"].format(ns=NAMESPACE, name=f"{RELEASE}-watchkeeper"
                                                     "-example-app"))
    (sidecar,) = app["spec"]["template"]["spec"]["initContainers"]
    assert sidecar["name"] == SIDECAR and sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    injector = cluster.get(API_PATHS["Deployment"].format(ns=NAMESPACE,
                                                          name=f"{RELEASE}-watchkeeper-injector"))
    assert injector["spec"]["replicas"] == 2


def test_migrate_hook_is_accepted_by_the_server(cluster: Cluster, helm: str,
                                                installed: dict[str, Any]) -> None:
    """The hook Job, which needs a kubelet to complete, is validated by a server-side dry
    run instead of being run."""
    proc = subprocess.run([helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                           "--show-only", "templates/migrate-job.yaml"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    jobs = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Job"]
    assert jobs
    for job in jobs:
        response = cluster.create(API_PATHS["Job"].format(ns=NAMESPACE), job, dryRun="All")
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def injector(cluster: Cluster, installed: dict[str, Any], injector_port: int,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """`watchkeeper injector` with the certificate and template the chart stored."""
    where = tmp_path_factory.mktemp("injector")
    secret = cluster.get(API_PATHS["Secret"].format(ns=NAMESPACE,
                                                    name=f"{RELEASE}-watchkeeper-injector-tls"))
    for key in ("tls.crt", "tls.key"):
        (where / key).write_bytes(base64.b64decode(secret["data"][key]))
    template = cluster.get(API_PATHS["ConfigMap"].format(ns=NAMESPACE,
                                                         name=f"{RELEASE}-watchkeeper-injector"))
    (where / "template.yaml").write_text(template["data"]["template.yaml"])
    process = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper.agent", "injector", "--host", "127.0.0.1",
         "--port", str(injector_port), "--tls-cert", str(where / "tls.crt"),
         "--tls-key", str(where / "tls.key"), "--template", str(where / "template.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert json.loads(line) == {"event": "ready", "injector": injector_port}, \
        process.stderr.read() if process.stderr else line
    yield process
    process.terminate()
    process.wait(timeout=30)


def pod(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "support-bot"},
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/bot:1"}]}}


def create_pod(cluster: Cluster, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    response = cluster.create(f"/api/v1/namespaces/{namespace}/pods", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_annotated_pod_is_stored_with_the_native_sidecar(
        cluster: Cluster, injector: subprocess.Popen[str]) -> None:
    cluster.namespace("apps")
    stored = create_pod(cluster, "apps", pod("bot-1", {"watchkeeper.io/inject": "true",
                                                       "watchkeeper.io/redaction-action": "drop"}))
    spec = stored["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == SIDECAR and sidecar["restartPolicy"] == "Always"
    assert "startupProbe" in sidecar
    assert env_of(sidecar)["WATCHKEEPER_SIDECAR__REDACTION__ACTION"] == "drop"
    assert "sampling" in env_of(sidecar)["WATCHKEEPER_CONFIG_YAML"]
    (app,) = spec["containers"]
    assert {k: v for k, v in env_of(app).items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "support-bot"}
    assert stored["metadata"]["annotations"]["watchkeeper.io/status"] == "injected"
    assert {"watchkeeper-data", "watchkeeper-tmp"} <= {v["name"] for v in spec["volumes"]}
    # What the API server stores is what a GET returns (no later mutation).
    assert cluster.get("/api/v1/namespaces/apps/pods/bot-1")["spec"] == spec


def test_a_resent_injected_pod_is_not_injected_twice(
        cluster: Cluster, injector: subprocess.Popen[str]) -> None:
    cluster.namespace("apps")
    first = create_pod(cluster, "apps", pod("bot-2", {"watchkeeper.io/inject": "true"}))
    again = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "bot-2-again", "labels": first["metadata"]["labels"],
                          "annotations": first["metadata"]["annotations"]},
             "spec": {k: first["spec"][k] for k in ("initContainers", "containers", "volumes")}}
    # (the service account volume is the API server's own, added again on create)
    again["spec"]["volumes"] = [v for v in again["spec"]["volumes"]
                                if not v["name"].startswith("kube-api-access")]
    for container in again["spec"]["initContainers"] + again["spec"]["containers"]:
        container["volumeMounts"] = [m for m in container.get("volumeMounts", [])
                                     if not m["name"].startswith("kube-api-access")]
    stored = create_pod(cluster, "apps", again)
    assert [c["name"] for c in stored["spec"]["initContainers"]] == [SIDECAR]
    assert [e["name"] for e in stored["spec"]["containers"][0]["env"]].count(
        "OTEL_SERVICE_NAME") == 1


def test_pod_without_the_annotation_is_stored_unchanged(
        cluster: Cluster, injector: subprocess.Popen[str]) -> None:
    cluster.namespace("apps")
    stored = create_pod(cluster, "apps", pod("plain-1"))
    assert "initContainers" not in stored["spec"]
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app"]
    assert not any(k.startswith("OTEL_") for k in env_of(stored["spec"]["containers"][0]))
    assert "watchkeeper.io/status" not in (stored["metadata"].get("annotations") or {})


def test_a_labelled_namespace_injects_every_pod_that_does_not_opt_out(
        cluster: Cluster, injector: subprocess.Popen[str]) -> None:
    cluster.namespace("team-search", {"watchkeeper.io/inject": "enabled"})
    injected = create_pod(cluster, "team-search", pod("ranker-1"))
    assert [c["name"] for c in injected["spec"]["initContainers"]] == [SIDECAR]
    opted_out = create_pod(cluster, "team-search",
                           pod("ranker-2", {"watchkeeper.io/inject": "false"}))
    assert "initContainers" not in opted_out["spec"]


def test_a_malformed_annotation_is_refused_with_its_reason(
        cluster: Cluster, injector: subprocess.Popen[str]) -> None:
    cluster.namespace("apps")
    response = cluster.create("/api/v1/namespaces/apps/pods",
                              pod("bot-bad", {"watchkeeper.io/inject": "true",
                                              "watchkeeper.io/sampling-ratio": "2"}))
    assert response.status_code == 400
    message = response.json()["message"]
    assert "pods.injector.watchkeeper.io" in message and "watchkeeper.io/sampling-ratio" in message


def test_injector_down_never_blocks_a_deploy(cluster: Cluster,
                                             injector: subprocess.Popen[str]) -> None:
    """failurePolicy Ignore: with nothing listening, the Pod is created, without the sidecar."""
    cluster.namespace("apps")
    injector.terminate()
    injector.wait(timeout=30)
    started = time.monotonic()
    stored = create_pod(cluster, "apps", pod("bot-down", {"watchkeeper.io/inject": "true"}))
    assert time.monotonic() - started < 10
    assert "initContainers" not in stored["spec"]


def test_helm_upgrade_keeps_the_ca_and_renews_the_certificate(
        cluster: Cluster, helm: str, installed: dict[str, Any]) -> None:
    path = API_PATHS["Secret"].format(ns=NAMESPACE, name=f"{RELEASE}-watchkeeper-injector-tls")
    before = cluster.get(path)["data"]
    hook_path = API_PATHS["MutatingWebhookConfiguration"].format(
        name=f"{RELEASE}-watchkeeper-injector")
    proc = helm_run(helm, cluster, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--no-hooks", "--values", str(installed["values"]),
                    "--set", "injector.timeoutSeconds=3")
    assert proc.returncode == 0, proc.stderr
    after = cluster.get(path)["data"]
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert after["tls.crt"] != before["tls.crt"]  # renewed, and still trusted:
    webhooks = cluster.get(hook_path)["webhooks"]
    assert all(base64.b64decode(h["clientConfig"]["caBundle"]) ==
               base64.b64decode(after["ca.crt"]) for h in webhooks)
    assert {h["timeoutSeconds"] for h in webhooks} == {3}
