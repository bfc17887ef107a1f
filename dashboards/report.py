"""The dashboards as one static HTML file: the same panels and SQL as in Grafana, run once over
a time range and drawn with matplotlib. For the embedded default, where there is no Grafana,
and for sharing a snapshot (the file embeds its images and needs no server)."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from watchkeeper.dashboards.check import Run, variable_values
from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.expand import TimeRange, expand

MAX_TABLE_ROWS = 50
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328;background:#fafafa}
h1{margin-bottom:0}h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}
.stats{display:flex;flex-wrap:wrap;gap:1rem}
.stat{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1.2rem;
min-width:9rem}
.stat b{display:block;font-size:1.6rem}.muted{color:#656d76;font-size:.85rem}
figure{display:inline-block;margin:1rem 1rem 0 0;background:#fff;border:1px solid #d0d7de;
border-radius:6px;padding:.5rem}
table{border-collapse:collapse;background:#fff;font-size:.85rem;margin-top:.5rem}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top;
max-width:28rem;overflow-wrap:anywhere}
"""


def _number(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "percentunit":
        return f"{float(value):.1%}"
    if unit == "currencyUSD":  # a call costs fractions of a cent
        return f"${float(value):,.2f}" if abs(value) >= 1 else f"${float(value):.4g}"
    if isinstance(value, float):
        return f"{value:,.1f}" + (" ms" if unit == "ms" else "")
    return f"{value:,}" if isinstance(value, int) else str(value)


def _series(columns: list[str], rows: list[list[Any]]
            ) -> dict[str, tuple[list[datetime], list[float]]]:
    """Long rows (time, labels…, values…) → one line per label set and value column."""
    lines: dict[str, tuple[list[datetime], list[float]]] = defaultdict(lambda: ([], []))
    if not rows:
        return {}
    kinds = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in rows[0]]
    for row in rows:
        labels = [str(v) for v, numeric in zip(row[1:], kinds[1:], strict=True) if not numeric]
        for name, value, numeric in zip(columns[1:], row[1:], kinds[1:], strict=True):
            if numeric and value is not None:
                key = " · ".join([*labels, name]) if labels else name
                lines[key][0].append(row[0])
                lines[key][1].append(float(value))
    return dict(lines)


def _plot(title: str, unit: str, columns: list[str], rows: list[list[Any]],
          time_range: TimeRange) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num

    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=100)
    for label, (times, values) in sorted(_series(columns, rows).items()):
        x = date2num(times)  # type: ignore[no-untyped-call]
        axes.plot(x, values, marker=".", linewidth=1.2, label=label)
    axes.xaxis_date()
    axes.set_xlim(date2num([time_range.start, time_range.end]))  # type: ignore[no-untyped-call]
    axes.set_title(title, fontsize=10)
    axes.set_ylabel({"ms": "ms", "percentunit": "share", "currencyUSD": "USD"}.get(unit, ""))
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(fontsize=7, loc="upper left", ncols=2)
    else:
        axes.text(0.5, 0.5, "no data in range", ha="center", va="center",
                  transform=axes.transAxes)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    source = f"data:image/png;base64,{encoded}"
    return f'<figure><img alt="{html.escape(title)}" src="{source}"></figure>'


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>"
                                    for v in row) + "</tr>" for row in rows[:MAX_TABLE_ROWS])
    more = (f'<p class="muted">{len(rows) - MAX_TABLE_ROWS} more rows not shown</p>'
            if len(rows) > MAX_TABLE_ROWS else "")
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def render(database: str, run: Run, time_range: TimeRange,
           progress: Callable[[str], None] | None = None) -> str:
    sections = []
    for board in build_all(database).values():
        values = variable_values(board, run, time_range)
        stats, parts = [], []
        for panel in board.get("panels", []):
            if progress is not None:
                progress(panel["title"])
            columns, rows = run(expand(panel["targets"][0]["rawSql"], time_range, values))
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            title = html.escape(panel["title"])
            if panel["type"] == "stat":
                value = rows[0][0] if rows and rows[0] else None
                stats.append(f'<div class="stat"><span class="muted">{title}</span>'
                             f"<b>{html.escape(_number(value, unit))}</b></div>")
            elif panel["type"] == "timeseries":
                parts.append(_plot(panel["title"], unit, columns, rows, time_range))
            else:
                parts.append(f"<h3>{title}</h3>{_table(columns, rows)}")
        sections.append(f"<h2>{html.escape(board['title'])}</h2>"
                        f'<p class="muted">{html.escape(board.get("description", ""))}</p>'
                        f'<div class="stats">{"".join(stats)}</div>{"".join(parts)}')
    start, end = (t.strftime("%Y-%m-%d %H:%M UTC") for t in (time_range.start, time_range.end))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Watchkeeper report</title>"
            f"<style>{STYLE}</style></head><body><h1>Watchkeeper report</h1>"
            f'<p class="muted">{start} to {end}, database {html.escape(database)}</p>'
            f"{''.join(sections)}</body></html>\n")
