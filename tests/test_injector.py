"""The sidecar injector's decisions (agent/inject/mutate.py) on AdmissionReviews shaped as the
API server sends them, with each patch applied the way the API server applies it (RFC 6902),
and the webhook served over real TLS, certificate rotation included. tests/test_kube.py runs it
behind a real kube-apiserver."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
import trustme

from watchkeeper.agent.config import ConfigError, load_settings
from watchkeeper.agent.inject.mutate import Scope, review, service_name
from watchkeeper.agent.inject.server import InjectorOptions, InjectorService
from watchkeeper.agent.inject.template import SIDECAR_NAME, InjectionTemplate, load_template

TEMPLATE = InjectionTemplate(
    container={"name": SIDECAR_NAME, "image": "watchkeeper:test",
               "env": [{"name": "WATCHKEEPER_CONFIG_YAML", "value": "sidecar: {host: 127.0.0.1}"}],
               "resources": {"requests": {"cpu": "50m"}}},
    volumes=[{"name": "watchkeeper-data", "emptyDir": {}},
             {"name": "watchkeeper-tmp", "emptyDir": {}}],
)


def pod(annotations: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "chat-1", "namespace": "apps", **meta}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [
                {"name": "app", "image": "chat:1"},
                {"name": "worker", "image": "chat:1",
                 "env": [{"name": "OTEL_SERVICE_NAME", "value": "chat-worker"}]}]}}


def admission(obj: dict[str, Any], *, operation: str = "CREATE") -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "b7c3e3b2-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "namespace": "apps", "operation": operation, "object": obj}}


def admit(obj: dict[str, Any], scope: Scope = Scope.POD,
          template: InjectionTemplate = TEMPLATE) -> tuple[dict[str, Any], dict[str, Any]]:
    """The response, and the pod as the API server stores it after the patch."""
    response = review(admission(copy.deepcopy(obj)), template, scope)["response"]
    assert response["uid"] == "b7c3e3b2-1"
    if "patch" not in response:
        return response, obj
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return response, jsonpatch.apply_patch(obj, patch)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_annotated_pod_gets_a_native_sidecar_first_and_the_otel_variables() -> None:
    original = pod({"watchkeeper.io/inject": "true"}, labels={"app.kubernetes.io/name": "chat"})
    original["spec"]["initContainers"] = [{"name": "migrate", "image": "chat:1"}]
    response, stored = admit(original)
    assert response["allowed"]
    init = stored["spec"]["initContainers"]
    assert [c["name"] for c in init] == [SIDECAR_NAME, "migrate"]  # before the app's own
    assert init[0]["restartPolicy"] == "Always"
    assert {v["name"] for v in stored["spec"]["volumes"]} == {"watchkeeper-data",
                                                              "watchkeeper-tmp"}
    app, worker = stored["spec"]["containers"]
    assert env_of(app) == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                           "OTEL_SERVICE_NAME": "chat"}
    assert env_of(worker)["OTEL_SERVICE_NAME"] == "chat-worker"  # what the app set is kept
    assert stored["metadata"]["annotations"]["watchkeeper.io/status"] == "injected"
    assert TEMPLATE.container.get("restartPolicy") is None  # the template itself is untouched


def test_injects_once() -> None:
    _, stored = admit(pod({"watchkeeper.io/inject": "true"}))
    response, again = admit(stored)
    assert "patch" not in response and again == stored
    # the sidecar already there under another form (an app chart's named template) counts too
    named = pod({"watchkeeper.io/inject": "true"})
    named["spec"]["containers"].append({"name": SIDECAR_NAME, "image": "watchkeeper:0"})
    assert "patch" not in admit(named)[0]


@pytest.mark.parametrize("annotations", [None, {}, {"watchkeeper.io/inject": "false"},
                                         {"watchkeeper.io/inject": "yes please"}])
def test_pods_that_do_not_ask_are_unchanged(annotations: dict[str, str] | None) -> None:
    response, stored = admit(pod(annotations))
    assert response["allowed"] and "patch" not in response
    assert stored == pod(annotations)


def test_a_labelled_namespace_injects_every_pod_unless_it_opts_out() -> None:
    assert "patch" in admit(pod(None), Scope.NAMESPACE)[0]
    assert "patch" in admit(pod({"team": "search"}), Scope.NAMESPACE)[0]
    assert "patch" not in admit(pod({"watchkeeper.io/inject": "false"}), Scope.NAMESPACE)[0]


def test_never_its_own_pods_nor_other_kinds_or_operations() -> None:
    own = pod({"watchkeeper.io/inject": "true"},
              labels={"app.kubernetes.io/part-of": "watchkeeper"})
    assert "patch" not in admit(own, Scope.NAMESPACE)[0]
    body = admission(pod({"watchkeeper.io/inject": "true"}), operation="UPDATE")
    assert "patch" not in review(body, TEMPLATE, Scope.POD)["response"]
    body = admission(pod({"watchkeeper.io/inject": "true"}))
    body["request"]["kind"]["kind"] = "Deployment"
    assert "patch" not in review(body, TEMPLATE, Scope.POD)["response"]


def test_annotations_override_sampling_redaction_resources_and_protocol() -> None:
    _, stored = admit(pod({"watchkeeper.io/inject": "true",
                           "watchkeeper.io/sampling-ratio": "0.25",
                           "watchkeeper.io/redaction-action": "drop",
                           "watchkeeper.io/cpu-request": "100m",
                           "watchkeeper.io/memory-limit": "1Gi",
                           "watchkeeper.io/otlp-protocol": "grpc",
                           "watchkeeper.io/service-name": "support-bot"}))
    sidecar = stored["spec"]["initContainers"][0]
    assert env_of(sidecar)["WATCHKEEPER_SIDECAR__SAMPLING__RATIO"] == "0.25"
    assert env_of(sidecar)["WATCHKEEPER_SIDECAR__REDACTION__ACTION"] == "drop"
    assert sidecar["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}
    app = env_of(stored["spec"]["containers"][0])
    assert app["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert app["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert app["OTEL_SERVICE_NAME"] == "support-bot"


def test_overrides_reach_the_sidecar_s_own_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the injector sets are the ones the agent reads, over its config."""
    _, stored = admit(pod({"watchkeeper.io/inject": "true",
                           "watchkeeper.io/sampling-ratio": "0.25",
                           "watchkeeper.io/redaction-action": "drop"}))
    for name, value in env_of(stored["spec"]["initContainers"][0]).items():
        monkeypatch.setenv(name, value)
    settings = load_settings("env:WATCHKEEPER_CONFIG_YAML")
    assert settings.sidecar.host == "127.0.0.1"
    assert settings.sidecar.sampling.ratio == 0.25
    assert settings.sidecar.redaction.action == "drop"


