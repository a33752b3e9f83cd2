"""Opt-in probes in the dashboard: ``P`` (or ``--probe``, or a profile) checks each address.

The probing itself is in :mod:`.registry.probes` (pure asyncio, supervised); here results
become marks on the tree (``✓ 12 ms``, ``✗ refused``, ``✗ timeout``, ``? no address``), a
count of unreachable instances per service, and a line of the inspect view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from .app_host import AppHost
from .registry.model import Change, ChangeKind
from .registry.probes import ProbeOptions, Prober, ProbeResult
from .registry.sanitize import safe_line

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


class ProbesMixin(AppHost):
    """What of the probes lives in the app."""

    prober: Prober
    probing: bool

    def _init_probes(self, options: ProbeOptions) -> None:
        self.probe_options = options
        self.prober = Prober(
            concurrency=options.concurrency,
            probe_path=options.path,
            on_result=self._on_probe_result,
        )
        self.probing = False
        self._probe_task: asyncio.Task[None] | None = None
        self._marks_due = False

    def _start_probes_if_wanted(self) -> None:
        if self.probe_options.enabled:
            self._set_probing(True)

    def action_toggle_probes(self) -> None:
        self._set_probing(not self.probing)
        self.notify(
            "Probing every instance's address (every 10 s, 2 s timeout)"
            if self.probing
            else "Probes off",
            markup=False,
        )

    def _set_probing(self, on: bool) -> None:
        if on == self.probing:
            return
        self.probing = on
        if on:
            self.prober.set_targets(
                {key: inst.address for key, inst in self.session.state.instances.items()}
            )
            self._probe_task = asyncio.create_task(
                self.supervisor.run("probes", self.prober.run, wanted=lambda: self.probing)
            )
        else:
            if self._probe_task is not None:
                self._probe_task.cancel()
                self._probe_task = None
            self.prober.set_targets({})
        self.sub_title = self._probe_subtitle()
        self._push_marks()

    def _probe_subtitle(self) -> str:
        base = self.sub_title.removesuffix(" · probing")
        return f"{base} · probing" if self.probing else base

    async def _stop_probes(self) -> None:
        task, self._probe_task = self._probe_task, None
        self.probing = False
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _probe_changes(self, changes: Mapping[bytes, Change] | None) -> None:
        """After a flush: new, moved and gone instances (None: after a snapshot)."""
        if not self.probing:
            return
        if changes is None:
            self.prober.set_targets(
                {key: inst.address for key, inst in self.session.state.instances.items()}
            )
        else:
            for key, change in changes.items():
                if change.kind is ChangeKind.DELETE:
                    self.prober.remove(key)
                else:
                    self.prober.update(key, change.instance.address)
        self._push_marks()

    def _on_probe_result(self, key: bytes, result: ProbeResult) -> None:
        if not self._marks_due and self.is_running:
            self._marks_due = True
            self.set_timer(MARKS_INTERVAL, self._push_marks, name="probe marks")
        for screen in self.inspect_screens():
            screen.follow_probe(key)

    def _push_marks(self) -> None:
        self._marks_due = False
        if not self.is_running:
            return
        results = self.prober.results if self.probing else {}
        self.registry_tree.set_probe_marks({key: (r.mark, r.level) for key, r in results.items()})

    def _inspect_probe_text(self, key: bytes) -> str | None:
        """The inspect view's probe line; None (no line) when probes were never on."""
        result = self.prober.results.get(key)
        if result is None and not self.probing:
            return None
        return describe_probe(result, self.probing)
