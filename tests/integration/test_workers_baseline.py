"""Two capture workers learn one baseline: new_destination fires once per destination.

Seen on a deployment: every worker opened ``baseline.sqlite`` and held write transactions,
one stalled 5 s on the packet path, and what one worker learnt the others never knew. Now
the parent owns the baseline and the workers send it observations. This test runs the
daemon with ``capture.workers: 2`` on a veth in a private namespace: a camera first talks
to three networks during its learning period, then (after it) to two new networks, each
from many source ports and peer addresses, so the flows of one destination hash to both
workers. Each new network must be reported exactly once, the learnt ones never, and no
worker may touch the SQLite file.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from netwatch.alerts.grouping import members
from netwatch.testing import pcapgen as g
from tests.integration.netns import LiveDaemon, netns_unavailable, veth_namespace

REASON = netns_unavailable() or (
    None if shutil.which("tcpreplay") else "tcpreplay is not installed (apt-get install tcpreplay)"
)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

CAMERA = ("02:00:00:00:00:09", "10.0.0.9")
GATEWAY_MAC = "02:00:00:00:00:fe"
LEARNT = ("45.1.1", "45.2.2", "45.3.3")
NEW = ("45.4.4", "45.5.5")
PER_NETWORK = 12  # peers (and source ports) per /24: flows of one destination on both workers
PERIOD_S = 4.0


def capture(path: Path, networks: tuple[str, ...], first_port: int) -> int:
    """UDP from the camera to ``PER_NETWORK`` addresses in each /24, one flow each."""
    n = 0
    with path.open("wb") as out, g.PcapWriter(out) as pcap:
        for net in networks:
            for host in range(1, PER_NETWORK + 1):
                route = g.Route.of(CAMERA[0], CAMERA[1], GATEWAY_MAC, f"{net}.{host}")
                pcap.write(n * 1000, g.udp_frame(route, first_port + n, 9000, b"hello"))
                n += 1
    return n


def test_two_workers_report_each_new_destination_once(tmp_path: Path) -> None:
    learning, later = tmp_path / "learning.pcap", tmp_path / "later.pcap"
    first = capture(learning, LEARNT, 20_000)
    second = capture(later, (*LEARNT, *NEW), 30_000)
    alerts = tmp_path / "alerts.jsonl"
    with veth_namespace("nb") as ns:
        body = (
            f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 8, workers: 2}}\n"
            f"cameras:\n  - {{name: cam, ip: {CAMERA[1]}}}\n"
            "geoip: {builtin: false}\n"
            f"learning: {{period_s: {PERIOD_S}}}\n"
            "flows: {udp_idle_s: 1}\n"
            "alerts: {max_per_device: 1000}\n"
            f"sinks:\n  - {{name: log, type: jsonl, path: {alerts}}}\n"
            "logging: {format: json, level: info}\n"
        )
        with LiveDaemon(ns, tmp_path, body, [ns.capture]) as nw:
            ended = "netwatch_flows_ended_total"

            def flows_ended() -> float:
                return sum(nw.metric(ended, reason=r) or 0 for r in ("idle_timeout", "evicted"))

            ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(learning))
            nw.wait(lambda: flows_ended() >= first, 30)
            time.sleep(PERIOD_S + 1)  # the camera's learning period is over
            ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(later))
            nw.wait(lambda: flows_ended() >= first + second, 30)
            verdicts = "netwatch_baseline_verdicts_total"
            nw.wait(lambda: (nw.metric(verdicts, verdict="new") or 0) >= len(NEW), 10)
            assert nw.metric(verdicts, verdict="learned") == len(LEARNT)
        assert nw.returncode == 0, nw.tail()
    lines = alerts.read_text().splitlines()
    records = [r for line in lines for r in members(json.loads(line))]
    reported = sorted(
        r["evidence"]["destination"] for r in records if r["rule"] == "new_destination"
    )
    assert reported == [f"{net}.0/24" for net in NEW]
    assert (tmp_path / "state" / "baseline.sqlite").exists()  # the parent stored it
