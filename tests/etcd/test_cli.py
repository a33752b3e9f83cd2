"""The headless commands against a real etcd, checked with etcdctl."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest
from support.cli_helpers import CLI, run_cli

from etcd_registry_tui.cli.main import build_parser, config_from_args

__all__ = ["CLI", "run_cli"]  # other tests import them from here


def test_list_json_shows_what_etcdctl_wrote(etcd, etcdctl):
    granted_at = time.monotonic()
    lease = etcdctl.lease_grant(60)
    etcdctl.put(
        "/services/OrderShippingService/a1",
        json.dumps(
            {"Id": "a1", "Name": "OrderShippingService", "Address": "http://localhost:5000"}
        ),
        lease=lease,
    )
    etcdctl.put("/services/PaymentService/p1", '{"id": "p1", "address": "http://localhost:6000"}')
    etcdctl.put("/services/Broken/b1", "not json at all")

    result = run_cli("list", "--json", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    services = {s["name"]: s["instances"] for s in doc["services"]}
    assert set(services) == {"OrderShippingService", "PaymentService", "Broken"}
    order = services["OrderShippingService"][0]
    assert order["address"] == "http://localhost:5000"
    assert order["lease"] == format(lease, "016x")  # as etcdctl writes it
    assert order["granted_ttl"] == 60
    # The countdown is etcd's: what is left of 60 s since the grant (however slow the CLI was).
    assert 60 - (time.monotonic() - granted_at) - 1.5 <= order["ttl"] <= 60
    payment = services["PaymentService"][0]
    assert payment["lease"] is None and payment["address"] == "http://localhost:6000"
    broken = services["Broken"][0]
    assert "not JSON" in broken["error"] and broken["value"] == "not json at all"


def test_list_text_is_humanized_and_reads_etcdctl_endpoints_variable(etcd, etcdctl):
    lease = etcdctl.lease_grant(45)
    etcdctl.put("/services/Svc/i-123456789", '{"Address": "http://localhost:1"}', lease=lease)
    result = run_cli("list", env={"ETCDCTL_ENDPOINTS": etcd.endpoint})
    assert result.returncode == 0, result.stderr
    assert "Svc  (1 instance)" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "i-123456" in line)
    assert "http://localhost:1" in line
    assert "seconds" in line  # humanize: "44 seconds"


def test_list_on_empty_registry(etcd):
    result = run_cli("list", "--endpoints", f"http://{etcd.endpoint}")
    assert result.returncode == 0
    assert "No instances under /services/" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--endpoints", "127.0.0.1:1"], "cannot reach etcd at 127.0.0.1:1"),
        (["--endpoints", "127.0.0.1:notaport"], "is not a number"),
        (["--endpoints", "ftp://127.0.0.1:2379"], "only http:// and https://"),
        (["--prefix", "services"], "must end with '/'"),
        (["--dial-timeout", "soon"], "not understood"),
    ],
)
def test_bad_connection_input_is_one_line_without_traceback(args, needle):
    result = (
        run_cli("list", *args, "--dial-timeout", "2s")
        if "--dial-timeout" not in args
        else run_cli("list", *args)
    )
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_password_is_a_clear_error(etcd, etcdctl):
    etcdctl.run("user", "add", "root:secret")
    etcdctl.run("auth", "enable")
    result = run_cli("list", "--endpoints", etcd.endpoint, "--user", "root:wrong")
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr and "Traceback" not in result.stderr
    ok = run_cli("list", "--endpoints", etcd.endpoint, "--user", "root:secret")
    assert ok.returncode == 0, ok.stderr
    via_env = run_cli(
        "list", env={"ETCDCTL_ENDPOINTS": etcd.endpoint, "ETCDCTL_USER": "root:secret"}
    )
    assert via_env.returncode == 0, via_env.stderr


def test_register_keeps_alive_until_sigint_then_unregisters(etcd, etcdctl):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        [*CLI, "register", "--name", "CliService", "--address", "http://localhost:7000",
         "--ttl", "2", "--id", "cli-1", "--endpoints", etcd.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert "registered /services/CliService/cli-1" in first
        value = etcdctl.get("/services/CliService/cli-1")
        assert json.loads(value) == {
            "Id": "cli-1", "Name": "CliService", "Address": "http://localhost:7000",
        }  # fmt: skip
        time.sleep(3.5)  # longer than the TTL: only heartbeats keep it
        assert etcdctl.get("/services/CliService/cli-1") is not None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "unregistered" in out
    assert etcdctl.get("/services/CliService/cli-1") is None


def test_register_refuses_bad_name(etcd):
    result = run_cli(
        "register", "--name", "a/b", "--address", "http://x", "--endpoints", etcd.endpoint
    )
    assert result.returncode == 1
    assert "must not contain '/'" in result.stderr


def test_options_follow_etcdctl_names():
    args = build_parser().parse_args(
        ["list", "--endpoints", "http://127.0.0.1:2379,127.0.0.1:22379", "--user", "u:p",
         "--dial-timeout", "500ms", "--prefix", "/reg/"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.hosts == (("127.0.0.1", 2379), ("127.0.0.1", 22379))
    assert config.targets == ("127.0.0.1:2379", "127.0.0.1:22379")
    assert (config.user, config.password) == ("u", "p")
    assert config.dial_timeout == 0.5
    assert config.prefix == "/reg/"


def test_user_without_password_is_asked_for_it_on_a_terminal(etcd, etcdctl):
    etcdctl.run("user", "add", "root:secret")
    etcdctl.run("auth", "enable")
    no_tty = subprocess.run(
        [*CLI, "list", "--endpoints", etcd.endpoint, "--user", "root"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert no_tty.returncode == 1 and "use --user root:PASSWORD" in no_tty.stderr
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(
            sys.executable, [*CLI, "list", "--json", "--endpoints", etcd.endpoint, "--user", "root"]
        )
    try:
        seen = b""
        while b"Password for root:" not in seen:
            seen += os.read(fd, 1024)
        os.write(fd, b"secret\n")
        out = b""
        with contextlib.suppress(OSError):  # EIO once the child is gone
            while chunk := os.read(fd, 65536):
                out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b'"services": []' in out
