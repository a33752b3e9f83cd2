"""Connection profiles: ``$XDG_CONFIG_HOME/etcd-registry-tui/config.toml``.

::

    default = "staging"

    [profiles.staging]
    endpoints = ["10.0.0.1:2379", "10.0.0.2:2379"]   # or "a:2379,b:2379"
    user = "viewer"
    password_env = "STAGING_ETCD_PASSWORD"           # or password_command = "pass show …"
    cacert = "~/certs/ca.pem"
    prefix = "/services/"                            # or ["/", "kitex/registry-etcd/"]
    elections_prefixes = ["/elections/"]
    read_only = true
    probe = false

Every key is optional. Precedence, per setting: command line > chosen profile >
``ETCDCTL_*`` variables > defaults (:func:`resolve`). A password is never kept in the file:
only the name of a variable holding it, or a command printing it.

Pure stdlib (tomllib): no Textual here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry.etcd.config import DEFAULT_ENDPOINT, DEFAULT_PREFIX
from ..registry.etcd.errors import ConfigError

APP_DIR = "etcd-registry-tui"
PROFILE_VARIABLE = "ETCD_REGISTRY_TUI_PROFILE"
PASSWORD_COMMAND_TIMEOUT = 30.0
#: After this many seconds a running password_command is said to be awaited (on stderr).
PASSWORD_COMMAND_NOTICE = 1.0

_STRINGS = ("user", "password_env", "password_command", "cacert", "cert", "key")
_BOOLS = ("read_only", "probe")
_LISTS = ("endpoints", "elections_prefixes")
_PATHS = ("cacert", "cert", "key")
KNOWN_KEYS = frozenset((*_STRINGS, *_BOOLS, *_LISTS, "prefix"))

#: Settings shown by ``profiles`` and resolved by :func:`resolve`, with the ETCDCTL_*
#: variable each falls back to (None: none) and its default.
SETTINGS: tuple[tuple[str, str | None, Any], ...] = (
    ("endpoints", "ETCDCTL_ENDPOINTS", DEFAULT_ENDPOINT),
    ("user", "ETCDCTL_USER", None),
    ("password", "ETCDCTL_PASSWORD", None),
    ("cacert", "ETCDCTL_CACERT", None),
    ("cert", "ETCDCTL_CERT", None),
    ("key", "ETCDCTL_KEY", None),
    ("prefix", None, DEFAULT_PREFIX),
    ("elections_prefixes", None, ()),
    ("read_only", None, False),
    ("probe", None, False),
)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/etcd-registry-tui/config.toml``, else ``~/.config/…``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    home = Path(env.get("HOME") or "~").expanduser()
    root = Path(base) if os.path.isabs(base) else home / ".config"
    return root / APP_DIR / "config.toml"


def _expand(path: str, env: Mapping[str, str]) -> str:
    if path == "~" or path.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        return home + path[1:]
    return os.path.expanduser(path)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    path: Path
    endpoints: tuple[str, ...] | None = None
    user: str | None = None
    password_env: str | None = None
    password_command: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    #: One prefix, or several (``prefix = ["/", "kitex/registry-etcd/"]``), as ``--prefix``.
    prefix: str | tuple[str, ...] | None = None
    elections_prefixes: tuple[str, ...] | None = None
    read_only: bool | None = None
    probe: bool | None = None
    #: Line of each key in the file (1-based), for messages.
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def where(self, key: str | None = None) -> str:
        line = self.lines.get(key or "") or self.lines.get("")
        return f"{self.path}, line {line}" if line else str(self.path)

    def password(
        self, run: Callable[[str], str] | None = None, env: Mapping[str, str] | None = None
    ) -> str | None:
        """The password from ``password_env`` or ``password_command`` (None if neither)."""
        env = os.environ if env is None else env
        if self.password_env:
            value = env.get(self.password_env)
            if not value:
                raise ConfigError(
                    f"profile {self.name!r}: ${self.password_env} is not set"
                    f" ({self.where('password_env')})",
                    f"export {self.password_env}=… before starting, or change password_env",
                )
            return value
        if self.password_command:
            return (run or run_password_command)(self.password_command)
        return None


def run_password_command(command: str) -> str:
    """Run ``password_command`` (no shell) and return its first output line.

    A command that asks for something (a pass-phrase, a touch of a key) may take a while: after
    :data:`PASSWORD_COMMAND_NOTICE` seconds a line on stderr says what is awaited and for how
    long; after :data:`PASSWORD_COMMAND_TIMEOUT` it is stopped and that is the error."""
    limit = PASSWORD_COMMAND_TIMEOUT
    try:
        argv = shlex.split(command)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"password_command {command!r} could not run: {exc}") from None
    try:
        try:
            out, _ = proc.communicate(timeout=min(PASSWORD_COMMAND_NOTICE, limit))
        except subprocess.TimeoutExpired:
            if limit <= PASSWORD_COMMAND_NOTICE:
                raise
            print(
                f"waiting for password_command {command!r} (gives up after {limit:g} s)…",
                file=sys.stderr,
                flush=True,
            )
            out, _ = proc.communicate(timeout=limit - PASSWORD_COMMAND_NOTICE)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"password_command {command!r} did not finish within {limit:g} s",
            "run it by hand to see what it waits for",
        ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        raise ConfigError(f"password_command {command!r} failed (exit code {proc.returncode})")
    lines = out.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"password_command {command!r} printed no password")
    return lines[0]


@dataclass(frozen=True, slots=True)
class ProfileFile:
    path: Path
    exists: bool = False
    default: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    default_line: int = 0

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def chosen_name(self, name: str | None, env: Mapping[str, str] | None = None) -> str | None:
        """``--profile``, else $ETCD_REGISTRY_TUI_PROFILE, else the file's ``default``."""
        env = os.environ if env is None else env
        return name or env.get(PROFILE_VARIABLE) or self.default

    def select(self, name: str | None, env: Mapping[str, str] | None = None) -> Profile | None:
        env = os.environ if env is None else env
        chosen = self.chosen_name(name, env)
        if chosen is None:
            return None
        if chosen in self.profiles:
            return self.profiles[chosen]
        if not self.exists:
            raise ConfigError(
                f"no profile {chosen!r}: there is no profiles file {self.path}",
                "create it (see the README's Profiles section), or drop --profile",
            )
        known = ", ".join(self.names()) or "none"
        origin = (
            f" (the default in {self.path}, line {self.default_line})"
            if not name and not env.get(PROFILE_VARIABLE)
            else f" (from ${PROFILE_VARIABLE})"
            if not name
            else ""
        )
        raise ConfigError(
            f"unknown profile {chosen!r}{origin}; known profiles in {self.path}: {known}",
            "pick one of those with --profile NAME",
        )


