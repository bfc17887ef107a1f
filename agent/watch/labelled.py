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


@dataclass(frozen=True)
class LabelledFile:
    """One `--data` file and how to read it: its text and label columns and, for labels that
    are not 0/1, the values that count as positive (comma-separated)."""

    path: Path
    text_col: str
    label_col: str
    positive: str | None = None

    def load(self) -> Labelled:
        return load_labelled(self.path, self.text_col, self.label_col, self.positive)


def labelled_files(paths: Sequence[Path], text_cols: Sequence[str], label_cols: Sequence[str],
                   positives: Sequence[str] | None = None) -> list[LabelledFile]:
    """Repeated --data, --text-col, --label-col and --positive options paired up: each column
    option is given once (shared by every file) or once per file, in the order of the files."""
    def per_file(option: str, values: Sequence[str], optional: bool = False) -> list[str | None]:
        if not values and optional:
            return [None] * len(paths)
        if len(values) == 1:
            return [values[0]] * len(paths)
        if len(values) == len(paths):
            return list(values)
        raise LabelledDataError(f"{option} given {len(values)} times for {len(paths)} --data "
                                f"files: give it once (shared) or once per file, in order")

    texts = per_file("--text-col", text_cols)
    labels = per_file("--label-col", label_cols)
    positive = per_file("--positive", positives or [], optional=True)
    return [LabelledFile(Path(path), str(text), str(label), wanted)
            for path, text, label, wanted in zip(paths, texts, labels, positive, strict=True)]


@dataclass
class Labelled:
    texts: list[str]
    labels: list[int]
    source: str
    text_col: str
    label_col: str
    positive: list[str] | None = None
    lines: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # per row: its positive value's weight

    @property
    def positives(self) -> int:
        return sum(self.labels)

    def fingerprint(self) -> str:
        return fingerprint(self.texts, self.labels)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "text_col": self.text_col, "label_col": self.label_col,
                "positive": self.positive, "rows": len(self.labels),
                "positives": self.positives, "fingerprint": self.fingerprint()}

    @property
    def name(self) -> str:
        """The file's name: what per-source tables call it."""
        return Path(self.source).name

    def subset(self, rows: Sequence[int]) -> Labelled:
        return Labelled([self.texts[i] for i in rows], [self.labels[i] for i in rows],
                        self.source, self.text_col, self.label_col, self.positive,
                        [self.lines[i] for i in rows] if self.lines else [],
                        [self.weights[i] for i in rows] if self.weights else [])


def fingerprint(texts: Sequence[str], labels: Sequence[int]) -> str:
    """sha256 of the (text, label) pairs in order: which data a head was trained on."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f1\x1e" if label else b"\x1f0\x1e")
    return digest.hexdigest()


def parse_positive(value: str | Sequence[str] | None) -> dict[str, float] | None:
    """--positive "0:5,1" (or a list) to the label values that count as positive, each with
    its weight among the positives (default 1; "0:5": a row labelled 0 counts five times)."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [
        p for v in value for p in str(v).split(",")]
    wanted: dict[str, float] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        label, _, weight = part.rpartition(":") if ":" in part else (part, "", "1")
        try:
            number = float(weight)
        except ValueError:
            number = -1.0
        if not label.strip() or not 0 < number < float("inf"):
            raise LabelledDataError(f"--positive {part!r}: expected VALUE or VALUE:WEIGHT "
                                    "with a positive weight, e.g. --positive 0:5,1")
        wanted[label.strip().lower()] = number
    if not wanted:
        raise LabelledDataError("--positive: give at least one label value, e.g. --positive 0,1")
    return wanted


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_label(value: Any, positive: dict[str, float] | None, where: str, column: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LabelledDataError(f"{where}: no label in column {column!r}")
    lowered = _label_text(value).lower()
    if positive is not None:
        return int(lowered in positive)
    if lowered in TRUE:
        return 1
    if lowered in FALSE:
        return 0
    raise LabelledDataError(f"{where}: label {_label_text(value)!r} in column {column!r} is not "
                            "0/1, true/false or yes/no (for other values, say which are "
                            "positive: --positive VALUE[,VALUE...])")


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


def read_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, line, row) for each row of a CSV/TSV or JSONL file, chosen by extension;
    `where` names the file, the row and the line for error messages."""
    if not path.is_file():
        raise LabelledDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _csv_rows(path, CSV_SUFFIXES[suffix])
    if suffix in JSONL_SUFFIXES:
        return _jsonl_rows(path)
    raise LabelledDataError(f"{path}: expected .csv, .tsv, .jsonl or .ndjson")


def load_labelled(path: Path | str, text_col: str, label_col: str,
                  positive: str | Sequence[str] | None = None) -> Labelled:
    """Texts and 0/1 labels from a CSV/TSV or JSONL file (chosen by extension)."""
    path = Path(path)
    wanted = parse_positive(positive)
    rows = read_rows(path)
    data = Labelled([], [], str(path), text_col, label_col,
                    None if wanted is None else [f"{k}:{w:g}" if w != 1 else k
                                                 for k, w in wanted.items()])
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
        label = parse_label(row[label_col], wanted, where, label_col)
        data.labels.append(label)
        if wanted is not None and label:
            data.weights.append(wanted[_label_text(row[label_col]).lower()])
        else:
            data.weights.append(1.0)
        data.texts.append(text)
        data.lines.append(line)
    if not data.labels:
        raise LabelledDataError(f"{path}: no rows")
    return data
