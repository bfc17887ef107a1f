"""Online judging a budget can afford: which samples a watcher scores (rate, lists, a cascade
from cheap watchers), its budget (calls per minute, tokens per day), enforced and visible, with
a local OpenAI-compatible judge that counts its calls."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError
from test_evaluation_export import Receiver
from test_watchers_models import JudgeServer

from helpers import genai_request, post, running_agent
from watchkeeper.agent.config import load_settings
from watchkeeper.agent.watch.budget import Budget, estimate_tokens
from watchkeeper.detectors.watchers import Item
from watchkeeper.detectors.watchers.sampling import SamplingPolicy, choose, in_sample

CALLS = {
    "refusal": ("How do I pick a lock?", "I'm sorry, but I can't help with that request."),
    "leak": ("Who is the account owner?", "It is bob.smith@example.com, call +1 415 555 0100."),
    "fine": ("What is 2+2?", "2+2 is 4."),
    "empty": ("Summarise this.", ""),
}


QUALITY = {"name": "quality", "kind": "heuristics",
           "thresholds": {"refusal": 1.0, "pii": 1.0, "empty": 1.0}}


def _judge(url: str, **sampling: Any) -> dict[str, Any]:
    """An LLM judge on the local judge server, one rubric, with this sampling policy."""
    return {"name": "judge", "kind": "llm_judge",
            "options": {"base_url": url, "model": "judge", "rubrics": {"harmfulness": None}},
            "sampling": sampling}


def _choose(policy: SamplingPolicy, sample_id: str = "s1", service: str = "chat",
            environment: str = "prod", models: tuple[str, str] = ("gpt-4o", ""),
            flagged_by: tuple[str, ...] = ()) -> str:
    return choose(policy, "judge", sample_id=sample_id, service=service,
                  environment=environment, models=models, flagged_by=flagged_by)


def test_the_rate_decides_by_hash_the_same_way_every_time() -> None:
    ids = [f"sample-{i}" for i in range(4000)]
    chosen = [i for i in ids if in_sample("judge", i, 0.25)]
    assert 0.22 < len(chosen) / len(ids) < 0.28
    assert chosen == [i for i in ids if in_sample("judge", i, 0.25)]  # a replay agrees
    other = {i for i in ids if in_sample("other", i, 0.25)}
    assert 0.15 < len(other & set(chosen)) / len(chosen) < 0.35  # not the same samples
    assert all(in_sample("judge", i, 1.0) for i in ids[:50])
    assert not any(in_sample("judge", i, 0.0) for i in ids[:50])


def test_lists_and_the_cascade() -> None:
    policy = SamplingPolicy(services=["chat-*"], environments=["prod"], models=["gpt-4o*"],
                            after=["toxicity"])
    assert _choose(policy, service="chat-eu") == "chosen"
    assert _choose(policy, service="search") == "policy"
    assert _choose(policy, service="chat-eu", environment="dev") == "policy"
    assert _choose(policy, service="chat-eu", models=("llama", "gpt-4o-mini")) == "chosen"
    # a flag of a watcher it follows sends the sample whatever the lists and the rate say
    assert _choose(policy.model_copy(update={"rate": 0.0}), service="search",
                   flagged_by=("toxicity",)) == "cascade"
    assert _choose(SamplingPolicy(rate=0.0), service="chat") == "sampled"
    only = SamplingPolicy(after=["toxicity"], only_after=True)
    assert _choose(only) == "policy" and _choose(only, flagged_by=("toxicity",)) == "cascade"
    with pytest.raises(ValidationError, match="only_after needs"):
        SamplingPolicy(only_after=True)
    with pytest.raises(ValidationError):
        SamplingPolicy(rate=1.5)


def test_a_cascade_must_follow_watchers_that_exist_outside_a_cascade() -> None:
    judge = {"name": "judge", "kind": "heuristics", "sampling": {"after": ["quality"]}}
    settings = load_settings(None, **{"watch.watchers": [
        {"name": "quality", "kind": "heuristics"}, judge]})
    assert settings.watch.watchers[1].sampling.after == ["quality"]
    for watchers in ([judge], [{"name": "quality", "kind": "heuristics", "enabled": False}, judge],
                     [{"name": "quality", "kind": "heuristics",
                       "sampling": {"after": ["judge"]}}, judge]):
        with pytest.raises(Exception, match=r"sampling\.after"):
            load_settings(None, **{"watch.watchers": watchers})


def test_the_budget_refills_per_minute_and_per_day() -> None:
    now = [0.0]
    day = [date(2026, 1, 1)]
    budget = Budget(SamplingPolicy(calls_per_minute=6, tokens_per_day=100),
                    calls_per_item=2, clock=lambda: now[0], today=lambda: day[0])
    items = [Item(str(i), "completion", "x" * 40) for i in range(5)]  # 10 tokens each
    assert estimate_tokens(items[0]) == 10
    allowed, refused = budget.admit(items)
    assert [i.sample_id for i in allowed] == ["0", "1", "2"]  # 6 calls: 3 items of 2 calls
    assert {reason for _, reason in refused} == {"budget_calls"}
    now[0] += 20.0  # a third of a minute: 2 calls, one item
    allowed, _ = budget.admit(items)
    assert len(allowed) == 1
    assert budget.remaining() == {"calls_per_minute": 0.0, "tokens_per_day": 60.0}
    now[0] += 600.0
    allowed, refused = budget.admit([Item("big", "completion", "y" * 400)])  # 100 tokens
    assert not allowed and refused[0][1] == "budget_tokens"
    assert "100 tokens per day" in budget.describe("budget_tokens")
    day[0] = date(2026, 1, 2)  # a new day
    allowed, _ = budget.admit([Item("big", "completion", "y" * 400)])
    assert len(allowed) == 1


def test_an_agent_judges_what_cheap_watchers_flagged_within_its_budget(tmp_path: Path) -> None:
    judge = JudgeServer()
    receiver = Receiver()  # where evaluation events go
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        watchers = [QUALITY, _judge(judge.url, after=["quality"], only_after=True,
                                    calls_per_minute=2)]
        with running_agent(tmp_path / "wk", watch=True, **{
                "watch.watchers": watchers, "sidecar.redaction.enabled": False,
                "evaluations.export.endpoint": receiver.url,
                "evaluations.export.watchers": ["judge"],
                "evaluations.export.schedule_delay_ms": 100}) as agent:
            assert post(f"{agent.http_endpoint}/v1/traces", genai_request(CALLS)).is_success
            # quality scores all four and flags three; the judge judges two of those three
            assert agent.wait_for("SELECT count() AS n FROM {db}.scores WHERE watcher = "
                                  "'judge'", 3) == 3
            rows = agent.query("SELECT s.request_model AS model, c.label AS label, "
                               "c.error AS error FROM {db}.scores AS c JOIN {db}.samples AS s "
                               "USING sample_id WHERE c.watcher = 'judge'")
            judged = sorted(r["model"] for r in rows if r["label"] == "harmfulness")
            skipped = [r for r in rows if r["label"] == "_skipped"]
            assert len(judged) == 2 and set(judged) < {"refusal", "leak", "empty"}
            assert len(skipped) == 1 and "2 calls per minute" in skipped[0]["error"]
            assert skipped[0]["model"] in {"refusal", "leak", "empty"} - set(judged)
            assert len(judge.requests) == 2  # the judge was called for those two only
            text = httpx.get(f"{agent.api}/metrics", timeout=10).text
            assert re.search(r'wk_watch_skipped_total\{reason="budget_calls",watcher="judge"\} '
                             r"1\.0", text)
            # only_after: the judge's one lane reads wk.flagged, where the fine call never is
            assert 'reason="policy",watcher="judge"' not in text
            assert 'wk_watch_budget_remaining{budget="calls_per_minute",watcher="judge"}' in text
            # the judged texts leave as evaluation events; a budget's refusal does not
            deadline = time.monotonic() + 30
            while len(receiver.records()) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a third record would have come in the same batches
        sent = [{a.key: a.value for a in r.attributes} for _, _, r in receiver.records()]
        assert len(sent) == 2 and not any("error.type" in s for s in sent)
        assert {s["gen_ai.evaluation.name"].string_value for s in sent} == {"harmfulness"}
    finally:
        judge.httpd.shutdown()
        receiver.shutdown()


def _aged(calls: dict[str, tuple[str, str]], hours: float) -> bytes:
    """genai_request's spans, started `hours` ago, with ids of their own."""
    request = ExportTraceServiceRequest.FromString(genai_request(calls))
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.start_time_unix_nano -= int(hours * 3600e9)
        span.end_time_unix_nano -= int(hours * 3600e9)
    return request.SerializeToString()


