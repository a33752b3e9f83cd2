"""Connection profiles: the file, precedence, errors, ``profiles``, and the dashboard's switch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.etcdctl import Etcdctl
from test_cli import run_cli

from etcd_registry_tui.app import RegistryApp, SwitchProfile
from etcd_registry_tui.cli import profile_file as profiles
from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.errors import ConfigError

ISSUE_EXAMPLE = """\
default = "staging"            # the profile used when none is named

[profiles.staging]
endpoints = ["10.0.0.1:2379", "10.0.0.2:2379"]   # or one comma-separated string
user = "viewer"
password_env = "STAGING_ETCD_PASSWORD"           # or: password_command = "pass show etcd/staging"
cacert = "~/certs/ca.pem"
cert = "~/certs/client.pem"
key = "~/certs/client-key.pem"
prefix = "/services/"
elections_prefixes = ["/elections/"]
read_only = true
probe = false

[profiles.local]
endpoints = "127.0.0.1:2379, 127.0.0.1:22379"
"""


def write_config(text: str) -> Path:
    """Write the profiles file where the CLI looks for it ($XDG_CONFIG_HOME, per test)."""
    path = profiles.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_path_follows_xdg_else_home() -> None:
    assert profiles.config_path({"XDG_CONFIG_HOME": "/x"}) == Path(
        "/x/etcd-registry-tui/config.toml"
    )
    assert profiles.config_path({"HOME": "/home/u"}) == Path(
        "/home/u/.config/etcd-registry-tui/config.toml"
    )
    # A relative XDG_CONFIG_HOME is invalid by the spec: ignored.
    assert profiles.config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/etcd-registry-tui/config.toml"
    )


def test_the_issue_example_is_read_with_home_expanded(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ISSUE_EXAMPLE)
    file = profiles.load(path, env={"HOME": "/home/ops"})
    assert file.default == "staging" and file.names() == ["local", "staging"]
    staging = file.select(None, env={})
    assert staging is not None and staging.name == "staging"
    assert staging.endpoints == ("10.0.0.1:2379", "10.0.0.2:2379")
    assert staging.cacert == "/home/ops/certs/ca.pem"
    assert staging.key == "/home/ops/certs/client-key.pem"
    assert staging.elections_prefixes == ("/elections/",)
    assert staging.read_only is True and staging.probe is False
    assert staging.lines["cacert"] == 7
    local = file.select("local", env={})
    assert local is not None and local.endpoints == ("127.0.0.1:2379", "127.0.0.1:22379")
    # $ETCD_REGISTRY_TUI_PROFILE picks one when --profile does not.
    chosen = file.select(None, env={profiles.PROFILE_VARIABLE: "local"})
    assert chosen is local


def test_precedence_command_line_then_profile_then_etcdctl_then_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.p]\nendpoints = "p:2379"\nprefix = "/p/"\n')
    profile = profiles.load(path, env={}).profiles["p"]
    env = {"ETCDCTL_ENDPOINTS": "env:2379", "ETCDCTL_CACERT": "/env/ca.pem"}
    got = profiles.resolve({"prefix": "/cli/"}, profile, env)
    assert (got["prefix"].value, got["prefix"].source) == ("/cli/", "command line")
    assert (got["endpoints"].value, got["endpoints"].source) == (("p:2379",), "profile p")
    assert (got["cacert"].value, got["cacert"].source) == ("/env/ca.pem", "ETCDCTL_CACERT")
    assert (got["read_only"].value, got["read_only"].source) == (False, "default")
    without = profiles.resolve({}, None, env)
    assert (without["endpoints"].value, without["endpoints"].source) == (
        "env:2379",
        "ETCDCTL_ENDPOINTS",
    )
    assert profiles.resolve({}, None, {})["endpoints"].value == "127.0.0.1:2379"


def test_password_comes_from_a_variable_or_a_command_never_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    command = f'{sys.executable} -c "print(42)"'
    path.write_text(
        '[profiles.a]\nuser = "u"\npassword_env = "A_PW"\n'
        f"[profiles.b]\nuser = \"u\"\npassword_command = '{command}'\n"
    )
    file = profiles.load(path, env={})
    got = profiles.resolve({}, file.profiles["a"], {"A_PW": "s3cret"})
    assert got["password"].value == "s3cret" and got["password"].source == "profile a: $A_PW"
    assert profiles.resolve({}, file.profiles["b"], {})["password"].value == "42"
    with pytest.raises(ConfigError, match=r"\$A_PW is not set"):
        profiles.resolve({}, file.profiles["a"], {})
    # A user given on the command line with its password wins over the profile.
    got = profiles.resolve({"user": "root:pw"}, file.profiles["a"], {})
    assert got["user"].value == "root:pw" and got["password"].value is None

    path.write_text('[profiles.c]\nuser = "u"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError) as err:
        profiles.load(path, env={})
    assert f"{path}, line 3" in str(err.value) and "in clear" in str(err.value)
    path.write_text('[profiles.c]\nuser = "u:hunter2"\n')
    with pytest.raises(ConfigError, match="name only"):
        profiles.load(path, env={})


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('[profiles.a]\nendpoints = ["a:1",\n', 2, "not valid TOML"),
        ('default = "a"\n[profiles.a]\nuser = = "x"\nprefix = "/p/"\n', 3, "not valid TOML"),
        ('default = "a"\n[profiles.a]\nread_only = "yes"\n', 3, "read_only must be true or false"),
        ('[profiles.a]\nprefix = "/p/"\nendpoints = 5\n', 3, "endpoints must be a list"),
        ('[profiles.a]\nprefx = "/p/"\n', 2, "unknown key 'prefx'"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_line(text: str, line: int, what: str) -> None:
    path = write_config(text)
    result = run_cli("list", "--profile", "a")
    assert result.returncode == 1
    assert str(path) in result.stderr and what in result.stderr, result.stderr
    assert f"line {line}" in result.stderr, result.stderr


def test_unknown_profile_lists_the_known_ones() -> None:
    path = write_config('[profiles.staging]\n[profiles.prod]\nendpoints = "p:1"\n')
    result = run_cli("list", "--profile", "stagnig")
    assert result.returncode == 1
    assert "unknown profile 'stagnig'" in result.stderr
    assert "prod, staging" in result.stderr and str(path) in result.stderr
    result = run_cli("list", env={profiles.PROFILE_VARIABLE: "nope"})
    assert result.returncode == 1 and "ETCD_REGISTRY_TUI_PROFILE" in result.stderr


def test_no_file_but_a_profile_named_says_where_it_looked() -> None:
    result = run_cli("list", "--profile", "x")
    assert result.returncode == 1
    assert "no profiles file" in result.stderr
    assert str(profiles.config_path()) in result.stderr


def test_a_missing_certificate_names_the_file(tmp_path: Path) -> None:
    write_config(
        f'[profiles.tls]\nendpoints = "https://127.0.0.1:1"\ncacert = "{tmp_path}/ca.pem"\n'
    )
    result = run_cli("list", "--profile", "tls")
    assert result.returncode == 1
    assert f"cacert {tmp_path}/ca.pem does not exist" in result.stderr, result.stderr


def test_list_through_profiles_against_etcd(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    etcdctl.put("/team/Orders/o1", json.dumps({"Id": "o1", "Address": "http://127.0.0.1:1"}))
    etcdctl.put("/services/Pay/p1", json.dumps({"Id": "p1", "Address": "http://127.0.0.1:2"}))
    write_config(
        f'default = "team"\n[profiles.team]\nendpoints = ["{etcd.endpoint}"]\nprefix = "/team/"\n'
        '[profiles.broken]\nendpoints = "127.0.0.1:1"\n'
    )
    by_default = run_cli("list", "--json")
    assert by_default.returncode == 0, by_default.stderr
    assert [s["name"] for s in json.loads(by_default.stdout)["services"]] == ["Orders"]
    # The command line beats the profile.
    cli_prefix = run_cli("list", "--json", "--prefix", "/services/")
    assert [s["name"] for s in json.loads(cli_prefix.stdout)["services"]] == ["Pay"]
    # The profile beats ETCDCTL_ENDPOINTS; the variable picks the profile.
    env = {"ETCDCTL_ENDPOINTS": "127.0.0.1:1", profiles.PROFILE_VARIABLE: "team"}
    assert run_cli("list", "--json", env=env).returncode == 0
    broken = run_cli("list", "--profile", "broken", "--dial-timeout", "1s")
    assert broken.returncode == 1 and "127.0.0.1:1" in broken.stderr


def test_password_env_authenticates_against_etcd(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    etcdctl.run("user", "add", "root:pw-from-env")
    etcdctl.run("auth", "enable")
    write_config(
        f'[profiles.auth]\nendpoints = "{etcd.endpoint}"\nuser = "root"\n'
        'password_env = "MY_ETCD_PW"\n'
    )
    ok = run_cli("list", "--json", "--profile", "auth", env={"MY_ETCD_PW": "pw-from-env"})
    assert ok.returncode == 0, ok.stderr
    wrong = run_cli("list", "--profile", "auth", env={"MY_ETCD_PW": "nope"})
    assert wrong.returncode == 1 and "auth" in wrong.stderr.lower()


def test_profiles_command_says_where_each_value_comes_from() -> None:
    path = write_config(ISSUE_EXAMPLE)
    env = {"ETCDCTL_KEY": "/env/key.pem", "STAGING_ETCD_PASSWORD": "do-not-print-me"}
    result = run_cli("profiles", "--json", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["file"] == str(path) and doc["default"] == "staging"
    local = {p["name"]: p for p in doc["profiles"]}["local"]["settings"]
    assert local["endpoints"] == {
        "value": ["127.0.0.1:2379", "127.0.0.1:22379"],
        "source": "profile local",
    }
    assert local["key"] == {"value": "/env/key.pem", "source": "ETCDCTL_KEY"}
    assert local["prefix"] == {"value": "/services/", "source": "default"}
    staging = {p["name"]: p for p in doc["profiles"]}["staging"]
    assert staging["chosen"] and staging["settings"]["password"]["source"] == (
        "profile staging: $STAGING_ETCD_PASSWORD"
    )
    text = run_cli("profiles", env=env)
    assert text.returncode == 0 and "profile staging: $STAGING_ETCD_PASSWORD" in text.stdout
    for output in (result.stdout, text.stdout):
        assert "do-not-print-me" not in output
    assert run_cli("profiles", "--profile", "zzz").returncode == 1


async def test_dashboard_title_names_the_profile_and_the_palette_switches() -> None:
    app = RegistryApp(
        ConnectionConfig(), start_session=False, profile="staging", profiles=["prod", "staging"]
    )
    async with app.run_test() as pilot:
        assert "staging" in app.title
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Switch to profile prod" in titles
        assert "Switch to profile staging" not in titles
        command = next(c for c in app.get_system_commands(app.screen) if "prod" in c.title)
        await command.callback()  # type: ignore[misc]
        await pilot.pause()
    assert app.switch_to == "prod"


def test_a_switch_restarts_the_dashboard_on_the_new_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's loop: leaving with SwitchProfile starts the dashboard on that profile."""
    import etcd_registry_tui.app as app_module
    from etcd_registry_tui.cli.main import main

    write_config(
        'default = "a"\n[profiles.a]\nendpoints = "a:2379"\n'
        '[profiles.b]\nendpoints = "b:2379"\nread_only = true\n'
    )
    calls: list[tuple[str, str | None, bool]] = []

    def fake_run_app(config: ConnectionConfig, **kwargs: object) -> int:
        calls.append((config.label, kwargs["profile"], bool(kwargs["read_only"])))  # type: ignore[arg-type]
        if len(calls) == 1:
            raise SwitchProfile("b")
        return 0

    monkeypatch.setattr(app_module, "run_app", fake_run_app)
    assert main(["--endpoints", "cli:2379"]) == 0
    assert calls == [("cli:2379", "a", False), ("b:2379", "b", True)]
    assert os.environ.get(profiles.PROFILE_VARIABLE) is None


