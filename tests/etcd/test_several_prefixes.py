"""``--prefix`` given more than once: one watch per prefix (a lane), one snapshot of them
all at one revision, and each lane revision-exact through cuts and compaction. etcdctl is
the witness: its ``get --prefix`` of each prefix, and its ``watch --prefix`` of each."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from support.cli_helpers import run_cli, witness_watch
from support.helpers import (
    View,
    connection,
    describe_diff,
    etcdctl_view,
    eventually,
    running_watcher,
)
from support.tcp_proxy import tcp_proxy

from etcd_registry_tui.registry.etcd.config import ConnectionConfig, watched_prefixes
from etcd_registry_tui.registry.events import ChangeBatch, ConnState
from etcd_registry_tui.registry.session import RegistrySession
from etcd_registry_tui.registry.watcher import RegistryWatcher

WALK = "/services/"
KITEX = "kitex/registry-etcd/"
PREFIXES = (WALK, KITEX)


def _kitex(port: int) -> str:
    return json.dumps({"network": "tcp", "address": f"127.0.0.1:{port}", "weight": 10, "tags": {}})


def _walk(name: str, i: int) -> str:
    return json.dumps({"Id": f"i{i}", "Name": name, "Address": f"http://127.0.0.1:{5000 + i}"})


def union_view(etcdctl: Any) -> View:
    view: View = {}
    for prefix in PREFIXES:
        view.update(etcdctl_view(etcdctl, prefix))
    return view


async def wait_equal(run: Any, etcdctl: Any, timeout: float = 20) -> None:
    seen: dict[str, View] = {}

    async def equal() -> bool:
        seen["etcd"] = await asyncio.to_thread(union_view, etcdctl)
        seen["watcher"] = run.state.as_dict()
        return seen["watcher"] == seen["etcd"]

    await eventually(
        equal,
        timeout=timeout,
        interval=0.2,
        message=lambda: describe_diff(seen.get("watcher", {}), seen.get("etcd", {})),
    )


def mark_ends(etcdctl: Any) -> dict[str, int]:
    """A last put under each prefix; the revision of each (a witness reads up to it)."""
    ends = {}
    for prefix in PREFIXES:
        etcdctl.put(f"{prefix}end/mark", _walk("end", 0))
        ends[prefix] = etcdctl.get_prefix(f"{prefix}end/mark").revision
    return ends


def shown(batches: list[ChangeBatch], prefix: str) -> list[tuple[int, str, str]]:
    """The watcher's changes under ``prefix``, in the order it reported them, as
    :func:`witness_watch` names them."""
    return [
        (c.revision, c.kind.value, c.key.decode())
        for b in batches
        if not b.snapshot
        for c in b.changes
        if c.key.startswith(prefix.encode())
    ]


def test_prefixes_under_another_are_watched_by_it() -> None:
    assert watched_prefixes(["/services/", "/services/shop/", "kitex/"]) == ("/services/", "kitex/")
    assert watched_prefixes(["/services/", "/", "/services/"]) == ("/",)
    config = ConnectionConfig(prefix="/services/", more_prefixes=("/services/", KITEX))
    assert config.prefixes == ("/services/", KITEX)


async def test_two_prefixes_one_snapshot_then_every_event_of_each_in_etcds_order(
    etcd: Any, etcdctl: Any
) -> None:
    etcdctl.put(f"{WALK}shop/i0", _walk("shop", 0))
    etcdctl.put(f"{KITEX}echo/127.0.0.1:8888", _kitex(8888))
    etcdctl.put("/elsewhere/x", "not watched")
    etcdctl.put("kitex/other/x", "not watched either")
    batches: list[ChangeBatch] = []
    async with connection(etcd.endpoint) as conn:
        async with running_watcher(conn, prefixes=PREFIXES, on_batch_list=batches) as run:
            assert len(run.watcher.lanes) == 2
            await wait_equal(run, etcdctl)
            echo = run.state.get(f"{KITEX}echo/127.0.0.1:8888".encode())
            assert echo is not None and echo.layout_name == "kitex"
            assert echo.display_address == "127.0.0.1:8888"
            shop = run.state.get(f"{WALK}shop/i0".encode())
            assert shop is not None and (shop.service, shop.instance_id) == ("shop", "i0")
            start = etcdctl.get_prefix("/").revision + 1
            for i in range(1, 25):  # interleaved: each prefix's changes between the other's
                etcdctl.put(f"{WALK}shop/i{i % 5}", _walk("shop", i))
                etcdctl.put(f"{KITEX}echo/127.0.0.1:{9000 + i % 4}", _kitex(9000 + i))
                etcdctl.put("/elsewhere/y", str(i))
                if i % 6 == 0:
                    etcdctl.del_prefix(f"{KITEX}echo/127.0.0.1:{9000 + i % 4}")
                    etcdctl.del_prefix(f"{WALK}shop/i{i % 5}")
            ends = mark_ends(etcdctl)
            end = max(ends.values())
            await wait_equal(run, etcdctl)
            for prefix in PREFIXES:
                expected = await asyncio.to_thread(
                    witness_watch, etcd.endpoint, start, ends[prefix], prefix
                )
                assert shown(batches, prefix) == expected, prefix
            assert run.watcher.resume_revision <= end


async def test_a_cut_and_a_compaction_leave_both_prefixes_equal_to_etcd(
    etcd: Any, etcdctl: Any
) -> None:
    for i in range(3):
        etcdctl.put(f"{WALK}shop/i{i}", _walk("shop", i))
        etcdctl.put(f"{KITEX}echo/127.0.0.1:{8000 + i}", _kitex(8000 + i))
    batches: list[ChangeBatch] = []
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, dial_timeout=1.0, command_timeout=2.0) as conn:
            async with running_watcher(
                conn, prefixes=PREFIXES, on_batch_list=batches, backoff_initial=0.05,
                backoff_max=0.5,
            ) as run:  # fmt: skip
                await wait_equal(run, etcdctl)
                # A cut: both lanes resume, each from its own revision; nothing lost.
                start = etcdctl.get_prefix("/").revision + 1
                proxy.cut()
                etcdctl.put(f"{KITEX}echo/127.0.0.1:8100", _kitex(8100))
                etcdctl.del_prefix(f"{WALK}shop/i0")
                ends = mark_ends(etcdctl)
                await wait_equal(run, etcdctl)
                for prefix in PREFIXES:
                    expected = await asyncio.to_thread(
                        witness_watch, etcd.endpoint, start, ends[prefix], prefix
                    )
                    assert shown(batches, prefix)[-len(expected) :] == expected, prefix
                # Cut off while both prefixes change and etcd compacts past the lanes: the
                # snapshot of both is read again, and the view is etcd's.
                proxy.refuse()
                etcdctl.put(f"{WALK}shop/i9", _walk("shop", 9))
                etcdctl.del_prefix(f"{KITEX}echo/127.0.0.1:8001")
                etcdctl.put("/elsewhere/z", "z")
                etcdctl.compact(etcdctl.get_prefix("/").revision)
                snapshots = run.watcher.snapshots_loaded
                proxy.heal()
                await wait_equal(run, etcdctl, timeout=30)
                assert run.watcher.snapshots_loaded > snapshots


def test_list_reads_every_prefix_and_history_says_it_reads_one(etcd: Any, etcdctl: Any) -> None:
    etcdctl.put(f"{WALK}shop/i0", _walk("shop", 0))
    etcdctl.put(f"{KITEX}echo/127.0.0.1:8888", _kitex(8888))
    etcdctl.put("/elsewhere/x", "x")
    both = ["--endpoints", etcd.endpoint, "--prefix", WALK, "--prefix", KITEX]
    result = run_cli("list", "--json", *both)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["prefixes"] == list(PREFIXES)
    keys = {i["key"] for s in doc["services"] for i in s["instances"]}
    assert keys == {f"{WALK}shop/i0", f"{KITEX}echo/127.0.0.1:8888"}
    for command in (["history"], ["list", "--rev", "2"]):
        result = run_cli(*command, *both)
        assert result.returncode != 0
        assert "give --prefix once" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    result = run_cli("list", "--endpoints", etcd.endpoint, "--prefix", WALK, "--prefix", "")
    assert result.returncode != 0 and "--prefix is empty" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_dashboards_history_holds_every_prefixs_past_and_live_events(
    etcd: Any, etcdctl: Any
) -> None:
    start = etcdctl.get_prefix("/").revision + 1
    for i in range(4):  # the past: read back when the session starts
        etcdctl.put(f"{WALK}shop/i{i % 2}", _walk("shop", i))
        etcdctl.put(f"{KITEX}echo/127.0.0.1:{8000 + i % 3}", _kitex(8000 + i))
        etcdctl.put("/elsewhere/x", str(i))
    etcdctl.del_prefix(f"{WALK}shop/i0")
    config = ConnectionConfig(endpoints=(etcd.endpoint,), prefix=WALK, more_prefixes=(KITEX,))
    sess = RegistrySession(config, read_only=True, history_revisions=1000)
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(15)
        await eventually(lambda: sess.history.loaded)
        etcdctl.put(f"{KITEX}echo/127.0.0.1:8100", _kitex(8100))  # and live ones
        etcdctl.del_prefix(f"{KITEX}echo/127.0.0.1:8001")
        etcdctl.put(f"{WALK}shop/i5", _walk("shop", 5))
        ends = mark_ends(etcdctl)
        await eventually(lambda: max(e.revision for e in sess.history) >= max(ends.values()))
        held = [(e.revision, e.kind.value, e.key.decode()) for e in sess.history]
        assert held == sorted(held, key=lambda e: e[0])
        for prefix in PREFIXES:
            expected = await asyncio.to_thread(
                witness_watch, etcd.endpoint, start, ends[prefix], prefix
            )
            assert [e for e in held if e[2].startswith(prefix)] == expected, prefix
        assert not [e for e in held if e[2].startswith("/elsewhere/")]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sess.shutdown()


def test_a_profile_names_several_prefixes_and_the_command_line_wins(
    etcd: Any, etcdctl: Any, tmp_path: Any
) -> None:
    etcdctl.put(f"{WALK}shop/i0", _walk("shop", 0))
    etcdctl.put(f"{KITEX}echo/127.0.0.1:8888", _kitex(8888))
    config_dir = tmp_path / "etcd-registry-tui"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(
        f'default = "dev"\n[profiles.dev]\nendpoints = ["{etcd.endpoint}"]\n'
        f'prefix = ["{WALK}", "{KITEX}"]\n'
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path)}

    def listed(*args: str) -> set[str]:
        result = run_cli("list", "--json", *args, env=env)
        assert result.returncode == 0, result.stderr
        return {i["key"] for s in json.loads(result.stdout)["services"] for i in s["instances"]}

    assert listed() == {f"{WALK}shop/i0", f"{KITEX}echo/127.0.0.1:8888"}
    assert listed("--prefix", KITEX) == {f"{KITEX}echo/127.0.0.1:8888"}
    (config_dir / "config.toml").write_text('[profiles.dev]\nprefix = ["/services/", 3]\n')
    result = run_cli("list", "--profile", "dev", env=env)
    assert (
        result.returncode != 0 and "prefix must be a string or a list of strings" in result.stderr
    )
    assert "Traceback" not in result.stderr


async def test_the_memory_budget_counts_every_prefix_and_names_the_one_over_it(
    etcd: Any, etcdctl: Any
) -> None:
    etcdctl.put("q1/svc/1", _walk("svc", 1))
    big = "x" * 1000
    for i in range(30):
        etcdctl.put(f"q2/svc/{i}", big)
    async with connection(etcd.endpoint) as conn:
        watcher = RegistryWatcher(conn, prefixes=("q1/", "qempty/", "q2/"), memory_budget_mb=0.01)
        task = asyncio.create_task(watcher.run())
        try:
            await eventually(lambda: watcher.status.state is ConnState.TOO_LARGE)
            assert "keys under q2/" in (watcher.status.error or "")
            assert len(watcher.state) < 31  # not loaded past the budget
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_several_prefixes_refused_where_one_is_read_and_bad_ones_in_one_line(
    etcd: Any, etcdctl: Any
) -> None:
    nested = ["--endpoints", etcd.endpoint, "--prefix", "a/b/", "--prefix", "a/"]
    for command in (["history"], ["list", "--rev", "1"], ["list", "--history", "5"]):
        result = run_cli(*command, *nested)  # nested: one watch, but two prefixes to split on
        assert result.returncode != 0 and "give --prefix once" in result.stderr, command
    many = [f"--prefix=p{i}/" for i in range(65)]
    result = run_cli("list", "--endpoints", etcd.endpoint, *many)
    assert result.returncode != 0 and "65 prefixes given: at most 64" in result.stderr
    bad = run_cli("list", "--endpoints", etcd.endpoint, "--prefix", "a/", "--prefix", "\udcff/")
    assert bad.returncode != 0 and "is not valid UTF-8" in bad.stderr
    for result in (bad,):
        assert "Traceback" not in result.stderr


def test_serve_hands_every_prefix_to_its_tabs_even_one_starting_with_a_dash() -> None:
    from etcd_registry_tui.serve.server import served_argv

    config = ConnectionConfig(prefix="-x/", more_prefixes=(KITEX,))
    argv = served_argv(config, read_only=True)
    assert [a for a in argv if a.startswith("--prefix")] == ["--prefix=-x/", f"--prefix={KITEX}"]


def test_a_prefix_before_the_command_joins_the_commands_own(etcd: Any, etcdctl: Any) -> None:
    etcdctl.put(f"{WALK}shop/i0", _walk("shop", 0))
    etcdctl.put(f"{KITEX}echo/127.0.0.1:8888", _kitex(8888))
    result = run_cli(
        "--prefix", WALK, "list", "--json", "--endpoints", etcd.endpoint, "--prefix", KITEX
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prefixes"] == [WALK, KITEX]


def test_one_service_name_under_two_prefixes_is_two_services(etcd: Any, etcdctl: Any) -> None:
    etcdctl.put("/prod/svc/1", _walk("svc", 1))
    etcdctl.put("/staging/svc/1", _walk("svc", 2))
    result = run_cli(
        "list", "--json", "--endpoints", etcd.endpoint, "--prefix", "/prod/", "--prefix",
        "/staging/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert sorted(len(s["instances"]) for s in services) == [1, 1], services
    text = run_cli(
        "list", "--endpoints", etcd.endpoint, "--prefix", "/prod/", "--prefix", "/staging/"
    )
    assert "/staging/" in text.stdout, text.stdout


async def test_a_prefix_etcd_refuses_is_named_and_retried_with_a_growing_delay(
    etcd: Any, etcdctl: Any
) -> None:
    from support.cluster_helpers import enable_auth

    root = enable_auth(etcdctl)
    root.run("user", "add", "u1:u1pw")
    root.run("role", "add", "p1reader")
    root.run("role", "grant-permission", "p1reader", "--prefix=true", "read", "p1/")
    root.run("user", "grant-role", "u1", "p1reader")
    root.put("p1/svc/1", _walk("svc", 1))
    async with connection(etcd.endpoint, user="u1", password="u1pw") as conn:
        watcher = RegistryWatcher(
            conn, prefixes=("p1/", "p2/"), backoff_initial=0.05, backoff_max=0.8
        )
        statuses: list[Any] = []
        watcher.on_status = statuses.append
        task = asyncio.create_task(watcher.run())
        try:
            await eventually(lambda: watcher.reconnects >= 6, timeout=30)
            delays = [s.retry_in for s in statuses if s.retry_in]
            assert max(delays) >= 0.4, delays
            errors = [s.error for s in statuses if s.error]
            assert errors and all(e.startswith("under p2/: ") for e in errors), errors[-3:]
            assert "denied" in errors[-1]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
