"""``history`` and ``list --rev``: the registry's past from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..registry.etcd.config import ConnectionConfig
from ..registry.etcd.connection import EtcdConnection
from ..registry.etcd.errors import ConfigError, RegistryError, RevisionCompacted
from ..registry.events import ChangeBatch
from ..registry.history.alarms import FlapDetector, MassExpiryAlarm
from ..registry.history.read import HistoryRead, get_at, past_start, stream_past
from ..registry.history.store import DEFAULT_REVISIONS, HistoryEvent
from ..registry.model import RegistryState
from ..registry.sanitize import safe_line
from ..registry.session import RegistrySession
from . import listing as cli_listing
from .args import MAX_HISTORY, MAX_REVISION, AddOptions, whole_number

#: A history read of the CLI stops only after this many seconds with no event from etcd
#: (however long it takes while etcd delivers); what it did not read is then a gap record.
READ_IDLE = 30.0


def add_history_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history",
        type=whole_number(0, MAX_HISTORY),
        default=DEFAULT_REVISIONS,
        metavar="N",
        help=f"read back up to N revisions of history (default {DEFAULT_REVISIONS:,}; 0: none;"
        f" at most {MAX_HISTORY:,})",
    )


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive finite number, not {text!r}")
        return value

    return parse


def add_alarm_options(parser: argparse.ArgumentParser) -> None:
    """Thresholds of the mass-expiry alarm and of the flapping mark (the dashboard's)."""
    group = parser.add_argument_group("alarms")
    group.add_argument("--alarm-fraction", type=_positive(float), default=0.2, metavar="F",
                       help="mass expiry: this fraction of a service's (or all) instances "
                       "expiring within the window (default 0.2)")  # fmt: skip
    group.add_argument("--alarm-minimum", type=_positive(int), default=3, metavar="N",
                       help="... and at least N instances (default 3)")  # fmt: skip
    group.add_argument("--alarm-window", type=_positive(float), default=60.0, metavar="S",
                       help="... within S seconds; the banner stays until S quiet seconds "
                       "(default 60)")  # fmt: skip
    group.add_argument("--flap-threshold", type=_positive(int), default=3, metavar="N",
                       help="flapping: registered N times (default 3) ...")  # fmt: skip
    group.add_argument("--flap-window", type=_positive(float), default=300.0, metavar="S",
                       help="... within S seconds (default 300)")  # fmt: skip


def alarms_from_args(args: argparse.Namespace) -> tuple[FlapDetector, MassExpiryAlarm]:
    alarm = MassExpiryAlarm(
        fraction=min(1.0, args.alarm_fraction),
        minimum=int(args.alarm_minimum),
        window=args.alarm_window,
        quiet=args.alarm_window,
    )
    return FlapDetector(threshold=int(args.flap_threshold), window=args.flap_window), alarm


def _service_name(text: str) -> str:
    """``--service``: a name as it stands in a key (``PREFIX/NAME/ID``): not empty, no '/'."""
    if not text:
        raise argparse.ArgumentTypeError("is empty: give a service name, e.g. PaymentService")
    if "/" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a service name: a name has no '/' (it is one level of the key)"
        )
    return text


def add_parsers(sub: Any, add_connection_options: AddOptions) -> None:
    p_hist = sub.add_parser("history", help="print what happened in the registry, in order")
    p_hist.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line ("key_b64": the key\'s exact bytes); a read etcd'
        ' did not confirm whole adds one {"type": "incomplete", "from", "to",'
        ' "complete": false} record after its events',
    )
    p_hist.add_argument(
        "--since-rev",
        type=whole_number(1, MAX_REVISION),
        default=None,
        metavar="N",
        help="from revision N (past the latest: an error, unless --follow waits for it)",
    )
    p_hist.add_argument(
        "--service", type=_service_name, default=None, metavar="NAME", help="only this service"
    )
    p_hist.add_argument(
        "--follow",
        action="store_true",
        help="keep printing live events (events etcd compacted away meanwhile: one line, and"
        ' with --json a {"type": "gap", ...} record). A history read stops only after'
        f" {READ_IDLE:g} s with no event from etcd or a lost connection; what it did not"
        ' read is such a gap ("reason": "timed out" or the error; status 1), or with'
        " --follow read on from there",
    )
    add_history_option(p_hist)
    add_connection_options(p_hist, True)


