"""Redaction's worst cases: values built to make the detectors work hardest, 1 MB each (the
size of the longest value the sidecar keeps by default), through `Redactor.redact` with the
compiled detectors and with the Python ones alone. What a hostile client can make one value
cost is what it can make the sidecar spend per export; none may go quadratic.

    python bench/redaction_adversarial.py [--size 1000000] [--tag TAG]

Per value: seconds (best of 2) with `redaction.native: auto` and `off`, the MB/s that makes,
and the findings (both engines must agree). Writes bench/out/redaction_adversarial.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Each a piece repeated to the size: candidates for every detector family, findings by the
# ten thousand, markers that start a search at every position.
PIECES = {
    "digits and spaces (a phone candidate per run)": "1 ",
    "two-digit groups": "12 ",
    "card groups (4111 ...)": "4111 ",
    "e-mail addresses": "a@b.co ",
    "'@' only": "@",
    "spelled e-mail (at ... dot)": "jane at example dot com ",
    "password settings (a finding each)": "password: x1! ",
    "'=' and ':' separators": "k=v:",
    "URL credentials": "https://u:p@h ",
    "key prefixes (sk-, ghp_)": "sk-ghp_",
    "one long token run": "A",
    "JWT-looking segments": "eyJhbGciOiJIUzI1NiJ9.",
    "PEM headers": "-----BEGIN PRIVATE KEY-----\n",
    "IPv6 colons": "::1:",
    "IPv4 dots": "1.1.1.",
    "letters and digits (ids)": "AB12CD34 ",
    "nested JSON arrays": "[",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="characters per value")
    parser.add_argument("--tag", help="write bench/out/redaction_adversarial-<tag>.json")
    args = parser.parse_args()

    from _common import console, machine, table, write_json

    from watchkeeper.agent.config import RedactionConfig
    from watchkeeper.agent.sidecar.redaction import Redactor

    engines = {native: Redactor(RedactionConfig(native=native)) for native in ("auto", "off")}
    rows = []
    for name, piece in PIECES.items():
        value = (piece * (args.size // len(piece) + 1))[:args.size]
        if name.startswith("nested"):
            value += "]" * (args.size // 2)
        row: dict[str, object] = {"value": name, "chars": len(value)}
        counts = {}
        for native, redactor in engines.items():
            best = float("inf")
            for _ in range(2):
                started = time.perf_counter()
                _, counts[native] = redactor.redact(value)
                best = min(best, time.perf_counter() - started)
            row[f"seconds {native}"] = round(best, 3)
            row[f"MB/s {native}"] = round(len(value) / best / 1e6, 2)
        assert counts["auto"] == counts["off"], (name, counts)
        row["findings"] = counts["auto"]
        rows.append(row)
        console.print(json.dumps(row))
    table("Worst-case values through Redactor.redact (compiled / Python detectors)",
          ["value", "findings", "compiled s", "compiled MB/s", "Python s", "Python MB/s"],
          [[r["value"], f"{r['findings']:,}", r["seconds auto"], r["MB/s auto"],
            r["seconds off"], r["MB/s off"]] for r in rows])
    path = write_json("redaction_adversarial", {"machine": machine(), "size": args.size,
                                                "rows": rows}, tag=args.tag)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
