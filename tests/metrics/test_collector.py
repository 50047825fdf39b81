"""The collector's samples after replaying a generated capture through a real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from netwatch.alerts.evidence import EvidenceStore
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.inventory import CameraInventory
from netwatch.metrics.collector import AlertCounter, InventoryCollector, NetwatchCollector
from netwatch.pipeline import Pipeline
from tests.metrics.conftest import Run, capture


def value(run: Run, name: str, **labels: str) -> float | None:
    return run.registry.get_sample_value(name, labels)


def test_pipeline_counters(run: Run) -> None:
    assert value(run, "netwatch_build_info", version="0.1.0") == 1
    assert value(run, "netwatch_packets_total") == len(run.frames) == 14
    assert value(run, "netwatch_wire_bytes_total") == sum(map(len, run.frames)) == 1278
    assert value(run, "netwatch_decode_failures_total", reason="link_truncated") == 1
    assert value(run, "netwatch_non_ip_frames_total", kind="arp") == 1
    assert value(run, "netwatch_flows_active") == 0
    assert value(run, "netwatch_flows_ended_total", reason="end_of_input") == 3
    assert value(run, "netwatch_flows_ended_total", reason="evicted") == 0
    assert value(run, "netwatch_alerts_suppressed_total") == 0
    assert value(run, "netwatch_geoip_lookups_total") == run.pipe.enrichers.geo.lookups
    assert value(run, "netwatch_geoip_cache_hits_total") == run.pipe.enrichers.geo.hits
    stamp = datetime(2026, 1, 15, tzinfo=UTC).timestamp()
    name = run.pipe.geo_backend.describe().name
    assert value(run, "netwatch_geoip_database_build_timestamp_seconds", database=name) == stamp


def test_alerts_counted_by_rule_and_severity(run: Run) -> None:
    assert run.alerts.counts == {("unexpected_egress", "medium"): 2}
    got = value(run, "netwatch_alerts_total", rule="unexpected_egress", severity="medium")
    assert got == 2


def test_camera_traffic_from_flow_records(run: Run) -> None:
    cam = {"camera": "lobby-1", "group": "lobby"}
    # camera -> SE (TCP 512/232 bytes, 5/3 pkts), -> CN (UDP 144, 3), PC -> camera (128, 1)
    assert value(run, "netwatch_camera_sent_bytes_total", **cam) == 512 + 144
    assert value(run, "netwatch_camera_received_bytes_total", **cam) == 232 + 128
    assert value(run, "netwatch_camera_sent_packets_total", **cam) == 5 + 3
    assert value(run, "netwatch_camera_received_packets_total", **cam) == 3 + 1
    flows = "netwatch_camera_peer_country_flows_total"
    assert value(run, flows, camera="lobby-1", country="SE") == 1
    assert value(run, flows, camera="lobby-1", country="CN") == 1
    assert value(run, flows, camera="lobby-1", country="local") == 1  # the LAN peer
    text = generate_latest(run.registry).decode()
    assert "10.20.0.50" not in text and "89.160.20.112" not in text  # no peer IPs


def test_device_table_families(run: Run) -> None:
    assert run.pipe.detector is not None
    devices = run.pipe.detector.devices
    assert value(run, "netwatch_devices_linked") == devices.linked == 1  # lobby-1, its MAC
    for what in ("device", "address", "gateway"):
        assert value(run, "netwatch_devices_evicted_total", what=what) == 0


def test_inventory_families() -> None:
    inventory = CameraInventory()
    inventory.record({"ts": 1.0, "orig_device": "cam-1", "id.orig_h": "10.0.0.5"})
    inventory.dropped_keys = 3
    registry = CollectorRegistry()
    registry.register(InventoryCollector(inventory))
    assert registry.get_sample_value("netwatch_inventory_cameras") == 1
    dropped = "netwatch_inventory_dropped_total"
    assert registry.get_sample_value(dropped, {"what": "key"}) == 3
    assert registry.get_sample_value(dropped, {"what": "camera"}) == 0


def test_scrape_duration_uses_the_injected_clock() -> None:
    ticks = iter([10.0, 10.25])
    pipe = Pipeline(Config.default(), lambda rec: None, geo=NullGeo())
    registry = CollectorRegistry()
    registry.register(NetwatchCollector(pipe, lambda: next(ticks)))
    assert registry.get_sample_value("netwatch_scrape_duration_seconds") == 0.25


def test_evidence_families(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence", max_total_bytes=300)
    store.open()
    alerts = AlertCounter()
    cfg = Config.from_yaml("cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n")
    pipe = Pipeline(cfg, lambda r: None, on_alert=alerts, geo=NullGeo(), evidence=store)
    registry = CollectorRegistry()
    registry.register(NetwatchCollector(pipe, alerts=alerts))
    path, _frames = capture(tmp_path)
    pipe.run_capture(open_capture(path))
    assert registry.get_sample_value("netwatch_evidence_kept_bytes") == pipe.keeper.kept_bytes > 0
    pipe.finish()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    written = sum(alerts.counts.values())
    assert written >= 2
    assert sample("netwatch_evidence_files_written_total") == written == store.counters.written
    # each file is larger than the 300-byte bound: only the newest stays
    assert sample("netwatch_evidence_files_deleted_total", reason="size") == written - 1
    assert sample("netwatch_evidence_files_deleted_total", reason="age") == 0
    assert sample("netwatch_evidence_files_dropped_total", reason="write_error") == 0
    on_disk = sum(p.stat().st_size for p in (tmp_path / "evidence").iterdir())
    assert sample("netwatch_evidence_bytes") == on_disk
    assert sample("netwatch_evidence_kept_bytes") == 0
    assert sample("netwatch_evidence_keeping_stopped_total", cap="memory") == 0


def test_no_evidence_families_without_a_store(run: Run) -> None:
    assert value(run, "netwatch_evidence_bytes") is None
