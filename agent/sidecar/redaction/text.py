"""A text to scan, with the cheap views its detectors share, and what a detector reports.

Cost, measured on a 1 KB prompt: a regex scan tries its pattern at every position unless the
pattern starts with a literal (20-60 µs a scan); a multi-character `in` or `find` is a fast
C search (about 1 µs), a single character a memchr (0.05 µs). Detectors therefore find their
few candidate positions with such searches, on the text or on the views below (each computed
once, in C, when first asked for), and only then run a pattern, a checksum or a library.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import AnyStr


@dataclass(frozen=True, slots=True)
class Finding:
    """`text[start:end]` is a `kind`; `value` is its canonical form (pseudonyms hash it)."""

    start: int
    end: int
    kind: str
    value: str


Finder = Callable[["Text"], list[Finding]]  # a detector: every finding of its kinds in a text


@dataclass(frozen=True, slots=True)
class Detector:
    """A finder, and what a text must have for it to find anything, checked once per text for
    all detectors (a call that returns at once still costs a microsecond, and a value goes
    past some twenty detectors). `name`: its compiled twin's (native/src/redact/), if any."""

    find: Finder
    name: str = ""
    digits: int = 0  # digits in one run, at least
    token_run: bool = False  # a run of key characters (Text.token_runs)
    marks: tuple[str, ...] = ()  # one of these, if any are given


def _shape_table() -> bytes:
    """Digits become '0', ASCII letters 'A' or 'a', the separators that numbers use stay as
    they are, and everything else (non-ASCII included) becomes '#'."""
    kept = set(b" -.()/+:")
    return bytes(ord("0") if 48 <= b <= 57 else ord("A") if 65 <= b <= 90
                 else ord("a") if 97 <= b <= 122 else b if b in kept else ord("#")
                 for b in range(256))


_SHAPE = _shape_table()
# Characters of keys and tokens (base64, base64url, Azure's '~') become 't', the rest ' '.
_TOKEN = bytes(ord("t") if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-+/=.~")
               else ord(" ") for b in range(256))
# ASCII letters (lower-cased) and digits stay, everything else separates words.
_WORD = bytes(b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 or 48 <= b <= 57 else 32
              for b in range(256))
TOKEN_MIN = 16  # every credential found in token runs is at least this long
_RUN = b"t" * TOKEN_MIN
_LONG_RUN = re.compile(rb"t{%d,}" % TOKEN_MIN)
# Four digits or more, and the separators of phone, card, id numbers and addresses between
# them (no detector takes fewer digits)
_CLUSTER = re.compile(rb"0(?:[ \-.()/]{0,3}0){3,}")
Cluster = tuple[int, int, int]  # start, end, digits


class Text:
    """One string and its views. Positions in a view are positions in the text: each
    non-ASCII character becomes one byte before translating ('?', or ' ' for a no-break or
    thin space, which numbers are written with too). `context` is what stands before the text
    where it came from (the key of a JSON value): context words are looked for there too."""

    __slots__ = ("_ascii", "_clusters", "_lower", "_runs", "_shape", "_words", "context", "text")

    def __init__(self, text: str, context: str = "") -> None:
        self.text = text
        self.context = context
        self._ascii: bytes | None = None
        self._shape: bytes | None = None
        self._lower: str | None = None
        self._clusters: list[Cluster] | None = None
        self._runs: list[tuple[int, int]] | None = None
        self._words: frozenset[bytes] | None = None

    @property
    def shape(self) -> bytes:
        if self._shape is None:
            self._shape = self._bytes().translate(_SHAPE)
        return self._shape

    @property
    def lower(self) -> str:
        if self._lower is None:
            lower = self.text.lower()
            if len(lower) != len(self.text):  # 'İ' lowers to two characters: keep positions
                lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in self.text)
            self._lower = lower
        return self._lower

    def clusters(self, min_digits: int) -> list[Cluster]:
        """Each run of digits and separators holding at least `min_digits` (>= 4) digits."""
        if self._clusters is None:
            shape = self.shape
            self._clusters = [(m.start(), m.end(), m.group().count(b"0"))
                              for m in _CLUSTER.finditer(shape)] if shape.count(b"0") >= 4 else []
        return [c for c in self._clusters if c[2] >= min_digits]

    @property
    def most_digits(self) -> int:
        """The digits of the longest run that stands free (0 when none holds 4). A run glued
        to a word before it (chatcmpl-0000000062, INV-5551234567, x86_64) is part of an id,
        which no number detector takes; one with a space inside may still hold a number."""
        text, shape = self.text, self.shape
        return max((digits for start, end, digits in self.clusters(4)
                    if not (start and (word_char(text[start - 1]) or (
                        text[start - 1] in "-." and start > 1 and word_char(text[start - 2])))
                            and b" " not in shape[start:end])), default=0)

    def token_runs(self) -> list[tuple[int, int]]:
        """(start, end) of each run of at least TOKEN_MIN key characters."""
        if self._runs is None and len(self.text) < TOKEN_MIN:
            self._runs = []
        if self._runs is None:
            tokens = self._bytes().translate(_TOKEN)
            self._runs = [m.span() for m in _LONG_RUN.finditer(tokens)] if _RUN in tokens else []
        return self._runs

    @property
    def words(self) -> frozenset[bytes]:
        """The text's ASCII words, lower-case: one set for the `in` tests of many keywords,
        where each search of the text would cost a pass over it. A word with non-ASCII
        letters is cut there ("contraseña" holds "contrase")."""
        if self._words is None:
            self._words = frozenset(self._bytes().translate(_WORD).split())
        return self._words

    def before(self, start: int, chars: int = 40) -> str:
        """The lower-case text just before `start`, where context words are looked for."""
        if start >= chars or not self.context:
            return self.lower[max(0, start - chars):start]
        return f"{self.context.lower()}: {self.lower[:start]}"[-chars:]

    def _bytes(self) -> bytes:
        if self._ascii is None:
            data = self.text.encode("ascii", "replace")
            if not self.text.isascii() and any(c in self.text for c in _SPACES):
                spaced = bytearray(data)
                for space in _SPACES:
                    for at in positions(self.text, space):
                        spaced[at] = 32
                data = bytes(spaced)
            self._ascii = data
        return self._ascii


_SPACES = "\xa0\u2007\u2009\u202f"  # no-break, figure, thin and narrow no-break spaces


def word_char(c: str) -> bool:
    """A character that glues to a number or a key: an ASCII letter, digit or '_'. Other
    scripts do not: Chinese and Japanese write numbers right after words."""
    return c.isascii() and (c.isalnum() or c == "_")


def mentions(window: str, words: tuple[str, ...]) -> bool:
    return any(w in window for w in words)


def positions(text: AnyStr, needle: AnyStr, start: int = 0) -> list[int]:
    """Where `needle` occurs in `text` (overlapping occurrences included)."""
    found = []
    at = text.find(needle, start)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0
