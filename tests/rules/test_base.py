"""Tests for the rule registry and rule isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from netwatch.alerts.model import Alert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import (
    REGISTRY,
    Rule,
    RuleErrors,
    RuleOptions,
    rule_id,
    run_flow_rules,
    run_rule,
)


def test_rule_ids_come_from_class_names() -> None:
    assert rule_id("CloudRegistration") == "cloud_registration"
    assert rule_id("UpnpPortMapping") == "upnp_port_mapping"


def test_duplicate_rule_ids_fail_loudly() -> None:
    class ExampleRuleForRegistry(Rule):
        pass

    try:
        assert REGISTRY["example_rule_for_registry"] is ExampleRuleForRegistry
        with pytest.raises(TypeError, match="defined twice"):
            type("ExampleRuleForRegistry", (Rule,), {})
    finally:
        REGISTRY.pop("example_rule_for_registry", None)


def test_a_failing_rule_is_isolated_and_counted() -> None:
    class ExplodingExampleRule(Rule):
        def on_flow_end(self, facts: Any) -> Iterator[Alert]:
            yield Alert(
                ts=1,
                rule=self.id,
                severity=Severity.LOW,
                device="d",
                device_ip="ip",
                summary="before the failure",
            )
            raise RuntimeError("boom")

    try:
        errors = RuleErrors()
        rule = ExplodingExampleRule()

        got = list(run_rule(rule, errors, rule.on_flow_end, None))
        assert [a.summary for a in got] == ["before the failure"]
        assert errors.counts == {"exploding_example_rule": 1}
        # the detector's loop over a camera end's rules: the same, and the next rule runs
        found = run_flow_rules([rule, Rule(), rule], errors, cast(FlowFacts, None))
        assert [a.built().summary for a in found] == ["before the failure"] * 2
        assert errors.counts == {"exploding_example_rule": 3}
    finally:
        REGISTRY.pop("exploding_example_rule", None)


def test_rule_options_merge_later_levels_over_the_defaults() -> None:
    assert RuleOptions.merged() == RuleOptions(enabled=True, severity=None)
    site = {"enabled": False, "severity": Severity.LOW}
    assert RuleOptions.merged(site, None) == RuleOptions(enabled=False, severity=Severity.LOW)
    merged = RuleOptions.merged(site, {"enabled": True})
    assert merged == RuleOptions(enabled=True, severity=Severity.LOW)
    assert Rule.options_type is RuleOptions and RuleOptions.names() == ("enabled", "severity")
