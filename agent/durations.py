"""Durations as the config and the command line write them: '90s', '15m', '1h', '7d', '2w'."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h', '7d', '2w'."""
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 15m, 1h or 7d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def parse_since(text: str) -> datetime:
    """A duration back from now (`7d`, `12h`) or an ISO date/time (UTC unless it says)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a duration such as 7d or 12h, or an ISO "
                         "date/time such as 2025-01-31 or 2025-01-31T12:00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
