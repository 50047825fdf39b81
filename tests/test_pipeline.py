"""Pipeline pieces the daemon drives: checks of active flows and reconfiguration (SIGHUP)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.grouping import report_rules
from netwatch.alerts.model import Alert, EndReason, IncidentEnd
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import GeoDatabaseError
from netwatch.pipeline import FULL_COLLECTION_EVERY, Pipeline, tune_collector

UPLOAD = Path(__file__).resolve().parent.parent / "pcaps" / "scenarios" / "camera-upload.pcap"


def packets() -> list[tuple[float, int, int, bytes]]:
    with open_capture(UPLOAD) as cap:
        return list(cap.packets())


#: Active flows checked every 10 s, each report out at once (no per-camera grouping wait).
ACTIVE_NOW = (
    "alerts: {evaluate_active_s: 10, group_wait_s: 0, group_interval_s: 0}\n"
    "geoip: {builtin: false}\n"
)


def pipeline(yaml: str, alerts: list[tuple[Alert, int]], records: list[dict[str, Any]]) -> Pipeline:
    cfg = Config.from_yaml(yaml or "{}", file="test.yaml")
    return Pipeline(cfg, records.append, on_alert=lambda a, n: alerts.append((a, n)), geo=None)


def test_an_active_upload_is_reported_while_it_lasts() -> None:
    alerts: list[tuple[Alert, int]] = []
    records: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    pipe = pipeline(ACTIVE_NOW, alerts, records)
    pkts = packets()
    first = pkts[0][0]
    half = [p for p in pkts if p[0] - first < 30]
    pipe.run(half)
    now = half[-1][0]
    assert pipe.evaluate_active(now, first, progress.append) >= 1
    assert records == []  # nothing ended yet
    # one notification for the flow: the stream, with the egress finding folded in
    assert {a.rule for a, _ in alerts} >= {"outbound_stream"}
    (stream,) = [a for a, _ in alerts if a.rule == "outbound_stream"]
    assert [f["rule"] for f in stream.evidence["folded"]] == ["unexpected_egress"]
    assert progress and progress[0]["orig_ip_bytes"] > 0
    # checked again without new packets since: nothing to do
    assert pipe.evaluate_active(now + 20, now + 1, progress.append) == 0
    # at the end the same flow's alerts are repeats, not new alerts or extra counts
    before = len(alerts)
    pipe.run([p for p in pkts if p[0] - first >= 30])
    pipe.finish()
    assert len(alerts) == before and len(records) == 1
    assert pipe.detector is not None and pipe.detector.router.suppressed == 0


def test_reconfigure_keeps_flows_and_applies_the_new_inventory() -> None:
    alerts: list[tuple[Alert, int]] = []
    records: list[dict[str, Any]] = []
    pipe = pipeline("geoip: {builtin: false}\n", alerts, records)
    pkts = packets()
    pipe.run(pkts[:100])
    active = len(pipe.table)
    assert active >= 1
    new = Config.from_yaml(
        "geoip: {builtin: false}\n"
        "cameras: [{name: yard-cam, ip: 10.20.0.13, group: yard}]\n"
        "groups: {yard: {allow_nets: [216.160.83.0/24]}}\n",
        file="reloaded.yaml",
    )
    pipe.reconfigure(new)
    assert len(pipe.table) == active and pipe.cfg is new
    pipe.run(pkts[100:])
    pipe.finish()
    (record,) = records
    assert record["orig_device"] == "yard-cam"
    assert alerts == []  # the yard group allows that network: no egress or stream alert


def test_reconfigure_reopens_database_files_and_keeps_the_builtin_set(
    maxmind_dir: Path,
) -> None:
    pipe = pipeline("", [], [])  # built-in GeoIP data
    builtin = pipe.geo_backend
    pipe.reconfigure(Config.from_yaml("alerts: {suppress_s: 60}\n", file="same-geoip.yaml"))
    assert pipe.geo_backend is builtin  # not loaded a second time
    db = maxmind_dir / "GeoIP2-Country-Test.mmdb"
    pipe.reconfigure(
        Config.from_yaml(f"geoip: {{country_db: {db}, builtin: false}}\n", file="mmdb.yaml")
    )
    assert pipe.geo_backend is not builtin
    assert pipe.enrichers.geo.lookup(bytes([81, 2, 69, 160])).cc == "GB"


def test_a_broken_database_changes_nothing(maxmind_dir: Path) -> None:
    pipe = pipeline("geoip: {builtin: false}\n", [], [])
    before = (pipe.cfg, pipe.geo_backend, pipe.detector)
    broken = maxmind_dir / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"
    with pytest.raises(GeoDatabaseError):
        pipe.reconfigure(Config.from_yaml(f"geoip: {{city_db: {broken}}}\n", file="b.yaml"))
    assert (pipe.cfg, pipe.geo_backend, pipe.detector) == before


def test_check_active_runs_every_interval_of_packet_time() -> None:
    alerts: list[tuple[Alert, int]] = []
    pipe = pipeline(ACTIVE_NOW, alerts, [])
    pkts = packets()
    first = pkts[0][0]
    assert pipe.check_active(first) == 0  # starts the clock
    pipe.run([p for p in pkts if p[0] - first < 30])
    assert pipe.check_active(first + 5) == 0  # within the interval
    assert pipe.check_active(first + 29) >= 1  # the upload is checked while it lasts
    assert "outbound_stream" in {a.rule for a, _ in alerts}
    assert pipe.check_active(first + 35) == 0  # checked 6 s ago


def test_a_quiet_link_ends_incidents_on_wall_time_and_finish_ends_the_rest() -> None:
    alerts: list[tuple[Alert, int]] = []
    records: list[dict[str, Any]] = []
    pipe = pipeline("alerts: {resolve_s: 600}\ngeoip: {builtin: false}\n", alerts, records)
    assert pipe.detector is not None
    ended: list[IncidentEnd] = []
    pipe.detector.router.on_end = ended.append
    pkts = packets()
    pipe.run(pkts)
    last = pkts[-1][0]
    pipe.advance(last + 3600.0)  # no packets: the sweep ends the flows, then the incidents
    assert alerts and ended and {e.reason for e in ended} == {EndReason.QUIET}
    assert {e.identity for e in ended} == {a.identity for a, _ in alerts}
    assert all(e.last_seen <= last for e in ended)
    # live stop: incidents stay open; end of input: they end
    pipe.detector.router.submit(alerts[0][0])
    pipe.finish(end_incidents=False)
    assert len(ended) == len({a.identity for a, _ in alerts})
    pipe.detector.router.submit(alerts[0][0])
    pipe.finish()
    assert ended[-1].reason is EndReason.END_OF_INPUT


def test_each_looped_pass_sends_the_notifications_waiting() -> None:
    """A looped pass replays the same packet times: the camera groups' clock would never
    pass their due time again, so the end of a pass sends what waits (and nothing is lost
    or sent twice)."""
    alerts: list[tuple[Alert, int]] = []
    pipe = pipeline("geoip: {builtin: false}\n", alerts, [])
    demo = Path(__file__).parent.parent / "pcaps" / "demo" / "camera-site-demo.pcap"
    with open_capture(demo) as cap:
        packets = list(cap.packets())
    pipe.run(packets)
    assert pipe.notify is not None
    waiting = pipe.notify.pending()
    sent = len(alerts)
    assert waiting > 0  # reports about the last flows still wait for their group
    pipe.end_pass()
    assert pipe.notify.pending() == 0 and len(alerts) > sent
    reports = sum(len(report_rules(a)) for a, _ in alerts)
    pipe.run(packets)  # the second pass: its repeats are suppressed by the router
    pipe.finish()
    assert sum(len(report_rules(a)) for a, _ in alerts) >= reports
    assert pipe.notify.pending() == 0


def test_each_flow_end_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The record's camera answers reach the rules (issue 13: one lookup per flow end)."""
    alerts: list[tuple[Alert, int]] = []
    records: list[dict[str, Any]] = []
    pipe = pipeline(ACTIVE_NOW, alerts, records)
    assert pipe.detector is not None
    devices = pipe.detector.devices
    looked_up: list[tuple[bytes, bytes | None]] = []
    camera = devices.camera
    site_local = pipe.classifier.is_site_local

    def counted(ip: bytes, mac: bytes | None, local: bool | None = None) -> Any:
        looked_up.append((ip, mac))
        assert local is site_local(ip)  # the record's own answer, passed on (not re-asked)
        return camera(ip, mac, local)

    monkeypatch.setattr(devices, "camera", counted)
    pipe.run(packets())
    pipe.finish()
    assert {a.rule for a, _ in alerts} >= {"outbound_stream"}  # the rules saw the camera
    assert any(r["orig_device"] for r in records)
    assert len(looked_up) == 2 * (len(records) + pipe.stats.active_evaluations)


def test_warm_up_makes_full_collections_rare() -> None:
    """Issue 13: full collections walk every live flow; a flood triggered them every few s."""
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        Pipeline(Config.from_yaml("geoip: {builtin: false}\n"), lambda r: None).warm_up()
        assert gc.get_threshold() == (700, 10, FULL_COLLECTION_EVERY)
        gc.set_threshold(0, 10, 10)  # collection switched off by whoever runs us: kept
        tune_collector()
        assert gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*saved)
