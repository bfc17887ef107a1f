"""Crash recovery of the embedded default: acknowledged spans after `kill -9` and a restart.

    python bench/crash_recovery.py [--spans 2000] [--rate 100] [--runs 2]
                                   [--fsync batch|interval] [--tag NAME]

An operator's test: `watchkeeper up` (the embedded default) in its own process; GenAI spans
(one per export, ~1 KB prompts) sent at a steady rate, each export's answer noted; SIGKILL once
half of them were sent; `up` started again on the same data directory; then, per run, how
many of the spans answered 200 are in `samples`, and how many show more than once. The
numbers before the write-ahead log (docs/benchmarks.md §7) came from the same procedure.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import console, spread, table, verdict, write_json
from _genai_spans import request

CLI = [sys.executable, "-m", "watchkeeper.agent"]


def _start(data_dir: Path, config: Path, log: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    with log.open("a") as err:
        proc = subprocess.Popen([*CLI, "--config", str(config), "up", "--no-watch",
                                 "--data-dir", str(data_dir), "--otlp-http-port", "0",
                                 "--otlp-grpc-port", "0", "--api-port", "0"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"up did not start: {log.read_text()[-2000:]}")
    return proc, json.loads(line)


def _stored(api: str) -> dict[str, int]:
    response = httpx.post(f"{api}/api/query", json={
        "sql": "SELECT span_id, count() AS n FROM samples GROUP BY span_id"}, timeout=60)
    response.raise_for_status()
    return {row[0]: int(row[1]) for row in response.json()["rows"]}


def run_once(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="wk-bench-crash-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "up.log"
        config = Path(tmp) / "config.yaml"
        config.write_text(f"wal:\n  fsync: {args.fsync}\n")
        proc, ports = _start(data_dir, config, log)
        endpoint = f"http://127.0.0.1:{ports['otlp_http']}/v1/traces"
        acked: list[str] = []
        answers: dict[str, int] = {}
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            for i in range(args.spans):
                if i == args.spans // 2:
                    proc.kill()  # SIGKILL: no drain, nothing flushed
                    proc.wait()
                    killed_after = len(acked)
                body = request(rng, i, 1, 1, 1024, time.time_ns())
                span_id = body.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
                try:
                    status = str(client.post(endpoint, content=body.SerializeToString(),
                                             headers={"Content-Type":
                                                      "application/x-protobuf"}).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                answers[status] = answers.get(status, 0) + 1
                if status == "200":
                    acked.append(span_id)
                time.sleep(max(0.0, started + (i + 1) / args.rate - time.monotonic()))
        proc, ports = _start(data_dir, config, log)
        api = f"http://127.0.0.1:{ports['api']}"
        deadline = time.monotonic() + 60
        stored: dict[str, int] = {}
        while time.monotonic() < deadline:
            stored = _stored(api)
            if set(acked) <= stored.keys():
                break
            time.sleep(1)
        proc.terminate()
        proc.wait(60)
    found = [s for s in acked if s in stored]
    return {"acked": len(acked), "acked_before_kill": killed_after, "answers": answers,
            "stored": len(found), "lost": len(acked) - len(found),
            "shown_twice": sum(1 for s in found if stored[s] > 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100, help="spans (exports) per second")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--fsync", choices=("batch", "interval"), default="batch")
    parser.add_argument("--tag")
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        result = run_once(args, seed=n)
        print(json.dumps(result), flush=True)
        runs.append(result)
    table(f"kill -9 of up half way through {args.spans} spans at {args.rate:g}/s "
          f"(wal.fsync {args.fsync})",
          ["run", "answered 200", "in samples after restart", "lost", "shown twice"],
          [(i + 1, r["acked"], r["stored"], r["lost"], r["shown_twice"])
           for i, r in enumerate(runs)])
    ok = all(r["lost"] == 0 and r["shown_twice"] == 0 for r in runs)
    console.print(f"nothing acknowledged lost, nothing shown twice: {verdict(ok)}")
    write_json("crash_recovery", {"settings": vars(args), "runs": runs,
                                  "lost": spread([r["lost"] for r in runs]), "goal_met": ok},
               tag=args.tag)


if __name__ == "__main__":
    main()
