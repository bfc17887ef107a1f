"""The architecture as import contracts (pyproject.toml [tool.importlinter]): layers with the
CLI on top and the domain at the bottom, no cycles, the pipeline's stages independent, and
argparse only in the CLI. Checked by import-linter, as `lint-imports` would."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report


def test_every_module_has_a_layer() -> None:
    """A new top-level module of agent/ (or a new folder) must be placed in the layers, or
    the layers contract would not constrain it."""
    [layers] = [c for c in CONFIG["contracts"] if c["type"] == "layers"]
    named = {name for layer in layers["layers"] for name in re.split(r"[|:\s]+", layer) if name}
    found = {f"watchkeeper.agent.{p.stem}" for p in (ROOT / "agent").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__")
             or (p.is_dir() and (p / "__init__.py").exists())}
    found |= {f"watchkeeper.{root}" for root in ("collectors", "detectors", "dashboards")}
    assert found - named == set(), "give these modules a layer in pyproject.toml"
