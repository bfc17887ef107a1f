"""Redaction of sensitive text before anything leaves the pod. Regex rules over every string
value of span attributes, span events and log records; the number of redactions is
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
    """A pattern, and cheap tests that must pass before the pattern is worth running.

    `needs` lists substrings of which every match holds at least one, and `needs_digit` says a
    match may hold a digit instead: `in` finds a substring far faster than any regex scan, and
    most text holds no '@', no key prefix and, often, no digit. Text that passes goes through
    `gate`, a looser regex than the pattern. Skipping the scans that cannot match is what keeps
    redaction within the sidecar's budget; it never changes the result.
    """

    name: str
    regex: re.Pattern[str]
    gate: re.Pattern[str] | None = None
    needs: tuple[str, ...] = ()
    needs_digit: bool = False
    keep: Callable[[str], bool] | None = None  # a match to leave as it is (and not count)

    @property
    def marker(self) -> str:
        return f"[REDACTED:{self.name}]"

    def apply(self, text: str) -> tuple[str, int]:
        """Replace every match by the marker; returns the text and how many were replaced."""
        marker = self.marker
        keep = self.keep
        if keep is None:
            return self.regex.subn(lambda _: marker, text)
        replaced = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal replaced
            if keep(match.group()):
                return match.group()
            replaced += 1
            return marker

        return self.regex.sub(replace, text), replaced


def _rule(name: str, regex: str, gate: str | None = None, needs: tuple[str, ...] = (),
          needs_digit: bool = False, keep: Callable[[str], bool] | None = None) -> Rule:
    return Rule(name, re.compile(regex), re.compile(gate) if gate else None, needs,
                needs_digit, keep)


def _not_a_card(number: str) -> bool:
    """A long number that fails the Luhn check is an order or account number, not a card."""
    return not luhn_ok(re.sub(r"\D", "", number))


# Applied in this order: tokens before e-mail, cards before the looser phone shape. `needs`
# are the literals each pattern starts with (or must contain); the IP gate starts with a
# literal '.' or ':' so the regex engine can skip to them.
BUILTIN: dict[str, Rule] = {r.name: r for r in (
    _rule("bearer", r"\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{8,}=*", needs=("Bearer", "bearer")),
    _rule("api_key", r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_]{2,20}-)?[A-Za-z0-9_-]{16,}"
                     r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b"
                     r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b",
          needs=("sk-", "pk-", "rk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xoxa-",
                 "xoxb-", "xoxp-", "xoxr-", "xoxs-", "AIza")),
    _rule("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", needs=("@",)),
    _rule("card", r"\b(?:\d[ -]?){12,18}\d\b", r"\d{4}[ -]?\d{4}", needs_digit=True,
          keep=_not_a_card),
    _rule("ip", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
                r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
          r"\.\d{1,3}\.\d|:[0-9a-fA-F]{1,4}:", needs=(":",), needs_digit=True),
    _rule("phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
                   r"\d{3,4}[ .-]?\d{3,4}\b", r"\d{2}\)?[ .-]?\d{3}", needs_digit=True),
)}
_DIGIT = re.compile(r"\d")


def has_digit(text: str) -> bool:
    """Whether `\\d` matches anywhere: ten `in` scans for ASCII text, the regex otherwise
    (`\\d` also matches non-ASCII decimal digits)."""
    if text.isascii():
        return any(d in text for d in "0123456789")
    return _DIGIT.search(text) is not None


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
        # A custom pattern named "card" gets the Luhn check too, as the builtin one does.
        rules += [_rule(p.name, p.regex, keep=_not_a_card if p.name == "card" else None)
                  for p in config.patterns]
        self.enabled = config.enabled and bool(rules)
        self._rules = rules
        self._skip = frozenset(config.skip_attributes)

    def redact(self, text: str) -> tuple[str, int]:
        if not self.enabled:
            return text, 0
        count = 0
        digit: bool | None = None  # has_digit(text), worked out once when a rule asks
        for rule in self._rules:
            if (rule.needs or rule.needs_digit) and not any(n in text for n in rule.needs):
                if not rule.needs_digit:
                    continue
                if digit is None:
                    digit = has_digit(text)
                if not digit:
                    continue
            if rule.gate is not None and rule.gate.search(text) is None:
                continue
            text, n = rule.apply(text)
            if n:
                count += n
                digit = None  # the text changed
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
        n = 0
        for kv in kvs:
            if kv.key not in self._skip:
                n += self._value(kv.value)
        return n

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
