"""What the registry tree's mixins (:mod:`.tree_updates`, :mod:`.tree_render`) use of
:class:`~etcd_registry_tui.widgets.registry_tree.RegistryTree`, spelled out for mypy.

At run time :class:`TreeHost` is plain ``object`` (so Textual sees no extra widget class);
to the type checker it is a ``ScrollView`` with the tree's state (set up in
``RegistryTree.__init__``) and the methods one part of the tree calls in another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.segment import Segment
    from rich.style import Style
    from textual.cache import LRUCache
    from textual.scroll_view import ScrollView

    from etcd_registry_tui.registry.model import Instance
    from etcd_registry_tui.widgets.tree_rows import Block, Row, TtlSource

    class TreeHost(ScrollView):
        ttl_source: TtlSource
        empty_text: str
        _own_keys: set[bytes]
        _paused_keys: set[bytes]
        _leader_keys: set[bytes]
        _flapping: dict[bytes, int]
        _marked: dict[bytes, str]
        unknown_ttl_text: str
        _probe_marks: dict[bytes, tuple[str, str]]
        _probe_down: dict[str, int]
        _filter: str
        _collapsed: set[str]
        _blocks: dict[str, Block]
        _order: list[str]
        _where: dict[bytes, Instance]
        _rows: list[Row]
        _offsets: dict[str, int]
        _cursor: int
        _expiring: dict[str, int]
        _line_cache: LRUCache[tuple[object, ...], list[Segment]]
        _countdown_cache: dict[tuple[object, ...], list[Segment]]
        _styles: dict[tuple[str, ...], Style]
        _pseudo_state: object
        _drawn: dict[int, tuple[object, ...]]

        # the widget (layout, cursor)
        def _relayout(self, dirty: set[str] | None) -> None: ...
        def _cursor_row(self) -> Row | None: ...
        def _move_cursor(self, index: int) -> None: ...
        def _empty_message(self) -> str: ...

        # the updates
        def _shown_count(self, block: Block) -> int: ...

else:
    TreeHost = object
