"""Write the labelled PII and secrets corpus: bench/pii/dev.jsonl and bench/pii/heldout.jsonl.

    python bench/pii/make_corpus.py            # rewrite both files
    python bench/pii/make_corpus.py --check    # rebuild in memory, fail if the files differ

Deterministic: each split has its own seed and its own hand-written templates (templates.py);
the sensitive items and hard negatives come from generators.py (phonenumbers and python-stdnum
make the numbers and their checksums). A share of the texts is wrapped, the way the sidecar sees
gen_ai.input.messages / gen_ai.output.messages, in a JSON messages document whose strings are
escaped in one of several styles (\\u00f6, \\u0040, \\/ ...); those cases keep their labels on
the decoded text (see bench/_pii.py for the case format). Needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _pii import decode_escapes, luhn_ok  # noqa: E402
from generators import NEGATIVE, POSITIVE, filler  # noqa: E402
from templates import DEV, HELDOUT, Template  # noqa: E402

SPLITS: dict[str, tuple[list[Template], int, int]] = {
    # split: templates, seed, cases per template
    "dev": (DEV, 20261, 4),
    "heldout": (HELDOUT, 90417, 4),
}
ENVELOPE_SHARE = 0.3
SLOT = re.compile(r"⟦([^⟧]+)⟧")

# How the sidecar receives the text: a messages document, its strings escaped by a serialiser.
ENVELOPES = {
    "input_parts": ('[{"role":"user","parts":[{"type":"text","content":"', '"}]}]'),
    "input_system": ('[{"role":"system","parts":[{"type":"text","content":"You are a helpful '
                     'assistant."}]},{"role":"user","parts":[{"type":"text","content":"',
                     '"}]}]'),
    "input_legacy": ('[{"role": "user", "content": "', '"}]'),
    "output_parts": ('[{"role":"assistant","parts":[{"type":"text","content":"',
                     '"}],"finish_reason":"stop"}]'),
}
# min: json.dumps(ensure_ascii=False); ascii: ensure_ascii=True; php: also \/ (json_encode's
# default); html: also <, >, &, ' as \u003c... (Go's encoding/json); at: also @ as \u0040.
ESCAPE_STYLES = ("min", "ascii", "php", "html", "at")


def json_escape(text: str, style: str) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t\b\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[ch])
        elif o < 0x20 or (o > 0x7E and style != "min"):
            if o > 0xFFFF:
                o -= 0x10000
                out.append(f"\\u{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}")
            else:
                out.append(f"\\u{o:04x}")
        elif ch == "/" and style in ("php", "at"):
            out.append("\\/")
        elif ch in "<>&'" and style == "html":
            out.append(f"\\u{o:04x}")
        elif ch == "@" and style == "at":
            out.append("\\u0040")
        else:
            out.append(ch)
    return "".join(out)


def render(template: str, rng: random.Random) -> list[tuple[str, Any]]:
    """The template as pieces: (text, None) for literal text and fillers, (text, (label,
    negative)) for a labelled item."""
    pieces: list[tuple[str, Any]] = []
    used: set[str] = set()
    pos = 0
    for m in SLOT.finditer(template):
        pieces.append((template[pos:m.start()], None))
        pos = m.end()
        name, _, escape = m.group(1).partition("|")
        if name.startswith("="):
            pieces.append((filler(rng, name[1:]), None))
            continue
        negative = name.startswith("~")
        head, *args = name.lstrip("~").split(".")
        category, generate = (NEGATIVE if negative else POSITIVE)[head]
        args = ["" if a == "*" else a for a in args]
        for _ in range(50):  # one text never labels the same string twice
            value, kind = generate(rng, *args)
            if value not in used:
                break
        used.add(value)
        if escape == "json":
            value = json_escape(value, "min")
        label: dict[str, Any] = {"category": category, "kind": kind}
        if negative:
            compact = re.sub(r"[\s\-./]", "", value)
            if compact.isdigit() and 13 <= len(compact) <= 19:
                label["luhn"] = luhn_ok(compact)
        pieces.append((value, (label, negative)))
    pieces.append((template[pos:], None))
    return pieces


def make_case(split: str, index: int, template_id: str, lang: str, fmt: str, template: str,
              rng: random.Random) -> dict[str, Any]:
    pieces = render(template, rng)
    wrap = rng.random() < ENVELOPE_SHARE
    envelope, style = (rng.choice(list(ENVELOPES)), rng.choice(ESCAPE_STYLES)) if wrap else ("", "")
    decoded_parts: list[str] = []
    raw_parts: list[str] = []
    items: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    prefix, suffix = ENVELOPES[envelope] if wrap else ("", "")
    decoded_parts.append(prefix)
    raw_parts.append(prefix)
    offset = len(prefix)
    for text, label in pieces:
        if label is not None:
            info, negative = label
            entry = {"category": info["category"], "kind": info["kind"], "start": offset,
                     "end": offset + len(text), "text": text}
            if "luhn" in info:
                entry["luhn"] = info["luhn"]
            (negatives if negative else items).append(entry)
        decoded_parts.append(text)
        raw_parts.append(json_escape(text, style) if wrap else text)
        offset += len(text)
    decoded_parts.append(suffix)
    raw_parts.append(suffix)
    decoded, raw = "".join(decoded_parts), "".join(raw_parts)
    case: dict[str, Any] = {"id": f"{split}-{index:04d}", "split": split, "lang": lang,
                            "format": fmt, "template": template_id,
                            "encoding": "json" if wrap else "plain", "text": raw}
    if wrap:
        case["envelope"] = envelope
        case["escapes"] = style
        case["decoded"] = decoded
        assert decode_escapes(raw) == decoded, case["id"]
        json.loads(raw)
    case["items"] = items
    case["negatives"] = negatives
    return case


# Templates of the categories that few templates hold, and those of hard negatives only, are
# filled twice as often, so that every category has enough items to measure.
FEW = {"jwt", "pem", "ssn", "bank", "card", "auth"}


def repeats(template: str, per_template: int) -> int:
    heads = {m.group(1).split("|")[0].split(".")[0] for m in SLOT.finditer(template)}
    positives = {h for h in heads if not h.startswith(("~", "="))}
    return per_template * 2 if not positives or positives & FEW else per_template


def build(split: str) -> list[dict[str, Any]]:
    templates, seed, per_template = SPLITS[split]
    rng = random.Random(seed)
    cases = []
    for n, (lang, fmt, template) in enumerate(templates):
        template_id = f"{split}/{n:03d}"
        for _ in range(repeats(template, per_template)):
            cases.append(make_case(split, len(cases), template_id, lang, fmt, template, rng))
    return cases


def dumps(cases: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(c, ensure_ascii=False, sort_keys=False) + "\n" for c in cases)


def summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    pos = Counter(i["category"] for c in cases for i in c["items"])
    neg = Counter(i["category"] for c in cases for i in c["negatives"])
    return {"texts": len(cases), "negative_only_texts": sum(not c["items"] for c in cases),
            "json_encoded_texts": sum(c["encoding"] == "json" for c in cases),
            "positives": sum(pos.values()), "negatives": sum(neg.values()),
            "languages": dict(Counter(c["lang"] for c in cases).most_common()),
            "formats": dict(Counter(c["format"] for c in cases).most_common()),
            "positive_categories": dict(sorted(pos.items())),
            "negative_categories": dict(sorted(neg.items())),
            "luhn_passing_negatives": sum(bool(i.get("luhn")) for c in cases
                                          for i in c["negatives"]),
            "digit_negatives_13_19": sum("luhn" in i for c in cases for i in c["negatives"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    stale = []
    for split in SPLITS:
        cases = build(split)
        path = HERE / f"{split}.jsonl"
        text = dumps(cases)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        path.write_text(text, encoding="utf-8")
        print(split, json.dumps(summary(cases), ensure_ascii=False, indent=1))
    if stale:
        sys.exit(f"stale: {', '.join(stale)} (run python bench/pii/make_corpus.py)")


if __name__ == "__main__":
    main()
