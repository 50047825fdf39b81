"""The per-device alert bound, the way the flood happened: one camera, 50,000 peers.

A device with a Hikvision MAC prefix sent SYNs to 50,000 public addresses and produced
50,000 alerts (one ``unexpected_egress`` identity per peer). Replayed with ``netwatch
replay`` in a real process, it now yields at most ``alerts.max_per_device`` alerts plus
one ``alert_flood`` summary.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

from netwatch.alerts.grouping import members
from netwatch.testing import pcapgen as g

PEERS = 50_000
CAM_IP, CAM_MAC, GW_MAC = "10.9.0.7", f"{g.HIKVISION_OUIS[0]}:00:00:07", "02:00:5e:10:00:01"
FIRST_PEER = int(ipaddress.IPv4Address("89.0.0.1"))
CONFIG = "geoip: {builtin: false}\nalerts: {max_per_device: 50, device_window_s: 3600}\n"


def syn_flood(path: Path, peers: int) -> None:
    """One SYN from the camera to each of ``peers`` public addresses, 100 us apart."""
    t = g.Trace()
    for i in range(peers):
        dst = str(ipaddress.IPv4Address(FIRST_PEER + i * 7))
        r = g.Route.of(CAM_MAC, CAM_IP, GW_MAC, dst)
        frame = g.tcp_frame(r, 40000 + i % 20000, 443, seq=i, ack=0, flags=g.TcpFlag.SYN)
        t.add(1_000_000 + i * 100, frame)
    t.write(path)


def test_one_camera_scanning_50000_peers_yields_the_bound_and_one_summary(
    tmp_path: Path,
) -> None:
    pcap, cfg, out = tmp_path / "flood.pcap", tmp_path / "c.yaml", tmp_path / "alerts.jsonl"
    syn_flood(pcap, PEERS)
    cfg.write_text(CONFIG)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "netwatch",
            "replay",
            "-c",
            str(cfg),
            "--alerts",
            str(out),
            str(pcap),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    notifications = [json.loads(line) for line in out.read_text().splitlines()]
    alerts = [report for n in notifications for report in members(n)]
    floods = [a for a in alerts if a["rule"] == "alert_flood"]
    assert len(alerts) <= 50 + 1 and len(floods) == 1
    # the channel gets ONE message for the camera, led by the flood summary
    assert [n["rule"] for n in notifications] == ["alert_flood"]
    (flood,) = floods
    assert flood["device_ip"] == CAM_IP and flood["vendor"] == "Hikvision"
    assert flood["evidence"]["emitted"] == 50 and flood["evidence"]["max_per_device"] == 50
    assert {a["device_ip"] for a in alerts} == {CAM_IP}
    assert f"packets: {PEERS} " in done.stdout
    assert "alerts: 51 (alert_flood=1, unexpected_egress=50) in 1 notification;" in done.stdout
