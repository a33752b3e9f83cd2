"""Supervision of long-lived tasks: no death goes unreported, every death is retried.

A supervised task is a coroutine factory. When the coroutine ends with an exception,
or with a ``CancelledError`` nobody asked for (a gRPC stream cancelled because its
channel was closed under it), the supervisor logs the traceback, reports a
:class:`TaskFailure` and starts a fresh coroutine after a backoff. A coroutine that
returns normally is done. Cancelling the supervising task (our own cancellation)
cancels the coroutine and ends supervision quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .etcd.backoff import Backoff

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[object]]
FailureCallback = Callable[["TaskFailure"], None]

#: A task that ran this long before failing counts as having been healthy.
HEALTHY_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """A supervised task died; it is restarted after ``retry_in`` seconds."""

    name: str
    error: BaseException
    retry_in: float
    failures: int

    @property
    def summary(self) -> str:
        """One line: what died, why, and what happens next."""
        error = self.error
        if isinstance(error, asyncio.CancelledError):
            why = "cancelled from outside (its connection was closed under it)"
        else:
            text = str(error).strip().splitlines()
            why = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
        return f"{self.name} stopped: {why}; restarting in {self.retry_in:.1f}s"


def _ignore(_: TaskFailure) -> None:
    return None


class Supervisor:
    """Runs and restarts named tasks; reports each death through ``on_failure``."""

    def __init__(
        self,
        on_failure: FailureCallback = _ignore,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.on_failure = on_failure
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.failures: list[TaskFailure] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, name: str, factory: Factory, wanted: Callable[[], bool] = lambda: True
    ) -> asyncio.Task[None]:
        """Supervise ``factory`` in a new task (see :meth:`run`); :meth:`stop` ends it."""
        task = asyncio.create_task(self.run(name, factory, wanted), name=f"supervise {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(
        self, name: str, factory: Factory, wanted: Callable[[], bool] = lambda: True
    ) -> None:
        """Run ``factory()`` until it returns; restart it whenever it dies.

        ``wanted()`` is asked after each death: False means it was stopped on purpose
        by its owner (e.g. a keep-alive stopped by revoking its lease), so it stays
        stopped and nothing is reported.
        """
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            if not wanted():  # let go before it (re)started: e.g. revoked at once
                return
            started = loop.time()
            task = asyncio.ensure_future(factory())
            try:
                # wait() rather than await: a task started elsewhere (a registration's
                # own keep-alive task) is observed, not cancelled, if we are cancelled.
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.wait({task})
                raise
            if not task.cancelled() and task.exception() is None:
                return
            if not wanted():
                return
            error: BaseException = (
                asyncio.CancelledError() if task.cancelled() else task.exception()  # type: ignore[assignment]
            )
            if loop.time() - started >= HEALTHY_AFTER:
                backoff.succeeded()
            delay = backoff.failed()
            failure = TaskFailure(name, error, delay, backoff.attempt)
            self.failures.append(failure)
            del self.failures[:-100]
            log.error("%s", failure.summary, exc_info=error)
            try:
                self.on_failure(failure)
            except Exception:  # a broken reporter must not stop the supervision
                log.exception("reporting the failure of %s failed", name)
            await asyncio.sleep(delay)

    async def run_all(self, *named: tuple[str, Factory]) -> None:
        """Supervise each ``(name, factory)`` until cancelled; they end with this call."""
        tasks = [self.start(name, factory) for name, factory in named]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every task started with :meth:`start` and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
