"""The worker pool's parent side: merging the workers' metric families and capture counters."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.capture.afpacket import RingSettings
from netwatch.capture.source import CaptureCounts
from netwatch.config import Config
from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, NetwatchCollector
from netwatch.pipeline import Pipeline
from netwatch.testing.pcapgen import Route, TcpSession
from netwatch.workers import (
    MAX_FAMILIES,
    PARENT_FAMILIES,
    LearntName,
    PoolCollector,
    Report,
    Seen,
    WorkerPool,
    _Worker,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Pool:
    """A WorkerPool that is never started, with workers wired to real pipes."""

    def __init__(self, n: int = 2) -> None:
        ctx = multiprocessing.get_context("fork")
        self.seen: list[tuple[Alert, str | None]] = []
        cfg = Config.from_yaml("geoip: {builtin: false}\n", file="t.yaml")
        self.pool = WorkerPool(cfg, None, n, RingSettings(), lambda a, g: self.seen.append((a, g)))
        self.to_parent: list[Connection] = []  # the worker's end of its report pipe
        self.from_parent: list[Connection] = []  # the worker's end of its control pipe
        self._ends: list[Connection] = []
        for i in range(n):
            parent_end, child_end = ctx.Pipe(duplex=False)
            ctrl_in, ctrl_out = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=lambda: None, name=f"not-started-{i}")
            self.pool.workers.append(_Worker(i, proc, parent_end, ctrl_out))
            self.to_parent.append(child_end)
            self.from_parent.append(ctrl_in)
            self._ends += [parent_end, child_end, ctrl_in, ctrl_out]

    def report(
        self, i: int, families: list[Metric], counts: dict[str, CaptureCounts], ts: float | None
    ) -> None:
        """What worker ``i`` sends every REPORT_S, through its real pipe (pickled)."""
        self.to_parent[i].send(Report(families, counts, ts))
        assert self.pool.poll(1.0)

    def close(self) -> None:
        for c in self._ends:
            c.close()


@pytest.fixture
def pool() -> Iterator[Pool]:
    p = Pool()
    yield p
    p.close()


def worker_families(
    packets: dict[str, float],
    scrape_s: float,
    sent: dict[tuple[str, str], float],
    alerts: float,
    build_ts: float,
) -> list[Metric]:
    fams: list[Metric] = []
    c = CounterMetricFamily("netwatch_packets", "Packets read.", labels=["interface"])
    for iface, v in packets.items():
        c.add_metric([iface], v)
    fams.append(c)
    fams.append(
        GaugeMetricFamily("netwatch_scrape_duration_seconds", "Time to collect.", value=scrape_s)
    )
    fams.append(
        GaugeMetricFamily(
            "netwatch_geoip_database_build_timestamp_seconds", "GeoIP build.", value=build_ts
        )
    )
    b = GaugeMetricFamily("netwatch_build_info", "Version.", labels=["version"])
    b.add_metric(["1.0"], 1)
    fams.append(b)
    s = CounterMetricFamily("netwatch_camera_sent_bytes", "Sent.", labels=["camera", "group"])
    for (cam, group), v in sent.items():
        s.add_metric([cam, group], v)
    fams.append(s)
    a = CounterMetricFamily("netwatch_alerts", "Alerts.", labels=["rule", "severity"])
    a.add_metric(["capture_loss", "high"], alerts)
    fams.append(a)
    cams = GaugeMetricFamily("netwatch_cameras", "Cameras.", labels=["group"])
    cams.add_metric(["default"], 99)
    fams.append(cams)
    h = HistogramMetricFamily("netwatch_batch_seconds", "Batch time.", labels=["interface"])
    h.add_metric(["eth1"], [("0.1", 2), ("1.0", 3), ("+Inf", 4)], sum_value=1.5)
    fams.append(h)
    return fams


def by_sample(families: list[Metric]) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for fam in families:
        fs = out.setdefault(fam.name, {})
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in fs, f"duplicate sample {key}"
            fs[key] = s.value
    return out


W1 = worker_families(
    {"eth1": 100, "eth2": 5},
    0.2,
    {("lobby", "default"): 100, ("gate", "outdoor"): 10},
    alerts=3,
    build_ts=1_700_000_000,
)
W2 = worker_families(
    {"eth1": 50, "eth3": 7},
    0.5,
    {("lobby", "default"): 5, ("yard", "default"): 1},
    alerts=4,
    build_ts=1_690_000_000,
)


def test_families_are_summed_maxed_and_cameras_recounted(pool: Pool) -> None:
    pool.report(0, W1, {}, None)
    pool.report(1, W2, {}, None)
    merged = list(pool.pool.families())
    names = [f.name for f in merged]
    assert len(names) == len(set(names))
    assert not PARENT_FAMILIES & set(names[:-1])  # the workers' own are dropped
    assert names[-1] == "netwatch_cameras"  # recounted by the parent, last
    got = by_sample(merged)
    assert got["netwatch_packets"] == {
        ("netwatch_packets_total", (("interface", "eth1"),)): 150.0,
        ("netwatch_packets_total", (("interface", "eth2"),)): 5.0,
        ("netwatch_packets_total", (("interface", "eth3"),)): 7.0,
    }
    assert got["netwatch_scrape_duration_seconds"] == {
        ("netwatch_scrape_duration_seconds", ()): 0.5
    }
    assert got["netwatch_geoip_database_build_timestamp_seconds"] == {
        ("netwatch_geoip_database_build_timestamp_seconds", ()): 1_700_000_000.0
    }
    assert got["netwatch_build_info"] == {("netwatch_build_info", (("version", "1.0"),)): 1.0}
    assert got["netwatch_camera_sent_bytes"] == {
        ("netwatch_camera_sent_bytes_total", (("camera", "gate"), ("group", "outdoor"))): 10.0,
        ("netwatch_camera_sent_bytes_total", (("camera", "lobby"), ("group", "default"))): 105.0,
        ("netwatch_camera_sent_bytes_total", (("camera", "yard"), ("group", "default"))): 1.0,
    }
    assert got["netwatch_cameras"] == {
        ("netwatch_cameras", (("group", "default"),)): 2.0,  # lobby (seen by both) and yard
        ("netwatch_cameras", (("group", "outdoor"),)): 1.0,
    }
    assert got["netwatch_batch_seconds"] == {
        ("netwatch_batch_seconds_bucket", (("interface", "eth1"), ("le", "0.1"))): 4.0,
        ("netwatch_batch_seconds_bucket", (("interface", "eth1"), ("le", "1.0"))): 6.0,
        ("netwatch_batch_seconds_bucket", (("interface", "eth1"), ("le", "+Inf"))): 8.0,
        ("netwatch_batch_seconds_count", (("interface", "eth1"),)): 8.0,
        ("netwatch_batch_seconds_sum", (("interface", "eth1"),)): 3.0,
    }
    types = {f.name: f.type for f in merged}
    assert types["netwatch_packets"] == "counter"
    assert types["netwatch_scrape_duration_seconds"] == "gauge"
    assert types["netwatch_batch_seconds"] == "histogram"
    assert {"netwatch_scrape_duration_seconds", "netwatch_build_info"} <= MAX_FAMILIES


def test_a_worker_that_has_not_reported_yet(pool: Pool) -> None:
    pool.report(0, W1, {}, None)
    got = by_sample(list(pool.pool.families()))
    assert got["netwatch_packets"][("netwatch_packets_total", (("interface", "eth1"),))] == 100.0
    assert got["netwatch_cameras"] == {
        ("netwatch_cameras", (("group", "default"),)): 1.0,
        ("netwatch_cameras", (("group", "outdoor"),)): 1.0,
    }


def test_a_later_report_replaces_the_earlier_one(pool: Pool) -> None:
    pool.report(0, W1, {}, None)
    pool.report(0, W2, {}, None)
    got = by_sample(list(pool.pool.families()))
    assert got["netwatch_packets"][("netwatch_packets_total", (("interface", "eth1"),))] == 50.0


def test_nothing_reported_gives_an_empty_camera_family(pool: Pool) -> None:
    merged = list(pool.pool.families())
    assert [(f.name, f.samples) for f in merged] == [("netwatch_cameras", [])]


def test_counts_are_summed_over_workers(pool: Pool) -> None:
    pool.report(
        0,
        [],
        {
            "eth1": CaptureCounts(100, 3, 7, errors=0, up=True),
            "eth2": CaptureCounts(10, 0, 0, errors=0, up=True),
        },
        1_700_000_010.0,
    )
    pool.report(
        1,
        [],
        {
            "eth1": CaptureCounts(50, 2, 9, errors=1, up=False),
            "eth2": CaptureCounts(20, 1, 0, errors=0, up=True),
        },
        1_700_000_020.0,
    )
    assert pool.pool.counts() == {
        # interface drops are the interface's own counter, seen alike by every worker
        "eth1": CaptureCounts(150, 5, 9, errors=1, up=False),
        "eth2": CaptureCounts(30, 1, 0, errors=0, up=True),
    }
    assert pool.pool.packets == 180
    assert pool.pool.last_packet_ts() == 1_700_000_020.0


def test_no_counts_before_any_report(pool: Pool) -> None:
    assert pool.pool.counts() == {}
    assert pool.pool.packets == 0
    assert pool.pool.last_packet_ts() is None


class Wrapper(Collector):
    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        yield from self.pool.families()


def parse(text: bytes) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for fam in text_string_to_metric_families(text.decode()):
        fs = out.setdefault(fam.name, {})
        for s in fam.samples:
            fs[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_merged_families_are_valid_exposition(pool: Pool) -> None:
    pool.report(0, W1, {}, None)
    pool.report(1, W2, {}, None)
    registry = CollectorRegistry()
    registry.register(Wrapper(pool.pool))
    text = generate_latest(registry)
    got = parse(text)
    assert got["netwatch_packets"][("netwatch_packets_total", (("interface", "eth1"),))] == 150
    assert got["netwatch_cameras"][("netwatch_cameras", (("group", "default"),))] == 2
    assert "netwatch_alerts" not in got
    assert text.count(b"# TYPE netwatch_packets_total counter") == 1


def test_pool_collector_adds_the_parents_alert_counters(pool: Pool) -> None:
    pool.report(0, W1, {}, None)
    pool.report(1, W2, {}, None)
    alerts = AlertCounter()
    alert = Alert(
        ts=1.0,
        rule="capture_loss",
        severity=Severity.HIGH,
        device="eth1",
        device_ip="",
        summary="lost",
        direction=Direction.LOCAL,
    )
    alerts(alert, 1)
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool.pool, alerts, CameraTraffic(None)))
    got = parse(generate_latest(registry))
    # the parent's count (after de-duplication), not the workers' 3 + 4
    assert got["netwatch_alerts"] == {
        ("netwatch_alerts_total", (("rule", "capture_loss"), ("severity", "high"))): 1.0
    }
    assert got["netwatch_camera_alerts"] == {}


def test_sightings_reach_the_parent_and_names_are_relayed(pool: Pool) -> None:
    alert = Alert(
        ts=1.0,
        rule="capture_loss",
        severity=Severity.HIGH,
        device="eth1",
        device_ip="",
        summary="lost",
        direction=Direction.LOCAL,
    )
    pool.to_parent[0].send(Seen(alert, "lobby"))
    msg = LearntName(b"\x0a\x00\x00\x05", b"\xcb\x00\x71\x0a", "cloud.example", 100.0)
    pool.to_parent[0].send(msg)
    assert pool.pool.poll(1.0)
    assert pool.seen == [(alert, "lobby")]
    assert pool.from_parent[1].poll(1.0)
    assert pool.from_parent[1].recv() == msg
    assert not pool.from_parent[0].poll(0)  # not sent back to its origin
    assert pool.pool.relay_dropped == 0


# ---------------------------------------------------------------------------- real families

INVENTORY = """\
geoip: {builtin: false}
cameras:
  - {name: lobby, ip: 10.0.0.5, group: default}
  - {name: yard, ip: 10.0.0.6, group: default}
