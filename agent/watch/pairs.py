"""Minimal pairs for a bias audit (audit-watcher, a bias job's `probes.pairs`): two texts that
differ only in the group they mention, and the group, from named columns of a CSV/TSV or JSONL
file (by extension). Rows are read with labelled.read_rows, so a broken file fails the same
way, naming the row and the line; an empty text or group fails too, nothing is skipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchkeeper.agent.watch.labelled import LabelledDataError, read_rows
from watchkeeper.detectors.bias.audit import ALL


@dataclass(frozen=True)
class Pairs:
    a: list[str]
    b: list[str]
    groups: list[str]
    source: str

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "pairs": len(self.a),
                "groups": sorted(set(self.groups))}


def _text(row: dict[str, Any], column: str, where: str) -> str:
    value = "" if row[column] is None else row[column]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise LabelledDataError(f"{where}: column {column!r} holds "
                                f"{type(value).__name__}, not text")
    text = str(value).strip()
    if not text:
        raise LabelledDataError(f"{where}: column {column!r} is empty")
    return text


def load_pairs(path: Path | str, a_col: str, b_col: str, group_col: str | None = None
               ) -> Pairs:
    """The pairs of a file; without `group_col` every pair is in group "all"."""
    path = Path(path)
    rows = read_rows(path)
    wanted = [c for c in (a_col, b_col, group_col) if c is not None]
    pairs = Pairs([], [], [], str(path))
    for where, _, row in rows:
        missing = [c for c in wanted if c not in row]
        if missing:
            columns = ", ".join(repr(c) for c in row if c is not None)
            raise LabelledDataError(f"{where}: no column {missing[0]!r} (columns: {columns})")
        pairs.a.append(_text(row, a_col, where))
        pairs.b.append(_text(row, b_col, where))
        pairs.groups.append(ALL if group_col is None else _text(row, group_col, where))
    if not pairs.a:
        raise LabelledDataError(f"{path}: no rows")
    return pairs
