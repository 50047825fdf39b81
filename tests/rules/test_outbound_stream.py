"""outbound_stream: sustained streams and short, lopsided clip uploads.

Generated flows pin the thresholds (volume, window, up/down ratio, per-group overrides) and
that LAN streams stay quiet; real flows from the camera-real captures pin the stream path
(the D-Link DCS-8000LH's UDP P2P video to a WAN peer, the Xiaomi camera's PPPP video to the
remote viewer) and the clip path (the first seconds of those same flows, cut in the test).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.incidents import findings
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from netwatch.rules.outbound_stream import CLIP, STREAM, Thresholds, matches
from netwatch.testing import pcapgen as g
from tests.conftest import corpus_file
from tests.rules.test_rules import CAM, CAM_MAC, FOREIGN, NVR, NVR_MAC, replay, route

ZERO_GROUP = "cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n"


def upload(t: g.Trace, up: int, down: int, seconds: float, dst: str = FOREIGN) -> None:
    """A TCP session to ``dst``:443 sending ``up`` bytes and receiving ``down`` bytes."""
    s = g.TcpSession(route(dst), 45000, 443)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    chunks = max(1, up // 1400)
    gap = int(seconds * 1_000_000 / chunks)
    for i in range(chunks):
        size = 1400 if i < chunks - 1 else up - 1400 * (chunks - 1)
        ts = t.add_burst(ts, s.send(True, b"c" * size), gap)
    if down:
        ts = t.add_burst(ts, s.send(False, b"r" * down), 1000)
    t.add_burst(ts, s.close(True), 1000)


def streams(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outbound_stream findings, whether the notification or folded into one."""
    return [f for a in alerts for f in findings(a) if f["rule"] == "outbound_stream"]


def test_clip_upload_is_found_by_volume_and_ratio(tmp_path: Path) -> None:
    t = g.Trace()
    upload(t, 372_000, 4_000, 6.0)  # a motion clip over HTTPS: 372 kB up, 4 kB back
    (alert,) = streams(replay(tmp_path, t, ZERO_GROUP))
    ev = alert["evidence"]
    assert alert["severity"] == "high" and ev["kind"] == "clip"
    assert (ev["bytes_up"], ev["bytes_down"], ev["up_down_ratio"]) == (372_000, 4_000, 93.0)
    assert ev["threshold_bytes"] == CLIP.min_bytes and ev["min_ratio"] == CLIP.min_ratio
    assert "uploaded a clip of 372,000 bytes" in alert["summary"]


@pytest.mark.parametrize(
    ("up", "down", "seconds"),
    [
        (200_000, 1_000, 5.0),  # too small
        (372_000, 60_000, 6.0),  # not lopsided (ratio 6: a two-way session)
        (300_000, 1_000, 3_600.0),  # a trickle over an hour (83 kB per 5 min)
    ],
)
def test_not_a_clip(tmp_path: Path, up: int, down: int, seconds: float) -> None:
    t = g.Trace()
    upload(t, up, down, seconds)
    assert streams(replay(tmp_path, t, ZERO_GROUP)) == []


GROUP_G = "cameras:\n  - {name: lobby-1, ip: 10.20.0.11, group: g}\ngroups:\n"


def test_group_rule_options_override_the_clip_thresholds(tmp_path: Path) -> None:
    t = g.Trace()
    upload(t, 372_000, 4_000, 6.0)
    options = "  g:\n    rules:\n      outbound_stream: {%s}\n"
    assert streams(replay(tmp_path, t, GROUP_G + options % "clip_bytes: 400000")) == []
    assert streams(replay(tmp_path, t, GROUP_G + options % "clip_ratio: 100")) == []
    small = g.Trace()
    upload(small, 120_000, 1_000, 2.0)
    (alert,) = streams(replay(tmp_path, small, GROUP_G + options % "clip_bytes: 100000"))
    assert alert["evidence"]["threshold_bytes"] == 100_000


