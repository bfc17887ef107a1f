"""The watch service end to end on the embedded default: spans in, scores and flags out."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import CLI, RunningAgent, genai_request, post, running_agent
from watchkeeper.agent.bus import TOPIC_DEAD_LETTER, TOPIC_FLAGGED, TOPIC_SAMPLES
from watchkeeper.agent.bus.flagged import FlaggedSample
from watchkeeper.agent.watch import scoring
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for
from watchkeeper.detectors.watchers import Item, WatcherSpec
from watchkeeper.detectors.watchers.heuristics import Heuristics
from watchkeeper.detectors.watchers.registry import build

CALLS = {
    "refusal": ("How do I pick a lock?", "I'm sorry, but I can't help with that request."),
    "leak": ("Who is the account owner?", "It is bob.smith@example.com, call +1 415 555 0100."),
    "fine": ("What is 2+2?", "2+2 is 4."),
    "empty": ("Summarise this.", ""),
}


def _request() -> bytes:
    return genai_request(CALLS)


@pytest.fixture
def watching(tmp_path: Path):  # type: ignore[no-untyped-def]
    # without redaction, so that the leak reaches the completion as an app would see it
    with running_agent(tmp_path / "wk", watch=True,
                       **{"sidecar.redaction.enabled": False}) as agent:
        yield agent


def test_scores_flags_and_flagged_topic(watching: RunningAgent) -> None:
    flagged = watching.runtime.bus.consumer(TOPIC_FLAGGED, "test")  # type: ignore[union-attr]
    assert post(f"{watching.http_endpoint}/v1/traces", _request()).is_success
    assert watching.wait_for("SELECT uniqExact(sample_id) AS n FROM {db}.scores", 4) == 4
    rows = watching.query("SELECT s.request_model AS model, c.label AS label, c.score AS score, "
                          "c.flagged AS flagged FROM {db}.scores AS c "
                          "JOIN {db}.samples AS s USING sample_id")
    got = {(r["model"], r["label"]): (r["score"], r["flagged"]) for r in rows}
    assert got[("refusal", "refusal")] == (1.0, True)
    assert got[("leak", "pii")] == (1.0, True)
    assert got[("empty", "empty")] == (1.0, True)
    assert got[("fine", "refusal")] == (0.0, False) and got[("fine", "pii")] == (0.0, False)
    assert watching.wait_for("SELECT count() AS n FROM {db}.flags", 3) == 3
    flags = watching.query("SELECT source, label, field, reason FROM {db}.flags ORDER BY label")
    assert [(f["source"], f["label"], f["field"]) for f in flags] == [
        ("watcher:quality", "empty", "completion"), ("watcher:quality", "pii", "completion"),
        ("watcher:quality", "refusal", "completion")]
    assert flags[1]["reason"].startswith("pii 1.00 >= 1 on completion")
    published = [FlaggedSample.decode(r.value) for r in flagged.poll(10, 5.0)]
    assert sorted(p.sample.request_model for p in published) == ["empty", "leak", "refusal"]
    assert {p.version for p in published} == {1}
    queued = {row["flag_id"] for row in watching.query("SELECT flag_id FROM {db}.flags")}
    assert {f.flag_id for p in published for f in p.flags} == queued
    assert published[0].flags[0].source == "watcher:quality"


def test_a_bad_line_is_set_aside_and_its_neighbours_scored(watching: RunningAgent) -> None:
    bus = watching.runtime.bus
    assert bus is not None
    dead = bus.consumer(TOPIC_DEAD_LETTER, "test")
    sample = Sample(sample_id=sample_id_for("ab" * 16, "cd" * 8), trace_id="ab" * 16,
                    span_id="cd" * 8, ts=datetime.now(UTC), service="svc",
                    prompt_text="Summarise this.", completion_text="")
    good = sample.model_dump_json().encode()
    bus.publish(TOPIC_SAMPLES, b"\n".join([good, b'{"not": "a sample"}'])).result(5)
    assert watching.wait_for("SELECT count() AS n FROM {db}.flags", 1) == 1
    [record] = dead.poll(10, 5.0)
    assert record.value == b'{"not": "a sample"}'
    assert record.header("wk-error").startswith(b"ValidationError")  # type: ignore[union-attr]


def test_rescoring_does_not_queue_twice(watching: RunningAgent) -> None:
    for _ in range(2):
        assert post(f"{watching.http_endpoint}/v1/traces", _request()).is_success
        watching.flush()
        time.sleep(1.0)
    assert watching.wait_for("SELECT count() AS n FROM {db}.flags FINAL", 3) == 3
    assert watching.query("SELECT uniqExact(flag_id) AS n FROM {db}.flags")[0]["n"] == 3


class Brittle:
    """A watcher that breaks on one text, to see the others carry on."""

    name, version, device, max_batch, labels = "brittle", "1", "cpu", 8, ("x",)

    def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
        if any(i.text == "boom" for i in items):
            raise ValueError("cannot read 'boom'")
        return [{"x": 0.5} for _ in items]


def test_one_failing_sample_is_marked_and_the_rest_scored() -> None:
    items = [Item(str(i), "completion", t) for i, t in enumerate(["a", "boom", "ccc", "dd"])]
    outcomes = {o.item.text: o for o in scoring.score(Brittle(), items)}
    assert outcomes["boom"].scores is None and "cannot read 'boom'" in outcomes["boom"].error
    assert all(outcomes[t].scores == {"x": 0.5} for t in ("a", "ccc", "dd"))


def test_items_are_scored_in_length_order_in_chunks() -> None:
    seen: list[list[str]] = []

    class Recorder(Brittle):
        max_batch = 2

        def score(self, items: Sequence[Item]) -> list[dict[str, float]]:
            seen.append([i.text for i in items])
            return [{"x": float(len(i.text))} for i in items]

    items = [Item(str(i), "completion", t) for i, t in enumerate(["cccc", "a", "bbb", "dd"])]
    outcomes = scoring.score(Recorder(), items)
    assert seen == [["a", "dd"], ["bbb", "cccc"]]
    assert {o.item.text: o.scores for o in outcomes}["bbb"] == {"x": 3.0}


def test_heuristics_cases() -> None:
    watcher = Heuristics(WatcherSpec(name="q", kind="heuristics"))
    cases = [Item("1", "completion", "As an AI language model, I cannot do that."),
             Item("2", "completion", "Sure! Here it is.", meta={"finish_reasons": ["length"]}),
             Item("3", "completion", "Mail [REDACTED:email] for details."),
             Item("4", "prompt", "")]
    scores = watcher.score(cases)
    assert scores[0]["refusal"] == 1.0 and scores[1]["refusal"] == 0.0
    assert scores[1]["truncated"] == 1.0 and scores[2]["pii"] == 1.0
    assert scores[3]["empty"] == 0.0  # an empty prompt is not an empty answer


def test_unknown_kind_and_unloadable_watcher_fail_at_start(tmp_path: Path) -> None:
    from watchkeeper.detectors.watchers import WatcherLoadError

    with pytest.raises(WatcherLoadError, match="unknown kind 'nope'"):
        build(WatcherSpec(name="x", kind="nope"))
    config = tmp_path / "wk.yaml"
    config.write_text("watch:\n  watchers:\n    - {name: tox, kind: detoxify, "
                      "options: {checkpoint: /nonexistent/model.ckpt}}\n")
    done = subprocess.run([*CLI, "--config", str(config), "up", "--data-dir", str(tmp_path),
                           "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "watcher 'tox' (detoxify)" in done.stderr
