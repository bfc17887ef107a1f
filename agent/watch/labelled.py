"""Labelled texts for train-watcher and eval-watcher: CSV (or TSV) and JSONL, by extension.

Labels are 0/1, true/false or yes/no (any case; 1.0/0.0 as spreadsheets write them too), or,
with `positive`, any values: those listed are 1 and every other value is 0 (Davidson's
`class` column, 0=hate 1=offensive 2=neither, with positive=["0", "1"]). A label that is
neither fails with the row, the line and the value; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRUE = frozenset({"1", "true", "yes", "1.0"})
FALSE = frozenset({"0", "false", "no", "0.0"})
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class LabelledDataError(ValueError):
    """A labelled file that cannot be read as asked: the message names the row and value."""


@dataclass
class Labelled:
    texts: list[str]
    labels: list[int]
    source: str
    text_col: str
    label_col: str
    positive: list[str] | None = None
    lines: list[int] = field(default_factory=list)

    @property
    def positives(self) -> int:
        return sum(self.labels)

    def fingerprint(self) -> str:
        return fingerprint(self.texts, self.labels)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "text_col": self.text_col, "label_col": self.label_col,
                "positive": self.positive, "rows": len(self.labels),
                "positives": self.positives, "fingerprint": self.fingerprint()}

    def subset(self, rows: Sequence[int]) -> Labelled:
        return Labelled([self.texts[i] for i in rows], [self.labels[i] for i in rows],
                        self.source, self.text_col, self.label_col, self.positive,
                        [self.lines[i] for i in rows] if self.lines else [])


def fingerprint(texts: Sequence[str], labels: Sequence[int]) -> str:
    """sha256 of the (text, label) pairs in order: which data a head was trained on."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f1\x1e" if label else b"\x1f0\x1e")
    return digest.hexdigest()


def parse_positive(value: str | Sequence[str] | None) -> list[str] | None:
    """--positive "0,1" (or a list) to the label values that count as positive."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [
        p for v in value for p in str(v).split(",")]
    values = [p.strip() for p in parts if p.strip()]
    if not values:
        raise LabelledDataError("--positive: give at least one label value, e.g. --positive 0,1")
    return values


def parse_label(value: Any, positive: list[str] | None, where: str, column: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LabelledDataError(f"{where}: no label in column {column!r}")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value).strip()
    if positive is not None:
        return int(text.lower() in {p.lower() for p in positive})
    lowered = text.lower()
    if lowered in TRUE:
        return 1
    if lowered in FALSE:
        return 0
    raise LabelledDataError(f"{where}: label {text!r} in column {column!r} is not 0/1, "
                            "true/false or yes/no (for other values, say which are positive: "
                            "--positive VALUE[,VALUE...])")


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise LabelledDataError(f"{path}: empty file, no header row")
        for number, row in enumerate(reader, start=1):
            yield f"{path} row {number} (line {reader.line_num})", reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as fh:
        number = 0
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            number += 1
            where = f"{path} row {number} (line {line_no})"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelledDataError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise LabelledDataError(f"{where}: expected a JSON object per line")
            yield where, line_no, row


def load_labelled(path: Path | str, text_col: str, label_col: str,
                  positive: str | Sequence[str] | None = None) -> Labelled:
    """Texts and 0/1 labels from a CSV/TSV or JSONL file (chosen by extension)."""
    path = Path(path)
    if not path.is_file():
        raise LabelledDataError(f"{path}: no such file")
    wanted = parse_positive(positive)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        rows = _csv_rows(path, CSV_SUFFIXES[suffix])
    elif suffix in JSONL_SUFFIXES:
        rows = _jsonl_rows(path)
    else:
        raise LabelledDataError(f"{path}: expected .csv, .tsv, .jsonl or .ndjson")
    data = Labelled([], [], str(path), text_col, label_col, wanted)
    for where, line, row in rows:
        missing = [c for c in (text_col, label_col) if c not in row]
        if missing:
            columns = ", ".join(repr(c) for c in row if c is not None)
            raise LabelledDataError(f"{where}: no column {missing[0]!r} (columns: {columns})")
        text = row[text_col]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise LabelledDataError(f"{where}: text in column {text_col!r} is "
                                    f"{type(text).__name__}, not a string")
        data.labels.append(parse_label(row[label_col], wanted, where, label_col))
        data.texts.append(text)
        data.lines.append(line)
    if not data.labels:
        raise LabelledDataError(f"{path}: no rows")
    return data
