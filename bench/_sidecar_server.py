"""The sidecar under test: `Runtime(settings, ingest=False)` on the embedded bus, as one process.

    python bench/_sidecar_server.py [--no-redaction] [--redaction-native auto|off]
                                    [--wal batch|interval|off]

Prints one JSON line `{"event": "ready", "otlp_http": PORT, ...}` once it listens, and on
SIGTERM drains, then prints `{"event": "stats", ...}` and exits. `bench/sidecar_throughput.py`
starts it pinned to one core.

A consumer group on wk.spans counts and drops what the sidecar publishes, standing in for
ingest: without one the embedded bus keeps the newest 100,000 messages (retention), which would
measure the bus's backlog rather than the sidecar. The consumer costs a poll and a commit per
few thousand messages, and two byte searches per message, which check that no e-mail address
of the generated PII got through and that redaction markers did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import threading
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from watchkeeper.agent.bus import TOPIC_SPANS, Record
from watchkeeper.agent.bus.embedded import EmbeddedBus
from watchkeeper.agent.config import (
    ApiConfig,
    RedactionConfig,
    Settings,
    SidecarConfig,
    WalConfig,
)
from watchkeeper.agent.runtime import Runtime

PII_MARK = b"@example.com"  # every generated e-mail address ends so; none may get through
REDACTED = b"[REDACTED:"


class Drain:
    """Counts and drops wk.spans messages, committing as ingest would."""

    def __init__(self, runtime: Runtime) -> None:
        assert runtime.bus is not None
        self.consumer = runtime.bus.consumer(TOPIC_SPANS, "bench-drain")
        self.messages = 0
        self.bytes = 0
        self.raw_pii = 0  # messages that still hold an address of the generated PII
        self.last_redacted: bytes | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="bench-drain", daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.take(self.consumer.poll(10_000, 0.2))

    def finish(self) -> None:
        """Stop the thread, then take what the bus still holds (it is closed: no waiting)."""
        self.stop.set()
        self.thread.join()
        while records := self.consumer.poll(10_000, 0):
            self.take(records)

    def take(self, records: list[Record]) -> None:
        if not records:
            return
        for record in records:
            self.bytes += len(record.value)
            if PII_MARK in record.value:
                self.raw_pii += 1
            if REDACTED in record.value:
                self.last_redacted = record.value
        self.messages += len(records)
        self.consumer.commit({(TOPIC_SPANS, 0): records[-1].offset + 1})


def redaction_check(message: bytes | None) -> dict[str, object]:
    """The `watchkeeper.redactions` counts of a message that holds redaction markers."""
    if message is None:
        return {}
    request = ExportTraceServiceRequest.FromString(message)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    counts = [kv.value.int_value for s in spans for kv in s.attributes
              if kv.key == "watchkeeper.redactions"]
    return {"spans": len(spans), "redactions": sum(counts)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-redaction", action="store_true")
    parser.add_argument("--redaction-native", choices=("auto", "off"), default="auto")
    parser.add_argument("--wal", choices=("batch", "interval", "off"), default="batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wk-bench-sidecar-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), bus="embedded://", log_level="warning",
            sidecar=SidecarConfig(otlp_http_port=0, otlp_grpc_port=0,
                                  redaction=RedactionConfig(
                                      enabled=not args.no_redaction,
                                      native=args.redaction_native)),
            api=ApiConfig(port=0), wal=WalConfig(fsync="interval" if args.wal == "interval"
                                                 else "batch"),
        )
        bus = EmbeddedBus() if args.wal == "off" else None  # memory only: the reference
        runtime = Runtime(settings, ingest=False, bus=bus)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await runtime.start()
        drain = Drain(runtime)
        drain.thread.start()
        print(json.dumps({"event": "ready", "otlp_http": runtime.ports.otlp_http}), flush=True)
        await stop.wait()
        await runtime.stop()
        drain.finish()
        print(json.dumps({"event": "stats", "messages": drain.messages, "bytes": drain.bytes,
                          "messages_with_raw_pii": drain.raw_pii,
                          "redacted_message": redaction_check(drain.last_redacted)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
