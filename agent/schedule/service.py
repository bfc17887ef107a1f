"""Schedule: runs detector jobs with APScheduler (one run per job at a time, missed runs
coalesced), writes every result to `detector_runs`, and raises alerts as rows in `flags` so
they reach the review queue."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchkeeper.agent.config import ScheduleConfig, WatchConfig
from watchkeeper.agent.jobs import DetectorJob
from watchkeeper.agent.schedule import data
from watchkeeper.agent.schedule.notify import AlertNotifier
from watchkeeper.agent.schedule.watchers import WatcherPool
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.tables import DETECTOR_RUNS, FLAGS, DetectorRunRow, FlagRow

log = logging.getLogger(__name__)
ALERT_NAMESPACE = uuid.UUID("0b6f3c2e-7d7c-4a8e-9f1e-6a2d9c4b8e55")


class Run:
    """What one job produced for one scope: a DetectorResult and where it came from."""

    def __init__(self, job: DetectorJob, scope: str, result: Any, current: data.Window,
                 reference: data.Window) -> None:
        self.job, self.scope, self.result = job, scope, result
        self.current, self.reference = current, reference

    @property
    def job_name(self) -> str:
        return self.job.name

    def row(self) -> DetectorRunRow:
        r = self.result
        return DetectorRunRow(
            run_id=uuid.uuid4(), job=self.job.name, detector=r.detector, scope=self.scope,
            window_start=self.current[0], window_end=self.current[1],
            reference_start=self.reference[0], reference_end=self.reference[1],
            statistic=r.statistic, p_value=r.p_value, threshold=r.threshold,
            effect_size=r.effect_size, alert=r.alert, n_reference=r.n_reference,
            n_current=r.n_current, details=json.dumps(r.details))

    def flag(self) -> FlagRow:
        r = self.result
        signal = r.details.get("signal", "")
        finding = r.details.get("finding") or f"{signal or self.job.field + ' embeddings'} drifted"
        reason = (f"{r.detector}: {finding} in {self.scope or 'all'} "
                  f"(p={r.p_value:.3g} < {r.threshold:g}, effect={r.effect_size})")
        key = f"{self.job.name}:{self.scope}:{signal}:{self.current[1].isoformat()}"
        return FlagRow(flag_id=uuid.uuid5(ALERT_NAMESPACE, key), sample_id=None,
                       ts=self.current[1], service=self.scope.split("/", 1)[0],
                       source=f"detector:{self.job.name}", reason=reason,
                       label=signal or r.detector, field="",
                       score=float(r.effect_size or r.statistic or 0.0))


def run_job(job: DetectorJob, read: data.Reader, db: str, alpha: float,
            now: datetime | None = None, watchers: WatcherPool | None = None) -> list[Run]:
    """Run one job over its windows ending `now`; pure given what `read` returns (and, for a
    bias job's probes, what the `watchers` score: by default those of a default watch config).
    """
    from watchkeeper.detectors.drift.registry import build
    from watchkeeper.detectors.drift.signals import Signal, detect_scopes

    current, reference = job.windows(now or datetime.now(UTC))
    if job.kind == "bias":
        from watchkeeper.agent.schedule.bias import analyse, pair_audits

        pool = watchers or WatcherPool(WatchConfig())
        # Groups are compared within the window: the row's reference is the window itself.
        # A pairs file is the same for every scope: audited once, under scope "".
        return [*(Run(job, scope, result, current, current)
                  for scope, rows in data.bias_window(read, db, job, current).items()
                  for result in analyse(job.bias, rows, alpha, pool)),
                *(Run(job, "", result, current, current)
                  for result in pair_audits(job.bias, alpha, pool))]
    if job.kind == "signals":
        specs = [Signal(name=s.name, kind=s.kind, test=s.test, params=s.params)
                 for s in job.signals]
        results = detect_scopes(data.signals(read, db, job, reference),
                                data.signals(read, db, job, current), specs, alpha=alpha)
        return [Run(job, scope, result, current, reference)
                for scope, by_signal in results.items() for result in by_signal.values()]
    ref = data.embeddings(read, db, job, reference)
    cur = data.embeddings(read, db, job, current)
    runs = []
    for scope, vectors in cur.items():
        detector = build(job.detector, alpha=alpha,
                         **job.detector_options.model_dump(exclude_unset=True))
        if scope not in ref:
            from watchkeeper.detectors.result import TOO_FEW, DetectorResult

            result = DetectorResult.skipped(detector.name, TOO_FEW, 0, len(vectors), alpha,
                                            missing_reference=True)
        else:
            result = detector.fit(ref[scope]).test(vectors)
        runs.append(Run(job, scope, result, current, reference))
    return runs


def store_reader(store: Store) -> data.Reader:
    def read(sql: str, parameters: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        result = store.query(sql, parameters)
        return result.columns, [list(r) for r in result.rows]

    return read


class ScheduleService:
    """`watch` names the watchers bias jobs probe (the watch section of the same config)."""

    def __init__(self, store: Store, config: ScheduleConfig,
                 watch: WatchConfig | None = None, data_dir: Path | None = None) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.store = store
        self.config = config
        self.watchers = WatcherPool(watch or WatchConfig(), data_dir)
        self.read = store_reader(store)
        self.notifier = AlertNotifier(config.notify)
        self.runs = 0
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"max_instances": 1, "coalesce": True,
                                          "misfire_grace_time": 60})
        for job in config.jobs:
            self.scheduler.add_job(self.run, trigger=self._trigger(job), args=(job,),
                                   id=job.name, name=job.name)

    @staticmethod
    def _trigger(job: DetectorJob) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        from watchkeeper.agent.durations import parse_duration

        if job.cron:
            return CronTrigger.from_crontab(job.cron, timezone="UTC")
        assert job.every is not None
        return IntervalTrigger(seconds=parse_duration(job.every).total_seconds())

    def run(self, job: DetectorJob, now: datetime | None = None) -> list[Run]:
        """One run of one job; an empty window is a skipped result, not an error."""
        try:
            runs = run_job(job, self.read, self.store.database, self.config.alpha, now,
                           self.watchers)
        except Exception:
            log.exception("detector job failed", extra={"job": job.name})
            return []
        self.store.insert_rows(DETECTOR_RUNS, [r.row() for r in runs])
        alerts = [r.flag() for r in runs if r.result.alert]
        self.store.insert_rows(FLAGS, alerts)
        if self.notifier.enabled:
            self.notifier.notify(runs, now)
        self.runs += 1
        log.info("detector job ran", extra={"job": job.name, "results": len(runs),
                                            "alerts": len(alerts)})
        return runs

    name = "schedule"

    async def start(self) -> None:
        self.scheduler.start()

    def ready(self) -> dict[str, Any]:
        return {self.name: bool(self.scheduler.running)}

    async def drain(self, deadline: float) -> None:
        """No new runs; a run under way finishes (its results are written whole)."""
        await asyncio.to_thread(self.scheduler.shutdown, wait=True)

    async def stop(self) -> None:
        """The scheduler holds nothing past its shutdown; the notifier its HTTP client."""
        self.notifier.close()