async def print_past(
    conn: EtcdConnection,
    config: ConnectionConfig,
    start: int,
    end: int,
    on_events: Callable[[list[HistoryEvent]], None],
    args: argparse.Namespace | None = None,
) -> HistoryRead:
    """Every event under the prefix from ``start`` to ``end`` (a txn makes several in one
    revision; the CLI prints all it was asked for), each revision's handed to
    ``on_events`` as the replay delivers it: nothing is held, and a slow stdout slows the
    watch. Events compacted away during the read are a gap record there (with ``args``)."""

    async def printed(events: list[HistoryEvent]) -> None:
        on_events(events)

    async def compacted(first: int, last: int) -> None:
        if args is not None:
            print_gap(args, first, last, "compacted")

    return await stream_past(conn, config.prefix, start, end, printed, compacted, idle=READ_IDLE)


def print_event(
    event: HistoryEvent, as_json: bool, service: str | None, complete: bool = True
) -> None:
    """One line of ``history``. ``complete`` (a JSON field): every event before it was
    read (a read prints in revision order, so a read's events say true; whether etcd
    confirmed the read whole is said once it is known, after them: :func:`say_incomplete`)."""
    if service is not None and event.service != service:
        return
    if as_json:
        print(json.dumps({**event.to_json(), "complete": complete}, ensure_ascii=True), flush=True)
        return
    line = f"{event.revision:>10}  {event.label:<13}{safe_line(event.key_text)}"
    if event.detail:
        line += f"  {safe_line(event.detail)}"
    print(line, flush=True)


def say_incomplete(read: HistoryRead, end: int, as_json: bool = False, stops: bool = True) -> None:
    """Say once, on stderr, when etcd did not confirm that every event of a history read
    from its start to ``end`` was read; with ``as_json`` also as a record on stdout
    (``"type": "incomplete"``), so a script can tell even when the read has no event.
    ``stops``: say a read that stopped too (``history`` says it as a gap instead)."""
    if read.dropped:
        text = f"{read.dropped:,} older events left out (too many to hold)"
    elif read.stopped:
        if not stops:
            return
        text = f"revisions {read.through + 1} to {end} could not be read ({_why(read.why)})"
    elif not read.complete:
        text = f"etcd did not confirm that every event from revision {read.start} to {end} was read"
    else:
        return
    print(f"history: incomplete: {text}", file=sys.stderr, flush=True)
    if as_json:
        record = {"type": "incomplete", "from": read.start, "to": end, "complete": False}
        print(json.dumps(record, ensure_ascii=True), flush=True)


async def print_read(
    conn: EtcdConnection,
    config: ConnectionConfig,
    start: int,
    end: int,
    args: argparse.Namespace,
) -> HistoryRead:
    """Print a history read's events as they come (:func:`print_past`); then, once it is
    known, say so (:func:`say_incomplete`) when etcd did not confirm that every event from
    its start to ``end`` was read. Each event's ``complete`` is true: etcd delivers in
    revision order, so every event before it was read (or said by a gap record)."""

    def printed(events: list[HistoryEvent]) -> None:
        for event in events:
            print_event(event, args.json, args.service)

    read = await print_past(conn, config, start, end, printed, args)
    say_incomplete(read, end, args.json, stops=False)
    return read


def print_stop(read: HistoryRead, args: argparse.Namespace, to: int) -> bool:
    """The gap a read that stopped (:attr:`HistoryRead.stopped`) left up to ``to``; whether
    there is one."""
    if not read.stopped or read.through >= to:
        return False
    print_gap(args, read.through + 1, to, safe_line(read.why, 200))
    return True


def _why(why: str) -> str:
    """Why a read stopped, for a person."""
    if why == "timed out":
        return f"etcd sent no event for {READ_IDLE:g} s"
    return safe_line(why, 200)


async def cmd_history(config: ConnectionConfig, args: argparse.Namespace) -> int:
    if len(config.prefixes) > 1:
        raise ConfigError(
            "history reads one prefix: give --prefix once",
            "run it once per prefix; the dashboard shows the history of every prefix",
        )
    async with EtcdConnection(config) as conn:
        _, end = await conn.get_prefix(config.prefix.encode(), page_size=1, keys_only=True)
        since = args.since_rev
        if since is not None and since > end and not args.follow:
            raise RegistryError(
                f"revision {since} is in the future: the latest is {end}",
                f"give --since-rev {end} or less, or add --follow to wait for it",
            )
        start, _ = await past_start(
            conn, config.prefix, end, revisions=max(args.history, 0), since=since
        )
        if since is not None and start > since:
            print_gap(args, since, start - 1, "compacted")
        # Every event asked for, printed as it comes: the bound is the dashboard's memory.
        past = await print_read(conn, config, start, end, args)
    if not args.follow:
        return 1 if print_stop(past, args, end) else 0
    # A read that stopped: the follow reads on from where it did. A --since-rev not
    # reached yet: nothing before it is printed (the follow starts there).
    printed_to = past.through if past.stopped else end
    return await _follow(config, args, max(printed_to, (since or 0) - 1))


