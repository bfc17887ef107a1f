"""The schedule service over real stored data (chDB): windows in, detector_runs and alerts out."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from helpers import CLI
from watchkeeper.agent.config import ScheduleConfig, StoreConfig
from watchkeeper.agent.schedule.jobs import DetectorJob, parse_duration
from watchkeeper.agent.schedule.service import ScheduleService
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for

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
        samples.append(rows.sample_row(sample))
        embedded.append([sample.sample_id, ts, "bot", "minilm", "prompt",
                         (vector / np.linalg.norm(vector)).tolist()])
    store.insert("samples", samples, rows.SAMPLE_COLUMNS)
    store.insert("embeddings", embedded, ("sample_id", "ts", "service", "model", "field",
                                          "vector"))


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
    service.start()
    time.sleep(3.5)
    service.stop()
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
