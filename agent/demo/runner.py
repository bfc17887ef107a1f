"""`watchkeeper demo`: starts the fake model, runs each simulated app in its own process against
the agent's OTLP endpoint, and prints what was sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from watchkeeper.agent.demo.llm_server import LLMServer

SERVICES = ("support-bot", "search-assistant", "summariser")


def run_demo(endpoint: str, rounds: int = 1, token: str | None = None,
             interval_s: float = 0.0) -> int:
    console = Console(width=120)
    calls: list[dict[str, Any]] = []
    failed: list[str] = []
    with LLMServer() as llm:
        console.print(f"demo: fake model at {llm.base_url}, sending to {endpoint}")
        procs = {}
        for service in SERVICES:
            command = [sys.executable, "-m", "watchkeeper.agent.demo.app", "--service", service,
                       "--endpoint", endpoint, "--llm", llm.base_url, "--rounds", str(rounds),
                       "--interval", str(interval_s)]
            if token:
                command += ["--token", token]
            procs[service] = subprocess.Popen(command, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)
        for service, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            calls += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if proc.returncode:
                failed.append(f"{service}: exit {proc.returncode}\n{err[-2000:]}")
    table = Table("service", "model", "calls", "streaming", "upstream errors", "feedback",
                  title="demo traffic sent")
    per_service = Counter((c["service"], c["model"]) for c in calls)
    for (service, model), count in sorted(per_service.items()):
        mine = [c for c in calls if c["service"] == service]
        table.add_row(service, model, str(count), str(sum(c["stream"] for c in mine)),
                      str(sum(c["outcome"].startswith("error") for c in mine)),
                      str(sum(bool(c["thumbs"]) for c in mine)))
    console.print(table)
    console.print(f"{len(calls)} model calls sent as OpenTelemetry spans to {endpoint}")
    for failure in failed:
        console.print(f"[red]{failure}[/red]")
    return 1 if failed else 0
