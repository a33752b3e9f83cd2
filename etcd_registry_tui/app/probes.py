"""Opt-in probes in the dashboard: ``P`` (or ``--probe``, or a profile) checks each address.

The probing itself is in :mod:`.registry.probes` (pure asyncio, supervised); here results
become marks on the tree (``✓ 12 ms``, ``✗ refused``, ``✗ timeout``, ``? no address``), a
count of unreachable instances per service, and a line of the inspect view. A part of
:class:`~etcd_registry_tui.app.RegistryApp`: :class:`Probes` owns the prober and its task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..registry.model import Change, ChangeKind
from ..registry.probes import ProbeOptions, Prober, ProbeResult
from ..registry.sanitize import safe_line
from ..registry.session import RegistrySession
from ..registry.supervisor import Supervisor

if TYPE_CHECKING:
    from . import RegistryApp

#: Marks reach the tree at most this often (results come in one by one).
MARKS_INTERVAL = 0.25


def describe_probe(result: ProbeResult | None, enabled: bool) -> str:
    """The inspect view's line: the last result and when."""
    if result is None:
        return "waiting for the first probe…" if enabled else "off (P probes every address)"
    when = time.strftime("%H:%M:%S", time.localtime(result.at))
    target = f" {safe_line(result.target)}" if result.target else ""
    detail = "" if result.detail in result.mark else f" ({safe_line(result.detail)})"
    state = "" if enabled else " — probing is off now"
    return f"{result.mark}{detail}{target} at {when}{state}"


class Probes:
    """What of the probes lives in the app: on/off, the prober's task, the marks."""

    def __init__(
        self,
        app: RegistryApp,
        session: RegistrySession,
        supervisor: Supervisor,
        options: ProbeOptions,
    ) -> None:
        self._app = app
        self._session = session
        self._supervisor = supervisor
        self.options = options
        self.prober = Prober(
            concurrency=options.concurrency,
            probe_path=options.path,
            on_result=self._on_probe_result,
        )
        self._probing = False
        self._task: asyncio.Task[None] | None = None
        self._marks_due = False

    @property
    def probing(self) -> bool:
        return self._probing

    def start_if_wanted(self) -> None:
        if self.options.enabled:
            self.set_probing(True)

    def toggle(self) -> None:
        """``P``: probes on or off, and say so."""
        self.set_probing(not self._probing)
        self._app.notify(
            "Probing every instance's address (every 10 s, 2 s timeout)"
            if self._probing
            else "Probes off",
            markup=False,
        )

    def set_probing(self, on: bool) -> None:
        if on == self._probing:
            return
        self._probing = on
        if on:
            self.prober.set_targets(
                {key: inst.address for key, inst in self._session.state.instances.items()}
            )
            self._task = asyncio.create_task(
                self._supervisor.run("probes", self.prober.run, wanted=lambda: self._probing)
            )
        else:
            if self._task is not None:
                self._task.cancel()
                self._task = None
            self.prober.set_targets({})
        self._app.sub_title = self._subtitle()
        self.push_marks()

    def _subtitle(self) -> str:
        base = self._app.sub_title.removesuffix(" · probing")
        return f"{base} · probing" if self._probing else base

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._probing = False
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def follow_changes(self, changes: Mapping[bytes, Change] | None) -> None:
        """After a flush: new, moved and gone instances (None: after a snapshot)."""
        if not self._probing:
            return
        if changes is None:
            self.prober.set_targets(
                {key: inst.address for key, inst in self._session.state.instances.items()}
            )
        else:
            for key, change in changes.items():
                if change.kind is ChangeKind.DELETE:
                    self.prober.remove(key)
                else:
                    self.prober.update(key, change.instance.address)
        self.push_marks()

    def _on_probe_result(self, key: bytes, result: ProbeResult) -> None:
        app = self._app
        if not self._marks_due and app.is_running:
            self._marks_due = True
            app.set_timer(MARKS_INTERVAL, self.push_marks, name="probe marks")
        for screen in app.inspect_screens():
            screen.follow_probe(key)

    def push_marks(self) -> None:
        """The prober's results onto the tree (at most every :data:`MARKS_INTERVAL`)."""
        self._marks_due = False
        if not self._app.is_running:
            return
        results = self.prober.results if self._probing else {}
        self._app.registry_tree.set_probe_marks(
            {key: (r.mark, r.level) for key, r in results.items()}
        )

    def inspect_text(self, key: bytes) -> str | None:
        """The inspect view's probe line; None (no line) when probes were never on."""
        result = self.prober.results.get(key)
        if result is None and not self._probing:
            return None
        return describe_probe(result, self._probing)
