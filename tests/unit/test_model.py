"""Pure unit tests of the registry model: parsing keys/values and RegistryState semantics."""

from __future__ import annotations

import json

import pytest
from aetcd import rpc

from etcd_registry_tui.registry.model import (
    UNRECOGNISED,
    ChangeKind,
    Instance,
    RegistryState,
    hexdump,
    parse_value,
    split_key,
)

PREFIX = "/services/"


def kv(
    key: str | bytes,
    value: str | bytes | dict[str, object] = b"",
    mod: int = 1,
    lease: int = 0,
    create: int | None = None,
    version: int = 1,
) -> rpc.KeyValue:
    """A real etcd KeyValue protobuf (what the watcher and get_prefix hand out)."""
    if isinstance(value, dict):
        value = json.dumps(value)
    return rpc.KeyValue(
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else value,
        mod_revision=mod,
        create_revision=mod if create is None else create,
        version=version,
        lease=lease,
    )


def inst(key: str | bytes, value: str | bytes | dict[str, object] = b"", **kw: int) -> Instance:
    return Instance.from_kv(kv(key, value, **kw), PREFIX)


# --------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize(
    "value",
    [
        {"Id": "i-1", "Name": "Orders", "Address": "http://10.0.0.1:5000"},  # .NET
        {"instanceId": "i-1", "serviceName": "Orders", "address": "http://10.0.0.1:5000"},  # JS
        {"id": "i-1", "name": "Orders", "address": "http://10.0.0.1:5000"},  # lower-case
        {"ID": "i-1", "ServiceName": "Orders", "url": "http://10.0.0.1:5000"},
    ],
    ids=["PascalCase", "camelCase", "lowercase", "mixed"],
)
def test_known_field_spellings_are_parsed(value: dict[str, object]) -> None:
    i = inst("/services/Orders/i-1", value, mod=7, lease=0x1234)
    assert i.service == "Orders"
    assert i.instance_id == "i-1"
    assert i.declared_id == "i-1"
    assert i.name == "Orders"
    assert i.address == "http://10.0.0.1:5000"
    assert i.parse_error is None and i.key_error is None
    assert not i.has_problem and i.problems == []
    assert i.group == "Orders"
    assert i.fields == value
    assert i.mod_revision == 7 and i.lease == 0x1234 and i.lease_hex == "0000000000001234"
    assert json.loads(i.value_text()) == value


def test_pascal_case_wins_and_extra_fields_are_kept() -> None:
    value = {
        "Id": "a",
        "Name": "Orders",
        "Address": "http://a",
        "Version": "1.2.3",
        "Tags": ["blue", "eu"],
        "Meta": {"zone": "eu-1", "weight": 5},
        "Healthy": True,
    }
    i = inst("/services/Orders/a", value)
    assert i.fields == value  # nothing dropped
    text = i.value_text()
    assert "Version" in text and "eu-1" in text and "blue" in text
    assert json.loads(text) == value


def test_non_string_known_fields_are_shown_as_json() -> None:
    i = inst("/services/Orders/7", {"Id": 7, "Name": "Orders", "Address": {"host": "h"}})
    assert i.declared_id == "7"
    assert i.address == '{"host": "h"}'


def test_unicode_value_is_kept() -> None:
    value = {"Id": "ü", "Name": "Bestellungen", "Address": "http://ümlaut.example"}
    i = inst("/services/Bestellungen/ü", value)
    assert i.service == "Bestellungen" and i.instance_id == "ü"
    assert "ümlaut" in i.value_text()  # not \u-escaped for display


def test_non_json_value() -> None:
    i = inst("/services/Orders/a", "http://10.0.0.1:5000")
    assert i.fields is None and i.address is None and i.name is None and i.declared_id is None
    assert i.parse_error is not None and "not JSON" in i.parse_error
    assert i.key_error is None
    assert i.has_problem and i.problems == [i.parse_error]
    assert i.group == "Orders"  # a bad value does not make the key unrecognised
    assert i.value_text() == "http://10.0.0.1:5000"


def test_binary_value_is_shown_as_hex_with_a_reason() -> None:
    raw = b"\xff\x00raw\x80\x81"
    i = inst("/services/Orders/bin", raw)
    assert i.fields is None
    assert i.value == raw
    assert i.parse_error is not None
    assert "UTF-8" in i.parse_error and "7 bytes" in i.parse_error and "at 0" in i.parse_error
    text = i.value_text()
    assert text.startswith("00000000  ff 00 72 61 77 80 81")
    assert text.rstrip().endswith("..raw..")
    assert i.problems == [i.parse_error]


