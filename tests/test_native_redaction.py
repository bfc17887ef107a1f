"""The compiled detectors (native/src/redact/) find what their Python twins find, finding for
finding: on every plain ASCII text of the PII corpus (bench/pii/), with and without a key as
context, on the sidecar benchmark's prompts, and on generated texts built from the pieces
detectors look for. Then the scanner as a whole: the same findings with the compiled path on
and off, and what is not plain ASCII left to Python."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import string
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from watchkeeper.agent.config import RedactionConfig
from watchkeeper.agent.sidecar.redaction import compiled
from watchkeeper.agent.sidecar.redaction.otlp import Redactor
from watchkeeper.agent.sidecar.redaction.phones import Phones
from watchkeeper.agent.sidecar.redaction.scanner import Scanner
from watchkeeper.agent.sidecar.redaction.text import Text

BENCH = Path(__file__).resolve().parents[1] / "bench"
NATIVE = compiled.native_module()
if os.environ.get("WATCHKEEPER_REQUIRE_NATIVE") == "1" and NATIVE is None:
    raise RuntimeError("cargo is on this machine, but watchkeeper-native has no compiled "
                       "detectors: rebuild it (pip install ./native)")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="watchkeeper-native is not installed (pip install ./native)")

CONFIG = RedactionConfig(native="off")
PYTHON = {d.name: d.find for d in Scanner(CONFIG)._detectors}
CHECKS = compiled.Checks(Phones(CONFIG.phone_regions))
NAMES = sorted(NATIVE.REDACTION_DETECTORS) if NATIVE is not None else []
CONTEXTS = ("", "password", "ssn", "phone", "account", "api_key", "card", "aadhaar")


def _module(name: str, path: Path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _corpus() -> list[str]:
    pii = _module("_pii", BENCH / "_pii.py")
    texts = [pii.view(case) for split in ("dev", "heldout")  # type: ignore[attr-defined]
             for case in pii.load(split)]  # type: ignore[attr-defined]
    sys.path.insert(0, str(BENCH))
    try:
        spans = _module("_genai_spans", BENCH / "_genai_spans.py")
    finally:
        sys.path.remove(str(BENCH))
    rng = random.Random(3)
    texts += [spans.prompt(rng, n, 1024) for n in range(64)]  # type: ignore[attr-defined]
    return [t for t in texts if compiled.plain_ascii(t)]


CORPUS = _corpus() if NATIVE is not None else []


def _python(name: str, text: str, context: str) -> list[tuple[int, int, str, str]]:
    return [(f.start, f.end, f.kind, f.value) for f in PYTHON[name](Text(text, context))]


def _native(name: str, text: str, context: str) -> list[tuple[int, int, str, str]]:
    found = NATIVE.redaction_detect(name, text, context, CHECKS)  # type: ignore[union-attr]
    assert found is not None, "a plain ASCII text must be taken"
    return [tuple(f) for f in found]


def test_every_compiled_detector_has_a_python_twin() -> None:
    assert NAMES and set(NAMES) <= set(PYTHON)


@pytest.mark.parametrize("name", NAMES)
def test_twin_on_the_corpus(name: str) -> None:
    assert len(CORPUS) > 1000
    for context in CONTEXTS:
        for text in CORPUS:
            assert _native(name, text, context) == _python(name, text, context), (text, context)


# What detectors look for, to build texts that reach their edges.
PIECES = (
    " ", " ", " ", "\n", "-", ".", ":", "=", "/", "(", ")", "+", "@", "%40", "\"", "'", ",", ";",
    "://", "_", "~", "#", "*", "<", ">", "[at]", " at ", " dot ", "(dot)",
    "password", "Password: ", "passwd=", "pwd=", "my password is ", "api_key", "apiKey: ",
    "secret", "token ", "client_secret=", "Bearer ", "bearer: ", "Basic ", "-u ", "login(",
    "ssn ", "SSN: ", "social security", "aadhaar", "cpf", "dni", "pesel", "nhs", "tfn",
    "account ", "acct", "routing ", "sort code ", "iban", "card ", "visa", "order ", "isbn",
    "phone ", "call ", "tel", "version ", "build ", "ref",
    "sk-", "sk-proj-", "sk-ant-api03-", "ghp_", "github_pat_", "glpat-", "xoxb-", "AKIA",
    "AIza", "hf_", "eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxIn0", "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----", "postgres://", "user:", "@db", "example.com", "jane.doe",
    "2001:db8::", "::1", "fe80::", "192.168.", "10.0.0.", "GB82", "DE89 3704 0044 0532 0130 00",
    "WEST", "4111", "1111", "5555", "4242", "415", "555", "0100", "+1", "+44", "020", "0049",
    "123-45-6789", "078-05-1120", "AB123456C", "ABCDE1234F", "12345678Z", "756.", "2024-11-02",
    "Basic w6Q6w6Q=", "Basic dXNlcjpwYXNz", "abcdefgh=", "123456789:AA", "abc1Q~", "A3TX",
    "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "eyJcdTAwNjFsZyI6TmFOfQ.eyJzdWIiOiIxIn0.x",  # a header of {"\u0061lg":NaN}
)
_TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(string.digits, min_size=1,
                                                               max_size=12),
                            st.text(string.ascii_letters + string.digits, min_size=1,
                                    max_size=40)),
                  max_size=24).map("".join)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS, context=st.sampled_from(CONTEXTS))
def test_twin_on_generated_texts(name: str, text: str, context: str) -> None:
    assert _native(name, text, context) == _python(name, text, context)


def test_scanner_same_findings_with_and_without_the_compiled_path() -> None:
    on, off = Scanner(RedactionConfig()), Scanner(CONFIG)
    assert on.native and not off.native
    for text in CORPUS:
        assert on.scan(text) == off.scan(text), text


def test_what_is_not_plain_ascii_is_left_to_python() -> None:
    scanner = NATIVE.RedactionScanner([], [], [], True, CHECKS)  # type: ignore[union-attr]
    for text in ("jörg@example.com", "tab\there", "\x1c", "cafe\u0301"):
        expected: list[object] | None = None if not compiled.plain_ascii(text) else []
        assert scanner.scan(text, "") == expected
    assert scanner.scan("plain", "clé") is None
    on = Scanner(RedactionConfig())
    assert [f.kind for f in on.scan("Schreib an jörg.müller@example.de")] == ["email"]


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, str):
        kv.value.string_value = value
    elif isinstance(value, list):
        kv.value.array_value.values.extend(AnyValue(string_value=v) for v in value)
    elif isinstance(value, dict):
        kv.value.kvlist_value.values.extend(_kv(k, v) for k, v in value.items())
    else:
        kv.value.int_value = int(value)  # type: ignore[call-overload]
    return kv


def _traces(texts: list[str]) -> ExportTraceServiceRequest:
    """Each text where the sidecar meets it: a message list (escaped and not), an attribute,
    an array, a key-value list under a secret's name, an event; beside values with nothing."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", "shop"))
    scope = resource.scope_spans.add()
    for n, text in enumerate(texts):
        span = scope.spans.add(trace_id=n.to_bytes(16, "big"), span_id=b"\x01" * 8, name="chat")
        messages = [{"role": "user", "parts": [{"type": "text", "content": text}]}]
        span.attributes.extend([
            _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.usage.input_tokens", n),
            _kv("gen_ai.input.messages", json.dumps(messages, ensure_ascii=n % 2 == 0)),
            _kv("user.note", text), _kv("tags", ["a", text]), _kv("server.address", text),
            _kv("config", {"password": text[:12], "note": text})])
        event = span.events.add(name="gen_ai.choice")
        event.attributes.extend([_kv("index", 0), _kv("message", text)])
    return request


