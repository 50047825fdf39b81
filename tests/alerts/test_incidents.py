"""Tests for netwatch.alerts.incidents: one flow, one notification."""

from __future__ import annotations

from netwatch.alerts.incidents import findings, fold
from netwatch.alerts.model import Alert, Severity
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
