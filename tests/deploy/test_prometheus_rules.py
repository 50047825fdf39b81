"""The Prometheus alerting rules, their promtool unit tests and the example configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from netwatch.alerts.model import Severity
from tests.deploy.metric_names import METRIC_LABELS, PROMETHEUS_SERIES, TARGET_LABELS
from tests.deploy.promql import selectors

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "prometheus"
RULES = PROMETHEUS_DIR / "netwatch-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "netwatch-rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"

EXPECTED_ALERTS = frozenset(
    {
        "NetwatchDown",
        "NetwatchCaptureLoss",
        "NetwatchCaptureInterfaceDown",
        "NetwatchCaptureStalled",
        "NetwatchPipelineLag",
        "NetwatchOutboxBacklog",
        "NetwatchOutboxStorageFault",
        "NetwatchOutboxDropping",
        "NetwatchSinkFailing",
        "NetwatchAlertsDropped",
        "NetwatchGeoipStale",
        "NetwatchConfigReloadFailed",
        "NetwatchRuleErrors",
    }
)
#: The camera alerts' scale (netwatch.alerts.model.Severity): one vocabulary for routes.
SEVERITIES = frozenset(s.value for s in Severity)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not on PATH (CI installs the Debian prometheus / "
            "prometheus-alertmanager packages)"
        )
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, cwd=PROMETHEUS_DIR
    )
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = _load(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = _run(_tool("promtool"), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    _run(_tool("promtool"), "test", "rules", str(RULE_TESTS))


def test_promtool_check_config() -> None:
    # Run from elsewhere: rule_files must resolve relative to the config file itself.
    result = subprocess.run(
        [_tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_amtool_check_config() -> None:
    _run(_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=rogue_dns", "severity=critical", "device=cam"), "netwatch-camera-urgent"),
        (("alertname=new_destination", "severity=medium", "device=cam"), "netwatch-camera"),
        (("alertname=new_destination", "severity=info", "device=cam"), "blackhole"),
        (("alertname=NetwatchDown", "severity=critical", "instance=s"), "netwatch-sensor-urgent"),
        (("alertname=NetwatchGeoipStale", "severity=info", "instance=s"), "netwatch-sensor"),
        (("alertname=SomethingElse", "severity=critical"), "default"),
        # the camera's group and the sensor's site route before severity
        (("alertname=outbound_stream", "severity=critical", "group=wards"), "security-team"),
        (("alertname=unexpected_egress", "severity=medium", "group=icu"), "security-team"),
        (("alertname=rogue_dns", "severity=low", "group=wards"), "netwatch-camera"),
        (("alertname=audio_stream", "severity=high", "group=car-park"), "facilities"),
        (("alertname=nat_traversal", "severity=high", "site=parliament-east"),
         "parliament-security"),
        (("alertname=nat_traversal", "severity=high", "group=default"), "netwatch-camera-urgent"),
    ],
)  # fmt: skip
def test_alertmanager_routing(labels: tuple[str, ...], receiver: str) -> None:
    _run(
        _tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )


def test_rule_set_and_metadata() -> None:
    (group,) = _load(RULES)["groups"]
    assert group["name"] == "netwatch-sensor"
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert len(annotations["description"]) > 150, f"{rule['alert']}: write a runbook"


def test_rules_use_only_exported_metrics() -> None:
    known = {**METRIC_LABELS, **PROMETHEUS_SERIES}
    for rule in _rules():
        found = selectors(rule["expr"])
        assert found, rule["alert"]
        for name, labels in found:
            assert name in known, f"{rule['alert']}: {name} is not a netwatch metric"
            unknown = labels - known[name] - TARGET_LABELS
            assert not unknown, f"{rule['alert']}: {name} has no label(s) {sorted(unknown)}"


def test_every_rule_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _load(RULE_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
            for alert in check.get("exp_alerts") or []:
                assert alert["exp_annotations"].keys() >= {"summary", "description"}
    assert firing == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS
