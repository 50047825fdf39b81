"""The rules package against its built-in sets: a rule module that is not listed fails.

Every module of :mod:`netwatch.rules` is imported; one that defines a registered rule not in
``BUILTIN_RULES``/``BUILTIN_SENSOR_RULES`` (written, imported, never run) or that defines
none without being a declared helper fails the walk. The last tests drop a real extra module
into the package and show that the same walk then fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from netwatch.alerts.model import Alert
from netwatch.capture.source import CaptureCounts
from netwatch.config import Config
from netwatch.registry import PackageAudit, audit_package
from netwatch.rules import (
    BUILTIN_RULES,
    BUILTIN_SENSOR_RULES,
    HELPER_MODULES,
    REGISTRY,
    SensorRule,
    SensorRules,
    sensor_rules,
)
from netwatch.rules.capture_loss import CaptureLoss
from tests.registry_support import extra_module

PACKAGE = "netwatch.rules"


def audit() -> PackageAudit:
    return audit_package(PACKAGE, REGISTRY, BUILTIN_RULES + BUILTIN_SENSOR_RULES, HELPER_MODULES)


def test_every_rule_module_is_in_the_builtin_sets() -> None:
    result = audit()
    assert result.ok, result
    ids = [cls.id for cls in BUILTIN_RULES + BUILTIN_SENSOR_RULES]
    assert len(ids) == len(set(ids))


def test_flow_rules_and_sensor_rules_are_kept_apart() -> None:
    assert not any(issubclass(cls, SensorRule) for cls in BUILTIN_RULES)
    assert all(issubclass(cls, SensorRule) for cls in BUILTIN_SENSOR_RULES)
    assert "sensor_rule" not in REGISTRY  # the kind itself is not a rule


def test_sensor_rules_are_built_from_the_config(tmp_path: Path) -> None:
    cfg_file = tmp_path / "netwatch.yaml"
    cfg_file.write_text("capture:\n  loss_threshold: 0.2\n")
    (rule,) = sensor_rules(Config.load(cfg_file)).rules
    assert isinstance(rule, CaptureLoss) and rule.threshold == 0.2


def test_a_rule_module_missing_from_the_builtin_set_fails_the_walk(tmp_path: Path) -> None:
    source = """
        from netwatch.rules.base import Rule

        class ForgottenExample(Rule):
            pass
    """
    with extra_module(tmp_path, PACKAGE, "forgotten_example", source, REGISTRY):
        result = audit()
        assert "forgotten_example" in REGISTRY
    assert result.unlisted == {"forgotten_example"} and not result.ok
    assert audit().ok  # and the package is clean again


def test_a_module_defining_no_rule_fails_unless_declared_a_helper(tmp_path: Path) -> None:
    with extra_module(tmp_path, PACKAGE, "shared_bits", "X = 1\n", REGISTRY):
        result = audit()
        helper_ok = audit_package(
            PACKAGE,
            REGISTRY,
            BUILTIN_RULES + BUILTIN_SENSOR_RULES,
            HELPER_MODULES | {"shared_bits"},
        )
    assert result.stray == {"shared_bits"} and not result.ok
    assert helper_ok.ok


def test_a_helper_that_defines_a_rule_fails() -> None:
    result = audit_package(
        PACKAGE, REGISTRY, BUILTIN_RULES + BUILTIN_SENSOR_RULES, HELPER_MODULES | {"rogue_dns"}
    )
    assert result.wrong_helpers == {"rogue_dns"}


def test_sensor_rules_turn_capture_counters_into_alerts(tmp_path: Path) -> None:
    cfg_file = tmp_path / "netwatch.yaml"
    cfg_file.write_text("capture:\n  loss_threshold: 0.05\n")
    sensors = sensor_rules(Config.load(cfg_file))
    assert sensors.on_capture(1000.0, {"eth1": CaptureCounts(received=0)}) == []
    (alert,) = sensors.on_capture(1061.0, {"eth1": CaptureCounts(900, dropped_kernel=100)})
    assert (alert.rule, alert.device, alert.evidence["dropped"]) == ("capture_loss", "eth1", 100)
    assert sensors.errors.counts == {}


def test_a_failing_sensor_rule_is_isolated_and_counted() -> None:
    class BrokenSensorExample(SensorRule):
        def on_capture(self, now: float, counts: Mapping[str, CaptureCounts]) -> Iterator[Alert]:
            raise RuntimeError("counter read failed")
            yield  # a generator, like most rules

    try:
        working = CaptureLoss(threshold=0.01, window_s=0.0, host="s")
        sensors = SensorRules([BrokenSensorExample(), working])
        counts = {"eth1": CaptureCounts(10, dropped_kernel=10)}
        assert sensors.on_capture(1.0, counts) == []
        (alert,) = sensors.on_capture(2.0, {"eth1": CaptureCounts(20, dropped_kernel=20)})
        assert alert.rule == "capture_loss"
        assert sensors.errors.counts == {"broken_sensor_example": 2}
    finally:
        REGISTRY.pop("broken_sensor_example", None)


def test_each_rule_module_documents_its_options() -> None:
    """Every flow rule's module docstring names ``rules.<id>`` and each option of its own."""
    for rule in BUILTIN_RULES:
        doc = sys.modules[rule.__module__].__doc__ or ""
        assert f"``rules.{rule.id}``" in doc, rule.id
        for name in rule.options_type.names():
            assert f"``{name}``" in doc, f"{rule.id}: option {name} not in its docstring"
