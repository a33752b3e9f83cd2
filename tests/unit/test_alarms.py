"""Flapping and mass-expiry thresholds (pure logic: the events are built, no etcd claimed;
test_history_app.py drives both from real etcd)."""

from __future__ import annotations

from etcd_registry_tui.registry.history.alarms import FlapDetector, MassExpiryAlarm
from etcd_registry_tui.registry.history.store import HistoryEvent, Reason
from etcd_registry_tui.registry.model import KeyValue, RegistryState

PREFIX = "/services/"


def kv(service: str, iid: str, address: str = "http://a:1", lease: int = 7) -> KeyValue:
    value = f'{{"Id": "{iid}", "Address": "{address}"}}'.encode()
    return KeyValue(f"{PREFIX}{service}/{iid}".encode(), value, 1, 1, 1, lease)


def state_with(counts: dict[str, int]) -> RegistryState:
    state = RegistryState(PREFIX)
    for service, count in counts.items():
        for n in range(count):
            state.apply_put(kv(service, f"{service}-{n}", f"http://{n}:1"))
    return state


def gone(service: str, n: int, at: float, reason: Reason = Reason.EXPIRED) -> HistoryEvent:
    """A delete as reasons.judge leaves it: an expiry has run out of time."""
    event = HistoryEvent.make(PREFIX, 10, None, kv(service, f"x{n}"), at=at)
    event.reason = reason
    return event


def test_a_single_expiry_raises_no_alarm() -> None:
    alarm = MassExpiryAlarm()
    assert alarm.observe([gone("Orders", 0, 100.0)], state_with({"Orders": 2}), 100.0) == []
    assert alarm.banner(100.0) is None


def test_clean_deregistrations_raise_no_alarm() -> None:
    alarm = MassExpiryAlarm()
    events = [gone("Orders", n, 100.0, Reason.DEREGISTERED) for n in range(10)]
    assert alarm.observe(events, state_with({"Orders": 1}), 100.0) == []
    events = [gone("Orders", n, 100.0, Reason.REVOKED) for n in range(10)]
    assert alarm.observe(events, state_with({"Orders": 1}), 100.0) == []


def test_thresholds_minimum_fraction_window_and_quiet() -> None:
    state = state_with({"Orders": 13, "Billing": 200})
    alarm = MassExpiryAlarm()
    # 2 expiries: under the minimum of 3.
    assert alarm.observe([gone("Orders", n, 100.0) for n in range(2)], state, 100.0) == []
    # A third outside the 60 s window does not count with them.
    assert alarm.observe([gone("Orders", 2, 170.0)], state, 170.0) == []
    # 3 of 16 is 19 %: under 20 %; a fourth (4 of 17, 24 %) is not.
    assert alarm.observe([gone("Orders", n, 171.0) for n in range(3, 5)], state, 171.0) == []
    raised = alarm.observe([gone("Orders", 5, 172.0)], state, 172.0)
    assert raised == ["MASS EXPIRY: 4 of 217 instances expired in the last 60 s — Orders 4/17"]
    assert alarm.banner(200.0) == raised[0]
    assert alarm.banner(232.1) is None  # quiet for 60 s


def test_uncertain_endings_raise_nothing_and_the_share_counts_removed_instances() -> None:
    """A fleet revoking its leases as it shuts down reads LEASE ENDED: no alarm. The share
    is of the instances that existed in the window (held now, plus every removal), and the
    alarm is logged once, then again only when it spreads to another service."""
    state = state_with({"Orders": 5, "Billing": 10})
    alarm = MassExpiryAlarm()
    unsure = [gone("Orders", n, 50.0, Reason.LEASE_ENDED) for n in range(20)]
    assert alarm.observe(unsure, state, 50.0) == []
    # 20 more Orders went (not expired); 3 expiries of 28 Orders (11 %) is under 20 %.
    assert alarm.observe([gone("Orders", n, 51.0) for n in range(3)], state, 51.0) == []
    alarm = MassExpiryAlarm()
    first = alarm.observe([gone("Orders", n, 60.0) for n in range(3)], state, 60.0)
    assert first == ["MASS EXPIRY: 3 of 18 instances expired in the last 60 s — Orders 3/8"]
    assert alarm.observe([gone("Orders", 3, 61.0)], state, 61.0) == []  # grew, same service
    assert "Orders 4/9" in (alarm.banner(61.0) or "")
    spread = alarm.observe([gone("Billing", n, 62.0) for n in range(4)], state, 62.0)
    assert len(spread) == 1 and "Billing 4/14" in spread[0] and "Orders 4/9" in spread[0]


