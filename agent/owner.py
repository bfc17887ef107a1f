"""Who owns the embedded store. chDB allows one engine per process, so the process that runs
the store (`watchkeeper up`, or ingest, watch, schedule on an embedded store) writes
DATA_DIR/agent.json with its pid and API address; a command started beside it (`query`,
`review`, `detect`, ...) reads the file and goes through that API instead of opening the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

OWNER_FILE = "agent.json"


def write_owner(data_dir: Path, api: str) -> None:
    """Record this process, serving its API at `api`, as the owner of the store in data_dir."""
    (data_dir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "api": api}))


def clear_owner(data_dir: Path) -> None:
    (data_dir / OWNER_FILE).unlink(missing_ok=True)


def owner_api(data_dir: Path) -> str | None:
    """The API URL of a live process that owns the store under data_dir, if any."""
    try:
        owner = json.loads((data_dir / OWNER_FILE).read_text())
        os.kill(int(owner["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(owner["api"])
