"""The daemon collector's outbox families, read from a real Deliverer whose state directory
cannot hold the outbox file (a storage fault survived in memory)."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from netwatch.alerts.model import Alert
from netwatch.config.schema import SinkConfig
from netwatch.delivery import Deliverer
from netwatch.metrics.daemon import OUTBOX_DROP_REASONS, DaemonCollector, DaemonState
from netwatch.outbox import OutboxLimits
from netwatch.rules.base import SensorRules
from netwatch.rules.capture_loss import CaptureLoss
from netwatch.sinks.jsonl import JsonlSink
from tests.sinks.conftest import make_alert


def _registry(deliverer: Deliverer) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DaemonCollector(DaemonState(), lambda: deliverer, dict, clock=time.time))
    return registry


def test_storage_fault_and_drops_are_exported(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    sink = JsonlSink(SinkConfig(name="log", type="jsonl", path=tmp_path / "log.jsonl"))
    deliverer = Deliverer(
        tmp_path / "state" / "outbox.sqlite", [sink], limits=OutboxLimits(max_rows=2)
    )
    deliverer.open()
    for i in range(3):
        deliverer.enqueue(make_alert(peer_name=f"p{i}"))
    deliverer.store_intake()
    registry = _registry(deliverer)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("netwatch_outbox_storage_errors_total") == 1
    assert value("netwatch_outbox_storage_ok") == 0
    assert value("netwatch_outbox_in_memory") == 1
    assert value("netwatch_outbox_rows") == 2 and (value("netwatch_outbox_bytes") or 0) > 0
    assert value("netwatch_outbox_dropped_total", reason="max_rows") == 1
    for reason in OUTBOX_DROP_REASONS:
        assert value("netwatch_outbox_dropped_total", reason=reason) is not None
    assert value("netwatch_outbox_depth", sink="log") == 2  # existing series unchanged
    assert value("netwatch_outbox_intake_depth") == 0
    assert value("netwatch_sink_alerts_enqueued_total", sink="log") == 3
    deliverer.close()
    assert b"netwatch_outbox_storage_ok" in generate_latest(registry)  # a closed one scrapes


def test_healthy_file_outbox(tmp_path: Path) -> None:
    sink = JsonlSink(SinkConfig(name="log", type="jsonl", path=tmp_path / "log.jsonl"))
    deliverer = Deliverer(tmp_path / "outbox.sqlite", [sink])
    deliverer.open()
    registry = _registry(deliverer)
    assert registry.get_sample_value("netwatch_outbox_storage_ok") == 1
    assert registry.get_sample_value("netwatch_outbox_in_memory") == 0
    assert registry.get_sample_value("netwatch_outbox_storage_errors_total") == 0
    deliverer.close()


def test_sensor_rule_errors_are_exported(tmp_path: Path) -> None:
    rule = CaptureLoss(threshold=0.01, host="s")

    def boom(now: float, counts: object) -> list[Alert]:
        raise RuntimeError("broken counters")

    rule.on_capture = boom  # type: ignore[method-assign]
    sensors = SensorRules([rule])
    assert sensors.on_capture(1.0, {}) == []  # isolated, counted
    deliverer = Deliverer(":memory:", [])
    registry = CollectorRegistry()
    registry.register(DaemonCollector(DaemonState(), lambda: deliverer, dict, sensors=sensors))
    errors = "netwatch_sensor_rule_errors_total"
    assert registry.get_sample_value(errors, {"rule": "capture_loss"}) == 1
    deliverer.close()
