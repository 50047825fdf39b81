"""Live capture end to end: the daemon on one end of a veth pair equals ``netwatch replay``.

A capture is injected with tcpreplay into one end of a veth pair inside a private network
namespace (see :mod:`tests.integration.netns`); ``netwatch run`` captures on the other end
through its TPACKET_V3 ring. Its flow records, alerts and capture counters must equal what
``netwatch replay`` makes of the same file: the same flows (5-tuple, packets, IP bytes,
state, history, service), the same alerts (rule, device, peer), every packet received and
none dropped, with one worker and with two. Interfaces going away and several interfaces
at once are covered too. Traffic never leaves the namespace.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netwatch import __version__
from netwatch.alerts.grouping import members
from netwatch.capture.files import open_capture
from netwatch.cli import main
from tests.integration.netns import LiveDaemon, Netns, netns_unavailable, veth_namespace
from tests.test_daemon import DEMO

REASON = netns_unavailable() or (
    None if shutil.which("tcpreplay") else "tcpreplay is not installed (apt-get install tcpreplay)"
)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

RECEIVED = "netwatch_capture_received_packets_total"
FLOW_FIELDS = (
    "proto",
    "service",
    "conn_state",
    "history",
    "orig_pkts",
    "resp_pkts",
    "orig_ip_bytes",
    "resp_ip_bytes",
    "orig_bytes",
    "resp_bytes",
    "missed_bytes",
    "community_id",
    "vlan",
    "resp_name",
)


def flows(path: Path) -> Counter[tuple[Any, ...]]:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    return Counter(
        (
            r["id.orig_h"],
            r["id.orig_p"],
            r["id.resp_h"],
            r["id.resp_p"],
            *(json.dumps(r.get(k)) for k in FLOW_FIELDS),
        )
        for r in recs
    )


def alerts(path: Path) -> Counter[tuple[str, str, str]]:
    """The incidents (rule, camera, what was reached): which of an incident's flows ends
    first, and so is the one reported, may differ between live capture and replay."""
    recs = [r for x in path.read_text().splitlines() for r in members(json.loads(x))]
    return Counter((r["rule"], r["device"], r["reached"]) for r in recs)


@pytest.fixture
def ns() -> Iterator[Netns]:
    with veth_namespace() as space:
        yield space


@pytest.mark.parametrize("workers", [1, 2])
def test_the_daemon_on_a_veth_equals_replay(ns: Netns, tmp_path: Path, workers: int) -> None:
    base = "geoip: {builtin: false}\n"
    (tmp_path / "replay.yaml").write_text(base)
    replayed_flows, replayed_alerts = tmp_path / "replay-flows.jsonl", tmp_path / "replay.jsonl"
    args = ["replay", str(DEMO), "-c", str(tmp_path / "replay.yaml")]
    assert main([*args, "--flows", str(replayed_flows), "--alerts", str(replayed_alerts)]) == 0
    body = (
        base + f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 16, "
        f"workers: {workers}}}\n"
        f"flow_log: {tmp_path / 'live-flows.jsonl'}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp_path / 'live-alerts.jsonl'}}}\n"
        "logging: {format: json, level: info}\n"
    )
    with LiveDaemon(ns, tmp_path, body, [ns.capture]) as nw:
        ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(DEMO))
        nw.wait(lambda: (nw.metric(RECEIVED, interface=ns.capture) or 0) >= 5221, 30)
        assert nw.metric(RECEIVED, interface=ns.capture) == 5221
        dropped = "netwatch_capture_dropped_packets_total"
        assert nw.metric(dropped, interface=ns.capture, stage="kernel") == 0
        assert nw.metric("netwatch_packets_total") == 5221
    assert nw.returncode == 0, nw.tail()
    live, replayed = flows(tmp_path / "live-flows.jsonl"), flows(replayed_flows)
    assert sum(replayed.values()) == 36 and live == replayed, (live - replayed, replayed - live)
    expected = alerts(replayed_alerts)
    assert sum(expected.values()) == 8  # the demo's incidents (tests/golden)
    assert alerts(tmp_path / "live-alerts.jsonl") == expected


def test_an_interface_that_goes_away_is_reopened_when_it_returns(ns: Netns, tmp_path: Path) -> None:
    body = (
        f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 4}}\n"
        "geoip: {builtin: false}\n"
        "logging: {format: json, level: info}\n"
    )
    up = {"interface": ns.capture}
    with LiveDaemon(ns, tmp_path, body, [ns.capture]) as nw:
        ns.run("ip", "link", "set", ns.capture, "down")  # down: counted, the socket stays
        nw.wait(lambda: (nw.metric("netwatch_capture_errors_total", **up) or 0) >= 1)
        ns.run("ip", "link", "set", ns.capture, "up")
        ns.run("ip", "link", "del", ns.inject)  # removes both ends: the ring is closed
        nw.wait(lambda: nw.metric("netwatch_capture_up", **up) == 0)
        assert nw.metric("netwatch_build_info", version=__version__) == 1  # still serving
        ns.run("ip", "link", "add", ns.inject, "type", "veth", "peer", "name", ns.capture)
        for link in (ns.inject, ns.capture):
            ns.run("ip", "link", "set", link, "up")
        nw.wait(lambda: nw.metric("netwatch_capture_up", **up) == 1, 10)
        ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(DEMO))
        nw.wait(lambda: (nw.metric(RECEIVED, **up) or 0) >= 5221)
    assert nw.returncode == 0, nw.tail()
    text = (tmp_path / "daemon.log").read_text()
    assert "is gone; re-opening it when it returns" in text and "capturing on" in text


def test_two_interfaces_are_captured_and_named(ns: Netns, tmp_path: Path) -> None:
    """Two mirror ports at once (a second veth pair in the same namespace)."""
    ns.run("ip", "link", "add", "nwc", "type", "veth", "peer", "name", "nwd")
    for link in ("nwc", "nwd"):
        ns.run("ip", "link", "set", link, "up")
    ehome = DEMO.parents[1] / "scenarios" / "hik-ehome-isup.pcap"
    with open_capture(ehome) as cap:
        ehome_packets = sum(1 for _ in cap.packets())
    body = (
        f"capture: {{interfaces: [{ns.capture}, nwd], user: null, ring_mb: 8}}\n"
        "geoip: {builtin: false}\n"
        f"flow_log: {tmp_path / 'flows.jsonl'}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp_path / 'alerts.jsonl'}}}\n"
    )
    with LiveDaemon(ns, tmp_path, body, [ns.capture, "nwd"]) as nw:
        ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(DEMO))
        ns.run("tcpreplay", "-q", "-i", "nwc", "--topspeed", str(ehome))
        nw.wait(lambda: nw.metric(RECEIVED, interface=ns.capture) == 5221)
        nw.wait(lambda: nw.metric(RECEIVED, interface="nwd") == ehome_packets)
        assert nw.metric("netwatch_packets_total") == 5221 + ehome_packets
    assert nw.returncode == 0, nw.tail()
    ports = {
        json.loads(x)["id.resp_p"] for x in (tmp_path / "flows.jsonl").read_text().splitlines()
    }
    assert {7660, 8666} <= ports  # EHome/ISUP from the second port, Hik-Connect from the first
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    records = [r for x in lines for r in members(json.loads(x))]
    assert "litedev.hik-connect.com" in {r["peer_name"] for r in records}
