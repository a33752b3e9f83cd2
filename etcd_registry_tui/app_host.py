"""What the app's mixins (:mod:`.app_history`, :mod:`.app_elections`, :mod:`.app_probes`)
use of :class:`~etcd_registry_tui.app.RegistryApp`, spelled out for the type checker.

A mixin cannot name ``RegistryApp`` as its base (the app derives from the mixins), so each
derives from :class:`AppHost`: at run time plain ``object``, to mypy an ``App`` that has the
attributes and methods below. ``RegistryApp`` defines every one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App
    from textual.timer import Timer

    from .registry.config import ConnectionConfig
    from .registry.session import LogEntry, RegistrySession
    from .registry.supervisor import Supervisor, TaskFailure
    from .widgets.registry_tree import RegistryTree

    class AppHost(App[int]):
        config: ConnectionConfig
        session: RegistrySession
        supervisor: Supervisor
        read_only: bool
        _pending_log: list[LogEntry]
        _flush_timer: Timer | None
        _dirty_posted: bool

        @property
        def registry_tree(self) -> RegistryTree: ...

        def _fail(self, exc: BaseException, what: str) -> None: ...

        def _on_task_failure(self, failure: TaskFailure) -> None: ...

else:
    AppHost = object
