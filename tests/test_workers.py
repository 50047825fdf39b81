"""The worker pool: the parent merging the workers' metric families, capture counters and
recognised cameras, and relaying what one worker learnt (names, devices, resolvers in use) to
the others; the workers' side of the relay on real pipelines; and two real capture workers
in a network namespace (skipped without root, ``ip netns`` or tcpreplay)."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import pickle
import shutil
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

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
from netwatch.detect.resolvers import Why
from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, NetwatchCollector
from netwatch.pipeline import Pipeline
from netwatch.signatures.lan import RESOLVER_HOW
from netwatch.testing import pcapgen as g
from netwatch.testing.pcapgen import Route, TcpSession
from netwatch.workers import (
    MAX_FAMILIES,
    PARENT_FAMILIES,
    LearntDevice,
    LearntName,
    LearntResolver,
    PoolCollector,
    Report,
    Seen,
    WorkerPool,
    _Work,
    _Worker,
    _writable,
)
from tests.integration.netns import LiveDaemon, netns_unavailable, veth_namespace

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
        self,
        i: int,
        families: list[Metric],
        counts: dict[str, CaptureCounts],
        ts: float | None,
        recognised: dict[str, str] | None = None,
    ) -> None:
        """What worker ``i`` sends every REPORT_S, through its real pipe (pickled)."""
        self.to_parent[i].send(Report(families, counts, ts, recognised or {}))
        assert self.pool.poll(1.0)

    def work(self, i: int, config: str) -> _Work:
        """Worker ``i``'s own side (its pipeline, hooks and pipes; no ring is opened)."""
        cfg = Config.from_yaml(config, file="w.yaml")
        pipes = (self.to_parent[i], self.from_parent[i])
        return _Work(i, cfg, None, RingSettings(), 0, pipes, threading.Event(), threading.Event())

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
    assert not PARENT_FAMILIES & set(names[:-2])  # the workers' own are dropped
    # recounted by the parent, last
    assert names[-2:] == ["netwatch_cameras_recognised", "netwatch_cameras"]
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
    assert [(f.name, f.samples) for f in merged] == [
        ("netwatch_cameras_recognised", []),
        ("netwatch_cameras", []),
    ]


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


class WorkerReport(NamedTuple):
    families: list[Metric]
    recognised: dict[str, str]  # what the worker's Report carries


def worker_report(camera_ips: list[str], sport: int) -> WorkerReport:
    """What a worker reports after its pipeline saw one flow per camera: its collector's
    families and its recognised cameras (the first report: all of them)."""
    cfg = Config.from_yaml(INVENTORY, file="t.yaml")
    traffic = CameraTraffic(None)

    def record(rec: dict[str, Any]) -> None:
        traffic.record(rec)

    pipe = Pipeline(cfg, record, on_alert=lambda alert, count: None)  # as a worker: detection
    traffic.resolve = camera_resolver(pipe)
    packets = []
    for n, ip in enumerate(camera_ips):
        mac = f"02:00:00:00:00:{int(ip.rsplit('.', 1)[1]):02x}"  # one MAC per camera
        route = Route.of(mac, ip, "02:00:00:00:00:01", "203.0.113.10")
        s = TcpSession(route, sport + n, 443)
        frames = [*s.handshake(), *s.send(True, b"x" * 500), *s.close()]
        packets += [(1_700_000_000.0 + i * 0.01, 1, len(f), f) for i, f in enumerate(frames)]
    pipe.run(sorted(packets, key=lambda p: p[0]))
    pipe.finish()
    families = list(NetwatchCollector(pipe, traffic=traffic).collect())
    # as it crosses the pipe
    return WorkerReport(pickle.loads(pickle.dumps(families)), pipe.recognised.changes())


def test_real_collector_families_merge_into_valid_exposition(pool: Pool) -> None:
    first, second = (
        worker_report(["10.0.0.5"], 40_000),
        worker_report(["10.0.0.5", "10.0.0.6"], 41_000),
    )
    pool.report(0, first.families, {}, None, first.recognised)
    pool.report(1, second.families, {}, None, second.recognised)
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
    # lobby's flows ended on both workers: it is counted once
    assert got["netwatch_cameras_recognised"] == {
        ("netwatch_cameras_recognised", (("how", "inventory"),)): 2.0
    }


# ------------------------------------------------------------------- recognised cameras


def recognised_family(counts: dict[str, float]) -> Metric:
    """A worker's own netwatch_cameras_recognised (its share of the flows only)."""
    fam = GaugeMetricFamily("netwatch_cameras_recognised", "Cameras.", labels=["how"])
    for how, n in counts.items():
        fam.add_metric([how], n)
    return fam


def recognised(pool: Pool) -> dict[str, float]:
    got = by_sample(list(pool.pool.families()))["netwatch_cameras_recognised"]
    return {dict(labels)["how"]: v for (_, labels), v in got.items()}


