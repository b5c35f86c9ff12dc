"""Run Python in a fresh process with the repository importable: for tests of what a process
imports or loads (lazy modules, docstrings dropped at start-up), which one test process that
already imported everything cannot show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])


def run_python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python ARGS` with PYTHONPATH at the repository, its output captured as text; the caller
    checks the return code."""
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
