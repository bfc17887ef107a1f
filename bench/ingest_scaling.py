"""Ingest scaling over Kafka: how the samples/s of ingest grow with the number of processes.

    python bench/ingest_scaling.py [--messages 60000] [--processes 1,2,4] [--partitions 4]

For each process count K: N messages (the ingest benchmark's: one redacted GenAI span per
trace, ~2.5 KB, keyed by trace id) are published onto a fresh `wk.spans` of P partitions on a
real Kafka broker (scripts/kafka) with Watchkeeper's own Kafka bus, and flushed. Then K
`watchkeeper ingest --bus kafka://…` processes start in one consumer group, each with its own
chDB store (chDB is one engine per process; in production they share a ClickHouse server), and
drain that backlog. The rate is the group's in steady state: samples stored from the moment the
first one is visible to the moment all N are, counted through each process's query API every
0.1 s. Join window 0, other settings at their defaults, as in bench/ingest_throughput.py.
The CPU time of the ingest processes, of the broker and of the whole machine over the same span
is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import REPO, console, table, versions, write_json
from ingest_throughput import messages

from watchkeeper.agent.bus import TOPIC_SPANS
from watchkeeper.agent.bus.kafka import KafkaBus
from watchkeeper.agent.config import KafkaConfig

sys.path.insert(0, str(REPO / "tests"))
from helpers import KafkaBroker, Service

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS  # minus idle and iowait


def _publish(address: str, prefix: str, args: argparse.Namespace) -> None:
    bus = KafkaBus(address, KafkaConfig(topic_prefix=prefix, partitions=args.partitions))
    try:
        bus.ensure_topics()
        deliveries = [bus.publish(TOPIC_SPANS, value, key=key)
                      for key, value in messages(args.messages, 1, args.prompt_bytes)]
        bus.flush(120)
        for delivery in deliveries:
            delivery.result(120)
    finally:
        bus.close()


def run(address: str, broker_pid: int, processes: int, work: Path,
        args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"scale{processes}-{int(time.time())}."
    started = time.monotonic()
    _publish(address, prefix, args)
    console.print(f"[dim]{processes} process(es): published {args.messages:,} messages in "
                  f"{time.monotonic() - started:.1f} s[/dim]")
    env = {"WATCHKEEPER_KAFKA__TOPIC_PREFIX": prefix, "WATCHKEEPER_LOG_LEVEL": "warning",
           "WATCHKEEPER_INGEST__JOIN_WINDOW_S": "0"}
    # started together, so that they join the group at once and split the partitions evenly
    with ThreadPoolExecutor(processes) as pool:
        services = list(pool.map(
            lambda i: Service("ingest", "--bus", f"kafka://{address}", "--data-dir",
                              str(work / f"ingest-{i}"), "--api-port", "0", env=env),
            range(processes)))
    try:
        first_at = first_count = cpu0 = None
        broker0 = machine0 = 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            counts = [int(s.query("SELECT count() AS n FROM samples")[0]["n"]) for s in services]
            now = time.monotonic()
            if first_at is None and sum(counts) > 0:
                first_at, first_count = now, sum(counts)
                cpu0 = sum(_cpu_s(s.proc.pid) for s in services)
                broker0, machine0 = _cpu_s(broker_pid), _machine_busy_s()
            if sum(counts) >= args.messages:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"stored {sum(counts)} of {args.messages}")
        cpu = sum(_cpu_s(s.proc.pid) for s in services) - (cpu0 or 0.0)
        broker, machine = _cpu_s(broker_pid) - broker0, _machine_busy_s() - machine0
        assert first_at is not None and first_count is not None
        seconds = now - first_at
        return {"processes": processes, "samples": sum(counts), "per_process": counts,
                "seconds": seconds, "samples_per_s": (sum(counts) - first_count) / seconds,
                "cores": cpu / seconds, "broker_cores": broker / seconds,
                "machine_cores": machine / seconds}
    finally:
        for service in services:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--prompt-bytes", type=int, default=1024)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-scaling-") as tmp:
        broker = KafkaBroker(Path(tmp) / "broker")
        address = broker.start()
        broker_pid = int((Path(tmp) / "broker" / "kafka.pid").read_text())
        try:
            for k in (int(p) for p in args.processes.split(",")):
                results.append(run(address, broker_pid, k, Path(tempfile.mkdtemp(dir=tmp)),
                                   args))
                console.print(f"[dim]{k} process(es): "
                              f"{results[-1]['samples_per_s']:,.0f} samples/s[/dim]")
        finally:
            broker.stop()
    base = results[0]["samples_per_s"] / results[0]["processes"]
    table(f"Ingest over Kafka: {args.messages:,} messages on {args.partitions} partitions, "
          f"{os.cpu_count()} CPU cores", ("processes", "samples/s", "per process", "speed-up",
                                          "cores: ingest", "broker", "machine",
                                          "samples per process"),
          [(r["processes"], f"{r['samples_per_s']:,.0f}",
            f"{r['samples_per_s'] / r['processes']:,.0f}",
            f"{r['samples_per_s'] / base:.2f}x", f"{r['cores']:.2f}",
            f"{r['broker_cores']:.2f}", f"{r['machine_cores']:.2f}",
            " / ".join(f"{c:,}" for c in r["per_process"])) for r in results])
    path = write_json("ingest_scaling", {
        "settings": vars(args), "results": results,
        "versions": versions(("watchkeeper", "kafka-python", "chdb", "clickhouse-connect"))})
    console.print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
