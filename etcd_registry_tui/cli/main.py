"""Command line: the dashboard (default), ``list``, ``register`` and ``demo``.

Connection options are named as etcdctl names them and fall back to the same
``ETCDCTL_*`` variables, so an etcd user feels at home.
"""

from __future__ import annotations

import os

# gRPC's C core logs TLS and connection trouble straight to stderr, which would
# scribble over the dashboard; our own errors say what went wrong instead.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import argparse  # noqa: E402
import asyncio
import contextlib
import dataclasses
import getpass  # noqa: E402
import signal
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..demo.fleet import MAX_INSTANCES, MAX_SERVICES
from ..registry.discover import MAX_SCAN_KEYS, discover
from ..registry.etcd.config import DEFAULT_PREFIX, ConnectionConfig, parse_duration
from ..registry.etcd.connection import EtcdConnection
from ..registry.etcd.errors import ConfigError, ConnectionOptionError, RegistryError
from ..registry.history.read import past_start
from ..registry.history.store import HistoryEvent
from ..registry.layouts import Layout
from ..registry.layouts.registrar import DEFAULT_TTL, check_address
from ..registry.model import RegistryState
from ..registry.probes import ProbeOptions
from ..registry.registration import ServiceRegistration
from ..registry.sanitize import safe_text
from ..registry.wording import lease_text
from ..serve import server as serve
from . import elections as cli_elections
from . import history as cli_history
from . import listing as cli_listing
from . import profiles as cli_profiles
from .args import MAX_HISTORY, MAX_REVISION, add_elections_prefix, whole_number

PROG = "etcd-registry-tui"


def _add_connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection (as etcdctl)")
    group.add_argument(
        "--endpoints",
        default=default,
        help="comma-separated etcd endpoints (default $ETCDCTL_ENDPOINTS or 127.0.0.1:2379)",
    )
    group.add_argument(
        "--user", default=default, help="name:password for etcd auth (default $ETCDCTL_USER)"
    )
    group.add_argument("--password", default=default, help="password (instead of name:password)")
    group.add_argument(
        "--dial-timeout", default=default, help="time to wait for etcd, e.g. 5s (default 5s)"
    )
    group.add_argument(
        "--command-timeout", default=default, help="deadline of each request (default 5s)"
    )
    group.add_argument(
        "--prefix",
        default=default,
        action="append",
        # Before a command (``--prefix A list --prefix B``) its own list: argparse would
        # let the command's replace it; cli_values() joins the two.
        dest="prefix" if suppress else "prefix_before",
        help="registry key prefix, ending in / (default /services/; e.g. kitex/registry-etcd/);"
        " repeat it to watch several, one watch each",
    )
    group.add_argument("--cacert", default=default, help="CA bundle to verify etcd's TLS cert")
    group.add_argument("--cert", default=default, help="client TLS certificate")
    group.add_argument("--key", default=default, help="client TLS key")
    cli_profiles.add_profile_option(group, suppress)  # type: ignore[arg-type]


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("probes (off by default; P in the dashboard)")
    group.add_argument(
        "--probe", action="store_true", help="check that each instance's Address answers"
    )
    group.add_argument(
        "--probe-path", metavar="PATH", help="GET this path of http(s) addresses, e.g. /health"
    )
    group.add_argument(
        "--probe-concurrency",
        type=int,
        default=32,
        metavar="N",
        help="most probes at once (default 32)",
    )


