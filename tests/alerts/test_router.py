"""Tests for alert de-duplication and suppression on packet time."""

from __future__ import annotations

import dataclasses

from netwatch.alerts.model import Alert, Severity
from netwatch.alerts.router import AlertRouter


def alert(ts: float, peer: str = "a.example", rule: str = "new_destination") -> Alert:
    return Alert(
        ts=ts,
        rule=rule,
        severity=Severity.MEDIUM,
        device="cam",
        device_ip="10.0.0.5",
        summary="x",
        peer_name=peer,
    )


def test_first_alert_out_repeats_counted_then_reported_after_the_window() -> None:
    out: list[tuple[float, int]] = []
    router = AlertRouter(lambda a, n: out.append((a.ts, n)), suppress_s=100)
    for ts in (0, 10, 20, 99):
        router.submit(alert(ts))
    assert out == [(0, 1)] and router.suppressed == 3
    router.submit(alert(150))  # after the window: reports the 3 repeats and itself
    assert out == [(0, 1), (150, 4)]
    router.submit(alert(160))
    router.submit(alert(300))
    assert out[-1] == (300, 2)


def test_identities_are_independent() -> None:
    out: list[Alert] = []
    router = AlertRouter(lambda a, n: out.append(a), suppress_s=100)
    router.submit(alert(0, "a.example"))
    router.submit(alert(1, "b.example"))
    router.submit(alert(2, "a.example", rule="unexpected_egress"))
    assert len(out) == 3 and router.by_rule == {"new_destination": 2, "unexpected_egress": 1}


def test_state_is_bounded() -> None:
    router = AlertRouter(lambda a, n: None, suppress_s=1000, max_identities=10)
    for i in range(100):
        router.submit(alert(i, f"p{i}.example"))
    assert len(router) == 10 and router.dropped_identities == 90 and router.emitted == 100


def test_repeats_from_the_same_flow_count_once_and_are_announced() -> None:
    out: list[int] = []
    repeats: list[str | None] = []
    router = AlertRouter(lambda a, n: out.append(n), suppress_s=100)
    router.on_repeat = lambda a: repeats.append(a.flow_uid)
    for ts, uid in ((0, "C1"), (10, "C1"), (20, "C1"), (30, "C2"), (40, "C2"), (50, None)):
        router.submit(dataclasses.replace(alert(ts), flow_uid=uid))
    assert router.suppressed == 2  # C2 once, the uid-less one once; C1's re-checks not
    assert repeats == ["C1", "C1", "C2", "C2", None]
    router.submit(alert(150))
    assert out == [1, 3]
