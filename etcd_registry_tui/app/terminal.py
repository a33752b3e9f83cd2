"""The dashboard and its terminal: signals, hangups, ^Z, and where internal errors go.

A part of :class:`~etcd_registry_tui.app.RegistryApp`: :class:`Terminal` owns the signal
handlers it installed and the crash log; the app routes its Textual hooks here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from textual.app import App

from ..messages import TaskFailed
from ..registry.log_entries import LogEntry, LogKind
from ..registry.supervisor import TaskFailure
from ..widgets.event_log import EventLog
from ..widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from . import RegistryApp

#: This process's crash log, made on first use.
_crash_log: Path | None = None


def _private_dir(path: Path) -> bool:
    """``path`` is (now) a real directory of ours that only we can enter."""
    with contextlib.suppress(OSError):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False  # a symlink or another user's directory: not ours to write into
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            path.chmod(0o700)
        except OSError:
            return False
    return True


def _crash_log_dirs() -> list[Path]:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return [
        Path(state) / "etcd-registry-tui",
        Path(tempfile.gettempdir()) / f"etcd-registry-tui-{os.getuid()}",
    ]


def crash_log_path() -> Path:
    """Where tracebacks of internal errors go (the terminal gets one line).

    Made on first use, ``O_EXCL`` and 0600 under a random name, in a per-user 0700 directory
    ($XDG_STATE_HOME/etcd-registry-tui, else a private etcd-registry-tui-UID in the temp
    directory): never a predictable world-readable file in /tmp. If neither directory is
    safe, the path returned is not created and writing to it fails (callers suppress that).
    """
    global _crash_log
    if _crash_log is not None:
        return _crash_log
    stamp = time.strftime("%Y%m%d-%H%M%S")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    directories = _crash_log_dirs()
    for directory in directories:
        if not _private_dir(directory):
            continue
        path = directory / f"crash-{stamp}-{os.getpid()}-{secrets.token_hex(6)}.log"
        try:
            os.close(os.open(path, flags, 0o600))
        except OSError:
            continue
        _crash_log = path
        return path
    return directories[0] / f"crash-{stamp}-{os.getpid()}-unwritable.log"


class Terminal:
    """Signals (SIGTERM quits, SIGHUP cleans up silently), the terminal given back after a
    hangup, a full repaint after ^Z, and the crash log (tracebacks of supervised tasks and
    of internal errors go there, one line to the screen).

    ``restore_terminal`` puts the terminal back as a normal exit would (the app's, as it
    knows Textual's driver)."""

    def __init__(self, app: RegistryApp, restore_terminal: Callable[[], None]) -> None:
        self._app = app
        self._restore_terminal = restore_terminal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handlers: dict[int, Any] = {}

    # -- signals ---------------------------------------------------------------------
    def install(self) -> None:
        """On mount: SIGTERM and SIGHUP come here, ^Z's resume repaints."""
        self._app.app_resume_signal.subscribe(self._app, self._redraw_after_resume)
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError):  # only possible in the main thread
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        """On unmount: the handlers that were there before :meth:`install`."""
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)

    def _on_signal(self, signum: int, _frame: object) -> None:
        """SIGTERM: quit as with ``q``. SIGHUP (the terminal is gone): clean up without
        drawing anything more. Either way a watchdog ends the process if the cleanup
        cannot finish, e.g. when Textual blocks writing to a terminal that vanished.

        A plain signal handler rather than the event loop's: it still runs when the
        main thread is blocked outside the loop.
        """
        grace = 10.0 if signum == signal.SIGTERM else 5.0
        watchdog = threading.Timer(grace, os._exit, (128 + signum,))
        watchdog.daemon = True
        watchdog.start()
        handler = self._quit_on_signal if signum == signal.SIGTERM else self._hangup
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self._loop.call_soon_threadsafe(handler)

    def _quit_on_signal(self) -> None:
        self._app.run_worker(self._app.action_quit(), name="quit", exit_on_error=False)

    def _hangup(self) -> None:
        async def leave() -> None:
            await self._app.shutdown_session()
            self._restore_terminal()
            os._exit(129)

        self._app.run_worker(leave(), name="hangup", exit_on_error=False)

    def _redraw_after_resume(self, _app: App[int]) -> None:
        # Back from ^Z (`fg`): the driver re-entered the alternate screen, which the
        # terminal cleared; only a full repaint brings the dashboard back.
        self._app.refresh(repaint=True, layout=True)

    # -- where errors go -------------------------------------------------------------
    def report_task_failure(self, failure: TaskFailure) -> None:
        """A supervised task died (it restarts by itself): the traceback goes to the
        crash log, one line to the screen (see :meth:`show_task_failure`)."""
        with contextlib.suppress(OSError), crash_log_path().open("a") as log:
            log.write(f"--- {failure.summary}\n")
            log.write("".join(traceback.format_exception(failure.error)))
        self._app.post_message(TaskFailed(failure))

    def show_task_failure(self, failure: TaskFailure) -> None:
        if not self._app.is_running:
            return
        text = f"{failure.summary} (details in {crash_log_path()})"
        self._app.query_one(EventLog).add([LogEntry(LogKind.ERROR, "", text)])
        self._app.query_one(StatusBar).note_error(failure.summary)

    def write_error_renderables(self, renderables: Iterable[object]) -> None:
        """An internal error: the traceback goes to a file, the terminal gets one line."""
        path = crash_log_path()
        with contextlib.suppress(OSError), path.open("a") as log:
            console = Console(file=log, width=120, color_system=None)
            for renderable in renderables:
                console.print(renderable)
        print(
            f"etcd-registry-tui: error: the dashboard stopped on an internal error;"
            f" details in {path}",
            file=sys.stderr,
        )