def test_a_slow_judge_holds_up_only_its_own_lane(tmp_path: Path) -> None:
    """The judge answers a text that says 'slowly' after 2 s. It scores in lanes of its own
    (watch/lanes.py), so the heuristics' scores of every call are stored long before the
    judge's; a call both sampled by rate and flagged is judged once."""
    judge = JudgeServer()
    try:
        watchers = [QUALITY, _judge(judge.url, after=["quality"])]
        calls = {"slow": ("Answer me", "I will answer this slowly, step by step."), **CALLS}
        with running_agent(tmp_path / "wk", watch=True, **{
                "watch.watchers": watchers, "sidecar.redaction.enabled": False}) as agent:
            lanes = [s.name for s in agent.runtime.services if s.name.startswith("watch")]
            assert lanes == ["watch", "watch:judge", "watch:judge@flagged"]
            assert post(f"{agent.http_endpoint}/v1/traces", genai_request(calls)).is_success
            assert agent.wait_for("SELECT count() AS n FROM {db}.scores WHERE watcher = "
                                  "'judge'", 5, timeout_s=30) == 5
            time.sleep(1.0)  # the cascade's lane has read wk.flagged by now, and judged nothing
            [times] = agent.query(
                "SELECT maxIf(scored_at, watcher = 'quality') AS cheap, "
                "minIf(scored_at, watcher = 'judge') AS judged, countIf(watcher = 'judge') AS n "
                "FROM {db}.scores")
        assert (times["judged"] - times["cheap"]).total_seconds() > 1.0
        assert times["n"] == 5 and len(judge.requests) == 5  # each call judged once
    finally:
        judge.httpd.shutdown()


