"""TreeModel: the registry tree's rows without a widget (no Pilot, no Textual), on the
real registry model, checked against a plain reference built from scratch."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_registry_tui.registry.model import (
    UNRECOGNISED,
    Change,
    Instance,
    KeyValue,
    RegistryState,
)
from etcd_registry_tui.widgets.tree_model import TreeChange, TreeModel
from etcd_registry_tui.widgets.tree_rows import Row, row_key

PREFIX = "/services/"


def kv(service: str, instance_id: str, address: str = "10.0.0.1:80", rev: int = 1) -> KeyValue:
    value = b'{"Id": "%s", "Address": "%s"}' % (instance_id.encode(), address.encode())
    return KeyValue(f"{PREFIX}{service}/{instance_id}".encode(), value, rev, rev)


def key(service: str, instance_id: str) -> bytes:
    return f"{PREFIX}{service}/{instance_id}".encode()


class Registry:
    """A registry state and the revision counter that feeds it."""

    def __init__(self, kvs: list[KeyValue] | None = None) -> None:
        self.state = RegistryState(PREFIX)
        self.state.load(kvs or [], 10)
        self.revision = 10

    def put(self, service: str, instance_id: str, address: str = "10.0.0.1:80") -> Change:
        self.revision += 1
        change = self.state.apply_put(kv(service, instance_id, address, self.revision))
        assert change is not None
        return change

    def put_raw(self, raw: bytes, value: bytes) -> Change:
        self.revision += 1
        change = self.state.apply_put(KeyValue(raw, value, self.revision, self.revision))
        assert change is not None
        return change

    def delete(self, raw_key: bytes) -> Change:
        self.revision += 1
        change = self.state.apply_delete(raw_key, self.revision)
        assert change is not None
        return change


def names(rows: list[Row]) -> list[str]:
    """Rows as text: a header is its name, an instance ``service/id``."""
    return [row if isinstance(row, str) else f"{row.group}/{row.instance_id}" for row in rows]


def reference_rows(instances: list[Instance], text: str, collapsed: set[str]) -> list[Row]:
    """The rows from scratch: groups by name (unrecognised keys last), a header, its
    instances by id; a filter hides instances (not of a matching service), collapsing
    leaves the header."""
    text = text.strip().lower()
    groups: dict[str, list[Instance]] = {}
    for inst in instances:
        groups.setdefault(inst.group, []).append(inst)
    rows: list[Row] = []
    for name in sorted(groups, key=lambda n: (n == UNRECOGNISED, n)):
        members = sorted(groups[name], key=lambda i: (i.instance_id, i.raw_key))
        if text and text not in name.lower():
            members = [
                i
                for i in members
                if text in i.instance_id.lower()
                or text in (i.address or "").lower()
                or (i.key_error is not None and text in i.key.lower())
            ]
            if not members:
                continue
        rows.append(name)
        if name not in collapsed:
            rows.extend(members)
    return rows


def assert_consistent(model: TreeModel, state: RegistryState, collapsed: set[str]) -> None:
    """The model's rows, key → row map, offsets and counts agree with the reference."""
    expected = reference_rows(list(state.instances.values()), model.filter_text, collapsed)
    assert names(model.rows) == names(expected)
    assert [r if isinstance(r, str) else r.raw_key for r in model.rows] == [
        r if isinstance(r, str) else r.raw_key for r in expected
    ]
    assert dict(model.instances) == dict(state.instances)
    assert model.row_count == len(expected)
    for raw_key, inst in state.instances.items():
        index = model.index_of(raw_key)
        if index >= 0:
            assert model.rows[index] is inst  # the current value, not an old one
        else:
            assert not any(
                r is not None and not isinstance(r, str) and r.raw_key == raw_key for r in expected
            )
    shown_instances = [r for r in expected if not isinstance(r, str)]
    shown_keys = {r.raw_key for r in shown_instances}
    assert {k for k in state.instances if model.index_of(k) >= 0} == shown_keys
    for name in model.groups:
        offset = model.offset(name)
        if offset is not None:
            assert model.rows[offset] == name
            block = model.block(name)
            assert block is not None
            members = [i for i in state.instances.values() if i.group == name]
            assert len(block.instances) == len(members)
            assert block.problems == sum(1 for i in members if i.has_problem)
        else:
            assert name not in model.rows
        assert model.is_collapsed(name) == (name in collapsed)
    assert set(model.groups) == {i.group for i in state.instances.values()}


# -- examples --------------------------------------------------------------------


def test_a_snapshot_lays_out_groups_headers_and_instances_in_order() -> None:
    reg = Registry(
        [kv("web", "b"), kv("web", "a"), kv("api", "z")]
        + [KeyValue(b"/services/oddkey", b"x", 1, 1)]
    )
    model = TreeModel()
    change = model.set_state(reg.state)
    assert change.relaid and change.groups is None and change.counts is None
    odd = model.rows[-1]
    assert isinstance(odd, Instance) and odd.key_error is not None
    assert names(model.rows) == [
        "api",
        "api/z",
        "web",
        "web/a",
        "web/b",
        UNRECOGNISED,
        f"{UNRECOGNISED}/{odd.instance_id}",
    ]
    assert model.offset("web") == 2
    assert model.index_of(key("web", "b")) == 4
    assert model.index_of(b"/services/nothing") == -1


