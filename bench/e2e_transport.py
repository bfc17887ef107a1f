"""End to end, sidecar → bus → ingest → ClickHouse, as separate processes over a real Kafka
broker, next to the embedded in-process bus (`watchkeeper up`) on the same machine.

Two phases per setup:
- throughput: a burst of OTLP/HTTP exports sent as fast as 4 senders can; samples/s from the
  first send until the last sample is queryable;
- latency: a steady rate of exports whose spans end at the moment they are sent; latency is
  `ingested_at` (stamped by ClickHouse at insert) minus the span's end, p50 and p99. It includes
  the join window (ingest.join_window_s) that waits for content log records: shown at the
  default 2 s and at 0.25 s.

    python bench/e2e_transport.py [--spans 20000] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import REPO, console, spread, table, versions, write_json
from _genai_spans import request

sys.path.insert(0, str(REPO / "tests"))
from helpers import KafkaBroker, Service

BATCH = 200
LATENCY_SQL = (
    "SELECT count() AS n, quantiles(0.5, 0.99)(toUnixTimestamp64Milli(ingested_at) - "
    "(toUnixTimestamp64Milli(ts) + duration_ms)) AS q FROM samples WHERE service = 'bench-app' "
    "AND ts >= fromUnixTimestamp64Milli({since})")


def _ending_now(body_spans: int, rng: random.Random, first: int, prompt_bytes: int) -> bytes:
    """GenAI spans that end at this instant (the generator spreads them into the future)."""
    now_ns = time.time_ns()
    req = request(rng, first, body_spans, 1, prompt_bytes, now_ns)
    for span in req.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = now_ns - 500_000_000
        span.end_time_unix_nano = now_ns
    return req.SerializeToString()


def _post(client: httpx.Client, url: str, body: bytes) -> None:
    response = client.post(url, content=body,
                            headers={"Content-Type": "application/x-protobuf"})
    response.raise_for_status()


def _count(ingest: Service) -> int:
    return int(ingest.query("SELECT count() AS n FROM samples")[0]["n"])


def _wait_for(ingest: Service, expected: int, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _count(ingest) >= expected:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"only {_count(ingest)} of {expected} samples arrived")


def throughput(sidecar: Service, ingest: Service, spans: int, prompt_bytes: int) -> float:
    rng = random.Random()  # fresh ids every repetition: a repeated id is folded as a replay
    bodies = [_ending_now(BATCH, rng, i * BATCH, prompt_bytes) for i in range(spans // BATCH)]
    before = _count(ingest)
    url = f"{sidecar.otlp_http}/v1/traces"
    started = time.monotonic()
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda body: _post(client, url, body), bodies))
    done = _wait_for(ingest, before + len(bodies) * BATCH)
    return len(bodies) * BATCH / (done - started)


def latency(sidecar: Service, ingest: Service, rate: int, seconds: float,
            prompt_bytes: int) -> dict[str, Any]:
    rng = random.Random()
    url = f"{sidecar.otlp_http}/v1/traces"
    batch = max(1, rate // 20)  # 20 exports a second, like a busy BatchSpanProcessor
    since_ms = int(time.time() * 1000) - 500  # spans start 0.5 s before they end
    before = _count(ingest)
    sent = 0
    with httpx.Client(timeout=60) as client:
        next_at = time.monotonic()
        end = next_at + seconds
        while next_at < end:
            _post(client, url, _ending_now(batch, rng, sent, prompt_bytes))
            sent += batch
            next_at += batch / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    _wait_for(ingest, before + sent)
    row = ingest.query(LATENCY_SQL.replace("{since}", str(since_ms)))[0]
    p50, p99 = row["q"]
    return {"sent": sent, "stored": int(row["n"]), "p50_ms": p50, "p99_ms": p99}


def run_setup(bus: str, window: float, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"WATCHKEEPER_INGEST__JOIN_WINDOW_S": str(window), "WATCHKEEPER_LOG_LEVEL": "warning",
           "WATCHKEEPER_KAFKA__TOPIC_PREFIX": f"b{int(time.time())}."}
    ports = ["--api-port", "0"]
    otlp = ["--otlp-http-port", "0", "--otlp-grpc-port", "0"]
    services: list[Service] = []
    try:
        if bus.startswith("memory"):
            up = Service("up", "--data-dir", str(work / "up"), *otlp, *ports, env=env)
            services.append(up)
            sidecar = ingest = up
        else:
            ingest = Service("ingest", "--bus", bus, "--data-dir", str(work / "store"), *ports,
                             env=env)
            services.append(ingest)
            sidecar = Service("sidecar", "--bus", bus, "--data-dir", str(work / "sidecar"),
                              *otlp, *ports, env=env)
            services.append(sidecar)
        rates = [throughput(sidecar, ingest, args.spans, args.prompt_bytes)
                 for _ in range(args.reps)]
        lat = latency(sidecar, ingest, args.rate, args.seconds, args.prompt_bytes)
        return {"bus": bus.split("://")[0], "join_window_s": window,
                "samples_per_s": spread(rates), **lat}
    finally:
        for service in services:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="spans/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--prompt-bytes", type=int, default=1024)
    parser.add_argument("--windows", default="2.0,0.25")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = KafkaBroker(Path(tmp) / "broker")
        address = broker.start()
        try:
            for window in [float(w) for w in args.windows.split(",")]:
                for bus in ("memory://", f"kafka://{address}"):
                    work = Path(tempfile.mkdtemp(dir=tmp))
                    console.print(f"running {bus} with join window {window}s ...")
                    results.append(run_setup(bus, window, work, args))
        finally:
            broker.stop()
    table("End to end: OTLP/HTTP → bus → ingest → ClickHouse (chDB)",
          ("bus", "join window s", "samples/s (median, min-max)", "latency p50 ms",
           "latency p99 ms", "stored/sent"),
          [(r["bus"], r["join_window_s"],
            f"{r['samples_per_s']['median']:,.0f} ({r['samples_per_s']['min']:,.0f}-"
            f"{r['samples_per_s']['max']:,.0f})", f"{r['p50_ms']:,.0f}", f"{r['p99_ms']:,.0f}",
            f"{r['stored']}/{r['sent']}") for r in results])
    write_json("e2e_transport", {"settings": vars(args), "results": results,
                                 "versions": versions(["watchkeeper", "kafka-python", "chdb",
                                                       "clickhouse-connect"])})


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
