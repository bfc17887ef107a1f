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
from watchkeeper.agent.sidecar.redaction.passwords import kind_of_key, secret_value
from watchkeeper.agent.sidecar.redaction.policy import Actions, Policy
from watchkeeper.agent.sidecar.redaction.scanner import Scanner
from watchkeeper.agent.sidecar.redaction.values import ValueRedactor, whole
from watchkeeper.agent.sidecar.signals import LOGS, TRACES, Signal

REDACTIONS_KEY = "watchkeeper.redactions"
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
                redact: Callable[[Any, str, Counter[str]], None]) -> Counter[str]:
        total: Counter[str] = Counter()
        if not self.enabled:
            return total
        for resource in getattr(request, signal.resources):
            service = next((kv.value.string_value for kv in resource.resource.attributes
                            if kv.key == SERVICE_KEY), "")
            for scope in getattr(resource, signal.scopes):
                for item in getattr(scope, signal.items):
                    counts: Counter[str] = Counter()
                    redact(item, service, counts)
                    if counts:
                        _add_counts(item.attributes, counts)
                        total += counts
        return total

    def _span(self, span: Any, service: str, counts: Counter[str]) -> None:
        self._attributes(span.attributes, service, counts)
        for event in span.events:
            self._attributes(event.attributes, service, counts)

    def _log_record(self, record: Any, service: str, counts: Counter[str]) -> None:
        self._attributes(record.attributes, service, counts)
        if self._value(record.body, self._policy.actions(service, BODY_KEY), counts):
            record.ClearField("body")

    def _attributes(self, kvs: Any, service: str, counts: Counter[str]) -> None:
        """Redact each attribute under its policy; remove those whose action is drop."""
        dropped = [i for i, kv in enumerate(kvs) if kv.key not in self._skip
                   and self._value(kv.value, self._policy.actions(service, kv.key), counts)]
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


def _add_counts(attributes: Any, counts: Counter[str]) -> None:
    add_count(attributes, REDACTIONS_KEY, counts.total())
    for kind, n in sorted(counts.items()):
        add_count(attributes, f"{REDACTIONS_KEY}.{kind}", n)
