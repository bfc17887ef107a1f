"""`watchkeeper detect`: one detector (or the bias analysis), now, printed. Reads through the
running agent's API when one owns the store, so it works beside `watchkeeper up`."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from watchkeeper.agent.config import Settings
from watchkeeper.agent.runtime import owner_api
from watchkeeper.agent.schedule import data
from watchkeeper.agent.schedule.jobs import DetectorJob
from watchkeeper.agent.schedule.service import run_job, store_reader
from watchkeeper.agent.schedule.watchers import WatcherPool


def _api_reader(api: str) -> data.Reader:
    def read(sql: str, parameters: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        response = httpx.post(f"{api.rstrip('/')}/api/query",
                              json={"sql": sql, "parameters": parameters}, timeout=120)
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(body.get("error", response.text))
        return body["columns"], body["rows"]

    return read


def detect(settings: Settings, args: argparse.Namespace) -> int:
    kind = args.detector if args.detector in ("signals", "bias") else "embedding"
    job = DetectorJob.model_validate({
        "name": "adhoc", "kind": kind, "detector": args.detector if kind == "embedding" else "mmd",
        "embedding": args.embedding, "field": args.field, "window": args.window,
        "reference": args.reference, "every": None,
        "scope": [s.strip() for s in args.scope.split(",") if s.strip()],
        "bias": {"probes": {"watchers": args.probe or []}}})
    api = args.api or (None if settings.store.url else owner_api(settings.data_dir))
    store = None
    if api:
        read = _api_reader(api)
    else:
        from watchkeeper.agent.store.client import Store

        store = Store(settings.store_url, settings.store)
        read = store_reader(store)
    try:
        runs = run_job(job, read, settings.store.database, settings.schedule.alpha,
                       watchers=WatcherPool(settings.watch, settings.data_dir))
    finally:
        if store is not None:
            store.close()
    rows = [{"scope": r.scope, "detector": r.result.detector,
             "signal": r.result.details.get("signal", ""), "statistic": r.result.statistic,
             "p_value": r.result.p_value, "threshold": r.result.threshold,
             "effect_size": r.result.effect_size, "alert": r.result.alert,
             "n_reference": r.result.n_reference, "n_current": r.result.n_current,
             "note": r.result.details.get("reason", "")} for r in runs]
    if args.format == "json":
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        from watchkeeper.agent.query import show

        columns = list(rows[0]) if rows else ["scope", "detector", "note"]
        show(columns, [[row[c] for c in columns] for row in rows] or
             [["", args.detector, "no data in the window"]], "table")
    return 0