def test_hexdump_of_large_binary_is_bounded() -> None:
    data = bytes(range(256)) * 20  # 5120 bytes
    text = hexdump(data)
    lines = text.splitlines()
    assert len(lines) == 4096 // 16 + 1
    assert lines[-1] == f"… {5120 - 4096} more bytes"
    assert lines[1].startswith("00000010  10 11 12")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'["a", "b"]', "list"),
        (b"42", "int"),
        (b"4.5", "float"),
        (b'"text"', "str"),
        (b"null", "NoneType"),
        (b"true", "bool"),
    ],
)
def test_json_that_is_not_an_object(raw: bytes, kind: str) -> None:
    i = inst("/services/Orders/a", raw)
    assert i.fields is None and i.address is None
    assert i.parse_error == f"value is JSON {kind}, expected an object"
    assert i.value_text() == raw.decode()  # shown as it is


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n"])
def test_empty_value(raw: bytes) -> None:
    i = inst("/services/Orders/a", raw)
    assert i.fields is None
    assert i.parse_error == "value is empty"
    assert i.value_text() == raw.decode()
    assert i.group == "Orders"


def test_parse_value_directly() -> None:
    assert parse_value(b'{"a": 1}') == ({"a": 1}, None)
    fields, err = parse_value(b"{broken")
    assert fields is None and err is not None and err.startswith("value is not JSON")


# --------------------------------------------------------------------------------------------
# keys


def test_key_directly_under_prefix() -> None:
    i = inst("/services/lonely", {"Id": "x"})
    assert i.service == "" and i.instance_id == "lonely"
    assert i.key_error is not None and "directly under the prefix" in i.key_error
    assert i.group == UNRECOGNISED
    assert i.fields == {"Id": "x"}  # the value is still parsed
    assert i.has_problem


def test_key_equal_to_prefix() -> None:
    i = inst("/services/", "x")
    assert i.group == UNRECOGNISED
    assert i.key_error is not None


def test_key_deeper_than_two_levels() -> None:
    i = inst("/services/Orders/eu/a", {"Id": "a"})
    assert i.service == "Orders" and i.instance_id == "eu/a"
    assert i.key_error == "key is 3 levels deep, expected 2"
    assert i.group == UNRECOGNISED
    assert split_key("/services/a/b/c/d", PREFIX)[2] == "key is 4 levels deep, expected 2"


def test_empty_service_name() -> None:
    i = inst("/services//x", {"Id": "x"})
    assert i.service == "" and i.instance_id == "x"
    assert i.key_error == "empty service name"
    assert i.group == UNRECOGNISED


def test_empty_instance_id() -> None:
    i = inst("/services/Orders/", {"Id": "x"})
    assert i.service == "Orders" and i.instance_id == ""
    assert i.key_error == "empty instance id"
    assert i.group == UNRECOGNISED


def test_non_utf8_key_bytes() -> None:
    raw_key = b"/services/Orders/\xff\xfeid"
    i = Instance.from_kv(kv(raw_key, {"Id": "x"}), PREFIX)
    assert i.raw_key == raw_key  # the real key is kept for deletes etc.
    assert "\\xff\\xfe" in i.key  # readable escape for display
    assert i.key_error == "key is not valid UTF-8"
    assert i.group == UNRECOGNISED
    assert i.fields == {"Id": "x"}


def test_split_key_of_a_good_key() -> None:
    assert split_key("/services/Orders/a", PREFIX) == ("Orders", "a", None)
    assert split_key("/other/Orders/a", "/other/") == ("Orders", "a", None)


def test_lease_zero_entry() -> None:
    state = RegistryState(PREFIX)
    change = state.apply_put(kv("/services/Orders/a", {"Id": "a"}, mod=3, lease=0))
    assert change is not None and change.instance.lease == 0
    assert change.instance.lease_hex == "0"  # no lease: etcd writes 0
    assert state.by_lease == {}
    assert state.leases() == set()
    assert state.keys_on_lease(0) == set()
    state.apply_delete(b"/services/Orders/a", 4)
    assert state.by_lease == {}


# --------------------------------------------------------------------------------------------
# RegistryState: apply_put / apply_delete


