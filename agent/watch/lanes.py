"""Which watchers score in which lane. A lane is one consumer of a bus topic with a consumer
group, offsets and thread of its own, so one lane's pace never holds up another's.

- The watchers that compute (models, rules, embeddings) share the main lane on wk.samples, as
  they always did (group `watch.group`), cascades among them included.
- A watcher that calls out (an LLM judge, `io_bound`) gets lanes of its own: on wk.samples
  for what its sampling policy picks by rate and lists (unless `only_after`), and on
  wk.flagged for what the watchers in its `after` flagged (a cascade): the leaders' lane
  publishes a flagged sample there once its flags are stored. A sample both picked by rate
  and flagged is scored in the wk.samples lane only. A slow or failing endpoint delays only
  its own lanes; their backlog is bounded by the policy's `max_delay_s` (service.py).

Each lane commits its own offsets: after a stop or a crash every lane goes on where it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.agent.bus import TOPIC_FLAGGED, TOPIC_SAMPLES
from watchkeeper.agent.config import WatchConfig
from watchkeeper.detectors.watchers import AsyncWatcher, Embedder, Watcher, WatcherSpec, is_io_bound

Loaded = tuple[WatcherSpec, Watcher | AsyncWatcher | Embedder]


@dataclass(frozen=True)
class Lane:
    name: str  # the service's name: watch, watch:<watcher>, watch:<watcher>@flagged
    topic: str
    group: str
    watchers: tuple[Loaded, ...]
    cascade: bool = False  # reads wk.flagged and scores only what the leaders flagged
    own: bool = False  # a watcher's own lane: its backlog is bounded by max_delay_s
    closes: tuple[str, ...] = ()  # watchers this lane closes at stop (each in one lane)


def plan(config: WatchConfig, loaded: list[Loaded]) -> list[Lane]:
    shared = tuple(pair for pair in loaded if not is_io_bound(pair[1]))
    lanes = [Lane("watch", TOPIC_SAMPLES, config.group, shared,
                  closes=tuple(spec.name for spec, _ in shared))] if shared else []
    for spec, watcher in loaded:
        if not is_io_bound(watcher):
            continue
        policy = spec.sampling
        if not policy.only_after:
            lanes.append(Lane(f"watch:{spec.name}", TOPIC_SAMPLES, f"{config.group}.{spec.name}",
                              ((spec, watcher),), own=True, closes=(spec.name,)))
        if policy.after:
            lanes.append(Lane(f"watch:{spec.name}@flagged", TOPIC_FLAGGED,
                              f"{config.group}.{spec.name}.flagged", ((spec, watcher),),
                              cascade=True, own=True,
                              closes=(spec.name,) if policy.only_after else ()))
    return lanes