"""


def worker_report(camera_ips: list[str], sport: int) -> list[Metric]:
    """The families a worker's collector gives after its pipeline saw one flow per camera."""
    cfg = Config.from_yaml(INVENTORY, file="t.yaml")
    traffic = CameraTraffic(None)

    def record(rec: dict[str, Any]) -> None:
        traffic.record(rec)

    pipe = Pipeline(cfg, record)
    traffic.resolve = camera_resolver(pipe)
    packets = []
    for n, ip in enumerate(camera_ips):
        route = Route.of("02:00:00:00:00:05", ip, "02:00:00:00:00:01", "203.0.113.10")
        s = TcpSession(route, sport + n, 443)
        frames = [*s.handshake(), *s.send(True, b"x" * 500), *s.close()]
        packets += [(1_700_000_000.0 + i * 0.01, 1, len(f), f) for i, f in enumerate(frames)]
    pipe.run(sorted(packets, key=lambda p: p[0]))
    pipe.finish()
    families = list(NetwatchCollector(pipe, traffic=traffic).collect())
    return list(pickle.loads(pickle.dumps(families)))  # as it crosses the pipe


def test_real_collector_families_merge_into_valid_exposition(pool: Pool) -> None:
    pool.report(0, worker_report(["10.0.0.5"], 40_000), {}, None)
    pool.report(1, worker_report(["10.0.0.5", "10.0.0.6"], 41_000), {}, None)
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool.pool, AlertCounter(), CameraTraffic(None)))
    got = parse(generate_latest(registry))
    assert got["netwatch_packets"] == {("netwatch_packets_total", ()): 3 * 7.0}  # 7 frames a flow
    assert got["netwatch_cameras"] == {("netwatch_cameras", (("group", "default"),)): 2.0}
    sent = got["netwatch_camera_sent_bytes"]
    lobby = sent[("netwatch_camera_sent_bytes_total", (("camera", "lobby"), ("group", "default")))]
    yard = sent[("netwatch_camera_sent_bytes_total", (("camera", "yard"), ("group", "default")))]
    assert lobby == 2 * yard > 0
    assert len(got["netwatch_build_info"]) == 1
