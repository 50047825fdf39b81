"""The capture_loss sensor rule: per-interface drop ratio over a window of wall time."""

from __future__ import annotations

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.capture.source import CaptureCounts
from netwatch.rules.capture_loss import WINDOW_S, CaptureLoss

T0 = 1_700_000_000.0


def counts(received: int, kernel: int = 0, iface: int = 0) -> CaptureCounts:
    return CaptureCounts(received, kernel, iface)


def monitor(threshold: float = 0.01) -> CaptureLoss:
    return CaptureLoss(threshold=threshold, host="sensor-1")


def test_defaults() -> None:
    m = CaptureLoss(threshold=0.02)
    assert (m.window_s, CaptureLoss.id, WINDOW_S) == (60.0, "capture_loss", 60.0)
    assert m.host  # the host name


def test_the_first_window_only_sets_the_baseline() -> None:
    m = monitor()
    assert m.on_capture(T0, {"eth1": counts(1_000, 900, 50)}) == []


def test_an_alert_when_the_loss_exceeds_the_threshold() -> None:
    m = monitor(0.01)
    assert m.on_capture(T0, {"eth1": counts(1_000, 10, 0)}) == []
    # in the window: 9,000 captured, 150 (kernel) + 50 (interface) dropped -> 2.1858 %
    alerts = m.on_capture(T0 + 60.0, {"eth1": counts(10_000, 160, 50)})
    assert len(alerts) == 1
    a = alerts[0]
    assert isinstance(a, Alert)
    assert (a.ts, a.rule, a.severity, a.direction) == (
        T0 + 60.0,
        "capture_loss",
        Severity.HIGH,
        Direction.LOCAL,
    )
    assert (a.device, a.device_ip, a.device_mac, a.peer_ip) == ("eth1", "", None, None)
    assert a.summary == (
        "netwatch on sensor-1 lost 2.2% of the packets on eth1 in the last 60 s "
        "(200 dropped, 9,000 captured)"
    )
    assert dict(a.evidence) == {
        "interface": "eth1",
        "sensor": "sensor-1",
        "dropped": 200,
        "received": 9_000,
        "loss_ratio": round(200 / 9_200, 6),
        "window_s": 60.0,
        "threshold": 0.01,
    }
    assert a.evidence["loss_ratio"] == 0.021739
    assert a.device_address() is None


def test_window_length_is_the_time_since_the_last_check() -> None:
    m = monitor(0.5)
    m.on_capture(T0, {"eth1": counts(0)})
    (a,) = m.on_capture(T0 + 90.25, {"eth1": counts(100, 1_234_567)})
    assert a.evidence["window_s"] == 90.25
    assert a.summary == (
        "netwatch on sensor-1 lost 100.0% of the packets on eth1 in the last 90 s "
        "(1,234,567 dropped, 100 captured)"
    )


def test_no_alert_at_or_under_the_threshold() -> None:
    m = monitor(0.01)
    m.on_capture(T0, {"eth1": counts(0)})
    assert m.on_capture(T0 + 60, {"eth1": counts(990, 10)}) == []  # exactly 1 %: not above
    assert m.on_capture(T0 + 120, {"eth1": counts(1_990, 15)}) == []  # 0.5 %
    assert m.on_capture(T0 + 180, {"eth1": counts(11_990, 16)}) == []  # 1 of 10,001


def test_no_alert_without_packets_or_without_drops() -> None:
    m = monitor(0.0)
    m.on_capture(T0, {"eth1": counts(500, 5)})
    assert m.on_capture(T0 + 60, {"eth1": counts(500, 5)}) == []  # nothing at all
    assert m.on_capture(T0 + 120, {"eth1": counts(100_500, 5)}) == []  # no drop
    assert len(m.on_capture(T0 + 180, {"eth1": counts(100_500, 6)})) == 1  # any drop over 0


def test_a_window_shorter_than_window_s_is_skipped_not_restarted() -> None:
    m = monitor(0.01)
    m.on_capture(T0, {"eth1": counts(0)})
    assert m.on_capture(T0 + 30, {"eth1": counts(100, 100)}) == []  # too early: not evaluated
    assert m.on_capture(T0 + 59.9, {"eth1": counts(200, 200)}) == []
    (a,) = m.on_capture(T0 + 60, {"eth1": counts(300, 300)})
    # the window still starts at T0: everything since then counts
    assert (a.evidence["received"], a.evidence["dropped"], a.evidence["window_s"]) == (
        300,
        300,
        60.0,
    )
    # and the next window starts at this check
    assert m.on_capture(T0 + 100, {"eth1": counts(400, 1_000)}) == []
    (b,) = m.on_capture(T0 + 120, {"eth1": counts(1_300, 1_000)})
    assert (b.evidence["received"], b.evidence["dropped"]) == (1_000, 700)


def test_a_custom_window() -> None:
    m = CaptureLoss(threshold=0.01, window_s=10.0, host="s")
    m.on_capture(T0, {"eth1": counts(0)})
    assert len(m.on_capture(T0 + 10, {"eth1": counts(10, 10)})) == 1


def test_interfaces_are_independent() -> None:
    m = monitor(0.01)
    assert m.on_capture(T0, {"eth1": counts(0), "eth2": counts(0)}) == []
    # eth3 appears later: its first check is its baseline
    alerts = m.on_capture(
        T0 + 60,
        {"eth1": counts(1_000, 500), "eth2": counts(1_000, 1), "eth3": counts(10, 10_000)},
    )
    assert [a.device for a in alerts] == ["eth1"]
    alerts = m.on_capture(
        T0 + 120,
        {"eth1": counts(2_000, 500), "eth2": counts(2_000, 100), "eth3": counts(20, 20_000)},
    )
    assert sorted(a.device for a in alerts) == ["eth2", "eth3"]
    by = {a.device: a for a in alerts}
    assert (by["eth2"].evidence["dropped"], by["eth2"].evidence["received"]) == (99, 1_000)
    assert (by["eth3"].evidence["dropped"], by["eth3"].evidence["received"]) == (10_000, 10)
    assert by["eth3"].evidence["interface"] == "eth3"


def test_an_interface_missing_from_one_check_keeps_its_window() -> None:
    m = monitor(0.01)
    m.on_capture(T0, {"eth1": counts(0), "eth2": counts(0)})
    assert m.on_capture(T0 + 60, {"eth2": counts(10)}) == []
    (a,) = m.on_capture(T0 + 120, {"eth1": counts(100, 100), "eth2": counts(20)})
    assert (a.device, a.evidence["window_s"]) == ("eth1", 120.0)
