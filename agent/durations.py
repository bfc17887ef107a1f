"""Durations as the config and the command line write them: '90s', '15m', '1h', '7d', '2w'."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h', '7d', '2w'."""
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 15m, 1h or 7d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})
