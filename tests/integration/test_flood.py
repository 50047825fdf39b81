"""Flood: random 5-tuples at full rate for 60 s into a live daemon on a veth.

tcpreplay loops a capture of random UDP 5-tuples into one end of a veth pair in a private
namespace (``--unique-ip`` changes the addresses on every loop, so nearly every packet opens
a new flow) at top speed for ``FLOOD_S`` seconds, while ``netwatch run`` captures on the
other end with a small flow table. Meanwhile the daemon must keep answering metrics
quickly, keep its flow table within ``flows.max_flows`` and its memory bounded, and still
deliver the alerts of a camera registering with a vendor cloud in the middle of the flood;
if the flood outruns it, the loss is reported (``capture_loss``) rather than hidden.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
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

FLOOD_S = 60
MAX_FLOWS = 20_000
SCENARIO = Path(__file__).resolve().parents[2] / "pcaps" / "scenarios"
REGISTRATION = SCENARIO / "hik-connect-registration.pcap"


def flood_pcap(path: Path, packets: int = 50_000) -> None:
    """Random UDP 5-tuples between random public addresses (seeded)."""
    rng = random.Random(7)
    with path.open("wb") as out, g.PcapWriter(out) as pcap:
        for i in range(packets):
            src = bytes([rng.randrange(1, 224), *rng.randbytes(3)])
            dst = bytes([rng.randrange(1, 224), *rng.randbytes(3)])
            route = g.Route(b"\x02\0\0\0\0\1", b"\x02\0\0\0\0\2", src, dst)
            sport, dport = rng.randrange(1024, 65536), rng.randrange(1, 65536)
            pcap.write(i, g.udp_frame(route, sport, dport, b"x" * 18))


def test_a_flood_keeps_memory_bounded_and_the_daemon_responsive(tmp_path: Path) -> None:
    flood = tmp_path / "flood.pcap"
    flood_pcap(flood)
    alerts = tmp_path / "alerts.jsonl"
    with veth_namespace("nf") as ns:
        body = (
            f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 32}}\n"
            "geoip: {builtin: false}\n"
            f"flows: {{max_flows: {MAX_FLOWS}}}\n"
            "alerts: {group_wait_s: 5}\n"  # the loss alert goes out soon after it is seen
            f"sinks:\n  - {{name: log, type: jsonl, path: {alerts}}}\n"
            "logging: {format: json, level: info}\n"
        )
        with LiveDaemon(ns, tmp_path, body, [ns.capture]) as nw:
            flooder = subprocess.Popen(
                ns.cmd(
                    "tcpreplay",
                    "-q",
                    "-i",
                    ns.inject,
                    "--topspeed",
                    "--loop=0",
                    "--unique-ip",
                    f"--duration={FLOOD_S}",
                    "--preload-pcap",
                    str(flood),
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            rss: list[float] = []
            slowest = 0.0
            while flooder.poll() is None:
                t0 = time.monotonic()
                active = nw.metric("netwatch_flows_active")
                slowest = max(slowest, time.monotonic() - t0)
                assert active is not None, f"metrics did not answer\n{nw.tail()}"
                assert active <= MAX_FLOWS
                rss.append(nw.metric("process_resident_memory_bytes") or 0)
                time.sleep(2)
            assert flooder.wait() == 0
            packets = nw.metric("netwatch_packets_total") or 0
            dropped = (
                nw.metric(
                    "netwatch_capture_dropped_packets_total", interface=ns.capture, stage="kernel"
                )
                or 0
            )
            if dropped / (packets + dropped) > 0.01:  # the loss is reported, and delivered
                nw.wait(lambda: delivered(alerts, "capture_loss"), 60)
            # once the ring's backlog is worked off, a camera registering with a vendor
            # cloud is caught
            settled = time.monotonic() + 60
            while time.monotonic() < settled:
                before = nw.metric("netwatch_packets_total")
                time.sleep(2)
                if nw.metric("netwatch_packets_total") == before:
                    break
            ns.run("tcpreplay", "-q", "-i", ns.inject, str(REGISTRATION))
            nw.wait(lambda: delivered(alerts, "cloud_registration"), 60)
    print(
        f"flood: {packets:.0f} packets processed, {dropped:.0f} dropped by the kernel, "
        f"RSS {min(rss) / 2**20:.0f}-{max(rss) / 2**20:.0f} MiB, slowest scrape {slowest:.2f} s"
    )
    assert nw.returncode == 0, nw.tail()
    assert slowest < 5.0, f"a scrape took {slowest:.1f} s under the flood"
    assert packets > 100_000  # it was a flood, and it was processed
    steady = rss[len(rss) // 3 :]
    assert max(steady) - min(steady) < 64 << 20, [int(r) >> 20 for r in rss]  # MiB


def delivered(alerts: Path, rule: str) -> bool:
    """True once the jsonl sink delivered an alert of ``rule`` (alone or grouped into its
    device's notification, which waits alerts.group_wait_s)."""
    text = alerts.read_text() if alerts.exists() else ""
    return any(r["rule"] == rule for x in text.splitlines() for r in members(json.loads(x)))
