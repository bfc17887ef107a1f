"""Bearer-token checks shared by every listener (OTLP/HTTP, OTLP/gRPC, the API), and the rule
that a listener reachable from outside the host has one."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time

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


class Sessions:
    """Browser sessions for the /ui pages of an API that has a token: the login form checks the
    token once and sets a cookie holding an expiry and its HMAC under a key this process drew
    at start, never the token itself. A restart, or the expiry, ends every session."""

    COOKIE = "wk_session"

    def __init__(self, ttl_s: int = 12 * 3600) -> None:
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)

    def _sign(self, expiry: int) -> str:
        return hmac.new(self._key, f"ui-session:{expiry}".encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl_s)
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, value: str | None, now: float | None = None) -> bool:
        if not value or value.count(".") != 1:
            return False
        expiry, signature = value.split(".")
        # a plausible epoch second only: a hostile cookie of thousands of digits is no int
        if not (expiry.isdigit() and len(expiry) <= 12) \
                or int(expiry) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(signature.encode(), self._sign(int(expiry)).encode())
