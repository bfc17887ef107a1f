"""One config model: file, then env, then flags; a bad value fails at start naming the field."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from watchkeeper.agent.config import ConfigError, load_settings


def test_defaults_are_the_embedded_default() -> None:
    settings = load_settings()
    assert settings.bus == "embedded://"
    assert settings.store_url.startswith("chdb://") and settings.store_url.endswith("clickhouse")
    assert (settings.sidecar.otlp_http_port, settings.sidecar.otlp_grpc_port) == (4318, 4317)


def test_precedence_file_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wk.yaml"
    path.write_text("sidecar:\n  otlp_http_port: 1111\n  otlp_grpc_port: 2222\n"
                    "store:\n  retention_days: 7\n")
    monkeypatch.setenv("WATCHKEEPER_SIDECAR__OTLP_GRPC_PORT", "3333")
    settings = load_settings(path, **{"api.port": 4444})
    assert settings.sidecar.otlp_http_port == 1111  # file
    assert settings.sidecar.otlp_grpc_port == 3333  # env over file
    assert settings.api.port == 4444  # flag
    assert settings.store.retention_days == 7


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("sidecar:\n  otlp_http_port: 70000\n", "sidecar.otlp_http_port: Input should be less than"),
    ("sidecar:\n  tokn: x\n", "sidecar.tokn: Extra inputs are not permitted"),
    ("bus: rabbit://x\n", "bus: Value error, must be embedded://"),
    ("store:\n  url: ftp://x\n", "store.url: Value error, must start with chdb://"),
    ("store:\n  database: 'a; DROP'\n", "store.database: Value error, must be a plain identifier"),
    ("sidecar:\n  redaction:\n    patterns: [{name: x, regex: '('}]\n",
     "sidecar.redaction.patterns.0.regex: Value error, not a valid regular expression"),
    ("sidecar:\n  sampling:\n    ratio: 2\n", "sidecar.sampling.ratio: Input should be less than"),
    ("sidecar: [1\n", "not valid YAML"),
])
def test_bad_values_name_the_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as failure:
        load_settings(path)
    assert message in str(failure.value)


def test_native_on_requires_the_compiled_package(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("ingest:\n  native: on\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "watchkeeper_native" else real(name, *a))
    with pytest.raises(ConfigError, match=r"ingest\.native: Value error, the watchkeeper-native "
                                          "package is not installed"):
        load_settings(path)  # (YAML reads a bare `on` as true: taken as "on")
    path.write_text("ingest:\n  native: off\n")
    assert load_settings(path).ingest.native == "off"
    with pytest.raises(ConfigError, match=r"ingest\.native: Input should be 'auto', 'on' or"):
        load_settings(None, **{"ingest.native": "maybe"})


def test_secrets_from_files_and_never_printed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    settings = load_settings(None, **{"sidecar.token_file": str(token)})
    assert settings.sidecar.token is not None
    assert settings.sidecar.token.get_secret_value() == "tok-123"
    assert "tok-123" not in repr(settings) and "tok-123" not in str(settings.model_dump())
    with pytest.raises(ConfigError, match="No such file"):
        load_settings(None, **{"api.token_file": str(tmp_path / "missing")})


def test_cli_exits_2_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("ingest:\n  batch_max_rows: 0\n")
    done = subprocess.run([sys.executable, "-m", "watchkeeper.agent", "--config", str(path),
                           "up", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ingest.batch_max_rows: Input should be greater than 0" in done.stderr


def test_listeners_beyond_loopback_need_a_token(tmp_path: Path) -> None:
    """The process refuses to start, before binding anything, and says which setting to add."""
    cfg = tmp_path / "wk.yaml"
    cfg.write_text("api:\n  host: 0.0.0.0\n")
    done = subprocess.run([sys.executable, "-m", "watchkeeper.agent", "--config", str(cfg), "up",
                           "--data-dir", str(tmp_path), "--api-port", "0",
                           "--otlp-http-port", "0", "--otlp-grpc-port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "api.host: 0.0.0.0 is reachable from other hosts, so api.token is required" \
        in done.stderr
    assert "WATCHKEEPER_API__TOKEN_FILE" in done.stderr


def test_sidecar_beyond_loopback_needs_a_token_and_loopback_does_not() -> None:
    from watchkeeper.agent.auth import is_loopback, require_token

    with pytest.raises(ConfigError, match=r"sidecar\.token is required"):
        require_token("0.0.0.0", None, "sidecar")
    with pytest.raises(ConfigError):
        require_token("agent.internal", None, "sidecar")  # a name may resolve anywhere
    require_token("0.0.0.0", SecretStr("t"), "sidecar")
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1"))
