"""Shared fixtures: real etcd processes (never mocks) and an etcdctl driver; the kinds of test.

The tests are grouped by kind, one directory each, and each directory's tests carry its marker
(applied here, by directory): ``./dev test -m etcd`` runs one kind, ``-m "not e2e"`` all but one.

    unit/    no etcd, no app: the model, parsers, schedules on a simulated clock, static checks
    etcd/    real etcd processes: the data layer, registration, elections, history, the CLI
    app/     the dashboard under Textual's Pilot, and its SVG snapshots (app/__snapshots__/)
    e2e/     whole processes: a pty, ``serve`` in a browser, the demo, rootless, screenshots
    bench/   the benchmarks' quick runs (they must work and print every figure)
    support/ the shared helpers (``from support.helpers import eventually``; ``tests`` is on
             pythonpath, see pyproject.toml): etcdctl (the etcdctl driver, finding etcd),
             helpers, tcp_proxy, pty_helpers, browser_helpers, cluster_helpers, renewals, bench

Fixtures
    etcd            a started EmbeddedEtcd (function scope), cleaned up afterwards
    etcd_cluster    a started 3-member EmbeddedCluster (function scope)
    etcdctl         Etcdctl bound to the ``etcd`` fixture
    cluster_etcdctl Etcdctl bound to all endpoints of ``etcd_cluster``
    make_etcdctl    factory: make_etcdctl(endpoints) -> Etcdctl

Without an etcd binary these fixtures skip, unless the CI environment variable is set: then a
missing etcd is an error, so CI can never go green by skipping everything.

``--soak`` enables tests marked ``soak``.

``./dev test`` runs the suite under pytest-xdist (``-n 3 --dist loadfile
--no-loadscope-reorder``: the slowest files first, see ``SLOWEST_FIRST``): each test file
runs whole in one worker process, so a module-scoped fixture is built once and a file's tests
never race each other. Across workers
nothing is shared: every etcd takes free 127.0.0.1 ports (and retries on new ones if another
process took them first), temporary directories are per worker (``tmp_path``), the profiles
and state directories below are per test, the one shared cache (test_rootless's wheel) is
filled by an atomic rename, and a psutil scan looks only for processes naming its own test's
directory or endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support.etcdctl import Etcdctl, require_etcd, require_etcdctl

from etcd_registry_tui.demo.embedded import EmbeddedCluster, EmbeddedEtcd

TESTS = Path(__file__).resolve().parent
#: Directory -> marker (registered in pyproject.toml).
KINDS = {"unit": "unit", "etcd": "etcd", "app": "app", "e2e": "e2e", "bench": "bench"}

# --------------------------------------------------------------------------------------------
# --soak, and the kinds


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak", action="store_true", default=False, help="also run tests marked soak (slow)"
    )


def kind_of(path: Path) -> str | None:
    """The kind of the test file at ``path``: its directory under tests/ (None elsewhere)."""
    try:
        top = Path(path).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return KINDS.get(top)


#: Whole files, slowest first: under xdist a file runs whole on one worker, and a slow file
#: that starts last is the end of the run for everyone else. These start first; then the
#: other files by kind (``ORDER``), the many short unit files last to fill the gaps. (``./dev
#: test`` passes ``--no-loadscope-reorder``: xdist would otherwise start the files with the
#: most tests first, and these have one or two tests each.)
SLOWEST_FIRST = (  # by the --durations of a whole run (-n 2, a loaded machine), longest first
    "app/test_hostile.py",
    "e2e/test_serve_browser.py",
    "bench/test_bench_app.py",
    "etcd/test_cli_inputs.py",
    "e2e/test_rootless.py",
    "etcd/test_history_complete.py",
    "etcd/test_go_clients.py",  # the Go peer's build: about a minute with an empty Go cache
    "e2e/test_serve_attack.py",
    "bench/test_bench_registry.py",
    "etcd/test_cli_history.py",
    "bench/test_bench_scale.py",
    "bench/test_bench_history.py",
    "e2e/test_screenshots_script.py",
    "etcd/test_connection.py",
    "app/test_screens.py",
    "app/test_load_lag.py",
    "etcd/test_profiles.py",
    "e2e/test_demo.py",
    "bench/test_bench_quick.py",
)
ORDER = ("e2e", "bench", "etcd", "app", "unit")


def run_order(path: Path) -> tuple[int, int]:
    """Where the file at ``path`` comes in the run (a sort key: smaller first)."""
    try:
        name = Path(path).resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return len(SLOWEST_FIRST), len(ORDER)
    if name in SLOWEST_FIRST:
        return SLOWEST_FIRST.index(name), 0
    kind = kind_of(path)
    return len(SLOWEST_FIRST), ORDER.index(kind) if kind in ORDER else len(ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = kind_of(item.path)
        if kind is not None:
            item.add_marker(kind)
    # A stable sort by file: each file's tests stay together and in their order.
    items.sort(key=lambda item: run_order(item.path))
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def etcd() -> Iterator[EmbeddedEtcd]:
    require_etcd()
    server = EmbeddedEtcd(fast_election=True)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def etcd_cluster() -> Iterator[EmbeddedCluster]:
    require_etcd()
    cluster = EmbeddedCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def make_etcdctl() -> Callable[[str | Sequence[str]], Etcdctl]:
    binary = require_etcdctl()

    def make(endpoints: str | Sequence[str]) -> Etcdctl:
        return Etcdctl(endpoints, binary=binary)

    return make


@pytest.fixture
def etcdctl(etcd: EmbeddedEtcd, make_etcdctl: Callable[[str | Sequence[str]], Etcdctl]) -> Etcdctl:
    return make_etcdctl(etcd.endpoint)


@pytest.fixture
def cluster_etcdctl(
    etcd_cluster: EmbeddedCluster, make_etcdctl: Callable[[str | Sequence[str]], Etcdctl]
) -> Etcdctl:
    return make_etcdctl(etcd_cluster.endpoints)


@pytest.fixture(autouse=True)
def _no_user_profiles(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the profiles file of whoever runs the tests, nor writes crash logs into
    their state directory (child processes neither)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.delenv("ETCD_REGISTRY_TUI_PROFILE", raising=False)


@pytest.fixture(scope="session")
def go_peer() -> Path:
    """The built Go peer (support/go_peers.py): real clientv3, endpoints manager, resolver."""
    from support.go_peers import build_peer

    return build_peer()