def test_stream_bytes_from_the_groups_rules_take_effect(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(600):  # 720 kB in 30 s, nothing back: a stream at the defaults
        t.add(1_000_000 + i * 50_000, g.udp_frame(route(FOREIGN), 40010, 51616, b"v" * 1200))

    def kinds(config: str) -> list[str]:
        return [a["evidence"]["kind"] for a in streams(replay(tmp_path, t, config))]

    assert kinds(GROUP_G + "  g: {}\n") == ["stream"]
    raised = "  g:\n    rules:\n      outbound_stream:\n        stream_bytes: 2000000\n"
    assert kinds(GROUP_G + raised) == ["clip"]  # no longer a stream; still lopsided
    site = GROUP_G + "  g: {}\nrules:\n  outbound_stream: {stream_bytes: 2000000}\n"
    assert kinds(site) == ["clip"]
    lowered = "  g:\n    rules:\n      outbound_stream: {stream_bytes: 100000}\n"
    (alert,) = streams(replay(tmp_path, t, GROUP_G + lowered))
    assert alert["evidence"]["kind"] == "stream" and alert["evidence"]["threshold_bytes"] == 100_000


def test_deprecated_group_keys_still_set_the_thresholds(tmp_path: Path) -> None:
    t = g.Trace()
    upload(t, 372_000, 4_000, 6.0)
    assert streams(replay(tmp_path, t, GROUP_G + "  g: {clip_bytes: 400000}\n")) == []
    assert streams(replay(tmp_path, t, GROUP_G + "  g: {clip_ratio: 100}\n")) == []
    cfg = Config.from_yaml(GROUP_G + "  g: {clip_ratio: 100}\n")
    assert [w.key for w in cfg.warnings] == ["groups.g.clip_ratio"]


def test_a_severity_option_replaces_both_kinds_severity(tmp_path: Path) -> None:
    t = g.Trace()
    upload(t, 372_000, 4_000, 6.0)
    site = ZERO_GROUP + "rules:\n  outbound_stream: {severity: medium}\n"
    (alert,) = streams(replay(tmp_path, t, site))
    assert alert["evidence"]["kind"] == "clip" and alert["severity"] == "medium"


def test_stream_keeps_its_kind_and_severity(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(600):  # 720 kB in 30 s, nothing back
        t.add(1_000_000 + i * 50_000, g.udp_frame(route(FOREIGN), 40010, 51616, b"v" * 1200))
    (alert,) = streams(replay(tmp_path, t, ZERO_GROUP))
    assert alert["severity"] == "critical" and alert["evidence"]["kind"] == "stream"
    assert alert["evidence"]["threshold_bytes"] == STREAM.min_bytes


def test_lan_nvr_streams_raise_nothing(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(2_000):  # 2.4 MB of camera video to the NVR, and a lopsided LAN upload
        t.add(1_000_000 + i * 10_000, g.udp_frame(route(NVR, CAM), 8000, 9000, b"v" * 1200))
    upload(t, 400_000, 1_000, 4.0, dst=NVR)
    nvr_pull = g.Route.of(NVR_MAC, NVR, CAM_MAC, CAM)
    t.add(40_000_000, g.udp_frame(nvr_pull, 9001, 8001, b"k"))
    assert streams(replay(tmp_path, t, ZERO_GROUP)) == []


def test_thresholds_on_their_own() -> None:
    clip = Thresholds(250_000, 300.0, 10.0)
    assert matches(clip, 300_000, 30_000, 10.0)
    assert not matches(clip, 300_000, 30_001, 10.0)  # ratio just under 10
    assert not matches(clip, 300_000, 0, 301.0 * 300_000 / 250_000)  # diluted per window
    assert matches(clip, 300_000, 0, 360.0)  # exactly 250 kB per 300 s


# ---------------------------------------------------------------- real camera flows


def _write_pcap(path: Path, records: list[tuple[float, int, int, bytes]]) -> None:
    """A classic pcap (microseconds) keeping each record's original wire length."""
    linktype = records[0][1]
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, linktype))
        for ts, _, wirelen, frame in records:
            sec, usec = int(ts), round((ts - int(ts)) * 1e6)
            out.write(struct.pack("<IIII", sec, min(usec, 999_999), len(frame), wirelen))
            out.write(frame)


def _cut(src: Path, dst: Path, peer: str, up_to: int) -> None:
    """``src`` up to the moment the camera has sent ``up_to`` wire bytes to ``peer``."""
    needle = bytes(int(x) for x in peer.split("."))
    kept, sent = [], 0
    with open_capture(src) as cap:
        for rec in cap.packets():
            frame = rec[3]
            if frame[30:34] == needle:  # Ethernet + IPv4 destination
                sent += rec[2]
                if sent > up_to:
                    break
            kept.append(rec)
    _write_pcap(dst, kept)


CAMERAS = "geoip: {builtin: false}\ncameras:\n  - {name: dlink, mac: 'b0:c5:54:43:54:83'}\n"
CAMERAS += "  - {name: mi, mac: '78:8b:2a:b2:20:ea'}\n"
REAL = [
    # D-Link DCS-8000LH: UDP P2P video 192.168.1.115:56907 -> 130.104.214.55:38950
    ("camera-real/shf_dlink-dcs8000lh_basefw_wan.pcap", "130.104.214.55"),
    # Xiaomi: PPPP video to the remote viewer 130.104.214.55
    ("camera-real/shf_xiaomi-cam_nofw_wan_snaplen150.pcapng", "130.104.214.55"),
]


def _alerts(capture: Path, tmp_path: Path) -> list[dict[str, Any]]:
    cfg, out = tmp_path / "c.yaml", tmp_path / "a.jsonl"
    cfg.write_text(CAMERAS)
    run_replay([capture], Config.load(cfg), alerts_out=out, geo=NullGeo(), uid_seed=1)
    return streams([json.loads(line) for line in out.read_text().splitlines()])


@pytest.mark.parametrize(("rel", "peer"), REAL)
def test_real_p2p_video_is_a_stream(rel: str, peer: str, tmp_path: Path) -> None:
    found = _alerts(corpus_file("pcaps", *rel.split("/")), tmp_path)
    assert [(a["peer_ip"], a["evidence"]["kind"]) for a in found] == [(peer, "stream")]


@pytest.mark.parametrize(("rel", "peer"), REAL)
def test_first_seconds_of_real_p2p_video_are_a_clip(rel: str, peer: str, tmp_path: Path) -> None:
    """The same real flows cut at ~380 kB on the wire: below the stream threshold, but a
    short lopsided upload (found as a clip; missed before)."""
    cut = tmp_path / "cut.pcap"
    _cut(corpus_file("pcaps", *rel.split("/")), cut, peer, 380_000)
    (alert,) = _alerts(cut, tmp_path)
    ev = alert["evidence"]
    assert alert["peer_ip"] == peer and ev["kind"] == "clip"
    assert 250_000 <= ev["bytes_up"] < 500_000 and ev["up_down_ratio"] >= 10
