"""The Helm chart (helm/watchkeeper): `helm lint`, `helm template` with several value sets, every
rendered manifest validated against the Kubernetes schemas (kubernetes-validate, strict: unknown
fields fail), and what matters checked on the rendered objects: the config the pods mount loads
with the agent's own `load_settings` and the flags parse with the agent's own CLI parser, no
secret is ever in a ConfigMap, secrets arrive as the files the config names, probes hit the
API port, GPU values reach the pod, the schema refuses bad values, Grafana provisioning, and the
sidecar template works from an app chart.

helm comes from scripts/helm (built once from the Go module proxy). Without Go or the proxy the
module skips with the reason, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.util.re import parse_env_headers

from watchkeeper.agent.auth import require_token
from watchkeeper.agent.cli import parser as cli_parser
from watchkeeper.agent.config import QueryLimits, Settings, load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"

try:
    import kubernetes_validate
except ImportError:  # the dev extra is not installed here
    if IN_CI:
        raise
    pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "watchkeeper"
RELEASE = "wk"
NAMESPACE = "llm-prod"
KUBE_VERSION = "1.30.0"
# The first version with native sidecars (the default) and the newest schemas
# kubernetes-validate ships; with sidecar.native=false, the chart's kubeVersion floor too.
VALIDATE_VERSIONS = ("1.29", kubernetes_validate.latest_version())
FLOOR_VERSION = "1.25"

# The first build of helm takes minutes (CI builds it before the tests).
pytestmark = pytest.mark.timeout(1200)

Doc = dict[str, Any]

SECRET_VALUES = {
    "sidecarToken": "sidecar-token-7f3a9c1e",
    "apiToken": "api-token-52bd0e8f",
    "clickhousePassword": "ch-password-c0ffee42",
    "clickhouseReaderPassword": "ch-reader-password-5eed1e55",
    "kafkaSaslPassword": "kafka-password-d15ea5e9",
    "userIdSalt": "user-salt-8badf00d",
    "pseudonymKey": "pseudonym-key-0ddba11",
}

EVERYTHING = {
    "kafka": {"bootstrapServers": ["kafka-0.kafka:9093", "kafka-1.kafka:9093"],
              "topicPrefix": "prod.", "partitions": 6, "replicationFactor": 3,
              "securityProtocol": "SASL_SSL",
              "sasl": {"mechanism": "SCRAM-SHA-512", "username": "watchkeeper"}},
    "clickhouse": {"url": "https://clickhouse.db.svc:8443", "database": "wk_prod",
                   "username": "wk_writer", "cluster": "main", "replicated": True,
                   "retentionDays": 90, "reader": {"username": "wk_sql"}},
    "query": {"maxExecutionTimeS": 10, "maxMemoryBytes": 536870912, "maxResultRows": 500,
              "maxRowsToRead": 50000000, "maxThreads": 2, "maxConcurrent": 4,
              "queueTimeoutS": 2.5},
    "logLevel": "debug",
    "config": {"ingest": {"join_window_s": 3.0, "hash_user_ids": True},
               "kafka": {"linger_ms": 10, "ssl_cafile": "/etc/kafka-ca/ca.crt"},
               "store": {"verify_tls": True}},
    "secrets": {name: {"value": value} for name, value in SECRET_VALUES.items()},
    "sidecar": {"redaction": {"patterns": [{"name": "employee_id", "regex": r"EMP-\d{6}"}]},
                "sampling": {"ratio": 0.5}},
    "exampleApp": {"enabled": True},
    "ingest": {"replicas": 3},
    "watch": {"gpu": {"enabled": True, "count": 2,
                      "nodeSelector": {"nvidia.com/gpu.present": "true"}},
              "models": {"enabled": True},
              "watchers": [
                  {"name": "quality", "kind": "heuristics", "field": "completion",
                   "thresholds": {"refusal": 1.0}},
                  {"name": "toxicity", "kind": "hf_classifier", "field": "completion",
                   "thresholds": {"toxic": 0.8},
                   "options": {"model": "/models/toxic-bert"}}]},
    "schedule": {"jobs": [{"name": "prompt-drift", "kind": "embedding", "detector": "mmd",
                           "embedding": "minilm", "window": "1h", "every": "15m"}]},
    "networkPolicy": {"enabled": True, "restrictEgress": True,
                      "egress": [{"to": [{"namespaceSelector": {}}],
                                  "ports": [{"port": 9093, "protocol": "TCP"}]}]},
    "podAnnotations": {"prometheus.io/scrape": "true"},
    "extraVolumes": [{"name": "kafka-ca", "secret": {"secretName": "kafka-ca"}}],
    "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True}],
}

GPU = {"watch": {"gpu": {"enabled": True, "count": 1},
                 "models": {"enabled": True, "existingClaim": "llm-weights"}}}

EXISTING_SECRETS = {
    "secrets": {
        "sidecarToken": {"existingSecret": "wk-sidecar", "key": "token"},
        "apiToken": {"existingSecret": "wk-api", "key": "token"},
        "clickhousePassword": {"existingSecret": "clickhouse-creds", "key": "password"},
        "clickhouseReaderPassword": {"existingSecret": "clickhouse-reader", "key": "password"},
        "kafkaSaslPassword": {"existingSecret": "kafka-creds", "key": "password"},
        "userIdSalt": {"existingSecret": "wk-salt", "key": "salt"},
        "pseudonymKey": {"existingSecret": "wk-pseudonyms", "key": "hmac"},
    },
    "kafka": {"securityProtocol": "SASL_PLAINTEXT",
              "sasl": {"mechanism": "PLAIN", "username": "wk"}},
    "exampleApp": {"enabled": True},
}

EXAMPLE_APP = {"exampleApp": {"enabled": True}, "ingest": {"enabled": False},
               "watch": {"enabled": False}, "schedule": {"enabled": False},
               "migrate": {"enabled": False}}

PLAIN_SIDECAR = {"sidecar": {"native": False}, "exampleApp": {"enabled": True},
                 "injector": {"enabled": True}}

HOSTPATH_MODELS = {"watch": {"models": {"enabled": True, "hostPath": "/mnt/models"},
                             "device": "cuda:1", "precision": "fp16"},
                   "api": {"port": 9090}, "sidecar": {"otlpHttpPort": 14318}}

# The processes that own a store: they run user SQL (or, migrate, create its account).
STORE_OWNERS = {"ingest", "watch", "schedule", "migrate"}

# The config's query section each value set renders (none given: the agent's defaults).
QUERY_LIMITS = {"everything": {"max_execution_time_s": 10, "max_memory_bytes": 536870912,
                               "max_result_rows": 500, "max_rows_to_read": 50000000,
                               "max_threads": 2, "max_concurrent": 4, "queue_timeout_s": 2.5}}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "everything": EVERYTHING,
    "gpu": GPU,
    "existing-secrets": EXISTING_SECRETS,
    "example-app": EXAMPLE_APP,
    "hostpath-models": HOSTPATH_MODELS,
    "plain-sidecar": PLAIN_SIDECAR,
}


# -- helm ------------------------------------------------------------------------------------

def _run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def template(helm: str, values: dict[str, Any] | None, *, tmp_path: Path,
             chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION]
    if values:
        values_file = tmp_path / f"values-{len(list(tmp_path.glob('values-*.yaml')))}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        args += ["--values", str(values_file)]
    return _run_helm(helm, *args)


def render(helm: str, values: dict[str, Any] | None, tmp_path: Path,
           chart: Path = CHART) -> list[Doc]:
    proc = template(helm, values, tmp_path=tmp_path, chart=chart)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    tmp = tmp_path_factory.mktemp("values")
    return {name: render(helm, values, tmp) for name, values in VALUE_SETS.items()}


# -- reading rendered objects ------------------------------------------------------------------

def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def watchkeeper_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc, Doc]]:
    """(workload, pod spec, container) for each container (a native sidecar among the init
    containers included) that runs `watchkeeper --config` with the agent's config and API;
    the injector, a webhook with neither, has tests of its own."""
    for workload, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container.get("command") == ["watchkeeper"] and "injector" not in container["args"]:
                yield workload, spec, container


def full(name: str) -> str:
    return f"{RELEASE}-watchkeeper-{name}" if name else f"{RELEASE}-watchkeeper"


def secret_data(docs: list[Doc]) -> dict[tuple[str, str], str]:
    """(Secret name, key) -> value of every Secret the chart renders."""
    out = {}
    for secret in by_kind(docs, "Secret"):
        for key, value in (secret.get("data") or {}).items():
            out[(secret["metadata"]["name"], key)] = base64.b64decode(value).decode()
        for key, value in (secret.get("stringData") or {}).items():
            out[(secret["metadata"]["name"], key)] = value
    return out


def resolve_secret(docs: list[Doc], name: str, key: str) -> str:
    """A secret's value: from the rendered Secret, else a stand-in for a Secret that exists
    in the cluster already (which the chart must then not render)."""
    data = secret_data(docs)
    if (name, key) in data:
        return data[(name, key)]
    assert not any(s["metadata"]["name"] == name for s in by_kind(docs, "Secret")), \
        f"Secret {name} is rendered but has no key {key}"
    return f"existing:{name}/{key}"


def mounted_files(docs: list[Doc], spec: Doc, container: Doc) -> dict[str, str]:
    """Absolute path -> content of every file that the container's ConfigMap and Secret
    mounts put into it."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        entries: list[tuple[str, str]] = []  # (path in the volume, content)
        if "configMap" in volume:
            config_map = one(docs, "ConfigMap", volume["configMap"]["name"])
            entries = list(config_map["data"].items())
        elif "secret" in volume:
            name = volume["secret"]["secretName"]
            entries = [(item["path"], resolve_secret(docs, name, item["key"]))
                       for item in volume["secret"].get("items", [])]
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                name = source["secret"]["name"]
                entries += [(item["path"], resolve_secret(docs, name, item["key"]))
                            for item in source["secret"]["items"]]
        for path, content in entries:
            if mount.get("subPath"):
                if path == mount["subPath"]:
                    files[mount["mountPath"]] = content
            else:
                files[f"{mount['mountPath'].rstrip('/')}/{path}"] = content
    return files


