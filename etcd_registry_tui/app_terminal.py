"""The dashboard and its terminal: signals, hangups, ^Z, and where internal errors go.

A mixin of :class:`~etcd_registry_tui.app.RegistryApp` (see :mod:`.app_host`).
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
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App

from .app_host import AppHost

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


class TerminalMixin(AppHost):
    """Signals (SIGTERM quits, SIGHUP cleans up silently), the terminal given back after a
    hangup, a full repaint after ^Z, and the crash log."""

    def _install_signal_handlers(self) -> None:
        self.app_resume_signal.subscribe(self, self._redraw_after_resume)
        self._signal_loop = asyncio.get_running_loop()
        self._previous_handlers: dict[int, Any] = {}
        with contextlib.suppress(ValueError):  # only possible in the main thread
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
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
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self._signal_loop.call_soon_threadsafe(handler)

    def _quit_on_signal(self) -> None:
        self.run_worker(self.action_quit(), name="quit", exit_on_error=False)

    def _hangup(self) -> None:
        async def leave() -> None:
            await self.shutdown_session()
            self._restore_terminal()
            os._exit(129)

        self.run_worker(leave(), name="hangup", exit_on_error=False)

    def _restore_terminal(self) -> None:
        """Put the terminal back as a normal exit would: tty modes, main screen, no mouse
        reporting, cursor shown. The terminal is usually gone after a hangup, but a tmux
        pane or terminal window that survives must be usable. Blocks at most until the
        signal watchdog fires if the terminal no longer takes output."""
        driver = self._driver  # Textual's private App._driver: tests/unit/test_private_apis.py
        if driver is None:
            return
        with contextlib.suppress(Exception):
            driver.stop_application_mode()
        with contextlib.suppress(Exception):
            driver.close()  # waits until the writer thread has put everything out

    def _redraw_after_resume(self, _app: App[int]) -> None:
        # Back from ^Z (`fg`): the driver re-entered the alternate screen, which the
        # terminal cleared; only a full repaint brings the dashboard back.
        self.refresh(repaint=True, layout=True)

    # Overrides Textual's private hook, reads App._exit_renderables
    # (tests/unit/test_private_apis.py checks both)
    def _print_error_renderables(self) -> None:
        """An internal error: the traceback goes to a file, the terminal gets one line."""
        if not self._exit_renderables:
            return
        path = crash_log_path()
        with contextlib.suppress(OSError), path.open("a") as log:
            console = Console(file=log, width=120, color_system=None)
            for renderable in self._exit_renderables:
                console.print(renderable)
        self._exit_renderables.clear()
        print(
            f"etcd-registry-tui: error: the dashboard stopped on an internal error;"
            f" details in {path}",
            file=sys.stderr,
        )
