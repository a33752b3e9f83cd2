"""Quick runs of the benchmark scripts: they must work and print their figures.

No wall-clock assertions here; the figures are for people to read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ui_tree_bench_quick() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui_tree_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for figure in (
        "set_state to first full frame",
        "single change apply",
        "median",
        "p99",
        "visible tick",
        "deletes: apply",
    ):
        assert figure in out, out
    assert " ms" in out
