"""Real Go etcd clients for the tests: ``tests/support/go/peer`` (etcd's clientv3, its
``naming/endpoints`` manager and ``naming/resolver`` gRPC resolver, pinned in its go.mod/go.sum)
built once into ``~/.cache/etcd-registry-tui/go-peers/<source hash>/gopeer`` with ``go build``.

Without ``go`` on PATH (or /usr/local/go/bin) the build skips, unless CI is set: then it fails.
Building with an empty GOCACHE took 53 s here (modules already downloaded); a cached build is
reused for as long as the peer's sources are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PEER = Path(__file__).resolve().parent / "go" / "peer"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "etcd-registry-tui"


def find_go() -> str | None:
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def source_hash(root: Path = PEER) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_peer(root: Path = PEER) -> Path:
    """The built peer binary (building it when its sources changed)."""
    go = find_go()
    if go is None:
        if os.environ.get("CI"):
            pytest.fail("go is not installed: the Go peer tests cannot run under CI")
        pytest.skip("go is not installed (the Go peer tests need it)")
    out_dir = CACHE / "go-peers" / source_hash(root)
    binary = out_dir / root.name
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir))
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    result = subprocess.run(
        [go, "build", "-o", str(tmp / root.name), "."],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"go build of {root} failed: {result.stderr.strip()[-2000:]}")
    os.replace(tmp / root.name, binary)  # atomic: parallel workers may build it too
    shutil.rmtree(tmp, ignore_errors=True)
    return binary
