"""Quick runs of the benchmark scripts: they must work and print their figures.

No wall-clock assertions here; the figures are for people to read.
"""

from __future__ import annotations

from support.bench import run_bench


def test_ui_tree_bench_quick() -> None:
    result = run_bench("ui_tree_bench.py", "--quick", timeout=300)
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
