"""The benchmarks' quick runs, as the tests in tests/bench/ start them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.helpers import slack

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python bench/SCRIPT ARGS`` from the repository's root, stdout and stderr captured as
    text; the caller checks the exit code (and prints the output when it is not 0)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=slack(timeout),
        cwd=ROOT,
    )
