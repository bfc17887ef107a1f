"""Redaction of one string value: a JSON object or array (a message list, tool-call
arguments) is redacted on its decoded strings, never on its text, so that escaped content
(`jane\\u0040example.com`) is found like plain content and the result is JSON of the same
shape; anything else is redacted as plain text.

JSON is redacted in place, string token by string token: a string with nothing found keeps
its exact bytes, as do numbers, whitespace and key order, and a value with nothing found comes
back as the very same string. Keys are scanned as well (a tool's result may be a map keyed by
e-mail address); a value under a key that names a secret ("password", "api_key",
"client_secret") is redacted whole. A string that itself holds JSON (arguments passed as a JSON
string) is redacted the same way, one level down.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from watchkeeper.agent.sidecar.redaction.passwords import kind_of_key, secret_value
from watchkeeper.agent.sidecar.redaction.policy import Actions
from watchkeeper.agent.sidecar.redaction.scanner import Scanner
from watchkeeper.agent.sidecar.redaction.text import Finding

# A JSON string token (the unrolled form, which the engine runs without backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_COLON = re.compile(r"\s*:")
_KEY_TO_VALUE = re.compile(r"\s*:\s*")


@dataclass(slots=True)
class Redacted:
    """What redaction did to one value: its new text, the count per type, and whether a
    finding's action is to drop the attribute that holds it."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)
    drop: bool = False


class ValueRedactor:
    """Redacts string values with one scanner, remembering values found clean."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self._clean = CleanValues()

    def redact(self, value: str, actions: Actions, key: str = "") -> Redacted | None:
        """None when nothing was found (the caller keeps the value as it is). `key`: the JSON
        key the value belongs to, where context words ("ssn", "aadhaar") are looked for too."""
        remembered = (key, value) if key else value
        if remembered in self._clean:
            return None
        done = self._json(value, actions) if _is_json(value) else _plain(
            value, self.scanner.scan(value, key), actions)
        if done is None:
            self._clean.add(remembered, len(value))
        return done

    def _json(self, value: str, actions: Actions) -> Redacted | None:
        out = Redacted(value)
        pieces: list[str] = []
        last = 0
        key, key_end = "", -1  # the last key, and where it ended
        secret_kind: str | None = None  # the kind of secret that key names
        new_keys: Counter[str] = Counter()
        for token in _STRING.finditer(value):
            raw = token.group()[1:-1]
            text = json.loads(token.group()) if "\\" in raw else raw
            is_key = _COLON.match(value, token.end()) is not None
            is_value = not is_key and key_end >= 0 and bool(
                _KEY_TO_VALUE.fullmatch(value, key_end, token.start()))
            if is_value and secret_kind is not None and secret_value(secret_kind, text):
                done: Redacted | None = whole(text, secret_kind, actions)
            else:
                done = self.redact(text, actions, key if is_value else "")
            if is_key:
                key, key_end, secret_kind = text, token.end(), kind_of_key(text)
            if done is None:
                continue
            new = done.text
            if is_key:  # two keys of one object must not become one
                new_keys[new] += 1
                if new_keys[new] > 1:
                    new = f"{new} #{new_keys[new]}"
            pieces += [value[last:token.start()], _encode(new)]
            last = token.end()
            out.counts += done.counts
            out.drop = out.drop or done.drop
        if not out.counts:
            return None
        pieces.append(value[last:])
        out.text = "".join(pieces)
        return out


# Values repeat: model names, roles, finish reasons, JSON keys, ids of users, and system
# instructions sent with every call. Those found clean are remembered, so that each costs a
# hash and a set lookup after the first time; what is remembered holds nothing that any
# detector finds. Short values and long ones are kept apart, so that a stream of long, unique
# prompts does not push out the short values that recur in every span.
SHORT = 64
SHORT_MAX = 16384  # values
LONG_CHARS = 256 * 1024  # characters of long values (of at most LONGEST each)
LONGEST = 16 * 1024


class CleanValues:
    __slots__ = ("_long", "_long_chars", "_short")

    def __init__(self) -> None:
        self._short: set[Hashable] = set()
        self._long: set[Hashable] = set()
        self._long_chars = 0

    def __contains__(self, value: Hashable) -> bool:
        return value in self._short or value in self._long

    def add(self, value: Hashable, chars: int) -> None:
        if chars < SHORT:
            if len(self._short) >= SHORT_MAX:
                self._short.clear()
            self._short.add(value)
        elif chars <= LONGEST:
            if self._long_chars + chars > LONG_CHARS:
                self._long.clear()
                self._long_chars = 0
            self._long.add(value)
            self._long_chars += chars


def _is_json(value: str) -> bool:
    """An object or an array: what parses as one is redacted as one."""
    if not (value.lstrip().startswith(("{", "[")) and value.rstrip().endswith(("}", "]"))):
        return False
    try:
        json.loads(value)
    except (ValueError, RecursionError):  # nested past the parser's depth: plain text
        return False
    return True


def whole(value: str, kind: str, actions: Actions) -> Redacted:
    """The whole value as one finding of `kind` (a secret under a secret's name)."""
    return _plain(value, [Finding(0, len(value), kind, value)], actions) or Redacted(value)


def _plain(value: str, findings: list[Finding], actions: Actions) -> Redacted | None:
    if not findings:
        return None
    out = Redacted(value)
    pieces: list[str] = []
    last = 0
    for f in findings:
        if actions.action(f.kind) == "drop":
            out.drop = True
        pieces += [value[last:f.start], actions.replacement(f)]
        last = f.end
        out.counts[f.kind] += 1
    pieces.append(value[last:])
    out.text = "".join(pieces)
    return out


def _encode(text: str) -> str:
    """A JSON string token, non-ASCII left as it is (compact), except a lone surrogate that a
    \\ud800 escape had decoded to, which UTF-8 (and so protobuf) cannot carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(text)
    return json.dumps(text, ensure_ascii=False)
