"""``./dev`` installs .venv from the lock, and again whenever pyproject.toml or the lock
changes (by content, whatever the files' times), and stops when the two disagree.

A copy of ``dev`` runs in a temporary project whose ``.venv/bin/python`` records every
``-m pip`` call instead of installing (anything else goes to the real Python), so nothing
is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    shift 2
    echo "pip $*" >>"$PIP_LOG"
    case "$*" in
        *" check"*) exit "${PIP_CHECK_RC:-0}" ;;
    esac
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy2(ROOT / "dev", tmp_path / "dev")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "etcd-registry-tui").write_text("#!/bin/sh\nexit 0\n")
    for name in ("python", "etcd-registry-tui"):
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run_dev(project: Path, check_rc: int = 0) -> tuple[subprocess.CompletedProcess[str], str]:
    """``./dev app`` (setup, then the app: here a no-op); returns it and the pip calls."""
    log = project / "pip.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PIP_LOG": str(log),
        "REAL_PYTHON": sys.executable,
        "PIP_CHECK_RC": str(check_rc),
        "ETCDCTL_API": "3",
    }
    done = subprocess.run(
        [str(project / "dev"), "app"], capture_output=True, text=True, env=env, timeout=60
    )
    return done, log.read_text() if log.exists() else ""


def _age(path: Path) -> None:
    """Set ``path``'s times a day back: older than the stamp, as a checkout can leave it."""
    old = path.stat().st_mtime - 86400
    os.utime(path, (old, old))


def test_dev_installs_from_the_lock_and_again_only_when_it_or_pyproject_changes(
    project: Path,
) -> None:
    done, pip = run_dev(project)
    assert done.returncode == 0, done.stderr
    assert "install --require-hashes -r requirements/dev.lock" in pip
    assert "install --no-deps -e ." in pip
    assert " check" in pip

    done, pip = run_dev(project)
    assert done.returncode == 0, done.stderr
    assert pip == "", "nothing changed, yet .venv was reinstalled"

    lock = project / "requirements" / "dev.lock"
    lock.write_text(lock.read_text() + "# a changed pin\n")
    _age(lock)
    done, pip = run_dev(project)
    assert "install --require-hashes -r requirements/dev.lock" in pip, "the lock changed"

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n")
    _age(pyproject)
    done, pip = run_dev(project)
    assert "install --require-hashes -r requirements/dev.lock" in pip, "pyproject.toml changed"


def test_dev_stops_when_the_lock_does_not_satisfy_pyproject(project: Path) -> None:
    done, _ = run_dev(project, check_rc=1)
    assert done.returncode != 0
    assert "does not satisfy pyproject.toml" in done.stderr
    assert "./dev lock" in done.stderr
    # and it tries again next time instead of trusting a half-done install
    _, pip = run_dev(project)
    assert "install --require-hashes" in pip
