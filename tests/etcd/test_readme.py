"""What the README tells a user to type works as written (the parts that need no terminal)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def shell_commands() -> list[str]:
    commands = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def env_for(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_ENDPOINTS"] = endpoint
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_two_commands_and_ci_agree():
    commands = shell_commands()
    assert commands[:2] == ["./dev demo", "./dev test"]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [
        line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert "./dev test" in ci_commands
    assert os.access(ROOT / ".ci" / "run", os.X_OK) and os.access(ROOT / "dev", os.X_OK)


def test_readme_names_existing_files():
    for path in re.findall(r"\((screenshots/[\w.]+)\)", README):
        assert (ROOT / path).exists(), path
    for path in re.findall(r"(?<![\w/])(?:bench|scripts)/\w+\.py", README):
        assert (ROOT / path).exists(), path
    for path in re.findall(r"tests/[\w/]+\.py", README):
        assert (ROOT / path).exists(), path


def test_list_commands_from_the_readme_work(etcd, etcdctl):
    etcdctl.put("/services/OrderShippingService/a1", '{"Id": "a1", "Address": "http://x:1"}')
    lists = [c for c in shell_commands() if c.startswith("etcd-registry-tui list")]
    assert lists, "the README shows a list command"
    for command in lists:
        result = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=30,
            env=env_for(etcd.endpoint),
        )  # fmt: skip
        assert result.returncode == 0, (command, result.stderr)
        if "--json" in command:
            doc = json.loads(result.stdout)
            assert doc["services"][0]["name"] == "OrderShippingService"


def test_register_command_from_the_readme_works(etcd, etcdctl):
    command = next(c for c in shell_commands() if c.startswith("etcd-registry-tui register"))
    proc = subprocess.Popen(
        shlex.split(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_for(etcd.endpoint),
    )  # fmt: skip
    try:
        assert "registered /services/OrderShippingService/" in proc.stdout.readline()
        kvs, _ = etcdctl.get_prefix("/services/OrderShippingService/")
        assert len(kvs) == 1
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert etcdctl.get_prefix("/services/OrderShippingService/").kvs == {}


def test_library_example_from_the_readme_runs(etcd, etcdctl, tmp_path):
    (example,) = [b for b in code_blocks("python") if "ServiceRegistration" in b]
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30,
        env=env_for(etcd.endpoint),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.strip().splitlines()
    assert first.startswith("registered /services/OrderShippingService/")
    assert last == "unregistered"
    assert etcdctl.get_prefix("/services/").kvs == {}, "unregister must remove the key at once"


def test_election_example_from_the_readme_runs(etcd, etcdctl, tmp_path):
    (example,) = [b for b in code_blocks("python") if "Election(" in b]
    script = tmp_path / "election.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30,
        env=env_for(etcd.endpoint),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.strip().splitlines()
    assert re.fullmatch(r"leading as /elections/migrations/[0-9a-f]+", first), first
    assert last == "resigned"
    assert etcdctl.get_prefix("/elections/").kvs == {}, "resigning removes the candidate key"


def test_the_profiles_example_in_the_readme_is_read_as_documented(tmp_path):
    from etcd_registry_tui.cli import profile_file as profiles

    (block,) = code_blocks("toml")
    path = tmp_path / "config.toml"
    path.write_text(block)
    file = profiles.load(path, env={"HOME": "/home/me"})
    assert file.default == "staging" and file.names() == ["local", "staging"]
    staging = file.profiles["staging"]
    assert staging.cacert == "/home/me/certs/ca.pem" and staging.read_only is True
