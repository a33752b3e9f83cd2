"""What the registry tree's drawing mixin (:mod:`.tree_render`) uses of
:class:`~etcd_registry_tui.widgets.registry_tree.RegistryTree`, spelled out for mypy: the
widget's public interface only (the model it holds, the marks, the cursor), no private field.

At run time :class:`TreeHost` is plain ``object`` (so Textual sees no extra widget class);
to the type checker it is a ``ScrollView`` with these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from textual.scroll_view import ScrollView

    from etcd_registry_tui.widgets.tree_model import TreeModel
    from etcd_registry_tui.widgets.tree_rows import TtlSource

    class TreeHost(ScrollView):
        model: TreeModel
        ttl_source: TtlSource
        unknown_ttl_text: str

        @property
        def cursor_index(self) -> int: ...
        @property
        def own_keys(self) -> set[bytes]: ...
        @property
        def paused_keys(self) -> set[bytes]: ...
        @property
        def leader_keys(self) -> set[bytes]: ...
        @property
        def flapping(self) -> dict[bytes, int]: ...
        @property
        def marked(self) -> dict[bytes, str]: ...
        @property
        def probe_marks(self) -> Mapping[bytes, tuple[str, str]]: ...
        def empty_message(self) -> str: ...

else:
    TreeHost = object
