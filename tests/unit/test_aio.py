"""``within``: a timeout that never loses a cancellation (Python 3.11's ``wait_for`` can).

The demo fleet's test hung about one run in ten on etcd 3.5: the election's own-key watch
was cancelled just as a stream read completed, ``wait_for`` returned the response, the
watch loop went on reading, and the ``gather`` waiting for it never returned.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from etcd_registry_tui.registry.etcd.aio import within

PACKAGE = Path(__file__).resolve().parents[2] / "etcd_registry_tui"


async def _cancel_as_it_completes(waiting_with) -> object:  # type: ignore[no-untyped-def]
    """Cancel a task in the same loop step in which what it awaits completes."""
    future = asyncio.get_running_loop().create_future()

    async def waiter() -> object:
        return await waiting_with(future, 10)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the task now waits
    future.set_result("answer")
    task.cancel()
    return await task


async def test_a_cancellation_that_races_a_result_is_not_lost() -> None:
    with pytest.raises(asyncio.CancelledError):
        await _cancel_as_it_completes(within)


async def test_within_times_out_and_passes_results_and_errors_through() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(5), 0.05)
    assert await within(asyncio.sleep(0, "done"), 1) == "done"
    assert await within(asyncio.sleep(0, "no limit"), None) == "no limit"

    async def fails() -> None:
        raise ValueError("inner")

    with pytest.raises(ValueError, match="inner"):
        await within(fails(), 1)


async def test_a_loop_stops_when_cancelled_however_its_waits_end() -> None:
    """A loop like the tracker's (wait for a wake-up or a timeout, repeat) ends when it is
    cancelled even if the wake-up lands in the same step."""
    wake = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            wake.clear()
            try:
                await within(wake.wait(), 10)
            except TimeoutError:
                pass

    task = asyncio.create_task(loop())
    for _ in range(20):
        await asyncio.sleep(0)
        wake.set()
    await asyncio.sleep(0)
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done and task.cancelled(), f"the loop went on after its cancel ({rounds} rounds)"


def test_the_package_never_uses_asyncio_wait_for() -> None:
    """Every timed wait in the package goes through ``within``."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "wait_for":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