@pytest.mark.parametrize(("annotations", "reason"), [
    ({"watchkeeper.io/sampling-ratio": "1.5"}, "watchkeeper.io/sampling-ratio"),
    ({"watchkeeper.io/sampling-ratio": "often"}, "watchkeeper.io/sampling-ratio"),
    ({"watchkeeper.io/redaction-action": "off"}, "watchkeeper.io/redaction-action"),
    ({"watchkeeper.io/cpu-request": "a lot"}, "watchkeeper.io/cpu-request"),
    ({"watchkeeper.io/memory-limit": "1GB"}, "watchkeeper.io/memory-limit"),
    ({"watchkeeper.io/redacton-action": "drop"}, "unknown annotation watchkeeper.io/redacton"),
])
def test_malformed_annotations_are_refused_with_the_reason(annotations: dict[str, str],
                                                           reason: str) -> None:
    response, _ = admit(pod({"watchkeeper.io/inject": "true", **annotations}))
    assert not response["allowed"] and "patch" not in response
    assert response["status"]["code"] == 400
    assert reason in response["status"]["message"]


def test_a_volume_name_the_sidecar_needs_is_refused_not_overwritten() -> None:
    taken = pod({"watchkeeper.io/inject": "true"})
    taken["spec"]["volumes"] = [{"name": "watchkeeper-data", "hostPath": {"path": "/srv"}}]
    response, _ = admit(taken)
    assert not response["allowed"] and "watchkeeper-data" in response["status"]["message"]


def test_plain_container_form_for_older_clusters() -> None:
    plain = TEMPLATE.model_copy(update={"native": False})
    _, stored = admit(pod({"watchkeeper.io/inject": "true"}), template=plain)
    names = [c["name"] for c in stored["spec"]["containers"]]
    assert names == ["app", "worker", SIDECAR_NAME] and "initContainers" not in stored["spec"]
    sidecar = stored["spec"]["containers"][2]
    assert "restartPolicy" not in sidecar
    assert "OTEL_SERVICE_NAME" not in env_of(sidecar)  # the app's variables are for the apps


@pytest.mark.parametrize(("meta", "expected"), [
    ({"labels": {"app.kubernetes.io/name": "chat", "app": "x"}}, "chat"),
    ({"labels": {"app": "legacy-chat"}}, "legacy-chat"),
    ({"labels": {"pod-template-hash": "7d9f8c6b5"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "support-bot-7d9f8c6b5"}]},
     "support-bot"),
    ({"ownerReferences": [{"kind": "StatefulSet", "name": "rag-indexer"}]}, "rag-indexer"),
    ({"generateName": "batch-judge-"}, "batch-judge"),
    ({"name": "one-off"}, "one-off"),
])
def test_service_name_follows_the_operator_s_order(meta: dict[str, Any], expected: str) -> None:
    assert service_name(meta, {"containers": [{"name": "app"}]}) == expected


