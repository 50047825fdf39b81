"""Notification groups: one notification per camera per interval (netwatch.alerts.grouping)."""

from __future__ import annotations

import json
from typing import Any

from netwatch.alerts.grouping import (
    DEFAULT_GROUP_INTERVAL_S,
    DEFAULT_GROUP_WAIT_S,
    DeviceGroups,
    absorb,
    members,
    regroup,
    report_rules,
)
from netwatch.alerts.incidents import findings
from netwatch.alerts.model import Alert, Severity, line_of
from netwatch.alerts.router import FLOOD_RULE
from netwatch.config import Config
from tests.sinks.conftest import make_alert

T0 = 1_767_225_600.0


class Sent:
    """What the groups emitted: (alert, count) in order."""

    def __init__(self) -> None:
        self.got: list[tuple[Alert, int]] = []

    def __call__(self, alert: Alert, count: int) -> None:
        self.got.append((alert, count))

    def rules(self) -> list[list[str]]:
        """Per notification: its alert's rule, then the grouped ones'."""
        return [[r for r, _ in report_rules(a)] for a, _ in self.got]


def alert(rule: str, at: float, severity: str = "high", device: str = "cam", **kw: Any) -> Alert:
    return make_alert(rule=rule, ts=T0 + at, severity=severity, device=device, **kw)


def groups(wait: float = 30.0, interval: float = 300.0, **kw: Any) -> tuple[DeviceGroups, Sent]:
    sent = Sent()
    return DeviceGroups(sent, wait, interval, **kw), sent


def test_a_burst_about_one_camera_is_one_notification_led_by_the_gravest() -> None:
    g, sent = groups()
    g.add(alert("unexpected_egress", 0, "medium", peer_name="a.example"), 1)
    g.add(alert("cloud_registration", 5, "high"), 1)
    g.add(alert("rogue_dns", 10, "high", peer_name="dns.example"), 2)
    assert g.tick(T0 + 29) == 0 and not sent.got and g.pending() == 3  # still waiting
    assert g.tick(T0 + 30) == 1
    ((note, count),) = sent.got
    # the gravest leads (the earliest among equals); nothing is hidden
    assert sent.rules() == [["cloud_registration", "unexpected_egress", "rogue_dns"]]
    assert count == 1
    grouped = note.evidence["grouped"]
    assert [(r["rule"], r["count"], r["peer_name"]) for r in grouped] == [
        ("unexpected_egress", 1, "a.example"),
        ("rogue_dns", 2, "dns.example"),
    ]
    assert all("device" not in r for r in grouped)  # the device is the notification's
    assert g.counters() == {"notifications": 1, "grouped": 2, "early": 0}
    line = line_of(note.record())
    assert "(+2 more: unexpected_egress a.example; rogue_dns dns.example)" in line


def test_later_reports_wait_for_the_interval_but_a_graver_one_only_for_group_wait() -> None:
    g, sent = groups()
    g.add(alert("cloud_registration", 0), 1)
    g.tick(T0 + 30)  # first notification
    g.add(alert("unexpected_egress", 60, "medium", peer_name="b.example"), 1)
    g.tick(T0 + 200)
    assert len(sent.got) == 1  # the interval (300 s after the last one) is not over
    g.tick(T0 + 330)
    assert sent.rules()[-1] == ["unexpected_egress"]
    # an incident that grows past anything sent so far goes out after group_wait only
    g.add(alert("outbound_stream", 400, "critical", peer_name="c.example"), 1)
    g.tick(T0 + 429)
    assert len(sent.got) == 2
    g.tick(T0 + 430)
    assert sent.rules()[-1] == ["outbound_stream"]
    # a quiet camera is forgotten after an interval: its next report waits group_wait again
    g.tick(T0 + 2000)
    g.add(alert("rogue_dns", 2000, "medium"), 1)
    g.tick(T0 + 2030)
    assert sent.rules()[-1] == ["rogue_dns"]


def test_cameras_are_grouped_apart() -> None:
    g, sent = groups()
    g.add(alert("cloud_registration", 0, device="cam-1"), 1)
    g.add(alert("cloud_registration", 1, device="cam-2"), 1)
    g.tick(T0 + 40)
    assert sorted(a.device for a, _ in sent.got) == ["cam-1", "cam-2"]


def test_a_newer_report_of_a_waiting_incident_takes_its_place_counts_added() -> None:
    g, sent = groups()
    g.add(alert("nat_traversal", 0, "high", platform="CS2 Network PPPP"), 1)
    grown = alert("nat_traversal", 10, "critical", platform="CS2 Network PPPP", peer_ip="5.6.7.8")
    g.add(grown, 2)
    g.flush_all()
    ((note, count),) = sent.got
    assert note.severity is Severity.CRITICAL and count == 3 and "grouped" not in note.evidence