def probe_options(args: argparse.Namespace, resolved: cli_profiles.Resolved) -> ProbeOptions:
    concurrency = getattr(args, "probe_concurrency", 32)
    if concurrency < 1:
        raise ConfigError(f"--probe-concurrency {concurrency} must be at least 1")
    path = getattr(args, "probe_path", None)
    if path is not None and not path.startswith("/"):
        raise ConfigError(f"--probe-path {path!r} must start with '/'", "e.g. --probe-path /health")
    return ProbeOptions(enabled=bool(resolved.value("probe")), path=path, concurrency=concurrency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A live terminal dashboard for service registries kept in etcd.",
        epilog="Without a command it opens the dashboard. `demo` runs it on a private etcd.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--read-only", action="store_true", help="turn every writing action off (monitoring)"
    )
    parser.add_argument(
        "--no-profile-switch",
        action="store_true",
        help="offer no switch to another profile (as the tabs of `serve` run)",
    )
    _add_connection_options(parser, suppress=False)
    parser.add_argument(
        "--max-memory",
        type=float,
        metavar="MB",
        help="memory budget for the prefix's keys; a larger prefix is not loaded and the"
        " dashboard says so (default: half the machine's memory, at most 4096)",
    )
    add_discover_option(parser, suppress=False)
    add_elections_prefix(parser)
    cli_history.add_history_option(parser)
    cli_history.add_alarm_options(parser)
    add_probe_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="print services, instances and their lease TTLs")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    add_discover_option(p_list, suppress=True)
    p_list.add_argument(
        "--rev",
        type=whole_number(1, MAX_REVISION),
        default=None,
        metavar="N",
        help="the registry as it was at revision N (1 or more)",
    )
    p_list.add_argument(
        "--history",
        dest="list_history",
        type=whole_number(0, MAX_HISTORY),
        default=0,
        metavar="N",
        help="also print what happened in the last N revisions (at most"
        f" {MAX_HISTORY:,}), with each removal's reason",
    )
    _add_connection_options(p_list, suppress=True)

    p_reg = sub.add_parser("register", help="register an instance and keep it alive until ^C")
    p_reg.add_argument("--name", required=True, help="service name, e.g. OrderShippingService")
    p_reg.add_argument("--address", required=True, help="instance URL, e.g. http://localhost:5000")
    p_reg.add_argument(
        "--ttl",
        type=int,
        default=None,
        help="lease TTL in seconds (default 30, or the --layout framework's own default)",
    )
    p_reg.add_argument("--id", dest="instance_id", help="instance id (default: a new UUID)")
    p_reg.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        default=Layout.WALKTHROUGH.value,
        help="write what this framework's registrar writes (default: services, the"
        " walkthrough's /services/{name}/{id}); see README's registry layouts",
    )
    _add_connection_options(p_reg, suppress=True)

    cli_elections.add_parsers(sub, _add_connection_options)
    serve.add_parser(sub, _add_connection_options)
    add_discover_option(sub.choices["serve"], suppress=True)
    cli_history.add_parsers(sub, _add_connection_options)
    cli_profiles.add_parser(sub)

    p_demo = sub.add_parser("demo", help="the dashboard on a private etcd with a simulated fleet")
    p_demo.add_argument(
        "--services",
        type=int,
        default=5,
        help=f"number of services (default 5, at most {MAX_SERVICES})",
    )
    p_demo.add_argument(
        "--instances",
        type=int,
        default=6,
        help=f"most instances per service (default 6, at most {MAX_INSTANCES})",
    )
    p_demo.add_argument("--seed", type=int, default=None, help="same seed, same fleet")
    p_demo.add_argument(
        "--mixed",
        action="store_true",
        help="services in the frameworks' layouts too (kratos, micro, dubbo-app, goframe, coredns)",
    )
    p_demo.add_argument("--etcd-binary", help="etcd executable (default: etcd on PATH)")
    p_demo.add_argument(
        "--no-ui", action="store_true", help="run only etcd and the fleet, print the endpoint"
    )
    p_demo.add_argument(
        "--read-only", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    _add_connection_options(p_demo, suppress=True)

    # What each command runs: ``args.func(args)`` (the dashboard without a command).
    parser.set_defaults(func=_connected(_run_dashboard))
    commands: dict[str, Command] = {
        "list": _connected(_run_list),
        "register": _connected(lambda args, config, _: asyncio.run(cmd_register(config, args))),
        "elect": _connected(
            lambda args, config, _: asyncio.run(cli_elections.cmd_elect(config, args))
        ),
        "elections": _connected(
            lambda args, config, _: asyncio.run(cli_elections.cmd_elections(config, args))
        ),
        "serve": _connected(lambda args, config, _: serve.run_serve(args, config)),
        "history": _connected(
            lambda args, config, _: asyncio.run(cli_history.cmd_history(config, args))
        ),
        "profiles": cli_profiles.cmd_profiles,  # reads the profiles file, connects nowhere
        "demo": _connected(_run_demo),
    }
    assert set(commands) == set(sub.choices), "every subcommand runs something"
    for name, command in commands.items():
        sub.choices[name].set_defaults(func=command)
    return parser


#: A command: the parsed arguments in, the exit code out.
Command = Callable[[argparse.Namespace], int]


def _connected(
    run: Callable[[argparse.Namespace, ConnectionConfig, cli_profiles.Resolved], int],
) -> Command:
    """A command that runs on the connection the arguments, the profile and ``ETCDCTL_*``
    resolve to (see :func:`resolve_config`), its ``--elections-prefix`` resolved as well."""

    def command(args: argparse.Namespace) -> int:
        config, resolved = resolve_config(args)
        if getattr(args, "discover", False):
            config = asyncio.run(discovered(config))
        args.elections_prefix = list(resolved.value("elections_prefixes")) or None
        return run(args, config, resolved)

    return command


def add_discover_option(parser: argparse.ArgumentParser, suppress: bool) -> None:
    parser.add_argument(
        "--discover",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="scan the keyspace once (keys only, at most"
        f" {MAX_SCAN_KEYS:,}) and watch every prefix where a known layout writes, beside"
        " any --prefix given",
    )


async def discovered(config: ConnectionConfig) -> ConnectionConfig:
    """``config`` watching every prefix :func:`discover` finds too; what was found where is
    said on stderr in one line."""
    async with EtcdConnection(config) as conn:
        found = await discover(conn)
    print(f"discover: {safe_text(found.describe())}", file=sys.stderr, flush=True)
    given = config.prefixes if config.prefixes != (DEFAULT_PREFIX,) else ()
    every = tuple(dict.fromkeys((*given, *found.prefixes))) or config.prefixes
    return dataclasses.replace(config, prefix=every[0], more_prefixes=every[1:])


def config_from_args(args: argparse.Namespace) -> ConnectionConfig:
    return resolve_config(args)[0]


def resolve_config(
    args: argparse.Namespace,
) -> tuple[ConnectionConfig, cli_profiles.Resolved]:
    """The connection: command line > chosen profile > ETCDCTL_* variables > defaults."""

    def duration(value: str | None, option: str) -> float | None:
        # Given but empty ("--dial-timeout ''") is an error, not the default.
        return parse_duration(value, option) if value is not None else None

    resolved = cli_profiles.resolve_args(args)
    user, password = resolved.value("user"), resolved.value("password")
    if user and ":" not in user and password is None:
        if not sys.stdin.isatty():
            raise ConnectionOptionError(
                f"--user {user} has no password: use --user {user}:PASSWORD"
            )
        password = getpass.getpass(f"Password for {user}: ")  # as etcdctl asks
    endpoints = resolved.value("endpoints")
    prefix = resolved.value("prefix")  # one (a profile's or the default) or several
    prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
    config = ConnectionConfig.from_options(
        endpoints=",".join(endpoints) if isinstance(endpoints, tuple) else endpoints,
        user=user,
        password=password,
        dial_timeout=duration(args.dial_timeout, "--dial-timeout"),
        command_timeout=duration(args.command_timeout, "--command-timeout"),
        prefix=prefixes[0],
        cacert=resolved.value("cacert"),
        cert=resolved.value("cert"),
        key=resolved.value("key"),
        more_prefixes=prefixes[1:],
    )
    if getattr(args, "max_memory", None):  # the dashboard's --max-memory, applied here only
        config = dataclasses.replace(config, memory_budget_mb=args.max_memory)
    return config, resolved


# -- list ---------------------------------------------------------------------
def _run_list(args: argparse.Namespace, config: ConnectionConfig, _: cli_profiles.Resolved) -> int:
    if len(config.prefixes) > 1 and (args.rev is not None or args.list_history > 0):
        raise ConfigError(
            "list --rev and --history read one prefix: give --prefix once",
            "several prefixes are listed as they are now (without --rev or --history)",
        )
    if args.rev is not None:
        return asyncio.run(cli_history.cmd_list_at(config, args.rev, args.json))
    return asyncio.run(cmd_list(config, args.json, args.list_history))


async def cmd_list(config: ConnectionConfig, as_json: bool, history: int = 0) -> int:
    async with EtcdConnection(config) as conn:
        watched = config.watched_prefixes
        kvs, revision = await conn.get_prefixes([p.encode() for p in watched])
        state = RegistryState(config.prefixes)
        state.load(kvs, revision)
        ttls = await cli_listing.lease_ttls(conn, state.leases())
        groups = cli_listing.service_records(state, ttls)
        start = 0
        if history > 0:
            start, _ = await past_start(conn, config.prefix, revision, revisions=history)
        if as_json:
            if history <= 0:
                cli_listing.print_json(config, revision, groups, state.layouts())
                return 0
            # The history as it is read: "history_complete" comes last, once it is known.
            doc = cli_listing.JsonList(
                "history", config, revision, groups, state.layouts(), history_from=start
            )
            past = await cli_history.print_past(
                conn, config, start, revision, lambda events: doc.add(e.to_json() for e in events)
            )
            doc.close(history_complete=past.complete)
            return 0
        if not groups:
            under = ", ".join(watched)
            print(f"No instances under {under} at {config.label} (revision {revision}).")
        cli_listing.print_text(groups)
        cli_listing.print_layouts(state.layouts())
        if history <= 0:
            return 0
        print(f"\nHistory from revision {start} to {revision}, oldest first:")

        def printed(events: list[HistoryEvent]) -> None:
            for event in events:
                cli_history.print_event(event, as_json=False, service=None)

        past = await cli_history.print_past(conn, config, start, revision, printed)
    cli_history.say_incomplete(past, revision)
    return 0


# -- register -----------------------------------------------------------------
async def cmd_register(config: ConnectionConfig, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    layout = Layout(args.layout)
    try:  # before connecting: a typo is a usage error, not a lease granted and revoked
        if not args.address.strip():
            raise ValueError("the address is empty")
        check_address(layout, args.address)
    except ValueError as exc:
        return _fail(f"--address: {exc}", 2)
    async with EtcdConnection(config) as conn:
        ttl = args.ttl if args.ttl is not None else DEFAULT_TTL[layout]
        reg = ServiceRegistration(
            conn, args.name, args.address, ttl=ttl, instance_id=args.instance_id,
            prefix=config.prefix, layout=layout,
        )  # fmt: skip
        async with reg:
            print(
                f"registered {reg.key} at {config.label} (lease {lease_text(reg.lease_id)},"
                f" TTL {reg.ttl}s); Ctrl-C to unregister",
                flush=True,
            )
            await stop.wait()
            held_by = reg.held_by
        if held_by is None:
            print(f"unregistered {reg.key}", flush=True)
        else:
            holder = f"lease {lease_text(held_by)}" if held_by else "no lease"
            print(f"left {reg.key} alone: held by another instance ({holder})", flush=True)
    return 0


# -- dashboard ----------------------------------------------------------------
#: Connection options a profile switch from the dashboard's palette drops: the new profile
#: is what the user picked.
_PROFILE_SWITCH_CLEARS = (
    "endpoints",
    "user",
    "password",
    "cacert",
    "cert",
    "key",
    "prefix",
    "prefix_before",
)


def _run_dashboard(
    args: argparse.Namespace, config: ConnectionConfig, resolved: cli_profiles.Resolved
) -> int:
    from ..app import SwitchProfile, run_app

    #: The command line's --read-only holds across switches; a profile may only add it.
    read_only_given = bool(args.read_only)
    switchable = not getattr(args, "no_profile_switch", False)
    while True:
        try:
            return run_app(
                config,
                read_only=resolved.value("read_only"),
                elections_prefixes=args.elections_prefix or (),
                profile=resolved.profile_name,
                profiles=resolved.file.names() if switchable else (),
                probes=probe_options(args, resolved),
                history_revisions=args.history,
                alarms=cli_history.alarms_from_args(args),
            )
        except SwitchProfile as switch:
            if not switchable:
                return 0
            args.profile = switch.name
            for option in _PROFILE_SWITCH_CLEARS:
                setattr(args, option, None)
            args.elections_prefix = None
            args.read_only = read_only_given
            args.probe = False
            config, resolved = resolve_config(args)
            args.elections_prefix = list(resolved.value("elections_prefixes")) or None


def _run_demo(args: argparse.Namespace, config: ConnectionConfig, _: cli_profiles.Resolved) -> int:
    from ..demo import run_demo

    return run_demo(args, config)


# -- main ---------------------------------------------------------------------
def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: error: {safe_text(message)}", file=sys.stderr)
    return code


#: What a shell reports for a program killed by SIGPIPE (128 + 13), as ``cat`` or ``ls`` do.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is noisy
    except BrokenPipeError:
        # The reader went away (``list | head -1``): nothing left to say to anyone.
        # Point stdout at /dev/null so Python's final flush does not complain either.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except RegistryError as exc:
        return _fail(exc.user_message())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except OSError as exc:
        return _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
