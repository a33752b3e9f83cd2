"""``serve`` without a browser: what each tab runs, the safe defaults, the page it serves."""

from __future__ import annotations

import asyncio
import shlex
import urllib.request
from pathlib import Path

import pytest
from support.browser_helpers import require_browser, serving

from etcd_registry_tui.cli import main as cli
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.errors import ConfigError
from etcd_registry_tui.serve.server import plan

SECRET = "s3cret-pa55"


def auth_config() -> ConnectionConfig:
    return ConnectionConfig.from_options(
        endpoints="10.0.0.1:2379,10.0.0.2:2379",
        user="viewer",
        password=SECRET,
        dial_timeout=2.5,
        command_timeout=7,
        prefix="/registry/",
        cacert="ca.pem",
        env={},
    )


def test_by_default_it_binds_loopback_and_each_tab_runs_read_only():
    p = plan(ConnectionConfig(), python="python3")
    assert (p.host, p.port, p.public_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert p.read_only
    assert p.command.startswith(
        "exec python3 -m etcd_registry_tui --no-profile-switch --read-only "
    )
    assert p.title == "etcd-registry-tui · 127.0.0.1:2379/services/ (read-only)"


def test_allow_writes_drops_read_only_but_a_global_read_only_wins():
    writes = plan(ConnectionConfig(), allow_writes=True)
    assert not writes.read_only and "--read-only" not in writes.command
    assert "(read-only)" not in writes.title
    both = plan(ConnectionConfig(), allow_writes=True, read_only=True)
    assert both.read_only and "--read-only" in both.command


def test_the_tab_command_carries_the_connection_but_never_the_password(
    monkeypatch: pytest.MonkeyPatch,
):
    config = auth_config()
    p = plan(config, elections_prefixes=["/elections/"], python="py")
    assert SECRET not in p.command
    assert p.env == {"ETCDCTL_PASSWORD": SECRET}
    # What the tab's process makes of its command line and environment is the same config.
    argv = shlex.split(p.command)[4:]  # past exec py -m etcd_registry_tui
    for name in ("ETCDCTL_ENDPOINTS", "ETCDCTL_USER", "ETCDCTL_CACERT", "ETCDCTL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ETCDCTL_PASSWORD", SECRET)
    args = cli.build_parser().parse_args(argv)
    assert args.read_only and args.elections_prefix == ["/elections/"]
    forwarded = cli.config_from_args(args)
    assert forwarded == ConnectionConfig.from_options(
        endpoints="10.0.0.1:2379,10.0.0.2:2379",
        user="viewer",
        password=SECRET,
        dial_timeout=2.5,
        command_timeout=7,
        prefix="/registry/",
        cacert=str(Path("ca.pem").resolve()),
        env={},
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "0"], "--port 0 is out of range"),
        (["serve", "--public-url", "ftp://example.org"], "is not an http:// or https:// URL"),
        (["serve", "--public-url", "example.org:8000"], "is not an http:// or https:// URL"),
        (["serve", "--host", ""], "--host is empty"),
    ],
)
def test_bad_serve_options_are_refused_before_anything_listens(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_public_url_is_what_the_page_uses_behind_a_proxy():
    p = plan(ConnectionConfig(), public_url="https://dash.example.org/etcd/")
    assert p.public_url == "https://dash.example.org/etcd"
    with pytest.raises(ConfigError):
        plan(ConnectionConfig(), public_url="https://dash.example.org/etcd?x=1")


def test_the_served_page_is_titled_self_contained_and_uses_the_public_url(tmp_path: Path):
    public = "https://dash.example.org/etcd"
    # The page alone dials no etcd: a dashboard starts only when a browser opens the socket.
    with serving("127.0.0.1:1", "--public-url", public, tmp=tmp_path) as served:
        with urllib.request.urlopen(served.url, timeout=10) as response:
            page = response.read().decode()
        assert "serving etcd-registry-tui · 127.0.0.1:1/services/ (read-only)" in served.output()
    assert "<title>etcd-registry-tui · 127.0.0.1:1/services/ (read-only)</title>" in page
    # the page's websocket carries the launch's token (textual.js appends ?width=&height=)
    assert f'data-session-websocket-url="wss://dash.example.org/etcd/ws/{served.token}"' in page
    assert f"https://dash.example.org/etcd/static/{served.token}/js/textual.js" in page
    assert "fonts.googleapis.com" not in page  # nothing is fetched from elsewhere


def test_binding_beyond_loopback_warns_that_the_token_is_the_only_login():
    from etcd_registry_tui.serve.server import notice

    lines = notice(plan(ConnectionConfig(), host="10.1.2.3"))
    assert any("has the token" in line for line in lines)
    assert not any("has the token" in line for line in notice(plan(ConnectionConfig())))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_a_wildcard_bind_needs_a_public_url(host: str, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["serve", "--host", host, "--endpoints", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "binds every address" in err and "--public-url" in err and "Traceback" not in err
    assert plan(ConnectionConfig(), host=host, public_url="http://dash.example.org:8000")


def test_the_start_up_notice_prints_the_token_url_and_the_limits():
    from etcd_registry_tui.serve.server import notice

    p = plan(ConnectionConfig(), port=8123, max_tabs=5, max_tabs_per_client=2)
    other = plan(ConnectionConfig(), port=8123)
    assert len(p.token) >= 32 and p.token != other.token  # random at each launch
    text = "\n".join(notice(p))
    assert f"open http://127.0.0.1:8123/?token={p.token}" in text
    assert "at most 5 tabs, 2 per client address" in text
    assert "ps" not in text


@pytest.mark.parametrize(
    ("argv", "in_argv"),
    [
        (["serve", "--user", "viewer:pw"], True),
        (["--user", "viewer:pw", "serve"], True),
        (["serve", "--user", "viewer", "--password", "pw"], True),
        (["serve"], False),
    ],
)
def test_a_password_on_the_command_line_is_pointed_out(argv: list[str], in_argv: bool):
    from etcd_registry_tui.serve.server import notice, password_on_command_line

    args = cli.build_parser().parse_args(argv)
    assert password_on_command_line(args) is in_argv
    warned = any("ETCDCTL_PASSWORD" in line for line in notice(plan(ConnectionConfig()), in_argv))
    assert warned is in_argv


def test_a_served_tab_never_switches_profile():
    p = plan(ConnectionConfig(), python="py")
    assert "--no-profile-switch" in shlex.split(p.command)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--max-tabs", "0"], "--max-tabs 0 must be at least 1"),
        (["serve", "--max-tabs-per-client", "-1"], "--max-tabs-per-client -1 must be at least 1"),
        (["serve", "--max-connections", "0"], "--max-connections 0 must be at least 1"),
        (["serve", "--max-connections-per-client", "0"], "must be at least 1"),
        (["serve", "--header-timeout", "0"], "--header-timeout 0 must be in (0, 3600]"),
        (["serve", "--header-timeout", "nan"], "--header-timeout nan must be in"),
        (["serve", "--heartbeat", "0.01"], "--heartbeat 0.01 must be in [0.2, 3600]"),
    ],
)
def test_bad_tab_limits_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    assert cli.main([*argv, "--endpoints", "127.0.0.1:1"]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_without_chromium_the_browser_tests_skip_but_fail_under_ci(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(outcome, match="chromium is not installed"):
        require_browser(fallback=str(tmp_path / "no-chromium"))


def test_the_gate_serves_the_public_origin_and_the_bound_loopback_names_only():
    from etcd_registry_tui.serve.guard import Gate

    gate = Gate.for_serving("t0ken", "https://dash.example.org/etcd", "127.0.0.1", 8000)
    for host in ("dash.example.org", "DASH.example.org:443", "127.0.0.1:8000", "localhost:8000"):
        assert gate.host_ok(host), host
    for host in (
        None, "", "evil.example", "dash.example.org:8443", "127.0.0.1:8001", "127.0.0.1",
        "u@127.0.0.1:8000", "127.0.0.1:8000/x", "127.0.0.1:notaport", "dash.example.org.evil",
    ):  # fmt: skip
        assert not gate.host_ok(host), host
    for origin in (
        "https://dash.example.org", "https://dash.example.org:443",
        "http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000",
    ):  # fmt: skip
        assert gate.origin_ok(origin), origin
    for origin in (
        None, "", "null", "http://dash.example.org", "https://evil.example",
        "https://dash.example.org/etcd", "file://", "http://127.0.0.1:8001", "ws://127.0.0.1:8000",
    ):  # fmt: skip
        assert not gate.origin_ok(origin), origin
    assert gate.token_ok("t0ken") and not gate.token_ok("t0ke") and not gate.token_ok(None)
    wide = Gate.for_serving("t", "http://dash.example.org:8000", "10.0.0.5", 8000)
    assert wide.host_ok("10.0.0.5:8000") and not wide.host_ok("localhost:8000")
    v6 = Gate.for_serving("t", "http://[::1]:8000", "::1", 8000)
    assert v6.host_ok("[::1]:8000") and v6.origin_ok("http://[::1]:8000")


@pytest.mark.parametrize(
    ("width", "height", "size"),
    [
        ("80", "24", (80, 24)),
        ("20000", "20000", (500, 200)),
        ("-5", "-5", (20, 5)),
        (120, 40, (120, 40)),
        ("x", "24", None),
        ("80", "", None),
        ("1e9", "24", None),
        ("9" * 40, "24", None),
        (True, 24, None),
        (80.0, 24, None),
        (None, 24, None),
    ],
)
def test_sizes_are_parsed_and_clamped(width: object, height: object, size: object):
    from etcd_registry_tui.serve.guard import parse_size

    assert parse_size(width, height) == size


def test_tab_limits_count_per_client_and_in_all_and_give_places_back():
    from etcd_registry_tui.serve.guard import TabLimits

    limits = TabLimits(max_tabs=3, per_client=2)
    assert limits.take("a") is None and limits.take("a") is None
    assert "--max-tabs-per-client" in (limits.take("a") or "")
    assert limits.take("b") is None
    assert "--max-tabs" in (limits.take("c") or "")
    limits.give_back("a")
    assert limits.take("c") is None and limits.open == 3


class Conn:
    """A connection as the caps see it: idle unless told it is mid-request or mid-answer."""

    def __init__(self, client: str, kept: bool = False, idle: bool = True) -> None:
        self.client, self.kept, self.idle, self.dropped = client, kept, idle, False

    def drop(self) -> None:
        self.dropped = True


def test_connection_limits_even_out_a_flood_and_never_take_a_tab():
    from etcd_registry_tui.serve.net import ConnectionLimits

    limits = ConnectionLimits(total=4, per_client=3)
    tab = Conn("a", kept=True)
    first = [tab, Conn("a"), Conn("a")]
    assert all(limits.admit(c) for c in first)
    # at its address's cap a newcomer takes that address's oldest place that is not a tab
    again = Conn("a")
    assert limits.admit(again) and first[1].dropped and not tab.dropped
    b = Conn("b")
    assert limits.admit(b)  # the last place
    # full: "c" takes the oldest of the address holding the most ("a": 3), never the tab
    assert limits.admit(Conn("c")) and first[2].dropped and not tab.dropped
    # every address holds 1 or 2 now: newcomers still get in (one-connection floods from
    # many addresses cannot keep the operator out), taking from the biggest holder first
    assert limits.admit(Conn("d")) and again.dropped
    assert limits.admit(Conn("e")) and b.dropped
    assert limits.open == 4 and not tab.dropped
    # only tabs left at an address at its cap: refused
    tabs_only = ConnectionLimits(total=10, per_client=2)
    assert tabs_only.admit(Conn("t", kept=True)) and tabs_only.admit(Conn("t", kept=True))
    assert not tabs_only.admit(Conn("t"))
    limits.release(first[1])  # already dropped: counted once
    assert limits.open == 4


def test_connection_limits_take_idle_connections_before_busy_ones():
    """A flood of silent sockets (one from each of many addresses) against the operator's
    downloads in flight: the newcomer takes a silent one's place, never a download's."""
    from etcd_registry_tui.serve.net import ConnectionLimits

    limits = ConnectionLimits(total=6, per_client=3)
    downloads = [Conn("op", idle=False), Conn("op", idle=False)]
    kept_alive = Conn("op")  # the operator's idle keep-alive connection
    silent = [Conn(f"x{i}") for i in range(3)]
    assert all(limits.admit(c) for c in [*downloads, kept_alive, *silent])
    # "op" holds the most connections, but only one idle one: as many as each flooder
    assert limits.admit(Conn("new"))
    assert not any(d.dropped for d in downloads)
    assert sum(c.dropped for c in [kept_alive, *silent]) == 1
    # the address holding the most idle connections gives first
    more = ConnectionLimits(total=4, per_client=4)
    flood = [Conn("f"), Conn("f")]
    busy = [Conn("op", idle=False), Conn("op", idle=False)]
    assert all(more.admit(c) for c in [*busy, *flood])
    assert more.admit(Conn("g")) and flood[0].dropped and not any(b.dropped for b in busy)
    # at its own cap an address gives its oldest idle connection, not a busy older one
    own = ConnectionLimits(total=10, per_client=2)
    old_busy, young_idle = Conn("op", idle=False), Conn("op")
    assert own.admit(old_busy) and own.admit(young_idle)
    assert own.admit(Conn("op")) and young_idle.dropped and not old_busy.dropped
    # nothing idle anywhere: a busy one (never a tab) still makes room
    full = ConnectionLimits(total=2, per_client=2)
    tab, working = Conn("a", kept=True), Conn("b", idle=False)
    assert full.admit(tab) and full.admit(working)
    assert full.admit(Conn("c")) and working.dropped and not tab.dropped


def test_console_log_is_bounded_and_says_what_it_left_out() -> None:
    import logging

    from etcd_registry_tui.serve.server import ConsoleLogFilter

    now = [0.0]
    log_filter = ConsoleLogFilter("tok", per_window=5, window=10.0, clock=lambda: now[0])

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, text, (), None)

    passed = [r for r in (record(f"GET /x{n} tok") for n in range(1000)) if log_filter.filter(r)]
    assert len(passed) == 5 and "<token>" in passed[0].getMessage()
    now[0] = 10.0
    nxt = record("GET /after")
    assert log_filter.filter(nxt) and nxt.getMessage().startswith("(995 log lines left out)")


def test_static_paths_that_cannot_name_a_file_are_not_found(tmp_path) -> None:
    from etcd_registry_tui.serve.server import _static_file

    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("x")
    assert _static_file(tmp_path, "js/a.js") == tmp_path / "js" / "a.js"
    assert _static_file(tmp_path, "js\x00") is None
    assert _static_file(tmp_path, "js/a\x00.js") is None
    assert _static_file(tmp_path, "a/" * 4000) is None
    assert _static_file(tmp_path, "../" * 3 + "etc/passwd") is None


def test_running_out_of_file_handles_is_one_line_per_interval(caplog: pytest.LogCaptureFixture):
    import asyncio
    import errno

    from etcd_registry_tui.serve.net import ExhaustionLog

    now = [0.0]
    handler = ExhaustionLog(every=30, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level("WARNING"):
            for _ in range(1000):
                handler(loop, {"message": "accept", "exception": OSError(errno.EMFILE, "x")})
        lines = [r for r in caplog.records if "out of file handles" in r.getMessage()]
        assert len(lines) == 1
        now[0] += 31  # the interval has passed
        with caplog.at_level("WARNING"):
            handler(loop, {"message": "accept", "exception": OSError(errno.EMFILE, "x")})
        assert "999 more" in caplog.records[-1].getMessage()
    finally:
        loop.close()


def test_the_served_script_opens_downloads_under_the_public_url_s_path() -> None:
    from textual_serve.server import Server

    from etcd_registry_tui.serve.server import _script_with_token

    stock = (Path(Server("true").statics_path) / "js" / "textual.js").read_text(encoding="utf-8")
    at_root = _script_with_token(stock, "TOK", "http://127.0.0.1:8000")
    assert "${window.location.origin}/download/TOK/${" in at_root
    behind = _script_with_token(stock, "TOK", "https://ops.example.org/etcd/")
    assert "${window.location.origin}/etcd/download/TOK/${" in behind
    assert "origin}/download/" not in behind
    # a path cannot end the template literal it goes into, nor interpolate
    odd = _script_with_token(stock, "TOK", "https://ops.example.org/a`b${c}\\d")
    assert "${window.location.origin}/a%60b%24%7Bc%7D%5Cd/download/TOK/${" in odd


async def test_a_start_up_failure_is_logged_unless_serve_ended_the_tab() -> None:
    import logging

    from textual_serve.download_manager import DownloadManager

    from etcd_registry_tui.serve import tab as tab_module

    async def write(_: object) -> None:
        return None

    async def close() -> None:
        return None

    logger = logging.getLogger("test-textual-serve")
    tab_module.quiet_ended_tabs(logger)
    tab_module.quiet_ended_tabs(logger)  # once
    assert sum(isinstance(f, tab_module.EndedByServe) for f in logger.filters) == 1
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.addHandler(Keep())
    logger.propagate = False
    service = tab_module.TabService(
        "true", write_bytes=write, write_str=write, close=close, download_manager=DownloadManager()
    )

    async def in_its_run() -> None:
        tab_module._running.set(service)
        logger.error(tab_module.FAILED_TO_START)  # the process ended by itself: a failure
        service.ending = True
        logger.error(tab_module.FAILED_TO_START)  # serve ended it: not one
        logger.error("something else")

    await asyncio.create_task(in_its_run())
    logger.error(tab_module.FAILED_TO_START)  # outside any tab: as it is
    assert seen == [tab_module.FAILED_TO_START, "something else", tab_module.FAILED_TO_START]
