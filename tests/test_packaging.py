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


def test_builds_without_setuptools_warnings(tmp_path: Path) -> None:
    """What `pip install .` and `pip install -e .` build: the wheel and the editable wheel,
    from a clean copy of the sources, with the migrations installed as package data and no
    setuptools warning about them (it used to print a screenful per install)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in config["package-dir"].values():
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys; from setuptools import build_meta as b; "
            "b.build_wheel(sys.argv[1]); print('--- editable', file=sys.stderr); "
            "b.build_editable(sys.argv[1])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    regular, editable = done.stderr.split("--- editable")
    assert "Warning" not in regular, regular
    assert "migrations" not in editable, editable
    # the one notice left is setuptools' note on every editable install of a package-dir layout
    assert "Warning" not in editable.replace("InformationOnly: Editable installation.", ""), \
        editable
    [wheel] = [w for w in (tmp_path / "dist").glob("*.whl") if ".editable" not in w.name]
    with zipfile.ZipFile(wheel) as archive:
        packaged = {Path(n).name for n in archive.namelist()
                    if n.startswith("watchkeeper/agent/store/migrations/")
                    and n.endswith(".sql")}
        # the live view's scripts and styles, and the vendored uPlot with its licence
        static = {Path(n).name for n in archive.namelist()
                  if n.startswith("watchkeeper/dashboards/static/")}
    assert packaged == {p.name for p in (ROOT / "agent/store/migrations").glob("*.sql")}
    assert static == {p.name for p in (ROOT / "dashboards/static").iterdir()
                      if p.name != "__pycache__"}
    assert {"uPlot.iife.min.js", "uPlot.LICENSE", "render.js", "live.js"} <= static
