"""Bearer-token checks shared by every listener (OTLP/HTTP, OTLP/gRPC, the API), and the rule
that a listener reachable from outside the host has one."""

from __future__ import annotations

import hmac
import ipaddress

from pydantic import SecretStr

from watchkeeper.agent.config import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def require_token(host: str, token: SecretStr | None, section: str) -> None:
    """A listener bound beyond loopback without a token would serve anyone who can reach the
    port: refuse to start rather than guess (no token is generated behind the operator's back)."""
    if token is None and not is_loopback(host):
        env = f"WATCHKEEPER_{section.upper()}__TOKEN_FILE"
        raise ConfigError(f"{section}.host: {host} is reachable from other hosts, so "
                          f"{section}.token is required (set {section}.token_file or {env} to a "
                          f"file holding it), or bind 127.0.0.1")


class TokenCheck:
    def __init__(self, token: SecretStr | None) -> None:
        self._expected = token.get_secret_value().encode() if token else None

    @property
    def required(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: str | None) -> bool:
        if self._expected is None:
            return True
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(authorization[7:].strip().encode(), self._expected)