def test_apply_put_create_then_update() -> None:
    state = RegistryState(PREFIX)
    first = state.apply_put(kv("/services/Orders/a", {"Id": "a", "Address": "x"}, mod=5))
    assert first is not None and first.kind is ChangeKind.CREATE and first.previous is None
    assert first.revision == 5 and first.key == b"/services/Orders/a"
    assert state.revision == 5 and len(state) == 1 and b"/services/Orders/a" in state
    second = state.apply_put(
        kv("/services/Orders/a", {"Id": "a", "Address": "y"}, mod=9, create=5, version=2)
    )
    assert second is not None and second.kind is ChangeKind.UPDATE
    assert second.previous is first.instance
    assert second.instance.address == "y"
    assert second.instance.first_seen == first.instance.first_seen  # age survives updates
    assert state.get(b"/services/Orders/a") is second.instance
    assert state.groups["Orders"].instances[b"/services/Orders/a"] is second.instance
    assert state.revision == 9 and len(state) == 1


def test_stale_put_is_ignored() -> None:
    state = RegistryState(PREFIX)
    state.apply_put(kv("/services/Orders/a", "new", mod=10))
    assert state.apply_put(kv("/services/Orders/a", "old", mod=8)) is None
    assert state.apply_put(kv("/services/Orders/a", "same", mod=10)) is None
    assert state.get(b"/services/Orders/a").value == b"new"  # type: ignore[union-attr]
    assert state.revision == 10


def test_puts_in_one_transaction_share_a_revision() -> None:
    state = RegistryState(PREFIX)
    assert state.apply_put(kv("/services/Orders/a", "1", mod=4)) is not None
    assert state.apply_put(kv("/services/Orders/b", "2", mod=4)) is not None
    assert state.apply_delete(b"/services/Orders/c", 4) is None  # unknown key
    assert set(state.as_dict()) == {b"/services/Orders/a", b"/services/Orders/b"}


def test_apply_delete_and_cleanup() -> None:
    state = RegistryState(PREFIX)
    state.apply_put(kv("/services/Orders/a", "1", mod=2, lease=77))
    state.apply_put(kv("/services/Orders/b", "2", mod=3, lease=77))
    state.apply_put(kv("/services/Billing/c", "3", mod=4, lease=88))
    state.apply_put(kv("/services/odd", "4", mod=5))
    assert state.keys_on_lease(77) == {b"/services/Orders/a", b"/services/Orders/b"}
    assert state.leases() == {77, 88}
    assert [g.name for g in state.sorted_groups()] == ["Billing", "Orders", UNRECOGNISED]
    assert state.service_count == 2

    change = state.apply_delete(b"/services/Orders/a", 6)
    assert change is not None and change.kind is ChangeKind.DELETE
    assert change.instance.value == b"1" and change.revision == 6
    assert state.keys_on_lease(77) == {b"/services/Orders/b"}
    assert "Orders" in state.groups

    state.apply_delete(b"/services/Orders/b", 7)
    assert 77 not in state.by_lease and state.keys_on_lease(77) == set()
    assert "Orders" not in state.groups  # empty group gone
    state.apply_delete(b"/services/Billing/c", 8)
    state.apply_delete(b"/services/odd", 9)
    assert state.by_lease == {} and state.groups == {} and len(state) == 0
    assert state.service_count == 0
    assert state.revision == 9


def test_stale_delete_is_ignored() -> None:
    state = RegistryState(PREFIX)
    state.apply_put(kv("/services/Orders/a", "1", mod=10))
    assert state.apply_delete(b"/services/Orders/a", 9) is None
    assert state.apply_delete(b"/services/Orders/a", 10) is None
    assert b"/services/Orders/a" in state
    assert state.apply_delete(b"/services/nope/x", 12) is None
    assert state.revision == 12  # the revision still advances


def test_lease_change_on_update_moves_the_key() -> None:
    state = RegistryState(PREFIX)
    state.apply_put(kv("/services/Orders/a", "1", mod=2, lease=5))
    state.apply_put(kv("/services/Orders/a", "1", mod=3, lease=6))
    assert state.by_lease == {6: {b"/services/Orders/a"}}
    state.apply_put(kv("/services/Orders/a", "1", mod=4, lease=0))
    assert state.by_lease == {}


def test_group_change_when_a_key_becomes_recognisable() -> None:
    # The same key cannot move between services, but bad (non UTF-8) and good keys live in
    # different groups; check both stay consistent through updates and deletes.
    state = RegistryState(PREFIX)
    state.apply_put(kv(b"/services/Orders/\xff", "1", mod=2))
    state.apply_put(kv(b"/services/Orders/a", "1", mod=3))
    assert set(state.groups) == {UNRECOGNISED, "Orders"}
    state.apply_put(kv(b"/services/Orders/\xff", "2", mod=4))
    assert len(state.groups[UNRECOGNISED].instances) == 1
    state.apply_delete(b"/services/Orders/\xff", 5)
    assert set(state.groups) == {"Orders"}