def _malformed_pod(field: str, value: Any) -> dict[str, Any]:
    body = admission(pod({"watchkeeper.io/inject": "true"}))
    target = body["request"]["object"]
    *path, leaf = field.split(".")
    for part in path:
        target = target[part]
    target[leaf] = value
    return body


@pytest.mark.parametrize("body", [
    _malformed_pod("metadata.annotations", ["watchkeeper.io/inject"]),
    _malformed_pod("metadata.labels", "app=x"),
    _malformed_pod("spec.containers", {"name": "app"}),
    _malformed_pod("spec.volumes", [7]),
    {"kind": "AdmissionReview", "request": {}},
    {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
     "request": {"uid": "x"}},
])
def test_what_is_not_a_v1_admission_review_raises(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        review(body, TEMPLATE, Scope.POD)


def test_config_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_CONFIG", "sidecar: {otlp_http_port: 14318}\nlog_level: debug\n")
    settings = load_settings("env:WK_TEST_CONFIG")
    assert settings.sidecar.otlp_http_port == 14318 and settings.log_level == "debug"
    with pytest.raises(ConfigError, match="WK_TEST_MISSING"):
        load_settings("env:WK_TEST_MISSING")
    monkeypatch.setenv("WK_TEST_CONFIG", "- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings("env:WK_TEST_CONFIG")


def test_template_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text("container: {name: something-else}\n")
    with pytest.raises(ConfigError, match="watchkeeper-sidecar"):
        load_template(bad)
    with pytest.raises(ConfigError, match="No such file"):
        load_template(tmp_path / "missing.yaml")


# -- the webhook over TLS --------------------------------------------------------------------

def _issue(ca: trustme.CA, directory: Path) -> tuple[Path, Path, bytes]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = directory / "tls.crt", directory / "tls.key"
    # Written to new files and renamed over the old, as a Secret volume's update swaps them.
    for path, blob in ((chain, b"".join(b.bytes() for b in cert.cert_chain_pems)),
                       (key, cert.private_key_pem.bytes())):
        path.with_suffix(".new").write_bytes(blob)
        path.with_suffix(".new").rename(path)
    return chain, key, cert.cert_chain_pems[0].bytes()


def _served_certificate(port: int, ca: trustme.CA) -> bytes:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


def test_webhook_over_tls_answers_reviews_and_picks_up_a_rotated_certificate(
        tmp_path: Path) -> None:
    ca = trustme.CA()
    chain, key, first = _issue(ca, tmp_path)
    options = InjectorOptions(template=TEMPLATE, tls_cert=chain, tls_key=key, host="127.0.0.1",
                              port=0, reload_s=0.1)

    async def scenario() -> None:
        service = InjectorService(options)
        await service.start()
        try:
            trust = ssl.create_default_context()
            ca.configure_trust(trust)
            async with httpx.AsyncClient(verify=trust, timeout=5) as client:
                base = f"https://127.0.0.1:{service.port}"
                started = time.monotonic()
                answer = await client.post(base + "/mutate",
                                           json=admission(pod({"watchkeeper.io/inject": "true"})))
                assert time.monotonic() - started < 1.0  # well inside the 5 s timeout
                assert answer.status_code == 200
                assert answer.json()["response"]["patchType"] == "JSONPatch"
                answer = await client.post(base + "/mutate/namespace",
                                           json=admission(pod(None)))
                assert "patch" in answer.json()["response"]
                for body in (b"{not json", b'{"kind": "AdmissionReview"}', b"[]"):
                    bad = await client.post(base + "/mutate", content=body)
                    assert bad.status_code == 400
                    assert "not an AdmissionReview" in bad.json()["error"]
                big = await client.post(base + "/mutate", content=b" " * (4 * 1024 * 1024))
                assert big.status_code == 413
                metrics = await client.get(base + "/metrics")
                assert 'wk_injector_reviews_total{result="injected"}' in metrics.text
            assert await asyncio.to_thread(_served_certificate, service.port, ca) == first
            _, _, second = _issue(ca, tmp_path)  # the Secret was updated
            deadline = time.monotonic() + 5
            while (await asyncio.to_thread(_served_certificate, service.port, ca)) != second:
                assert time.monotonic() < deadline, "the new certificate was never served"
                await asyncio.sleep(0.1)
            key.write_text("half a key")  # a broken update keeps the previous pair serving
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(_served_certificate, service.port, ca) == second
        finally:
            await service.drain(time.monotonic() + 5)
            await service.stop()

    asyncio.run(scenario())
