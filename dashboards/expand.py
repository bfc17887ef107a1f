"""What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it:
template variables (`${name:singlequote}`), then the plugin's macros (`$__timeFilter(col)`,
`$__timeInterval(col)`, `$__interval_s`, `$__fromTime`, `$__toTime`), expanded the way the
plugin's Go code does. `watchkeeper dashboards check` and the tests use it to run every panel
against a real store."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")
MACRO = re.compile(r"\$__(timeFilter|timeInterval|interval_s|fromTime|toTime)(?:\(([^()]*)\))?")


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime
    interval_s: int = 60

    def seconds(self) -> tuple[int, int]:
        return int(self.start.timestamp()), int(self.end.timestamp())


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def variables(sql: str, values: Mapping[str, Sequence[str]]) -> str:
    """Multi-value variables as Grafana formats them; an empty selection matches nothing."""

    def one(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name}")
        chosen = list(values[name])
        if match[2] in (None, "singlequote", "sqlstring"):
            return ",".join(_quoted(v) for v in chosen) or "''"
        if match[2] == "csv":
            return ",".join(chosen)
        raise ValueError(f"unsupported variable format :{match[2]}")

    return VARIABLE.sub(one, sql)


def macros(sql: str, time_range: TimeRange) -> str:
    start, end = time_range.seconds()
    interval = max(time_range.interval_s, 1)

    def one(match: re.Match[str]) -> str:
        name, argument = match[1], (match[2] or "").strip()
        if name == "timeFilter":
            return (f"{argument} >= toDateTime({start}) AND {argument} <= toDateTime({end})")
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({argument}), INTERVAL {interval} second)"
        if name == "interval_s":
            return str(interval)
        return f"toDateTime({start if name == 'fromTime' else end})"

    return MACRO.sub(one, sql)


def expand(sql: str, time_range: TimeRange, values: Mapping[str, Sequence[str]]) -> str:
    return macros(variables(sql, values), time_range)
