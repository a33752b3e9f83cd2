"""``--profile`` on every command, and ``profiles``: list them with where each value comes from."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..registry.etcd.errors import ConfigError
from ..registry.sanitize import safe_line
from . import profile_file as profiles
from .profile_file import Profile, ProfileFile, Setting


def add_profile_option(parser: argparse.ArgumentParser, suppress: bool) -> None:
    parser.add_argument(
        "--profile",
        default=argparse.SUPPRESS if suppress else None,
        metavar="NAME",
        help=f"connection profile from {_shown_path()} (default ${profiles.PROFILE_VARIABLE},"
        " else the file's default)",
    )


def _shown_path() -> str:
    home = os.path.expanduser("~")
    path = str(profiles.config_path())
    return "~" + path[len(home) :] if home != "/" and path.startswith(home + "/") else path


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "profiles", help="list the connection profiles and where each value comes from"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_profile_option(p, True)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the command line, the chosen profile and the environment add up to."""

    profile: Profile | None
    file: ProfileFile
    settings: dict[str, Setting]

    @property
    def profile_name(self) -> str | None:
        return self.profile.name if self.profile else None

    def value(self, name: str) -> Any:
        return self.settings[name].value


def cli_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "endpoints": getattr(args, "endpoints", None),
        "user": getattr(args, "user", None),
        "password": getattr(args, "password", None),
        "cacert": getattr(args, "cacert", None),
        "cert": getattr(args, "cert", None),
        "key": getattr(args, "key", None),
        # --prefix, once or more, before the command and after it
        "prefix": (
            *(getattr(args, "prefix_before", None) or ()),
            *(getattr(args, "prefix", None) or ()),
        ),
        "elections_prefixes": tuple(getattr(args, "elections_prefix", None) or ()),
        "read_only": bool(getattr(args, "read_only", False)),
        "probe": bool(getattr(args, "probe", False)),
    }


def resolve_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, need_password: bool = True
) -> Resolved:
    env = os.environ if env is None else env
    endpoints = getattr(args, "endpoints", None)
    if endpoints is not None and not endpoints.strip(" ,"):
        # Given but empty (e.g. an unset shell variable): not silently another endpoint.
        raise ConfigError("--endpoints is empty", "give host:port[,host:port…]")
    file = profiles.load(env=env)
    profile = file.select(getattr(args, "profile", None), env)
    settings = profiles.resolve(cli_values(args), profile, env, need_password=need_password)
    profiles.check_files(profile, settings)
    return Resolved(profile, file, settings)


# -- profiles ---------------------------------------------------------------------------------
def _shown(name: str, setting: Setting) -> Any:
    if name == "password":
        return None  # never printed: only where it comes from
    value = setting.value
    return list(value) if isinstance(value, tuple) else value


def cmd_profiles(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    file = profiles.load(env=env)
    chosen = file.chosen_name(getattr(args, "profile", None), env)
    if chosen is not None:
        file.select(chosen, env)  # an unknown name is an error, listing the known ones
    entries: list[dict[str, Any]] = []
    for name in file.names():
        profile = file.profiles[name]
        settings = profiles.resolve({}, profile, env, need_password=False)
        entries.append(
            {
                "name": name,
                "default": name == file.default,
                "chosen": name == chosen,
                "settings": {
                    key: {"value": _shown(key, s), "source": s.source}
                    for key, s in settings.items()
                },
            }
        )
    if args.json:
        doc: dict[str, Any] = {
            "file": str(file.path),
            "exists": file.exists,
            "default": file.default,
            "chosen": chosen,
            "profiles": entries,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=True))
        return 0
    if not file.exists:
        print(f"No profiles file at {file.path}.")
        return 0
    if not entries:
        print(f"No profiles in {file.path}.")
        return 0
    print(f"Profiles in {file.path}:")
    for entry in entries:
        marks = [m for m, on in (("default", entry["default"]), ("chosen", entry["chosen"])) if on]
        print(f"\n{safe_line(entry['name'])}" + (f"  ({', '.join(marks)})" if marks else ""))
        for key, item in entry["settings"].items():
            value = item["value"]
            if key == "password":
                text = "(not shown)" if item["source"] != "default" else "(none)"
            elif isinstance(value, list):
                text = ",".join(value) if value else "(none)"
            elif value is None:
                text = "(none)"
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            print(f"  {key:<19} {safe_line(text):<36} {safe_line(item['source'])}")
    sys.stdout.flush()
    return 0
