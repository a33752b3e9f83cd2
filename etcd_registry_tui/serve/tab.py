"""One browser tab's dashboard process, which always ends with its tab.

textual-serve's ``AppService`` starts the process; this one starts it in a process group of
its own, asks Linux to end it if ``serve`` dies (``PR_SET_PDEATHSIG``), and ends it in
steps: the dashboard's own quit, then SIGTERM, then SIGKILL to the whole group, each with a
timeout. A browser that went away mid-output (the socket raises ``ConnectionError``) no
longer keeps its dashboard running. A tab that serve ends before its dashboard has started
(serve shutting down, a frozen browser) is not logged as "Application failed to start".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from textual_serve.app_service import AppService

from ..registry.etcd.aio import within

#: What textual-serve's ``AppService.run`` logs when the process's output ends before its
#: start-up line: true of a dashboard that failed, false of one serve ended while it started.
FAILED_TO_START = "Application failed to start"

#: The tab whose ``run`` the current task is (textual-serve logs from inside it).
_running: contextvars.ContextVar[TabService | None] = contextvars.ContextVar(
    "etcd_registry_tui_tab", default=None
)


class EndedByServe(logging.Filter):
    """Drops textual-serve's "Application failed to start" when serve itself ended that
    tab (it asked the process to quit before it printed its start-up line); a dashboard
    that really fails to start is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        tab = _running.get()
        return not (tab is not None and tab.ending and record.getMessage() == FAILED_TO_START)


def quiet_ended_tabs(logger: logging.Logger | None = None) -> None:
    """Install :class:`EndedByServe` on textual-serve's logger (once)."""
    target = logger or logging.getLogger("textual-serve")
    if not any(isinstance(f, EndedByServe) for f in target.filters):
        target.addFilter(EndedByServe())


#: How long the dashboard gets to quit by itself, then to answer SIGTERM.
QUIT_GRACE_S = 5.0
TERM_GRACE_S = 3.0


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the tab's process when ``serve`` goes away.

    ``serve`` itself holds no gRPC channel, so a fork with a preexec_fn is safe here.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # in the forked child: keep it tiny
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class TabService(AppService):
    """An ``AppService`` whose process is always ended, and which tells its socket when
    the process is gone.

    It overrides textual-serve's private ``_open_app_process`` and uses its private
    ``_build_environment``, ``_process``, ``_stdin``, ``_task`` and ``_download_manager``
    (tests/unit/test_private_apis.py checks each one).
    """

    def __init__(self, command: str, **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self.gone = asyncio.Event()
        #: serve asked this tab to end (its process ending is not a failure)
        self.ending = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,  # its own process group, off the terminal's ^C
            preexec_fn=_pdeathsig_preexec(),
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def on_data(self, payload: bytes) -> None:
        # The browser may be gone mid-output: that ends the tab, it does not escape.
        try:
            await super().on_data(payload)
        except (ConnectionError, RuntimeError):
            self.gone.set()

    async def run(self) -> None:
        _running.set(self)  # this task's own context: what EndedByServe reads
        try:
            await super().run()
        finally:
            self.gone.set()  # the process's output ended: the socket has nothing to show

    def _signal_group(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def kill_now(self) -> None:
        """SIGKILL the tab's process group (serve is exiting)."""
        self.ending = True
        self._signal_group(signal.SIGKILL)

    async def end(self, quit_grace: float = QUIT_GRACE_S, term_grace: float = TERM_GRACE_S) -> None:
        """End the process: quit, then SIGTERM, then SIGKILL its group; never raises."""
        self.ending = True
        process = self._process
        with contextlib.suppress(Exception):
            await within(
                self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id),
                1.0,
            )
        if process is not None:
            with contextlib.suppress(Exception):
                await within(self.send_meta({"type": "quit"}), 1.0)
            for sig, grace in ((None, quit_grace), (signal.SIGTERM, term_grace)):
                if sig is not None:
                    self._signal_group(sig)
                with contextlib.suppress(asyncio.TimeoutError):
                    await within(process.wait(), grace)
                    break
            else:
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(asyncio.TimeoutError):
                    await within(process.wait(), 5.0)
            # whatever else its group started goes with it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await within(task, 2.0)
