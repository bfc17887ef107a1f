"""`watchkeeper audit-watcher`: a bias audit of one watcher on minimal pairs.

With `--pairs FILE`, the pairs are the file's: column a (the reference group's text), column b
(the same text about the group), and the group (`--group-col`; without it every pair is in
group "all"). Without it they are made from stored texts: a sample of the store's prompts and
completions (`--since`, `--limit`) that mention a group of the lexicon, each with its group
words swapped for the axis's reference group (the counterfactual probe's swaps), in groups
"axis:a/b". Both texts of each pair are scored as the watch service scores them
(eval-watcher's watcher lookup and scoring), and the differences are tested by
detectors/bias/audit.py: per group n, mean difference b - a, its interval, a p-value against
±tolerance, Holm across groups, flagged. Printed as a table, written as JSON with --out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from watchkeeper.agent.config import Settings
from watchkeeper.agent.durations import parse_duration
from watchkeeper.agent.jobs import DetectorJob
from watchkeeper.agent.schedule import data
from watchkeeper.agent.schedule.adhoc import store_access
from watchkeeper.agent.schedule.bias import probe_texts
from watchkeeper.agent.watch.evaluation import (
    EvaluationError,
    console,
    pick_label,
    progress_bar,
    resolve_watcher,
    score_texts,
)
from watchkeeper.agent.watch.labelled import LabelledDataError
from watchkeeper.agent.watch.pairs import Pairs, load_pairs
from watchkeeper.detectors.bias.audit import TEST, audit_pairs
from watchkeeper.detectors.bias.options import PairAuditOptions

TOLERANCE = PairAuditOptions().tolerance


class AuditError(ValueError):
    """The audit cannot run as asked: the message says why."""


# What the command reports as bad input (exit code 2), not as a failure.
INPUT_ERRORS = (AuditError, EvaluationError, LabelledDataError)


@dataclass(frozen=True)
class AuditRequest:
    """`watchkeeper audit-watcher`: audit a watcher on a pairs file, or on stored texts with
    their group words swapped."""

    watcher: str  # a configured watcher, a trained head (NAME or NAME@vN), or a built-in
    pairs: Path | None = None  # CSV/TSV or JSONL of minimal pairs; None: stored texts
    a_col: str | None = None
    b_col: str | None = None
    group_col: str | None = None  # None: every pair in group "all"
    label: str | None = None  # the watcher's label (default: see evaluation.pick_label)
    alpha: float = 0.05
    tolerance: float = TOLERANCE
    since: str = "7d"  # stored texts: how far back
    limit: int = 5000  # stored texts: at most this many samples, at random
    text: Literal["prompt", "completion", "both"] = "both"  # stored texts: which to swap
    axes: tuple[str, ...] = ()  # stored texts: default every axis of the lexicon
    api: str | None = None  # a running agent's API (default: the store's owner, if one runs)
    token: str | None = None
    out: Path | None = None  # also write the report here as JSON


def file_pairs(request: AuditRequest) -> Pairs:
    if request.pairs is None or not (request.a_col and request.b_col):
        raise AuditError("--pairs needs --a-col and --b-col")
    return load_pairs(request.pairs, request.a_col, request.b_col, request.group_col)


def stored_pairs(settings: Settings, request: AuditRequest) -> Pairs:
    """Pairs from a sample of stored texts, by the counterfactual probe's swaps."""
    from watchkeeper.detectors.bias import CounterfactualProbe, Lexicon

    try:
        parse_duration(request.since)
    except ValueError as exc:
        raise AuditError(f"--since: {exc}") from None
    if request.limit < 1:
        raise AuditError(f"--limit {request.limit}: must be at least 1")
    lexicon = Lexicon.default()
    unknown = [a for a in request.axes if a not in lexicon.axes]
    if unknown:
        raise AuditError(f"--axes: unknown axis {unknown[0]!r} (known: {', '.join(lexicon.axes)})")
    job = DetectorJob.model_validate({
        "name": "audit", "kind": "bias", "window": request.since, "every": None, "scope": [],
        "max_samples": request.limit, "bias": {"metrics": []}})
    current, _ = job.windows(datetime.now(UTC))
    with store_access(settings, request.api, request.token) as read:
        windows = data.bias_window(read, settings.store.database, job, current)
    texts = [t for rows in windows.values() for t in probe_texts(request.text, rows) or []]
    probe = CounterfactualProbe(lexicon=lexicon, axes=list(request.axes) or None)
    pairs = Pairs([], [], [], f"{len(texts)} stored {request.text} texts since {request.since}")
    for axis, a, b, swapped in probe.minimal_pairs(texts):
        for a_text, b_text in swapped:
            pairs.a.append(a_text)
            pairs.b.append(b_text)
            pairs.groups.append(f"{axis}:{a}/{b}")
    if not pairs.a:
        raise AuditError(f"none of the {len(texts)} stored texts since {request.since} "
                         "mentions a group of the lexicon: no pairs to audit")
    return pairs


