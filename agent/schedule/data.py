"""Reading detector windows out of ClickHouse: sampled per scope, parameterised, and through
either the store itself or a running agent's read-only API (chDB lets one process own it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchkeeper.agent.jobs import DetectorJob

# (sql, parameters) -> (columns, rows)
Reader = Callable[[str, dict[str, Any]], tuple[list[str], list[list[Any]]]]
Window = tuple[datetime, datetime]

# The SQL of each name the job models accept (agent/jobs.py lists the names; a test holds the
# two lists equal).
SIGNAL_COLUMNS = {
    "prompt_length": "toFloat64(lengthUTF8(prompt_text))",
    "completion_length": "toFloat64(lengthUTF8(completion_text))",
    "input_tokens": "toFloat64(ifNull(input_tokens, nan))",
    "output_tokens": "toFloat64(ifNull(output_tokens, nan))",
    "latency_ms": "duration_ms",
    "error": "toString(status = 'error')",
    "finish_reason": "if(empty(finish_reasons), '', finish_reasons[1])",
}
# Per-sample numbers a bias job compares across groups (NaN where a sample has none).
SAMPLE_METRICS = {
    **{name: SIGNAL_COLUMNS[name] for name in ("prompt_length", "completion_length",
                                               "input_tokens", "output_tokens", "latency_ms")},
    "error": "toFloat64(status = 'error')",
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


@dataclass
class BiasWindow:
    """One scope's sampled rows for a bias job: texts and, per metric, one value a row."""

    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def bias_window(read: Reader, db: str, job: DetectorJob, window: Window) -> dict[str, BiasWindow]:
    """{scope: rows} with each metric of the job: sample columns, and watcher scores
    (`watcher:label`, the higher of a sample's fields; NaN where it was not scored)."""
    names = [m.name for m in job.bias.metrics]
    columns = [n for n in names if n in SAMPLE_METRICS]
    scored = [n for n in names if n not in SAMPLE_METRICS]
    selected = "".join(f", {SAMPLE_METRICS[n]} AS `{n}`" for n in columns)
    sql = (f"SELECT s.scope, s.prompt_text, s.completion_text"
           f"{''.join(f', s.`{n}`' for n in columns)}, c.names, c.values "
           f"FROM (SELECT sample_id, {_scope(job)} AS scope, prompt_text, completion_text"
           f"{selected} FROM {db}.samples "
           "WHERE ts >= {lo:DateTime64(6)} AND ts < {hi:DateTime64(6)} "
           "ORDER BY rand() LIMIT {cap:UInt32} BY scope) AS s "
           "LEFT JOIN (SELECT sample_id, groupArray(name) AS names, groupArray(value) AS values "
           "FROM (SELECT sample_id, concat(watcher, ':', label) AS name, max(score) AS value "
           f"FROM {db}.scores WHERE ts >= {{lo:DateTime64(6)}} AND ts < {{hi:DateTime64(6)}} "
           "AND name IN {scored:Array(String)} GROUP BY sample_id, name) GROUP BY sample_id"
           ") AS c ON c.sample_id = s.sample_id")
    _, rows = read(sql, {**_window(window), "cap": job.max_samples, "scored": scored})
    out: dict[str, BiasWindow] = defaultdict(BiasWindow)
    for scope, prompt, completion, *values in rows:
        *sample_values, score_names, score_values = values
        scores = dict(zip(score_names, score_values, strict=True))
        rows_of = out[scope]
        rows_of.prompts.append(prompt)
        rows_of.completions.append(completion)
        for name, value in zip(columns, sample_values, strict=True):
            rows_of.metrics[name].append(float("nan") if value is None else float(value))
        for name in scored:
            rows_of.metrics[name].append(float(scores.get(name, float("nan"))))
    return dict(out)