def test_nothing_is_dropped_at_the_bound_of_waiting_cameras() -> None:
    g, sent = groups(max_devices=2)
    for i in range(5):
        g.add(alert("cloud_registration", i, device=f"cam-{i}"), 1)
    assert len(sent.got) == 3 and g.early == 3  # sent before they were due, counted
    assert g.flush_all() == 2
    assert sorted(a.device for a, _ in sent.got) == [f"cam-{i}" for i in range(5)]


def test_zero_waits_send_every_report_at_once_alone() -> None:
    g, sent = groups(0, 0)
    assert not g.enabled
    g.add(alert("cloud_registration", 0), 1)
    g.add(alert("rogue_dns", 1), 1)
    assert sent.rules() == [["cloud_registration"], ["rogue_dns"]]


def test_a_flood_summary_leads_its_notification() -> None:
    g, sent = groups()
    for i in range(3):
        g.add(alert("unexpected_egress", i, "medium", peer_name=f"p{i}.example"), 1)
    g.add(alert(FLOOD_RULE, 3, "medium", peer_name=None, peer_ip=None), 1)
    g.flush_all()
    assert sent.rules()[0][0] == FLOOD_RULE


def test_members_and_findings_read_every_report_and_every_folded_finding() -> None:
    folded = {"rule": "denied_country", "severity": "high", "summary": "CN", "evidence": {}}
    g, sent = groups()
    g.add(alert("cloud_registration", 0, evidence={"folded": [folded]}), 1)
    g.add(alert("rogue_dns", 1, peer_name="dns.example"), 1)
    g.flush_all()
    record = json.loads(json.dumps(sent.got[0][0].record(1)))
    reports = list(members(record))
    assert [(r["rule"], r["device"]) for r in reports] == [
        ("cloud_registration", "cam"),
        ("rogue_dns", "cam"),
    ]
    assert "grouped" not in reports[0]["evidence"]
    assert [f["rule"] for f in findings(record)] == [
        "cloud_registration",
        "denied_country",
        "rogue_dns",
    ]
    # a record regrouped from its reports is the record
    assert regroup(reports) == record


def test_a_report_from_another_address_of_the_device_keeps_its_address() -> None:
    g, sent = groups()
    g.add(alert("cloud_registration", 0, device="cam-2", device_ip="fd00:20::12"), 1)
    g.add(alert("inbound_access", 1, device="cam-2", device_ip="10.20.0.12"), 1)
    g.add(alert("audio_stream", 2, "medium", device="cam-2", device_ip="fd00:20::12"), 1)
    g.flush_all()
    ((note, _),) = sent.got  # one device, one notification
    record = json.loads(json.dumps(note.record(1)))
    reports = list(members(record))
    assert [(r["rule"], r["device"], r["device_ip"]) for r in reports] == [
        ("cloud_registration", "cam-2", "fd00:20::12"),
        ("inbound_access", "cam-2", "10.20.0.12"),
        ("audio_stream", "cam-2", "fd00:20::12"),
    ]
    assert ["device_ip" in r for r in record["evidence"]["grouped"]] == [True, False]
    assert regroup(reports) == record


def test_absorb_keeps_both_notifications_reports() -> None:
    """A sink that was down: a later notification with the same alert identity is folded
    into the queued one; counts add, new reports join, a grown incident keeps its graver
    report."""
    first = regroup(
        [
            alert("cloud_registration", 0).record(1),
            alert("rogue_dns", 1, "medium", peer_name="dns.example").record(1),
        ]
    )
    later = regroup(
        [
            alert("cloud_registration", 100).record(2),
            alert("rogue_dns", 101, "high", peer_name="dns.example").record(1),
            alert("unexpected_egress", 102, "medium", peer_name="x.example").record(1),
        ]
    )
    merged = absorb(first, later)
    got = {(r["rule"], r["severity"], r["count"], r["ts"][17:19]) for r in members(merged)}
    assert got == {
        ("cloud_registration", "high", 3, "00"),  # the first kept, counts added
        ("rogue_dns", "high", 2, "41"),  # it grew: the graver report
        ("unexpected_egress", "medium", 1, "42"),
    }
    assert merged["rule"] == "cloud_registration"


def test_the_config_keys_reach_the_groups() -> None:
    cfg = Config.from_yaml("alerts: {group_wait_s: 5, group_interval_s: 0}")
    g = DeviceGroups.of(Sent(), cfg.alerts)
    assert (g.group_wait_s, g.group_interval_s) == (5.0, 0.0) and g.enabled
    defaults = Config.default().alerts
    assert (
        (defaults.group_wait_s, defaults.group_interval_s)
        == (
            DEFAULT_GROUP_WAIT_S,
            DEFAULT_GROUP_INTERVAL_S,
        )
        == (60.0, 300.0)
    )