def run_audit(settings: Settings, request: AuditRequest, pairs: Pairs,
              show_progress: bool = True) -> dict[str, Any]:
    """Score both texts of every pair (each distinct text once) and test the differences."""
    try:
        PairAuditOptions(tolerance=request.tolerance)
    except ValueError:
        raise AuditError(f"--tolerance {request.tolerance}: must be >= 0") from None
    if not 0 < request.alpha < 1:
        raise AuditError(f"--alpha {request.alpha}: must be between 0 and 1")
    watcher, thresholds, origin = resolve_watcher(settings, request.watcher)
    label = pick_label(watcher, thresholds, request.label)
    texts = list(dict.fromkeys(pairs.a + pairs.b))
    with progress_bar(f"scoring with {watcher.name}", len(texts),
                      enabled=show_progress) as advance:
        scores, errors = score_texts(watcher, texts, label, advance)
    scored = {t: s for t, s in zip(texts, scores, strict=True) if s is not None}
    if not scored:
        raise EvaluationError(f"{watcher.name} failed on every text: {errors[:3]}")
    nan = float("nan")
    audit = audit_pairs([scored.get(t, nan) for t in pairs.a],
                        [scored.get(t, nan) for t in pairs.b], pairs.groups,
                        alpha=request.alpha, tolerance=request.tolerance)
    failed = sum(1 for a, b in zip(pairs.a, pairs.b, strict=True)
                 if a not in scored or b not in scored)
    return {"watcher": watcher.name, "origin": origin, "version": watcher.version,
            "label": label, "alpha": request.alpha, "tolerance": request.tolerance,
            "test": TEST, "data": pairs.describe(), "pairs_failed": failed,
            "error_messages": errors[:10],
            "audited": datetime.now(UTC).isoformat(timespec="seconds"), **audit.as_dict()}


def print_audit(report: dict[str, Any], title: str) -> None:
    out = console()
    table = Table(title=title, caption=f"{report['test']}; tolerance ±{report['tolerance']:g}, "
                                       f"alpha {report['alpha']:g}; overall: all pairs, one "
                                       "test, not corrected")
    for column in ("group", "n", "mean b - a", f"{1 - report['alpha']:.0%} CI", "p (Holm)",
                   "flagged"):
        table.add_column(column, justify="left" if column == "group" else "right")

    def line(group: str, r: dict[str, Any]) -> list[str]:
        def num(x: float | None) -> str:
            return "-" if x is None else f"{x:+.3f}"

        interval = "-" if r["ci_low"] is None else f"[{num(r['ci_low'])}, {num(r['ci_high'])}]"
        p_value = (r.get("reason") or "-") if r["p_value"] is None else f"{r['p_value']:.3g}"
        return [group, str(r["n"]), num(r["mean_diff"]), interval, p_value,
                "[red]FLAGGED[/red]" if r["flagged"] else "no"]

    for group, r in report["groups"].items():
        table.add_row(*line(group, r))
    table.add_section()
    table.add_row(*line("overall", report["overall"]))
    out.print(table)
    if report["pairs_failed"]:
        out.print(f"[yellow]{report['pairs_failed']} pairs left out: the watcher failed on a "
                  f"text ({report['error_messages'][:3]})[/yellow]")


def audit_watcher(settings: Settings, request: AuditRequest) -> int:
    pairs = file_pairs(request) if request.pairs is not None else \
        stored_pairs(settings, request)
    report = run_audit(settings, request, pairs)
    print_audit(report, f"{report['watcher']} {report['version']} · label {report['label']} · "
                        f"{pairs.source}")
    if request.out is not None:
        request.out.parent.mkdir(parents=True, exist_ok=True)
        request.out.write_text(json.dumps(report, indent=2) + "\n")
        console().print(f"report written to {request.out}")
    return 0

