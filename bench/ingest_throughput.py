"""Ingest throughput: GenAI spans from wk.spans into chDB, in samples per second.

    python bench/ingest_throughput.py [--messages 50000] [--reps 3] [--spans-per-trace 1]
                                      [--prompt-bytes 1024] [--native auto|off] [--profile]

Each repetition runs in a fresh process (chDB allows one engine per process) with a fresh
store: `Store(f"chdb://{tmpdir}", StoreConfig())` and `migrate`. N OTLP messages are first
published onto a `EmbeddedBus` topic wk.spans as the sidecar writes them (one message per
trace, redacted, with the `watchkeeper.redactions` count), then `IngestService(...).drain_bus()`
is timed until every sample is stored and committed (join_window_s=0, `ingest.native` as
given, other ingest settings at their defaults). The row count in `samples` is checked
afterwards.

A further run wraps the stages in timers for the breakdown. On the reading thread: compiled
decode (`native.decode_traces`: protobuf to rows, on every core without the GIL), take (the
rest of agent/ingest/decode.py for each message: the Python normaliser's decode for what the
compiled path left to it; then the joiner), collect (spans released by the joiner, rendered
into the batch; with the Python path this is where `to_sample` runs), waiting for the writer.
On the writer thread (agent/ingest/writer.py), overlapping them: insert
(`Store.insert_row_binary` / `insert_json`) and the rest of storing a batch (publishing to
wk.samples).
`--profile` also writes a cProfile of one run to bench/out/ingest_throughput.pstats.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SAMPLES_GOAL = 20_000
HERE = Path(__file__).resolve().parent


# --- the worker (one repetition, in its own process) ------------------------------------------
def messages(n: int, spans_per_trace: int, prompt_bytes: int,
             pool: int = 512) -> Iterator[tuple[bytes, bytes]]:
    """n one-trace messages (key, value) as the sidecar publishes them: redacted, unique ids.

    A pool of distinct traces is generated and redacted once, then reused with new trace and
    span ids (the ids are what makes a sample distinct), which keeps setup short.
    """
    from _genai_spans import request

    from watchkeeper.agent.config import RedactionConfig
    from watchkeeper.agent.sidecar.redaction import Redactor

    rng = random.Random(11)
    redactor = Redactor(RedactionConfig())
    now_ns = time.time_ns() - 3_600_000_000_000  # within the retention TTL
    traces = []
    for i in range(min(n, pool)):
        req = request(rng, i * spans_per_trace, spans_per_trace, spans_per_trace, prompt_bytes,
                      now_ns)
        redactor.traces(req)
        traces.append(req)
    for i in range(n):
        req = traces[i % len(traces)]
        trace_id = (i + 1).to_bytes(16, "big")
        for j, span in enumerate(req.resource_spans[0].scope_spans[0].spans):
            span.trace_id = trace_id
            span.span_id = (i * spans_per_trace + j + 1).to_bytes(8, "big")
        yield trace_id.hex().encode(), req.SerializeToString()


class Stages:
    """Wall time spent in each wrapped function."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter
        seconds, calls = self.seconds, self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += clock() - start
                calls[name] += 1

        return timed


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from watchkeeper.agent.bus import TOPIC_SPANS
    from watchkeeper.agent.bus.embedded import EmbeddedBus
    from watchkeeper.agent.config import IngestConfig, StoreConfig
    from watchkeeper.agent.ingest import service as ingest_service
    from watchkeeper.agent.store.client import Store
    from watchkeeper.agent.store.migrate import migrate
    from watchkeeper.collectors.normalise import native

    started = time.perf_counter()
    bus = EmbeddedBus(max_backlog=args.messages + 10)
    size = 0
    for key, value in messages(args.messages, args.spans_per_trace, args.prompt_bytes):
        bus.publish(TOPIC_SPANS, value, key=key)
        size += len(value)
    with tempfile.TemporaryDirectory(prefix="wk-bench-ingest-") as tmp:
        store = Store(f"chdb://{tmp}", StoreConfig())
        migrate(store)
        config = IngestConfig(join_window_s=0, native=args.native)
        service = ingest_service.IngestService(bus, store, config)
        stages = None
        if args.stages:
            stages = Stages()
            native.decode_traces = stages.wrap("compiled decode", native.decode_traces)
            service._take = stages.wrap("take", service._take)  # type: ignore[method-assign]
            service._collect = stages.wrap("collect", service._collect)  # type: ignore[method-assign]
            service._settle = stages.wrap("waiting for the writer", service._settle)  # type: ignore[method-assign]
            service.writer._store = stages.wrap("writer: store a batch", service.writer._store)  # type: ignore[method-assign]
            for name in ("insert_json", "insert_row_binary"):
                setattr(store, name, stages.wrap("writer: insert", getattr(store, name)))
        setup_s = time.perf_counter() - started
        profiler = None
        if args.profile_to:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, t0 = os.times(), time.perf_counter()
        service.drain_bus()
        elapsed = time.perf_counter() - t0
        cpu1 = os.times()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile_to)
        stored = int(store.query(f"SELECT count() FROM {store.database}.samples").rows[0][0])
        store.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    samples = args.messages * args.spans_per_trace
    out: dict[str, Any] = {
        "samples": samples, "stored_rows": stored, "stored_samples": service.stored_samples,
        "native": service.native,
        "bytes_per_message": size // args.messages, "setup_s": setup_s, "seconds": elapsed,
        "cpu_s": cpu, "samples_per_s": samples / elapsed, "samples_per_cpu_s": samples / cpu,
        "rss_peak_mb": _vmhwm_mb(),
    }
    if stages is not None:
        out["stages_s"] = dict(stages.seconds)
    return out


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the parent -------------------------------------------------------------------------------
def run_worker(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--messages", str(args.messages),
               "--spans-per-trace", str(args.spans_per_trace),
               "--prompt-bytes", str(args.prompt_bytes), "--native", args.native, *extra]
    if args.cpu is not None:
        command = ["taskset", "-c", str(args.cpu), *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"ingest worker failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["stored_rows"] != result["samples"]:
        raise SystemExit(f"stored {result['stored_rows']} rows for {result['samples']} samples")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="wk.spans messages")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--spans-per-trace", type=int, default=1,
                        help="GenAI spans per message (the sidecar writes one trace each)")
    parser.add_argument("--prompt-bytes", type=int, default=1024)
    parser.add_argument("--native", choices=("auto", "off"), default="auto",
                        help="ingest.native: the compiled span-to-row path when installed, or off")
    parser.add_argument("--tag", help="write bench/out/<name>-<tag>.json (a variant run)")
    parser.add_argument("--cpu", type=int, help="pin the worker to this CPU (taskset)")
    parser.add_argument("--profile", action="store_true",
                        help="write a cProfile of one run to bench/out/ingest_throughput.pstats")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stages", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from _common import OUT, REPO, console, spread, table, verdict, versions, write_json

    runs = []
    for rep in range(args.reps):
        runs.append(run_worker(args))
        console.print(f"[dim]rep {rep + 1}: {runs[-1]['samples_per_s']:,.0f} samples/s[/dim]")
    staged = run_worker(args, "--stages")
    profile_path = None
    if args.profile:
        OUT.mkdir(parents=True, exist_ok=True)
        profile_path = OUT / "ingest_throughput.pstats"
        run_worker(args, "--profile-to", str(profile_path))
    rate = spread([r["samples_per_s"] for r in runs])
    per_cpu = spread([r["samples_per_cpu_s"] for r in runs])
    total = staged["seconds"]
    parts = dict(staged["stages_s"])
    if "compiled decode" in parts:  # it runs inside take: take's own share is the rest
        parts["take"] -= parts["compiled decode"]
    # the writer's stages overlap the reading thread's: "other" is the reading thread's rest
    parts["other (polling, batching, commits)"] = total - sum(
        v for k, v in parts.items() if not k.startswith("writer"))
    path_name = "compiled path" if runs[0]["native"] else "Python path"
    table(f"Ingest into chDB ({path_name}): {args.messages:,} messages x {args.spans_per_trace} "
          f"GenAI span(s), ~{args.prompt_bytes} B prompts; median (min-max) of {args.reps} runs",
          ("metric", "value", "goal", "verdict"), [
              ("samples/s, end to end (wall)",
               f"{rate['median']:,.0f} ({rate['min']:,.0f}-{rate['max']:,.0f})",
               f">= {SAMPLES_GOAL:,}", verdict(rate["median"] >= SAMPLES_GOAL)),
              ("samples per CPU-second",
               f"{per_cpu['median']:,.0f} ({per_cpu['min']:,.0f}-{per_cpu['max']:,.0f})", "", ""),
              ("process CPU use (cores)",
               f"{sum(r['cpu_s'] for r in runs) / sum(r['seconds'] for r in runs):.2f}", "", ""),
              ("RSS peak of a run, MB", f"{max(r['rss_peak_mb'] for r in runs):.0f}", "", ""),
          ])
    table(f"Where the time goes (one run with stage timers, {total:.2f} s, "
          f"{staged['samples_per_s']:,.0f} samples/s)", ("stage", "seconds", "share",
                                                        "us/sample"),
          [(name, f"{s:.2f}", f"{s / total:.0%}", f"{s / staged['samples'] * 1e6:.1f}")
           for name, s in parts.items()])
    path = write_json("ingest_throughput", {
        "settings": {k: v for k, v in vars(args).items()
                     if k not in ("worker", "stages", "profile_to", "tag")},
        "versions": versions(("watchkeeper", "watchkeeper-native", "chdb", "chdb-core",
                              "clickhouse-connect", "protobuf", "pydantic")),
        "runs": runs, "samples_per_s": rate, "samples_per_cpu_s": per_cpu,
        "breakdown_run": staged, "breakdown_s": parts,
        "profile": str(profile_path.relative_to(REPO)) if profile_path else None,
        "goal": {"samples_per_s": SAMPLES_GOAL, "value": rate["median"],
                 "met": rate["median"] >= SAMPLES_GOAL},
    }, tag=args.tag)
    console.print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
