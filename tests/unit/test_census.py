"""The layout census that RegistryState keeps as instances come and go: after any run of
puts, updates, deletes, reloads and restores it equals a count made from scratch."""

from __future__ import annotations

import json
import random
from collections import Counter

from test_model import kv

from etcd_registry_tui.registry.census import RAW, LayoutCount, where_of
from etcd_registry_tui.registry.model import FRAMEWORK_PATHS, RegistryState
from etcd_registry_tui.widgets.status_bar import layouts_text

WALK = {"Id": "a", "Name": "shop", "Address": "http://127.0.0.1:5000"}
KRATOS = {"id": "k", "name": "shop", "version": "v1", "metadata": {},
          "endpoints": ["grpc://127.0.0.1:9000"]}  # fmt: skip
# (key, value) pairs the random run picks from: walkthrough, kratos, raw, a path key.
CHOICES = [
    ("/services/shop/{n}", json.dumps(WALK)),
    ("/microservices/shop/{n}", json.dumps(KRATOS)),
    ("/services/odd{n}", "not json"),
    ("/rpcx_test", "rpcx_path"),
    ("/staging/shop/{n}", json.dumps(WALK)),
]


def from_scratch(state: RegistryState) -> Counter[tuple[str, str]]:
    """The census as a walk over every instance would count it."""
    prefixes = tuple(p.encode() for p in state.prefixes)
    counted: Counter[tuple[str, str]] = Counter()
    for inst in state:
        if inst.service == FRAMEWORK_PATHS:
            continue
        layout = inst.layout_name or RAW
        where = where_of(inst.raw_key, prefixes, by_root=layout != RAW)
        counted[(layout, where.decode())] += 1
    return counted


def held(state: RegistryState) -> Counter[tuple[str, str]]:
    return Counter({(c.layout, c.where): c.instances for c in state.layouts()})


def test_the_census_follows_every_change() -> None:
    rng = random.Random(7)
    state = RegistryState(("/", "/services/"))
    revision = 1
    for _ in range(3000):
        revision += 1
        key_text, value = rng.choice(CHOICES)
        key = key_text.format(n=rng.randrange(30)).encode()
        roll = rng.random()
        if roll < 0.55:
            state.apply_put(kv(key, value, mod=revision))
        elif roll < 0.9:
            state.apply_delete(key, revision)
        elif roll < 0.95:
            state.restore(key, kv(key, value, mod=revision), revision)
        else:  # a reload: half of what is held, at once
            kept = [kv(i.raw_key, i.value, mod=i.mod_revision) for i in state][::2]
            state.load(kept, revision)
        assert held(state) == from_scratch(state)
    totals = {c.layout: c.instances for c in state.layout_totals()}
    assert totals == dict(Counter(layout for layout, _ in held(state).elements()))
    assert held(state.copy()) == held(state)


def test_where_is_the_root_under_a_wide_prefix_and_the_prefix_for_raw_keys() -> None:
    state = RegistryState("/")
    state.apply_put(kv("/microservices/shop/k", KRATOS, mod=2))
    state.apply_put(kv("/junk1/x/y/z", "?", mod=3))
    state.apply_put(kv("/junk2/x/y/z", "?", mod=4))
    assert held(state) == {("kratos", "/microservices/"): 1, (RAW, "/"): 2}
    # Kratos is in one place: the status line may name it; raw keys last.
    assert state.layout_totals() == [
        LayoutCount("kratos", "/microservices/", 1),
        LayoutCount(RAW, "/", 2),
    ]


def test_the_status_line_names_layouts_only_beside_others() -> None:
    only_walkthrough = [LayoutCount("services", "/services/", 5)]
    assert layouts_text(only_walkthrough, with_places=True) == ""
    mixed = [LayoutCount("services", "/services/", 1200), LayoutCount("kratos", "", 3)]
    assert layouts_text(mixed, with_places=True) == "services 1,200 in /services/ · kratos 3"
    assert layouts_text(mixed, with_places=False) == "services 1,200 · kratos 3"
    many = [LayoutCount(f"l{i}", "/x/", 1) for i in range(6)]
    assert layouts_text(many, with_places=False).endswith("l3 1 +2 more")
