"""One admission decision: an AdmissionReview (admission.k8s.io/v1) for a Pod in, the same
review with a response out: allowed, with a JSON patch that adds the sidecar where the pod asks
for it, or denied with the reason when its annotations are malformed.

Pure and quick (no I/O), so the webhook answers well within the API server's timeout, and the
same pod always gets the same patch: a pod that already has the sidecar gets none (a re-sent or
re-admitted pod is unchanged)."""

from __future__ import annotations

import base64
import copy
import json
import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from watchkeeper.agent.inject.template import SIDECAR_NAME, InjectionTemplate

PREFIX = "watchkeeper.io/"
INJECT = PREFIX + "inject"          # "true" on a pod (or "false" in a labelled namespace)
STATUS = PREFIX + "status"          # set to "injected" on the pods it changed
OWN_LABEL = ("app.kubernetes.io/part-of", "watchkeeper")  # Watchkeeper's own pods: never touched

# Kubernetes' resource.Quantity grammar (apimachinery's quantity.go), checked here so that a typo
# is answered with the annotation's name rather than a pod validation error about a container
# the user never wrote.
QUANTITY = r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY, max_length=64)]


class Scope(Enum):
    """Which webhook of the configuration called: pods opt in one by one by annotation, or a
    labelled namespace opts all its pods in (each may still opt out)."""

    POD = "pod"
    NAMESPACE = "namespace"