def container_settings(docs: list[Doc], spec: Doc, container: Doc, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Any]:
    """What the container's process would load: its args through the agent's own CLI parser,
    its mounted config file through load_settings, with its environment, every file it names
    read from what its volumes mount (so a *_FILE variable naming an unmounted path fails)."""
    args = cli_parser().parse_args(container["args"])
    files = mounted_files(docs, spec, container)
    local: dict[str, Path] = {}
    for index, (path, content) in enumerate(sorted(files.items())):
        local[path] = tmp_path / f"file-{index}"
        local[path].write_text(content)
    assert str(args.config) in local, f"--config {args.config} is not mounted"
    for name in [n for n in os.environ if n.startswith("WATCHKEEPER_")]:
        monkeypatch.delenv(name)
    for env in container.get("env", []):
        if not env["name"].startswith("WATCHKEEPER_"):
            continue
        if "valueFrom" in env:
            ref = env["valueFrom"]["secretKeyRef"]
            value = resolve_secret(docs, ref["name"], ref["key"])
        elif env["name"].endswith("_FILE"):
            assert env["value"] in local, f"{env['name']}={env['value']} is not mounted"
            value = str(local[env["value"]])
        else:
            value = env["value"]
        monkeypatch.setenv(env["name"], value)
    # The overrides agent/cli.py passes for these flags.
    overrides = {"bus": getattr(args, "bus", None),
                 "sidecar.otlp_http_port": getattr(args, "otlp_http_port", None),
                 "sidecar.otlp_grpc_port": getattr(args, "otlp_grpc_port", None),
                 "store.url": getattr(args, "store_url", None),
                 "api.port": getattr(args, "api_port", None),
                 "data_dir": getattr(args, "data_dir", None)}
    return load_settings(local[str(args.config)], **overrides), args


def config_of(docs: list[Doc]) -> Doc:
    loaded = yaml.safe_load(one(docs, "ConfigMap", full("config"))["data"]["config.yaml"])
    assert isinstance(loaded, dict)
    return loaded


# -- the tests ---------------------------------------------------------------------------------

