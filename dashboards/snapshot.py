"""The dashboards' panels run over a time range, as data a browser draws: the one model behind
the live view (`/ui`, through the API) and the static report (embedded in the file). The SQL is
the Grafana dashboards' own (definitions.py), expanded as Grafana's ClickHouse plugin would;
drawing is left to the page (static/render.js), so both views look the same."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from watchkeeper.agent.durations import parse_duration
from watchkeeper.dashboards.check import Run
from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.expand import TimeRange, expand

Cell = str | int | float | bool | None
PanelKind = Literal["stat", "timeseries", "table"]
MAX_TABLE_ROWS = 200
MAX_RANGE = timedelta(days=90)
# Bucket widths a time series may get, in seconds: about POINTS buckets over the range.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
         86400)
POINTS = 120


class RangeError(ValueError):
    """A time range or variable selection a request cannot have: says why."""


class Grid(BaseModel):
    """Where the panel sits on Grafana's 24-column grid (rows of 30 px)."""

    x: int = 0
    y: int = 0
    w: int = 24
    h: int = 8


class Series(BaseModel):
    name: str
    values: list[float | None]


class Frame(BaseModel):
    """A time series panel in the layout uPlot draws: one time axis, every series aligned to
    it (None where a series has no point)."""

    times: list[float]  # epoch seconds
    series: list[Series]


class PanelData(BaseModel):
    title: str
    description: str = ""
    kind: PanelKind
    unit: str = ""
    grid: Grid
    columns: list[str] = []
    units: list[str] = []  # per table column (Grafana overrides such as cost… in USD)
    rows: list[list[Cell]] = []
    more_rows: int = 0  # table rows past MAX_TABLE_ROWS, not sent
    value: Cell = None  # a stat's number
    frame: Frame | None = None
    style: Literal["line", "bars"] = "line"  # Grafana's drawStyle; bars are stacked
    error: str = ""  # the query failed: the panel says so, the others still draw


class VariableData(BaseModel):
    name: str
    label: str
    options: list[str]
    selected: list[str]  # what the panels were filtered by (all options when nothing chosen)


class BoardData(BaseModel):
    name: str
    uid: str
    title: str
    description: str = ""
    start: datetime
    end: datetime
    interval_s: int
    variables: list[VariableData]
    panels: list[PanelData]


class Snapshot(BaseModel):
    """Every board over one range: what a static report embeds."""

    database: str
    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    boards: list[BoardData]


def step_for(start: datetime, end: datetime) -> int:
    """A round bucket width giving about POINTS points over the range."""
    wanted = (end - start).total_seconds() / POINTS
    return next((s for s in STEPS if s >= wanted), STEPS[-1])


def time_range(start: datetime, end: datetime) -> TimeRange:
    if end <= start:
        raise RangeError(f"the range ends ({end:%Y-%m-%d %H:%M:%S}) before it starts "
                         f"({start:%Y-%m-%d %H:%M:%S})")
    if end - start > MAX_RANGE:
        raise RangeError(f"a range may span at most {MAX_RANGE.days} days")
    return TimeRange(start, end, interval_s=step_for(start, end))


def parse_moment(text: str, now: datetime) -> datetime:
    """`now`, `now-15m` (s, m, h, d, w) or epoch milliseconds, as Grafana's URLs write them."""
    text = text.strip()
    try:
        if text == "now" or text.startswith("now-"):
            return now - (parse_duration(text[4:]) if text != "now" else timedelta())
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise RangeError(f"{text[:40]!r} is not a time: use now, now-15m or epoch "
                         "milliseconds") from None


