"""Reading detector windows out of ClickHouse: sampled per scope, parameterised, and through
either the store itself or a running agent's read-only API (chDB lets one process own it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from watchkeeper.agent.schedule.jobs import DetectorJob

# (sql, parameters) -> (columns, rows)
Reader = Callable[[str, dict[str, Any]], tuple[list[str], list[list[Any]]]]
Window = tuple[datetime, datetime]

SIGNAL_COLUMNS = {
    "prompt_length": "toFloat64(lengthUTF8(prompt_text))",
    "completion_length": "toFloat64(lengthUTF8(completion_text))",
    "input_tokens": "toFloat64(ifNull(input_tokens, nan))",
    "output_tokens": "toFloat64(ifNull(output_tokens, nan))",
    "latency_ms": "duration_ms",
    "error": "toString(status = 'error')",
    "finish_reason": "if(empty(finish_reasons), '', finish_reasons[1])",
}


def _scope(job: DetectorJob, alias: str = "") -> str:
    """Scope columns come from a fixed list (validated config), never from user text."""
    prefix = f"{alias}." if alias else ""
    columns = [f"{prefix}{c}" for c in job.scope] or ["''"]
    return "concat(" + ", '/', ".join(columns) + ")" if len(columns) > 1 else columns[0]


def _window(window: Window) -> dict[str, Any]:
    return {"lo": window[0].strftime("%Y-%m-%d %H:%M:%S.%f"),
            "hi": window[1].strftime("%Y-%m-%d %H:%M:%S.%f")}


def embeddings(read: Reader, db: str, job: DetectorJob, window: Window
               ) -> dict[str, list[list[float]]]:
    sql = (f"SELECT {_scope(job, 's')} AS scope, e.vector AS vector "
           f"FROM {db}.embeddings AS e INNER JOIN (SELECT sample_id, service, request_model, "
           f"environment FROM {db}.samples WHERE ts >= {{lo:DateTime64(6)}} "
           f"AND ts < {{hi:DateTime64(6)}}) AS s ON s.sample_id = e.sample_id "
           "WHERE e.model = {model:String} AND e.field = {field:String} "
           "AND e.ts >= {lo:DateTime64(6)} AND e.ts < {hi:DateTime64(6)} "
           "ORDER BY rand() LIMIT {cap:UInt32} BY scope")
    _, rows = read(sql, {**_window(window), "model": job.embedding, "field": job.field,
                         "cap": job.max_samples})
    out: dict[str, list[list[float]]] = defaultdict(list)
    for scope, vector in rows:
        out[scope].append(vector)
    return dict(out)


def signals(read: Reader, db: str, job: DetectorJob, window: Window
            ) -> dict[str, dict[str, list[Any]]]:
    """{scope: {signal: values}}: sample columns, and `watcher:label` scores."""
    wanted = [s.name for s in job.signals if s.name in SIGNAL_COLUMNS]
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    if wanted:
        columns = ", ".join(f"{SIGNAL_COLUMNS[name]} AS `{name}`" for name in wanted)
        sql = (f"SELECT {_scope(job)} AS scope, {columns} FROM {db}.samples "
               "WHERE ts >= {lo:DateTime64(6)} AND ts < {hi:DateTime64(6)} "
               "ORDER BY rand() LIMIT {cap:UInt32} BY scope")
        _, rows = read(sql, {**_window(window), "cap": job.max_samples})
        for scope, *values in rows:
            for name, value in zip(wanted, values, strict=True):
                out[scope][name].append(value)
    for spec in job.signals:
        if ":" not in spec.name:
            continue
        watcher, label = spec.name.split(":", 1)
        sql = (f"SELECT {_scope(job, 's')} AS scope, c.score AS score FROM {db}.scores AS c "
               f"INNER JOIN (SELECT sample_id, service, request_model, environment "
               f"FROM {db}.samples WHERE ts >= {{lo:DateTime64(6)}} "
               f"AND ts < {{hi:DateTime64(6)}}) AS s ON s.sample_id = c.sample_id "
               "WHERE c.watcher = {watcher:String} AND c.label = {label:String} "
               "AND c.ts >= {lo:DateTime64(6)} AND c.ts < {hi:DateTime64(6)} "
               "ORDER BY rand() LIMIT {cap:UInt32} BY scope")
        _, rows = read(sql, {**_window(window), "watcher": watcher, "label": label,
                             "cap": job.max_samples})
        for scope, score in rows:
            out[scope][spec.name].append(score)
    return {scope: dict(values) for scope, values in out.items()}
