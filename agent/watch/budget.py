"""A watcher's budget (`sampling.calls_per_minute`, `sampling.tokens_per_day`), enforced by the
watch service before a batch is scored.

Calls per minute is a token bucket holding at most a minute's calls and refilled continuously,
so a burst can spend a minute's worth at once and no more; a call is one model call, so an LLM
judge with three rubrics spends three per text. Tokens per day counts an estimate made before
the call (four characters per token, the text and its context: the judge's real usage is the
provider's to report) and starts again at midnight UTC. Both live in the watch process's
memory: a restart starts a fresh minute and a fresh day. What the budget turns away is stored
as a `_skipped` score row saying which budget, counted in /metrics
(wk_watch_skipped_total{reason="budget_calls"|"budget_tokens"}), and shown on the quality
dashboard; wk_watch_budget_remaining says what is left.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from watchkeeper.detectors.watchers import Item
from watchkeeper.detectors.watchers.sampling import SamplingPolicy

CHARS_PER_TOKEN = 4


def estimate_tokens(item: Item) -> int:
    return math.ceil((len(item.text) + len(item.context)) / CHARS_PER_TOKEN)


class Budget:
    def __init__(self, policy: SamplingPolicy, calls_per_item: int = 1, *,
                 clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self.per_minute = policy.calls_per_minute
        self.per_day = policy.tokens_per_day
        self.calls_per_item = max(1, calls_per_item)
        self.clock, self.today = clock, today
        self.calls = float(self.per_minute or 0)
        self.refilled = clock()
        self.day = today()
        self.tokens = 0
        self._lock = threading.Lock()  # a watcher's two lanes (lanes.py) share its budget

    def _refill(self) -> None:
        now = self.clock()
        if self.per_minute is not None:
            self.calls = min(float(self.per_minute),
                             self.calls + (now - self.refilled) * self.per_minute / 60)
        self.refilled = now
        if self.today() != self.day:
            self.day, self.tokens = self.today(), 0

    def admit(self, items: Sequence[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
        """The items the budget allows, in order, and those it turns away with the reason
        ("budget_calls" or "budget_tokens")."""
        with self._lock:
            return self._admit(items)

    def _admit(self, items: Sequence[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
        self._refill()
        allowed: list[Item] = []
        refused: list[tuple[Item, str]] = []
        for item in items:
            tokens = estimate_tokens(item)
            if self.per_minute is not None and self.calls < self.calls_per_item:
                refused.append((item, "budget_calls"))
            elif self.per_day is not None and self.tokens + tokens > self.per_day:
                refused.append((item, "budget_tokens"))
            else:
                if self.per_minute is not None:
                    self.calls -= self.calls_per_item
                self.tokens += tokens
                allowed.append(item)
        return allowed, refused

    def remaining(self) -> dict[str, float]:
        with self._lock:
            self._refill()
        left: dict[str, float] = {}
        if self.per_minute is not None:
            left["calls_per_minute"] = self.calls
        if self.per_day is not None:
            left["tokens_per_day"] = float(self.per_day - self.tokens)
        return left

    def describe(self, reason: str) -> str:
        if reason == "budget_calls":
            return f"skipped: budget of {self.per_minute} calls per minute spent"
        return f"skipped: budget of {self.per_day} tokens per day spent"
