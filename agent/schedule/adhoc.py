"""`watchkeeper detect`: one detector (or the bias analysis), now, printed. Reads through the
running agent's API when one owns the store, so it works beside `watchkeeper up`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from watchkeeper.agent.access import OwnerApi, find_owner, open_store
from watchkeeper.agent.config import Settings
from watchkeeper.agent.jobs import DetectorJob
from watchkeeper.agent.schedule import data
from watchkeeper.agent.schedule.service import run_job, store_reader
from watchkeeper.agent.schedule.watchers import WatcherPool


@dataclass(frozen=True)
class DetectRequest:
    """`watchkeeper detect`: one detector (mmd, classifier, pca_ks over embeddings; signals;
    or the bias analysis) over one window against its reference, now."""

    detector: str
    window: str = "1h"
    reference: str = "24h"  # previous, a duration before the window, or START/END
    field: Literal["prompt", "completion"] = "prompt"
    embedding: str = "minilm"  # the embedding watcher's name
    scope: tuple[str, ...] = ("service",)  # of service, request_model, environment
    probes: tuple[str, ...] = ()  # bias: watchers of watch.watchers to probe, WATCHER[:LABEL]
    api: str | None = None  # a running agent's API (default: the store's owner, if one runs)
    format: Literal["table", "json"] = "table"


def _api_reader(owner: OwnerApi) -> data.Reader:
    def read(sql: str, parameters: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        body = owner.request("POST", "/api/query", json={"sql": sql, "parameters": parameters},
                             timeout=120)
        return body["columns"], body["rows"]

    return read


@contextlib.contextmanager
def store_access(settings: Settings, api: str | None = None, token: str | None = None
                 ) -> Iterator[data.Reader]:
    """A reader of the store: through the running agent's API when one owns it, else the
    store itself, opened for the block (AccessError when there is none)."""
    owner = find_owner(settings, api, token)
    if owner is not None:
        yield _api_reader(owner)
        return
    store = open_store(settings)
    try:
        yield store_reader(store)
    finally:
        store.close()


def detect(settings: Settings, request: DetectRequest) -> int:
    kind = request.detector if request.detector in ("signals", "bias") else "embedding"
    job = DetectorJob.model_validate({
        "name": "adhoc", "kind": kind,
        "detector": request.detector if kind == "embedding" else "mmd",
        "embedding": request.embedding, "field": request.field, "window": request.window,
        "reference": request.reference, "every": None, "scope": list(request.scope),
        "bias": {"probes": {"watchers": list(request.probes)}}})
    with store_access(settings, request.api) as read:
        runs = run_job(job, read, settings.store.database, settings.schedule.alpha,
                       watchers=WatcherPool(settings.watch, settings.data_dir))
    rows = [{"scope": r.scope, "detector": r.result.detector,
             "signal": r.result.details.get("signal", ""), "statistic": r.result.statistic,
             "p_value": r.result.p_value, "threshold": r.result.threshold,
             "effect_size": r.result.effect_size, "alert": r.result.alert,
             "n_reference": r.result.n_reference, "n_current": r.result.n_current,
             "note": r.result.details.get("reason", "")} for r in runs]
    if request.format == "json":
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        from watchkeeper.agent.query import show

        columns = list(rows[0]) if rows else ["scope", "detector", "note"]
        show(columns, [[row[c] for c in columns] for row in rows] or
             [["", request.detector, "no data in the window"]], "table")
    return 0
