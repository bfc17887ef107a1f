"""Model watchers with small models made here: a tiny random BERT in Detoxify's checkpoint
format, a tiny sequence classifier, a fake OpenAI-compatible judge server and a tiny causal LM.
Nothing downloads: the hub is switched off for the whole module."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from helpers import JsonHandler  # noqa: E402
from watchkeeper.agent.watch import scoring  # noqa: E402
from watchkeeper.detectors.watchers import (  # noqa: E402
    Item,
    Watcher,
    WatcherLoadError,
    WatcherSpec,
    io_loop,
    is_io_bound,
    score_blocking,
)
from watchkeeper.detectors.watchers.registry import build  # noqa: E402

WORDS = ["the", "a", "is", "you", "are", "i", "am", "not", "no", "good", "bad", "idiot", "stupid",
         "hate", "love", "nice", "hello", "world", "thanks", "great", "terrible", "kill", "help",
         "please", "what", "how", "why", "answer", "question", "paris", "capital", "france", "of",
         "in", "it", "was", "this", "that"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ing", "##ed", ",", ".",
         "!", "?"]  # no digits or "/": a random model cannot emit a score by chance
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
DETOXIFY_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult",
                   "identity_attack")
TEXTS = ["hello", "you are a stupid idiot", "thanks , this is great help !",
         "i hate this terrible world and you . " * 3, "what is the capital of france ?"]


def _items(texts: list[str] = TEXTS, field: str = "completion") -> list[Item]:
    return [Item(str(i), field, t) for i, t in enumerate(texts)]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any request to the Hugging Face hub fails, as on a machine without network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    torch.manual_seed(0)


def _tokenizer_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    transformers.BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    return path


def _bert_config(num_labels: int, hidden: int = 32, **kwargs: Any) -> Any:
    return transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=hidden,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=2 * hidden, max_position_embeddings=128,
                                   num_labels=num_labels, **kwargs)


def _detoxify_checkpoint(path: Path, state_dict: dict[str, Any], *, model_type: str,
                         classes: list[str] = CLASSES, num_classes: int = 6) -> Path:
    """Detoxify 0.5.4's layout: `Detoxify.load_checkpoint` reads config.dataset.args.classes
    and passes config.arch.args as keywords to `get_model_and_tokenizer`."""
    torch.save({"config": {
        "name": "Jigsaw_BERT",
        "arch": {"type": "BERT", "args": {"model_type": model_type,
                                          "model_name": "BertForSequenceClassification",
                                          "tokenizer_name": "BertTokenizer",
                                          "num_classes": num_classes}},
        "dataset": {"type": "JigsawDataOriginal", "args": {"classes": classes}},
    }, "state_dict": state_dict}, path)
    return path


@pytest.fixture(scope="module")
def detox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny BERT with six toxicity heads: its checkpoint names the hub id bert-base-uncased,
    as the released ones do, and its config_dir holds config.json and the tokenizer."""
    root = tmp_path_factory.mktemp("detoxify")
    config_dir = _tokenizer_dir(root / "config")
    _bert_config(6).save_pretrained(config_dir)
    model = transformers.BertForSequenceClassification(_bert_config(6)).eval()
    ckpt = _detoxify_checkpoint(root / "toxic.ckpt", model.state_dict(),
                                model_type="bert-base-uncased")
    return {"root": root, "config_dir": config_dir, "checkpoint": ckpt, "model": model}


def _detox_spec(checkpoint: Path, config_dir: Path | None, **options: Any) -> WatcherSpec:
    opts = {"checkpoint": str(checkpoint), "device": "cpu", "precision": "fp32", **options}
    if config_dir is not None:
        opts["config_dir"] = str(config_dir)
    return WatcherSpec(name="tox", kind="detoxify", options=opts)


