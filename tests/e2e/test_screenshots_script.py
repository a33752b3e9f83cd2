"""scripts/screenshots.py: run it into a temp dir and read what the five SVGs show.

It runs the real dashboard on a private etcd, so it needs etcd (skipped without it,
an error on CI).
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.etcdctl import require_etcd

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "main.svg",
    "expiring.svg",
    "inspect.svg",
    "register.svg",
    "readonly.svg",
    "elections.svg",
    "probes.svg",
    "alarm.svg",
    "history.svg",
    "mixed.svg",
)
SERVICES = (
    "CatalogService",
    "ConfigService",
    "InventoryService",
    "LegacyBillingService",
    "MigrationJob",
    "NotificationService",
    "OrderShippingService",
    "PaymentService",
)

_TEXT = re.compile(
    r'<text [^>]*x="([\d.]+)"[^>]*clip-path="url\(#[^)]*-line-(\d+)\)"[^>]*>([^<]*)</text>'
)
CELL = 12.2  # the width of one terminal cell in Rich's SVG export


def screen_lines(svg: str) -> list[str]:
    """The terminal lines of a Rich/Textual SVG export, as plain text (blanks restored:
    the export draws only the backgrounds of empty cells)."""
    lines: dict[int, dict[int, str]] = {}
    for x, number, text in _TEXT.findall(svg):
        column = round(float(x) / CELL)
        lines.setdefault(int(number), {})[column] = html.unescape(text).replace("\xa0", " ")
    result = []
    for _, spans in sorted(lines.items()):
        line = ""
        for column, text in sorted(spans.items()):
            line = line.ljust(column) + text
        result.append(line.rstrip())
    return result


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require_etcd()
    out = tmp_path_factory.mktemp("screenshots")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = sorted(p.name for p in out.iterdir())
    assert found == sorted(NAMES), found
    return {name: "\n".join(screen_lines((out / name).read_text())) for name in NAMES}


def test_every_svg_is_a_whole_screen(shots: dict[str, str]) -> None:
    for name, text in shots.items():
        assert len(text.splitlines()) == 36, name  # run_test(size=(120, 36))


def test_main_view(shots: dict[str, str]) -> None:
    text = shots["main.svg"]
    for service in SERVICES:
        assert service in text
    assert "(unrecognised keys)" in text
    assert "⚠ value is not JS" in text  # the legacy service's text value (cut to fit)
    assert "no lease" in text  # ConfigService/static-1
    assert "lease ?" not in text  # every countdown known
    assert re.search(r"\d+ seconds", text)
    assert "live" in text and "8 services · 23 instances" in text
    for kind in ("PUT", "UPDATE", "DEREG"):
        assert kind in text  # the event log (a narrow log writes DEREGISTERED short)
    for action in ("Register", "Revoke", "Delete", "Inspect", "Quit"):
        assert action in text  # the footer


def test_expiring_instance_highlighted_with_little_time_left(shots: dict[str, str]) -> None:
    text = shots["expiring.svg"]
    assert "PaymentService  4 instances  (1 expiring)" in text
    # Its tree row (id, address, countdown): under five seconds left.
    row = re.search(r"│\s+[0-9a-f]{8}(?:-…)?  http://127\.0\.0\.1:5301\s+(\d+) seconds?\s+│", text)
    assert row is not None, text
    assert 1 <= int(row[1]) <= 5, row[0]
    assert "/services/PaymentService/" in text  # its key in the detail pane
    assert "of 15s" in text


def test_inspect_view(shots: dict[str, str]) -> None:
    text = shots["inspect.svg"]
    assert "/services/OrderShippingService/" in text
    for label in ("Service", "Lease", "Granted TTL", "Remaining TTL", "Keys on lease"):
        assert label in text
    assert '"Address": "http://127.0.0.1:' in text
    assert "Copy value" in text and "Close" in text


def test_register_form(shots: dict[str, str]) -> None:
    text = shots["register.svg"]
    assert "Register a test instance" in text
    for label in ("Service name", "Address", "TTL (seconds)", "Extra fields"):
        assert label in text
    assert "http://localhost:5000" in text
    assert "Register" in text and "Cancel" in text


def test_read_only_view(shots: dict[str, str]) -> None:
    text = shots["readonly.svg"]
    assert "READ-ONLY" in text
    for service in SERVICES:
        assert service in text
    assert "raw value" in text and "status=UP;addr=http://127.0.0.1:4999" in text
    footer = text.splitlines()[-1]
    assert "Inspect" in footer and "Quit" in footer
    for action in ("Register", "Revoke", "Delete", "Pause"):
        assert action not in footer, footer


def test_elections_view_after_a_failover(shots: dict[str, str]) -> None:
    text = shots["elections.svg"]
    assert "/elections/MigrationJob  election  leader" in text
    assert "/locks/NightlyReport  lock  holder" in text
    # the value as far as the line leaves room for it (i shows it whole), then the countdown
    assert re.search(r"leader\s+[0-9a-f]{8} http://127\.0[\d.:]*…?\s+\d+ seconds", text), text
    assert "waiting #1" in text
    assert "LEADER" in text and "/elections/MigrationJob" in text  # the failover, logged
    footer = text.splitlines()[-1]
    for action in ("Campaign", "Proclaim", "Resign", "Revoke"):
        assert action in footer, footer


def test_probe_marks(shots: dict[str, str]) -> None:
    text = shots["probes.svg"]
    assert re.search(r"ProbedService  4 instances  ✗ 2 unreachable", text), text
    assert re.search(r"api-1\s+http://127\.0\.0\.1:\d+/health  ✓ \d+(\.\d)? ms", text), text
    assert re.search(r"api-2\s+http://127\.0\.0\.1:\d+  ✗ refused", text)
    assert re.search(r"api-3\s+http://127\.0\.0\.1:\d+  ✗ timeout", text)
    assert re.search(r"worker-1\s+\(no address\)  \? no address", text)


def test_mass_expiry_alarm(shots: dict[str, str]) -> None:
    banner = shots["alarm.svg"].splitlines()[1]
    assert re.search(
        r"MASS EXPIRY: \d+ of \d+ instances expired in the last 60 s",
        banner,
    )
    assert re.search(r"BatchWorker \d+/\d+", banner), banner  # 3/3, or more batches tried


def test_history_view_at_a_past_revision(shots: dict[str, str]) -> None:
    text = shots["history.svg"]
    match = re.search(r"viewing revision (\d+) \(live: (\d+)\) — Esc returns to live", text)
    assert match and int(match[1]) < int(match[2]), text
    assert "BatchWorker  3 instances" in text  # as it was before they expired
    assert f"rev {match[1]}" in text  # the changes of that revision, beside the tree


def test_mixed_fleet_view(shots: dict[str, str]) -> None:
    """demo --mixed's fleet under --prefix /: each framework's services marked with their
    layout, the walkthrough's beside them unmarked, a Kratos instance in the detail pane."""
    text = shots["mixed.svg"]
    for mark in ("· kratos", "· micro", "· dubbo-app", "· goframe", "· coredns"):
        assert mark in text, mark
    assert "OrderShippingService  2 instances" in text  # the walkthrough's, unmarked
    assert "(unrecognised keys)" not in text
    assert "layout     kratos" in text and "/microservices/PaymentService/" in text
    assert "lease ?" not in text and "live" in text
