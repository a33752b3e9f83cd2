"""Wording: counts agree with their nouns, a revision and a lease are written one way."""

from __future__ import annotations

import asyncio
import json

import aetcd
import pytest
from test_cli import run_cli

from etcd_registry_tui.registry.wording import lease_text, plural, revision_text
from etcd_registry_tui.revoke_prompt import keys_phrase
from etcd_registry_tui.screens.inspect import describe_deleted
from etcd_registry_tui.widgets.detail_pane import lease_row_text
from etcd_registry_tui.widgets.status_bar import counts_text


def test_counts_agree_with_their_nouns():
    assert plural(1, "service") == "1 service"
    assert plural(0, "service") == "0 services"
    assert plural(12345, "key") == "12,345 keys"
    assert counts_text(27994, 1, 1) == "rev 27,994  1 service · 1 instance"
    assert counts_text(5, 2, 3) == "rev 5  2 services · 3 instances"
    assert keys_phrase({b"/services/A/1"}) == "1 key goes with it: /services/A/1."
    assert keys_phrase({b"/a", b"/b"}) == "2 keys go with it: /a, /b."


def test_the_detail_pane_says_who_shares_a_lease_without_key_s():
    assert lease_row_text(0x0F51A2355D8EAC16, 1) == "0f51a2355d8eac16  (no other key on it)"
    assert lease_row_text(0x0F51A2355D8EAC16, 3) == "0f51a2355d8eac16  (3 keys share it)"


def test_revisions_are_written_with_separators_everywhere_on_screen():
    assert revision_text(27994) == "27,994"
    assert "27,994" in describe_deleted(27994, exact=True)
    assert "27,994" in describe_deleted(27994, exact=False)


@pytest.mark.parametrize("lease", [0x0F51A2355D8EAC16, 0x1, 0x694D77AA9E38260F])
def test_a_lease_is_written_as_etcdctl_writes_it(lease):
    assert lease_text(lease) == f"{lease:016x}" and len(lease_text(lease)) == 16


def test_list_writes_a_lease_with_a_leading_zero_as_etcdctl_does(etcd, etcdctl):
    lease = 0x0F51A2355D8EAC16

    async def grant() -> None:
        host, port = etcd.endpoint.rsplit(":", 1)
        async with aetcd.Client(host=host, port=int(port)) as client:
            await client.lease(60, lease_id=lease)

    asyncio.run(grant())
    witness = etcdctl.run("lease", "list")
    assert "0f51a2355d8eac16" in witness, witness  # etcdctl's spelling
    etcdctl.put("/services/Svc/a1", '{"Address": "http://127.0.0.1:1"}', lease=lease)
    result = run_cli("list", "--json", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["services"][0]["instances"][0]["lease"] == "0f51a2355d8eac16"
    rev = str(doc["revision"])
    past = run_cli("list", "--rev", rev, "--endpoints", etcd.endpoint)
    assert "lease 0f51a2355d8eac16" in past.stdout, past.stdout


def test_a_candidates_lease_is_written_as_etcdctl_writes_it():
    from etcd_registry_tui.registry.elections.state import Candidate, parse_candidate_key

    lease = 0x0F51A2355D8EAC16
    key = b"/elections/job/f51a2355d8eac16"  # a Go client's key: %x, unpadded
    candidate = Candidate(key, b"v", lease, 5, 5)
    assert candidate.lease_hex == "0f51a2355d8eac16"
    assert parse_candidate_key(key, lease) is not None  # the key still parses as its lease's


def test_revoke_notices_count_in_words():
    from etcd_registry_tui.app.actions import revoked_text

    assert revoked_text(1, 1, 0) == "Revoked 1 lease; 1 key went with it"
    assert revoked_text(3, 5, 0) == "Revoked 3 leases; 5 keys went with them"
    assert revoked_text(2, 1, 1) == "Revoked: 1 key went; 1 lease had already expired"
    assert revoked_text(3, 2, 2) == "Revoked: 2 keys went; 2 leases had already expired"
