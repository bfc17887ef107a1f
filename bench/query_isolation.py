"""Does SQL a person wrote stall capture? `watchkeeper up` receives a steady stream of OTLP
exports while N clients keep heavy queries running through the query API (each client sends
its next query as soon as the last is answered), next to the same stream with no queries.

Per phase: OTLP export latency (p50, p99, max, as the exporter sees it), the time from a span's
end until its row is stored (p50, p99; includes the join window), and what the user queries got
back (answered, cut by max_execution_time, refused for lack of a slot).

    python bench/query_isolation.py [--clients 4] [--seconds 15] [--rate 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _common import console, table, versions, write_json
from e2e_transport import LATENCY_SQL, _ending_now

from helpers import Service

# CPU-bound and allowed: hashes every number, on the one thread a user query may use.
HEAVY = {
    "cpu": "SELECT count() FROM numbers(400000000) WHERE cityHash64(number) % 7 = 3",
    "sleep": "SELECT count() FROM numbers(100000000) WHERE sleepEachRow(0.00001) = 0",
}


def _users(api: str, sql: str, clients: int, stop: threading.Event) -> Counter[str]:
    outcomes: Counter[str] = Counter()

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while not stop.is_set():
                answer = http.post(f"{api}/api/query", json={"sql": sql})
                body = answer.json()
                outcomes[str(answer.status_code) if answer.status_code != 400
                         else f"400 {body.get('limit')}"] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join()
    return outcomes


def phase(up: Service, load: str | None, args: argparse.Namespace) -> dict[str, Any]:
    import random

    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    users = None
    if load is not None:
        users = threading.Thread(target=lambda: outcomes.update(
            _users(up.api, HEAVY[load], args.clients, stop)))
        users.start()
        time.sleep(1.0)  # the queries are running before capture is measured
    rng = random.Random()
    batch = max(1, args.rate // 20)
    since_ms = int(time.time() * 1000) - 500
    export_ms: list[float] = []
    sent = 0
    with httpx.Client(timeout=60) as client:
        next_at = time.monotonic()
        end = next_at + args.seconds
        while next_at < end:
            body = _ending_now(batch, rng, sent, 512)
            started = time.monotonic()
            client.post(f"{up.otlp_http}/v1/traces", content=body,
                        headers={"Content-Type": "application/x-protobuf"}).raise_for_status()
            export_ms.append((time.monotonic() - started) * 1000)
            sent += batch
            next_at += batch / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    deadline = time.monotonic() + 60
    row: dict[str, Any] = {"n": 0, "q": [0, 0]}
    while time.monotonic() < deadline:
        row = up.query(LATENCY_SQL.replace("{since}", str(since_ms)))[0]
        if int(row["n"]) >= sent:
            break
        time.sleep(0.2)
    stop.set()
    if users is not None:
        users.join()
    export_ms.sort()
    return {"load": load or "none", "clients": args.clients if load else 0, "sent": sent,
            "stored": int(row["n"]), "export_p50_ms": statistics.median(export_ms),
            "export_p99_ms": export_ms[int(len(export_ms) * 0.99) - 1],
            "export_max_ms": export_ms[-1], "store_p50_ms": row["q"][0],
            "store_p99_ms": row["q"][1], "queries": dict(outcomes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=200, help="spans/s")
    parser.add_argument("--time-limit", type=int, default=10,
                        help="query.max_execution_time_s of the agent")
    args = parser.parse_args()
    env = {"WATCHKEEPER_LOG_LEVEL": "warning", "WATCHKEEPER_INGEST__JOIN_WINDOW_S": "0.25",
           "WATCHKEEPER_QUERY__MAX_EXECUTION_TIME_S": str(args.time_limit),
           "WATCHKEEPER_QUERY__QUEUE_TIMEOUT_S": "30"}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        up = Service("up", "--data-dir", str(Path(tmp) / "wk"), "--no-watch", "--api-port",
                     "0", "--otlp-http-port", "0", "--otlp-grpc-port", "0", env=env)
        try:
            for load in (None, "sleep", "cpu"):
                console.print(f"phase: {load or 'no user queries'} ...")
                results.append(phase(up, load, args))
        finally:
            up.stop()
    table("OTLP capture while user queries run (watchkeeper up, chDB)",
          ("user queries", "export p50 ms", "p99 ms", "max ms", "stored p50 ms", "p99 ms",
           "stored/sent", "query answers"),
          [(f"{r['clients']} x {r['load']}" if r["clients"] else "none",
            f"{r['export_p50_ms']:.1f}", f"{r['export_p99_ms']:.1f}",
            f"{r['export_max_ms']:.1f}", f"{r['store_p50_ms']:.0f}",
            f"{r['store_p99_ms']:.0f}", f"{r['stored']}/{r['sent']}",
            ", ".join(f"{k}: {v}" for k, v in sorted(r["queries"].items())))
           for r in results])
    write_json("query_isolation", {"settings": vars(args), "heavy_sql": HEAVY,
                                   "results": results,
                                   "versions": versions(["watchkeeper", "chdb",
                                                         "clickhouse-connect"])})


if __name__ == "__main__":
    main()