def test_the_whole_registry_alarms_when_no_service_does() -> None:
    state = state_with({f"S{n}": 1 for n in range(10)})
    alarm = MassExpiryAlarm(minimum=3)
    events = [gone(f"S{n}", n, 50.0) for n in range(3)]  # 3 of 13 (23 %), 1 of 2 per service
    assert alarm.observe(events, state, 50.0) == [
        "MASS EXPIRY: 3 of 13 instances expired in the last 60 s"
    ]


def test_flapping_counts_registrations_at_one_address_within_the_window() -> None:
    flaps = FlapDetector(threshold=3, window=300)
    state = RegistryState(PREFIX)
    for n, at in enumerate((0.0, 100.0, 250.0)):
        event = HistoryEvent.make(PREFIX, n + 1, kv("Orders", f"id{n}", "http://h:1"), None, at=at)
        flaps.observe([event], at)
    state.apply_put(kv("Orders", "id2", "http://h:1"))
    state.apply_put(kv("Orders", "other", "http://h:2"))
    assert flaps.flapping_keys(state, 260.0) == {f"{PREFIX}Orders/id2".encode(): 3}
    assert flaps.flapping_keys(state, 301.0) == {}  # the first fell out of the window


def test_alarm_thresholds_are_command_line_options() -> None:
    import pytest

    from etcd_registry_tui.cli.history import alarms_from_args
    from etcd_registry_tui.cli.main import build_parser

    args = build_parser().parse_args(
        ["--alarm-fraction", "0.5", "--alarm-minimum", "2", "--alarm-window", "30",
         "--flap-threshold", "4", "--flap-window", "120"]
    )  # fmt: skip
    flaps, alarm = alarms_from_args(args)
    assert (alarm.fraction, alarm.minimum, alarm.window, alarm.quiet) == (0.5, 2, 30.0, 30.0)
    assert (flaps.threshold, flaps.window) == (4, 120.0)
    defaults = alarms_from_args(build_parser().parse_args([]))
    assert (defaults[1].fraction, defaults[1].minimum, defaults[1].window) == (0.2, 3, 60.0)
    for bad in (["--alarm-fraction", "nan"], ["--alarm-minimum", "0"], ["--flap-window", "-1"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def ended(service: str, n: int, at: float, ran_out: bool = True) -> HistoryEvent:
    """A LEASE ENDED removal: its countdown had run out (or was unread) or not."""
    event = gone(service, n, at, Reason.LEASE_ENDED)
    event.ran_out = ran_out
    return event


def test_endings_that_may_be_expiries_raise_a_possible_alarm_that_says_so() -> None:
    state = state_with({"MassE": 0, "Other": 100})
    alarm = MassExpiryAlarm()
    events = [gone("MassE", n, 50.0) for n in range(2)]
    events += [ended("MassE", n, 50.0) for n in range(2, 40)]
    (text,) = alarm.observe(events, state, 50.0)
    assert text.startswith("POSSIBLE MASS EXPIRY: 40 of 140 instances' leases ended"), text
    assert "2 certainly expired, 38 not certain" in text and "MassE 40/40" in text
    # It becomes certain: logged again, as MASS EXPIRY.
    (certain,) = alarm.observe([gone("MassE", n, 51.0) for n in range(40, 50)], state, 51.0)
    assert certain == "MASS EXPIRY: 12 of 150 instances expired in the last 60 s — MassE 12/50"
    assert alarm.observe([gone("MassE", 50, 52.0)], state, 52.0) == []  # grew, same service


def test_revokes_with_time_left_never_count() -> None:
    state = state_with({"Graceful": 0})
    alarm = MassExpiryAlarm()
    events = [ended("Graceful", n, 50.0, ran_out=False) for n in range(50)]
    events += [ended("Graceful", n, 50.0) for n in range(50, 52)]  # 2 ran out: under 3
    assert alarm.observe(events, state, 50.0) == [] and alarm.banner(50.0) is None
    events = [ended("Graceful", n, 51.0) for n in range(52, 60)]  # 10 of 60: under 20 %
    assert alarm.observe(events, state, 51.0) == []


def test_removals_waiting_for_their_lookup_count_among_the_instances() -> None:
    """Removals still waiting for their lease lookup are neither held nor seen yet: they
    count in the share's denominator (3 crashed of 64, not of 3)."""
    state = state_with({"Roll2": 1, "Other": 4000})
    alarm = MassExpiryAlarm()
    crashed = [gone("Roll2", n, 50.0) for n in range(3)]
    assert alarm.observe(crashed, state, 50.0, waiting={"Roll2": 60}) == []
    assert MassExpiryAlarm().observe(crashed, state, 50.0) != []  # without them: 3 of 4
