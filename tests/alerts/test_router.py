"""Tests for alert de-duplication and suppression on packet time."""

from __future__ import annotations

import dataclasses

from netwatch.alerts.model import Alert, EndReason, IncidentEnd, PendingAlert, Severity
from netwatch.alerts.router import FLOOD_RULE, AlertRouter
from netwatch.config import Config


def alert(
    ts: float,
    peer: str = "a.example",
    rule: str = "new_destination",
    device: str = "cam",
    severity: Severity = Severity.MEDIUM,
) -> Alert:
    return Alert(
        ts=ts,
        rule=rule,
        severity=severity,
        device=device,
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
    router = AlertRouter(lambda a, n: None, suppress_s=1000, max_identities=10, max_per_device=1000)
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


def test_per_device_bound_then_one_summary_per_window() -> None:
    out: list[Alert] = []
    router = AlertRouter(lambda a, n: out.append(a), max_per_device=5, device_window_s=100)
    for i in range(40):  # 40 new identities in the window; the 3rd one is high
        sev = Severity.HIGH if i == 2 else Severity.MEDIUM
        rule = "unexpected_egress" if i % 2 else "new_destination"
        router.submit(alert(i, f"p{i}.example", rule, severity=sev))
    router.submit(alert(41, "p0.example", device="other"))  # another device is not held back
    assert [a.rule for a in out].count(FLOOD_RULE) == 1
    assert len(out) == 5 + 1 + 1
    summary = next(a for a in out if a.rule == FLOOD_RULE)
    assert summary.device == "cam" and summary.peer == "" and summary.severity is Severity.HIGH
    assert summary.evidence["max_per_device"] == 5 and summary.evidence["suppressed"] == 1
    assert summary.evidence["rules"] == {"new_destination": 3, "unexpected_egress": 3}
    assert router.device_capped == 35 and router.device_summaries == 1
    assert router.by_rule[FLOOD_RULE] == 1 and router.emitted == 7
    # a held-back identity was not remembered: the next window reports it
    router.submit(alert(150, "p30.example"))
    assert out[-1].peer == "p30.example"
    assert router.counters()["device_capped"] == 35


def test_per_device_bound_counts_re_reports_and_leaves_repeats_alone() -> None:
    out: list[tuple[str, int]] = []
    router = AlertRouter(
        lambda a, n: out.append((a.rule, n)), suppress_s=10, max_per_device=2, device_window_s=1000
    )
    for ts in range(0, 35):  # one identity, due again at 0, 10, 20, 30 (every suppress_s)
        router.submit(alert(ts))
    assert out == [("new_destination", 1), ("new_destination", 10), (FLOOD_RULE, 1)]
    assert router.device_capped == 2 and router.suppressed == 31


def test_router_settings_come_from_the_config() -> None:
    cfg = Config.from_yaml("alerts: {max_per_device: 7, device_window_s: 120, suppress_s: 9}")
    router = AlertRouter.of(lambda a, n: None, cfg.alerts)
    assert (router.max_per_device, router.device_window_s, router.suppress_s) == (7, 120, 9)
    assert (Config.default().alerts.max_per_device, Config.default().alerts.device_window_s) == (
        50,
        3600,
    )


def test_rotating_relays_of_one_platform_are_one_incident_listing_its_peers() -> None:
    out: list[tuple[Alert, int]] = []
    router = AlertRouter(lambda a, n: out.append((a, n)), suppress_s=100.0)

    def relay(i: int, ts: float, severity: Severity = Severity.HIGH) -> Alert:
        return Alert(
            ts=ts, rule="nat_traversal", severity=severity, device="cam", device_ip="10.0.0.2",
            peer_ip=f"110.43.68.{i}", summary="relays", platform="CS2 Network PPPP",
            flow_uid=f"C{i}",
        )  # fmt: skip

    assert router.submit(relay(1, 0.0))
    for i in range(2, 30):
        assert not router.submit(relay(i, float(i)))
    # the incident grows: video through a relay is reported at once, with what it folded
    assert router.submit(relay(30, 31.0, Severity.CRITICAL))
    assert router.escalated == 1
    (first, _), (grown, count) = out
    assert grown.evidence["incident"]["escalated_from"] == "high"
    assert grown.evidence["incident"]["peers"][:2] == ["110.43.68.1", "110.43.68.2"]
    assert len(grown.evidence["incident"]["peers"]) == 16
    assert grown.evidence["incident"]["more_peers"] == 30 - 16
    assert count == 30 and "incident" not in first.evidence
    assert not router.submit(relay(31, 40.0, Severity.HIGH))  # less severe: a repeat


def _ending_router(resolve_s: float = 500.0) -> tuple[AlertRouter, list[Alert], list[IncidentEnd]]:
    out: list[Alert] = []
    ended: list[IncidentEnd] = []
    router = AlertRouter(lambda a, n: out.append(a), suppress_s=100.0, resolve_s=resolve_s)
    router.on_end = ended.append
    return router, out, ended


def test_an_incident_quiet_for_resolve_s_ends_once_with_its_span_peers_and_worst_severity() -> None:
    router, out, ended = _ending_router()
    router.submit(dataclasses.replace(alert(0, "a.example"), flow_uid="F1"))
    router.seen_at = 250.0  # the flow behind the next sighting was last seen here
    router.submit(dataclasses.replace(alert(200, severity=Severity.HIGH), flow_uid="F2"))
    router.seen_at = None
    router.submit(dataclasses.replace(alert(210), flow_uid="F2"))  # same flow: not counted
    assert router.expire(749.0) == 0 and not ended  # 499 s quiet: still open
    assert router.expire(750.0) == 1 and router.ended == 1
    (end,) = ended
    assert (end.first_seen, end.last_seen, end.ts, end.sightings) == (0.0, 250.0, 750.0, 2)
    assert end.severity is Severity.HIGH and end.reason is EndReason.QUIET
    assert end.identity == ("new_destination", "cam", "a.example")
    record = end.record()
    assert record["status"] == "ended" and record["severity"] == "high"
    assert record["first_seen"] == "1970-01-01T00:00:00.000000Z"
    assert record["last_seen"] == "1970-01-01T00:04:10.000000Z"
    assert record["peers"] == ["a.example"] and record["sightings"] == 2
    assert "status" not in out[0].record()  # firing records keep their shape
    assert router.expire(5000.0) == 0 and len(ended) == 1  # ONE end
    # seen again after its end: a new incident, reported at once
    assert router.submit(alert(5001.0))
    assert len(out) == 3 and router.counters()["ended"] == 1


def test_ends_follow_the_order_last_seen_and_end_all_closes_the_rest() -> None:
    router, _, ended = _ending_router()
    router.submit(alert(0, "a.example"))
    router.submit(alert(10, "b.example"))
    router.submit(alert(400, "a.example"))  # a is seen again: b is the quieter one
    assert router.expire(600.0) == 1 and [e.alert.peer for e in ended] == ["b.example"]
    assert router.end_all() == 1
    assert ended[-1].alert.peer == "a.example" and ended[-1].reason is EndReason.END_OF_INPUT
    assert ended[-1].ts == 600.0 and len(router) == 0


def test_without_on_end_incidents_are_forgotten_uncounted() -> None:
    router = AlertRouter(lambda a, n: None, suppress_s=100.0, resolve_s=10.0)
    router.submit(alert(0))
    assert router.expire(20.0) == 1 and len(router) == 0 and router.ended == 0


def test_resolve_s_comes_from_the_config() -> None:
    cfg = Config.from_yaml("alerts: {resolve_s: 42}")
    assert AlertRouter.of(lambda a, n: None, cfg.alerts).resolve_s == 42


def pending(built: list[Alert], a: Alert) -> PendingAlert:
    """``a`` not built yet: what a flow rule yields (``built`` collects each build)."""

    def build() -> Alert:
        built.append(a)
        return a

    return PendingAlert(
        a.ts, a.rule, a.severity, a.device, a.flow_uid, a.peer, a.reached, a.platform, build
    )


def test_an_alert_not_built_yet_is_built_only_when_reported() -> None:
    """The same alerts, built or pending: the same reports, counts, incident ends and
    counters; a pending one is built for a report or a device's flood summary only (never
    for a repeat the router only counts, nor for one the device bound holds back)."""
    sequence = [
        dataclasses.replace(alert(ts, f"p{ts % 7}.example", rule, device), flow_uid=f"F{ts}")
        for ts in range(0, 400, 3)
        for rule, device in (("unexpected_egress", "cam"), ("new_destination", f"cam{ts % 3}"))
    ]
    runs: list[tuple[list[tuple[dict[str, object], int]], list[IncidentEnd], dict[str, int]]] = []
    built: list[Alert] = []
    for lazy in (False, True):
        out: list[tuple[dict[str, object], int]] = []
        ends: list[IncidentEnd] = []

        def emit(a: Alert, n: int, out: list[tuple[dict[str, object], int]] = out) -> None:
            out.append((a.record(), n))

        router = AlertRouter(
            emit,
            suppress_s=100,
            max_per_device=4,
            device_window_s=200,
        )
        router.on_end = ends.append
        for a in sequence:
            router.seen_at = a.ts + 1
            router.submit(pending(built, a) if lazy else a)
        router.end_all()
        runs.append((out, ends, router.counters()))
    assert runs[0] == runs[1]
    out, _, counters = runs[1]
    assert counters["suppressed"] and counters["device_capped"] and counters["device_summaries"]
    reported = counters["emitted"] - counters["device_summaries"]
    assert len(built) == reported + counters["device_summaries"] < len(sequence) // 4


def test_a_repeat_is_built_for_on_repeat() -> None:
    router = AlertRouter(lambda a, n: None, suppress_s=100)
    repeats: list[Alert] = []
    router.on_repeat = repeats.append
    built: list[Alert] = []
    router.submit(pending(built, alert(0)))
    router.submit(pending(built, alert(1)))
    assert repeats == [alert(1)] and built == [alert(0), alert(1)]
