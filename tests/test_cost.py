"""What calls cost: the packaged price table and config overrides, the engine pricing every
stored sample (samples.price_model, samples.cost_usd; migration 0009) through both ingest
paths, NULL and counted where a model has no price, and `reprice` after a price changes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from helpers import CLI, post, running_agent
from watchkeeper.agent.config import CostConfig, StoreConfig, load_settings
from watchkeeper.agent.cost.prices import packaged_prices, price_rows, sync_prices
from watchkeeper.agent.cost.reprice import RepriceRequest, reprice_store
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.collectors.normalise import Sample
from watchkeeper.collectors.normalise.sample import sample_id_for

NOW = datetime.now(UTC).replace(microsecond=0)


def _sample(n: int, model: str, *, request_model: str = "", tokens: tuple[int, int] | None
            = (1000, 500), ts: datetime = NOW, attributes: dict[str, str] | None = None
            ) -> Sample:
    return Sample(sample_id=sample_id_for("cost", str(n)), trace_id="cost", span_id=str(n),
                  ts=ts, duration_ms=10.0, service="chat", provider="openai",
                  request_model=request_model or model, response_model=model,
                  input_tokens=tokens[0] if tokens else None,
                  output_tokens=tokens[1] if tokens else None, attributes=attributes or {})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(handle)
    try:
        yield handle
    finally:
        handle.close()


def _costs(store: Store) -> dict[str, tuple[str, float | None]]:
    found = store.query("SELECT span_id, price_model, cost_usd FROM watchkeeper.samples").rows
    return {span: (model, cost) for span, model, cost in found}


def test_the_packaged_table_and_config_overrides() -> None:
    packaged = packaged_prices()
    assert len(packaged) >= 30 and all(p.checked is not None for p in packaged)
    assert {"openai", "anthropic", "google"} <= {p.provider for p in packaged}
    table = {row.model: row for row in price_rows(CostConfig())}
    assert table["gpt-4o-mini"].input == 0.15 and table["gpt-4o-mini"].origin == "package"
    assert table["gpt-3.5-turbo"].cached_input == table["gpt-3.5-turbo"].input
    assert not table["gpt-3.5-turbo"].cached_listed
    config = CostConfig(prices=[{"model": "GPT-4o-mini", "input": 1, "output": 2},
                                {"model": "llama-3.1-8b-instruct", "provider": "self-hosted",
                                 "input": 0.02, "output": 0.03}])
    table = {row.model: row for row in price_rows(config)}
    assert (table["gpt-4o-mini"].input, table["gpt-4o-mini"].origin) == (1, "config")
    assert table["llama-3.1-8b-instruct"].output == 0.03
    only = price_rows(CostConfig(packaged=False, prices=config.prices))
    assert [r.model for r in only] == ["gpt-4o-mini", "llama-3.1-8b-instruct"]
    for bad in ({"model": "x", "input": -1, "output": 1}, {"model": "", "input": 1, "output": 1},
                {"model": "x", "input": float("inf"), "output": 1},
                {"model": "x", "input": 1, "output": 1, "per": "token"},
                {"model": "x'), 0) --", "input": 1, "output": 1}):
        with pytest.raises(ValidationError):
            CostConfig(prices=[bad])


def test_the_engine_prices_every_sample_it_stores(store: Store) -> None:
    sync_prices(store, CostConfig(prices=[{"model": "gpt-4o-2024-05-13", "input": 5,
                                           "output": 15}]))
    samples = [
        _sample(1, "gpt-4o-mini-2024-07-18"),
        _sample(2, "openai/gpt-4o"),
        _sample(3, "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        _sample(4, "models/gemini-1.5-pro-002"),
        _sample(5, "gpt-4o", attributes={"gen_ai.usage.cache_read.input_tokens": "800"}),
        _sample(6, "llama-3.1-8b-instruct"),
        _sample(7, "gpt-4o-mini", tokens=None),
        _sample(8, "", request_model="gpt-3.5-turbo-0125"),
        _sample(9, "gpt-4o-2024-05-13"),  # priced by config under its own dated name
        _sample(10, "mystery-model", request_model="gpt-4.1-nano"),
    ]
    store.insert_json("samples", rows.json_rows(samples))
    costs = _costs(store)
    million = 1_000_000
    assert costs["1"] == ("gpt-4o-mini", pytest.approx((1000 * 0.15 + 500 * 0.6) / million))
    assert costs["2"] == ("gpt-4o", pytest.approx((1000 * 2.5 + 500 * 10) / million))
    assert costs["3"] == ("claude-3-5-sonnet", pytest.approx((1000 * 3 + 500 * 15) / million))
    assert costs["4"] == ("gemini-1.5-pro", pytest.approx((1000 * 1.25 + 500 * 5) / million))
    # cached input tokens are part of input_tokens, charged at the cached rate
    assert costs["5"][1] == pytest.approx((200 * 2.5 + 800 * 1.25 + 500 * 10) / million)
    assert costs["6"] == ("", None)  # no price: NULL, never 0
    assert costs["7"] == ("gpt-4o-mini", None)  # no tokens: nothing to price
    assert costs["8"] == ("gpt-3.5-turbo", pytest.approx((1000 * 0.5 + 500 * 1.5) / million))
    assert costs["9"] == ("gpt-4o-2024-05-13", pytest.approx((1000 * 5 + 500 * 15) / million))
    assert costs["10"][0] == "gpt-4.1-nano"  # the request model, when the response's has none


def test_the_price_table_is_set_once_per_change(store: Store) -> None:
    def comment() -> str:
        [(text,)] = store.query("SELECT comment FROM system.columns WHERE database = "
                                "'watchkeeper' AND table = 'samples' AND name = 'cost_usd'").rows
        return str(text)

    # before the first sync nothing is priced
    store.insert_json("samples", rows.json_rows([_sample(1, "gpt-4o")]))
    assert _costs(store)["1"] == ("", None)
    assert sync_prices(store, CostConfig()) == len(packaged_prices())
    first = comment()
    sync_prices(store, CostConfig())
    assert comment() == first  # the same table: no ALTER
    sync_prices(store, CostConfig(prices=[{"model": "gpt-4o", "input": 1, "output": 1}]))
    assert comment() != first
    [(origin,)] = store.query("SELECT origin FROM watchkeeper.prices "
                              "WHERE model = 'gpt-4o'").rows
    assert origin == "config"
    sync_prices(store, CostConfig(packaged=False))  # an empty table prices nothing
    store.insert_json("samples", rows.json_rows([_sample(2, "gpt-4o")]))
    assert _costs(store)["2"] == ("", None)


def test_reprice_recomputes_the_days_asked_for(store: Store) -> None:
    sync_prices(store, CostConfig())
    store.insert_json("samples", rows.json_rows([
        _sample(1, "gpt-4o-mini"), _sample(2, "gpt-4o-mini", ts=NOW - timedelta(days=3)),
        _sample(3, "llama-3.1-8b-instruct")]))
    before = _costs(store)
    dearer = CostConfig(prices=[{"model": "gpt-4o-mini", "input": 0.3, "output": 1.2}])
    # new prices apply to new rows at once; stored rows keep theirs until repriced
    sync_prices(store, dearer)
    assert _costs(store)["1"] == before["1"]
    result = reprice_store(store, dearer, RepriceRequest(since=NOW - timedelta(hours=1)))
    after = _costs(store)
    assert after["1"][1] == pytest.approx(2 * before["1"][1])
    assert after["2"] == before["2"]  # three days back: not asked for
    assert result["days"] == 1 and result["calls"] == 2 and result["priced"] == 1
    assert result["unpriced_models"] == [{"model": "llama-3.1-8b-instruct", "calls": 1}]
    assert result["cost_usd"] == pytest.approx(after["1"][1])


def _priced_request(model: str, input_tokens: int, output_tokens: int) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x07" * 16, span_id=b"\x08" * 8, name=f"chat {model}",
        start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns())
    for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", model),
                       ("gen_ai.response.model", f"{model}-2024-07-18")):
        span.attributes.add(key=key).value.string_value = value
    for key, number in (("gen_ai.usage.input_tokens", input_tokens),
                        ("gen_ai.usage.output_tokens", output_tokens)):
        span.attributes.add(key=key).value.int_value = number
    return request.SerializeToString()


def test_a_running_agent_prices_what_it_ingests_and_reprices_through_its_api(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "wk"
    cheap = {"cost.prices": [{"model": "gpt-4o-mini", "input": 1.0, "output": 2.0}]}
    with running_agent(data_dir, **cheap) as agent:
        assert post(f"{agent.http_endpoint}/v1/traces",
                    _priced_request("gpt-4o-mini", 3000, 1000)).is_success
        assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 1) == 1
        [row] = agent.query("SELECT price_model, cost_usd FROM {db}.samples")
        assert row["price_model"] == "gpt-4o-mini"
        assert row["cost_usd"] == pytest.approx((3000 * 1.0 + 1000 * 2.0) / 1_000_000)
        done = subprocess.run([*CLI, "reprice", "--since", "1d", "--data-dir", str(data_dir),
                               "--format", "json"], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        # the owner reprices by its own config: nothing changed, the same cost
        assert result["calls"] == 1 and result["priced"] == 1
        assert result["cost_usd"] == pytest.approx(row["cost_usd"])
        for body in (b'{"since": "not a time"}', b"[1, 2]", b"{not json", b'{"since": '
                     b'"2026-01-01", "and": "more"}'):
            answer = httpx.post(f"{agent.api}/api/reprice", content=body, timeout=10,
                                headers={"Content-Type": "application/json"})
            assert answer.status_code == 400 and "error" in answer.json()
        refused = subprocess.run([*CLI, "reprice", "--since", "yesterday-ish", "--data-dir",
                                  str(data_dir)], capture_output=True, text=True, timeout=60,
                                 check=False)
        assert refused.returncode != 0 and "since" in refused.stderr
    settings = load_settings(None, data_dir=str(data_dir))
    assert settings.cost.packaged


def test_streaming_timings_come_from_the_attributes(store: Store) -> None:
    """ttft_ms and output_tokens_per_s (migration 0010): the SDK's names, OpenLIT's, and
    nothing for a call its instrumentation says did not stream."""
    sdk = _sample(1, "gpt-4o-mini", attributes={
        "gen_ai.request.stream": "true", "gen_ai.response.time_to_first_chunk": "0.25",
        "watchkeeper.response.output_tokens_per_second": "42.5"})
    openlit = _sample(2, "gpt-4o-mini", attributes={
        "gen_ai.server.time_to_first_token": "0.5", "gen_ai.server.time_per_output_token": "0.02"})
    derived = _sample(3, "gpt-4o-mini", tokens=(10, 90), attributes={
        "gen_ai.response.time_to_first_chunk": "0.001"})  # duration 10 ms: 90 tokens in 9 ms
    not_streamed = _sample(4, "gpt-4o-mini", attributes={
        "gen_ai.request.stream": "false", "gen_ai.server.time_to_first_token": "0.5"})
    store.insert_json("samples", rows.json_rows([sdk, openlit, derived, not_streamed]))
    found = {span: (ttft, rate) for span, ttft, rate in store.query(
        "SELECT span_id, ttft_ms, output_tokens_per_s FROM watchkeeper.samples").rows}
    assert found["1"] == (pytest.approx(250.0), pytest.approx(42.5))
    assert found["2"] == (pytest.approx(500.0), pytest.approx(50.0))
    assert found["3"] == (pytest.approx(1.0), pytest.approx(90 / 0.009))
    assert found["4"] == (None, None)
