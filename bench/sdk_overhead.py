"""In-app cost of one instrumented chat completion: Watchkeeper's SDK against bare OpenTelemetry,
OpenLLMetry and OpenLIT, on the same in-process fake model call.

    python bench/sdk_overhead.py [--calls 2000] [--reps 5] [--exporter discard|encode]
                                 [--impl watchkeeper --impl openlit ...]

Each library runs in its own process (they patch the openai client globally) through
`bench/_overhead_driver.py`, which holds the method; OpenLLMetry and OpenLIT do not install
beside openai 3.x, so they run in the venvs that tests/fixtures/capture/capture.py keeps
under .cache/capture-envs (created with the same pins when missing). Runs go one after the
other, never in parallel, so they do not compete for the two cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import REPO, console, spread, table, verdict, write_json

DRIVER = Path(__file__).with_name("_overhead_driver.py")
CAPTURE = REPO / "tests" / "fixtures" / "capture" / "capture.py"
MAIN_VENV = Path(sys.executable).parent.parent


@dataclass(frozen=True)
class Run:
    label: str
    impl: str
    case: str | None  # capture venv name, None for the project's venv

    def python(self) -> Path:
        return MAIN_VENV / "bin" / "python" if self.case is None else ensure(self.case)


RUNS = {
    "watchkeeper": Run("Watchkeeper SDK (instrument)", "watchkeeper", None),
    "bare": Run("bare OpenTelemetry (manual span)", "bare", None),
    "openllmetry": Run("OpenLLMetry 0.62 (OpenAIInstrumentor)", "openllmetry",
                       "openllmetry-0.62-attributes"),
    "traceloop": Run("OpenLLMetry 0.62 (Traceloop.init)", "traceloop",
                     "openllmetry-0.62-attributes"),
    "openlit": Run("OpenLIT 1.44 (openlit.init)", "openlit", "openlit-1.44"),
    "bare-openai2": Run("bare OpenTelemetry, openai 2.x venv (control)", "bare",
                        "openllmetry-0.62-attributes"),
}
DEFAULT = ("watchkeeper", "bare", "openllmetry", "openlit", "bare-openai2")
COMPETITORS = ("openllmetry", "traceloop", "openlit")


def ensure(case: str) -> Path:
    """The capture venv's interpreter, building the venv with capture.py's pins if missing."""
    python = REPO / ".cache" / "capture-envs" / case / "bin" / "python"
    if python.exists():
        return python
    spec = importlib.util.spec_from_file_location("capture", CAPTURE)
    assert spec is not None and spec.loader is not None
    capture = importlib.util.module_from_spec(spec)
    sys.modules["capture"] = capture
    spec.loader.exec_module(capture)
    console.print(f"building {case} venv (needs PyPI once)…")
    return Path(capture.ensure_venv(capture.CASES[case], sys.executable, False)) / "bin" / "python"


def clean_env() -> dict[str, str]:
    """No OTEL_/TRACELOOP_/OPENLIT_/OPENAI_ settings from the caller may steer a library."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "TRACELOOP_", "OPENLIT_", "OPENAI_"))}
    env.update({"OTEL_METRICS_EXPORTER": "none", "TRACELOOP_METRICS_ENABLED": "false",
                "TRACELOOP_TELEMETRY": "false", "PYTHONHASHSEED": "0"})
    return env


def run(spec: Run, args: argparse.Namespace) -> dict[str, Any]:
    command = [str(spec.python()), str(DRIVER), "--impl", spec.impl, "--calls", str(args.calls),
               "--reps", str(args.reps), "--prompt-bytes", str(args.prompt_bytes),
               "--exporter", args.exporter]
    console.print(f"[dim]{spec.label}: {' '.join(command[1:])}[/dim]")
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), cwd=REPO,
                          check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{spec.label} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["label"] = spec.label
    result["overhead"] = spread(result["overhead_us"])
    result["baseline"] = spread([b * 1e3 for b in result["baseline_ms"]])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed block (≥2000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (block pairs)")
    parser.add_argument("--prompt-bytes", type=int, default=0)
    parser.add_argument("--exporter", choices=("discard", "encode"), default="discard",
                        help="encode: also serialise spans to OTLP protobuf before dropping")
    parser.add_argument("--tag", help="write bench/out/<name>-<tag>.json (a variant run)")
    parser.add_argument("--impl", action="append", choices=sorted(RUNS),
                        help=f"repeatable; default: {' '.join(DEFAULT)}")
    args = parser.parse_args()

    results = {name: run(RUNS[name], args) for name in args.impl or DEFAULT}
    rows = []
    for r in results.values():
        o = r["overhead"]
        rows.append((r["label"], f"{r['baseline']['median']:.0f}", f"{o['median']:.1f}",
                     f"{o['min']:.1f}-{o['max']:.1f}", f"{r['spans_per_call']:.2f}",
                     f"{r['logs_per_call']:.2f}", r["span"].get("attributes", ""),
                     r["versions"].get("openai", "")))
    table(f"Added time per chat completion (µs), median of {args.reps} reps x "
          f"{args.calls} calls, exporter={args.exporter}",
          ("instrumentation", "uninstrumented µs", "overhead µs", "min-max", "spans/call",
           "logs/call", "span attrs", "openai"), rows)

    goal: dict[str, Any] = {"description": "Watchkeeper's SDK has the lowest overhead of the "
                                           "instrumentations (bare OTel is the floor)"}
    if "watchkeeper" in results:
        ours = results["watchkeeper"]["overhead"]["median"]
        others = {n: results[n]["overhead"]["median"] for n in COMPETITORS if n in results}
        goal["met"] = all(ours < v for v in others.values()) if others else None
        goal["watchkeeper_us"] = ours
        goal["competitors_us"] = others
        if "bare" in results:
            goal["above_bare_us"] = ours - results["bare"]["overhead"]["median"]
        if others:
            console.print(f"goal (lowest overhead of the instrumentations): "
                          f"{verdict(bool(goal['met']))}; Watchkeeper {ours:.1f} µs vs "
                          + ", ".join(f"{n} {v:.1f} µs" for n, v in others.items()))
    path = write_json("sdk_overhead", {
        "settings": vars(args), "results": results, "goal": goal}, tag=args.tag)
    console.print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
