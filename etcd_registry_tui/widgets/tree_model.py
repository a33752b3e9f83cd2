"""What the registry tree shows, as a plain object (no Textual): the groups and their
order, the filter, the collapsed services, the flat row list and the key → instance map.

:class:`TreeModel` follows the registry (a whole state, batches of changes) and the
viewer (filter, collapsing). Each change returns a :class:`TreeChange` saying what
happened to the rows, so that the widget, which holds the model, moves its cursor and
redraws only what changed on screen.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from etcd_registry_tui.registry.model import Change, ChangeKind, Instance, RegistryState
from etcd_registry_tui.widgets.tree_rows import Block, Row, SortKey, group_key, row_group, row_key


@dataclass(frozen=True, slots=True)
class TreeChange:
    """What one change to a :class:`TreeModel` did to its rows."""

    #: The rows before the change (the cursor's and the view's indices are into these);
    #: the same list as the model's rows when they were not laid out again.
    previous: list[Row]
    #: Groups whose rows were laid out again; ``None``: any may have (a new state, a
    #: new filter); empty: the row list kept its shape.
    groups: frozenset[str] | None = frozenset()
    #: Rows whose instance was swapped in place (and their headers), in order: they
    #: keep their index, only their text changed (rows from ``first`` on are not listed).
    redraw: tuple[int, ...] = ()
    #: Groups whose counts (problems, leases) may have changed; ``None``: all.
    counts: frozenset[str] | None = frozenset()
    #: The first row that may differ from ``previous`` (as laid out now): the rows
    #: before it kept their place; ``0`` when any may have moved.
    first: int = 0

    @property
    def relaid(self) -> bool:
        """Whether the row list was built again (rows came, went or moved)."""
        return self.groups is None or bool(self.groups)


@dataclass(slots=True, eq=False)
class TreeModel:
    """The tree's rows: one :class:`Block` per group, in display order, concatenated."""

    _blocks: dict[str, Block] = field(default_factory=dict, init=False)
    _order: list[str] = field(default_factory=list, init=False)  # group names, in order
    _where: dict[bytes, Instance] = field(default_factory=dict, init=False)
    _rows: list[Row] = field(default_factory=list, init=False)
    _offsets: dict[str, int] = field(default_factory=dict, init=False)  # header rows
    _filter: str = field(default="", init=False)
    _collapsed: set[str] = field(default_factory=set, init=False)

    # -- queries -------------------------------------------------------------
    @property
    def rows(self) -> list[Row]:
        """The rows shown, in order (headers are group names). Read it, do not change it."""
        return self._rows

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def groups(self) -> list[str]:
        """Every group held (shown or not), in display order."""
        return list(self._order)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def instances(self) -> Mapping[bytes, Instance]:
        """Every instance held (shown or hidden by the filter), by key (read-only)."""
        return MappingProxyType(self._where)

    def instance(self, raw_key: bytes) -> Instance | None:
        return self._where.get(raw_key)

    def block(self, name: str) -> Block | None:
        return self._blocks.get(name)

    def is_collapsed(self, name: str) -> bool:
        return name in self._collapsed

    def offset(self, name: str) -> int | None:
        """The row of ``name``'s header, ``None`` when the group is not shown."""
        return self._offsets.get(name)

    def row_at(self, index: int) -> Row | None:
        rows = self._rows
        return rows[index] if 0 <= index < len(rows) else None

    def index_of(self, raw_key: bytes) -> int:
        """The row of ``raw_key``'s instance, -1 when it is not shown."""
        inst = self._where.get(raw_key)
        if inst is None:
            return -1
        rows = self._rows
        index = bisect_left(rows, row_key(inst), key=row_key)
        if index < len(rows) and rows[index] is inst:
            return index
        return -1

    def position(self, key: SortKey) -> int:
        """Where a row with ``key`` is, or would be, in the rows."""
        return bisect_left(self._rows, key, key=row_key)

    def nearest(self, key: SortKey) -> int:
        """The row at ``key``, or the nearest one (same service first); -1 when empty."""
        rows = self._rows
        if not rows:
            return -1
        index = bisect_left(rows, key, key=row_key)
        if index < len(rows) and row_key(rows[index]) == key:
            return index
        group = key[1]
        following = index if index < len(rows) else None
        preceding = index - 1 if index > 0 else None
        if following is not None and row_group(rows[following]) == group:
            return following
        if preceding is not None and row_group(rows[preceding]) == group:
            return preceding
        return following if following is not None else preceding  # type: ignore[return-value]

    def first_line(self, groups: Iterable[str]) -> int:
        """The first row any of ``groups`` has, or (gone or hidden) would have: where the
        next shown group starts; the row count when none is before the end."""
        offsets, order, rows = self._offsets, self._order, self._rows
        first = len(rows)
        for name in groups:
            offset = offsets.get(name)
            if offset is None:
                index = bisect_left(order, group_key(name), key=group_key)
                offset = next((offsets[n] for n in order[index:] if n in offsets), len(rows))
            first = min(first, offset)
        return first

    def shown_count(self, block: Block) -> int:
        """How many of the block's instances pass the filter."""
        text = self._filter
        if not text or text in block.name.lower():
            return len(block.instances)
        if block.name not in self._collapsed:
            return len(block.rows) - 1
        return sum(1 for inst in block.instances if _matches(inst, text))

    # -- changes -------------------------------------------------------------
    def set_state(self, state: RegistryState) -> TreeChange:
        """Hold everything in ``state``, replacing what was held."""
        previous = self._rows
        blocks: dict[str, Block] = {}
        order: list[str] = []
        where: dict[bytes, Instance] = {}
        for service in state.sorted_groups():
            instances = service.sorted_instances()
            if not instances:
                continue
            block = blocks[service.name] = Block(service.name, instances)
            order.append(service.name)
            where.update((inst.raw_key, inst) for inst in instances)
        self._blocks, self._order, self._where = blocks, order, where
        self._collapsed &= set(blocks)
        for block in blocks.values():
            block.rows = self._block_rows(block)
        self._lay_out()
        return TreeChange(previous, None, (), None)

    def apply_changes(self, changes: Iterable[Change]) -> TreeChange:
        """Apply a batch of changes (as returned by the registry model) in one go.

        A new value of a key that keeps its row (same service, same visibility under the
        filter) is swapped in place (``redraw``: that row and its service's header);
        anything else lays out again the groups it touched (``groups``).
        """
        previous = self._rows
        dirty: set[str] = set()
        swapped: dict[bytes, tuple[Instance, Instance]] = {}
        where, blocks = self._where, self._blocks
        for change in changes:
            inst = change.instance
            held = where.get(inst.raw_key)
            if change.kind is ChangeKind.DELETE:
                if held is not None:
                    del where[inst.raw_key]
                    self._block_remove(held, dirty)
                continue
            where[inst.raw_key] = inst
            if held is not None:
                if held.group == inst.group:
                    block = blocks[inst.group]
                    if block.replace(held, inst):
                        if self._keeps_row(held, inst):
                            first = swapped.pop(inst.raw_key, (held, inst))[0]
                            swapped[inst.raw_key] = (first, inst)
                        else:
                            dirty.add(inst.group)
                        continue
                self._block_remove(held, dirty)
            self._block_insert(inst, dirty)
        counts = set(dirty)
        redraw: tuple[int, ...] = ()
        if swapped:
            pairs = [pair for pair in swapped.values() if pair[1].group not in dirty]
            counts.update(new.group for _, new in pairs)
            redraw = self._swap_rows(pairs)
        if not dirty:
            return TreeChange(previous, frozenset(), redraw, frozenset(counts), len(previous))
        for name in dirty:
            shown = blocks.get(name)
            if shown is not None:
                shown.rows = self._block_rows(shown)
        self._lay_out()
        start = self.first_line(dirty)
        redraw = tuple(line for line in redraw if line < start)
        return TreeChange(previous, frozenset(dirty), redraw, frozenset(counts), start)

    def set_filter(self, text: str) -> TreeChange:
        """Show only instances whose service name, id or address contains ``text``.

        Case-insensitive; a service whose name matches shows all its instances; an empty
        text shows everything.
        """
        previous = self._rows
        text = text.strip().lower()
        if text == self._filter:
            return TreeChange(previous, first=len(previous))
        self._filter = text
        for block in self._blocks.values():
            block.rows = self._block_rows(block)
        self._lay_out()
        return TreeChange(previous, None)

    def collapse(self, name: str) -> TreeChange:
        """Show ``name``'s header alone (no change when it is not held or collapsed)."""
        return self._set_collapsed(name, True)

    def expand(self, name: str) -> TreeChange:
        return self._set_collapsed(name, False)

    def _set_collapsed(self, name: str, collapsed: bool) -> TreeChange:
        previous = self._rows
        block = self._blocks.get(name)
        if block is None or (name in self._collapsed) == collapsed:
            return TreeChange(previous, first=len(previous))
        if collapsed:
            self._collapsed.add(name)
        else:
            self._collapsed.discard(name)
        block.rows = self._block_rows(block)
        self._lay_out()
        return TreeChange(previous, frozenset((name,)), first=self.first_line((name,)))

    # -- upkeep --------------------------------------------------------------
    def _lay_out(self) -> None:
        """Concatenate the blocks' rows (references only: fast at 10,000 rows)."""
        rows: list[Row] = []
        offsets: dict[str, int] = {}
        extend = rows.extend
        blocks = self._blocks
        for name in self._order:
            block_rows = blocks[name].rows
            if block_rows:
                offsets[name] = len(rows)
                extend(block_rows)
        self._rows, self._offsets = rows, offsets

    def _keeps_row(self, old: Instance, new: Instance) -> bool:
        """Whether ``new`` is shown exactly where ``old`` was (or hidden as it was)."""
        text = self._filter
        if not text or text in old.group.lower():
            return True
        return _matches(old, text) == _matches(new, text)

    def _swap_rows(self, pairs: Collection[tuple[Instance, Instance]]) -> tuple[int, ...]:
        """Put new instances in their predecessors' rows; the rows (and headers) changed."""
        rows, offsets, blocks = self._rows, self._offsets, self._blocks
        redraw: set[int] = set()
        for old, new in pairs:
            name = new.group
            offset = offsets.get(name)
            if offset is None:
                continue  # the service is hidden by the filter
            redraw.add(offset)  # its header: problem and expiring counts
            block = blocks[name]
            index = bisect_left(block.rows, row_key(old), key=row_key)
            if index < len(block.rows) and block.rows[index] is old:
                block.rows[index] = new
                line = offset + index
                rows[line] = new
                redraw.add(line)
        return tuple(sorted(redraw))

    def _block_insert(self, inst: Instance, dirty: set[str]) -> None:
        name = inst.group
        block = self._blocks.get(name)
        if block is None:
            block = self._blocks[name] = Block(name)
            order = self._order
            order.insert(bisect_left(order, group_key(name), key=group_key), name)
        block.insert(inst)
        dirty.add(name)

    def _block_remove(self, inst: Instance, dirty: set[str]) -> None:
        name = inst.group
        block = self._blocks.get(name)
        if block is None or not block.remove(inst):
            return
        dirty.add(name)
        if not block.instances:
            del self._blocks[name]
            order = self._order
            index = bisect_left(order, group_key(name), key=group_key)
            if index < len(order) and order[index] == name:
                del order[index]
            self._collapsed.discard(name)

    def _block_rows(self, block: Block) -> list[Row]:
        name = block.name
        text = self._filter
        if not text or text in name.lower():
            shown = block.instances
        else:
            shown = [inst for inst in block.instances if _matches(inst, text)]
            if not shown:
                return []
        if name in self._collapsed:
            return [name]
        rows: list[Row] = [name]
        rows.extend(shown)
        return rows


def _matches(inst: Instance, text: str) -> bool:
    """Whether the filter ``text`` (lower case) is in the instance's id or address (or,
    for a key that is no instance, in its key)."""
    if text in inst.instance_id.lower():
        return True
    if inst.address is not None and text in inst.address.lower():
        return True
    return inst.key_error is not None and text in inst.key.lower()