def _key_lines(text: str) -> tuple[int, dict[str, dict[str, int]]]:
    """Lines of ``default`` and of each ``[profiles.NAME]`` table and its keys."""
    default_line = 0
    lines: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    table = re.compile(r"""^\s*\[\s*profiles\s*\.\s*("([^"]*)"|'([^']*)'|[A-Za-z0-9_-]+)\s*\]""")
    for number, line in enumerate(text.splitlines(), 1):
        match = table.match(line)
        if match:
            name = match.group(2) or match.group(3) or match.group(1)
            current = lines.setdefault(name, {"": number})
            continue
        if line.lstrip().startswith("["):
            current = None
            continue
        key = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=", line)
        if key:
            if current is not None:
                current.setdefault(key.group(1), number)
            elif key.group(1) == "default":
                default_line = number
    return default_line, lines


def _toml_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """``FILE, line N: not valid TOML: …`` from tomllib's "… (at line N, column M)"."""
    message = str(exc)
    at = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if at:
        line, where = int(at.group(1)), f"line {at.group(1)}, column {at.group(2)}"
        message = message[: at.start()]
    else:  # "(at end of document)": the last line
        message = re.sub(r"\s*\(at end of document\)\s*$", "", message)
        line = max(1, len(text.splitlines()))
        where = f"line {line} (end of file)"
    return f"{path}, {where}: not valid TOML: {message}"


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> ProfileFile:
    """Read the profiles file; a missing file is an empty one."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProfileFile(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the profiles file {path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, text, exc), "fix that line") from None
    default_line, key_lines = _key_lines(text)

    def bad(message: str, line: int) -> ConfigError:
        where = f"{path}, line {line}" if line else str(path)
        return ConfigError(f"{where}: {message}", "see the README's Profiles section")

    unknown = sorted(set(doc) - {"default", "profiles"})
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (expected default and [profiles.NAME])", 0)
    default = doc.get("default")
    if default is not None and not isinstance(default, str):
        raise bad("default must be a profile name (a string)", default_line)
    tables = doc.get("profiles", {})
    if not isinstance(tables, dict):
        raise bad("profiles must be tables: [profiles.NAME]", 0)
    profiles: dict[str, Profile] = {}
    for name, body in tables.items():
        lines = key_lines.get(name, {})
        if not isinstance(body, dict):
            raise bad(f"profiles.{name} must be a table: [profiles.{name}]", lines.get("", 0))
        profiles[name] = _profile(name, body, path, lines, bad, env)
    return ProfileFile(path, True, default, profiles, default_line)


def _profile(
    name: str,
    body: dict[str, Any],
    path: Path,
    lines: dict[str, int],
    bad: Callable[[str, int], ConfigError],
    env: Mapping[str, str],
) -> Profile:
    values: dict[str, Any] = {}
    for key, value in body.items():
        line = lines.get(key, lines.get("", 0))
        if key == "password":
            raise bad(
                f"profile {name!r} keeps a password in clear; the file holds only"
                " password_env (a variable's name) or password_command",
                line,
            )
        if key not in KNOWN_KEYS:
            raise bad(f"profile {name!r}: unknown key {key!r}", line)
        if key == "prefix":
            several = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if not (isinstance(value, str) or (several and value)):
                raise bad(f"profile {name!r}: prefix must be a string or a list of strings", line)
            values[key] = value if isinstance(value, str) else tuple(value)
        elif key in _STRINGS:
            if not isinstance(value, str):
                raise bad(f"profile {name!r}: {key} must be a string", line)
            values[key] = _expand(value, env) if key in _PATHS else value
        elif key in _BOOLS:
            if not isinstance(value, bool):
                raise bad(f"profile {name!r}: {key} must be true or false", line)
            values[key] = value
        else:  # a list of strings, or one comma-separated string
            if isinstance(value, str):
                value = [part for part in value.split(",")]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(
                    f"profile {name!r}: {key} must be a list of strings or one"
                    " comma-separated string",
                    line,
                )
            values[key] = tuple(v.strip() for v in value if v.strip())
    user = values.get("user")
    if user is not None and ":" in user:
        raise bad(
            f"profile {name!r}: user must be a name only, not name:password", lines.get("user", 0)
        )
    if "password_env" in values and "password_command" in values:
        raise bad(
            f"profile {name!r}: give password_env or password_command, not both",
            lines.get("password_command", 0),
        )
    return Profile(name=name, path=path, lines=lines, **values)


@dataclass(frozen=True, slots=True)
class Setting:
    """One resolved setting and where it came from."""

    value: Any
    source: str  # "command line", "profile NAME", "ETCDCTL_X", "default"


def resolve(
    cli: Mapping[str, Any],
    profile: Profile | None,
    env: Mapping[str, str] | None = None,
    run: Callable[[str], str] | None = None,
    need_password: bool = True,
) -> dict[str, Setting]:
    """Each setting of :data:`SETTINGS` from the command line (``cli``: None = not given),
    else the profile, else its ``ETCDCTL_*`` variable, else the default.

    The password comes from the profile only for the profile's user. With
    ``need_password=False`` a profile's password is described, never fetched."""
    env = os.environ if env is None else env
    out: dict[str, Setting] = {}
    where = f"profile {profile.name}" if profile else ""
    for name, variable, default in SETTINGS:
        given = cli.get(name)
        if given is not None and given != "" and given != () and given is not False:
            out[name] = Setting(given, "command line")
            continue
        if name == "password":
            out[name] = _password(out, profile, env, run, need_password, variable)
            continue
        from_profile = getattr(profile, name, None) if profile is not None else None
        if from_profile is not None:
            out[name] = Setting(from_profile, where)
        elif variable and env.get(variable):
            value: Any = env[variable]
            out[name] = Setting(value, variable)
        else:
            out[name] = Setting(default, "default")
    return out