def test_a_new_value_in_place_is_swapped_not_relaid() -> None:
    reg = Registry([kv("api", "a"), kv("web", "a"), kv("web", "b")])
    model = TreeModel()
    model.set_state(reg.state)
    before = model.rows
    change = model.apply_changes([reg.put("web", "b", "10.0.0.2:80")])
    assert not change.relaid
    assert change.redraw == (2, 4)  # the header of web and web/b
    assert change.first == model.row_count  # no row moved
    assert change.counts == frozenset({"web"})
    assert model.rows is before and change.previous is before
    assert model.rows[4] is reg.state.get(key("web", "b"))
    assert_consistent(model, reg.state, set())


def test_a_burst_of_puts_and_deletes_relays_only_the_groups_it_touched() -> None:
    reg = Registry([kv("api", "a"), kv("web", "a"), kv("web", "b"), kv("zed", "a")])
    model = TreeModel()
    model.set_state(reg.state)
    before = model.rows
    burst = [
        reg.put("web", "c"),
        reg.delete(key("web", "a")),
        reg.put("new", "x"),
        reg.delete(key("zed", "a")),  # zed's last instance: the group goes
        reg.put("api", "a", "10.0.0.9:1"),  # a swap in a group nothing else touched
    ]
    change = model.apply_changes(burst)
    assert change.groups == frozenset({"web", "new", "zed"})
    assert change.counts == frozenset({"web", "new", "zed", "api"})
    assert change.previous is before and model.rows is not before
    assert names(model.rows) == ["api", "api/a", "new", "new/x", "web", "web/b", "web/c"]
    assert "zed" not in model.groups
    # the first line that changed: where "new" now starts (zed is gone: the end)
    assert change.first == model.first_line(change.groups or ()) == 2
    assert change.redraw == (0, 1)  # api and api/a, swapped in place (before "new")
    assert model.first_line(["zed"]) == model.row_count
    assert_consistent(model, reg.state, set())


def test_an_update_then_delete_in_one_burst_leaves_nothing_behind() -> None:
    reg = Registry([kv("web", "a"), kv("web", "b")])
    model = TreeModel()
    model.set_state(reg.state)
    change = model.apply_changes(
        [
            reg.put("web", "a", "10.0.0.3:1"),
            reg.put("web", "a", "10.0.0.4:1"),
            reg.delete(key("web", "a")),
        ]
    )
    assert change.groups == frozenset({"web"})
    assert names(model.rows) == ["web", "web/b"]
    assert model.instance(key("web", "a")) is None
    assert_consistent(model, reg.state, set())


def test_the_filter_hides_instances_keeps_matching_services_whole() -> None:
    reg = Registry(
        [
            kv("web", "a1", "10.0.0.1:80"),
            kv("web", "b2", "10.0.0.2:80"),
            kv("payments", "x", "10.9.9.9:1"),
            kv("api", "q", "10.0.0.2:99"),
        ]
    )
    model = TreeModel()
    model.set_state(reg.state)
    change = model.set_filter("  B2 ")
    assert change.groups is None and model.filter_text == "b2"
    assert names(model.rows) == ["web", "web/b2"]
    block = model.block("web")
    assert block is not None and model.shown_count(block) == 1
    assert model.set_filter("b2").relaid is False  # the same filter again: nothing to do
    model.set_filter("pay")  # a service name: all its instances
    assert names(model.rows) == ["payments", "payments/x"]
    model.set_filter("10.0.0.2")
    assert names(model.rows) == ["api", "api/q", "web", "web/b2"]
    # an update that leaves the filter's match moves rows: laid out again, not swapped
    change = model.apply_changes([reg.put("web", "b2", "10.1.1.1:80")])
    assert change.groups == frozenset({"web"})
    assert names(model.rows) == ["api", "api/q"]
    assert model.index_of(key("web", "b2")) == -1
    assert model.first_line(["web"]) == 2  # hidden: where the next group would start
    model.set_filter("nothing matches")
    assert model.rows == [] and model.nearest((False, "web", 0, "", b"")) == -1
    assert_consistent(model, reg.state, set())


