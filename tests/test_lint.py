"""``ruff check`` passes on the code, the tests, the benchmarks and the scripts (docs/contributing.md), with the
rules ``pyproject.toml`` names: an unused import or variable, a name shadowed or undefined, fails the fast tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes() -> None:
    pytest.importorskip("ruff", reason="ruff is in the dev extras (pip install -e '.[dev]')")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks", "scripts"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_ruff_reads_the_project_rules(tmp_path: Path) -> None:
    """A planted unused import fails with the project's settings (so the check above checks something)."""
    pytest.importorskip("ruff", reason="ruff is in the dev extras (pip install -e '.[dev]')")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                          str(bad)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1 and "F401" in run.stdout
