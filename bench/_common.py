"""Shared helpers of the benchmark scripts: the machine description, statistics, output.

Every script records where it ran (CPU, cores, RAM, Python, package versions) next to its
numbers, because a number without its machine cannot be compared with anything.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
# Wide enough for the tables when output goes to a file or a pipe (rich assumes 80 columns).
console = Console() if sys.stdout.isatty() else Console(width=160)


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM and Python: the context every result needs."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def git_state() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (the tree is shared)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  check=False, timeout=10).stdout
        except OSError:
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--porcelain").splitlines()
                         if line[:2].strip() == "M"]}


def versions(names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the repetitions, as reported in every table."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def write_json(name: str, payload: dict[str, Any], tag: str | None = None) -> Path:
    """bench/out/<name>.json, or <name>-<tag>.json for a variant run."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / (f"{name}-{tag}.json" if tag else f"{name}.json")
    payload = {"benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "machine": machine(), "git": git_state(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title)
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(str(c) for c in row))
    console.print(t)


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"