def fitted_range(run: Run, database: str, lookback: timedelta, now: datetime) -> TimeRange:
    """The span the samples of the last `lookback` actually cover, padded a little, so a few
    minutes of traffic fill the chart instead of sitting at the edge of a day."""
    _, rows = run(f"SELECT min(ts), max(ts), count() FROM {database}.samples "
                  f"WHERE ts >= toDateTime({int((now - lookback).timestamp())})")
    if not rows or not rows[0][2]:
        return time_range(now - timedelta(hours=1), now)
    first, last = (_utc(v) for v in rows[0][:2])
    pad = max((last - first) * 0.05, timedelta(seconds=5))
    return time_range(first - pad, min(last + pad, now + pad))


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def cell(value: Any) -> Cell:
    """A value as a table shows it: times to the second, ids and decimals as text."""
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN: JSON has no such number
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def frame(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Frame:
    """Long rows (time, labels…, values…), as the panels' SQL returns them, to one series per
    label set and value column on a shared time axis."""
    if not rows:
        return Frame(times=[], series=[])
    numeric = [isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in rows[0]]
    points: dict[str, dict[float, float | None]] = {}
    for row in rows:
        at = _utc(row[0]).timestamp()
        labels = [str(v) for v, n in zip(row[1:], numeric[1:], strict=True) if not n]
        for name, value, n in zip(columns[1:], row[1:], numeric[1:], strict=True):
            if n:
                key = " · ".join([*labels, name]) if labels else name
                points.setdefault(key, {})[at] = None if value is None else float(value)
    times = sorted({t for series in points.values() for t in series})
    return Frame(times=times, series=[Series(name=name, values=[series.get(t) for t in times])
                                      for name, series in sorted(points.items())])


def stacked(data: Frame) -> Frame:
    """Each series on top of those before it (Grafana's stacking "normal"), listed top first:
    drawn in that order, every band shows below the ones that follow."""
    totals = [0.0] * len(data.times)
    tops = []
    for series in data.series:
        totals = [t + (v or 0.0) for t, v in zip(totals, series.values, strict=True)]
        tops.append(Series(name=series.name, values=list(totals)))
    return Frame(times=data.times, series=tops[::-1])


def _column_units(panel: dict[str, Any], columns: list[str]) -> list[str]:
    """Grafana's per-field unit overrides (by name or regex) applied to a table's columns."""
    units = [panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")] * len(columns)
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        unit = next((p["value"] for p in override.get("properties", [])
                     if p.get("id") == "unit"), None)
        if unit is None:
            continue
        for i, column in enumerate(columns):
            if ((matcher.get("id") == "byName" and matcher.get("options") == column)
                    or (matcher.get("id") == "byRegexp"
                        and re.search(str(matcher.get("options")), column))):
                units[i] = unit
    return units


def panel_data(panel: dict[str, Any], run: Run, window: TimeRange,
               values: Mapping[str, Sequence[str]]) -> PanelData:
    kind: PanelKind = panel["type"] if panel["type"] in ("stat", "timeseries") else "table"
    data = PanelData(title=panel["title"], description=panel.get("description", ""), kind=kind,
                     unit=panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
                     grid=Grid(**panel.get("gridPos", {})))
    try:
        columns, rows = run(expand(panel["targets"][0]["rawSql"], window, values))
    except Exception as exc:  # one panel's failure is shown on it and hides no other panel
        data.error = str(exc)[:500]
        return data
    if kind == "stat":
        data.value = cell(rows[0][0]) if rows and rows[0] else None
    elif kind == "timeseries":
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        data.frame = frame(columns, rows)
        if custom.get("drawStyle") == "bars":
            data.style, data.frame = "bars", stacked(data.frame)
    else:
        data.columns, data.units = list(columns), _column_units(panel, list(columns))
        data.rows = [[cell(v) for v in row] for row in rows[:MAX_TABLE_ROWS]]
        data.more_rows = max(len(rows) - MAX_TABLE_ROWS, 0)
    return data


def board_data(database: str, name: str, run: Run, window: TimeRange,
               chosen: Mapping[str, Sequence[str]] | None = None,
               progress: Callable[[str], None] | None = None) -> BoardData:
    """One board's panels over `window`, its variables narrowed to `chosen` (a variable left
    out, or given no value, means all of its values, as Grafana's "All")."""
    boards = build_all(database)
    if name not in boards:
        raise RangeError(f"no dashboard {name!r}: one of {', '.join(boards)}")
    board = boards[name]
    chosen = chosen or {}
    declared = [v["name"] for v in board.get("templating", {}).get("list", [])]
    unknown = sorted(set(chosen) - set(declared))
    if unknown:
        raise RangeError(f"dashboard {name!r} has no variable {', '.join(unknown)}: "
                         f"it has {', '.join(declared)}")
    values: dict[str, list[str]] = {}
    variables = []
    for variable in board.get("templating", {}).get("list", []):
        _, rows = run(expand(str(variable["query"]), window, values))
        options = sorted({str(row[0]) for row in rows})
        selected = list(chosen.get(variable["name"]) or options)
        values[variable["name"]] = selected
        variables.append(VariableData(name=variable["name"],
                                      label=variable.get("label") or variable["name"],
                                      options=options, selected=selected))
    panels = []
    for panel in board.get("panels", []):
        if progress is not None:
            progress(panel["title"])
        panels.append(panel_data(panel, run, window, values))
    return BoardData(name=name, uid=board["uid"], title=board["title"],
                     description=board.get("description", ""), start=window.start,
                     end=window.end, interval_s=window.interval_s, variables=variables,
                     panels=panels)


def snapshot(database: str, run: Run, window: TimeRange,
             progress: Callable[[str], None] | None = None) -> Snapshot:
    return Snapshot(database=database, boards=[board_data(database, name, run, window,
                                                          progress=progress)
                                               for name in build_all(database)])


class BoardRequest(BaseModel):
    """A board as the live view asks for it: `start` and `end` as Grafana's URLs write them
    (`now-1h`, epoch ms), or `start="fit"` for the span the last day's samples cover."""

    name: str = Field(max_length=100)
    start: str = Field("fit", max_length=40)
    end: str = Field("now", max_length=40)
    chosen: dict[str, list[Annotated[str, Field(max_length=500)]]] = Field(
        default_factory=dict, max_length=20)

    def window(self, run: Run, database: str, now: datetime) -> TimeRange:
        if self.start == "fit":
            return fitted_range(run, database, timedelta(days=1), now)
        return time_range(parse_moment(self.start, now), parse_moment(self.end, now))


def answer(database: str, run: Run, request: BoardRequest) -> BoardData:
    window = request.window(run, database, datetime.now(UTC))
    return board_data(database, request.name, run, window, request.chosen)
