"""How the registry tree follows the registry: a whole state, batches of changes, the
filter, collapsed services.

A mixin of :class:`~etcd_registry_tui.widgets.registry_tree.RegistryTree`: these methods
keep the blocks (:mod:`.tree_rows`) and then ask the widget to lay the rows out again
(:meth:`~etcd_registry_tui.widgets.registry_tree.RegistryTree._relayout`), redrawing only
what changed on screen.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from etcd_registry_tui.registry.model import Change, ChangeKind, Instance, RegistryState
from etcd_registry_tui.widgets.tree_host import TreeHost
from etcd_registry_tui.widgets.tree_rows import Block, Row, group_key, row_key


class TreeUpdates(TreeHost):
    """The part of the registry tree that changes what it holds."""

    # -- updates -------------------------------------------------------------
    def set_state(self, state: RegistryState) -> None:
        """Show everything in ``state`` (a :class:`RegistryState`), replacing what was shown.

        The cursor stays on the same key, or the nearest row when it is gone.
        """
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
            block.rows = self._block_rows(block)
        self._blocks, self._order, self._where = blocks, order, where
        self._collapsed &= set(blocks)
        self._expiring.clear()
        self._line_cache.clear()
        self._relayout(None)

    def apply_changes(self, changes: Iterable[Change]) -> None:
        """Apply a batch of changes (as returned by the model) in one go.

        A new value of a key that keeps its row (same service, same visibility under the
        filter) is swapped in place: only that row and its service's header are redrawn,
        and only if they are on screen. Anything else rebuilds the groups it touched.
        """
        dirty: set[str] = set()
        swapped: dict[bytes, tuple[Instance, Instance]] = {}
        where = self._where
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
                    block = self._blocks[inst.group]
                    if block.replace(held, inst):
                        if self._keeps_row(held, inst):
                            first = swapped.pop(inst.raw_key, (held, inst))[0]
                            swapped[inst.raw_key] = (first, inst)
                        else:
                            dirty.add(inst.group)
                        continue
                self._block_remove(held, dirty)
            self._block_insert(inst, dirty)
        if swapped:
            self._swap_rows([pair for pair in swapped.values() if pair[1].group not in dirty])
        if not dirty:
            return
        for name in dirty:
            self._expiring.pop(name, None)
            shown = self._blocks.get(name)
            if shown is not None:
                shown.rows = self._block_rows(shown)
        self._relayout(dirty)

    def _keeps_row(self, old: Instance, new: Instance) -> bool:
        """Whether ``new`` is shown exactly where ``old`` was (or hidden as it was)."""
        text = self._filter
        if not text or text in old.group.lower():
            return True
        return self._matches(old, text) == self._matches(new, text)

    def _swap_rows(self, pairs: list[tuple[Instance, Instance]]) -> None:
        """Put new instances in their predecessors' rows; redraw those on screen."""
        if not pairs:
            return
        rows, offsets, blocks = self._rows, self._offsets, self._blocks
        top = round(self.scroll_y)
        bottom = top + self.scrollable_content_region.height
        redraw: set[int] = set()
        for old, new in pairs:
            name = new.group
            self._expiring.pop(name, None)  # the lease may have changed
            offset = offsets.get(name)
            if offset is None:
                continue  # the service is hidden by the filter
            if top <= offset < bottom:
                redraw.add(offset)  # its header: problem and expiring counts
            block = blocks[name]
            index = bisect_left(block.rows, row_key(old), key=row_key)
            if index < len(block.rows) and block.rows[index] is old:
                block.rows[index] = new
                line = offset + index
                rows[line] = new
                if top <= line < bottom:
                    redraw.add(line)
        for line in sorted(redraw):
            self.refresh_lines(line)

    def set_filter(self, text: str) -> None:
        """Show only instances whose service name, id or address contains ``text``.

        Case-insensitive; a service whose name matches shows all its instances; an empty
        text shows everything.
        """
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        for block in self._blocks.values():
            block.rows = self._block_rows(block)
        self._relayout(None)

    def toggle_service(self, service: str) -> None:
        if service in self._collapsed:
            self.expand_service(service)
        else:
            self.collapse_service(service)

    def collapse_service(self, service: str) -> None:
        block = self._blocks.get(service)
        if block is None or service in self._collapsed:
            return
        self._collapsed.add(service)
        row = self._cursor_row()
        if row is not None and row.__class__ is not str and row.group == service:  # type: ignore[union-attr]
            # The cursor's row is about to disappear: keep it on the service.
            self._cursor = self._offsets.get(service, self._cursor)
        block.rows = self._block_rows(block)
        self._relayout({service})

    def expand_service(self, service: str) -> None:
        block = self._blocks.get(service)
        if block is None or service not in self._collapsed:
            return
        self._collapsed.discard(service)
        block.rows = self._block_rows(block)
        self._relayout({service})

    def select_key(self, raw_key: bytes) -> bool:
        """Move the cursor to the row of ``raw_key``; False when it is not shown."""
        inst = self._where.get(raw_key)
        if inst is None:
            return False
        rows = self._rows
        index = bisect_left(rows, row_key(inst), key=row_key)
        if index < len(rows) and rows[index] is inst:
            self._move_cursor(index)
            return True
        return False

    def _empty_message(self) -> str:
        """What an empty tree says: the filter's doing when it hides every instance."""
        if self._filter and self._blocks:
            return f"No instance matches '{self._filter}' — press Esc to clear the filter"
        return self.empty_text

    def set_empty_text(self, text: str) -> None:
        if text != self.empty_text:
            self.empty_text = text
            if not self._rows:
                self.refresh()

    # -- block maintenance ---------------------------------------------------
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
            shown = [inst for inst in block.instances if self._matches(inst, text)]
            if not shown:
                return []
        if name in self._collapsed:
            return [name]
        rows: list[Row] = [name]
        rows.extend(shown)
        return rows

    @staticmethod
    def _matches(inst: Instance, text: str) -> bool:
        if text in inst.instance_id.lower():
            return True
        if inst.address is not None and text in inst.address.lower():
            return True
        return inst.key_error is not None and text in inst.key.lower()

    def _shown_count(self, block: Block) -> int:
        text = self._filter
        if not text or text in block.name.lower():
            return len(block.instances)
        if block.name not in self._collapsed:
            return len(block.rows) - 1
        return sum(1 for inst in block.instances if self._matches(inst, text))
