"""What the command line does with odd input and odd plumbing, run as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from support.helpers import slack

from etcd_registry_tui.registry.etcd.config import ConnectionConfig, parse_duration
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import ConfigError

CLI = [sys.executable, "-m", "etcd_registry_tui"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=slack(timeout), env=_env(**env)
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("etcd-registry-tui: error: ")
    return lines[0]


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--dial-timeout", "--command-timeout"])
@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "infs", "-1s", "-1", "0", "0ms", ""]
)
def test_a_timeout_that_is_not_a_positive_finite_time_is_rejected_before_any_dial(option, value):
    # An unreachable endpoint: were the value accepted, the error would be about etcd.
    result = run_cli("list", "--endpoints", "127.0.0.1:1", f"{option}={value}")
    line = _one_line_error(result)
    assert option in line, line
    assert "etcd at" not in line and "cannot reach" not in line, line
    assert "5s" in line  # says what a good value looks like
    assert "--endpoints" not in line  # not the connection-options hint: the fault is the time


def test_a_timeout_from_the_environment_is_checked_and_named_too():
    result = run_cli("list", "--endpoints", "127.0.0.1:1", ETCDCTL_DIAL_TIMEOUT="nan")
    line = _one_line_error(result)
    assert "ETCDCTL_DIAL_TIMEOUT" in line and "cannot reach" not in line, line


def test_an_absurdly_long_timeout_is_rejected_with_the_limit():
    result = run_cli("list", "--endpoints", "127.0.0.1:1", "--dial-timeout", "1e300s")
    line = _one_line_error(result)
    assert "--dial-timeout" in line and "at most" in line, line


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("1m", 60.0), ("2", 2.0), ("1h", 3600.0)]
)
def test_good_durations_still_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_the_config_itself_refuses_a_timeout_that_is_not_positive_and_finite(value):
    with pytest.raises(ConfigError):
        ConnectionConfig(dial_timeout=value)
    with pytest.raises(ConfigError):
        ConnectionConfig(command_timeout=value)


# -- prefix ---------------------------------------------------------------------------------


def test_an_empty_prefix_is_an_error_that_names_the_whole_keyspace_option():
    result = run_cli("list", "--endpoints", "127.0.0.1:1", "--prefix", "")
    line = _one_line_error(result)
    assert "--prefix" in line and "empty" in line and "--prefix /" in line, line
    assert "cannot reach" not in line


@pytest.mark.parametrize("endpoints", ["", " ", ","])
def test_empty_endpoints_are_an_error_not_the_default(endpoints):
    result = run_cli("list", "--endpoints", endpoints)
    line = _one_line_error(result)
    assert "--endpoints is empty" in line, line
    assert "127.0.0.1:2379" not in line  # not dialled: the default is not used silently


def test_the_whole_keyspace_is_prefix_slash(etcd, etcdctl):
    etcdctl.put("/services/Svc/a1", '{"Address": "http://localhost:1"}')
    etcdctl.put("/other/Thing/t1", '{"Address": "http://localhost:2"}')
    result = run_cli("list", "--json", "--endpoints", etcd.endpoint, "--prefix", "/")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["prefix"] == "/"
    keys = {i["key"] for s in doc["services"] for i in s["instances"]}
    assert keys == {"/services/Svc/a1", "/other/Thing/t1"}


# -- a reader that goes away ----------------------------------------------------------------


def _fill(endpoint: str, count: int) -> None:
    async def put_all() -> None:
        async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
            for i in range(count):
                key = f"/services/Svc{i % 7}/instance-{i:04d}".encode()
                await conn.put(key, f'{{"Address": "http://h:{i}"}}'.encode())

    asyncio.run(put_all())


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_list_into_a_closed_pipe_exits_quietly(etcd, etcdctl, fmt):
    _fill(etcd.endpoint, 20)
    assert len(etcdctl.get_prefix("/services/").kvs) == 20
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run(
            [*CLI, "list", *fmt, "--endpoints", etcd.endpoint],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=30, env=_env(),
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # 128 + SIGPIPE, as a C tool killed by SIGPIPE reports


def test_list_piped_into_head_prints_one_line_and_no_error(etcd, etcdctl):
    _fill(etcd.endpoint, 1500)  # ~90 kB of output: more than a pipe holds, so head leaves early
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {' '.join(CLI)} list --endpoints {etcd.endpoint} "
         "| head -1; echo \"status=${PIPESTATUS[0]}\" >&2"],
        capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert result.stdout.count("\n") == 1 and "Svc0" in result.stdout, result.stdout
    assert result.stderr.strip() == "status=141", result.stderr  # and not a word more


# -- the demo on an etcd it cannot reach ----------------------------------------------------


@pytest.mark.parametrize("ui", [["--no-ui"], []])
def test_demo_on_an_unreachable_etcd_says_so_and_fails(ui):
    result = run_cli("demo", *ui, "--endpoints", "http://127.0.0.1:1", "--dial-timeout", "2s")
    line = _one_line_error(result)
    assert "cannot reach etcd at 127.0.0.1:1" in line, line
    assert result.returncode == 1
    assert "running" not in result.stdout, result.stdout


# -- numbers and names checked before anything is read ---------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "x"])
def test_list_history_out_of_range_is_one_line_not_a_traceback(etcd, value):
    result = run_cli("list", "--endpoints", etcd.endpoint, "--history", value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "argument --history" in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["-5", "0"])
def test_list_rev_that_is_not_a_revision_is_rejected(etcd, etcdctl, value):
    etcdctl.put("/services/Svc/a1", '{"Address": "http://localhost:1"}')
    result = run_cli("list", "--endpoints", etcd.endpoint, "--rev", value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "--rev" in result.stderr and "at least 1" in result.stderr, result.stderr
    assert result.stdout == ""  # not "as of revision -5" and the current registry


@pytest.mark.parametrize(("value", "why"), [("", "empty"), ("a/b", "'/'")])
def test_history_service_that_cannot_be_a_service_name_is_rejected(etcd, value, why):
    result = run_cli("history", "--endpoints", etcd.endpoint, "--service", value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--service" in result.stderr and why in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- the connection hint only where the connection is at fault ------------------------------

CONNECTION_HINT = "check the connection options"


@pytest.mark.parametrize(
    "args",
    [
        ["register", "--name", "Svc", "--address", "http://h:1", "--ttl", "0"],
        ["register", "--name", "", "--address", "http://h:1"],
        ["list", "--prefix", "services"],
        ["serve", "--port", "99999"],
    ],
)
def test_errors_that_are_not_about_the_connection_do_not_blame_it(etcd, args):
    result = run_cli(*args, "--endpoints", etcd.endpoint)
    line = _one_line_error(result)
    assert CONNECTION_HINT not in line, line


@pytest.mark.parametrize(
    "endpoints", ["ftp://127.0.0.1:1", "127.0.0.1:99999", "127.0.0.1:x", "[::1"]
)
def test_a_bad_endpoint_still_points_at_the_connection_options(endpoints):
    line = _one_line_error(run_cli("list", "--endpoints", endpoints))
    assert CONNECTION_HINT in line, line


def test_a_failed_password_command_does_not_blame_the_connection_options(tmp_path):
    config = tmp_path / "etcd-registry-tui" / "config.toml"
    config.parent.mkdir()
    config.write_text('[profiles.p]\nuser = "u"\npassword_command = "false"\n')
    result = run_cli(
        "list", "--profile", "p", "--endpoints", "127.0.0.1:1", XDG_CONFIG_HOME=str(tmp_path)
    )
    line = _one_line_error(result)
    assert "password_command" in line and CONNECTION_HINT not in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--rev", "99999999999999999999"],
        ["history", "--history", "99999999999999999999"],
        ["--history", "99999999999999999999"],
    ],
)
def test_numbers_too_big_for_etcd_are_argument_errors_not_tracebacks(etcd, args):
    result = run_cli(*args, "--endpoints", etcd.endpoint)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "at most" in result.stderr, result.stderr


def test_list_rev_in_the_future_names_the_current_revision(etcd, etcdctl):
    etcdctl.put("/services/Svc/a1", '{"Address": "http://localhost:1"}')
    now = etcdctl.run_json("get", "/services/Svc/a1")["header"]["revision"]
    line = _one_line_error(run_cli("list", "--endpoints", etcd.endpoint, "--rev", "999999"))
    assert "revision 999999 is in the future" in line and f"latest is {now}" in line, line


@pytest.mark.parametrize("value", ["-5", "0", "99999999999999999999"])
def test_history_since_rev_that_is_not_a_revision_is_rejected(etcd, value):
    result = run_cli("history", "--endpoints", etcd.endpoint, "--since-rev", value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "argument --since-rev" in result.stderr and "Traceback" not in result.stderr
    assert "compacted" not in result.stderr  # not "revisions before 1 are compacted"
