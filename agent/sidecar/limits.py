"""Limits on what one span or log record may carry, like the OpenTelemetry SDK's SpanLimits and
LogLimits (sidecar.limits): attributes per span, event, link, log record, resource and scope;
events and links per span; items per array or key-value list value; bytes per string value.

What is cut is recorded where it lands on the stored row: OTLP's own dropped_attributes_count,
dropped_events_count and dropped_links_count on the item that lost them, and on each span or log
record the attribute `watchkeeper.limits.truncated`: how many attributes, events, links and
array items it lost and how many of its values were shortened. The steps return those counts by
limit name, for the wk_sidecar_limited_total counter.

Two passes, around redaction. Counts first (`counts`): only the lengths of repeated fields, so
cheap, and redaction never scans what is dropped anyway. Values after redaction (`values`): a
secret that straddles the cut would otherwise be left as a fragment that no pattern matches any
more; cutting redacted text can only split a marker. Watchkeeper's own bookkeeping attributes
(`watchkeeper.redactions`, `watchkeeper.redactions.<type>` and this one) are added after the
counts and do not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from watchkeeper.agent.config import LimitsConfig
from watchkeeper.agent.sidecar.signals import TRACES, Signal

TRUNCATED_KEY = "watchkeeper.limits.truncated"
_LISTS = frozenset({"array_value", "kvlist_value"})
_SIZED = frozenset({"string_value", "bytes_value"})
Cuts = Counter[str]  # limit name (a LimitsConfig field) → items dropped or values shortened


def cut_utf8(text: str, max_bytes: int) -> str | None:
    """`text` cut to at most `max_bytes` of UTF-8 on a character boundary; None if it fits."""
    if len(text) <= max_bytes // 4:  # four bytes per character at most: fits, no encoding
        return None
    if text.isascii():
        return text[:max_bytes] if len(text) > max_bytes else None
    data = text.encode()
    if len(data) <= max_bytes:
        return None
    # the cut may split the last character: its leading bytes are dropped, nothing else
    return data[:max_bytes].decode(errors="ignore")


def _cap(owner: Any, field: str, limit: int, name: str, cuts: Cuts) -> int:
    """Keep the first `limit` items of `owner.field` (attributes, events or links), adding what
    was dropped to `owner.dropped_<field>_count`; returns how many were dropped."""
    items = getattr(owner, field)
    dropped = len(items) - limit
    if dropped <= 0:
        return 0
    del items[limit:]
    counter = f"dropped_{field}_count"
    setattr(owner, counter, getattr(owner, counter) + dropped)
    cuts[name] += dropped
    return dropped


def add_count(attributes: Any, key: str, n: int) -> None:
    """Add `n` to the integer attribute `key`, creating it at the end when missing."""
    for kv in attributes:
        if kv.key == key:
            kv.value.int_value += n
            return
    kv = attributes.add()
    kv.key = key
    kv.value.int_value = n


class Limiter:
    def __init__(self, config: LimitsConfig) -> None:
        self.config = config
        self.enabled = config.enabled

    # -- pass 1, before redaction: counts of attributes, events, links ---------------------
    def counts(self, request: Message, signal: Signal) -> Cuts:
        cuts: Cuts = Counter()
        if not self.enabled:
            return cuts
        item_counts = self._span_counts if signal is TRACES else self._log_counts
        for resource in getattr(request, signal.resources):
            self._holder_counts(resource.resource, cuts)
            for scope in getattr(resource, signal.scopes):
                self._holder_counts(scope.scope, cuts)
                for item in getattr(scope, signal.items):
                    n = item_counts(item, cuts)
                    if n:
                        add_count(item.attributes, TRUNCATED_KEY, n)
        return cuts

    def _holder_counts(self, holder: Any, cuts: Cuts) -> None:
        """A resource or an instrumentation scope: its attributes."""
        _cap(holder, "attributes", self.config.resource_attributes, "resource_attributes", cuts)

    def _span_counts(self, span: Any, cuts: Cuts) -> int:
        c = self.config
        n = (_cap(span, "attributes", c.span_attributes, "span_attributes", cuts)
             + _cap(span, "events", c.span_events, "span_events", cuts)
             + _cap(span, "links", c.span_links, "span_links", cuts))
        for event in span.events:
            n += _cap(event, "attributes", c.event_attributes, "event_attributes", cuts)
        for link in span.links:
            n += _cap(link, "attributes", c.link_attributes, "link_attributes", cuts)
        return n

    def _log_counts(self, record: Any, cuts: Cuts) -> int:
        return _cap(record, "attributes", self.config.log_attributes, "log_attributes", cuts)

    # -- pass 2, after redaction: string and bytes lengths, array lengths ---------------------
    def values(self, request: Message, signal: Signal) -> Cuts:
        cuts: Cuts = Counter()
        if not self.enabled:
            return cuts
        item_values: Callable[[Any, Cuts, bool], int] = (
            self._span_values if signal is TRACES else self._log_values)
        for resource in getattr(request, signal.resources):
            self._holder_values(resource.resource, cuts)
            for scope in getattr(resource, signal.scopes):
                self._holder_values(scope.scope, cuts)
                for item in getattr(scope, signal.items):
                    check = self._check(item)
                    if check is not None:
                        n = item_values(item, cuts, check)
                        if n:
                            add_count(item.attributes, TRUNCATED_KEY, n)
        return cuts

    def _check(self, message: Any) -> bool | None:
        """What `message` may hold beyond the limits, from its encoded size (computed in C):
        None when nothing (most items: no walk at all), else whether a string or bytes value
        may be too long (only arrays may be too long otherwise)."""
        size: int = message.ByteSize()
        strings = size > self.config.attribute_value_bytes
        # each item of an array or key-value list takes at least 2 bytes
        if not strings and size <= 2 * self.config.array_values:
            return None
        return strings

    def _holder_values(self, holder: Any, cuts: Cuts) -> None:
        check = self._check(holder)
        if check is not None:
            self._attributes(holder.attributes, cuts, check)

    def _span_values(self, span: Any, cuts: Cuts, strings: bool) -> int:
        n = self._attributes(span.attributes, cuts, strings)
        for event in span.events:
            n += self._attributes(event.attributes, cuts, strings)
        for link in span.links:
            n += self._attributes(link.attributes, cuts, strings)
        return n

    def _log_values(self, record: Any, cuts: Cuts, strings: bool) -> int:
        body = record.body
        return (self._attributes(record.attributes, cuts, strings)
                + self._value(body, body.WhichOneof("value"), cuts, strings))

    def _attributes(self, kvs: Iterable[KeyValue], cuts: Cuts, strings: bool) -> int:
        n = 0
        for kv in kvs:  # the kind is looked at here: most values need no call further down
            value = kv.value
            kind = value.WhichOneof("value")
            if kind in _LISTS or (strings and kind in _SIZED):
                n += self._value(value, kind, cuts, strings)
        return n

    def _value(self, value: AnyValue, kind: str | None, cuts: Cuts, strings: bool) -> int:
        limit = self.config.attribute_value_bytes
        if kind == "string_value" and strings:
            cut = cut_utf8(value.string_value, limit)
            if cut is None:
                return 0
            value.string_value = cut
        elif kind == "bytes_value" and strings:
            if len(value.bytes_value) <= limit:
                return 0
            value.bytes_value = value.bytes_value[:limit]
        elif kind in _LISTS:
            values = (value.array_value.values if kind == "array_value"
                      else value.kvlist_value.values)
            dropped = max(0, len(values) - self.config.array_values)
            if dropped:
                del values[self.config.array_values:]
                cuts["array_values"] += dropped
            if kind == "kvlist_value":
                return dropped + self._attributes(values, cuts, strings)
            return dropped + sum(self._value(v, v.WhichOneof("value"), cuts, strings)
                                 for v in values)
        else:
            return 0
        cuts["attribute_value_bytes"] += 1
        return 1
