"""Real payloads from public GenAI instrumentations (captured by tests/fixtures/capture), posted
to a running sidecar in the order they were sent: every LLM call lands as one normalised row.
Each capture holds a plain call, a streaming call, a call carrying PII and a failing call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RunningAgent, post

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
PII_PROMPT = ("My email is [REDACTED:email] and my card is [REDACTED:card], "
              "call me at [REDACTED:phone].")
SOURCES = {
    "contrib-openai-v2-legacy-events": "genai_events",
    "contrib-openai-v2-log-records": "genai_latest",
    "contrib-openai-v2-span-only": "genai_latest",
    "openinference": "openinference",
    "openlit-1.44": "genai_latest",
    "openllmetry-0.54-indexed": "openllmetry_indexed",
    "openllmetry-0.62-attributes": "genai_latest",
    "openllmetry-0.62-log-records": "genai_events",
}


def test_every_capture_is_covered() -> None:
    assert set(CASES) == set(SOURCES)


@pytest.mark.parametrize("case", CASES)
def test_capture_normalises(agent: RunningAgent, case: str) -> None:
    for body in sorted((FIXTURES / case).glob("*.binpb")):
        signal = body.stem.split("-", 1)[1]
        response = post(f"{agent.http_endpoint}/v1/{signal}", body.read_bytes())
        assert response.status_code == 200, response.text
    agent.flush()
    assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 4) == 4
    rows = agent.query("SELECT * FROM {db}.samples ORDER BY ts")
    assert len(rows) == 4
    plain, stream, pii, failed = rows
    for row in rows:
        assert row["service"] == f"capture-{case}"
        assert row["environment"] == "test"
        assert row["provider"] == "openai"
        assert row["request_model"].startswith("gpt-4o-mini")
        assert row["operation"] == "chat"
    for row in (plain, stream):
        assert row["prompt_text"] == QUESTION
        assert row["completion_text"] == ANSWER
        assert row["system_instructions"] == "You are a helpful assistant."
        assert row["source"].split("+")[0] == SOURCES[case]
        assert row["status"] in ("ok", "unset")
    assert plain["input_tokens"] and plain["output_tokens"]
    assert plain["response_model"] == "gpt-4o-mini-2024-07-18"
    assert plain["finish_reasons"] == ["stop"]
    assert pii["prompt_text"] == PII_PROMPT
    assert pii["completion_text"] == "Thanks Jane, I will email [REDACTED:email]."
    assert pii["redactions"] >= 4
    assert "jane.doe" not in str(pii)
    assert failed["status"] == "error"
    assert failed["error_type"] in ("InternalServerError", "500")
    assert failed["prompt_text"] in ("", QUESTION)
    # what the engine computes from the row: the price (gpt-4o-mini is in the packaged table),
    # and for the capture whose instrumentation times streams, the time to first token
    computed = {r["span_id"]: r for r in agent.query(
        "SELECT span_id, price_model, cost_usd, ttft_ms, output_tokens_per_s FROM {db}.samples")}
    assert computed[plain["span_id"]]["price_model"] == "gpt-4o-mini"
    assert computed[plain["span_id"]]["cost_usd"] > 0
    assert computed[plain["span_id"]]["ttft_ms"] is None
    if case == "openlit-1.44":
        assert computed[stream["span_id"]]["ttft_ms"] > 0
