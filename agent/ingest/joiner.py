"""Join: content log records to their span, within the join window (decision 0003).

Why a part of its own: instrumentations send content as log records that travel in other
requests than the span (before or after it), so a GenAI span waits here for the join window,
gathering the logs that carry its trace and span ids. It holds `PreparedRow`s, whichever path
decoded them; what joined logs mean for the row is decode's business (`Decoder.render`). Every
waiting item remembers the bus position it came from (`refs`), so the offset tracker never lets
ingest commit past something still waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from watchkeeper.agent.bus import TopicPartition
from watchkeeper.agent.ingest.decode import PreparedRow, Ref
from watchkeeper.collectors.normalise.otlp import LogView

Key = tuple[str, str]  # trace id, span id
T = TypeVar("T")
CHOICE = "gen_ai.choice"
ROLE_MESSAGE_PREFIX = "gen_ai."


@dataclass(slots=True)
class _Waiting:
    log: LogView
    arrived: float
    ref: Ref


@dataclass(slots=True)
class _Span:
    row: PreparedRow
    arrived: float
    ref: Ref
    logs: list[_Waiting] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Joined:
    row: PreparedRow
    logs: list[LogView]
    ref: Ref  # where the span came from on the bus


def _arrived_by(items: dict[Key, T], cutoff: float, force: bool,
                arrived: Callable[[T], float]) -> list[Key]:
    """Keys whose item arrived by the cutoff. Items are kept in arrival order, so the scan
    stops at the first later one: a flush costs what it releases, not what is waiting."""
    keys = []
    for key, item in items.items():
        if not force and arrived(item) > cutoff:
            break
        keys.append(key)
    return keys


class Joiner:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._spans: dict[Key, _Span] = {}
        self._logs: dict[Key, list[_Waiting]] = defaultdict(list)
        self._idless: list[_Waiting] = []

    def __len__(self) -> int:
        return len(self._spans) + sum(map(len, self._logs.values())) + len(self._idless)

    def add_span(self, row: PreparedRow, ref: Ref, now: float) -> None:
        key = (row.trace_id, row.span_id)
        waiting = _Span(row, now, ref)
        if self._logs and key in self._logs:
            waiting.logs = self._logs.pop(key)
        self._spans.pop(key, None)  # a repeated span goes to the back: arrival order is kept
        self._spans[key] = waiting

    def add_log(self, log: LogView, ref: Ref, now: float) -> None:
        item = _Waiting(log, now, ref)
        if not log.trace_id or not log.span_id:
            self._idless.append(item)
            return
        key = (log.trace_id, log.span_id)
        if key in self._spans:
            self._spans[key].logs.append(item)
        else:
            self._logs[key].append(item)

    def due(self, now: float, force: bool = False) -> tuple[list[Joined], list[LogView]]:
        """Spans whose window has passed, with their logs; and logs that never met a span."""
        ready = _arrived_by(self._spans, now - self.window_s, force, lambda s: s.arrived)
        joined = []
        for key in ready:
            waiting = self._spans.pop(key)
            if waiting.logs:
                self._adopt_idless(waiting)
            joined.append(Joined(waiting.row, [w.log for w in waiting.logs], waiting.ref))
        # A log waits two windows for its span: the span may be the slower of the two.
        orphan_cutoff = now - 2 * self.window_s
        orphans: list[LogView] = []
        for key in _arrived_by(self._logs, orphan_cutoff, force, lambda items: items[0].arrived):
            orphans += [w.log for w in self._logs.pop(key)]
        keep: list[_Waiting] = []
        for item in self._idless:
            if not force and item.arrived > orphan_cutoff:
                keep.append(item)
            else:
                orphans.append(item.log)
        self._idless = keep
        return joined, orphans

    def _adopt_idless(self, waiting: _Span) -> None:
        """Streaming choice events of some instrumentations lose their ids; give such an event
        to a span of the same process whose own logs have the messages but no choice."""
        names = {w.log.event_name for w in waiting.logs}
        if CHOICE in names or not any(n.startswith(ROLE_MESSAGE_PREFIX) for n in names):
            return
        resource = waiting.row.view().resource
        instance = (str(resource.get("service.name", "")),
                    str(resource.get("service.instance.id", "")))
        for item in self._idless:
            if item.log.event_name == CHOICE and item.log.instance == instance:
                self._idless.remove(item)
                waiting.logs.append(item)
                return

    def drop(self, partitions: set[TopicPartition]) -> int:
        """Forget items from partitions this consumer lost; returns how many."""
        before = len(self)
        self._spans = {k: s for k, s in self._spans.items() if s.ref[0] not in partitions}
        for s in self._spans.values():
            s.logs = [w for w in s.logs if w.ref[0] not in partitions]
        for key in list(self._logs):
            self._logs[key] = [w for w in self._logs[key] if w.ref[0] not in partitions]
            if not self._logs[key]:
                del self._logs[key]
        self._idless = [w for w in self._idless if w.ref[0] not in partitions]
        return before - len(self)

    def refs(self) -> Iterable[Ref]:
        for s in self._spans.values():
            yield s.ref
            yield from (w.ref for w in s.logs)
        for items in self._logs.values():
            yield from (w.ref for w in items)
        yield from (w.ref for w in self._idless)