def test_a_camera_seen_by_two_workers_is_recognised_once(pool: Pool) -> None:
    pool.report(
        0,
        [recognised_family({"mac_prefix": 1, "inventory": 1})],
        {},
        None,
        {"aa:aa:aa:00:00:01": "mac_prefix", "lobby": "inventory"},
    )
    pool.report(
        1,
        [recognised_family({"discovery": 1, "inventory": 1})],
        {},
        None,
        {"aa:aa:aa:00:00:01": "discovery", "lobby": "inventory"},
    )
    # the workers' sums would say 4 cameras; there are 2, the shared one as discovery wins
    assert recognised(pool) == {"discovery": 1.0, "inventory": 1.0}
    # a later report carries only what changed: the rest is kept
    pool.report(0, [], {}, None, {"10.0.0.9": "banner"})
    assert recognised(pool) == {"discovery": 1.0, "inventory": 1.0, "banner": 1.0}


def test_the_parents_recognised_cameras_are_bounded_per_worker(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("netwatch.workers.DEFAULT_MAX_CAMERAS", 2)
    pool.report(0, [], {}, None, {"a": "banner", "b": "banner", "c": "banner"})
    pool.report(0, [], {}, None, {"a": "inventory"})  # a known camera still changes
    assert recognised(pool) == {"banner": 1.0, "inventory": 1.0}
    assert pool.pool.recognised_dropped == 1


# ----------------------------------------------------------------------- the relay

CAMPUS_DNS = "130.104.1.1"  # a campus resolver at a public address (not a public service)
ROGUE_DNS = "89.160.20.53"  # an off-site resolver no other device uses
PEER = ("02:4e:56:00:00:50", "10.20.0.50")  # a site device that is not a camera
CAMERA = ("02:4e:56:00:00:11", "10.20.0.11")
GATEWAY_MAC = "02:00:5e:10:00:01"
CAMERA_CONFIG = "geoip: {builtin: false}\ncameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n"


def packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def dns(t: g.Trace, client: tuple[str, str], resolver: str, sport: int, ts_us: int) -> None:
    """``client`` asks ``resolver`` a name and gets an answer."""
    r = g.Route.of(client[0], client[1], GATEWAY_MAC, resolver)
    name = "time.vendor.example"
    t.add(ts_us, g.udp_frame(r, sport, 53, g.dns_query(sport, name)))
    rr = [g.DnsRecord(name, g.DnsType.A, "192.0.2.10", 300)]
    reply = g.dns_response(sport, name, g.DnsType.A, rr)
    t.add(ts_us + 400, g.udp_frame(r.reverse(), 53, sport, reply))


def run(work: _Work, t: g.Trace) -> None:
    """The worker's pipeline over a trace, every flow ended."""
    work.pipeline.run([(ts / 1e6, 1, len(f), f) for ts, f in t.records()])
    work.pipeline.finish()


def test_a_learnt_resolver_is_relayed_to_the_other_workers_only(pool: Pool) -> None:
    msg = LearntResolver(packed(CAMPUS_DNS), packed(PEER[1]))
    pool.to_parent[0].send(msg)
    assert pool.pool.poll(1.0)
    assert pool.from_parent[1].poll(1.0) and pool.from_parent[1].recv() == msg
    assert not pool.from_parent[0].poll(0)  # not sent back to its origin
    assert pool.pool.relay_dropped == 0


def test_a_full_pipe_misses_a_learnt_resolver_and_it_is_counted(pool: Pool) -> None:
    ctrl = pool.pool.workers[1].ctrl
    while _writable(ctrl):  # worker 1 is not reading: fill its control pipe
        ctrl.send_bytes(b"x" * 1024)
    pool.to_parent[0].send(LearntResolver(packed(CAMPUS_DNS), packed(PEER[1])))
    assert pool.pool.poll(1.0)  # returns: the parent never blocks on a full pipe
    assert pool.pool.relay_dropped == 1


def test_a_resolver_learnt_on_one_worker_approves_a_cameras_dns_on_another(pool: Pool) -> None:
    first, second = pool.work(0, CAMERA_CONFIG), pool.work(1, CAMERA_CONFIG)
    t = g.Trace()
    dns(t, PEER, CAMPUS_DNS, 33_000, 1_000_000)
    run(first, t)  # the peer's DNS flow ended on the first worker ...
    assert pool.pool.poll(1.0)  # ... which told the parent, which relayed it
    second._apply_shared()  # what the second worker does between batches
    assert second.pipeline.detector is not None
    assert second.pipeline.detector.resolvers.learnt() == {CAMPUS_DNS: 1}
    assert not pool.pool.workers[1].conn.poll(0)  # applied, not sent back to the parent
    t = g.Trace()
    dns(t, CAMERA, CAMPUS_DNS, 40_000, 2_000_000)  # the camera asks the same resolver
    dns(t, CAMERA, ROGUE_DNS, 40_001, 2_000_000)  # and one nobody else uses
    run(second, t)
    pool.pool.poll(1.0)
    rogue = [a for a, _ in pool.seen if a.rule == "rogue_dns"]
    assert [a.evidence["resolver"] for a in rogue] == [ROGUE_DNS]


def test_a_dhcp_offered_resolver_reaches_the_other_workers(pool: Pool) -> None:
    """Option 6 state already travels as a LearntDevice (``how`` dhcp_resolver)."""
    first, second = pool.work(0, CAMERA_CONFIG), pool.work(1, CAMERA_CONFIG)
    assert first.pipeline.detector is not None and second.pipeline.detector is not None
    first.pipeline.detector.devices.learn(packed(ROGUE_DNS), None, RESOLVER_HOW)  # DHCP said
    assert pool.pool.poll(1.0)
    assert pool.from_parent[1].poll(1.0)
    relayed = pool.from_parent[1].recv()
    assert relayed == LearntDevice("ip", packed(ROGUE_DNS), None, RESOLVER_HOW, None)
    pool.pool.workers[1].ctrl.send(relayed)  # back in the pipe for the worker to read
    second._apply_shared()
    assert not pool.pool.workers[1].conn.poll(0)  # applied, not sent back to the parent
    assert second.pipeline.detector.devices.dhcp_resolvers == {packed(ROGUE_DNS)}
    verdict = second.pipeline.detector.resolvers.verdict(packed(ROGUE_DNS), False, b"\0" * 4)
    assert verdict.approved and verdict.why is Why.DHCP


# ------------------------------------------------------------- real capture workers

LIVE = netns_unavailable() or (
    None if shutil.which("tcpreplay") else "tcpreplay is not installed (apt-get install tcpreplay)"
)
CAMERA_QUERIES = 16  # source ports: the camera's DNS flows hash to both workers


@pytest.mark.skipif(LIVE is not None, reason=LIVE or "")
def test_two_real_workers_share_resolvers_and_count_a_camera_once(tmp_path: Path) -> None:
    """One peer DNS flow ends on one worker; the camera's queries to the same resolver end
    on both: none is rogue (the relay), one to an unused resolver is; the camera, seen by
    both workers, is one camera in netwatch_cameras_recognised."""
    peer, camera = tmp_path / "peer.pcap", tmp_path / "camera.pcap"
    t = g.Trace()
    dns(t, PEER, CAMPUS_DNS, 33_000, 0)
    t.write(peer)
    t = g.Trace()
    for n in range(CAMERA_QUERIES):
        dns(t, CAMERA, CAMPUS_DNS, 40_000 + n, n * 1000)
    dns(t, CAMERA, ROGUE_DNS, 41_000, CAMERA_QUERIES * 1000)
    t.write(camera)
    alerts = tmp_path / "alerts.jsonl"
    with veth_namespace("nr") as ns:
        body = (
            f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 8, workers: 2}}\n"
            f"cameras:\n  - {{name: lobby-1, ip: {CAMERA[1]}}}\n"
            "geoip: {builtin: false}\n"
            "flows: {udp_idle_s: 1}\n"
            f"sinks:\n  - {{name: log, type: jsonl, path: {alerts}}}\n"
            "logging: {format: json, level: info}\n"
        )
        with LiveDaemon(ns, tmp_path, body, [ns.capture]) as nw:

            def flows_ended() -> float:
                reasons = ("idle_timeout", "evicted")
                return sum(nw.metric("netwatch_flows_ended_total", reason=r) or 0 for r in reasons)

            ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(peer))
            nw.wait(lambda: flows_ended() >= 1, 15)
            time.sleep(1.0)  # the relay: the parent passes it on, the other worker applies it
            ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(camera))
            nw.wait(lambda: flows_ended() >= 1 + CAMERA_QUERIES + 1, 15)
            assert nw.metric("netwatch_cameras_recognised", how="inventory") == 1
        assert nw.returncode == 0, nw.tail()
    records = [json.loads(line) for line in alerts.read_text().splitlines()]
    rogue = {r["evidence"]["resolver"] for r in records if r["rule"] == "rogue_dns"}
    assert rogue == {ROGUE_DNS}


def test_sighup_reopens_the_workers_flow_log_after_logrotate(pool: Pool, tmp_path: Path) -> None:
    """logrotate moves the flow log, then reloads: each worker writes to a new file."""
    log = tmp_path / "flows.jsonl"
    work = pool.work(0, f"geoip: {{builtin: false}}\nflow_log: {log}\n")
    assert work.flow_log is not None
    work.flow_log.write({"uid": "before"})
    work.flow_log.flush()
    log.rename(tmp_path / "flows.jsonl.1")
    work.reload.set()  # what the worker's SIGHUP handler does
    work._tick(None)
    work.flow_log.write({"uid": "after"})
    work.flow_log.close()
    assert (tmp_path / "flows.jsonl.1").read_text().count("\n") == 1
    assert json.loads(log.read_text()) == {"uid": "after"}
