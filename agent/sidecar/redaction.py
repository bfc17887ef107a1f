"""Redaction of sensitive text before anything leaves the pod. Regex rules over every string
value of span attributes, span events and log records; the number of redactions is
written onto each span and log record as `watchkeeper.redactions`, so it travels with the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from watchkeeper.agent.config import RedactionConfig
from watchkeeper.agent.sidecar.signals import LOGS, TRACES, Signal, items

REDACTIONS_KEY = "watchkeeper.redactions"


Quick = Callable[[str, bytes], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern, and cheap tests that must pass before the pattern is worth running.

    `quick(text, digit_shape(text))` is a test of ASCII text that every match of the pattern
    passes, made of `in` searches (or a regex the engine can skip through by its literal
    first characters), which cost far less than a regex scan; `gate` is a looser
    regex than the pattern, for any text. Most text holds no '@', no key prefix and no long run
    of digits: skipping the scans that cannot match is what keeps redaction within the
    sidecar's budget, and it never changes the result.
    """

    name: str
    regex: re.Pattern[str]
    gate: re.Pattern[str] | None = None
    quick: Quick | None = None
    keep: Callable[[str], bool] | None = None  # a match to leave as it is (and not count)

    def apply(self, text: str) -> tuple[str, int]:
        """Replace every match by the marker; returns the text and how many were replaced."""
        marker = f"[REDACTED:{self.name}]"
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


def _rule(name: str, regex: str, gate: str | None = None, quick: Quick | None = None,
          keep: Callable[[str], bool] | None = None) -> Rule:
    return Rule(name, re.compile(regex), re.compile(gate) if gate else None, quick, keep)


# The digit shape of ASCII text: each digit becomes '0', '.' stays, the other separators that
# card and phone numbers use (space - ( )) become 's', anything else 'x'. One C-speed pass;
# then `b"000s000" in shape` answers what `\d{3}[ -]\d{3}` would, without a regex scan.
_SHAPE = bytes(ord("0") if 48 <= b <= 57 else b if b == ord(".") else
               ord("s") if chr(b) in " -()" else ord("x") for b in range(256))


# Below this length the gates alone are cheaper than the shape plus the quick tests.
QUICK_MIN_CHARS = 64


def digit_shape(text: str) -> bytes:
    """The digit shape of ASCII text (the caller checks `text.isascii()`)."""
    return text.encode("ascii").translate(_SHAPE)


def _shape(text: str) -> bytes | None:
    """The shape for the quick tests, or None: short text, or non-ASCII text (where \\d
    matches more digits than 0-9), goes straight to the gates."""
    return digit_shape(text) if len(text) >= QUICK_MIN_CHARS and text.isascii() else None


# The quick tests, each implied by its pattern. Every branch of the api_key prefix regex starts
# with a literal, so the engine jumps from one k, A, g or x to the next instead of trying
# every position; likewise to ':' for an IPv6 address, which holds ':' 1-4 hex digits ':'.
_API_KEY_PREFIX = re.compile(r"k-|AKIA|gh[pousr]_|xox[abprs]-|AIza")
_IPV6_PAIR = re.compile(r":[0-9a-fA-F]{1,4}:")


def _bearer(text: str, shape: bytes) -> bool:
    return "earer" in text


def _api_key(text: str, shape: bytes) -> bool:
    return _API_KEY_PREFIX.search(text) is not None


def _email(text: str, shape: bytes) -> bool:
    return "@" in text


def _card(text: str, shape: bytes) -> bool:
    """13-19 digits hold 4 digits, maybe a space or dash, 4 digits."""
    return b"00000000" in shape or b"0000s0000" in shape


def _ip(text: str, shape: bytes) -> bool:
    """An IPv4 address has an inner octet between dots; for IPv6 see _IPV6_PAIR."""
    return (b".0.0" in shape or b".00.0" in shape or b".000.0" in shape
            or _IPV6_PAIR.search(text) is not None)


def _phone(text: str, shape: bytes) -> bool:
    """A phone number ends in 3-4 digits, maybe a separator, 3-4 digits."""
    return b"000000" in shape or b"000s000" in shape or b"000.000" in shape


def _not_a_card(number: str) -> bool:
    """A long number that fails the Luhn check is an order or account number, not a card."""
    return not luhn_ok(re.sub(r"\D", "", number))


# Applied in this order: tokens before e-mail, cards before the looser phone shape.
BUILTIN: dict[str, Rule] = {r.name: r for r in (
    _rule("bearer", r"\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{8,}=*", r"earer", _bearer),
    _rule("api_key", r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_]{2,20}-)?[A-Za-z0-9_-]{16,}"
                     r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b"
                     r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b",
          r"[sprk]k-|AKIA|gh[pousr]_|xox[abprs]-|AIza", _api_key),
    _rule("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", r"@", _email),
    _rule("card", r"\b(?:\d[ -]?){12,18}\d\b", r"\d{4}[ -]?\d{4}", _card, _not_a_card),
    _rule("ip", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
                r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
          r"\d\.\d{1,3}\.\d|[0-9a-fA-F]:[0-9a-fA-F]{1,4}:", _ip),
    _rule("phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
                   r"\d{3,4}[ .-]?\d{3,4}\b", r"\d{2}\)?[ .-]?\d{3}", _phone),
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
        shape = _shape(text)
        for rule in self._rules:
            if shape is not None and rule.quick is not None and not rule.quick(text, shape):
                continue
            if rule.gate is not None and rule.gate.search(text) is None:
                continue
            text, n = rule.apply(text)
            if n:
                count += n
                shape = _shape(text)
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
        return self._redact(request, TRACES, self._span)

    def logs(self, request: ExportLogsServiceRequest) -> int:
        return self._redact(request, LOGS, self._log_record)

    def _span(self, span: Span) -> int:
        return self._attributes(span.attributes) + sum(
            self._attributes(event.attributes) for event in span.events)

    def _log_record(self, record: LogRecord) -> int:
        return self._attributes(record.attributes) + self._value(record.body)

    def _redact(self, request: Message, signal: Signal, redact: Callable[[Any], int]) -> int:
        """`redact` each item in place; an item that had any carries its count."""
        if not self.enabled:
            return 0
        total = 0
        for item in items(request, signal):
            n = redact(item)
            if n:
                _add_count(item.attributes, n)
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
