"""What the watch service writes survives a crash without loss or duplicates (agent/watch/
replay.py), on a real broker and the real engine: a pass stored but never committed is read
again by the next member of the group, and every row shows once to a plain query (no FINAL),
also when the crash came between the inserts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.agent.bus import TOPIC_SAMPLES, Bus, open_bus
from watchkeeper.agent.bus.kafka import KafkaBus
from watchkeeper.agent.config import KafkaConfig, StoreConfig, WatchConfig
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.tables import SCORES, Table
from watchkeeper.agent.watch import service
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for
from watchkeeper.detectors.watchers import WatcherSpec

# the default watcher (heuristics, no model) and the packaged MiniLM, the cheapest embedder
WATCHERS = [*WatchConfig().watchers, WatcherSpec(name="minilm", kind="embedding",
                                                 field="completion")]
COMPLETIONS = ["I'm sorry, but I can't help with that request.",  # refusal
               "Write to bob.smith@example.com.",  # pii
               "2+2 is 4.",  # nothing
               ""]  # empty
N = 12
FLAGGED = N // len(COMPLETIONS) * 3
# per table: what names a row, and how many distinct samples it must hold
KEYS = {"scores": ("sample_id, watcher, field, label", N),
        "embeddings": ("sample_id, model, field", N),
        "flags": ("flag_id", FLAGGED)}
_LOADED: dict[str, Any] = {}


class FailsAfterScores:
    """The store as a pass sees it that stops right after inserting scores (the process dies,
    or the store refuses the next insert once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def insert_rows(self, table: Table[Any], rows: list[Any]) -> None:
        if table is not SCORES and not self.failed:
            self.failed = True
            raise OSError(f"stopped before inserting {table.name}")
        self.store.insert_rows(table, rows)


def _publish(bus: Bus) -> None:
    now = datetime.now(UTC)
    for i in range(N):
        sample = Sample(sample_id=sample_id_for(f"{i:032x}", f"{i:016x}"), trace_id=f"{i:032x}",
                        span_id=f"{i:016x}", ts=now, service="svc", prompt_text="Help me.",
                        completion_text=COMPLETIONS[i % len(COMPLETIONS)])
        bus.publish(TOPIC_SAMPLES, sample.model_dump_json().encode(),
                    key=sample.trace_id.encode())
    bus.flush(30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig())
    migrate(handle)
    yield handle
    handle.close()


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> WatchConfig:
    """A group of its own, and watchers that load once per session (MiniLM takes seconds)."""
    real = service.load_watcher
    monkeypatch.setattr(service, "load_watcher", lambda spec, config, data_dir: _LOADED.get(
        spec.name) or _LOADED.setdefault(spec.name, real(spec, config, data_dir)))
    return WatchConfig(group=f"g{uuid.uuid4().hex[:8]}", batch_wait_ms=50, watchers=WATCHERS)


@pytest.fixture
def kafka_bus(kafka: str) -> Iterator[KafkaBus]:
    """Topics of its own on the real broker, N samples on wk.samples."""
    bus = KafkaBus(kafka, KafkaConfig(topic_prefix=f"t{uuid.uuid4().hex[:8]}."))
    try:
        bus.ensure_topics()
        _publish(bus)
        yield bus
    finally:
        bus.close()


def _lane(bus: Any, store: Any, config: WatchConfig, data_dir: Path) -> service.WatchService:
    """The watch service of a config whose watchers all compute: one lane."""
    [lane] = service.watch_services(bus, store, config, data_dir)
    return lane


def _score_all(watch: service.WatchService, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while watch.scored_samples < N:
        assert time.monotonic() < deadline, f"scored {watch.scored_samples} of {N}"
        watch.step()


def _shown(store: Store) -> dict[str, tuple[int, int, int]]:
    """Per table, with plain queries: rows, distinct row keys, distinct samples."""
    shown = {}
    for table, (key, _) in KEYS.items():
        [row] = store.query(f"SELECT count(), uniqExact({key}), uniqExact(sample_id) "
                            f"FROM {store.database}.{table}").rows
        shown[table] = (int(row[0]), int(row[1]), int(row[2]))
    return shown


def _exactly_once(store: Store) -> None:
    for table, (rows, keys, samples) in _shown(store).items():
        assert rows == keys, f"{table}: {rows - keys} row(s) shown twice"
        assert samples == KEYS[table][1], f"{table}: {samples} samples"
    [(scored,)] = store.query("SELECT uniqExact(sample_id, watcher, field) "
                              f"FROM {store.database}.scores").rows
    assert scored == N


def test_a_pass_stored_but_not_committed_is_replayed_once(
        kafka_bus: KafkaBus, store: Store, config: WatchConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = _lane(kafka_bus, store, config, tmp_path)
    monkeypatch.setattr(first.consumer, "commit", lambda offsets: None)  # dies before it
    _score_all(first)
    first.consumer.close()  # gone: its partitions go to the next member, from the last commit
    _exactly_once(store)
    second = _lane(kafka_bus, store, config, tmp_path)
    try:
        _score_all(second)  # everything again: nothing was committed
    finally:
        second.consumer.close()
    _exactly_once(store)


def test_a_crash_between_inserts_is_completed_by_the_replay(
        kafka_bus: KafkaBus, store: Store, config: WatchConfig, tmp_path: Path) -> None:
    first = _lane(kafka_bus, FailsAfterScores(store), config, tmp_path)
    with pytest.raises(OSError, match="stopped before inserting embeddings"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # empty steps until the group assigns partitions
            first.step()
    first.consumer.close()  # killed
    landed = _shown(store)
    assert landed["scores"][0] > 0 and landed["embeddings"][0] == landed["flags"][0] == 0
    second = _lane(kafka_bus, store, config, tmp_path)
    try:
        _score_all(second)
    finally:
        second.consumer.close()
    _exactly_once(store)


def test_a_pass_that_fails_part_way_is_retried_whole(store: Store, config: WatchConfig,
                                                     tmp_path: Path) -> None:
    """No crash: the pass is kept, not committed, and the next step retries it, its rows
    checked (though none lies below a replay horizon: nothing was stored before this run)."""
    bus = open_bus("memory://")
    _publish(bus)
    watch = _lane(bus, FailsAfterScores(store), config.model_copy(update={"batch_max": N}),
                  tmp_path)
    with pytest.raises(OSError):
        watch.step()
    assert watch.consumer.lag() == N  # nothing committed past the failed pass
    _score_all(watch)
    assert watch.consumer.lag() == 0
    _exactly_once(store)
