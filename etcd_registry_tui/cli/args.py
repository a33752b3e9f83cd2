"""Argument types shared by the subcommands: numbers checked when parsed, so bad input is an
argparse error (exit code 2) rather than a traceback or a wrong answer later on."""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: Adds the connection options (``--endpoints``, ``--user``, …) to a subcommand's parser;
#: the second argument: whether they are the subcommand's own (not inherited).
AddOptions = Callable[[argparse.ArgumentParser, bool], None]

#: etcd's revisions are int64: nothing beyond this is a revision.
MAX_REVISION = 2**63 - 1
#: The most revisions of history read back (more is a typo, not a wish).
MAX_HISTORY = 1_000_000


def add_elections_prefix(parser: argparse.ArgumentParser) -> None:
    """``--elections-prefix P`` (repeatable), for the dashboard, ``elections`` and ``serve``.

    One default rule wherever it is given: absent (``argparse.SUPPRESS``) unless given, so
    an option given before a subcommand is not overwritten by the subcommand's default;
    then the profile's ``elections_prefixes``; else everywhere (see ``cli.main``).
    """
    parser.add_argument(
        "--elections-prefix",
        action="append",
        default=argparse.SUPPRESS,
        metavar="P",
        help="look for elections and locks only under P (repeatable; default: the profile's"
        " elections_prefixes, else everywhere)",
    )


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` (to ``high``), else a clear error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:,}, not {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, not {text}")
        return value

    return parse
