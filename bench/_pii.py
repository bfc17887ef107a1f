"""The PII and secrets corpus (bench/pii/*.jsonl): loading it, decoding what the sidecar sees,
the checksums its items carry, and how a redactor's output is scored against its labels.

Standard library only: bench/redaction_quality.py, bench/pii/make_corpus.py and
tests/test_redaction_corpus.py share it.

A case (one JSON line):

    id, split, lang, format, template   where it came from
    encoding    "plain": `text` is what the model saw; "json": `text` is a JSON document (a
                gen_ai.input/output.messages value, with its escapes) and the labels are on
                `decoded`, the text with every JSON string escape decoded once
    text        what the sidecar receives and the redactor is given
    decoded     (encoding "json" only) decode_escapes(text)
    items       sensitive items: {category, kind, start, end, text}; spans index the decoded
                text (`text` itself for plain cases), end exclusive
    negatives   hard negatives, labelled the same way; a digit-only negative of 13-19 digits
                (separators aside) also carries `luhn`: whether it passes the Luhn check
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "pii"
SPLITS = ("dev", "heldout")

# The marker every row writes in place of what it removes, "[REDACTED:<type>]".
MARKER = re.compile(r"\[REDACTED:[^\]\s]{0,40}\]")


def load(split: str) -> list[dict[str, Any]]:
    with (CORPUS / f"{split}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- JSON string escapes ----------------------------------------------------------------------
_ESCAPE = re.compile(r'\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})'
                     r'|u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def decode_escapes(text: str) -> str:
    """Every JSON string escape (\\n, \\", \\/, \\u00f6, surrogate pairs) decoded once, the rest
    of the text kept as it is. Tolerant: it also reads a document a redactor has broken."""
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            high, low = int(m.group(1), 16), int(m.group(2), 16)
            return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        if m.group(3):
            return chr(int(m.group(3), 16))
        return _SIMPLE[m.group(4)]
    return _ESCAPE.sub(one, text)


def view(case: dict[str, Any], text: str | None = None) -> str:
    """The text the labels index: the case's own, or a redactor's output read the same way."""
    if text is None:
        return str(case.get("decoded", case["text"]))
    return decode_escapes(text) if case["encoding"] == "json" else text


# --- checksums ----------------------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97: the country and check digits moved to the end, letters as 10-35."""
    compact = re.sub(r"[\s\-.]", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def digits_of(text: str) -> str:
    return "".join(c for c in text if "0" <= c <= "9")


# --- scoring ------------------------------------------------------------------------------------
# An item is removed when nothing of it that identifies it is left in the output: see
# item_survives. Its alphanumeric runs of this length or more, and its digits in windows of this
# many (across separators), are what identify it.
RUN_MIN = 4
DIGIT_WINDOW = 7
_RUN = re.compile(rf"[^\W_]{{{RUN_MIN},}}")
# A group of digits as numbers are written: digits joined by single separators.
_DIGIT_GROUP = re.compile(r"\d(?:[ .\-/()\u00a0]?\d)*")


def _digit_windows(text: str, windows: set[str]) -> int:
    hits = 0
    for group in _DIGIT_GROUP.finditer(text):
        digits = digits_of(group.group())
        hits += sum(digits[i:i + DIGIT_WINDOW] in windows
                    for i in range(len(digits) - DIGIT_WINDOW + 1))
    return hits


def item_survives(source: str, output: str, item: dict[str, Any]) -> str | None:
    """Why the item is still in the output (None: it was removed).

    `source` is the labelled text, `output` the redactor's output read the same way (view()).
    Markers are blanked out of the output first. Each test compares the output with the source
    less the item itself, so a fragment that also occurs elsewhere in the source (a domain in
    another sentence) is not held against the redactor:
      "exact"   the item's text occurs more often in the output than in the rest of the source;
      "run"     one of its alphanumeric runs of RUN_MIN or more characters does (a key whose
                prefix was cut and whose body was kept, a card whose last group was kept);
      "digits"  for an item with DIGIT_WINDOW or more digits: a window of that many of its
                consecutive digits occurs more often in the output's digit groups (digits
                joined by single separators) than in the rest of the source's: a phone number
                whose country code alone was redacted, an IBAN cut into two matches.
    """
    start, end, text = item["start"], item["end"], item["text"]
    rest = source[:start] + "\x00" + source[end:]
    output = MARKER.sub("\x00", output)
    if output.count(text) > rest.count(text):
        return "exact"
    for run in dict.fromkeys(_RUN.findall(text)):
        if output.count(run) > rest.count(run):
            return "run"
    digits = digits_of(text)
    if len(digits) >= DIGIT_WINDOW:
        windows = {digits[i:i + DIGIT_WINDOW] for i in range(len(digits) - DIGIT_WINDOW + 1)}
        if _digit_windows(output, windows) > _digit_windows(rest, windows):
            return "digits"
    return None


def negative_touched(source: str, output: str, negative: dict[str, Any]) -> bool:
    """A negative was falsely redacted when any character of it was replaced: its text occurs
    fewer times in the output than in the source."""
    text = negative["text"]
    return output.count(text) < source.count(text)


def spans(case: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from case["items"]
    yield from case["negatives"]
