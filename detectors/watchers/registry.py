"""From a config entry to a watcher. Kinds import their libraries lazily, so a deployment that
runs only heuristics never imports torch."""

from __future__ import annotations

import importlib

from watchkeeper.detectors.watchers.base import Embedder, Watcher, WatcherLoadError, WatcherSpec

# kind -> "module:Class"; every class takes the WatcherSpec and loads in its constructor.
KINDS: dict[str, str] = {
    "heuristics": "watchkeeper.detectors.watchers.heuristics:Heuristics",
    "detoxify": "watchkeeper.detectors.watchers.detoxify_watcher:DetoxifyWatcher",
    "hf_classifier": "watchkeeper.detectors.watchers.hf_classifier:SequenceClassifier",
    "llm_judge": "watchkeeper.detectors.watchers.llm_judge:LLMJudge",
    "embedding": "watchkeeper.detectors.watchers.embedding:SentenceEmbedder",
    "trainable_head": "watchkeeper.detectors.watchers.trainable_head:TrainableHead",
    "profanity": "watchkeeper.detectors.watchers.profanity:ProfanityCheck",
}


def build(spec: WatcherSpec) -> Watcher | Embedder:
    target = KINDS.get(spec.kind)
    if target is None:
        raise WatcherLoadError(f"watcher {spec.name!r}: unknown kind {spec.kind!r} "
                               f"(known: {', '.join(sorted(KINDS))})")
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        watcher = cls(spec)
    except WatcherLoadError as exc:
        prefix = f"watcher {spec.name!r} ({spec.kind})"
        if str(exc).startswith(prefix):
            raise
        raise WatcherLoadError(f"{prefix}: {exc}") from exc
    except ImportError as exc:
        raise WatcherLoadError(f"watcher {spec.name!r} ({spec.kind}) needs the 'watchers' extra: "
                               f"pip install 'watchkeeper[watchers]' ({exc})") from exc
    except Exception as exc:
        raise WatcherLoadError(f"watcher {spec.name!r} ({spec.kind}) failed to load: "
                               f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(watcher, Watcher | Embedder):
        raise WatcherLoadError(f"watcher {spec.name!r}: {target} does not honour the contract")
    return watcher  # type: ignore[no-any-return]