def _logs(texts: list[str]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for text in texts:
        record = scope.log_records.add()
        record.body.string_value = text
        record.attributes.append(_kv("event.name", "gen_ai.user.message"))
    return request


CONFIGS = {
    "phone only": {"builtin": ["phone"]},
    "every type, masked": {},
    "policies": {"action": "pseudonymise", "pseudonym_key": "k" * 32,
                 "policies": [{"attributes": ["user.*"], "action": "drop"},
                              {"attributes": ["gen_ai.*"], "types": ["email"], "action": "mask"}]},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_redactor_changes_requests_alike_with_and_without_the_compiled_walk(
        config: dict[str, Any]) -> None:
    on = Redactor(RedactionConfig(**config))
    off = Redactor(RedactionConfig(native="off", **config))
    probe = ExportTraceServiceRequest()
    if on._values.scanner.targets(probe, logs=False) is None:
        pytest.skip("not every detector has a compiled twin in this build")
    texts = [*CORPUS[::3], "", "nothing here", "call 415-555-0100", "jörg@example.de",
             '{"a": "mail a@b.co"}', '["\\ud800 escaped"]']
    for chunk in range(0, len(texts), 64):
        part = texts[chunk:chunk + 64]
        for build, redact_on, redact_off in ((_traces, on.traces, off.traces),
                                             (_logs, on.logs, off.logs)):
            a, b = build(part), build(part)
            assert redact_on(a) == redact_off(b)  # type: ignore[arg-type]
            assert a == b


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXTS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "password", "api_key", "ssn", "phone", "text"])
        | _TEXTS, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=_JSON, ascii_only=st.booleans(),
       config=st.sampled_from(list(CONFIGS.values())[1:]))
def test_compiled_walk_on_generated_message_lists(messages: object, ascii_only: bool,
                                                  config: dict[str, Any]) -> None:
    """Arbitrary JSON in a span's message attribute (nested, keys naming secrets, escaped or
    not): the same request and counts with the compiled walk and without."""
    text = json.dumps(messages, ensure_ascii=ascii_only)
    on = Redactor(RedactionConfig(**config))
    off = Redactor(RedactionConfig(native="off", **config))
    a, b = _traces([text]), _traces([text])
    assert on.traces(a) == off.traces(b)
    assert a == b
