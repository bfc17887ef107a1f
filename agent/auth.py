"""Bearer-token checks shared by every listener (OTLP/HTTP, OTLP/gRPC, the API)."""

from __future__ import annotations

import hmac

from pydantic import SecretStr


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
