"""What the app's mixins (:mod:`.app_history`, :mod:`.app_elections`, :mod:`.app_probes`)
use of :class:`~etcd_registry_tui.app.RegistryApp`, spelled out for the type checker.

A mixin cannot name ``RegistryApp`` as its base (the app derives from the mixins), so each
derives from :class:`AppHost`: at run time plain ``object``, to mypy an ``App`` that has the
attributes and methods below: the app's state (set up in ``RegistryApp.__init__``) and what
one mixin calls in another. ``RegistryApp`` (with its mixins) defines every one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from textual.app import App

    from .pending_updates import PendingUpdates
    from .registry.etcd.config import ConnectionConfig
    from .registry.log_entries import LogEntry
    from .registry.model import Change, Instance
    from .registry.session import RegistrySession
    from .registry.supervisor import Supervisor, TaskFailure
    from .screens.inspect import InspectScreen
    from .screens.inspect_source import InspectSource
    from .widgets.registry_tree import RegistryTree

    class AppHost(App[int]):
        config: ConnectionConfig
        session: RegistrySession
        supervisor: Supervisor
        read_only: bool
        pending: PendingUpdates
        _gc_frozen: bool
        _quitting: bool

        inspect_source: InspectSource

        @property
        def registry_tree(self) -> RegistryTree: ...
        def inspect_screens(self) -> list[InspectScreen]: ...
        async def shutdown_session(self) -> None: ...

        # app_actions
        def _fail(self, exc: BaseException, what: str) -> None: ...

        # app
        def _widgets_up(self) -> bool: ...

        # app_apply
        def _on_task_failure(self, failure: TaskFailure) -> None: ...
        def _sync_marks(self) -> None: ...
        def _highlighted(self) -> Instance | None: ...

        # app_elections
        @property
        def showing_elections(self) -> bool: ...
        def _refresh_leader_marks(self) -> None: ...
        def _tick_elections(self) -> None: ...
        def _keys_held_on(self, lease: int) -> set[bytes]: ...

        # app_history
        def _flush_history(self, entries: list[LogEntry] | None) -> None: ...
        def _sync_history_marks(self) -> None: ...
        def live_revision_changed(self) -> None: ...

        # app_probes
        def _probe_changes(self, changes: Mapping[bytes, Change] | None) -> None: ...
        def _inspect_probe_text(self, key: bytes) -> str | None: ...

else:
    AppHost = object