def test_collapsing_keeps_the_header_and_survives_changes_until_the_group_goes() -> None:
    reg = Registry([kv("api", "a"), kv("web", "a"), kv("web", "b")])
    model = TreeModel()
    model.set_state(reg.state)
    change = model.collapse("web")
    assert change.groups == frozenset({"web"})
    assert model.is_collapsed("web") and names(model.rows) == ["api", "api/a", "web"]
    assert model.collapse("web").relaid is False  # already collapsed
    assert model.collapse("nothing").relaid is False
    block = model.block("web")
    assert block is not None and model.shown_count(block) == 2
    model.apply_changes([reg.put("web", "c")])
    assert names(model.rows) == ["api", "api/a", "web"]
    model.set_filter("c")
    assert block is model.block("web") and model.shown_count(block) == 1
    model.set_filter("")
    assert model.expand("web").groups == frozenset({"web"})
    assert names(model.rows) == ["api", "api/a", "web", "web/a", "web/b", "web/c"]
    model.collapse("web")
    model.apply_changes([reg.delete(key("web", k)) for k in "abc"])
    model.apply_changes([reg.put("web", "d")])
    assert not model.is_collapsed("web")  # a group that went and came back is open
    model.collapse("api")
    fresh = Registry([kv("web", "a")])
    model.set_state(fresh.state)
    assert not model.is_collapsed("api")
    assert_consistent(model, fresh.state, set())


def test_nearest_row_prefers_the_same_service() -> None:
    reg = Registry([kv("api", "a"), kv("web", "a"), kv("web", "c"), kv("zed", "a")])
    model = TreeModel()
    model.set_state(reg.state)
    gone = reg.state.get(key("web", "c"))
    assert gone is not None
    where = row_key(gone)
    model.apply_changes([reg.delete(key("web", "c"))])
    assert names(model.rows)[model.nearest(where)] == "web/a"  # not zed's header
    assert model.position(where) == model.offset("zed")


# -- the reference, under random bursts --------------------------------------------

SERVICES = ["api", "web", "Web2", "pay"]
IDS = ["a", "b", "c", "dd", "e1"]
ADDRESSES = ["10.0.0.1:80", "10.0.0.2:80", "h:1"]

put = st.tuples(
    st.just("put"), st.sampled_from(SERVICES), st.sampled_from(IDS), st.sampled_from(ADDRESSES)
)
delete = st.tuples(st.just("delete"), st.sampled_from(SERVICES), st.sampled_from(IDS))
odd = st.tuples(st.just("odd"), st.sampled_from(["x", "y/z/w"]))
burst = st.tuples(st.just("burst"), st.lists(st.one_of(put, delete, odd), max_size=8))
view = st.one_of(
    st.tuples(st.just("filter"), st.sampled_from(["", "a", "WEB", "10.0.0.2", "1", "zz", "x"])),
    st.tuples(st.just("collapse"), st.sampled_from(SERVICES)),
    st.tuples(st.just("expand"), st.sampled_from(SERVICES)),
    st.tuples(st.just("snapshot"), st.lists(put, max_size=6)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(burst, view), max_size=12))
def test_model_matches_a_reference_after_any_bursts(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    reg = Registry([kv("api", "a"), kv("web", "b")])
    model = TreeModel()
    model.set_state(reg.state)
    collapsed: set[str] = set()
    for step in steps:
        before = list(model.rows)
        change: TreeChange
        if step[0] == "burst":
            changes: list[Change] = []
            for op in step[1]:
                if op[0] == "put":
                    changes.append(reg.put(op[1], op[2], op[3]))
                elif op[0] == "odd":
                    changes.append(reg.put_raw(f"{PREFIX}{op[1]}".encode(), b"{}"))
                elif reg.state.get(key(op[1], op[2])) is not None:
                    changes.append(reg.delete(key(op[1], op[2])))
                    if not any(i.group == op[1] for i in reg.state.instances.values()):
                        collapsed.discard(op[1])  # a group that goes forgets it was collapsed
            change = model.apply_changes(changes)
        elif step[0] == "filter":
            change = model.set_filter(step[1])
        elif step[0] == "collapse":
            change = model.collapse(step[1])
            if model.block(step[1]) is not None:
                collapsed.add(step[1])
        elif step[0] == "expand":
            change = model.expand(step[1])
            collapsed.discard(step[1])
        else:
            fresh = RegistryState(PREFIX)
            fresh.load([kv(s, i, a, reg.revision + 1) for _, s, i, a in step[1]], reg.revision + 1)
            reg.state, reg.revision = fresh, reg.revision + 1
            change = model.set_state(reg.state)
        groups = {i.group for i in reg.state.instances.values()}
        collapsed &= groups
        assert_consistent(model, reg.state, collapsed)
        assert names(change.previous) == names(before)
        if not change.relaid:
            # the rows kept their shape: same keys at the same places
            assert [r if isinstance(r, str) else r.raw_key for r in model.rows] == [
                r if isinstance(r, str) else r.raw_key for r in before
            ]
        # rows before ``first`` kept their place; the rows to redraw are among them
        assert names(model.rows[: change.first]) == names(before[: change.first])
        for line in change.redraw:
            assert 0 <= line < change.first <= model.row_count
            assert model.rows[line] is before[line] or not isinstance(model.rows[line], str)
