"""The detector's use of rule options, on the demo capture: a rule switched off for a group
does not run for its cameras, a severity override is on the alert before findings fold, and
a reload (a new detector) picks new options up; the rules a camera end meets the
preconditions of are the ones run, with the same alerts as running them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.grouping import members
from netwatch.alerts.incidents import findings
from netwatch.alerts.model import Alert, Direction
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.pipeline import Pipeline
from netwatch.replay import run_replay
from netwatch.rules.audio_stream import AudioStream
from netwatch.rules.base import Rule
from netwatch.rules.denied_country import DeniedCountry
from netwatch.rules.unmanaged_device import UnmanagedDevice
from tests.conftest import corpus_file
from tests.integration.test_corpus_alerts import CAMERAS

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
AUDIO_CAMERA = "bc:ad:28:1a:2b:02"  # cam-hik-2 (10.20.0.12): offers audio to the NVR
DAHUA = "b4:4c:3b:5e:6f:03"  # cam-dahua-1: Easy4ip cloud, folded with unexpected_egress
CAR_PARK = f"cameras:\n  - {{name: cam-hik-2, mac: '{AUDIO_CAMERA}', group: car-park}}\n"


def demo_alerts(tmp_path: Path, config: str) -> list[dict[str, Any]]:
    """The notifications of the demo capture replayed with ``config``."""
    out = tmp_path / "alerts.jsonl"
    cfg = Config.from_yaml(config, file="test.yaml")
    summary = run_replay([DEMO], cfg, alerts_out=out, uid_seed=1)
    assert not summary.rule_errors
    return [json.loads(line) for line in out.read_text().splitlines()]


def by_rule(alerts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    """Every finding of ``rule``, whether a notification or folded into one."""
    return [f for a in alerts for f in findings(a) if f["rule"] == rule]


def test_audio_stream_off_for_the_car_park_group(tmp_path: Path) -> None:
    groups = "groups:\n  car-park:\n    rules: {audio_stream: %s}\n"
    (before,) = by_rule(demo_alerts(tmp_path, CAR_PARK + groups % "on"), "audio_stream")
    assert before["device"] == "cam-hik-2" and before["severity"] == "medium"
    alerts = demo_alerts(tmp_path, CAR_PARK + groups % "off")
    assert by_rule(alerts, "audio_stream") == []
    assert by_rule(alerts, "inbound_access")[0]["device"] == "cam-hik-2"  # the rest still runs


def test_audio_stream_at_low_severity_for_the_car_park_group(tmp_path: Path) -> None:
    config = CAR_PARK + "groups:\n  car-park:\n    rules:\n      audio_stream: {severity: low}\n"
    (alert,) = by_rule(demo_alerts(tmp_path, config), "audio_stream")
    assert alert["device"] == "cam-hik-2" and alert["severity"] == "low"
    assert alert["group"] == "car-park"


def test_the_site_wide_switch_and_a_group_that_turns_it_back_on(tmp_path: Path) -> None:
    assert by_rule(demo_alerts(tmp_path, "rules: {audio_stream: off}\n"), "audio_stream") == []
    config = (
        CAR_PARK + "rules: {audio_stream: off}\ngroups: {car-park: {rules: {audio_stream: on}}}\n"
    )
    (alert,) = by_rule(demo_alerts(tmp_path, config), "audio_stream")
    assert alert["device"] == "cam-hik-2"


def test_a_severity_override_is_applied_before_folding(tmp_path: Path) -> None:
    """cam-dahua-1's cloud_registration (high) folds its unexpected_egress (medium): raised
    to critical, the folded finding makes the notification critical."""
    config = (
        f"cameras:\n  - {{name: dahua, mac: '{DAHUA}', group: g}}\n"
        "groups:\n  g:\n    rules:\n      unexpected_egress: {severity: critical}\n"
    )
    (cloud,) = [
        a
        for a in demo_alerts(tmp_path, config)
        if a["rule"] == "cloud_registration" and a["device"] == "dahua"
    ]
    folded = {f["rule"]: f["severity"] for f in cloud["evidence"]["folded"]}
    assert folded == {"unexpected_egress": "critical"}
    assert cloud["severity"] == "critical"


def test_disabled_rules_are_chosen_once_per_group() -> None:
    cfg = Config.from_yaml(CAR_PARK + "groups: {car-park: {rules: {audio_stream: off}}}\n")
    pipe = Pipeline(cfg, lambda record: None, on_alert=lambda alert, n: None)
    detector = pipe.detector
    assert detector is not None
    assert set(detector.rules_of) == {"default", "car-park"}
    assert any(isinstance(r, AudioStream) for r in detector.rules_of["default"])
    assert not any(isinstance(r, AudioStream) for r in detector.rules_of["car-park"])
    assert len(detector.rules_of["car-park"]) == len(detector.rules) - 1
    # one instance per rule, shared by the groups (stateful rules keep one state)
    assert detector.rules_of["car-park"][0] is detector.rules_of["default"][0]


def test_a_reload_picks_the_new_options_up() -> None:
    off = Config.from_yaml(CAR_PARK + "groups: {car-park: {rules: {audio_stream: off}}}\n")
    low = Config.from_yaml(
        CAR_PARK + "groups: {car-park: {rules: {audio_stream: {severity: low}}}}\n"
    )
    alerts: list[Alert] = []
    pipe = Pipeline(off, lambda record: None, on_alert=lambda alert, n: alerts.append(alert))
    with open_capture(DEMO) as cap:
        packets = list(cap.packets())
    half = len(packets) // 2
    pipe.run(packets[:half])
    pipe.reconfigure(low)
    pipe.run(packets[half:])
    pipe.finish()
    reports = [r for a in alerts for r in members(a.record())]
    audio = [r for r in reports if r["rule"] == "audio_stream"]
    assert [(r["device"], r["severity"]) for r in audio] == [("cam-hik-2", "low")]


def test_rules_are_skipped_where_their_preconditions_fail() -> None:
    """A camera end with no application data runs no rule that reads only that; an inbound
    or local one runs no outbound-only rule; the group's order (and switches) are kept."""
    cfg = Config.from_yaml(CAR_PARK + "groups: {car-park: {rules: {inbound_access: off}}}\n")
    detector = Pipeline(cfg, lambda record: None, on_alert=lambda alert, n: None).detector
    assert detector is not None
    app_only = {"audio_stream", "cloud_enabled", "nat_traversal", "upnp_port_mapping"}
    outbound_only = {"cloud_registration", "outbound_stream", "unexpected_egress"}
    for group in ("default", "car-park"):
        every = [r.id for r in detector.rules_of[group]]
        for direction in Direction:
            for has_app in (False, True):
                ran = [r.id for r in detector.runnable_rules(group, direction, has_app)]
                skipped = {"denied_country"}  # no group denies a country or AS here
                if not has_app:
                    skipped |= app_only
                if direction is not Direction.OUTBOUND:
                    skipped |= outbound_only
                if direction is Direction.INBOUND:  # the camera did not open the flow
                    skipped |= {"rogue_dns", "new_destination"}
                assert ran == [r for r in every if r not in skipped], (group, direction)
                # the peer's port: rogue_dns only for DNS's, unexpected_egress never for it
                for dns_peer, ruled_out in ((True, "unexpected_egress"), (False, "rogue_dns")):
                    ran = [
                        r.id for r in detector.runnable_rules(group, direction, has_app, dns_peer)
                    ]
                    expected = [r for r in every if r not in skipped | {ruled_out}]
                    assert ran == expected, (group, direction, dns_peer)
    assert "inbound_access" not in [r.id for r in detector.runnable_rules("car-park", *KEY)]
    assert "inbound_access" in [r.id for r in detector.runnable_rules("default", *KEY)]