def test_scripts_helm_prints_only_the_path(helm: str) -> None:
    proc = subprocess.run([str(ROOT / "scripts" / "helm")], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout == f"{helm}\n"
    assert proc.stderr == ""  # quiet once built
    version = _run_helm(helm, "version", "--short")
    assert version.returncode == 0 and version.stdout.startswith("v3."), version


@pytest.mark.parametrize("values", [None, EVERYTHING], ids=["default", "everything"])
def test_lint(helm: str, values: dict[str, Any] | None, tmp_path: Path) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if values:
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
        args += ["--values", str(tmp_path / "values.yaml")]
    proc = _run_helm(helm, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_validator_is_strict() -> None:
    """Guard for the test below: a misspelt field does fail validation."""
    deployment: Doc = {"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "x"},
                       "spec": {"selector": {"matchLabels": {"a": "b"}},
                                "template": {"metadata": {"labels": {"a": "b"}},
                                             "spec": {"containers": [{"name": "c",
                                                                      "image": "i"}]}}}}
    kubernetes_validate.validate(deployment, "1.30", strict=True)
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_manifest_is_valid_kubernetes(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    assert docs
    seen = set()
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        assert len(doc["metadata"]["name"]) <= 63
        versions = VALIDATE_VERSIONS + ((FLOOR_VERSION,) if name == "plain-sidecar" else ())
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} against "
                            f"{version}: {path}: {exc.message}")


def test_components_follow_their_switches(rendered: dict[str, list[Doc]]) -> None:
    default = {(d["kind"], d["metadata"]["name"]) for d in rendered["default"]}
    for component in ("ingest", "watch", "schedule"):
        assert ("Deployment", full(component)) in default
        assert ("Service", full(component)) in default
    assert ("Job", full("migrate")) in default
    assert ("PodDisruptionBudget", full("ingest")) in default
    assert ("ServiceAccount", full("")) in default
    assert ("ConfigMap", full("config")) in default
    assert ("Deployment", full("example-app")) not in default
    assert not any(kind == "NetworkPolicy" for kind, _ in default)

    example = {(d["kind"], d["metadata"]["name"]) for d in rendered["example-app"]}
    assert ("Deployment", full("example-app")) in example
    assert ("Service", full("example-app")) in example
    assert not any(kind == "Job" or name in {full(c) for c in ("ingest", "watch", "schedule")}
                   for kind, name in example)

    everything = rendered["everything"]
    assert len(by_kind(everything, "NetworkPolicy")) == 4
    assert one(everything, "PersistentVolumeClaim", full("models"))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_container_loads_its_config(rendered: dict[str, list[Doc]], name: str,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Watchkeeper container's args parse with the agent's CLI, and its config, env and
    mounted secret files load with load_settings into what the pod spec says."""
    docs = rendered[name]
    containers = list(watchkeeper_containers(docs))
    assert containers
    commands = set()
    for index, (workload, spec, container) in enumerate(containers):
        where = tmp_path / str(index)
        where.mkdir()
        settings, args = container_settings(docs, spec, container, where, monkeypatch)
        commands.add(args.command)
        values = VALUE_SETS[name]
        servers = values.get("kafka", {}).get("bootstrapServers", ["kafka:9092"])
        assert settings.bus == "kafka://" + ",".join(servers)
        assert settings.api.host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if args.command != "migrate":
            assert ports["api"] == settings.api.port
            # The agent's own start rule: an API bound beyond loopback needs a token.
            require_token(settings.api.host, settings.api.token, "api")
        # The query limits: the chart's defaults are the agent's, and values reach the config.
        assert settings.query == QueryLimits(**QUERY_LIMITS.get(name, {}))
        reader = values.get("clickhouse", {}).get("reader", {}).get("username",
                                                                    "watchkeeper_reader")
        if args.command in STORE_OWNERS:
            assert settings.store.reader_username == reader
            assert settings.store.reader_password is not None
            expected_reader_password = {
                "everything": SECRET_VALUES["clickhouseReaderPassword"],
                "existing-secrets": "existing:clickhouse-reader/password",
            }.get(name)
            if expected_reader_password:
                assert settings.store.reader_password.get_secret_value() == \
                    expected_reader_password
            else:  # generated
                assert len(settings.store.reader_password.get_secret_value()) >= 32
        else:
            assert settings.store.reader_password is None
        if args.command == "sidecar":
            assert ports["otlp-http"] == settings.sidecar.otlp_http_port
            assert ports["otlp-grpc"] == settings.sidecar.otlp_grpc_port
            assert settings.sidecar.token is not None, "the sidecar must require a token"
            require_token(settings.sidecar.host, settings.sidecar.token, "sidecar")
            # The sidecar lives in every app pod: it never gets the ClickHouse password.
            assert settings.store.password is None
        else:
            assert settings.store.url == values.get("clickhouse", {}).get(
                "url", "http://clickhouse:8123")
        if name == "everything" and args.command == "migrate":
            assert settings.store.password is not None
            assert settings.store.password.get_secret_value() == \
                SECRET_VALUES["clickhousePassword"]
            assert settings.api.token is None  # a Job with no API to protect gets no token
        elif name == "everything":
            assert settings.kafka.sasl_password is not None
            assert settings.kafka.sasl_password.get_secret_value() == \
                SECRET_VALUES["kafkaSaslPassword"]
            assert settings.api.token is not None
            assert settings.api.token.get_secret_value() == SECRET_VALUES["apiToken"]
            if args.command == "sidecar":
                assert settings.sidecar.token is not None
                assert settings.sidecar.token.get_secret_value() == SECRET_VALUES["sidecarToken"]
                key = settings.sidecar.redaction.pseudonym_key
                assert key is not None and key.get_secret_value() == SECRET_VALUES["pseudonymKey"]
            else:
                assert settings.store.password is not None
                assert settings.store.password.get_secret_value() == \
                    SECRET_VALUES["clickhousePassword"]
            if args.command == "ingest":
                assert settings.ingest.user_id_salt.get_secret_value() == \
                    SECRET_VALUES["userIdSalt"]
        if name == "everything":
            assert settings.kafka.topic_prefix == "prod."
            assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512"
            assert settings.store.cluster == "main" and settings.store.replicated
            assert settings.ingest.join_window_s == 3.0  # from values' config overlay
            assert settings.sidecar.sampling.ratio == 0.5
            assert [p.name for p in settings.sidecar.redaction.patterns] == ["employee_id"]
            assert [w.name for w in settings.watch.watchers] == ["quality", "toxicity"]
            assert [j.name for j in settings.schedule.jobs] == ["prompt-drift"]
            # The CA the config names is mounted into every container.
            assert settings.kafka.ssl_cafile == Path("/etc/kafka-ca/ca.crt")
            assert {"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True} in \
                container["volumeMounts"]
        if name == "existing-secrets" and args.command != "migrate":
            assert settings.api.token is not None
            assert settings.api.token.get_secret_value() == "existing:wk-api/token"
        assert workload["metadata"]["name"].startswith(full(""))
    expected = {"default": {"ingest", "watch", "schedule", "migrate"},
                "example-app": {"sidecar"}}.get(name)
    if expected:
        assert commands == expected


def test_no_secret_value_outside_secrets(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["everything"]
    values = set(SECRET_VALUES.values())
    assert values <= set(secret_data(docs).values()), "the chart must create these Secrets"
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in values:
            assert value not in text, f"{value!r} leaks into {doc['kind']}/{doc['metadata']}"
    # Nor is any secret field of the agent's config set, even to something else.
    for name in (full("config"), full("migrate")):
        config = yaml.safe_load(one(docs, "ConfigMap", name)["data"]["config.yaml"])
        assert not set(_keys(config)) & {"token", "password", "sasl_password", "user_id_salt",
                                         "reader_password"}
        assert not [key for key in _keys(config) if key.endswith("_file")]
    # Generated values (sidecar and API tokens, the reader's password), likewise, are in the
    # Secrets only.
    default = rendered["default"]
    for key in ("sidecar-token", "api-token", "clickhouse-reader-password"):
        generated = secret_data(default)[(full(""), key)]
        assert len(generated) >= 32
        for doc in default:
            if doc["kind"] != "Secret":
                assert generated not in yaml.safe_dump(doc), f"{key} leaks into {doc['kind']}"


def _keys(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key
            yield from _keys(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _keys(item)


def test_existing_secrets_are_referenced_not_created(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["existing-secrets"]
    # (the injector's serving certificate is the chart's own, generated: a TLS Secret)
    assert [s for s in by_kind(docs, "Secret") if s["type"] != "kubernetes.io/tls"] == []
    referenced = set()
    for _, spec in pod_specs(docs):
        for volume in spec.get("volumes", []):
            for source in volume.get("projected", {}).get("sources", []):
                referenced.add(source["secret"]["name"])
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
    assert referenced == {"wk-sidecar", "wk-api", "clickhouse-creds", "clickhouse-reader",
                          "kafka-creds", "wk-salt", "wk-pseudonyms"}


@pytest.mark.parametrize("name", ["example-app", "everything", "existing-secrets"])
def test_sidecar_takes_its_token_from_a_secret(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    deployment = one(docs, "Deployment", full("example-app"))
    spec = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
    sidecar, app = containers["watchkeeper-sidecar"], containers["app"]
    # A native sidecar (the default): an init container that keeps running.
    assert sidecar in spec["initContainers"] and sidecar["restartPolicy"] == "Always"
    env = {e["name"]: e for e in sidecar["env"]}
    token_file = env["WATCHKEEPER_SIDECAR__TOKEN_FILE"]["value"]
    assert "valueFrom" not in env["WATCHKEEPER_SIDECAR__TOKEN_FILE"]
    files = mounted_files(docs, spec, sidecar)
    expected_ref = (("wk-sidecar", "token") if name == "existing-secrets"
                    else (full(""), "sidecar-token"))
    assert files[token_file] == resolve_secret(docs, *expected_ref)
    if name == "everything":
        assert files[token_file] == SECRET_VALUES["sidecarToken"]
    # The app sends the same token: an env var from the same Secret, as a bearer header.
    app_env = {e["name"]: e for e in app["env"]}
    ref = app_env["WATCHKEEPER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == expected_ref
    # Kubernetes expands $(WATCHKEEPER_TOKEN); the OpenTelemetry SDK then reads the header.
    header = app_env["OTEL_EXPORTER_OTLP_HEADERS"]["value"]
    assert "$(WATCHKEEPER_TOKEN)" in header
    expanded = header.replace("$(WATCHKEEPER_TOKEN)", files[token_file])
    assert parse_env_headers(expanded) == {"authorization": f"Bearer {files[token_file]}"}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://127.0.0.1:4318"
    # The sidecar's shape: Kafka bus, OTLP ports, spool on an emptyDir, locked down.
    args = cli_parser().parse_args(sidecar["args"])
    assert args.command == "sidecar" and args.bus.startswith("kafka://")
    assert {p["containerPort"] for p in sidecar["ports"]} == {4317, 4318, 8686}
    volumes = {v["name"]: v for v in spec["volumes"]}
    data = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == args.data_dir.as_posix())
    assert "emptyDir" in volumes[data["name"]]
    assert volumes[data["name"]]["emptyDir"]["sizeLimit"]
    security = sidecar["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert sidecar["resources"]["requests"] and sidecar["resources"]["limits"]
    # The example app's Service exposes the sidecar's OTLP ports by name.
    service = one(docs, "Service", full("example-app"))
    assert {p["targetPort"] for p in service["spec"]["ports"]} >= {"otlp-grpc", "otlp-http"}


@pytest.mark.parametrize("name", ["default", "everything", "hostpath-models", "example-app"])
def test_probes_hit_the_api_port(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    api_port = VALUE_SETS[name].get("api", {}).get("port", 8686)
    found = 0
    for _, _, container in watchkeeper_containers(docs):
        args = cli_parser().parse_args(container["args"])
        if args.command == "migrate":
            continue
        found += 1
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["api"] == api_port == args.api_port
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
        assert container["startupProbe"]["httpGet"]["port"] == "api"
        # A native sidecar's startup gates the app's containers: it waits for readiness.
        native = container.get("restartPolicy") == "Always"
        assert container["startupProbe"]["httpGet"]["path"] == ("/readyz" if native
                                                                 else "/healthz")
    assert found
    assert config_of(docs)["api"] == {"host": "0.0.0.0", "port": api_port}


def test_gpu_values_reach_the_watch_pod(rendered: dict[str, list[Doc]]) -> None:
    for name, count in (("gpu", 1), ("everything", 2)):
        docs = rendered[name]
        spec = one(docs, "Deployment", full("watch"))["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == count
        assert container["resources"]["limits"]["memory"]  # the component's limits stay
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
            spec["tolerations"]
        assert config_of(docs)["watch"]["device"] == "cuda"
        assert config_of(docs)["watch"]["precision"] == "bf16"
        models = next(v for v in spec["volumes"] if v["name"] == "models")
        mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
        assert mount["mountPath"] == "/models"
        if name == "gpu":
            assert models["persistentVolumeClaim"]["claimName"] == "llm-weights"
            assert not by_kind(docs, "PersistentVolumeClaim")
        else:
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        # GPU values go to the watch pod alone.
        for other in ("ingest", "schedule"):
            pod = one(docs, "Deployment", full(other))["spec"]["template"]["spec"]
            assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})
    default = rendered["default"]
    spec = one(default, "Deployment", full("watch"))["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"].get("limits", {})
    assert "tolerations" not in spec
    assert config_of(default)["watch"]["device"] == "auto"
    hostpath = rendered["hostpath-models"]
    spec = one(hostpath, "Deployment", full("watch"))["spec"]["template"]["spec"]
    assert next(v for v in spec["volumes"] if v["name"] == "models")["hostPath"]["path"] == \
        "/mnt/models"
    assert config_of(hostpath)["watch"]["device"] == "cuda:1"
    assert config_of(hostpath)["watch"]["precision"] == "fp16"


def test_gpu_with_cpu_device_is_refused(helm: str, tmp_path: Path) -> None:
    proc = template(helm, {"watch": {"gpu": {"enabled": True}, "device": "cpu"}},
                    tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "watch.device is cpu" in proc.stderr


def test_ingest_scales_with_partitions_and_schedule_never_overlaps(
        helm: str, rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    assert one(rendered["default"], "Deployment", full("ingest"))["spec"]["replicas"] == 4
    assert one(rendered["everything"], "Deployment", full("ingest"))["spec"]["replicas"] == 3
    docs = render(helm, {"kafka": {"partitions": 12}}, tmp_path)
    assert one(docs, "Deployment", full("ingest"))["spec"]["replicas"] == 12
    assert config_of(docs)["kafka"]["partitions"] == 12
    pdb = one(docs, "PodDisruptionBudget", full("ingest"))
    ingest = one(docs, "Deployment", full("ingest"))
    assert pdb["spec"]["selector"]["matchLabels"] == ingest["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    for name in VALUE_SETS:
        if VALUE_SETS[name].get("schedule", {}).get("enabled", True):
            schedule = one(rendered[name], "Deployment", full("schedule"))
            assert schedule["spec"]["replicas"] == 1
            assert schedule["spec"]["strategy"] == {"type": "Recreate"}


def test_migrate_is_a_pre_install_and_pre_upgrade_hook(rendered: dict[str, list[Doc]]) -> None:
    for name in ("default", "everything", "existing-secrets"):
        docs = rendered[name]
        job = one(docs, "Job", full("migrate"))
        hooks = job["metadata"]["annotations"]
        assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        # A pre-install hook runs before the release's own objects exist: everything the Job
        # mounts is a hook of a lower weight, or a Secret that already exists.
        assert "serviceAccountName" not in spec
        for volume in spec["volumes"]:
            names = []
            if "configMap" in volume:
                names.append(("ConfigMap", volume["configMap"]["name"]))
            for source in volume.get("projected", {}).get("sources", []):
                names.append(("Secret", source["secret"]["name"]))
            for kind, object_name in names:
                made = [d for d in docs if (d["kind"], d["metadata"]["name"]) ==
                        (kind, object_name)]
                if not made:
                    assert name == "existing-secrets" and kind == "Secret"
                    continue
                annotations = made[0]["metadata"].get("annotations", {})
                assert annotations.get("helm.sh/hook") == hooks["helm.sh/hook"], object_name
                assert int(annotations["helm.sh/hook-weight"]) < \
                    int(hooks["helm.sh/hook-weight"])
        container = spec["containers"][0]
        args = cli_parser().parse_args(container["args"])
        assert args.command == "migrate"
        assert args.create_readonly_user  # clickhouse.reader.enabled is on by default
        env = {e["name"] for e in container["env"]}
        assert ("WATCHKEEPER_STORE__PASSWORD_FILE" in env) == (name != "default")
        # The hook's config is the release's config.
        hook_config = one(docs, "ConfigMap", full("migrate"))["data"]["config.yaml"]
        assert yaml.safe_load(hook_config) == config_of(docs)


READER_ENV = "WATCHKEEPER_STORE__READER_PASSWORD_FILE"


def test_reader_account(helm: str, rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """User SQL runs as the read-only reader: its password reaches the processes that own a
    store (ingest, watch, schedule) and migrate, which creates the account, as the file that
    WATCHKEEPER_STORE__READER_PASSWORD_FILE names; a generated one is the same in the release's
    Secret and in the migrate hook's copy (both come from one render); the sidecar never has
    it. With clickhouse.reader.enabled off, none of it is rendered."""
    docs = rendered["default"]
    data = secret_data(docs)
    generated = data[(full(""), "clickhouse-reader-password")]
    assert len(generated) >= 32
    assert data[(full("migrate"), "clickhouse-reader-password")] == generated
    assert config_of(docs)["store"]["reader_username"] == "watchkeeper_reader"
    commands = set()
    for _, spec, container in watchkeeper_containers(docs):
        args = cli_parser().parse_args(container["args"])
        commands.add(args.command)
        env = {e["name"]: e for e in container["env"]}
        path = env[READER_ENV]["value"]
        assert path == "/etc/watchkeeper/secrets/clickhouse-reader-password"
        assert mounted_files(docs, spec, container)[path] == generated
        assert getattr(args, "create_readonly_user", False) == (args.command == "migrate")
    assert commands == STORE_OWNERS
    for name in ("example-app", "everything", "existing-secrets"):
        for _, spec, container in watchkeeper_containers(rendered[name]):
            if container["name"] == "watchkeeper-sidecar":
                assert READER_ENV not in {e["name"] for e in container["env"]}
                assert not [path for path in mounted_files(rendered[name], spec, container)
                            if "reader" in path]
    # Given by value, the hook carries its own copy of the value; from an existing Secret,
    # the hook reads that Secret.
    assert secret_data(rendered["everything"])[(full("migrate"), "clickhouse-reader-password")] \
        == SECRET_VALUES["clickhouseReaderPassword"]
    job = one(rendered["existing-secrets"], "Job", full("migrate"))
    sources = [source["secret"] for volume in job["spec"]["template"]["spec"]["volumes"]
               for source in volume.get("projected", {}).get("sources", [])]
    assert {"name": "clickhouse-reader",
            "items": [{"key": "password", "path": "clickhouse-reader-password"}]} in sources

    off = render(helm, {"clickhouse": {"reader": {"enabled": False}}}, tmp_path)
    assert "reader_username" not in config_of(off)["store"]
    assert not [key for _, key in secret_data(off) if key == "clickhouse-reader-password"]
    assert not [d for d in by_kind(off, "Secret") if d["metadata"]["name"] == full("migrate")]
    commands = set()
    for _, spec, container in watchkeeper_containers(off):
        args = cli_parser().parse_args(container["args"])
        commands.add(args.command)
        assert READER_ENV not in {e["name"] for e in container["env"]}
        assert not [path for path in mounted_files(off, spec, container) if "reader" in path]
        assert not getattr(args, "create_readonly_user", False)
        assert "--create-readonly-user" not in container["args"]
    assert "migrate" in commands


def test_reader_is_not_the_schema_owner(helm: str, tmp_path: Path) -> None:
    """`migrate --create-readonly-user` replaces the reader account: naming the schema owner
    (clickhouse.username) would turn it read-only, so the chart refuses it."""
    same = {"clickhouse": {"username": "watchkeeper", "reader": {"username": "watchkeeper"}}}
    proc = template(helm, same, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "clickhouse.reader.username is clickhouse.username" in proc.stderr, proc.stderr
    same["clickhouse"]["reader"]["enabled"] = False  # type: ignore[index]
    assert not [d for d in render(helm, same, tmp_path) if d["kind"] == "Job"
                and "--create-readonly-user" in
                d["spec"]["template"]["spec"]["containers"][0]["args"]]


def test_api_token_is_generated_by_default(rendered: dict[str, list[Doc]]) -> None:
    """The API binds 0.0.0.0 in pods (the kubelet probes it), so the agent refuses to start
    there without a token: by default the chart generates one, and every process with an API
    (the sidecar included) reads it. The probes use /healthz and /readyz, which need none, and
    nothing in the chart scrapes /metrics without it."""
    for name in ("default", "example-app"):
        docs = rendered[name]
        token = secret_data(docs)[(full(""), "api-token")]
        assert len(token) >= 32
        for _, spec, container in watchkeeper_containers(docs):
            env = {e["name"]: e for e in container["env"]}
            if cli_parser().parse_args(container["args"]).command == "migrate":
                assert "WATCHKEEPER_API__TOKEN_FILE" not in env  # no API to protect
                continue
            path = env["WATCHKEEPER_API__TOKEN_FILE"]["value"]
            assert mounted_files(docs, spec, container)[path] == token
    for name, docs in rendered.items():
        for _, _, container in watchkeeper_containers(docs):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["path"] in {"/healthz", "/readyz"}
                    assert "httpHeaders" not in container[probe]["httpGet"]
        if "podAnnotations" not in VALUE_SETS[name]:
            assert "prometheus.io/scrape" not in json.dumps(docs), name
        assert not [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")]


def test_grafana_datasource(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["everything"]
    config_map = one(docs, "ConfigMap", full("grafana-datasource"))
    assert config_map["metadata"]["labels"]["grafana_datasource"] == "1"
    (content,) = config_map["data"].values()
    provisioning = yaml.safe_load(content)
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["uid"] == "watchkeeper-clickhouse"
    # As the read-only reader account, not the schema owner (wk_writer).
    assert source["jsonData"] == {
        "host": "clickhouse.db.svc", "port": 8443, "protocol": "http", "secure": True,
        "username": "wk_sql", "defaultDatabase": "wk_prod", "tlsSkipVerify": False}
    assert source["secureJsonData"] == {"password": "$__env{WATCHKEEPER_CLICKHOUSE_PASSWORD}"}
    # The same entry as `watchkeeper dashboards export` writes for the same server.
    try:
        from watchkeeper.dashboards.provisioning import datasource
    except ImportError:
        return
    exported: Any = datasource("https://clickhouse.db.svc:8443", "wk_prod", "wk_sql")
    (entry,) = exported["datasources"]
    for key in ("name", "type", "uid", "secureJsonData"):
        assert source[key] == entry[key], key
    for key, value in entry["jsonData"].items():
        assert source["jsonData"][key] == value, key
    default_source = _datasource(rendered["default"])
    assert default_source["jsonData"]["port"] == 8123
    assert default_source["jsonData"]["secure"] is False
    assert default_source["jsonData"]["username"] == "watchkeeper_reader"


def _datasource(docs: list[Doc]) -> Doc:
    config_map = one(docs, "ConfigMap", full("grafana-datasource"))
    source: Doc = yaml.safe_load(next(iter(config_map["data"].values())))["datasources"][0]
    return source


def test_grafana_datasource_user(helm: str, tmp_path: Path) -> None:
    """The reader's name unless grafana.datasource.username says otherwise; the schema owner
    only with the reader off. The password stays Grafana's environment variable."""
    off = _datasource(render(helm, {"clickhouse": {"username": "wk_writer",
                                                   "reader": {"enabled": False}}}, tmp_path))
    assert off["jsonData"]["username"] == "wk_writer"
    named = _datasource(render(helm, {"grafana": {"datasource": {
        "username": "grafana_ro", "passwordEnv": "GRAFANA_CH_PASSWORD"}}}, tmp_path))
    assert named["jsonData"]["username"] == "grafana_ro"
    assert named["secureJsonData"] == {"password": "$__env{GRAFANA_CH_PASSWORD}"}


def test_grafana_dashboards_come_from_the_chart_files(helm: str, tmp_path: Path) -> None:
    chart = tmp_path / "watchkeeper"
    shutil.copytree(CHART, chart)
    for old in (chart / "dashboards").glob("*.json"):
        old.unlink()
    docs = render(helm, None, tmp_path, chart=chart)
    assert not [d for d in by_kind(docs, "ConfigMap")
                if "grafana_dashboard" in d["metadata"]["labels"]], "no JSON, no ConfigMap"
    board = {"uid": "wk-test", "title": "Test · board", "panels": [{"id": 1, "type": "stat"}]}
    (chart / "dashboards" / "wk-test.json").write_text(json.dumps(board, indent=2) + "\n")
    docs = render(helm, None, tmp_path, chart=chart)
    config_map = one(docs, "ConfigMap", full("grafana-dashboards"))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Watchkeeper"
    assert config_map["data"] == {"wk-test.json": json.dumps(board, indent=2) + "\n"}
    # The chart as it is ships every dashboard JSON it holds, byte for byte.
    shipped = sorted((CHART / "dashboards").glob("*.json"))
    docs = render(helm, None, tmp_path)
    boards = [d for d in by_kind(docs, "ConfigMap")
              if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    if shipped:
        (real,) = boards
        assert real["data"] == {p.name: p.read_text() for p in shipped}
        for content in real["data"].values():
            json.loads(content)
    else:
        assert boards == []


@pytest.mark.parametrize("name", ["default", "everything", "existing-secrets", "example-app"])
def test_notes_render(helm: str, tmp_path: Path, name: str) -> None:
    """NOTES.txt renders only on install, against a cluster: here it goes through `tpl` in a
    copy of the chart, with the same values."""
    chart = tmp_path / "watchkeeper"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    notes = one(render(helm, VALUE_SETS[name], tmp_path, chart=chart), "ConfigMap",
                "notes")["data"]["notes"]
    assert "Bus:   kafka://" in notes
    assert 'include "watchkeeper.sidecarContainer"' in notes
    assert ("example-app" in notes) == VALUE_SETS[name].get("exampleApp", {}).get(
        "enabled", False)
    for value in SECRET_VALUES.values():
        assert value not in notes
    # Where Grafana's password and the API token are (the chart's Secret unless existing).
    api, reader = ((("wk-api", "token"), ("clickhouse-reader", "password"))
                   if name == "existing-secrets" else
                   ((full(""), "api-token"), (full(""), "clickhouse-reader-password")))
    assert f"key {api[1]} of Secret {api[0]}" in notes
    reader_user = VALUE_SETS[name].get("clickhouse", {}).get("reader", {}).get(
        "username", "watchkeeper_reader")
    assert f"as user {reader_user}." in notes
    assert (f"WATCHKEEPER_CLICKHOUSE_PASSWORD set from key {reader[1]} of Secret {reader[0]}"
            in notes)


@pytest.mark.parametrize(("values", "complaint"), [
    ({"watch": {"device": "tpu"}}, "/watch/device"),
    ({"watch": {"precision": "int8"}}, "/watch/precision"),
    ({"watch": {"gpu": {"count": "two"}}}, "/watch/gpu/count"),
    ({"api": {"port": 70000}}, "/api/port"),
    ({"ingest": {"replicas": "many"}}, "/ingest/replicas"),
    ({"kafka": {"bootstrapServers": "kafka:9092"}}, "/kafka/bootstrapServers"),
    ({"kafka": {"securityProtocol": "SASL_SSL"}}, "/kafka/sasl"),
    ({"clickhouse": {"url": "clickhouse:8123"}}, "/clickhouse/url"),
    ({"sidecar": {"sampling": {"ratio": 1.5}}}, "/sidecar/sampling/ratio"),
    ({"sidecar": {"redaction": {"builtin": ["passport"]}}}, "/sidecar/redaction/builtin/0"),
    ({"config": {"sidecar": {"token": "inline-secret"}}}, "/config/sidecar/token"),
    ({"config": {"store": {"password": "inline-secret"}}}, "/config/store/password"),
    ({"config": {"bus": "memory://"}}, "/config/bus"),
    ({"config": {"unknown_section": {}}}, "unknown_section"),
    ({"secrets": {"apiToken": {"valu": "typo"}}}, "valu"),
    ({"secrets": {"clickhouseReaderPassword": {"valu": "typo"}}}, "valu"),
    ({"clickhouse": {"reader": {"username": "wk-reader; DROP"}}}, "/clickhouse/reader/username"),
    ({"clickhouse": {"reader": {"enabled": "yes"}}}, "/clickhouse/reader/enabled"),
    ({"clickhouse": {"reader": {"password": "inline"}}}, "password"),
    ({"query": {"maxThreads": 0}}, "/query/maxThreads"),
    ({"query": {"queueTimeoutS": 0}}, "/query/queueTimeoutS"),
    ({"query": {"maxRows": 100}}, "maxRows"),
    ({"config": {"store": {"reader_password": "inline-secret"}}},
     "/config/store/reader_password"),
    ({"config": {"store": {"reader_username": "other"}}}, "/config/store/reader_username"),
    ({"config": {"query": {"max_threads": 8}}}, "/config/query/max_threads"),
    ({"replicaCount": 2}, "replicaCount"),
])
def test_schema_rejects_bad_values(helm: str, tmp_path: Path, values: dict[str, Any],
                                   complaint: str) -> None:
    proc = template(helm, values, tmp_path=tmp_path)
    assert proc.returncode != 0, f"accepted {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert complaint in proc.stderr, proc.stderr


def test_schema_knows_the_agent_config() -> None:
    """The config keys values.schema.json names are fields of the agent's Settings, so the
    schema cannot drift from agent/config.py unnoticed."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    fields = Settings.model_fields
    for key, rule in config.items():
        assert key in fields, f"config.{key} is not a Settings field"
        section = fields[key].annotation
        for sub in rule.get("properties", {}):
            assert isinstance(section, type) and sub in section.model_fields, \
                f"config.{key}.{sub} is not a field of {section}"
    # Every section of the agent's config can be given (top-level scalars are chart-owned).
    assert set(fields) == set(config)


@pytest.mark.parametrize("native", [True, False])
def test_sidecar_template_in_an_app_chart(helm: str, tmp_path: Path, native: bool) -> None:
    """The pattern of docs/deploy.md: an app chart with this chart as a dependency (sidecar
    only) includes the sidecar container and volumes in its own Deployment: under
    initContainers as a native sidecar, or under containers for older clusters."""
    app = tmp_path / "llm-app"
    (app / "templates").mkdir(parents=True)
    shutil.copytree(CHART, app / "charts" / "watchkeeper")
    (app / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "llm-app", "version": "1.0.0",
        "dependencies": [{"name": "watchkeeper", "version": "0.1.0"}]}))
    (app / "values.yaml").write_text(yaml.safe_dump({"watchkeeper": {
        "ingest": {"enabled": False}, "watch": {"enabled": False},
        "schedule": {"enabled": False}, "migrate": {"enabled": False},
        "injector": {"enabled": False}, "sidecar": {"native": native},
        "grafana": {"datasource": {"enabled": False}, "dashboards": {"enabled": False},
                    "alerts": {"enabled": False}},
        "kafka": {"bootstrapServers": ["kafka.shared:9092"]}}}))
    (app / "templates" / "deployment.yaml").write_text(APP_DEPLOYMENT)
    docs = render(helm, None, tmp_path, chart=app)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [("ConfigMap", full("config")), ("Deployment", "llm-app"),
                     ("Secret", full("")), ("ServiceAccount", full(""))]
    deployment = one(docs, "Deployment", "llm-app")
    spec = deployment["spec"]["template"]["spec"]
    if native:
        assert [c["name"] for c in spec["containers"]] == ["vllm"]
        (sidecar,) = spec["initContainers"]
        assert sidecar["restartPolicy"] == "Always"
    else:
        assert [c["name"] for c in spec["containers"]] == ["vllm", "watchkeeper-sidecar"]
        assert "initContainers" not in spec
        sidecar = spec["containers"][1]
    for version in VALIDATE_VERSIONS + (() if native else (FLOOR_VERSION,)):
        kubernetes_validate.validate(deployment, version, strict=True)
    # The app pod sets no security context: the sidecar's own keeps it non-root.
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert sidecar["securityContext"]["runAsUser"] == 10001
    files = mounted_files(docs, spec, sidecar)  # the subchart's ConfigMap and Secret
    token = files["/etc/watchkeeper/secrets/sidecar-token"]
    assert len(token) >= 32
    app_env = {e["name"]: e for e in spec["containers"][0]["env"]}
    ref = app_env["WATCHKEEPER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert resolve_secret(docs, ref["name"], ref["key"]) == token
    assert yaml.safe_load(files["/etc/watchkeeper/config.yaml"])["bus"] == \
        "kafka://kafka.shared:9092"


APP_DEPLOYMENT = """\
{{- $wk := dict "Values" .Values.watchkeeper "Release" .Release
      "Chart" (dict "Name" "watchkeeper" "Version" "0.1.0" "AppVersion" "0.1.0") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm-app
spec:
  selector:
    matchLabels: {app: llm-app}
  template:
    metadata:
      labels: {app: llm-app}
    spec:
      {{- if .Values.watchkeeper.sidecar.native }}
      initContainers:
        {{- include "watchkeeper.sidecarContainer" $wk | nindent 8 }}
      {{- end }}
      containers:
        - name: vllm
          image: vllm/vllm-openai:latest
          env:
            {{- include "watchkeeper.appEnv" $wk | nindent 12 }}
        {{- if not .Values.watchkeeper.sidecar.native }}
        {{- include "watchkeeper.sidecarContainer" $wk | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "watchkeeper.sidecarVolumes" $wk | nindent 8 }}
"""


# -- the sidecar injector ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["default", "everything", "plain-sidecar"])
def test_injector_template_makes_valid_pods_whose_sidecar_loads_its_config(
        rendered: dict[str, list[Doc]], name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the chart tells the injector to add, added to a pod by the injector's own code:
    the pod is valid Kubernetes, and the sidecar's config (from its variable) loads with the
    agent's own load_settings, on loopback, so it needs no token from another namespace."""
    from watchkeeper.agent.inject.mutate import Scope, review
    from watchkeeper.agent.inject.template import load_template

    docs = rendered[name]
    template_file = tmp_path / "template.yaml"
    template_file.write_text(one(docs, "ConfigMap", full("injector"))["data"]["template.yaml"])
    template = load_template(template_file)
    assert template.native is (name != "plain-sidecar")
    app_pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "chat", "annotations": {"watchkeeper.io/inject": "true"}},
               "spec": {"containers": [{"name": "chat", "image": "chat:1"}]}}
    answer = review({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                     "request": {"uid": "1", "kind": {"kind": "Pod"}, "object": app_pod}},
                    template, Scope.POD)["response"]
    import jsonpatch
    patched = jsonpatch.apply_patch(app_pod, json.loads(base64.b64decode(answer["patch"])))
    for version in VALIDATE_VERSIONS + ((FLOOR_VERSION,) if not template.native else ()):
        kubernetes_validate.validate(patched, version, strict=True)
    containers = patched["spec"].get("initContainers", []) + patched["spec"]["containers"]
    sidecar = next(c for c in containers if c["name"] == "watchkeeper-sidecar")
    for variable in [n for n in os.environ if n.startswith("WATCHKEEPER_")]:
        monkeypatch.delenv(variable)
    for env in sidecar["env"]:
        if "valueFrom" in env:  # a Secret of the app's own namespace, never of the chart's
            ref = env["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) in {("watchkeeper-kafka", "kafka-sasl-password"),
                                                 ("watchkeeper-pseudonym-key", "pseudonym-key")}
            monkeypatch.setenv(env["name"], "from-the-app-namespace")
        else:
            monkeypatch.setenv(env["name"], env["value"])
    args = cli_parser().parse_args(sidecar["args"])
    assert args.command == "sidecar" and args.config == "env:WATCHKEEPER_CONFIG_YAML"
    settings = load_settings(args.config, data_dir=args.data_dir)
    assert settings.sidecar.host == settings.api.host == "127.0.0.1"
    require_token(settings.sidecar.host, settings.sidecar.token, "sidecar")
    require_token(settings.api.host, settings.api.token, "api")
    assert settings.bus == config_of(docs)["bus"]
    assert settings.sidecar.redaction.model_copy(update={"pseudonym_key": None}) == \
        Settings().sidecar.redaction.model_validate(config_of(docs)["sidecar"]["redaction"])
    if name == "everything":
        assert settings.kafka.sasl_password is not None
        assert settings.sidecar.redaction.pseudonym_key is not None
        assert settings.sidecar.sampling.ratio == 0.5
    # Probes run inside the container, against the loopback API.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = " ".join(sidecar[probe]["exec"]["command"])
        assert f"127.0.0.1:{settings.api.port}/readyz" in command
    volumes = {v["name"] for v in patched["spec"]["volumes"]}
    assert {m["name"] for m in sidecar["volumeMounts"]} <= volumes


def test_injector_is_registered_so_that_it_never_blocks_a_deploy(
        rendered: dict[str, list[Doc]]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    docs = rendered["default"]
    webhook = one(docs, "MutatingWebhookConfiguration", full("injector"))
    pods, namespaces = webhook["webhooks"]
    secret = one(docs, "Secret", full("injector-tls"))
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    host = f"{full('injector')}.{NAMESPACE}.svc"
    assert host in names.get_values_for_type(x509.DNSName)
    for hook, path in ((pods, "/mutate"), (namespaces, "/mutate/namespace")):
        assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["clientConfig"]["service"] == {"name": full("injector"),
                                                   "namespace": NAMESPACE, "path": path,
                                                   "port": 443}
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca.public_bytes(Encoding.PEM)
        assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""],
                                  "apiVersions": ["v1"], "resources": ["pods"],
                                  "scope": "Namespaced"}]
        assert {"key": "app.kubernetes.io/part-of", "operator": "NotIn",
                "values": ["watchkeeper"]} in hook["objectSelector"]["matchExpressions"]
    # The two webhooks never both see one pod: labelled namespaces go to the second only.
    assert pods["namespaceSelector"]["matchExpressions"][0]["values"] == ["enabled", "disabled"]
    assert namespaces["namespaceSelector"]["matchExpressions"][0] == {
        "key": "watchkeeper.io/inject", "operator": "In", "values": ["enabled"]}
    deployment = one(docs, "Deployment", full("injector"))
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "watchkeeper"  # never injects itself
    pdb = one(docs, "PodDisruptionBudget", full("injector"))
    assert pdb["spec"]["minAvailable"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = cli_parser().parse_args(container["args"])
    assert args.command == "injector"
    files = mounted_files(docs, deployment["spec"]["template"]["spec"], container)
    assert str(args.tls_cert) in files and str(args.tls_key) in files
    assert str(args.template) in files
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    service = one(docs, "Service", full("injector"))
    assert service["spec"]["ports"][0]["port"] == 443


def test_injector_certificate_from_cert_manager_when_the_cluster_has_it(
        helm: str, tmp_path: Path) -> None:
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                     "--kube-version", KUBE_VERSION, "--api-versions", "cert-manager.io/v1")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    certificate = one(docs, "Certificate", full("injector"))
    assert certificate["spec"]["secretName"] == full("injector-tls")
    assert one(docs, "Issuer", full("injector"))["spec"] == {"selfSigned": {}}
    assert not [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == full("injector-tls")]
    webhook = one(docs, "MutatingWebhookConfiguration", full("injector"))
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        f"{NAMESPACE}/{full('injector')}"
    assert all("caBundle" not in hook["clientConfig"] for hook in webhook["webhooks"])
    # forced off, the chart's own certificate is used even where cert-manager is served
    proc = _run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                     "--api-versions", "cert-manager.io/v1", "--set",
                     "injector.tls.certManager=false")
    assert proc.returncode == 0 and "kind: Certificate" not in proc.stdout


def test_native_sidecar_needs_kubernetes_1_29(helm: str) -> None:
    old = ("template", RELEASE, str(CHART), "--kube-version", "1.28.0")
    proc = _run_helm(helm, *old)
    assert proc.returncode != 0
    assert "sidecar.native needs Kubernetes 1.29 or newer" in proc.stderr
    assert _run_helm(helm, *old, "--set", "sidecar.native=false").returncode == 0
