"""``--elections-prefix`` is one option with one default rule, wherever it is written.

Given before the subcommand (``etcd-registry-tui --elections-prefix P elections``) it is
the same option as after it: the subcommand's parser no longer brings a default of its
own that silently replaced it (before, the listing then searched everywhere). Each
command runs what its parser set (``set_defaults(func=...)``), checked on a real etcd.
"""

from __future__ import annotations

import json

from support.etcdctl import Etcdctl
from test_cli import run_cli

from etcd_registry_tui.cli.main import build_parser


def names(*argv: str) -> list[str]:
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    return sorted(e["name"] for e in json.loads(result.stdout))


def test_the_prefix_before_or_after_the_subcommand_is_the_same(etcd, etcdctl: Etcdctl) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(f"/locks/db/{lease:x}", "holder", lease=lease)
    etcdctl.put(f"election/nodejob/{lease}", "node-1", lease=lease)
    where = ("--endpoints", etcd.endpoint)

    assert names("elections", "--json", *where) == ["/locks/db", "election/nodejob"]
    after = names("elections", "--json", "--elections-prefix", "/locks/", *where)
    before = names("--elections-prefix", "/locks/", "elections", "--json", *where)
    assert after == before == ["/locks/db"]


def test_every_command_runs_what_its_parser_set() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command")  # argparse's own
    for name, sub in subcommands.choices.items():  # type: ignore[union-attr]
        assert callable(sub.get_default("func")), name
    assert callable(parser.get_default("func"))  # no command: the dashboard
    absent = parser.parse_args([])
    assert not hasattr(absent, "elections_prefix")  # absent unless given: one default rule
    assert parser.parse_args(["serve", "--elections-prefix", "/e/"]).elections_prefix == ["/e/"]
