"""TLS as etcdctl does it: --cacert, --cert, --key and https:// endpoints, on a real etcd
serving client certificates only (certificates made here with openssl)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from etcd_registry_tui.demo.embedded import find_etcd_binary, free_ports
from etcd_registry_tui.registry import ConnectionConfig, EtcdConnection, ServiceRegistration

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class TlsEtcd:
    endpoint: str
    ca: Path
    cert: Path
    key: Path
    other_ca: Path

    def etcdctl(self, *args: str) -> str:
        cmd = [
            "etcdctl", f"--endpoints={self.endpoint}", f"--cacert={self.ca}",
            f"--cert={self.cert}", f"--key={self.key}", *args,
        ]  # fmt: skip
        env = {**os.environ, "ETCDCTL_API": "3"}
        return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(d: Path) -> None:
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d,
        )  # fmt: skip
    (d / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.crt", cwd=d,
        )  # fmt: skip


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[TlsEtcd]:
    binary = find_etcd_binary()
    _make_certs(tmp_path)
    client_port, peer_port = free_ports(2)
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"https://127.0.0.1:{client_port}"
    log = open(tmp_path / "etcd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            binary, "--name", "tls", "--data-dir", str(tmp_path / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"tls={peer}",
            "--cert-file", str(tmp_path / "server.crt"), "--key-file", str(tmp_path / "server.key"),
            "--trusted-ca-file", str(tmp_path / "ca.crt"), "--client-cert-auth",
        ],
        stdout=log, stderr=log,
    )  # fmt: skip
    etcd = TlsEtcd(
        endpoint=f"127.0.0.1:{client_port}",
        ca=tmp_path / "ca.crt",
        cert=tmp_path / "client.crt",
        key=tmp_path / "client.key",
        other_ca=tmp_path / "other-ca.crt",
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                etcd.etcdctl("endpoint", "health")
                break
            except subprocess.CalledProcessError:
                assert proc.poll() is None, (tmp_path / "etcd.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "TLS etcd did not become healthy"
                time.sleep(0.2)
        yield etcd
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _list(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    cli = [sys.executable, "-m", "etcd_registry_tui", "list", "--json", "--dial-timeout", "3s"]
    return subprocess.run(
        [*cli, *args],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


def test_list_over_tls_with_client_certificate(tls_etcd: TlsEtcd) -> None:
    tls_etcd.etcdctl("put", "/services/Secure/s1", '{"Id": "s1", "Address": "https://x:1"}')
    result = _list(
        "--endpoints", f"https://{tls_etcd.endpoint}", "--cacert", str(tls_etcd.ca),
        "--cert", str(tls_etcd.cert), "--key", str(tls_etcd.key),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["services"][0]["name"] == "Secure"


@pytest.mark.parametrize(
    ("variant", "needle"),
    [
        ("no client certificate", "rejected the client certificate"),
        ("wrong CA", "certificate not trusted"),
        ("plain text", "if it serves TLS, use https://"),
        ("missing CA file", "cannot read --cacert"),
    ],
)
def test_tls_mistakes_are_one_line_errors(tls_etcd: TlsEtcd, variant: str, needle: str) -> None:
    https = f"https://{tls_etcd.endpoint}"
    client = ["--cert", str(tls_etcd.cert), "--key", str(tls_etcd.key)]
    args = {
        "no client certificate": ["--endpoints", https, "--cacert", str(tls_etcd.ca)],
        "wrong CA": ["--endpoints", https, "--cacert", str(tls_etcd.other_ca), *client],
        "plain text": ["--endpoints", tls_etcd.endpoint],
        "missing CA file": ["--endpoints", https, "--cacert", "/nonexistent/ca.crt", *client],
    }[variant]
    result = _list(*args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no gRPC log noise
    assert needle in result.stderr


async def test_registration_over_tls_is_read_by_etcdctl(tls_etcd: TlsEtcd) -> None:
    config = ConnectionConfig(
        endpoints=(f"https://{tls_etcd.endpoint}",),
        cacert=str(tls_etcd.ca),
        cert=str(tls_etcd.cert),
        key=str(tls_etcd.key),
    )
    async with EtcdConnection(config) as conn:
        async with ServiceRegistration(conn, "Secure", "https://localhost:8443", ttl=10) as reg:
            out = tls_etcd.etcdctl("get", reg.key, "--print-value-only")
            assert json.loads(out)["Address"] == "https://localhost:8443"
        assert tls_etcd.etcdctl("get", "--prefix", "/services/", "--keys-only").strip() == ""
