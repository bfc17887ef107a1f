"""From a config entry to a watcher: the one place that maps a kind's name to its class and its
options model. Kinds import their libraries lazily, so a deployment that runs only heuristics
never imports torch; the options models are plain pydantic, so the config validates every
entry's options when it loads without importing any kind."""

from __future__ import annotations

import importlib
from typing import NamedTuple

from pydantic_core import InitErrorDetails

from watchkeeper.detectors.options import check, component_error
from watchkeeper.detectors.watchers.base import (
    AsyncWatcher,
    Embedder,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
)
from watchkeeper.detectors.watchers.options import (
    DetoxifyOptions,
    EmbeddingOptions,
    HeuristicsOptions,
    HFClassifierOptions,
    LLMJudgeOptions,
    ProfanityOptions,
    PromptInjectionOptions,
    PromptLeakOptions,
    TrainableHeadOptions,
    WatcherOptions,
)


class Kind(NamedTuple):
    """`target` is "module:Class"; the class takes the WatcherSpec and its validated options
    (`cls(spec, options)`) and loads in its constructor."""

    target: str
    options: type[WatcherOptions]


KINDS: dict[str, Kind] = {
    "heuristics": Kind("watchkeeper.detectors.watchers.heuristics:Heuristics",
                       HeuristicsOptions),
    "detoxify": Kind("watchkeeper.detectors.watchers.detoxify_watcher:DetoxifyWatcher",
                     DetoxifyOptions),
    "hf_classifier": Kind("watchkeeper.detectors.watchers.hf_classifier:SequenceClassifier",
                          HFClassifierOptions),
    "llm_judge": Kind("watchkeeper.detectors.watchers.llm_judge:LLMJudge", LLMJudgeOptions),
    "embedding": Kind("watchkeeper.detectors.watchers.embedding:SentenceEmbedder",
                      EmbeddingOptions),
    "trainable_head": Kind("watchkeeper.detectors.watchers.trainable_head:TrainableHead",
                           TrainableHeadOptions),
    "profanity": Kind("watchkeeper.detectors.watchers.profanity:ProfanityCheck",
                      ProfanityOptions),
    "prompt_leak": Kind("watchkeeper.detectors.watchers.prompt_leak:PromptLeak",
                        PromptLeakOptions),
    "prompt_injection": Kind("watchkeeper.detectors.watchers.prompt_injection:PromptInjection",
                             PromptInjectionOptions),
}


def options_model(kind: str) -> type[WatcherOptions]:
    known = KINDS.get(kind)
    if known is None:
        raise WatcherLoadError(f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    return known.options


def config_errors(spec: WatcherSpec, index: int) -> list[InitErrorDetails]:
    """What is wrong with one `watch.watchers` entry's kind and options, as errors about the
    watcher at that index (empty when nothing is)."""
    known = KINDS.get(spec.kind)
    if known is None:
        return [component_error(spec.name, (index, "kind"),
                                f"unknown watcher kind {spec.kind!r} (known: "
                                f"{', '.join(sorted(KINDS))})", spec.kind, depth=1)]
    _, errors = check(known.options, spec.options, spec.name, ("options",), at=(index,))
    return errors


def build(spec: WatcherSpec) -> Watcher | AsyncWatcher | Embedder:
    known = KINDS.get(spec.kind)
    if known is None:
        raise WatcherLoadError(f"watcher {spec.name!r}: unknown kind {spec.kind!r} "
                               f"(known: {', '.join(sorted(KINDS))})")
    options = known.options.of(spec)  # names the watcher and the field
    module_name, _, class_name = known.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        watcher = cls(spec, options)
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
    if not isinstance(watcher, AsyncWatcher | Watcher | Embedder):
        raise WatcherLoadError(f"watcher {spec.name!r}: {known.target} does not honour the "
                               "contract")
    return watcher  # type: ignore[no-any-return]
