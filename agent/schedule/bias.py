"""A bias job over one scope's window: do texts that mention a group get other watcher scores,
refusals or answer lengths (disparities), and does a probed watcher score a text differently
when only its group words change (counterfactual probes)? And, once per run, not per scope
(`pair_audits`): does it score the two texts of a file's minimal pairs differently?

One result per (metric, group), per (watcher label, swap pair) and per (watcher label, pairs
group). Groups and pairs the window never mentions are left out, those mentioned too rarely
are skipped results, and a metric without values or a probe that cannot run is one skipped
result saying why. Each family (disparities, probes, pair audits) is corrected together
(Holm), so that a run where nothing is biased alerts at most alpha of the time however many
groups it tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.agent.jobs import BiasSpec
from watchkeeper.agent.schedule.data import BiasWindow
from watchkeeper.agent.schedule.watchers import WatcherPool
from watchkeeper.agent.watch.labelled import LabelledDataError
from watchkeeper.agent.watch.pairs import load_pairs
from watchkeeper.detectors.bias import CounterfactualProbe, GroupDisparity, Lexicon, watcher_scorers
from watchkeeper.detectors.bias.audit import NAME as AUDIT
from watchkeeper.detectors.bias.audit import audit_pairs
from watchkeeper.detectors.result import DetectorResult, correct
from watchkeeper.detectors.watchers.base import WatcherLoadError, WatcherSpec

NO_VALUES = "no values in the window"


def analyse(spec: BiasSpec, rows: BiasWindow, alpha: float, pool: WatcherPool,
            ) -> list[DetectorResult]:
    lexicon = Lexicon.default().merged(spec.lexicon) if spec.lexicon else Lexicon.default()
    axes = spec.axes or list(lexicon.axes)
    return [*disparities(spec, lexicon, axes, rows, alpha),
            *probes(spec, lexicon, axes, rows, alpha, pool)]


def named(result: DetectorResult, signal: str, finding: str, **details: Any) -> DetectorResult:
    """The result with what it is about (`signal`: the flag's label and key) and a sentence for
    the review queue (`finding`)."""
    return result.model_copy(update={"details": {**result.details, **details,
                                                 "signal": signal, "finding": finding}})


def tagged_texts(spec: BiasSpec, rows: BiasWindow) -> list[str]:
    if spec.text == "prompt":
        return rows.prompts
    if spec.text == "completion":
        return rows.completions
    return [f"{p}\n{c}" for p, c in zip(rows.prompts, rows.completions, strict=True)]


def disparities(spec: BiasSpec, lexicon: Lexicon, axes: list[str], rows: BiasWindow,
                alpha: float) -> list[DetectorResult]:
    texts = tagged_texts(spec, rows)
    mentions = {axis: {g: np.asarray(m) for g, m in lexicon.mentions(texts, axis).items()}
                for axis in axes}
    references = {name: axis.reference for name, axis in lexicon.axes.items()}
    results = []
    for metric in spec.metrics:
        values = np.asarray(rows.metrics[metric.name], dtype=float)
        have = np.isfinite(values)
        if not have.any():
            results.append(named(DetectorResult.skipped("disparity", NO_VALUES, 0, 0, alpha),
                                 metric.name, f"{metric.name} has no values",
                                 metric=metric.name))
            continue
        test = GroupDisparity(lexicon=lexicon, metric=metric.name, kind=metric.kind,
                              alpha=alpha, correction="none", **spec.disparity().model_dump())
        kept = {axis: {g: m[have] for g, m in groups.items()} for axis, groups in
                mentions.items()}
        for r in test.test_mentions(kept, values[have], references):
            if r.n_current > 0:
                where = f"{r.details['axis']}:{r.details['group']}"
                results.append(named(r, f"{metric.name} {where}", f"{metric.name} differs for "
                                     f"{where} against {r.details['versus']}"))
    return correct(results, "holm")


def probe_texts(field: str, rows: BiasWindow) -> list[str] | None:
    """The texts a watcher reads (None for pair watchers, which read a completion against its
    prompt: a swap changes one text, so the probe would not be what the watcher sees)."""
    if field == "pair":
        return None
    texts = {"prompt": rows.prompts, "completion": rows.completions,
             "both": rows.prompts + rows.completions}[field]
    return [t for t in texts if t]


def probed(entry: str, pool: WatcherPool) -> tuple[str, WatcherSpec, Any, list[str]]:
    """(name, config entry, watcher, labels) of a `probes.watchers` entry ('name' or
    'name:label'); WatcherLoadError says why it cannot be probed."""
    name, _, label = entry.partition(":")
    watcher_spec, watcher = pool.get(name)
    if watcher_spec.field == "pair":
        raise WatcherLoadError(f"watcher {name!r} reads prompt and completion as a "
                               "pair; probes swap single texts")
    if label and label not in watcher.labels:
        raise WatcherLoadError(f"watcher {name!r} has no label {label!r} "
                               f"(labels: {', '.join(watcher.labels)})")
    return name, watcher_spec, watcher, [label] if label else list(watcher.labels)


def probes(spec: BiasSpec, lexicon: Lexicon, axes: list[str], rows: BiasWindow, alpha: float,
           pool: WatcherPool) -> list[DetectorResult]:
    settings = spec.probes
    probe = CounterfactualProbe(lexicon=lexicon, axes=axes, alpha=alpha, correction="none",
                                **settings.model_dump(exclude={"watchers", "pairs"}))
    results = []
    for entry in settings.watchers:
        try:
            name, watcher_spec, watcher, labels = probed(entry, pool)
        except WatcherLoadError as exc:
            results.append(named(DetectorResult.skipped("counterfactual", str(exc), 0, 0,
                                                        alpha), entry, f"{entry} not probed",
                                 watcher=entry.partition(":")[0]))
            continue
        texts = probe_texts(watcher_spec.field, rows) or []
        scorers = watcher_scorers(watcher, labels, watcher_spec.field)
        for each in labels:
            for r in probe.test(texts, scorers[each]):
                if r.details["n_texts"] > 0:
                    axis, (a, b) = r.details["axis"], r.details["pair"]
                    results.append(named(
                        r, f"{name}:{each} {axis}:{a}/{b}",
                        f"{name}:{each} moves when {axis} {a} is swapped for {b}",
                        watcher=name, label=each))
    return correct(results, "holm")


def pair_audits(spec: BiasSpec, alpha: float, pool: WatcherPool) -> list[DetectorResult]:
    """`probes.pairs` audited with each probed watcher label: one result per (label, group),
    Holm across all of them. The file does not depend on the window, so the service runs this
    once per run, not once per scope."""
    pairs_spec = spec.probes.pairs
    if pairs_spec is None:
        return []
    try:
        pairs = load_pairs(pairs_spec.file, pairs_spec.a_col, pairs_spec.b_col,
                           pairs_spec.group_col)
    except LabelledDataError as exc:
        return [named(DetectorResult.skipped(AUDIT, str(exc), 0, 0, alpha), "pairs",
                      f"{pairs_spec.file} not audited")]
    results = []
    for entry in spec.probes.watchers:
        try:
            name, watcher_spec, watcher, labels = probed(entry, pool)
        except WatcherLoadError as exc:
            results.append(named(DetectorResult.skipped(AUDIT, str(exc), 0, 0, alpha),
                                 f"{entry} pairs", f"{entry} not audited on pairs",
                                 watcher=entry.partition(":")[0]))
            continue
        scorers = watcher_scorers(watcher, labels, watcher_spec.field)
        for each in labels:
            audit = audit_pairs(scorers[each](pairs.a), scorers[each](pairs.b), pairs.groups,
                                alpha=alpha, tolerance=pairs_spec.tolerance,
                                correction="none")
            for group, r in audit.groups.items():
                results.append(named(
                    r, f"{name}:{each} pairs {group}",
                    f"{name}:{each} moves {r.effect_size or 0:+.3f} from a to b in the {group} "
                    f"pairs (tolerance ±{pairs_spec.tolerance:g})", watcher=name, label=each,
                    pairs=pairs.source))
    return correct(results, "holm")
