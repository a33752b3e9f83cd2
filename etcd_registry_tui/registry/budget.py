"""How much memory a prefix would take in the dashboard, and whether that fits.

Held per key: the instance (about :data:`PER_INSTANCE_BYTES` with its indexes in the
state and the tree) plus its key and value bytes. Measured with
``bench/scale_bench.py`` (100,000 instances of ~170-byte values: see the README).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

#: What one instance costs besides its key and value bytes (objects, indexes, tree rows).
PER_INSTANCE_BYTES = 900
#: Never more than this by default, whatever the machine has.
DEFAULT_BUDGET_CAP_MB = 4096.0


def default_budget_mb() -> float:
    """Half the machine's memory, at most :data:`DEFAULT_BUDGET_CAP_MB`."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return DEFAULT_BUDGET_CAP_MB
    return min(DEFAULT_BUDGET_CAP_MB, total / 2)


def estimate_mb(sample: Sequence[Any], total: int) -> float:
    """Memory for ``total`` keys like those in ``sample`` (key-values of a first page)."""
    if not sample or total <= 0:
        return 0.0
    raw = sum(len(kv.key) * 2 + len(kv.value) for kv in sample) / len(sample)
    return total * (PER_INSTANCE_BYTES + raw) / 2**20


def too_large_message(
    prefix: str, total: int, needed_mb: float, budget_mb: float, first: str
) -> str:
    """What the dashboard says instead of loading; ``first`` is a narrower prefix to try."""
    return (
        f"{total:,} keys under {prefix} would need about {needed_mb:,.0f} MB, over the"
        f" memory budget of {budget_mb:,.0f} MB: not loaded. Narrow --prefix"
        f" (e.g. --prefix {first}) or raise --max-memory"
    )
