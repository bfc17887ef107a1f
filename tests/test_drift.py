"""Drift detectors: the contract for all of them, statistics against scipy and hand
computations, false alarms at their level when nothing changed, planted shifts found."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from watchkeeper.detectors.drift import (
    DETECTORS,
    ChiSquaredDetector,
    ClassifierDetector,
    Detector,
    KSDetector,
    MMDDetector,
    PCAKSDetector,
    PSIDetector,
    Signal,
    Window,
    build,
    compare_windows,
    current_window,
    detect_signals,
    in_window,
    subsample,
)
from watchkeeper.detectors.drift.scalar import psi
from watchkeeper.detectors.drift.scenario import plot_power_curves, run_scenario
from watchkeeper.detectors.result import TOO_FEW, DetectorResult, correct
from watchkeeper.detectors.stats import adjust_p_values, column_p_values, permutation_p_value

ALPHA = 0.05


def clustered(n: int, d: int, rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    """Unit vectors around topic centres, like sentence embeddings."""
    x = centers[rng.integers(len(centers), size=n)] + 0.6 * rng.normal(size=(n, d)) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sample_for(kind: str, rng: np.random.Generator, n: int, shift: float = 0.0) -> Any:
    if kind == "embedding":
        x = rng.normal(size=(n, 8))
        x[:, 0] += shift
        return x
    if kind == "continuous":
        return rng.normal(shift, 1.0, size=n)
    return rng.choice(["stop", "length", "content_filter"], size=n,
                      p=[0.7 - shift / 2, 0.2 + shift / 2, 0.1])


def max_false_alarms(trials: int, alpha: float = ALPHA) -> float:
    """The most false alarms a detector at level alpha shows in `trials` with chance 99.9%."""
    return float(stats.binom.ppf(0.999, trials, alpha)) / trials


# --- the contract, for every detector -------------------------------------------------------
@pytest.mark.parametrize("name", list(DETECTORS))
def test_contract(name: str) -> None:
    cls = DETECTORS[name]
    rng = np.random.default_rng(1)
    detector = cls()
    assert isinstance(detector, Detector)
    with pytest.raises(RuntimeError):
        detector.test(sample_for(cls.kind, rng, 50))
    reference = sample_for(cls.kind, rng, 200)
    current = sample_for(cls.kind, rng, 200, shift=1.0)
    assert detector.fit(reference) is detector
    first = detector.test(current)
    assert isinstance(first, DetectorResult) and first.ran
    assert first.detector == name and first.threshold == ALPHA
    assert first.alert and first.p_value is not None and first.p_value < ALPHA
    assert (first.n_reference, first.n_current) == (200, 200)
    # pure given the seed: the same answer again, and from a fresh detector
    assert detector.test(current) == first
    assert cls().fit(reference).test(current) == first
    # JSON-friendly: the row for detector_runs round-trips
    assert DetectorResult.model_validate_json(first.model_dump_json()) == first
    json.dumps(first.model_dump())
    # too few samples: a result with the reason, not an exception
    few = cls().fit(reference).test(sample_for(cls.kind, rng, 5))
    assert not few.alert and not few.ran and few.details["reason"] == TOO_FEW
    assert cls().fit(sample_for(cls.kind, rng, 5)).test(current).details["reason"] == TOO_FEW
    assert set(cls().get_params()) >= {"alpha", "min_samples", "max_samples", "random_state"}


def test_build_by_name() -> None:
    assert isinstance(build("mmd", n_permutations=50), MMDDetector)
    with pytest.raises(ValueError, match="unknown drift detector"):
        build("nope")
    with pytest.raises(ValueError, match="bogus"):
        build("ks", bogus=1)


def test_result_is_flat_json() -> None:
    result = DetectorResult(detector="x", statistic=float("nan"), p_value=np.float64(0.5),
                            threshold=0.05, effect_size=np.float32(0.25), alert=False,
                            n_reference=1, n_current=2,
                            details={"a": np.arange(3), "b": np.bool_(True), "c": (1.5, np.nan)})
    assert result.statistic is None and result.effect_size == 0.25
    assert result.details == {"a": [0, 1, 2], "b": True, "c": [1.5, None]}
    assert "p=0.5" in result.summary()


# --- statistics against scipy and by hand ---------------------------------------------------
def test_ks_equals_scipy() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.standard_t(3, size=250)
    ours = KSDetector().fit(a).test(b)
    theirs = stats.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue)


def test_missing_values_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=100)
    b = [*rng.normal(size=100), None, float("nan")]
    result = KSDetector().fit(a).test(b)
    assert result.n_current == 100 and result.details["dropped_missing"] == [0, 2]


def test_chi_squared_equals_scipy_with_unseen_categories() -> None:
    rng = np.random.default_rng(4)
    ref = rng.choice(["stop", "length"], size=400, p=[0.8, 0.2])
    cur = np.r_[rng.choice(["stop", "length"], size=360, p=[0.8, 0.2]), ["tool_calls"] * 40]
    result = ChiSquaredDetector().fit(ref).test(cur)
    table = np.array([[np.sum(ref == c) for c in ("length", "stop", "tool_calls")],
                      [np.sum(cur == c) for c in ("length", "stop", "tool_calls")]])
    theirs = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(theirs.statistic)
    assert result.p_value == pytest.approx(theirs.pvalue)
    assert result.details["unseen_in_reference"] == ["tool_calls"] and result.alert
    assert result.effect_size == pytest.approx(math.sqrt(theirs.statistic / table.sum()))


def test_chi_squared_pools_rare_categories_and_takes_booleans() -> None:
    ref = ["a"] * 200 + ["b"] * 200 + ["x", "y"]
    cur = ["a"] * 200 + ["b"] * 200 + ["z", "w"]
    result = ChiSquaredDetector().fit(ref).test(cur)
    assert result.details["categories"] == ["a", "b", "(other)"] and not result.alert
    rates = ChiSquaredDetector().fit([True] * 20 + [False] * 380).test([True] * 80 + [False] * 320)
    assert rates.alert and rates.details["categories"] == ["False", "True"]


def test_psi_zero_for_identical_and_hand_computed_for_a_known_shift() -> None:
    reference = np.arange(1000) / 1000.0  # deciles as bins: 10% in each
    same = PSIDetector().fit(reference).test(reference)
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and not same.alert
    current = reference[reference < 0.5]  # all mass in the lower five bins
    shifted = PSIDetector().fit(reference).test(current)
    by_hand = 5 * (0.2 - 0.1) * math.log(0.2 / 0.1) + 5 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert shifted.statistic == pytest.approx(by_hand)
    assert shifted.details["band"] == "major" and shifted.alert
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_psi_needs_a_moderate_change_to_alert() -> None:
    rng = np.random.default_rng(5)
    big = PSIDetector().fit(rng.normal(size=20000)).test(rng.normal(0.1, size=20000))
    assert big.p_value is not None and big.p_value < ALPHA
    assert big.statistic is not None and big.statistic < 0.1
    assert not big.alert and big.details["negligible"]


def test_multiple_testing_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2])
    assert adjust_p_values(p, "bh") == pytest.approx(stats.false_discovery_control(p))
    assert adjust_p_values(p, "bonferroni") == pytest.approx(np.minimum(p * 5, 1))
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, running max
    assert adjust_p_values(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2])
    assert permutation_p_value(10.0, [1.0, 2.0, 10.0]) == pytest.approx(0.5)
    t = np.array([10.0, 1.0, 2.0, 10.0])
    assert column_p_values(t) == pytest.approx([0.5, 1.0, 0.75, 0.5])
    assert column_p_values(t)[0] == pytest.approx(permutation_p_value(t[0], t[1:]))


# --- false alarms when nothing changed ------------------------------------------------------
@pytest.mark.parametrize(("name", "params"), [
    ("mmd", {"n_permutations": 200}), ("classifier", {"n_permutations": 200}),
    ("pca_ks", {"n_components": 10})])
def test_embedding_detectors_hold_their_level(name: str, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(6)
    centers = rng.normal(size=(8, 32)) / np.sqrt(32)
    trials = 100
    alarms = 0
    for trial in range(trials):
        detector = build(name, random_state=trial, **params)
        a, b = clustered(120, 32, rng, centers), clustered(120, 32, rng, centers)
        alarms += detector.fit(a).test(b).alert
    assert alarms / trials <= max_false_alarms(trials)


@pytest.mark.parametrize("name", ["ks", "psi", "chi2"])
def test_scalar_detectors_hold_their_level(name: str) -> None:
    rng = np.random.default_rng(7)
    kind = DETECTORS[name].kind
    p_values = []
    for _ in range(300):
        # PSI is judged on its p-value alone here (its min_psi rule only lowers alarms)
        detector = build(name, **({"min_psi": 0.0} if name == "psi" else {}))
        result = detector.fit(sample_for(kind, rng, 300)).test(sample_for(kind, rng, 300))
        p_values.append(result.p_value)
    assert np.mean(np.array(p_values) < ALPHA) <= max_false_alarms(300)


def test_pooled_pca_treats_both_windows_alike() -> None:
    """Pooled PCA treats both windows alike; its statistics are exchangeable under no change
    (mean KS distance about the same whichever window is 'current')."""
    rng = np.random.default_rng(8)
    centers = rng.normal(size=(8, 64)) / np.sqrt(64)
    a, b = clustered(150, 64, rng, centers), clustered(150, 64, rng, centers)
    forward = PCAKSDetector().fit(a).test(b)
    backward = PCAKSDetector().fit(b).test(a)
    assert forward.details["ks_statistics"] == backward.details["ks_statistics"]


# --- planted shifts -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mmd", "classifier", "pca_ks"])
def test_mean_shift_in_a_few_dimensions_is_found(name: str) -> None:
    """Anisotropic like real embeddings (PCA-KS only sees high-variance directions)."""
    rng = np.random.default_rng(9)
    scales = np.geomspace(2.0, 0.2, 32)
    found = 0
    for trial in range(5):
        a, b = rng.normal(size=(300, 32)) * scales, rng.normal(size=(300, 32)) * scales
        b[:, :3] += 0.35 * scales[:3]
        found += build(name, random_state=trial).fit(a).test(b).alert
    assert found >= 4


@pytest.mark.parametrize("name", ["mmd", "classifier", "pca_ks"])
def test_mixture_from_another_cluster_is_found(name: str) -> None:
    rng = np.random.default_rng(10)
    centers = rng.normal(size=(10, 64)) / np.sqrt(64)
    other = rng.normal(size=(2, 64)) / np.sqrt(64)
    found = 0
    for trial in range(5):
        a = clustered(400, 64, rng, centers)
        b = np.vstack([clustered(340, 64, rng, centers), clustered(60, 64, rng, other)])
        result = build(name, random_state=trial).fit(a).test(b)
        found += result.alert
    assert found >= 4


def test_classifier_finds_a_small_share_of_new_rows_in_the_top_of_its_ranking() -> None:
    """4% of the current rows from elsewhere: the AUC (at most 0.52) misses what the
    top-share counts see, and the combined p-value keeps their power."""
    rng = np.random.default_rng(13)
    a = rng.normal(size=(1000, 64))
    b = np.vstack([rng.normal(size=(960, 64)), rng.normal(size=(40, 64)) + 0.8])
    result = ClassifierDetector(random_state=0).fit(a).test(b)
    assert result.alert and result.statistic < 0.53
    assert result.details["p_value_auc"] > 0.05
    assert min(result.details["p_value_top"].values()) < 0.01
    assert result.details["top_current_share"]["0.02"] > 0.7  # 0.5 when nothing changed


def test_pca_ks_names_the_components_that_moved() -> None:
    rng = np.random.default_rng(11)
    scales = np.linspace(3, 1, 16)
    a, b = rng.normal(size=(500, 16)) * scales, rng.normal(size=(500, 16)) * scales
    b[:, 0] += 1.5  # along the reference's first principal direction
    result = PCAKSDetector(n_components=5).fit(a).test(b)
    assert result.alert and 0 in result.details["components_moved"]
    assert len(result.details["components_moved"]) < 5


def test_classifier_with_any_estimator_uses_a_held_out_split() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    b[:, 0] = np.abs(b[:, 0])  # a non-linear change: the same mean direction, folded
    detector = ClassifierDetector(estimator=HistGradientBoostingClassifier(max_iter=50))
    result = detector.fit(a).test(b)
    assert result.alert and "held-out" in result.details["p_value_method"]


# --- windows --------------------------------------------------------------------------------
def test_windows_are_half_open_and_default_to_the_previous_window() -> None:
    ts = np.arange(0, 7200, 10.0)  # two hours of rows, one every 10 s
    now = current_window(7200.0, 3600.0)
    assert now == Window(3600.0, 7200.0)
    assert in_window(ts, now).sum() == 360 and not in_window([7200.0], now)[0]
    rng = np.random.default_rng(13)
    values = np.r_[rng.normal(size=360), rng.normal(1.0, size=360)]
    result = compare_windows(KSDetector(), values, ts, now)
    assert result.alert and result.details["windows"]["reference"] == ["0.0", "3600.0"]


def test_windows_with_datetimes_and_a_pinned_baseline() -> None:
    ts = np.arange("2026-01-01T00", "2026-01-03T00", dtype="datetime64[h]")
    values = np.ones(len(ts))
    baseline = Window(np.datetime64("2026-01-01T00"), np.datetime64("2026-01-02T00"))
    now = current_window(np.datetime64("2026-01-03T00"), np.timedelta64(2, "h"))
    result = compare_windows(KSDetector(), values, ts, now, baseline)
    assert not result.ran and result.details["reason"] == TOO_FEW  # 2 rows < 30
    assert result.n_reference == 24 and result.n_current == 2


def test_large_windows_are_subsampled_with_the_seed() -> None:
    x = np.arange(1000)
    a = subsample(x, 100, np.random.default_rng(1))
    assert len(a) == 100 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, subsample(x, 100, np.random.default_rng(1)))
    assert subsample(x, None, np.random.default_rng(1)) is x
    rng = np.random.default_rng(14)
    result = MMDDetector(max_samples=200, n_permutations=50).fit(rng.normal(size=(500, 4))).test(
        rng.normal(size=(300, 4)))
    assert result.details["subsampled_to"] == [200, 200] and result.n_current == 300


# --- many signals at once -------------------------------------------------------------------
SIGNALS = [Signal(name="latency_ms"), Signal(name="completion_tokens", test="psi"),
           Signal(name="refused", kind="rate"), Signal(name="finish_reason", kind="categorical")]


def signal_window(rng: np.random.Generator, n: int, slow: float = 0.0) -> dict[str, Any]:
    return {"latency_ms": rng.lognormal(6 + slow, 0.5, size=n),
            "completion_tokens": rng.poisson(200, size=n),
            "refused": rng.random(n) < 0.05,
            "finish_reason": rng.choice(["stop", "length"], size=n, p=[0.9, 0.1])}


def test_signals_get_the_test_of_their_kind_and_a_correction() -> None:
    rng = np.random.default_rng(15)
    results = detect_signals(signal_window(rng, 500), signal_window(rng, 500, slow=0.3),
                             SIGNALS)
    assert [results[s.name].detector for s in SIGNALS] == ["ks", "psi", "chi2", "chi2"]
    assert results["latency_ms"].alert
    assert not any(results[s].alert for s in ("completion_tokens", "refused", "finish_reason"))
    assert results["latency_ms"].details["correction"] == "bh"
    assert results["latency_ms"].p_value >= results["latency_ms"].details["p_value_raw"]
    missing = detect_signals({"latency_ms": [1.0] * 50}, {}, [Signal(name="latency_ms")])
    assert not missing["latency_ms"].ran
    with pytest.raises(ValueError, match="cannot use"):
        detect_signals({}, {}, [Signal(name="refused", kind="rate", test="ks")])


def test_many_unchanged_signals_rarely_alert_together() -> None:
    rng = np.random.default_rng(16)
    signals = [Signal(name=f"score_{i}") for i in range(20)]
    trials, any_alert = 60, 0
    for _ in range(trials):
        ref = {s.name: rng.normal(size=200) for s in signals}
        cur = {s.name: rng.normal(size=200) for s in signals}
        any_alert += any(r.alert for r in detect_signals(ref, cur, signals).values())
    assert any_alert / trials <= max_false_alarms(trials)


def test_correction_keeps_negligible_results_quiet() -> None:
    loud = DetectorResult(detector="psi", statistic=0.05, p_value=1e-6, threshold=0.05,
                          effect_size=0.05, alert=False, n_reference=1, n_current=1,
                          details={"negligible": True})
    assert not correct([loud], "bh")[0].alert


# --- the scenario runner --------------------------------------------------------------------
def test_scenario_rates_and_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    centers = rng.normal(size=(10, 32)) / np.sqrt(32)
    reference = clustered(1000, 32, rng, centers)
    shifted = clustered(300, 32, rng, rng.normal(size=(2, 32)) / np.sqrt(32))
    seen: list[tuple[str, float]] = []
    rates = run_scenario(reference, shifted, {"mmd": MMDDetector(n_permutations=100),
                                              "pca_ks": PCAKSDetector()},
                         window=150, levels=(0.0, 0.3), trials=10, random_state=1,
                         on_trial=lambda name, level, *_: seen.append((name, level)))
    assert set(rates) == {"mmd", "pca_ks"} and set(rates["mmd"]) == {0.0, 0.3}
    assert rates["mmd"][0.0] <= 0.3 and rates["mmd"][0.3] >= 0.9
    assert len(seen) == 40
    again = run_scenario(reference, shifted, {"mmd": MMDDetector(n_permutations=100),
                                              "pca_ks": PCAKSDetector()},
                         window=150, levels=(0.0, 0.3), trials=10, random_state=1)
    assert again == rates
    with pytest.raises(ValueError, match="two windows"):
        run_scenario(reference[:100], shifted, {"mmd": MMDDetector()}, window=150, trials=1)
    pytest.importorskip("matplotlib")
    png = plot_power_curves(rates, tmp_path / "power.png", title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