class _Named(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""


class _Container(_Named):
    env: list[_Named] | None = None


class _PodSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    containers: list[_Container] = Field(default_factory=list)
    initContainers: list[_Container] | None = None
    volumes: list[_Named] | None = None


class _PodMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generateName: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[dict[str, Any]] | None = None


class _Pod(BaseModel):
    """The parts of a Pod the patch reads, checked before it is read: the API server sends
    valid pods, anyone else reaching the port gets a 400 for a malformed one."""

    model_config = ConfigDict(extra="allow")

    metadata: _PodMeta = Field(default_factory=_PodMeta)
    spec: _PodSpec = Field(default_factory=_PodSpec)


class AdmissionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: str
    kind: dict[str, str] = Field(default_factory=dict)
    namespace: str = ""
    operation: str = "CREATE"
    object: dict[str, Any] | None = None


class AdmissionReview(BaseModel):
    model_config = ConfigDict(extra="ignore")

    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class PodOverrides(BaseModel):
    """What one pod's annotations may change. Redaction can be made to drop rather than mask,
    never switched off: that is the chart's (the security team's) decision."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_name: str | None = Field(None, alias=PREFIX + "service-name", min_length=1,
                                     max_length=253)
    protocol: Literal["http/protobuf", "grpc"] | None = Field(None, alias=PREFIX + "otlp-protocol")
    sampling_ratio: float | None = Field(None, alias=PREFIX + "sampling-ratio", ge=0.0, le=1.0)
    redaction_action: Literal["mask", "drop"] | None = Field(
        None, alias=PREFIX + "redaction-action")
    cpu_request: Quantity | None = Field(None, alias=PREFIX + "cpu-request")
    cpu_limit: Quantity | None = Field(None, alias=PREFIX + "cpu-limit")
    memory_request: Quantity | None = Field(None, alias=PREFIX + "memory-request")
    memory_limit: Quantity | None = Field(None, alias=PREFIX + "memory-limit")

    @classmethod
    def from_annotations(cls, annotations: dict[str, str]) -> PodOverrides:
        known = {f.alias for f in cls.model_fields.values() if f.alias} | {INJECT, STATUS}
        unknown = sorted(k for k in annotations if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise ValueError(f"unknown annotation {unknown[0]} (known: {', '.join(sorted(known))})")
        return cls.model_validate({k: v for k, v in annotations.items()
                                   if k.startswith(PREFIX) and k not in (INJECT, STATUS)})


class Denied(Exception):
    """A pod the webhook refuses, with the reason the user sees in `kubectl apply`."""


def review(body: dict[str, Any], template: InjectionTemplate, scope: Scope) -> dict[str, Any]:
    """The AdmissionReview to answer with. A body that is not an AdmissionReview raises
    ValidationError (the server answers 400: the API server never sends one)."""
    request = AdmissionReview.model_validate(body).request
    if request.object is not None and request.kind.get("kind") == "Pod":
        _Pod.model_validate(request.object)
    response: dict[str, Any] = {"uid": request.uid, "allowed": True}
    try:
        patch = pod_patch(request, template, scope)
    except Denied as exc:
        response.update(allowed=False, status={"code": 400, "reason": "BadRequest",
                                               "message": f"watchkeeper injector: {exc}"})
    else:
        if patch:
            response.update(patchType="JSONPatch",
                            patch=base64.b64encode(json.dumps(patch).encode()).decode())
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def pod_patch(request: AdmissionRequest, template: InjectionTemplate,
              scope: Scope) -> list[dict[str, Any]]:
    """The JSON patch (RFC 6902) for one pod, empty when it is not to be injected."""
    pod = request.object
    if request.kind.get("kind") != "Pod" or request.operation != "CREATE" or not pod:
        return []
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    annotations: dict[str, str] = meta.get("annotations") or {}
    if not wants_sidecar(meta, annotations, scope) or has_sidecar(spec, annotations):
        return []
    try:
        overrides = PodOverrides.from_annotations(annotations)
    except ValidationError as exc:
        raise Denied("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    except ValueError as exc:
        raise Denied(str(exc)) from None
    taken = {v.get("name") for v in spec.get("volumes") or []} & {
        v.get("name") for v in template.volumes}
    if taken:
        raise Denied(f"the pod already has a volume named {sorted(taken)[0]}, which the "
                     "sidecar needs; rename it or set watchkeeper.io/inject: \"false\"")

    ops: list[dict[str, Any]] = []
    apps = list(spec.get("containers") or [])  # before a plain-container sidecar joins them
    sidecar = sidecar_container(template, overrides)
    if template.native:
        _insert(ops, spec, "initContainers", sidecar, first=True)
    else:
        _insert(ops, spec, "containers", sidecar)
    for volume in template.volumes:
        _insert(ops, spec, "volumes", volume)
    protocol = overrides.protocol or template.protocol
    port = template.otlp_grpc_port if protocol == "grpc" else template.otlp_http_port
    app_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": overrides.service_name or service_name(meta, spec),
    }
    for index, container in enumerate(apps):
        present = {e.get("name") for e in container.get("env") or []}
        for name, value in app_env.items():
            if name not in present:
                _insert(ops, container, "env", {"name": name, "value": value},
                        path=f"/spec/containers/{index}/env")
    if "annotations" not in meta:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    ops.append({"op": "add", "path": "/metadata/annotations/" + _escape(STATUS),
                "value": "injected"})
    return ops


def wants_sidecar(meta: dict[str, Any], annotations: dict[str, str], scope: Scope) -> bool:
    labels = meta.get("labels") or {}
    if labels.get(OWN_LABEL[0]) == OWN_LABEL[1]:
        return False
    choice = annotations.get(INJECT, "").strip().lower()
    if scope is Scope.NAMESPACE:
        return choice != "false"
    return choice == "true"


def has_sidecar(spec: dict[str, Any], annotations: dict[str, str]) -> bool:
    names = {c.get("name") for c in (spec.get("initContainers") or []) + (
        spec.get("containers") or [])}
    return SIDECAR_NAME in names or annotations.get(STATUS) == "injected"


def sidecar_container(template: InjectionTemplate, overrides: PodOverrides) -> dict[str, Any]:
    container = copy.deepcopy(template.container)
    if template.native:
        container["restartPolicy"] = "Always"
    env = container.setdefault("env", [])
    if overrides.sampling_ratio is not None:
        env.append({"name": "WATCHKEEPER_SIDECAR__SAMPLING__RATIO",
                    "value": repr(overrides.sampling_ratio)})
    if overrides.redaction_action is not None:
        env.append({"name": "WATCHKEEPER_SIDECAR__REDACTION__ACTION",
                    "value": overrides.redaction_action})
    resources = container.setdefault("resources", {})
    for kind, resource, value in (("requests", "cpu", overrides.cpu_request),
                                  ("limits", "cpu", overrides.cpu_limit),
                                  ("requests", "memory", overrides.memory_request),
                                  ("limits", "memory", overrides.memory_limit)):
        if value is not None:
            resources.setdefault(kind, {})[resource] = value
    return container


# The hash the ReplicaSet controller appends to a Deployment's name (pod-template-hash).
_RS_SUFFIX = re.compile(r"-[a-z0-9]{1,10}$")


def service_name(meta: dict[str, Any], spec: dict[str, Any]) -> str:
    """What OTEL_SERVICE_NAME defaults to, in the order the OpenTelemetry Operator uses: the
    app.kubernetes.io/name label, the `app` label, the owning workload, the pod's name."""
    labels = meta.get("labels") or {}
    for key in ("app.kubernetes.io/name", "app"):
        if labels.get(key):
            return str(labels[key])
    for owner in meta.get("ownerReferences") or []:
        name = str(owner.get("name") or "")
        if owner.get("kind") == "ReplicaSet" and name:
            template_hash = labels.get("pod-template-hash")
            if template_hash and name.endswith("-" + template_hash):
                return name[: -len(template_hash) - 1]
            return _RS_SUFFIX.sub("", name)
        if name:
            return name
    if meta.get("name"):
        return str(meta["name"])
    if meta.get("generateName"):
        return str(meta["generateName"]).rstrip("-")
    containers = spec.get("containers") or [{}]
    return str(containers[0].get("name") or "unknown_service")


def _insert(ops: list[dict[str, Any]], parent: dict[str, Any], key: str, value: Any, *,
            first: bool = False, path: str | None = None) -> None:
    """Add one item to a list of the pod, creating the list when the pod has none (a JSON
    patch cannot append to a list that does not exist)."""
    path = path or f"/spec/{key}"
    existing = parent.get(key)
    if existing is None:
        ops.append({"op": "add", "path": path, "value": [value]})
        parent[key] = [value]  # later items go to the list this patch created
        return
    ops.append({"op": "add", "path": f"{path}/0" if first else f"{path}/-", "value": value})
    if first:
        existing.insert(0, value)
    else:
        existing.append(value)


def _escape(key: str) -> str:
    """A map key as a JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
