"""The registry tree's row model, free of Textual: rows, their order, and one block per group.

A row is either a ``str`` (a service header, the group name) or an :class:`Instance`. Rows
sort by :func:`row_key`: groups by name (the unrecognised group last), the header first,
then instances by id. A :class:`Block` holds one group's instances sorted by id, the rows
it currently shows, and counts (problems, holders per lease) kept up to date on each change.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from etcd_registry_tui.registry.model import NOT_SERVICES, Instance
from etcd_registry_tui.widgets.fit_text import IdForms

#: ``ttl_source(lease_id) -> (remaining seconds or None, granted TTL or None)``.
TtlSource = Callable[[int], tuple[float | None, int | None]]

Row = str | Instance
"""A row: the group name for a service header, or the instance itself."""

SortKey = tuple[bool, str, int, str, bytes]


def no_ttl(lease: int) -> tuple[float | None, int | None]:
    """A TTL source that knows no lease (a tree of the past, a tree without a tracker)."""
    return None, None


@lru_cache(maxsize=8192)
def group_key(name: str) -> tuple[bool, str]:
    return (name in NOT_SERVICES, name)


def _inst_key(inst: Instance) -> tuple[str, bytes]:
    return (inst.instance_id, inst.raw_key)


def row_group(row: Row) -> str:
    return row if row.__class__ is str else row.group  # type: ignore[union-attr]


def row_key(row: Row) -> SortKey:
    """The row's position in the tree: groups (non-services last), header, instances by id."""
    if row.__class__ is str:
        return (row in NOT_SERVICES, row, 0, "", b"")
    group = row.group  # type: ignore[union-attr]
    return (group in NOT_SERVICES, group, 1, row.instance_id, row.raw_key)  # type: ignore[union-attr]


class Block:
    """One group: its instances sorted by id and the rows it currently shows."""

    __slots__ = ("name", "instances", "rows", "problems", "leases", "_widths")

    def __init__(self, name: str, instances: list[Instance] | None = None) -> None:
        self.name = name
        self.instances: list[Instance] = instances if instances is not None else []
        self.rows: list[Row] = []
        self.problems = sum(1 for inst in self.instances if inst.has_problem)
        self.leases: Counter[int] = Counter(inst.lease for inst in self.instances)
        self._widths: tuple[IdForms, int] | None = None

    def widths(self) -> tuple[IdForms, int]:
        """How this group's ids are shortened and its longest address: worked out when
        the set of instances changed, then kept (an update keeps the id)."""
        widths = self._widths
        if widths is None:
            ids = [i.display_id for i in self.instances if i.key_error is None]
            longest = max((len(i.display_address or "") for i in self.instances), default=0)
            widths = self._widths = (IdForms.of(ids), longest)
        return widths

    def find(self, inst: Instance) -> int:
        """Index of the instance with this key, or -1."""
        instances = self.instances
        index = bisect_left(instances, _inst_key(inst), key=_inst_key)
        if index < len(instances) and instances[index].raw_key == inst.raw_key:
            return index
        return -1

    def insert(self, inst: Instance) -> None:
        instances = self.instances
        index = bisect_left(instances, _inst_key(inst), key=_inst_key)
        instances.insert(index, inst)
        self._count(inst, 1)
        self._widths = None

    def remove(self, inst: Instance) -> bool:
        index = self.find(inst)
        if index < 0:
            return False
        del self.instances[index]
        self._count(inst, -1)
        self._widths = None
        return True

    def replace(self, old: Instance, new: Instance) -> bool:
        index = self.find(old)
        if index < 0:
            return False
        self.instances[index] = new
        self._count(old, -1)
        self._count(new, 1)
        if new.display_address != old.display_address:
            self._widths = None
        return True

    def _count(self, inst: Instance, delta: int) -> None:
        if inst.has_problem:
            self.problems += delta
        leases = self.leases
        count = leases[inst.lease] + delta
        if count > 0:
            leases[inst.lease] = count
        else:
            leases.pop(inst.lease, None)
