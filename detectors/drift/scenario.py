"""Power curves: how often each detector alerts when a given share of a window comes from
another corpus. The engine of `watchkeeper eval-drift`, pure given arrays and a seed.

Each trial draws a reference window of `window` rows and a disjoint current window of
`window` rows from the reference corpus, then replaces round(level * window) rows of the
current window with rows of the shifted corpus. At level 0 the detection rate is the false-
alarm rate, which should stay at or below alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.detectors.drift.base import Detector
from watchkeeper.detectors.result import DetectorResult

Rates = dict[str, dict[float, float]]
# Called after every detector run: (detector name, level, trial, result, seconds).
OnTrial = Callable[[str, float, int, DetectorResult, float], None]


def window_rows(n_reference: int, n_shifted: int, window: int, level: float,
                rng: np.random.Generator) -> tuple[NDArray[np.int_], NDArray[np.int_],
                                                   NDArray[np.int_]]:
    """Row numbers of one trial: the reference window, the current window's rows from the
    reference corpus, and its round(level * window) rows from the shifted corpus."""
    k = round(level * window)
    if 2 * window - k > n_reference:
        raise ValueError(f"the reference corpus has {n_reference} rows; two windows of "
                         f"{window} need {2 * window - k}")
    if k > n_shifted:
        raise ValueError(f"the shifted corpus has {n_shifted} rows; level {level} of "
                         f"{window} needs {k}")
    rows = rng.choice(n_reference, size=2 * window - k, replace=False)
    return rows[:window], rows[window:], rng.choice(n_shifted, size=k, replace=False)


def draw_windows(reference: NDArray[Any], shifted: NDArray[Any], window: int, level: float,
                 rng: np.random.Generator) -> tuple[NDArray[Any], NDArray[Any]]:
    """A reference window and a current window whose `level` share comes from `shifted`."""
    ref_rows, cur_rows, shifted_rows = window_rows(len(reference), len(shifted), window,
                                                   level, rng)
    return reference[ref_rows], np.concatenate([reference[cur_rows], shifted[shifted_rows]])


def run_scenario(reference: ArrayLike, shifted: ArrayLike,
                 detectors: Mapping[str, Detector], *, window: int,
                 levels: Sequence[float] = (0.0, 0.05, 0.1, 0.2), trials: int = 50,
                 random_state: int | None = 0, on_trial: OnTrial | None = None) -> Rates:
    """{detector: {level: detection rate over `trials`}}.

    Every detector sees the same windows in a trial, so their rates compare like for like;
    trials draw from one generator, level by level, so `window_rows` with the same seed
    reproduces the windows (the benchmark hands them to other libraries). A run that did not
    test (too few rows) counts as no detection.
    """
    import time

    ref_corpus, shifted_corpus = np.asarray(reference), np.asarray(shifted)
    rng = np.random.default_rng(random_state)
    hits = {name: dict.fromkeys(levels, 0) for name in detectors}
    for level in levels:
        for trial in range(trials):
            ref, current = draw_windows(ref_corpus, shifted_corpus, window, level, rng)
            for name, detector in detectors.items():
                started = time.perf_counter()
                result = detector.fit(ref).test(current)
                if on_trial is not None:
                    on_trial(name, level, trial, result, time.perf_counter() - started)
                hits[name][level] += int(result.alert)
    return {name: {level: count / trials for level, count in by_level.items()}
            for name, by_level in hits.items()}


def plot_power_curves(rates: Mapping[str, Mapping[float, float]], path: str | Path, *,
                      alpha: float | None = 0.05, title: str | None = None) -> Path:
    """Detection rate against level, one line per detector, written to a PNG.

    Needs matplotlib (the `watchers` extra); without it, says so instead of a bare ImportError.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plotting power curves needs matplotlib: "
                           "pip install 'watchkeeper[watchers]' (or pip install matplotlib)"
                           ) from exc
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, by_level in rates.items():
        levels = sorted(by_level)
        ax.plot(levels, [by_level[lv] for lv in levels], marker="o", label=name)
    if alpha is not None:
        ax.axhline(alpha, color="grey", linestyle=":", linewidth=1, label=f"alpha = {alpha:g}")
    ax.set_xlabel("share of the current window from the shifted corpus")
    ax.set_ylabel("detection rate (level 0: false alarms)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
