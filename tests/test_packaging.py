"""Every folder with code installs under the watchkeeper namespace."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {v: k for k, v in config["package-dir"].items()}
    found = set()
    for folder, module in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((module, *parts)))
    assert found == set(config["packages"])


def test_sidecar_path_does_not_import_the_sdk_or_openai() -> None:
    import subprocess
    import sys

    code = ("import sys, watchkeeper.agent.runtime, watchkeeper.collectors.normalise; "
            "print(any(m.startswith(('openai', 'watchkeeper.collectors.sdk', 'torch')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