def _password(
    out: dict[str, Setting],
    profile: Profile | None,
    env: Mapping[str, str],
    run: Callable[[str], str] | None,
    need: bool,
    variable: str | None,
) -> Setting:
    user = out["user"]
    if user.source == "command line" and isinstance(user.value, str) and ":" in user.value:
        return Setting(None, "command line (--user name:password)")
    use_profile = profile is not None and (
        user.source.startswith("profile") or (profile.user is None and user.value is not None)
    )
    if use_profile and profile is not None:
        if profile.password_env:
            source = f"profile {profile.name}: ${profile.password_env}"
            return Setting(profile.password(run, env) if need else None, source)
        if profile.password_command:
            source = f"profile {profile.name}: command `{profile.password_command}`"
            return Setting(profile.password(run, env) if need else None, source)
    if variable and env.get(variable):
        return Setting(env[variable] if need else None, variable)
    return Setting(None, "default")


def check_files(profile: Profile | None, settings: Mapping[str, Setting]) -> None:
    """A certificate named by the profile must be a file: say which is not, and why."""
    if profile is None:
        return
    for name in _PATHS:
        setting = settings.get(name)
        if setting is None or not setting.source.startswith("profile"):
            continue
        path = str(setting.value)
        if os.path.isfile(path):
            continue
        what = (
            "is a directory, not a file"
            if os.path.isdir(path)
            else "is not a regular file"
            if os.path.exists(path)
            else "does not exist"
        )
        raise ConfigError(
            f"profile {profile.name!r}: {name} {path} {what} ({profile.where(name)})",
            "fix the path in the profile, or override it with --" + name,
        )
