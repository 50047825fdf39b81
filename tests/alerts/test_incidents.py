"""Tests for netwatch.alerts.incidents: one flow, one notification."""

from __future__ import annotations

import itertools

from netwatch.alerts.incidents import findings, fold
from netwatch.alerts.model import Alert, PendingAlert, RuleAlert, Severity
from netwatch.config.schema import FOLD_PRECEDENCE
from netwatch.rules import REGISTRY


def finding(rule: str, severity: Severity, **kw: object) -> Alert:
    base: dict[str, object] = {
        "ts": 1.0,
        "rule": rule,
        "severity": severity,
        "device": "ward-3",
        "device_ip": "10.1.0.3",
        "peer_ip": "203.0.113.7",
        "summary": f"{rule} happened",
        "evidence": {"of": rule},
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_the_default_order_names_real_rules_only() -> None:
    assert set(FOLD_PRECEDENCE) <= set(REGISTRY)
    assert FOLD_PRECEDENCE.index("cloud_registration") < FOLD_PRECEDENCE.index("denied_country")
    assert FOLD_PRECEDENCE.index("denied_country") < FOLD_PRECEDENCE.index("unexpected_egress")


def test_a_flow_that_registers_in_a_denied_country_pages_once() -> None:
    found = [
        finding("unexpected_egress", Severity.MEDIUM),
        finding("denied_country", Severity.HIGH),
        finding("cloud_registration", Severity.HIGH, platform="Xiaomi cloud"),
    ]
    (folded,) = fold(found, FOLD_PRECEDENCE)
    alert = folded.built()
    assert (alert.rule, alert.severity, alert.platform) == (
        "cloud_registration", Severity.HIGH, "Xiaomi cloud",
    )  # fmt: skip
    assert [f["rule"] for f in alert.evidence["folded"]] == ["denied_country", "unexpected_egress"]
    assert alert.evidence["folded"][0]["evidence"] == {"of": "denied_country"}
    assert alert.summary == "cloud_registration happened"  # nothing graver was folded


def test_a_graver_folded_finding_raises_severity_and_is_in_the_summary() -> None:
    found = [
        finding("nat_traversal", Severity.HIGH, platform="CS2 Network PPPP"),
        finding("outbound_stream", Severity.CRITICAL),
    ]
    (folded,) = fold(found, FOLD_PRECEDENCE)
    alert = folded.built()
    assert (alert.rule, alert.severity) == ("nat_traversal", Severity.CRITICAL)
    assert alert.summary == "nat_traversal happened; outbound_stream happened"
    rules = [(f["rule"], f["severity"]) for f in findings(alert.record())]
    assert rules == [("nat_traversal", "critical"), ("outbound_stream", "critical")]


def test_rules_outside_the_order_are_never_folded_and_the_order_is_configurable() -> None:
    found = [
        finding("unmanaged_device", Severity.HIGH, peer_ip=None),
        finding("unexpected_egress", Severity.MEDIUM),
        finding("denied_country", Severity.HIGH),
    ]
    out = fold(found, FOLD_PRECEDENCE)
    assert [a.rule for a in out] == ["denied_country", "unmanaged_device"]
    out = fold(found, ("unexpected_egress", "denied_country"))
    assert [a.rule for a in out] == ["unexpected_egress", "unmanaged_device"]
    assert out[0].severity is Severity.HIGH
    assert fold(found[:1], FOLD_PRECEDENCE) == found[:1]


def _pending(alert: Alert, builds: list[str]) -> PendingAlert:
    """``alert`` not built yet (``builds`` collects the rule of each build)."""

    def build() -> Alert:
        builds.append(alert.rule)
        return alert

    return PendingAlert(
        alert.ts,
        alert.rule,
        alert.severity,
        alert.device,
        alert.flow_uid,
        alert.peer,
        alert.reached,
        alert.platform,
        build,
    )


def test_a_fold_reads_as_its_alert_does_and_is_built_only_when_asked() -> None:
    """Every mix of platforms, subjects, peers and severities, built or not yet: what the
    router reads of the folded alert (identity, time, rule, severity, device, flow, peer) is
    the built alert's; nothing is built before ``built()`` when the identity is the
    primary's, and the built alert is the one folded from the built findings."""
    platforms = (None, "", "Xiaomi cloud", "Tuya")
    cases = 0
    for p1, p2, p3 in itertools.product(platforms, repeat=3):
        for subject, peer_ip, pending in itertools.product(
            (None, "AS64500 cloud"), (None, "203.0.113.7"), (False, True)
        ):
            found = [
                finding("unexpected_egress", Severity.MEDIUM, platform=p1, subject=subject),
                finding("denied_country", Severity.CRITICAL, platform=p2, peer_ip=peer_ip),
                finding("unmanaged_device", Severity.LOW, platform=p3),
                finding("new_destination", Severity.HIGH, platform=p3, peer_name="a.example"),
            ]
            builds: list[str] = []
            given: list[RuleAlert] = [_pending(a, builds) if pending else a for a in found]
            out = fold(given, FOLD_PRECEDENCE)
            eager = fold(found, FOLD_PRECEDENCE)
            assert [a.rule for a in out] == ["denied_country", "unmanaged_device"]
            lazy = p2 or not (p1 or p3)  # the primary names a platform, or none does
            assert isinstance(out[0], PendingAlert) is bool(lazy)
            if pending and lazy:
                assert builds == []
            alert = out[0].built()
            assert alert.identity == out[0].identity
            assert (alert.ts, alert.rule, alert.severity, alert.device, alert.flow_uid) == (
                out[0].ts, out[0].rule, out[0].severity, out[0].device, out[0].flow_uid,
            )  # fmt: skip
            assert alert.peer == out[0].peer
            assert alert.record() == eager[0].built().record()
            assert out[1] is given[2]
            cases += 1
    assert cases == 4**3 * 8
