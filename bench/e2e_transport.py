"""End to end, sidecar → bus → ingest → ClickHouse: the embedded default (`watchkeeper up`,
its own bus) next to separate processes over a real Kafka broker, on the same machine.

Two phases per setup:
- throughput (`--reps` bursts; 0 skips it): OTLP/HTTP exports sent as fast as 4 senders can;
  samples/s from the first send until the last sample is queryable;
- latency, at each of `--rates`: `--seconds` of steady exports (20 a second, sent at their due
  times by up to 16 threads, like several app processes) whose spans end at the moment they are
  sent, after `--warmup-seconds` of the same that are not counted; latency is `ingested_at`
  (stamped by ClickHouse at insert) minus the span's end, p50, p99 and max. It includes the
  join window (ingest.join_window_s), which a span carrying its content no longer waits for.

`--windows default` leaves the join window at the configured default; `--env KEY=VALUE` sets
anything else for the services, e.g. WATCHKEEPER_INGEST__FLUSH_INTERVAL_S=0.5.

    python bench/e2e_transport.py --buses embedded --reps 0 --rates 1000,3000   # latency only
    python bench/e2e_transport.py [--spans 20000] [--reps 3] [--windows 2.0,0.25]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import REPO, console, spread, table, versions, write_json
from _genai_spans import request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(REPO / "tests"))
from helpers import KafkaBroker, Service

BATCH = 200
EXPORTS_PER_S = 20  # like a busy BatchSpanProcessor
SENDERS = 16  # exports in flight at once in the latency phase: several app processes
LATENCY_SQL = (
    "SELECT count() AS n, quantilesExact(0.5, 0.99)(toUnixTimestamp64Milli(ingested_at) - "
    "(toUnixTimestamp64Milli(ts) + duration_ms)) AS q, max(toUnixTimestamp64Milli(ingested_at) "
    "- (toUnixTimestamp64Milli(ts) + duration_ms)) AS worst FROM samples "
    "WHERE service = 'bench-app' AND ts >= fromUnixTimestamp64Milli({since})")


def _ending_now(body_spans: int, rng: random.Random, first: int, prompt_bytes: int) -> bytes:
    """GenAI spans that end at this instant (the generator spreads them into the future)."""
    return _stamped(request(rng, first, body_spans, 1, prompt_bytes))


def _stamped(req: ExportTraceServiceRequest) -> bytes:
    """The request with its spans ending now, started 0.5 s before."""
    now_ns = time.time_ns()
    for span in req.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = now_ns - 500_000_000
        span.end_time_unix_nano = now_ns
    return req.SerializeToString()


def _post(client: httpx.Client, url: str, body: bytes) -> float:
    """Seconds until the export was answered (the sidecar answers once the bus holds it)."""
    started = time.monotonic()
    response = client.post(url, content=body,
                           headers={"Content-Type": "application/x-protobuf"})
    response.raise_for_status()
    return time.monotonic() - started


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


def _steady(sidecar: Service, rate: int, seconds: float, prompt_bytes: int,
            rng: random.Random) -> tuple[int, float, list[float]]:
    """Exports at their due times for `seconds`, up to SENDERS at once (apps export
    independently); spans sent, and the rate achieved. The requests are built beforehand and
    only stamped as they go: the sender shares the cores with what it measures. Also returns
    each export's answer time."""
    url = f"{sidecar.otlp_http}/v1/traces"
    batch = max(1, rate // EXPORTS_PER_S)
    exports = [request(rng, i * batch, batch, 1, prompt_bytes)
               for i in range(math.ceil(seconds * rate / batch))]
    sent = 0
    pending: list[Future[float]] = []
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(SENDERS) as pool:
        started = next_at = time.monotonic()
        for export in exports:
            time.sleep(max(0.0, next_at - time.monotonic()))
            # stamped as it leaves: a sender's own queue is not the pipeline's latency
            pending.append(pool.submit(lambda e: _post(client, url, _stamped(e)), export))
            sent += batch
            next_at += batch / rate
        answered = [future.result() for future in pending]
        took = time.monotonic() - started
    return sent, sent / took, answered


def _cpu_s(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: of the services, of this process (the senders) and of the machine
    (all cores busy, whoever ran)."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(pid: int | str) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(cpu[:8]) if i not in (3, 4))  # less idle, iowait
    return {"services": sum(of(pid) for pid in pids), "senders": of("self"),
            "machine": busy / tick}


def _quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def latency(sidecar: Service, ingest: Service, rate: int, seconds: float, warmup_s: float,
            prompt_bytes: int) -> dict[str, Any]:
    rng = random.Random()
    pids = sorted({sidecar.proc.pid, ingest.proc.pid})
    before = _count(ingest)
    if warmup_s:
        warm, _, _ = _steady(sidecar, rate, warmup_s, prompt_bytes, rng)
        _wait_for(ingest, before + warm)
        before += warm
    since_ms = int(time.time() * 1000) - 500  # spans start 0.5 s before they end
    cpu, started = _cpu_s(pids), time.monotonic()
    sent, achieved, answered = _steady(sidecar, rate, seconds, prompt_bytes, rng)
    _wait_for(ingest, before + sent)
    took = time.monotonic() - started
    cores = {k: round((v - cpu[k]) / took, 2) for k, v in _cpu_s(pids).items()}
    row = ingest.query(LATENCY_SQL.replace("{since}", str(since_ms)))[0]
    p50, p99 = row["q"]
    return {"rate": rate, "achieved_rate": round(achieved), "sent": sent,
            "stored": int(row["n"]), "p50_ms": p50, "p99_ms": p99, "max_ms": row["worst"],
            "export_p50_ms": 1000 * _quantile(answered, 0.5),
            "export_p99_ms": 1000 * _quantile(answered, 0.99),
            "cpu_cores": cores, "load_avg": os.getloadavg()[0]}


def run_setup(bus: str, window: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"WATCHKEEPER_LOG_LEVEL": "warning",
           "WATCHKEEPER_KAFKA__TOPIC_PREFIX": f"b{int(time.time())}.",
           **dict(item.split("=", 1) for item in args.env)}
    if window != "default":
        env["WATCHKEEPER_INGEST__JOIN_WINDOW_S"] = window
    ports = ["--api-port", "0"]
    otlp = ["--otlp-http-port", "0", "--otlp-grpc-port", "0"]
    services: list[Service] = []
    try:
        if bus == "embedded":
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
        lat = [latency(sidecar, ingest, int(rate), args.seconds, args.warmup_seconds,
                       args.prompt_bytes) for rate in args.rates.split(",")]
    finally:
        for service in services:
            service.stop()
    # A failed step stalls its loop for a second: figures with errors logged are suspect.
    errors = sum(service.log.read_text(errors="replace").count('"level": "error"')
                 for service in services)
    return {"bus": bus.split("://")[0], "join_window_s": window,
            "samples_per_s": spread(rates) if rates else None, "latency": lat,
            "errors_logged": errors, "logs": [str(service.log) for service in services]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buses", default="embedded,kafka")
    parser.add_argument("--spans", type=int, default=20_000, help="spans per burst")
    parser.add_argument("--reps", type=int, default=3, help="bursts (0: no throughput phase)")
    parser.add_argument("--rates", default="1000,3000", help="spans/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--prompt-bytes", type=int, default=1024)
    parser.add_argument("--windows", default="default",
                        help="join windows in seconds, or 'default' (the configured one)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the services (repeatable)")
    parser.add_argument("--tag", help="write bench/out/e2e_transport-TAG.json")
    args = parser.parse_args()
    buses = args.buses.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = KafkaBroker(Path(tmp) / "broker")
        address = broker.start() if "kafka" in buses else ""
        try:
            for window in args.windows.split(","):
                for bus in buses:
                    url = f"kafka://{address}" if bus == "kafka" else bus
                    work = Path(tempfile.mkdtemp(dir=tmp))
                    console.print(f"running {bus} with join window {window} ...")
                    results.append(run_setup(url, window, work, args))
        finally:
            if address:
                broker.stop()
    if args.reps:
        table("End to end, throughput: OTLP/HTTP → bus → ingest → ClickHouse (chDB)",
              ("bus", "join window s", "samples/s (median, min-max)"),
              [(r["bus"], r["join_window_s"],
                f"{r['samples_per_s']['median']:,.0f} ({r['samples_per_s']['min']:,.0f}-"
                f"{r['samples_per_s']['max']:,.0f})") for r in results])
    table("End to end, latency: span end → queryable",
          ("bus", "join window s", "spans/s (achieved)", "p50 ms", "p99 ms", "max ms",
           "export answered p50 / p99 ms", "stored/sent",
           "CPU cores: services / senders / machine", "errors logged"),
          [(r["bus"], r["join_window_s"], f"{lat['rate']:,} ({lat['achieved_rate']:,})",
            f"{lat['p50_ms']:,.0f}", f"{lat['p99_ms']:,.0f}", f"{lat['max_ms']:,.0f}",
            f"{lat['export_p50_ms']:,.0f} / {lat['export_p99_ms']:,.0f}",
            f"{lat['stored']}/{lat['sent']}",
            " / ".join(str(lat["cpu_cores"][k]) for k in ("services", "senders", "machine")),
            r["errors_logged"]) for r in results for lat in r["latency"]])
    write_json("e2e_transport", {"settings": vars(args), "results": results,
                                 "versions": versions(["watchkeeper", "watchkeeper-native",
                                                       "kafka-python", "chdb",
                                                       "clickhouse-connect"])}, args.tag)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