def test_as_dict() -> None:
    state = RegistryState(PREFIX)
    state.apply_put(kv("/services/Orders/a", "v", mod=3, lease=9))
    assert state.as_dict() == {b"/services/Orders/a": (b"v", 9, 3)}


# --------------------------------------------------------------------------------------------
# RegistryState.load


def _changes_by_key(changes: list) -> dict[bytes, ChangeKind]:  # type: ignore[type-arg]
    return {c.key: c.kind for c in changes}


def test_first_load_reports_creates() -> None:
    state = RegistryState(PREFIX)
    changes = state.load(
        [kv("/services/A/1", "a", mod=2, lease=4), kv("/services/B/2", "b", mod=3)], 10
    )
    assert _changes_by_key(changes) == {
        b"/services/A/1": ChangeKind.CREATE,
        b"/services/B/2": ChangeKind.CREATE,
    }
    assert state.revision == 10
    assert state.by_lease == {4: {b"/services/A/1"}}
    assert set(state.groups) == {"A", "B"}


def test_reload_reports_the_difference() -> None:
    state = RegistryState(PREFIX)
    state.load(
        [
            kv("/services/A/same", "s", mod=2, lease=4),
            kv("/services/A/changed", "old", mod=3, lease=4),
            kv("/services/B/gone", "g", mod=4, lease=5),
        ],
        4,
    )
    same_before = state.get(b"/services/A/same")
    changed_before = state.get(b"/services/A/changed")
    changes = state.load(
        [
            kv("/services/A/same", "s", mod=2, lease=4),
            kv("/services/A/changed", "new", mod=7, create=3, version=2),
            kv("/services/C/new", "n", mod=8, lease=6),
        ],
        20,
    )
    kinds = _changes_by_key(changes)
    assert kinds == {
        b"/services/A/changed": ChangeKind.UPDATE,
        b"/services/B/gone": ChangeKind.DELETE,
        b"/services/C/new": ChangeKind.CREATE,
    }
    by_key = {c.key: c for c in changes}
    assert by_key[b"/services/A/changed"].previous is changed_before
    assert by_key[b"/services/A/changed"].instance.value == b"new"
    assert by_key[b"/services/A/changed"].instance.first_seen == changed_before.first_seen  # type: ignore[union-attr]
    assert by_key[b"/services/B/gone"].instance.value == b"g"
    assert by_key[b"/services/B/gone"].revision == 20
    assert state.get(b"/services/A/same") is same_before  # unchanged entries are kept as is
    assert state.revision == 20
    # indexes rebuilt: the gone key's lease and group are gone, the moved lease followed
    assert state.by_lease == {4: {b"/services/A/same"}, 6: {b"/services/C/new"}}
    assert set(state.groups) == {"A", "C"}
    assert set(state.groups["A"].instances) == {b"/services/A/same", b"/services/A/changed"}
    assert state.as_dict() == {
        b"/services/A/same": (b"s", 4, 2),
        b"/services/A/changed": (b"new", 0, 7),
        b"/services/C/new": (b"n", 6, 8),
    }


def test_identical_reload_reports_nothing() -> None:
    state = RegistryState(PREFIX)
    kvs = [kv(f"/services/S/{n}", str(n), mod=n + 1) for n in range(20)]
    state.load(kvs, 30)
    assert state.load(kvs, 31) == []
    assert state.revision == 31 and len(state) == 20


def test_load_of_nothing_deletes_everything() -> None:
    state = RegistryState(PREFIX)
    state.load([kv("/services/A/1", "a", mod=2, lease=3)], 5)
    changes = state.load([], 9)
    assert [(c.kind, c.key) for c in changes] == [(ChangeKind.DELETE, b"/services/A/1")]
    assert state.by_lease == {} and state.groups == {} and len(state) == 0


def test_events_after_a_load_apply_on_top() -> None:
    state = RegistryState(PREFIX)
    state.load([kv("/services/A/1", "a", mod=5)], 10)
    # an event older than the snapshot for a key the snapshot holds is stale
    assert state.apply_put(kv("/services/A/1", "older", mod=4)) is None
    change = state.apply_put(kv("/services/A/1", "b", mod=11))
    assert change is not None and change.kind is ChangeKind.UPDATE
    assert state.apply_delete(b"/services/A/1", 12) is not None
    assert len(state) == 0 and state.revision == 12
