"""The README stays a five-minute read and the docs site builds offline, strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_is_short_and_holds_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/bootstrap.sh && .venv/bin/python -m pytest -q" in readme
    assert "bash scripts/bootstrap.sh && .venv/bin/python -m pytest -q" in ci
    assert "dvc repro" in readme


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    """Every page in the nav, every link resolved: a broken link fails the build."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "stages" / "train.html").is_file()
