"""Sidecar throughput: GenAI spans per second per core, and its peak resident memory.

    python bench/sidecar_throughput.py [--windows 5] [--window-s 4] [--concurrency 4]
                                       [--spans 256] [--spans-per-trace 1] [--prompt-bytes 1024]
                                       [--redaction-native auto|off] [--no-redaction]

The sidecar (`Runtime(settings, ingest=False)`, memory bus, redaction on, see
bench/_sidecar_server.py) runs in its own process pinned to CPU 0 with `taskset`; the load
generator runs in another process pinned to CPU 1 and POSTs pre-encoded OTLP/HTTP protobuf
ExportTraceServiceRequest bodies over keep-alive connections from a few concurrent senders.
After a warm-up, the run is cut into windows; for each window the parent reads the sidecar's
CPU time from /proc/<pid>/stat and the spans acknowledged by the load generator. Reported per
window: spans/s (wall), the sidecar's CPU use, and spans per CPU-second (throughput per fully
used core); the table gives the median and range over windows. RSS peak is VmHWM from
/proc/<pid>/status after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SPANS_GOAL = 5_000
RSS_GOAL_MB = 150
HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the load generator (runs in its own process) ---------------------------------------------
async def _load(args: argparse.Namespace) -> None:
    import aiohttp
    from _genai_spans import requests
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    bodies = [r.SerializeToString() for r in requests(
        args.bodies, args.spans, args.spans_per_trace, args.prompt_bytes)]
    print(json.dumps({"event": "bodies", "count": len(bodies),
                      "bytes_per_body": sum(map(len, bodies)) // len(bodies)}), flush=True)
    url = f"http://127.0.0.1:{args.port}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    acked = errors = rejected = 0
    running = True
    latencies: list[float] = []

    async def sender(session: aiohttp.ClientSession, k: int) -> None:
        nonlocal acked, errors, rejected
        rng = random.Random(k)
        while running:
            body = rng.choice(bodies)
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
                if response.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)
            rejected += ExportTraceServiceResponse.FromString(data).partial_success.rejected_spans
            acked += args.spans

    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(sender(session, k)) for k in range(args.concurrency)]
        await asyncio.sleep(args.warmup_s)
        for window in range(args.windows + 1):
            if window:
                await asyncio.sleep(args.window_s)
            print(json.dumps({"event": "mark", "spans": acked, "t": time.monotonic(),
                              "errors": errors}), flush=True)
        running = False
        await asyncio.gather(*tasks)
    latencies.sort()
    print(json.dumps({"event": "done", "spans": acked, "errors": errors, "rejected": rejected,
                      "requests": len(latencies),
                      "latency_ms_p50": 1e3 * latencies[len(latencies) // 2],
                      "latency_ms_p99": 1e3 * latencies[int(len(latencies) * 0.99)]}),
          flush=True)


# --- the parent -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def read_event(process: subprocess.Popen[str], name: str) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"process {process.args!r} ended before {name!r}")
        if line.startswith("{"):
            event: dict[str, Any] = json.loads(line)
            if event.get("event") == name:
                return event


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if len(os.sched_getaffinity(0)) > 1 else argv


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _common import spread

    server_cmd = [sys.executable, str(HERE / "_sidecar_server.py")]
    if args.no_redaction:
        server_cmd.append("--no-redaction")
    server_cmd += ["--wal", args.wal, "--redaction-native", args.redaction_native]
    server = subprocess.Popen(pinned(args.sidecar_cpu, server_cmd), stdout=subprocess.PIPE,
                              text=True)
    try:
        port = read_event(server, "ready")["otlp_http"]
        idle_rss_kb = status_kb(server.pid, "VmRSS")
        load_cmd = [sys.executable, __file__, "--load-worker", "--port", str(port),
                    *_forward(args)]
        load = subprocess.Popen(pinned(args.load_cpu, load_cmd), stdout=subprocess.PIPE,
                                text=True)
        bodies = read_event(load, "bodies")
        marks = []
        for _ in range(args.windows + 1):
            mark = read_event(load, "mark")
            mark["cpu"] = cpu_seconds(server.pid)
            marks.append(mark)
        done = read_event(load, "done")
        load.wait(timeout=30)
        peak_rss_kb = status_kb(server.pid, "VmHWM")
        server.send_signal(signal.SIGTERM)
        stats = read_event(server, "stats")
        server.wait(timeout=30)
    finally:
        for process in (server,):
            if process.poll() is None:
                process.kill()
    windows = []
    for a, b in itertools.pairwise(marks):
        spans, wall, cpu = b["spans"] - a["spans"], b["t"] - a["t"], b["cpu"] - a["cpu"]
        windows.append({"spans": spans, "wall_s": wall, "cpu_s": cpu,
                        "spans_per_s": spans / wall, "cpu_util": cpu / wall,
                        "spans_per_cpu_s": spans / cpu if cpu else 0.0})
    return {
        "bodies": bodies, "windows": windows, "load": done, "sidecar": stats,
        "spans_per_s": spread([w["spans_per_s"] for w in windows]),
        "spans_per_cpu_s": spread([w["spans_per_cpu_s"] for w in windows]),
        "cpu_util": spread([w["cpu_util"] for w in windows]),
        "rss_idle_mb": idle_rss_kb / 1024, "rss_peak_mb": peak_rss_kb / 1024,
    }


def _forward(args: argparse.Namespace) -> list[str]:
    return ["--windows", str(args.windows), "--window-s", str(args.window_s),
            "--warmup-s", str(args.warmup_s), "--concurrency", str(args.concurrency),
            "--spans", str(args.spans), "--spans-per-trace", str(args.spans_per_trace),
            "--prompt-bytes", str(args.prompt_bytes), "--bodies", str(args.bodies)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=5, help="measured windows (repetitions)")
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent senders")
    parser.add_argument("--spans", type=int, default=256, help="GenAI spans per request")
    parser.add_argument("--spans-per-trace", type=int, default=1,
                        help="spans sharing a trace id (the sidecar publishes one message per "
                             "trace)")
    parser.add_argument("--prompt-bytes", type=int, default=1024)
    parser.add_argument("--bodies", type=int, default=8, help="distinct pre-encoded bodies")
    parser.add_argument("--tag", help="write bench/out/<name>-<tag>.json (a variant run)")
    parser.add_argument("--no-redaction", action="store_true")
    parser.add_argument("--redaction-native", choices=("auto", "off"), default="auto",
                        help="the compiled detectors (sidecar.redaction.native)")
    parser.add_argument("--wal", choices=("batch", "interval", "off"), default="batch",
                        help="the embedded bus's write-ahead log: its fsync policy, or none "
                             "(memory only, the reference for what the log costs)")
    parser.add_argument("--sidecar-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_worker:
        asyncio.run(_load(args))
        return

    from _common import REPO, console, table, verdict, versions, write_json

    result = run(args)
    s, c, u = result["spans_per_s"], result["spans_per_cpu_s"], result["cpu_util"]
    load, sidecar = result["load"], result["sidecar"]
    table(f"Sidecar, {args.spans} spans/request, {args.spans_per_trace} span(s)/trace, "
          f"~{args.prompt_bytes} B prompts, redaction {'off' if args.no_redaction else 'on'}, "
          f"write-ahead log {args.wal}; "
          f"median (min-max) of {args.windows} x {args.window_s:g} s windows",
          ("metric", "value", "goal", "verdict"), [
              ("GenAI spans/s (wall, sidecar pinned to 1 core)",
               f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})", "", ""),
              ("sidecar CPU use (cores)", f"{u['median']:.2f} ({u['min']:.2f}-{u['max']:.2f})",
               "", ""),
              ("GenAI spans per CPU-second (per core)",
               f"{c['median']:,.0f} ({c['min']:,.0f}-{c['max']:,.0f})", f">= {SPANS_GOAL:,}",
               verdict(c["median"] >= SPANS_GOAL)),
              ("RSS peak (VmHWM), MB", f"{result['rss_peak_mb']:.1f}", f"< {RSS_GOAL_MB}",
               verdict(result["rss_peak_mb"] < RSS_GOAL_MB)),
              ("RSS idle before load, MB", f"{result['rss_idle_mb']:.1f}", "", ""),
              ("request latency p50 / p99, ms",
               f"{load['latency_ms_p50']:.1f} / {load['latency_ms_p99']:.1f}", "", ""),
              ("errors / rejected spans", f"{load['errors']} / {load['rejected']}", "0", ""),
              ("bus messages / with raw PII", f"{sidecar['messages']:,} / "
               f"{sidecar['messages_with_raw_pii']}", "", ""),
          ])
    result["goals"] = {
        "spans_per_cpu_s": {"goal": SPANS_GOAL, "value": c["median"],
                            "met": c["median"] >= SPANS_GOAL},
        "rss_peak_mb": {"goal": RSS_GOAL_MB, "value": result["rss_peak_mb"],
                        "met": result["rss_peak_mb"] < RSS_GOAL_MB},
    }
    path = write_json("sidecar_throughput", {
        "settings": {k: v for k, v in vars(args).items()
                     if k not in ("port", "load_worker", "tag")},
        "versions": versions(("watchkeeper", "aiohttp", "protobuf", "opentelemetry-proto",
                              "grpcio")),
        **result}, tag=args.tag)
    console.print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