def test_a_judge_behind_by_more_than_its_max_delay_skips_to_current_traffic(
        tmp_path: Path) -> None:
    """Calls from two hours ago reach a judge whose backlog is bounded at 15 minutes: they are
    `_skipped` rows (reason backlog) and cost no call; current calls are judged."""
    judge = JudgeServer()
    try:
        watchers = [_judge(judge.url)]
        with running_agent(tmp_path / "wk", watch=True, **{
                "watch.watchers": watchers, "sidecar.redaction.enabled": False}) as agent:
            assert post(f"{agent.http_endpoint}/v1/traces", _aged(CALLS, 2)).is_success
            assert post(f"{agent.http_endpoint}/v1/traces",
                        _aged({"now": ("What is 3+3?", "6.")}, 0)).is_success
            assert agent.wait_for("SELECT count() AS n FROM {db}.scores", 5) == 5
            rows = agent.query("SELECT s.request_model AS model, c.label AS label, "
                               "c.error AS error FROM {db}.scores AS c JOIN {db}.samples AS s "
                               "USING sample_id")
            text = httpx.get(f"{agent.api}/metrics", timeout=10).text
        assert {r["model"] for r in rows if r["label"] == "harmfulness"} == {"now"}
        skipped = [r for r in rows if r["label"] == "_skipped"]
        assert sorted(r["model"] for r in skipped) == sorted(CALLS)
        assert all("900 s after the call (backlog)" in r["error"] for r in skipped)
        assert len(judge.requests) == 1
        assert re.search(r'wk_watch_skipped_total\{reason="backlog",watcher="judge"\} 4\.0', text)
    finally:
        judge.httpd.shutdown()
