"""Tests for netwatch.detect.facts: a rule's finding not built yet (``FlowFacts.finding``)
carries exactly the fields the built alert has for what the router reads, on the demo
capture and the corpus captures; and replaying with every finding built at once writes the
same alert log, byte for byte."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.incidents import fold
from netwatch.alerts.model import Alert, PendingAlert, RuleAlert, Severity
from netwatch.detect.facts import FlowFacts, flow_facts
from netwatch.detect.policy import Destination
from netwatch.testing import pcapgen as g
from tests.detect.test_engine import PRECONDITION_CAPTURES, _alert_lines
from tests.rules.test_rules import BASE_CONFIG, CLOUD, dual_stack_camera, replay, route, tcp_session

CAPTURES = PRECONDITION_CAPTURES


def router_fields(alert: Alert | PendingAlert) -> tuple[Any, ...]:
    """What the router reads of a finding it only counts."""
    return (alert.ts, alert.rule, alert.severity, alert.device, alert.flow_uid, alert.peer)


def test_a_finding_reads_as_its_alert_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every finding the rules yield on these captures: its identity, time, rule, severity,
    device, flow and peer are the built alert's; the cases that shape the identity (no
    peer, a subject, a platform) all occur."""
    finding = FlowFacts.finding
    seen: Counter[str] = Counter()
    mismatches: list[tuple[Any, ...]] = []

    def checked(
        self: FlowFacts,
        rule: str,
        severity: Severity,
        summary: str,
        evidence: Any,
        *,
        peer: bool = True,
        subject: str | None = None,
    ) -> PendingAlert:
        pending = finding(self, rule, severity, summary, evidence, peer=peer, subject=subject)
        built = self.alert(rule, severity, summary, evidence, peer=peer, subject=subject)
        if pending.identity != built.identity or router_fields(pending) != router_fields(built):
            mismatches.append((pending.identity, built.identity))
        seen[rule] += 1
        seen["no peer"] += not peer
        seen["subject"] += subject is not None
        seen["platform"] += bool(built.platform)
        seen["network"] += built.reached.endswith("/24")
        return pending

    monkeypatch.setattr(FlowFacts, "finding", checked)
    for _name, capture, config in CAPTURES:
        _alert_lines(tmp_path, capture, config)
    t = g.Trace()  # a denied country: a subject
    tcp_session(t, route(CLOUD), 443, 1_000_000)
    assert replay(tmp_path, t)
    t = g.Trace()  # an unlisted camera: no peer
    dual_stack_camera(t, "10.20.0.78", "fd00::78", 1_000_000)
    assert replay(tmp_path, t, BASE_CONFIG + "site:\n  local_nets: [10.0.0.0/8, 'fd00::/8']\n")
    assert not mismatches
    assert all(seen[case] for case in ("no peer", "subject", "platform")), seen
    assert seen["unexpected_egress"] > 10


@pytest.mark.parametrize(("name", "capture", "config"), CAPTURES, ids=[c[0] for c in CAPTURES])
def test_findings_built_at_once_change_no_alert(
    name: str, capture: Path, config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert log, byte for byte, is the one of building every finding as it is found."""
    lazy = _alert_lines(tmp_path, capture, config)
    finding = FlowFacts.finding

    def built_at_once(self: FlowFacts, *args: Any, **kwargs: Any) -> PendingAlert:
        pending = finding(self, *args, **kwargs)
        pending.built()
        return pending

    monkeypatch.setattr(FlowFacts, "finding", built_at_once)
    assert _alert_lines(tmp_path, capture, config) == lazy


def test_facts_are_whole_named_tuples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every camera end's facts on these captures (built without the named tuples' own
    constructors) are what the constructors give: every field there, none extra."""
    seen: list[FlowFacts] = []

    def recorded(*args: Any) -> list[FlowFacts]:
        found = flow_facts(*args)
        seen.extend(found)
        return found

    monkeypatch.setattr("netwatch.detect.engine.flow_facts", recorded)
    for _name, capture, config in CAPTURES:
        _alert_lines(tmp_path, capture, config)
    assert len(seen) > 100
    for facts in seen:
        assert type(facts) is FlowFacts and type(facts.peer) is Destination
        assert len(facts) == len(FlowFacts._fields) and len(facts.peer) == len(Destination._fields)
        assert FlowFacts(*facts) == facts and Destination(*facts.peer) == facts.peer


def test_folds_built_at_once_change_no_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert logs of these captures, byte for byte, are the ones of building every
    folded alert as it is folded; the router's fields of one not built yet are its built
    alert's."""
    lazy = [_alert_lines(tmp_path, capture, config) for _name, capture, config in CAPTURES]
    folds: list[RuleAlert] = []

    def built_at_once(found: Sequence[RuleAlert], precedence: Sequence[str]) -> list[RuleAlert]:
        out = fold(found, precedence)
        for alert in out:
            built = alert.built()
            assert alert.identity == built.identity
            assert router_fields(alert) == router_fields(built)
        folds.extend(out[:1])
        return out

    monkeypatch.setattr("netwatch.detect.engine.fold", built_at_once)
    assert [_alert_lines(tmp_path, capture, config) for _n, capture, config in CAPTURES] == lazy
    assert any(isinstance(a, PendingAlert) for a in folds)
