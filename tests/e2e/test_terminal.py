"""The dashboard and the terminal it runs in: job control and hangups, on a real pty.

The dashboard points at a port where nothing listens: it draws its screen (the tree
says etcd is out of reach) without needing an etcd, which is all these tests look at.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator

import pytest
from support.pty_helpers import drain, read_until

CLI = [sys.executable, "-m", "etcd_registry_tui"]
ROWS, COLS = 30, 100

ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"
MOUSE_OFF = (b"\x1b[?1000l", b"\x1b[?1003l", b"\x1b[?1006l")
CURSOR_SHOWN = b"\x1b[?25h"


class Terminal:
    """A dashboard on a pseudo-terminal: what it wrote, and its process."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self.status: int | None = None

    def read_until(self, *needles: bytes, timeout: float = 30) -> bytes:
        """Read until every one of ``needles`` has been written; return all bytes read."""
        return read_until(self.fd, *needles, timeout=timeout)

    def drain(self, seconds: float) -> bytes:
        return drain(self.fd, seconds)

    def wait_stopped(self, timeout: float = 20) -> bytes:
        """Drain the terminal until the process is stopped (job control); return the bytes."""
        seen = b""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG | os.WUNTRACED)
            if pid and os.WIFSTOPPED(status):
                return seen + self.drain(0.2)
            assert not pid, f"the dashboard exited instead of stopping ({status})"
            assert time.monotonic() < deadline, "the dashboard did not stop"
            seen += self.drain(0.1)

    def wait_exit(self, timeout: float = 20) -> bytes:
        """Drain the terminal until the process exits; return the bytes."""
        seen = b""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            assert time.monotonic() < deadline, "the dashboard did not exit"
            seen += self.drain(0.1)
        return seen + self.drain(0.2)


@pytest.fixture
def dashboard() -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the dashboard
        os.execvpe(sys.executable, [*CLI, "--endpoints", "127.0.0.1:1"], env)
    term = Terminal(pid, fd)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        # The tree's title, its empty text and the status line: the screen is drawn;
        # then let it settle, so that whatever comes later is a reaction to the test.
        term.read_until(b"Services", b"out of reach", b"127.0.0.1:1")
        term.drain(1.0)
        yield term
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def _restores_the_terminal(written: bytes) -> None:
    assert ALT_SCREEN_OFF in written, written[-400:]
    assert written.rfind(ALT_SCREEN_OFF) > written.rfind(ALT_SCREEN_ON)
    for sequence in (*MOUSE_OFF, CURSOR_SHOWN):
        assert sequence in written, (sequence, written[-400:])


@pytest.mark.parametrize("how", ["ctrl-z key", "SIGTSTP"])
def test_suspend_gives_the_shell_a_sane_terminal_and_fg_redraws_everything(dashboard, how):
    if how == "ctrl-z key":
        os.write(dashboard.fd, b"\x1a")  # raw mode: a key, not a signal from the tty
    else:
        os.kill(dashboard.pid, signal.SIGTSTP)  # e.g. `kill -TSTP`
    _restores_the_terminal(dashboard.wait_stopped())

    os.kill(dashboard.pid, signal.SIGCONT)  # what `fg` does
    # The whole screen, not just what changed since: tree, footer, status line.
    dashboard.read_until(ALT_SCREEN_ON, b"Services", b"out of reach", b"Quit", b"127.0.0.1:1")

    os.write(dashboard.fd, b"q")  # and it still takes keys
    dashboard.wait_exit()
    assert os.waitstatus_to_exitcode(dashboard.status) == 0


def test_sighup_leaves_a_surviving_terminal_usable(dashboard):
    os.kill(dashboard.pid, signal.SIGHUP)
    written = dashboard.wait_exit()
    assert os.waitstatus_to_exitcode(dashboard.status) == 129  # 128 + SIGHUP
    _restores_the_terminal(written)
    lflag = termios.tcgetattr(dashboard.fd)[3]  # the pty's modes, shared by both ends
    assert lflag & termios.ECHO and lflag & termios.ICANON, "still in raw mode"
