"""Join: content log records to their span, within the join window (decision 0003).

Why a part of its own: instrumentations send content as log records that travel in other
requests than the span (before or after it), so a GenAI span whose content is not on it waits
here for the log records that carry its trace and span ids: until both its input and its output
arrived (then it is complete), or for at most the join window. A span that carries its content
is complete as it arrives. Complete spans leave at the next `due`, which the service calls as
it flushes (or as they fill a batch mid-poll), so logs read in the same poll as their span
still join it; logs that come later for a span already gone are orphans, counted. It holds
`PreparedRow`s, whichever path decoded them; what joined logs mean for the row is decode's
business (`Decoder.render`). Every waiting item remembers the bus position it came from
(`refs`), so the offset tracker never lets ingest commit past something still waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from watchkeeper.agent.bus import TopicPartition
from watchkeeper.agent.ingest.decode import PreparedRow, Ref
from watchkeeper.collectors.normalise.otlp import LogView
from watchkeeper.collectors.normalise.shapes import genai_events, genai_latest

Key = tuple[str, str]  # trace id, span id
T = TypeVar("T")
CHOICE = genai_events.CHOICE_EVENT
INPUT, OUTPUT = 1, 2  # the sides of a call's content a log record carries
INPUT_EVENTS = frozenset({*genai_events.ROLE_EVENTS, genai_events.PROMPT_EVENT})
OUTPUT_EVENTS = frozenset({CHOICE, genai_events.COMPLETION_EVENT})


def _sides(log: LogView) -> int:
    """Which sides of the content a log record carries (INPUT, OUTPUT, both or neither)."""
    name = log.event_name
    if name == genai_latest.DETAILS_EVENT:
        input_key, output_key, _ = genai_latest.KEYS
        return (INPUT if input_key in log.attributes else 0) | (
            OUTPUT if output_key in log.attributes else 0)
    return INPUT if name in INPUT_EVENTS else OUTPUT if name in OUTPUT_EVENTS else 0


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
    sides: int = 0  # what its logs carried so far

    def take(self, logs: list[_Waiting]) -> None:
        self.logs += logs
        for item in logs:
            self.sides |= _sides(item.log)

    def complete(self) -> bool:
        return self.row.has_content or self.sides == INPUT | OUTPUT


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
        self._spans: dict[Key, _Span] = {}  # waiting for their logs, in arrival order
        self._complete: dict[Key, _Span] = {}  # leaving at the next `due`
        self._logs: dict[Key, list[_Waiting]] = defaultdict(list)
        self._idless: list[_Waiting] = []

    def __len__(self) -> int:
        return (len(self._spans) + len(self._complete) + sum(map(len, self._logs.values()))
                + len(self._idless))

    @property
    def complete(self) -> int:
        """Spans that leave at the next `due`."""
        return len(self._complete)

    def add_span(self, row: PreparedRow, ref: Ref, now: float) -> None:
        key = (row.trace_id, row.span_id)
        waiting = _Span(row, now, ref)
        # A repeated span replaces the one held, keeps its logs and goes to the back.
        previous = self._spans.pop(key, None) or self._complete.pop(key, None)
        if previous is not None:
            waiting.take(previous.logs)
        if self._logs and key in self._logs:
            waiting.take(self._logs.pop(key))
        (self._complete if waiting.complete() else self._spans)[key] = waiting

    def add_log(self, log: LogView, ref: Ref, now: float) -> None:
        item = _Waiting(log, now, ref)
        if not log.trace_id or not log.span_id:
            self._idless.append(item)
            return
        key = (log.trace_id, log.span_id)
        if key in self._complete:
            self._complete[key].logs.append(item)
        elif key in self._spans:
            waiting = self._spans[key]
            waiting.take([item])
            if waiting.complete():
                self._complete[key] = self._spans.pop(key)
        else:
            self._logs[key].append(item)

    def due(self, now: float, force: bool = False) -> tuple[list[Joined], list[LogView]]:
        """Spans complete or whose window has passed, with their logs; and logs that never met
        a span."""
        leaving = list(self._complete.values())
        self._complete = {}
        for key in _arrived_by(self._spans, now - self.window_s, force, lambda s: s.arrived):
            waiting = self._spans.pop(key)
            self._adopt_idless(waiting)
            leaving.append(waiting)
        joined = [Joined(w.row, [item.log for item in w.logs], w.ref) for w in leaving]
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
        to a span of the same process whose own logs have the input but no output, as its
        window ends (the events may come later than the span's other logs)."""
        if waiting.sides != INPUT:
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
        self._complete = {k: s for k, s in self._complete.items() if s.ref[0] not in partitions}
        for s in (*self._spans.values(), *self._complete.values()):
            s.logs = [w for w in s.logs if w.ref[0] not in partitions]
        for key in list(self._logs):
            self._logs[key] = [w for w in self._logs[key] if w.ref[0] not in partitions]
            if not self._logs[key]:
                del self._logs[key]
        self._idless = [w for w in self._idless if w.ref[0] not in partitions]
        return before - len(self)

    def refs(self) -> Iterable[Ref]:
        for s in (*self._spans.values(), *self._complete.values()):
            yield s.ref
            yield from (w.ref for w in s.logs)
        for items in self._logs.values():
            yield from (w.ref for w in items)
        yield from (w.ref for w in self._idless)
