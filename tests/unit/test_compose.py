"""Static checks of compose.yaml (docker is not needed: the file is only parsed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
CLUSTER = {"etcd1": 2379, "etcd2": 22379, "etcd3": 32379}
IMAGE = re.compile(r"^(quay\.io/coreos|gcr\.io/etcd-development)/etcd:v3\.\d+\.\d+$")
AUTH_FLAGS = (
    "--auth-token",
    "--client-cert-auth",
    "--trusted-ca-file",
    "--cert-file",
    "--key-file",
    "--peer-client-cert-auth",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "use the list form: no shell in the etcd image"
    return [str(arg) for arg in command]


def _flag(service: dict[str, Any], name: str) -> str:
    values = [a.split("=", 1)[1] for a in _command(service) if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} must be given exactly once as --{name}=VALUE"
    return values[0]


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for port in service.get("ports", []):
        assert isinstance(port, str), "publish ports as HOST_IP:HOST:CONTAINER strings"
        host_ip, host, container = port.split(":")
        out.append((host_ip, int(host), int(container)))
    return out


def _check_healthcheck(name: str, service: dict[str, Any], port: int) -> None:
    health = service.get("healthcheck")
    assert health, f"{name} has no healthcheck"
    test = health["test"]
    assert test[0] == "CMD", "exec form: the distroless image has no shell"
    assert test[1].endswith("etcdctl") and test[-2:] == ["endpoint", "health"]
    assert f"--endpoints=http://127.0.0.1:{port}" in test


def _check_volume(compose: dict[str, Any], name: str, service: dict[str, Any]) -> None:
    data_dir = _flag(service, "data-dir")
    volumes = service.get("volumes") or []
    named = [v.split(":")[0] for v in volumes if not v.startswith((".", "/"))]
    assert len(named) == 1, f"{name} needs exactly one named volume"
    assert named[0] in (compose.get("volumes") or {}), f"{named[0]} not under top-level volumes"
    mount = volumes[0].split(":")[1]
    assert data_dir == mount or data_dir.startswith(mount + "/"), "data dir must be on the volume"


def _check_no_auth(service: dict[str, Any]) -> None:
    for arg in _command(service):
        assert not arg.startswith(AUTH_FLAGS), f"unexpected auth/TLS flag {arg}"
        assert "https://" not in arg
    env = service.get("environment") or {}
    assert not any("PASSWORD" in str(key) or "AUTH" in str(key) for key in env)


def test_default_etcd_service(compose: dict[str, Any]) -> None:
    etcd = compose["services"]["etcd"]
    assert "profiles" not in etcd, "plain `docker compose up -d` must start it"
    assert IMAGE.match(etcd["image"]), etcd["image"]
    assert _published(etcd) == [("127.0.0.1", 2379, 2379)]
    assert _flag(etcd, "listen-client-urls") == "http://0.0.0.0:2379"
    assert _flag(etcd, "advertise-client-urls") == "http://127.0.0.1:2379"
    _check_healthcheck("etcd", etcd, 2379)
    _check_volume(compose, "etcd", etcd)
    _check_no_auth(etcd)


def test_only_the_default_service_runs_without_a_profile(compose: dict[str, Any]) -> None:
    unprofiled = [name for name, svc in compose["services"].items() if not svc.get("profiles")]
    assert unprofiled == ["etcd"]


def test_cluster_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    members = {n for n, s in services.items() if "cluster" in (s.get("profiles") or [])}
    assert members == set(CLUSTER)
    tokens = set()
    for name, port in CLUSTER.items():
        svc = services[name]
        assert IMAGE.match(svc["image"]), svc["image"]
        assert _published(svc) == [("127.0.0.1", port, port)]
        assert _flag(svc, "name") == name
        assert _flag(svc, "listen-client-urls") == f"http://0.0.0.0:{port}"
        assert _flag(svc, "advertise-client-urls") == f"http://127.0.0.1:{port}"
        assert _flag(svc, "initial-advertise-peer-urls") == f"http://{name}:2380"
        assert _flag(svc, "initial-cluster-state") == "new"
        initial = dict(item.split("=", 1) for item in _flag(svc, "initial-cluster").split(","))
        assert initial == {m: f"http://{m}:2380" for m in CLUSTER}
        tokens.add(_flag(svc, "initial-cluster-token"))
        _check_healthcheck(name, svc, port)
        _check_volume(compose, name, svc)
        _check_no_auth(svc)
    assert len(tokens) == 1
    assert tokens != {_flag(services["etcd"], "initial-cluster-token")}


def test_every_volume_is_used(compose: dict[str, Any]) -> None:
    used = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes") or []}
    assert set(compose["volumes"]) == used


def test_documented_commands_are_in_the_file() -> None:
    text = COMPOSE.read_text()
    assert "docker compose up -d" in text
    assert "docker compose --profile cluster up -d etcd1 etcd2 etcd3" in text
    assert "etcd-registry-tui --endpoints 127.0.0.1:2379" in text
    assert "auth enable" in text
