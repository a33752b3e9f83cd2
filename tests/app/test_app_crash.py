"""An internal error never leaves a traceback on the terminal: one line, details in a file."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.registry.etcd.config import ConnectionConfig

    class Broken(RegistryApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.call_later(self.explode)

        def explode(self) -> None:
            raise RuntimeError("boom from a test")

    app = Broken(ConnectionConfig(endpoints=("127.0.0.1:9",)), start_session=False)
    app.run(headless=True)
    raise SystemExit(app.return_code or 0)
    """
)


def test_internal_error_is_one_line_and_a_log_file(tmp_path):
    script = tmp_path / "broken_app.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    match = re.search(r"details in (\S+\.log)", lines[0])
    assert match, lines[0]
    log = Path(match.group(1))
    try:
        assert "boom from a test" in log.read_text()
    finally:
        log.unlink(missing_ok=True)
