"""Probes in the dashboard, on a real etcd, against loopback servers the test starts."""

from __future__ import annotations

import json
from typing import Any

from test_app_actions import SIZE, text_of, tree_text, until
from test_probes import closed_port, http_server, silent_server
from textual.widgets import Label

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.probes import ProbeOptions
from etcd_registry_tui.screens import InspectScreen


def put(etcdctl: Any, instance_id: str, address: str | None, lease: int) -> str:
    key = f"/services/Orders/{instance_id}"
    value: dict[str, Any] = {"Id": instance_id, "Name": "Orders"}
    if address is not None:
        value["Address"] = address
    etcdctl.put(key, json.dumps(value), lease=lease)
    return key


async def test_p_probes_every_address_marks_the_tree_and_the_inspect_view(etcd, etcdctl):
    lease = etcdctl.lease_grant(300)  # alive: only a probe can tell these apart
    async with http_server() as up_url, silent_server() as silent:
        with closed_port() as refused:
            put(etcdctl, "a-up", up_url, lease)
            put(etcdctl, "b-refused", f"http://127.0.0.1:{refused}", lease)
            put(etcdctl, "c-silent", f"127.0.0.1:{silent}/x", lease)  # no port: "no address"
            put(etcdctl, "d-hung", f"http://127.0.0.1:{silent}", lease)
            put(etcdctl, "e-none", None, lease)
            app = RegistryApp(ConnectionConfig(endpoints=(etcd.endpoint,)))
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.session.status.state is ConnState.LIVE)
                await until(pilot, lambda: "e-none" in tree_text(app))
                assert not app.probing and "✓" not in tree_text(app)  # off by default
                app.prober.timeout = 30.0  # d-hung stays in flight while the watch goes on
                await pilot.press("P")
                assert app.probing

                def probed() -> bool:  # the probes run at once, in no particular order
                    text = tree_text(app)
                    return "✗ refused" in text and "✓ " in text and "? no address" in text

                await until(pilot, probed, message=lambda: tree_text(app))
                lines = {
                    line.split()[0]: line for line in tree_text(app).splitlines() if line.strip()
                }
                assert "✓ " in lines["a-up"] and " ms" in lines["a-up"]
                assert "? no address" in lines["e-none"]
                # A probe waiting on a hung server holds up neither the watch nor the screen.
                assert app.prober.in_flight >= 1
                put(etcdctl, "f-new", up_url, lease)
                await until(pilot, lambda: "f-new" in tree_text(app))
                assert app.prober.in_flight >= 1, "the hung probe is still waiting"
                await until(
                    pilot,
                    lambda: "✓" in next(r for r in tree_text(app).splitlines() if "f-new" in r),
                )
                # Off and on again with a short timeout: the hung one now times out.
                await pilot.press("P")
                app.prober.timeout = 0.5
                await pilot.press("P")
                await until(pilot, lambda: "✗ timeout" in tree_text(app), timeout=40)
                service = tree_text(app).splitlines()[0]
                assert "✗ 2 unreachable" in service, service

                app.registry_tree.select_key(b"/services/Orders/b-refused")
                await pilot.press("i")
                await until(pilot, lambda: isinstance(app.screen, InspectScreen))
                probe_line = " ".join(text_of(app.screen.query_one("#meta-probe", Label)).split())
                assert "✗ refused" in probe_line and " at " in probe_line, probe_line
                await pilot.press("escape")

                await pilot.press("P")  # off: marks go, probes stop
                await until(pilot, lambda: "✓" not in tree_text(app) and "✗" not in tree_text(app))
                assert app.prober.results == {}


async def test_probe_option_turns_probes_on_from_the_start(etcd, etcdctl):
    lease = etcdctl.lease_grant(300)
    with closed_port() as refused:
        put(etcdctl, "a", f"127.0.0.1:{refused}", lease)
        app = RegistryApp(
            ConnectionConfig(endpoints=(etcd.endpoint,)), probes=ProbeOptions(enabled=True)
        )
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot, lambda: "✗ refused" in tree_text(app), message=lambda: tree_text(app)
            )
            assert "· probing" in app.sub_title


def test_probe_comes_from_the_command_line_or_a_profile(tmp_path, monkeypatch):
    from etcd_registry_tui.cli.main import build_parser, probe_options, resolve_config

    config = tmp_path / "etcd-registry-tui" / "config.toml"
    config.parent.mkdir()
    config.write_text("[profiles.watch]\nprobe = true\n[profiles.quiet]\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    parser = build_parser()

    def options(*argv: str) -> ProbeOptions:
        args = parser.parse_args(list(argv))
        return probe_options(args, resolve_config(args)[1])

    assert options("--profile", "watch").enabled
    assert not options("--profile", "quiet").enabled
    quiet = options("--profile", "quiet", "--probe", "--probe-path", "/health")
    assert quiet.enabled and quiet.path == "/health" and quiet.concurrency == 32
    assert options("--probe-concurrency", "4").concurrency == 4