async def _follow(config: ConnectionConfig, args: argparse.Namespace, printed_to: int) -> int:
    """Live events after revision ``printed_to`` (the last the past covered), each once.

    A session names every removal as the dashboard does (lease lookups, countdowns); it
    starts from a snapshot at a later revision R, so what happened after ``printed_to`` up
    to R is read from etcd's history first, and the session's own events (after R) wait
    until it is printed. When the watch falls behind a compaction the session reloads a
    snapshot at a revision B: its difference is no event etcd recorded, so it is not
    printed; what etcd still holds up to B is read from history instead, and what it
    compacted away is said once (:func:`print_gap`).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # In order: ("events", list) from the session, ("snapshot", revision) for each snapshot.
    todo: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    snapshots: list[int] = []

    def batch(change: ChangeBatch, _entries: object) -> None:
        # The pages of the first snapshot share its revision; a reload is at a later one.
        if change.snapshot and (not snapshots or change.revision > snapshots[-1]):
            snapshots.append(change.revision)
            todo.put_nowait(("snapshot", change.revision))

    session = RegistrySession(
        config,
        read_only=True,
        history_revisions=0,
        on_events=lambda events: todo.put_nowait(("events", events)),
        on_batch=batch,
    )

    async def pump() -> None:
        through = printed_to  # history was read (or said compacted) up to here
        last = printed_to  # the newest revision printed
        while True:
            kind, item = await todo.get()
            if kind == "snapshot":
                after = max(through, last)
                if item > after:
                    await _print_gap(session.conn, config, args, after, item)
                through = max(through, item)
                continue
            for event in item:
                if event.revision <= through:
                    continue  # read from history already, or a reloaded snapshot's difference
                print_event(event, args.json, args.service)
                last = max(last, event.revision)

    runner = asyncio.ensure_future(session.run())
    printer = asyncio.ensure_future(pump())
    try:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([printer, stopping], return_when=asyncio.FIRST_COMPLETED)
        if printer.done():
            printer.result()  # pump never returns: this raises what stopped it
    finally:
        for task in (runner, printer):
            task.cancel()
        await asyncio.gather(runner, printer, return_exceptions=True)
        await session.shutdown()
    return 0


def print_gap(args: argparse.Namespace, first: int, last: int, why: str) -> None:
    """Say once that the events from revision ``first`` to ``last`` cannot be shown: on
    stderr, and with ``--json`` as a record of its own (``"type": "gap"``) on stdout."""
    if why == "compacted":
        text = f"revisions {first} to {last} are compacted; their events cannot be shown"
    else:
        text = f"revisions {first} to {last} could not be read ({_why(why)}); not printed"
    print(f"history: {text}", file=sys.stderr, flush=True)
    if args.json:
        record = {"type": "gap", "from": first, "to": last, "reason": why, "complete": False}
        print(json.dumps(record, ensure_ascii=True), flush=True)


async def _print_gap(
    conn: EtcdConnection, config: ConnectionConfig, args: argparse.Namespace, after: int, to: int
) -> None:
    """The events after ``after`` up to ``to`` (a snapshot of the session), from history."""
    if to <= after:
        return
    try:
        start, _ = await past_start(conn, config.prefix, to, since=after + 1)
        if start > after + 1:  # not past ``to``: the live watch delivers what follows it
            print_gap(args, after + 1, min(start - 1, to), "compacted")
        gap = await print_read(conn, config, start, to, args)
    except RegistryError as exc:
        print_gap(args, after + 1, to, safe_line(str(exc), 200))
        return
    print_stop(gap, args, to)


async def cmd_list_at(config: ConnectionConfig, revision: int, as_json: bool) -> int:
    """``list --rev N``: the registry as it was at revision N (no lease TTLs: they are now)."""
    async with EtcdConnection(config) as conn:
        try:
            kvs = await get_at(conn, config.prefix, revision)
        except RevisionCompacted as exc:
            print(
                f"revision {revision} is compacted: etcd keeps history from revision"
                f" {exc.compact_revision}",
                file=sys.stderr,
            )
            return 2
        except RegistryError as exc:
            if "future revision" not in str(exc):
                raise
            _, now = await conn.get_prefix(config.prefix.encode(), page_size=1, keys_only=True)
            raise RegistryError(
                f"revision {revision} is in the future: the latest is {now}",
                f"give --rev {now} or less",
            ) from None
    state = RegistryState(config.prefix)
    state.load(kvs, revision)
    groups = cli_listing.service_records(state, None)
    if as_json:
        cli_listing.print_json(config, revision, groups, state.layouts())
        return 0
    if not groups:
        print(f"No instances under {config.prefix} at revision {revision}.")
        return 0
    print(f"as of revision {revision}")
    cli_listing.print_text(groups)
    cli_listing.print_layouts(state.layouts())
    return 0
