"""What happens to a finding, by service, attribute key and type (sidecar.redaction.policies):
masked as `[REDACTED:<type>]`, dropped with its attribute, or replaced by a pseudonym
`[<type>:<hex>]`, an HMAC-SHA256 of its canonical form under the configured key, so that the
same address gives the same token in every sample and joins on it still work while the
address cannot be recovered without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from watchkeeper.agent.config import RedactionAction, RedactionConfig, RedactionPolicy
from watchkeeper.agent.sidecar.redaction.text import Finding

PSEUDONYM_HEX = 12  # 48 bits: ids stay apart among millions of distinct values
RESOLVED_MAX = 4096  # (service, key) pairs remembered; attribute keys are few in practice


class Actions:
    """The actions for one attribute of one service: the first policy naming the type (or
    naming none) decides; none does, the default."""

    __slots__ = ("_by_kind", "_default", "_key", "_policies")

    def __init__(self, policies: list[RedactionPolicy], default: RedactionAction,
                 key: bytes) -> None:
        self._policies = policies
        self._default = default
        self._key = key
        self._by_kind: dict[str, RedactionAction] = {}

    def action(self, kind: str) -> RedactionAction:
        if kind not in self._by_kind:
            self._by_kind[kind] = next(
                (p.action for p in self._policies if not p.types or kind in p.types),
                self._default)
        return self._by_kind[kind]

    def replacement(self, finding: Finding) -> str:
        if self.action(finding.kind) == "pseudonymise":
            digest = hmac.new(self._key, f"{finding.kind}:{finding.value}".encode(
                errors="surrogatepass"), hashlib.sha256).hexdigest()
            return f"[{finding.kind}:{digest[:PSEUDONYM_HEX]}]"
        return f"[REDACTED:{finding.kind}]"


class Policy:
    def __init__(self, config: RedactionConfig) -> None:
        self._policies = config.policies
        self._default = config.action
        secret = config.pseudonym_key
        self._key = secret.get_secret_value().encode() if secret is not None else b""
        self._everywhere = Actions([], config.action, self._key)
        self._resolved: dict[tuple[str, str], Actions] = {}

    def actions(self, service: str, key: str) -> Actions:
        if not self._policies:
            return self._everywhere
        actions = self._resolved.get((service, key))
        if actions is None:
            if len(self._resolved) >= RESOLVED_MAX:
                self._resolved.clear()
            actions = self._resolved[service, key] = Actions(
                [p for p in self._policies if p.covers(service, key)], self._default, self._key)
        return actions
