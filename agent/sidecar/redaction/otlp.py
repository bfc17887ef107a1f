"""Redaction of OTLP requests in place: every string value of span attributes, span events'
attributes, log records' attributes and bodies, under the policy for its service and key.

Each span or log record that had any carries the counts: `watchkeeper.redactions` (all types;
ingest stores it in samples.redactions) and `watchkeeper.redactions.<type>` for each type
found (ingest keeps those in the sample's attributes map). Flat integer attributes, because
OTLP span attributes are meant to hold scalars and arrays, and every consumer reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from watchkeeper.agent.config import RedactionConfig
from watchkeeper.agent.sidecar.limits import add_count
from watchkeeper.agent.sidecar.redaction.compiled import Change
from watchkeeper.agent.sidecar.redaction.passwords import kind_of_key, secret_value
from watchkeeper.agent.sidecar.redaction.policy import Actions, Policy
from watchkeeper.agent.sidecar.redaction.scanner import Scanner
from watchkeeper.agent.sidecar.redaction.values import ValueRedactor, whole
from watchkeeper.agent.sidecar.signals import LOGS, TRACES, Signal

REDACTIONS_KEY = "watchkeeper.redactions"
# The values of one item to change: its attributes (index: change), its events' attributes
# (event: index: change), its log body (None: unchanged); None: every value, in Python.
Changes = dict[int, Change]
Only = tuple[Changes, dict[int, Changes], tuple[Change] | None] | None
SERVICE_KEY = "service.name"
BODY_KEY = "body"  # what policies call a log record's body


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        scanner = Scanner(config)
        self._values = ValueRedactor(scanner)
        self._policy = Policy(config)
        self._skip = frozenset(config.skip_attributes)
        self.enabled = config.enabled and bool(scanner)

    def redact(self, text: str) -> tuple[str, int]:
        """One value as an attribute without a policy of its own has it redacted: the new text
        and how many findings were replaced."""
        if not self.enabled:
            return text, 0
        done = self._values.redact(text, self._policy.actions("", ""))
        return (text, 0) if done is None else (done.text, done.counts.total())

    def traces(self, request: ExportTraceServiceRequest) -> Counter[str]:
        """Redact in place; returns the count per type."""
        return self._redact(request, TRACES, self._span)

    def logs(self, request: ExportLogsServiceRequest) -> Counter[str]:
        return self._redact(request, LOGS, self._log_record)

    def _redact(self, request: Message, signal: Signal,
                redact: Callable[[Any, str, Counter[str], Only], None]) -> Counter[str]:
        total: Counter[str] = Counter()
        if not self.enabled:
            return total
        targets = self._values.scanner.targets(request, logs=signal is LOGS)
        work: list[tuple[Any, Any, Only]]
        if targets is None:
            work = [(resource, item, None) for resource in getattr(request, signal.resources)
                    for scope in getattr(resource, signal.scopes)
                    for item in getattr(scope, signal.items)]
        else:  # only the items, and their values, that hold something
            resources = getattr(request, signal.resources)
            work = [(resources[r], getattr(getattr(resources[r], signal.scopes)[s],
                                           signal.items)[i],
                     (dict(attributes), _by_event(events), body))
                    for (r, s, i), attributes, events, body in targets]
        services: dict[int, str] = {}
        for resource, item, only in work:
            service = services.get(id(resource))
            if service is None:
                service = services[id(resource)] = next(
                    (kv.value.string_value for kv in resource.resource.attributes
                     if kv.key == SERVICE_KEY), "")
            counts: Counter[str] = Counter()
            redact(item, service, counts, only)
            if counts:
                _add_counts(item.attributes, counts)
                total += counts
        return total

    def _span(self, span: Any, service: str, counts: Counter[str], only: Only) -> None:
        self._attributes(span.attributes, service, counts, None if only is None else only[0])
        for e, event in enumerate(span.events):
            if only is None:
                self._attributes(event.attributes, service, counts)
            elif e in only[1]:
                self._attributes(event.attributes, service, counts, only[1][e])

    def _log_record(self, record: Any, service: str, counts: Counter[str], only: Only) -> None:
        self._attributes(record.attributes, service, counts, None if only is None else only[0])
        if only is not None and only[2] is not None and only[2][0] is not None:
            record.body.string_value, found = only[2][0]
            counts.update(found)
        elif (only is None or only[2] is not None) and self._value(
                record.body, self._policy.actions(service, BODY_KEY), counts):
            record.ClearField("body")

    def _attributes(self, kvs: Any, service: str, counts: Counter[str],
                    changes: Changes | None = None) -> None:
        """Redact each attribute (or those `changes` names, taking the masked text it holds)
        under its policy; remove those whose action is drop."""
        dropped = []
        for i in range(len(kvs)) if changes is None else changes:
            kv = kvs[i]
            change = None if changes is None else changes[i]
            if change is not None:
                kv.value.string_value, found = change
                counts.update(found)
            elif kv.key not in self._skip and self._value(
                    kv.value, self._policy.actions(service, kv.key), counts):
                dropped.append(i)
        for i in reversed(dropped):
            del kvs[i]

    def _value(self, value: AnyValue, actions: Actions, counts: Counter[str],
               secret_kind: str | None = None) -> bool:
        """Redact in place, adding to `counts`; True when the value is to be dropped."""
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text = value.string_value
            done = (whole(text, secret_kind, actions)
                    if secret_kind and secret_value(secret_kind, text)
                    else self._values.redact(text, actions))
            if done is None:
                return False
            value.string_value = done.text
            counts.update(done.counts)
            return done.drop
        if kind == "array_value":
            return any([self._value(v, actions, counts) for v in value.array_value.values])
        if kind == "kvlist_value":  # a key-value list names its fields, as JSON does
            return any([self._value(kv.value, actions, counts, kind_of_key(kv.key))
                        for kv in value.kvlist_value.values])
        return False


def _by_event(events: list[tuple[int, int, Change]]) -> dict[int, Changes]:
    grouped: dict[int, Changes] = {}
    for event, attribute, change in events:
        grouped.setdefault(event, {})[attribute] = change
    return grouped


def _add_counts(attributes: Any, counts: Counter[str]) -> None:
    add_count(attributes, REDACTIONS_KEY, counts.total())
    for kind, n in sorted(counts.items()):
        add_count(attributes, f"{REDACTIONS_KEY}.{kind}", n)
