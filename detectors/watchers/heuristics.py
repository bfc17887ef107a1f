"""Cheap checks that need no model: refusals, PII left in completions, empty or cut-off answers.
They run on every sample, on the CPU, in microseconds."""

from __future__ import annotations

import re
from collections.abc import Sequence

from watchkeeper.detectors.watchers.base import Item, WatcherSpec
from watchkeeper.detectors.watchers.options import HeuristicsOptions

REFUSAL = re.compile(
    r"\b(I\s*(?:am|'m)\s*(?:sorry|afraid)[^.]{0,40}\b(?:can(?:no|')t|unable|not able)"
    r"|I\s*(?:can(?:no|')t|won't|will not|am unable to|'m unable to|am not able to)"
    r"\s+(?:help|assist|provide|share|do|comply|answer|give)"
    r"|as an (?:AI|artificial intelligence)(?: language model)?,? I\b"
    r"|I must (?:decline|refuse))",
    re.IGNORECASE,
)
# Raw PII in a completion: the sidecar redacts what it recognises, so a completion that still
# carries an address or a number is a leak worth a look; a redaction marker says one was caught.
PII = re.compile(
    r"\[REDACTED:[a-z_]+\]|\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"
    r"|\b(?:\d[ -]?){12,18}\d\b|\+?\d{1,3}[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b"
)
CUT_OFF = frozenset({"length", "max_tokens", "content_filter"})


class Heuristics:
    labels = ("refusal", "pii", "empty", "truncated")
    device = "cpu"
    max_batch = 4096

    def __init__(self, spec: WatcherSpec, options: HeuristicsOptions | None = None) -> None:
        if options is None:
            HeuristicsOptions.of(spec)  # nothing to set, but an unknown option still fails
        self.name = spec.name
        self.version = "1"

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        out = []
        for item in items:
            text = item.text.strip()
            reasons = set(item.meta.get("finish_reasons") or ())
            out.append({
                "refusal": float(bool(REFUSAL.search(text))),
                "pii": float(bool(PII.search(text))),
                "empty": float(item.field != "prompt" and not text),
                "truncated": float(bool(reasons & CUT_OFF)),
            })
        return out
