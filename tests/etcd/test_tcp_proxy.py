"""The tests' loopback TCP proxy does what the partition tests rely on, checked with etcdctl
on a real etcd: it forwards, a freeze makes requests hang (not fail), a heal lets a new
request through, and a refusal makes requests fail fast."""

from __future__ import annotations

import subprocess
import time

from support.etcdctl import require_etcdctl
from support.tcp_proxy import tcp_proxy

from etcd_registry_tui.demo.embedded import EmbeddedEtcd


def _get(endpoint: str, timeout: str = "2s") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_etcdctl(),
            "--endpoints",
            endpoint,
            "--command-timeout",
            timeout,
            "--dial-timeout",
            timeout,
            "get",
            "k",
            "--print-value-only",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )


def test_proxy_forwards_freezes_refuses_and_heals(etcd: EmbeddedEtcd) -> None:
    subprocess.run(
        [require_etcdctl(), "--endpoints", etcd.endpoint, "put", "k", "v"],
        check=True,
        capture_output=True,
        env={"ETCDCTL_API": "3"},
    )
    with tcp_proxy(etcd.client_port) as proxy:
        assert _get(proxy.endpoint).stdout.strip() == "v"

        proxy.freeze()
        started = time.monotonic()
        frozen = _get(proxy.endpoint, "1s")
        assert frozen.returncode != 0
        assert time.monotonic() - started >= 0.9  # it waited for the timeout: silence

        proxy.heal()
        assert _get(proxy.endpoint).stdout.strip() == "v"

        proxy.refuse()
        refused = _get(proxy.endpoint, "3s")
        assert refused.returncode != 0
        proxy.heal()
        assert _get(proxy.endpoint).stdout.strip() == "v"
        assert proxy.connections >= 4