def test_rules_a_group_or_the_inventory_rules_out_are_skipped() -> None:
    """denied_country runs for a group that denies something; unmanaged_device with an
    inventory (it has nothing to report zero-config)."""
    out = (Direction.OUTBOUND, False)
    zero = Pipeline(Config.default(), lambda record: None, on_alert=lambda alert, n: None)
    assert zero.detector is not None
    ran = {r.id for r in zero.detector.runnable_rules("default", *out)}
    assert not ran & {"denied_country", "unmanaged_device"}
    assert "unexpected_egress" in ran
    cfg = Config.from_yaml(
        CAR_PARK + "groups:\n  car-park: {deny_countries: [CN]}\n  lobby: {deny_asns: [64500]}\n"
    )
    listed = Pipeline(cfg, lambda record: None, on_alert=lambda alert, n: None).detector
    assert listed is not None
    for group, denies in (("car-park", True), ("lobby", True), ("default", False)):
        ran = {r.id for r in listed.runnable_rules(group, *out)}
        assert "unmanaged_device" in ran
        assert ("denied_country" in ran) is denies, group


KEY = (Direction.INBOUND, False)


def _alert_lines(tmp_path: Path, capture: Path, config: str, **kwargs: Any) -> bytes:
    out = tmp_path / "alerts.jsonl"
    out.unlink(missing_ok=True)
    summary = run_replay(
        [capture], Config.from_yaml(config, file="t.yaml"), alerts_out=out, uid_seed=1, **kwargs
    )
    assert not summary.rule_errors
    return out.read_bytes()


#: A learning period of a second: new_destination reports (the default is 7 days).
LEARN = "learning: {period_s: 1}\n"
PRECONDITION_CAPTURES = [("demo", DEMO, LEARN)] + [
    (
        Path(rel).name,
        corpus_file("pcaps", *rel.split("/")),
        LEARN
        + "geoip: {builtin: false}\ncameras:\n"
        + "".join(f"  - {{name: cam-{i}, ip: {ip}}}\n" for i, ip in enumerate(ips)),
    )
    for rel, ips in sorted(CAMERAS.items())
]


@pytest.mark.parametrize(
    ("name", "capture", "config"), PRECONDITION_CAPTURES, ids=[c[0] for c in PRECONDITION_CAPTURES]
)
def test_preconditions_change_no_alert(
    name: str, capture: Path, config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert log, byte for byte, is the one of running every rule on every camera end
    (each rule's declared preconditions are ones its own checks return on)."""
    skipping = _alert_lines(tmp_path, capture, config)
    monkeypatch.setattr(
        Rule, "can_fire", classmethod(lambda cls, direction, has_app, dns_peer=None: True)
    )
    for rule in (Rule, DeniedCountry, UnmanagedDevice):  # every rule's runs_for
        monkeypatch.setattr(rule, "runs_for", classmethod(lambda cls, policy, size: True))
    assert _alert_lines(tmp_path, capture, config) == skipping
    if name == "demo":
        assert skipping  # the demo alerts (the comparison compares something)
