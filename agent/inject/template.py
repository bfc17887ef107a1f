"""What the injector adds to a pod, rendered by the Helm chart from the same values as the
sidecar of the named templates, so that both ways of deploying give the same sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watchkeeper.agent.config import ConfigError

SIDECAR_NAME = "watchkeeper-sidecar"
# The injected sidecar reads its config from this variable (`--config env:NAME`): a pod cannot
# mount a ConfigMap of the injector's namespace.
CONFIG_ENV = "WATCHKEEPER_CONFIG_YAML"


class InjectionTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    native: bool = Field(True, description="an init container with restartPolicy Always "
                                           "(Kubernetes >= 1.29); false: a plain container")
    container: dict[str, Any] = Field(description="the sidecar container, as the pod spec has it")
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    otlp_http_port: int = Field(4318, ge=1, le=65535)
    otlp_grpc_port: int = Field(4317, ge=1, le=65535)
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"

    @field_validator("container")
    @classmethod
    def _named(cls, container: dict[str, Any]) -> dict[str, Any]:
        if container.get("name") != SIDECAR_NAME:
            raise ValueError(f"the sidecar container must be named {SIDECAR_NAME}")
        return container


def load_template(path: Path) -> InjectionTemplate:
    try:
        return InjectionTemplate.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise ConfigError(f"injection template {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"injection template {path}: {exc}") from None
