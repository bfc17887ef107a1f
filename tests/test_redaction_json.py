"""JSON values are redacted on their decoded strings: for any message list (any unicode,
escapes, nesting, numbers), the result is valid JSON of the same shape, every planted item is
gone however it was escaped, and a value with nothing found comes back byte for byte."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.agent.config import RedactionConfig
from watchkeeper.agent.sidecar.redaction import Redactor

REDACTOR = Redactor(RedactionConfig())
# One item of several types; planted between '<' and '>', which no detector reads as part of
# an item, so that random text around cannot change what the item is.
PLANTED = ["jane.doe@example.com", "+44 20 7946 0958", "4111-1111-1111-1111",
           "DE89 3704 0044 0532 0130 00", "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_X",
           "AKIAIOSFODNN7EXAMPLE", "2001:db8::8a2e:370:7334"]

# Any code point, lone surrogates included (json.dumps writes them as \ud800 escapes).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


@st.composite
def leaf_text(draw: st.DrawFn) -> str:
    text = draw(TEXT)
    if draw(st.booleans()):
        text = f"{text} <{draw(st.sampled_from(PLANTED))}> {draw(TEXT)}"
    return text


SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                    allow_infinity=False))
VALUES = st.recursive(SCALARS | leaf_text(), lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(TEXT, children, max_size=4), max_leaves=20)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool"]),
     "parts": st.lists(st.fixed_dictionaries({"type": st.just("text"), "content": leaf_text()},
                                             optional={"arguments": VALUES}), max_size=3)},
    optional={"extra": VALUES})


def _strings(value: Any) -> list[str]:
    """Every string of a decoded JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    return []


def _same_shape(before: Any, after: Any) -> bool:
    """Same keys (but those redaction changed), same list lengths, same non-string leaves."""
    if isinstance(before, dict):
        kept = [k for k in before if REDACTOR.redact(k)[1] == 0]
        return (isinstance(after, dict) and len(after) == len(before)
                and all(k in after and _same_shape(before[k], after[k]) for k in kept))
    if isinstance(before, list):
        return (isinstance(after, list) and len(after) == len(before)
                and all(_same_shape(b, a) for b, a in zip(before, after, strict=True)))
    if isinstance(before, str):
        return isinstance(after, str)
    return type(before) is type(after) and before == after


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(MESSAGE, max_size=4), ascii_only=st.booleans(),
       escape=st.sampled_from(["", "@", "/", "<"]))
def test_json_stays_json_of_the_same_shape(messages: list[Any], ascii_only: bool,
                                           escape: str) -> None:
    surrogates = any(0xD800 <= ord(c) <= 0xDFFF for s in _strings(messages) for c in s)
    text = json.dumps(messages, ensure_ascii=ascii_only or surrogates)
    if escape:  # '@', '/' and '<' occur in JSON text only inside strings
        text = text.replace(escape, f"\\u{ord(escape):04x}")
    redacted, count = REDACTOR.redact(text)
    after = json.loads(redacted)
    assert _same_shape(messages, after)
    planted = [p for p in PLANTED if any(p in s for s in _strings(messages))]
    assert not [p for p in planted if any(p in s for s in _strings(after))]
    if count == 0:
        assert redacted is text


def test_unchanged_json_keeps_its_bytes() -> None:
    text = '[ {"role" : "user", "n": 1.50e0, "content": "caf\\u00e9 \\/ ok"} ]'
    assert REDACTOR.redact(text)[0] is text
    # only the string that held something changes; numbers and spacing stay as written
    assert REDACTOR.redact(text.replace("ok", "bob@x.io")) == (
        '[ {"role" : "user", "n": 1.50e0, "content": "café / [REDACTED:email]"} ]', 1)


def test_keys_and_nested_json() -> None:
    arguments = json.dumps({"to": "ann@x.org", "password": "hunter2", "ann@x.org": 1,
                            "bob@x.org": 2, "apiKey": "Zx9-Qw8-Er7-Ty6"})
    text = json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "name": "mail", "arguments": arguments}]}])
    redacted, count = REDACTOR.redact(text)
    inner = json.loads(json.loads(redacted)[0]["parts"][0]["arguments"])
    assert inner == {"to": "[REDACTED:email]", "password": "[REDACTED:password]",
                     "[REDACTED:email]": 1, "[REDACTED:email] #2": 2,
                     "apiKey": "[REDACTED:api_key]"}
    assert count == 5


def test_text_that_only_looks_like_json_is_plain_text() -> None:
    assert REDACTOR.redact('[not json] mail ann@x.org {') == (
        "[not json] mail [REDACTED:email] {", 1)


def test_json_nested_past_the_parsers_depth_is_redacted_as_plain_text() -> None:
    """A hostile value nested deeper than the JSON parser goes neither fails the export nor
    keeps what it hides."""
    redactor = Redactor(RedactionConfig())
    for value in ("[" * 200_000 + "]" * 200_000,
                  '{"a":' * 50_000 + '"x.y@example.com"' + "}" * 50_000):
        text, _ = redactor.redact(value)
        assert "x.y@example.com" not in text
