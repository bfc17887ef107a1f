"""Redaction of sensitive text before anything leaves the pod. One alternation regex over every
string value of span attributes, span events and log records; the number of redactions is
written onto each span and log record as `watchkeeper.redactions`, so it travels with the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from watchkeeper.agent.config import RedactionConfig

REDACTIONS_KEY = "watchkeeper.redactions"


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern and a cheap test that must pass before the pattern is worth running: most
    text holds no '@', no long digit run, no key prefix, and skipping those scans is what keeps
    redaction within the sidecar's budget."""

    name: str
    regex: re.Pattern[str]
    gate: re.Pattern[str] | None = None

    def apply(self, text: str, replace: Callable[[re.Match[str]], str]) -> str:
        if self.gate is not None and self.gate.search(text) is None:
            return text
        return self.regex.sub(replace, text)


def _rule(name: str, regex: str, gate: str | None) -> Rule:
    return Rule(name, re.compile(regex), re.compile(gate) if gate else None)


# Applied in this order: tokens before e-mail, cards before the looser phone shape.
BUILTIN: dict[str, Rule] = {r.name: r for r in (
    _rule("bearer", r"\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{8,}=*", r"earer"),
    _rule("api_key", r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_]{2,20}-)?[A-Za-z0-9_-]{16,}"
                     r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b"
                     r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b",
          r"[sprk]k-|AKIA|gh[pousr]_|xox[abprs]-|AIza"),
    _rule("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", r"@"),
    _rule("card", r"\b(?:\d[ -]?){12,18}\d\b", r"\d{4}[ -]?\d{4}"),
    _rule("ip", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
                r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
          r"\d\.\d{1,3}\.\d|[0-9a-fA-F]:[0-9a-fA-F]{1,4}:"),
    _rule("phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
                   r"\d{3,4}[ .-]?\d{3,4}\b", r"\d{2}\)?[ .-]?\d{3}"),
)}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        rules = [rule for name, rule in BUILTIN.items() if name in config.builtin]
        rules += [_rule(p.name, p.regex, None) for p in config.patterns]
        self.enabled = config.enabled and bool(rules)
        self._rules = rules
        self._skip = frozenset(config.skip_attributes)

    def redact(self, text: str) -> tuple[str, int]:
        if not self.enabled:
            return text, 0
        count = 0
        for rule in self._rules:

            def replace(match: re.Match[str], kind: str = rule.name) -> str:
                nonlocal count
                if kind == "card" and not luhn_ok(re.sub(r"\D", "", match.group())):
                    return match.group()  # a long number that is not a card number
                count += 1
                return f"[REDACTED:{kind}]"

            text = rule.apply(text, replace)
        return text, count

    def _value(self, value: AnyValue) -> int:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text, n = self.redact(value.string_value)
            if n:
                value.string_value = text
            return n
        if kind == "array_value":
            return sum(self._value(v) for v in value.array_value.values)
        if kind == "kvlist_value":
            return self._attributes(value.kvlist_value.values)
        return 0

    def _attributes(self, kvs: Iterable[KeyValue]) -> int:
        return sum(self._value(kv.value) for kv in kvs if kv.key not in self._skip)

    def traces(self, request: ExportTraceServiceRequest) -> int:
        """Redact in place; returns the total count."""
        if not self.enabled:
            return 0
        total = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    n = self._attributes(span.attributes)
                    n += sum(self._attributes(e.attributes) for e in span.events)
                    if n:
                        _add_count(span.attributes, n)
                    total += n
        return total

    def logs(self, request: ExportLogsServiceRequest) -> int:
        if not self.enabled:
            return 0
        total = 0
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    n = self._attributes(record.attributes) + self._value(record.body)
                    if n:
                        _add_count(record.attributes, n)
                    total += n
        return total


def _add_count(attributes: Iterable[KeyValue], n: int) -> None:
    kvs = attributes
    for kv in kvs:
        if kv.key == REDACTIONS_KEY:
            kv.value.int_value += n
            return
    kv = kvs.add()  # type: ignore[attr-defined]
    kv.key = REDACTIONS_KEY
    kv.value.int_value = n
