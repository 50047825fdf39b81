"""A real pipeline with the metrics hooks, fed one small generated capture."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import GeoInfo, GeoSourceInfo
from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, NetwatchCollector
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as g

CAM_MAC, GW_MAC, PC_MAC = "bc:ad:28:1a:2b:01", "02:00:5e:10:00:01", "02:4e:56:00:00:0a"
CAM, PC, FOREIGN, CLOUD = "10.20.0.11", "10.20.0.50", "89.160.20.112", "175.16.199.1"
GEO = {FOREIGN: GeoInfo("SE", 29518, "Bredband2 AB"), CLOUD: GeoInfo("CN", 4837, "UNICOM")}
CONFIG = "cameras:\n  - {name: lobby-1, ip: 10.20.0.11, group: lobby}\ngroups:\n  lobby: {}\n"


class TableGeo:
    """Fixed GeoIP answers with a known build date."""

    def lookup(self, ip_text: str) -> GeoInfo:
        return GEO.get(ip_text, GeoInfo(None, None, None))

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("table", "builtin", date(2026, 1, 15), "test", ())


@dataclass
class Run:
    pipe: Pipeline
    registry: CollectorRegistry
    records: list[dict[str, Any]]
    alerts: AlertCounter
    frames: list[bytes]


def capture(tmp_path: Path) -> tuple[Path, list[bytes]]:
    t = g.Trace()
    out = g.Route.of(CAM_MAC, CAM, GW_MAC, FOREIGN)
    s = g.TcpSession(out, 50123, 443)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, b"x" * 300), 1000)
    ts = t.add_burst(ts, s.send(False, b"y" * 100), 1000)
    t.add_burst(ts, s.close(), 1000)
    cloud = g.Route.of(CAM_MAC, CAM, GW_MAC, CLOUD)
    for i in range(3):
        t.add(2_000_000 + i * 1000, g.udp_frame(cloud, 40000, 3478, b"s" * 20))
    lan = g.Route.of(PC_MAC, PC, CAM_MAC, CAM)
    t.add(3_000_000, g.udp_frame(lan, 50000, 9000, b"v" * 100))
    t.add(3_001_000, g.arp_frame(1, PC_MAC, PC, CAM))
    t.add(3_002_000, bytes(10))  # too short for Ethernet
    path = tmp_path / "m.pcap"
    t.write(path)
    return path, [frame for _, frame in t.records()]


def build(tmp_path: Path, **traffic_kw: Any) -> Run:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG)
    records: list[dict[str, Any]] = []
    emitted: list[Any] = []
    alerts = AlertCounter(lambda alert, count: emitted.append(alert))
    traffic = CameraTraffic(**traffic_kw)

    def sink(rec: dict[str, Any]) -> None:
        records.append(rec)
        traffic.record(rec)

    pipe = Pipeline(Config.load(cfg_path), sink, on_alert=alerts, geo=TableGeo())
    traffic.resolve = camera_resolver(pipe)
    registry = CollectorRegistry()
    registry.register(NetwatchCollector(pipe, alerts=alerts, traffic=traffic))
    return Run(pipe, registry, records, alerts, [])


@pytest.fixture
def run(tmp_path: Path) -> Run:
    r = build(tmp_path)
    path, r.frames = capture(tmp_path)
    r.pipe.run_capture(open_capture(path))
    r.pipe.finish()
    return r