def _switching_calls(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[dict[str, object]]:
    """Run the CLI with a fake dashboard that switches to profile b once; each run's kwargs."""
    import etcd_registry_tui.app as app_module
    from etcd_registry_tui.cli.main import main

    write_config(
        'default = "a"\n[profiles.a]\nendpoints = "a:2379"\n[profiles.b]\nendpoints = "b:2379"\n'
    )
    calls: list[dict[str, object]] = []

    def fake_run_app(config: ConnectionConfig, **kwargs: object) -> int:
        calls.append({"label": config.label, **kwargs})
        if len(calls) == 1 and "b" in kwargs["profiles"]:  # type: ignore[operator]
            raise SwitchProfile("b")
        return 0

    monkeypatch.setattr(app_module, "run_app", fake_run_app)
    assert main(argv) == 0
    return calls


def test_the_command_line_read_only_holds_across_a_profile_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _switching_calls(monkeypatch, ["--read-only"])
    assert [(c["label"], c["read_only"]) for c in calls] == [("a:2379", True), ("b:2379", True)]


def test_no_profile_switch_offers_no_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _switching_calls(monkeypatch, ["--no-profile-switch"])
    assert len(calls) == 1 and tuple(calls[0]["profiles"]) == ()  # type: ignore[arg-type]


def test_a_certificate_that_is_a_directory_is_not_called_missing(tmp_path: Path) -> None:
    write_config(f'[profiles.tls]\nendpoints = "https://127.0.0.1:1"\ncacert = "{tmp_path}"\n')
    result = run_cli("list", "--profile", "tls")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cacert {tmp_path} is a directory, not a file" in result.stderr, result.stderr
    assert "does not exist" not in result.stderr


def test_a_slow_password_command_says_it_waits_and_how_long(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(profiles, "PASSWORD_COMMAND_TIMEOUT", 1.0)
    monkeypatch.setattr(profiles, "PASSWORD_COMMAND_NOTICE", 0.2)
    with pytest.raises(ConfigError) as caught:
        profiles.run_password_command("sleep 1000")
    waited = capsys.readouterr().err
    assert "waiting for password_command 'sleep 1000'" in waited, waited
    assert "gives up after 1 s" in waited, waited
    assert "did not finish within 1 s" in str(caught.value), caught.value


def test_a_quick_password_command_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert profiles.run_password_command("echo s3cret") == "s3cret"
    assert capsys.readouterr().err == ""
