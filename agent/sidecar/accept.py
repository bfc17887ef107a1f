"""What the sidecar does to one export before the bus sees it: validate ids, head-sample,
apply the limits (counts, then redact, then value lengths: see limits.py) and split it by
trace id. A pure step over the request, so that it runs in the receiving process or in a
worker process (workers.py) alike; what it counted comes back with the parts, for /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from watchkeeper.agent.config import SidecarConfig
from watchkeeper.agent.sidecar.limits import Limiter
from watchkeeper.agent.sidecar.redaction import Redactor
from watchkeeper.agent.sidecar.sampling import Sampler
from watchkeeper.agent.sidecar.signals import LOGS, TRACES, Signal, count, items, keep_only

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Accepted:
    received: int
    rejected: int  # items with invalid trace or span ids (OTLP partial success)
    sampled_out: int
    cuts: Counter[str]  # limit name -> items dropped or values shortened
    redactions: Counter[str]  # kind -> values replaced
    parts: list[tuple[bytes, bytes]]  # (trace id, the request's part for that trace, encoded)


class Steps:
    """The in-place steps of one sidecar config."""

    def __init__(self, config: SidecarConfig) -> None:
        self.redactor = Redactor(config.redaction)
        self.sampler = Sampler(config.sampling)
        self.limiter = Limiter(config.limits)
        # per signal: sampling returns how many items it dropped, redaction how many values of
        # each type it replaced
        self._steps: dict[str, tuple[Callable[[Any], int], Callable[[Any], Counter[str]]]] = {
            TRACES.name: (self.sampler.traces, self.redactor.traces),
            LOGS.name: (self.sampler.logs, self.redactor.logs)}

    def accept(self, request: Message, signal: Signal) -> Accepted:
        """Validate, sample and redact the request in place; then one part per trace."""
        sample, redact = self._steps[signal.name]
        received = count(request, signal)
        rejected = keep_only(request, signal, signal.valid)
        sampled_out = sample(request)
        cuts = self.limiter.counts(request, signal)
        redactions = redact(request)
        cuts.update(self.limiter.values(request, signal))
        parts = [(trace_id, part.SerializeToString())
                 for trace_id, part in _split(request, signal).items()]
        return Accepted(received, rejected, sampled_out, cuts, redactions, parts)


def _split(request: M, signal: Signal) -> dict[bytes, M]:
    """One bus message per trace, so that a trace's spans and logs share a partition."""
    ids = {item.trace_id for item in items(request, signal)}
    if len(ids) <= 1:
        return {ids.pop(): request} if ids else {}
    out: dict[bytes, M] = {}
    for resource in getattr(request, signal.resources):
        resource_parts: dict[bytes, Any] = {}
        for scope in getattr(resource, signal.scopes):
            scope_parts: dict[bytes, Any] = {}
            for item in getattr(scope, signal.items):
                target = scope_parts.get(item.trace_id)
                if target is None:
                    parent = resource_parts.get(item.trace_id)
                    if parent is None:
                        part = out.setdefault(item.trace_id, type(request)())
                        parent = resource_parts[item.trace_id] = getattr(
                            part, signal.resources).add(resource=resource.resource,
                                                        schema_url=resource.schema_url)
                    target = scope_parts[item.trace_id] = getattr(parent, signal.scopes).add(
                        scope=scope.scope, schema_url=scope.schema_url)
                getattr(target, signal.items).append(item)
    return out
