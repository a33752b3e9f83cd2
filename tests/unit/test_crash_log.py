"""Where the dashboard's crash log goes: a per-user directory, a file only its owner reads,
made exclusively under a name nobody can guess."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from etcd_registry_tui.app import terminal as app_terminal
from etcd_registry_tui.app.terminal import crash_log_path


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A process that has not written a crash log yet, with its own state and temp dirs."""
    monkeypatch.setattr(app_terminal, "_crash_log", None, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_crash_log_is_private_and_in_a_per_user_directory(fresh: Path):
    path = crash_log_path()
    assert path.parent == fresh / "state" / "etcd-registry-tui"
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert path.stat().st_uid == os.getuid()
    assert crash_log_path() == path  # one log per process: every error appends to it
    with path.open("a") as log:
        log.write("Traceback: boom\n")
    assert mode(path) == 0o600 and "boom" in path.read_text()


def test_its_name_cannot_be_guessed_from_the_pid(fresh: Path, monkeypatch: pytest.MonkeyPatch):
    first = crash_log_path()
    monkeypatch.setattr(
        app_terminal, "_crash_log", None, raising=False
    )  # as another process with this pid
    second = crash_log_path()
    assert first != second and first.exists() and second.exists()
    assert not list((fresh / "tmp").iterdir())  # nothing in the shared temp directory


def test_without_a_state_directory_it_uses_a_private_one_in_tmp(fresh: Path):
    (fresh / "state").write_text("not a directory")
    path = crash_log_path()
    assert path.parent == fresh / "tmp" / f"etcd-registry-tui-{os.getuid()}"
    assert mode(path.parent) == 0o700 and mode(path) == 0o600


def test_a_planted_symlink_directory_in_tmp_is_not_used(fresh: Path):
    (fresh / "state").write_text("not a directory")
    elsewhere = fresh / "attacker"
    elsewhere.mkdir(mode=0o777)
    (fresh / "tmp" / f"etcd-registry-tui-{os.getuid()}").symlink_to(elsewhere)
    path = crash_log_path()
    assert elsewhere not in path.parents and not list(elsewhere.iterdir())
    assert not path.exists()  # nowhere safe to write: the log is not written at all
