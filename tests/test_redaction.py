"""Redaction before anything leaves the sidecar, and the count that travels with the record."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import RunningAgent, post
from watchkeeper.agent.config import RedactionConfig, RedactionPattern
from watchkeeper.agent.sidecar.redaction import Redactor, luhn_ok

ALL = Redactor(RedactionConfig(patterns=[RedactionPattern(name="ticket", regex=r"TCK-\d{6}")]))


@pytest.mark.parametrize(("text", "expected", "count"), [
    ("write to jane.doe@example.com today", "write to [REDACTED:email] today", 1),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok", 1),
    ("card 4111-1111-1111-1111", "card [REDACTED:card]", 1),
    ("5555555555554444", "[REDACTED:card]", 1),
    ("order 1234567812345678 shipped", "order 1234567812345678 shipped", 0),  # fails Luhn
    ("call +1 415 555 0100 now", "call [REDACTED:phone] now", 1),
    ("call (415) 555-0100", "call [REDACTED:phone]", 1),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "Authorization: [REDACTED:bearer]", 1),
    ("key sk-proj-abcdefghijklmnopqrstuvwx01", "key [REDACTED:api_key]", 1),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [REDACTED:api_key]", 1),
    ("from 192.168.10.20", "from [REDACTED:ip]", 1),
    ("v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "v6 [REDACTED:ip]", 1),
    ("see TCK-123456", "see [REDACTED:ticket]", 1),
    ("In 2024 we shipped version 1.2.3 to 12 teams", "In 2024 we shipped version 1.2.3 to 12 teams",
     0),
])
def test_builtin_and_custom_patterns(text: str, expected: str, count: int) -> None:
    assert ALL.redact(text) == (expected, count)


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_json_content_stays_valid_json() -> None:
    messages = json.dumps([{"role": "user", "parts": [
        {"type": "text", "content": "I am bob@corp.io, card 4111111111111111"}]}])
    redacted, count = ALL.redact(messages)
    assert count == 2
    assert json.loads(redacted)[0]["parts"][0]["content"] == (
        "I am [REDACTED:email], card [REDACTED:card]")


def test_disabled_or_narrowed() -> None:
    assert Redactor(RedactionConfig(enabled=False)).redact("a@b.io") == ("a@b.io", 0)
    only_email = Redactor(RedactionConfig(builtin=["email"]))
    assert only_email.redact("a@b.io 4111111111111111") == ("[REDACTED:email] 4111111111111111",
                                                              1)


def test_redacts_spans_events_and_logs_in_place() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.attributes.add(key="server.address").value.string_value = "10.0.0.7"  # not content
    span.attributes.add(key="gen_ai.prompt.0.content").value.string_value = "mail a@b.io"
    items = span.attributes.add(key="list").value.array_value.values
    items.add().string_value = "c@d.io"
    event = span.events.add(name="gen_ai.user.message")
    event.attributes.add(key="content").value.string_value = "e@f.io and g@h.io"
    assert ALL.traces(request) == 4
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["gen_ai.prompt.0.content"].string_value == "mail [REDACTED:email]"
    assert attrs["watchkeeper.redactions"].int_value == 4
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.kvlist_value.values.add(key="content").value.string_value = "x@y.io"
    assert ALL.logs(logs) == 1
    assert record.body.kvlist_value.values[0].value.string_value == "[REDACTED:email]"


def test_redaction_count_reaches_the_sample(agent: RunningAgent) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x0a" * 16, b"\x0b" * 8, "chat m"
    span.attributes.add(key="gen_ai.request.model").value.string_value = "m"
    span.attributes.add(key="gen_ai.input.messages").value.string_value = json.dumps(
        [{"role": "user", "parts": [{"type": "text",
                                     "content": "I'm ann@x.org, +44 20 7946 0958"}]}])
    assert post(f"{agent.http_endpoint}/v1/traces", request.SerializeToString()).is_success
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 1) == 1
    row = agent.query("SELECT prompt_text, redactions, attributes FROM {db}.samples")[0]
    assert row["prompt_text"] == "I'm [REDACTED:email], [REDACTED:phone]"
    assert row["redactions"] == 2
    assert "watchkeeper.redactions" not in row["attributes"]