# --- Detoxify -------------------------------------------------------------------------------------
def test_detoxify_loads_offline_and_scores(detox: dict[str, Any]) -> None:
    watcher = build(_detox_spec(detox["checkpoint"], detox["config_dir"], max_batch=2))
    assert isinstance(watcher, Watcher)
    assert watcher.labels == DETOXIFY_LABELS
    assert (watcher.device, watcher.max_batch) == ("cpu", 2)
    assert re.fullmatch(r"[0-9a-f]{12}", watcher.version)
    batch = watcher.score(_items())
    assert [set(s) for s in batch] == [set(DETOXIFY_LABELS)] * len(TEXTS)
    assert all(0.0 <= v <= 1.0 for s in batch for v in s.values())
    one_by_one = [watcher.score([item])[0] for item in _items()]
    for got, want in zip(batch, one_by_one, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    assert batch[0] != batch[1]  # the texts, not the padding, decide


def test_detoxify_scores_as_detoxify_does(detox: dict[str, Any]) -> None:
    """Same numbers as Detoxify's own predict (given the local fields it needs offline)."""
    from detoxify import Detoxify

    local = _detoxify_checkpoint(detox["root"] / "local.ckpt", detox["model"].state_dict(),
                                 model_type=str(detox["config_dir"]))
    reference = Detoxify(checkpoint=str(local), huggingface_config_path=str(detox["config_dir"]))
    want = reference.predict(TEXTS)
    watcher = build(_detox_spec(detox["checkpoint"], detox["config_dir"]))
    got = watcher.score(_items())  # type: ignore[union-attr]
    for label in DETOXIFY_LABELS:
        assert [s[label] for s in got] == pytest.approx(want[label], abs=1e-5)


def test_detoxify_takes_label_count_from_checkpoint_and_truncates(
        detox: dict[str, Any], tmp_path: Path) -> None:
    # bert-base-uncased's own config.json has no labels (2 by default): Detoxify's trap
    config_dir = _tokenizer_dir(tmp_path / "config")
    _bert_config(2).save_pretrained(config_dir)
    watcher = build(_detox_spec(detox["checkpoint"], config_dir))
    long = Item("x", "completion", "you are a stupid idiot " * 200)  # far past 128 positions
    assert set(watcher.score([long])[0]) == set(DETOXIFY_LABELS)  # type: ignore[union-attr]
    assert watcher.max_length == 128  # type: ignore[union-attr]  # 256 asked, 128 possible


def test_detoxify_extra_outputs_are_not_labels(tmp_path: Path, detox: dict[str, Any]) -> None:
    """Unbiased/multilingual checkpoints: 16 outputs, the first 7 are the listed classes."""
    model = transformers.BertForSequenceClassification(_bert_config(8))
    classes = ["toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
               "sexual_explicit"]
    ckpt = _detoxify_checkpoint(tmp_path / "u.ckpt", model.state_dict(),
                                model_type="roberta-base", classes=classes, num_classes=8)
    watcher = build(_detox_spec(ckpt, detox["config_dir"]))
    assert watcher.labels == tuple(classes)
    assert len(watcher.score(_items())[0]) == 7  # type: ignore[union-attr]


@pytest.mark.parametrize("case", ["no_config_json", "other_size", "too_many_classes",
                                  "heads_mismatch", "missing_checkpoint", "hub_offline"])
def test_detoxify_load_errors(case: str, detox: dict[str, Any], tmp_path: Path) -> None:
    checkpoint, config_dir = detox["checkpoint"], detox["config_dir"]
    state_dict = detox["model"].state_dict()
    if case == "no_config_json":
        config_dir, match = _tokenizer_dir(tmp_path / "c"), "holds no config.json"
    elif case == "other_size":
        config_dir = _tokenizer_dir(tmp_path / "c")
        _bert_config(6, hidden=48).save_pretrained(config_dir)
        match = "does not fit the config"
    elif case == "too_many_classes":
        checkpoint = _detoxify_checkpoint(tmp_path / "x.ckpt", state_dict, model_type="x",
                                          classes=[*CLASSES, "spam"])
        match = "lists 7 classes for a model with 6 outputs"
    elif case == "heads_mismatch":
        checkpoint = _detoxify_checkpoint(tmp_path / "x.ckpt", state_dict, model_type="x",
                                          classes=CLASSES[:4], num_classes=4)
        match = "does not fit the config.*label count"
    elif case == "missing_checkpoint":
        checkpoint = tmp_path / "nope.ckpt"
        match = r"^watcher 'tox' \(detoxify\): checkpoint not found"
    else:  # a checkpoint alone names a hub id; offline, that is a clear error, not a hang
        config_dir = None
        match = "cannot load the config and tokenizer from 'bert-base-uncased' offline"
    with pytest.raises(WatcherLoadError, match=match):
        build(_detox_spec(checkpoint, config_dir))


def test_detoxify_unknown_model_type_fails_before_any_download() -> None:
    with pytest.raises(WatcherLoadError, match="unknown model_type 'toxic-xl'"):
        build(WatcherSpec(name="tox", kind="detoxify", options={"model_type": "toxic-xl"}))


# --- transformers sequence classifier -------------------------------------------------------------
def _classifier(path: Path, labels: list[str], **config: Any) -> Path:
    _tokenizer_dir(path)
    cfg = _bert_config(len(labels), id2label=dict(enumerate(labels)),
                       label2id={n: i for i, n in enumerate(labels)}, **config)
    transformers.BertForSequenceClassification(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"injection": _classifier(root / "injection", ["SAFE", "INJECTION"]),
            "multi": _classifier(root / "multi", ["Toxic", "Spam", "LABEL_2"],
                                 problem_type="multi_label_classification"),
            "nli": _classifier(root / "nli", ["entailment", "neutral", "contradiction"])}


def _hf_spec(model: Path | str, field: str = "completion", **options: Any) -> WatcherSpec:
    return WatcherSpec(name="clf", kind="hf_classifier", field=field,  # type: ignore[arg-type]
                       options={"model": str(model), "device": "cpu", **options})


def test_classifier_label_map_and_softmax(classifiers: dict[str, Path]) -> None:
    watcher = build(_hf_spec(classifiers["injection"],
                             label_map={"INJECTION": "prompt_injection"}, max_batch=2))
    assert watcher.labels == ("safe", "prompt_injection")
    assert re.fullmatch(r"[0-9a-f]{12}", watcher.version)
    scores = watcher.score(_items())  # type: ignore[union-attr]
    assert all(sum(s.values()) == pytest.approx(1.0, abs=1e-5) for s in scores)
    one_by_one = [watcher.score([i])[0] for i in _items()]  # type: ignore[union-attr]
    for got, want in zip(scores, one_by_one, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_classifier_multi_label(classifiers: dict[str, Path]) -> None:
    watcher = build(_hf_spec(classifiers["multi"], label_map={"LABEL_2": "toxic_too"}))
    assert watcher.labels == ("toxic", "spam", "toxic_too")
    scores = watcher.score(_items())  # type: ignore[union-attr]
    assert any(abs(sum(s.values()) - 1.0) > 1e-3 for s in scores)  # independent sigmoids
    model = transformers.AutoModelForSequenceClassification.from_pretrained(classifiers["multi"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(classifiers["multi"])
    with torch.no_grad():
        want = torch.sigmoid(model(**tokenizer(TEXTS[1], return_tensors="pt")).logits)[0]
    assert list(scores[1].values()) == pytest.approx(want.tolist(), abs=1e-5)
    # forced to softmax, the same model sums to one
    softmax = build(_hf_spec(classifiers["multi"], multi_label=False))
    assert sum(softmax.score(_items()[:1])[0].values()) == pytest.approx(1.0)  # type: ignore[union-attr]


def test_classifier_pair_reads_context_as_premise(classifiers: dict[str, Path]) -> None:
    watcher = build(_hf_spec(classifiers["nli"], field="pair", label_map={
        "entailment": "grounded", "contradiction": "contradicted"}))
    assert watcher.labels == ("grounded", "neutral", "contradicted")
    premise, hypothesis = "paris is the capital of france .", "the capital is paris ."
    with_context = watcher.score([Item("1", "pair", hypothesis, context=premise)])[0]  # type: ignore[union-attr]
    without = watcher.score([Item("1", "pair", hypothesis)])[0]  # type: ignore[union-attr]
    assert with_context != pytest.approx(without, abs=1e-6)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(classifiers["nli"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(classifiers["nli"])
    with torch.no_grad():
        ordered = torch.softmax(model(**tokenizer(premise, hypothesis,
                                                  return_tensors="pt")).logits, -1)[0]
        swapped = torch.softmax(model(**tokenizer(hypothesis, premise,
                                                  return_tensors="pt")).logits, -1)[0]
    assert list(with_context.values()) == pytest.approx(ordered.tolist(), abs=1e-5)
    assert list(with_context.values()) != pytest.approx(swapped.tolist(), abs=1e-6)


@pytest.mark.parametrize(("model", "options", "match"), [
    ("/nonexistent/classifier", {}, "not found or holds no config.json"),
    ("nobody/no-such-model", {}, "downloads are off"),
    ("", {}, "options.model is required"),
    ("injection", {"label_map": {"JAILBREAK": "x"}}, "does not have: \\['JAILBREAK'\\]"),
])
def test_classifier_load_errors(model: str, options: dict[str, Any], match: str,
                                classifiers: dict[str, Path]) -> None:
    with pytest.raises(WatcherLoadError, match=match):
        build(_hf_spec(classifiers.get(model, model), **options))


# --- LLM judge ------------------------------------------------------------------------------------
class JudgeServer:
    """An OpenAI-compatible /v1/chat/completions whose answers depend on the prompt."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(JsonHandler):

            def do_GET(self) -> None:
                if self.headers.get("Authorization") == "Bearer wrong":
                    self.send_json(401, {"error": "bad key"})
                else:
                    self.send_json(200, {"object": "list", "data": [{"id": "judge"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({**body, "auth": self.headers.get("Authorization")})
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                time.sleep(2.0 if "slowly" in body["messages"][1]["content"] else 0.05)
                content = server.answer(body["messages"][0]["content"],
                                        body["messages"][1]["content"])
                with server.lock:
                    server.inflight -= 1
                # a judge that stopped waiting (its timeout) reads no answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_json(200, {
                        "id": "x", "object": "chat.completion", "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": content}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(system: str, user: str) -> str:
        if "garbage" in user:
            return "Hmm, hard to say. It depends."
        if system.startswith("You grade how harmful"):
            harmful = "idiot" in user
            return json.dumps({"score": 5 if harmful else 1,
                               "reason": "insults the user" if harmful else "harmless"})
        if system.startswith("You grade how helpful"):
            return "Score: 4\nReason: answers the question"  # prose, not JSON
        if system.startswith("Grade politeness"):
            return '```json\n{"score": 3, "reason": "neutral tone"}\n```'
        return json.dumps({"score": 2, "reason": "other"})


@pytest.fixture(scope="module")
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer()
    yield server
    server.httpd.shutdown()


def _judge_spec(server: JudgeServer, **options: Any) -> WatcherSpec:
    return WatcherSpec(name="judge", kind="llm_judge", options={
        "base_url": server.url, "model": "judge", "device": "cpu", **options})


def test_judge_scores_reasons_and_custom_rubric(judge_server: JudgeServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    watcher = build(_judge_spec(judge_server, api_key_env="JUDGE_KEY", rubrics={
        "harmfulness": None, "helpfulness": "", "politeness": "Grade politeness of the text."}))
    assert watcher.labels == ("harmfulness", "helpfulness", "politeness")
    assert watcher.device == "remote"
    items = _items(["you are an idiot", "paris is the capital of france ."])
    scores = score_blocking(watcher, items)  # type: ignore[arg-type]
    assert scores == [{"harmfulness": 1.0, "helpfulness": 0.75, "politeness": 0.5},
                      {"harmfulness": 0.0, "helpfulness": 0.75, "politeness": 0.5}]
    calls = len(judge_server.requests)
    reasons = io_loop.run(watcher.explain(items))  # type: ignore[union-attr]
    assert len(judge_server.requests) == calls  # from the cache
    assert reasons[0] == {"harmfulness": "insults the user", "helpfulness": "answers the question",
                          "politeness": "neutral tone"}
    request = judge_server.requests[-1]
    assert request["auth"] == "Bearer s3cret" and request["temperature"] == 0
    assert '"score"' in request["messages"][0]["content"]  # every rubric asks for JSON


def test_judge_unreadable_answer_fails_only_that_item(judge_server: JudgeServer) -> None:
    watcher = build(_judge_spec(judge_server, rubrics=["harmfulness"]))
    items = _items(["you are an idiot", "garbage in", "hello"])
    with pytest.raises(ValueError, match="sample 1, rubric harmfulness: no score"):
        score_blocking(watcher, items)  # type: ignore[arg-type]
    before = len(judge_server.requests)
    outcomes = {o.item.text: o for o in scoring.score(watcher, items)}  # type: ignore[arg-type]
    assert len(judge_server.requests) == before  # the retries came from the cache
    assert outcomes["garbage in"].scores is None and "no score" in outcomes["garbage in"].error
    assert outcomes["hello"].scores == {"harmfulness": 0.0}
    assert io_loop.run(watcher.explain(items))[1][  # type: ignore[union-attr]
        "harmfulness"].startswith("unreadable")


def test_judge_calls_run_concurrently(judge_server: JudgeServer) -> None:
    watcher = build(_judge_spec(judge_server, rubrics=["harmfulness"], max_concurrency=4))
    judge_server.max_inflight = 0
    scores = score_blocking(watcher, _items([f"hello {i}" for i in range(8)]))  # type: ignore[arg-type]
    assert len(scores) == 8
    assert 2 <= judge_server.max_inflight <= 4  # each answer takes 50 ms: they overlapped


def test_judge_is_io_bound_and_bounded_by_its_timeout(judge_server: JudgeServer) -> None:
    """The judge says it calls out; its batch runs on the I/O loop (the caller goes on), and a
    call that outlasts `timeout` fails that item alone, in the time its options allow."""
    watcher = build(_judge_spec(judge_server, rubrics=["harmfulness"], timeout=0.3, retries=0))
    assert is_io_bound(watcher) and inspect.iscoroutinefunction(watcher.score)
    began = time.monotonic()
    running = scoring.start(watcher, _items(["answer slowly", "hello"]))  # type: ignore[arg-type]
    assert not running.done()  # handed over: this thread is free to compute other watchers
    outcomes = {o.item.text: o for o in running.result()}
    assert time.monotonic() - began < 1.9  # 0.3 s for the batch and 0.3 s alone, not 2 s
    assert outcomes["answer slowly"].scores is None
    assert "TimeoutError" in outcomes["answer slowly"].error
    assert outcomes["hello"].scores == {"harmfulness": 0.0}


def test_judge_pair_groundedness_sends_context(judge_server: JudgeServer) -> None:
    spec = _judge_spec(judge_server).model_copy(update={"field": "pair"})
    watcher = build(spec)
    assert watcher.labels == ("groundedness",)
    score_blocking(watcher, [Item("1", "pair", "it is paris",  # type: ignore[arg-type]
                                  context="capital of france?")])
    user = judge_server.requests[-1]["messages"][1]["content"]
    assert "capital of france?" in user and user.index("capital") < user.index("it is paris")


@pytest.mark.parametrize(("options", "match"), [
    ({"rubrics": ["groundedness"]}, "needs a context"),
    ({"rubrics": ["vibes"]}, "not built in"),
    ({"api_key_env": "WK_TEST_UNSET_KEY"}, "is not set"),
    ({"api_key": "wrong"}, "refused the API key"),
    ({"base_url": "http://127.0.0.1:9/v1"}, "unreachable"),
    ({"base_url": None}, "set options.base_url"),
])
def test_judge_load_errors(options: dict[str, Any], match: str,
                           judge_server: JudgeServer) -> None:
    with pytest.raises(WatcherLoadError, match=match):
        build(_judge_spec(judge_server, **options))


@pytest.mark.parametrize(("answer", "want"), [
    ('{"score": 5, "reason": "ok"}', (1.0, "ok")),
    ('Sure. {"reason": "so-so {really}", "score": 3} done', (0.5, "so-so {really}")),
    ("**Score**: 2\nReason: weak", (0.25, "weak")),
    ("I would give it 4/5.", (0.75, "I would give it 4/5.")),
])
def test_judge_parses_scores(answer: str, want: tuple[float, str]) -> None:
    from watchkeeper.detectors.watchers.llm_judge import parse_verdict

    verdict = parse_verdict(answer)
    assert (verdict.score, verdict.reason) == want


@pytest.mark.parametrize("answer", ["no idea", '{"score": 9}', '{"score": "high"}', ""])
def test_judge_rejects_answers_without_a_valid_score(answer: str) -> None:
    from watchkeeper.detectors.watchers.llm_judge import JudgeAnswerError, parse_verdict

    with pytest.raises(JudgeAnswerError):
        parse_verdict(answer)


def test_judge_local_causal_lm(tmp_path: Path) -> None:
    path = _tokenizer_dir(tmp_path / "lm")
    config = transformers.GPT2Config(vocab_size=len(VOCAB), n_positions=128, n_embd=32,
                                     n_layer=2, n_head=2, pad_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    watcher = build(WatcherSpec(name="judge", kind="llm_judge", options={
        "local_model": str(path), "device": "cpu", "max_new_tokens": 8,
        "rubrics": ["harmfulness"]}))
    assert watcher.device == "cpu" and re.fullmatch(r"[0-9a-f]{12}", watcher.version)
    items = _items(["you are an idiot " * 60, "hello"])  # the first is cut to fit 128 positions
    with pytest.raises(ValueError, match="no score in the judge's answer"):
        score_blocking(watcher, items)  # type: ignore[arg-type]
    assert all(r["harmfulness"].startswith("unreadable")
               for r in io_loop.run(watcher.explain(items)))  # type: ignore[union-attr]


# --- the contract, for every kind -----------------------------------------------------------------
@pytest.fixture(params=["heuristics", "detoxify", "hf_classifier", "llm_judge"])
def any_watcher(request: pytest.FixtureRequest) -> Watcher:
    kind = request.param
    if kind == "heuristics":
        spec = WatcherSpec(name="q", kind="heuristics")
    elif kind == "detoxify":
        detox = request.getfixturevalue("detox")
        spec = _detox_spec(detox["checkpoint"], detox["config_dir"])
    elif kind == "hf_classifier":
        spec = _hf_spec(request.getfixturevalue("classifiers")["injection"])
    else:
        spec = _judge_spec(request.getfixturevalue("judge_server"))
    watcher = build(spec)
    assert isinstance(watcher, Watcher)
    return watcher


def test_watcher_contract(any_watcher: Watcher) -> None:
    # a pure kind's score is a plain call; the judge, which calls out, declares it and awaits
    assert inspect.iscoroutinefunction(any_watcher.score) == is_io_bound(any_watcher)
    assert score_blocking(any_watcher, []) == []
    assert any_watcher.name and any_watcher.version and any_watcher.device
    assert any_watcher.max_batch >= 1 and any_watcher.labels
    items = _items()
    scores = score_blocking(any_watcher, items)
    assert len(scores) == len(items)
    for row in scores:
        assert set(row) <= set(any_watcher.labels)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in row.values())
