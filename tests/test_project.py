"""Project-level checks: lint, the CLI's face, and the UI-free engine rule."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_core_imports_no_ui_library():
    pattern = re.compile(r"^\s*(import|from)\s+(panel|holoviews|bokeh|hvplot)\b", re.M)
    files = (REPO / "core").rglob("*.py")
    offenders = [str(p.relative_to(REPO)) for p in files if pattern.search(p.read_text())]
    assert offenders == []


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "data" in out.stdout and "bench" in out.stdout


def test_readme_test_command_matches_ci():
    ci = (REPO / ".ci" / "run").read_text()
    cmd = re.search(r"^(python -m pytest[^\n]*)$", ci, re.M).group(1)
    assert cmd in (REPO / "README.md").read_text()
