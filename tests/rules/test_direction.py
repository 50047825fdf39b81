"""Direction-sensitive rules: ``inbound_access`` needs an outside opener, ICMP errors are
not egress, and sessions the camera opened stay the camera's when the sensor joins late.

Generated captures through the whole replay (decoder, flow table, detector, router), and
one real capture pinned: the D-Link DCS-8000LH on its router's WAN port, where a cloud
server's ACK on a session the camera had opened came first and was read as the internet
reaching the camera.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.conftest import corpus_file
from tests.rules.test_rules import CAM, CAM_MAC, CLOUD, GW_MAC, OUTSIDER, replay, route, rules_of

FIN_ACK, ACK, SYN, RST = 0x11, 0x10, 0x02, 0x04


def outsider(port: int, cam_port: int) -> g.TcpSession:
    """A TCP session whose client is the camera and whose server is outside."""
    return g.TcpSession(route(OUTSIDER), cam_port, port)


def test_server_fin_first_on_a_session_the_camera_opened_is_egress_not_inbound(
    tmp_path: Path,
) -> None:
    t = g.Trace()
    s = outsider(443, 46551)
    t.add(1_000_000, s.segment(False, FIN_ACK))  # the server closes; the SYN was before us
    t.add(1_001_000, s.segment(True, ACK))
    t.add(1_002_000, s.segment(True, FIN_ACK))
    alerts = replay(tmp_path, t)
    assert rules_of(alerts) == ["unexpected_egress"]
    assert alerts[0]["direction"] == "outbound" and alerts[0]["peer_port"] == 443


def test_upload_seen_mid_stream_is_an_upload(tmp_path: Path) -> None:
    """The cloud's ACK is the first packet seen; then 290 kB go up: bytes_up, not down."""
    t = g.Trace()
    s = outsider(443, 46552)
    ts = t.add_burst(1_000_000, [s.segment(False, ACK)], 1000)
    t.add_burst(ts, s.send(True, b"v" * 290_000), 100)
    alerts = {a["rule"]: a for a in replay(tmp_path, t)}
    assert set(alerts) == {"unexpected_egress", "outbound_stream"}  # and found as a clip upload
    alert = alerts["unexpected_egress"]
    assert alert["direction"] == "outbound"
    assert (alert["evidence"]["bytes_up"], alert["evidence"]["bytes_down"]) == (290_000, 0)
    assert alert["evidence"]["conn_state"] == "OTH"
    clip = alerts["outbound_stream"]
    assert clip["direction"] == "outbound" and clip["evidence"]["kind"] == "clip"


def test_mid_stream_data_from_outside_on_a_camera_port_is_not_inbound_access(
    tmp_path: Path,
) -> None:
    """No handshake seen: the outsider's data to camera:80 and the answer prove nothing."""
    t = g.Trace()
    s = g.TcpSession(g.Route.of(GW_MAC, OUTSIDER, CAM_MAC, CAM), 51000, 80)
    ts = t.add_burst(1_000_000, s.send(True, b"GET / HTTP/1.1\r\n\r\n"), 1000)
    ts = t.add_burst(ts, s.send(False, b"HTTP/1.1 200 OK\r\n\r\n"), 1000)
    t.add_burst(ts, s.close(True), 1000)  # both FINs: SF, though nobody saw it open
    assert "inbound_access" not in rules_of(replay(tmp_path, t))


def test_an_rst_is_never_an_answer(tmp_path: Path) -> None:
    t = g.Trace()
    s = g.TcpSession(g.Route.of(GW_MAC, OUTSIDER, CAM_MAC, CAM), 51000, 8000)
    t.add(1_000_000, s.segment(True, SYN))
    t.add(1_001_000, s.segment(False, RST | ACK))
    t.add(2_000_000, s.segment(True, ACK, b"probe"))  # the scanner keeps talking
    t.add(2_001_000, s.segment(False, RST))
    late = g.TcpSession(g.Route.of(GW_MAC, OUTSIDER, CAM_MAC, CAM), 51001, 8000)
    t.add(3_000_000, late.segment(True, ACK))  # an ACK out of nowhere (RSTRH before)
    t.add(3_001_000, late.segment(False, RST))
    assert replay(tmp_path, t) == []


def test_outside_syn_answered_by_the_camera_syn_ack_is_inbound_access(tmp_path: Path) -> None:
    t = g.Trace()
    s = g.TcpSession(g.Route.of(GW_MAC, OUTSIDER, CAM_MAC, CAM), 51000, 8000)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    t.add_burst(ts, s.close(True), 1000)
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "inbound_access" and alert["evidence"]["history"].startswith("ShA")


def udp_from_outside(
    t: g.Trace, cam_port: int, ts: int, *, src_port: int = 40000, host: str = OUTSIDER
) -> None:
    inbound = g.Route.of(GW_MAC, host, CAM_MAC, CAM)
    t.add(ts, g.udp_frame(inbound, src_port, cam_port, b"\x30\x26request"))
    t.add(ts + 1000, g.udp_frame(inbound.reverse(), cam_port, src_port, b"\x30\x40answer"))


def test_udp_request_answered_on_a_camera_server_port_is_inbound_access(tmp_path: Path) -> None:
    t = g.Trace()
    udp_from_outside(t, 161, 1_000_000)  # SNMP from the internet, answered
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "inbound_access" and alert["evidence"]["service_port"] == 161


def test_udp_to_a_port_the_camera_sent_from_is_not_inbound_access(tmp_path: Path) -> None:
    """A P2P peer reaching the port the camera used for its STUN request (a punch)."""
    t = g.Trace()
    stun = route("89.160.20.112")
    t.add(1_000_000, g.udp_frame(stun, 23000, 3478, b"\x00\x01" + bytes(18)))
    t.add(1_001_000, g.udp_frame(stun.reverse(), 3478, 23000, b"\x01\x01" + bytes(30)))
    udp_from_outside(t, 23000, 2_000_000, src_port=41000)  # the peer's packet comes first
    udp_from_outside(t, 23001, 3_000_000, src_port=41001, host=CLOUD)  # a port never used
    alerts = [a for a in replay(tmp_path, t) if a["rule"] == "inbound_access"]
    assert [a["evidence"]["service_port"] for a in alerts] == [23001]


def test_a_cloud_server_datagram_first_is_not_inbound_access(tmp_path: Path) -> None:
    """The sensor joined a PPPP session: the P2P server's datagram to the camera comes first."""
    t = g.Trace()
    udp_from_outside(t, 23002, 1_000_000, src_port=32100)
    udp_from_outside(t, 23003, 2_000_000, src_port=3478, host=CLOUD)  # a STUN server
    udp_from_outside(t, 23004, 3_000_000, src_port=123, host="89.160.20.112")  # symmetric NTP
    assert "inbound_access" not in rules_of(replay(tmp_path, t))


def port_unreachable(resolver: str) -> bytes:
    """The camera's ICMP port unreachable for a DNS answer that came after it gave up."""
    late = g.ipv4(g.ip_bytes(resolver), g.ip_bytes(CAM), 17, bytes(8))[:28]
    msg = bytearray(bytes([3, 3, 0, 0, 0, 0, 0, 0]) + late)
    msg[2:4] = g.internet_checksum(msg).to_bytes(2, "big")
    return g.ip_frame(route(resolver), 1, bytes(msg))


def test_icmp_errors_the_camera_sends_back_are_not_egress(tmp_path: Path) -> None:
    t = g.Trace()
    t.add(1_000_000, port_unreachable("8.8.8.8"))
    t.add(2_000_000, g.icmp_echo_frame(route("8.8.8.8"), 1, 1, b"ping"))  # a ping is egress
    alerts = replay(tmp_path, t)
    assert [(a["rule"], a["proto"], a["peer_port"]) for a in alerts] == [
        ("unexpected_egress", "icmp", 0)
    ]


def test_dlink_dcs8000lh_cloud_ack_first_is_not_inbound(tmp_path: Path) -> None:
    """Real capture: 99.80.0.240:443 ACKs first, the camera (46551) resets its own session."""
    pcap = corpus_file("pcaps", "camera-real", "shf_dlink-dcs8000lh_basefw_wan.pcap")
    cfg = tmp_path / "c.yaml"
    cfg.write_text('cameras:\n  - {name: dcs8000lh, mac: "b0:c5:54:43:54:83"}\n')
    flows, alerts = tmp_path / "f.jsonl", tmp_path / "a.jsonl"
    run_replay([pcap], Config.load(cfg), flows_out=flows, alerts_out=alerts, geo=NullGeo())
    records: list[dict[str, Any]] = [json.loads(x) for x in flows.read_text().splitlines()]
    fired = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert not [a for a in fired if a["rule"] == "inbound_access"]
    (rec,) = [r for r in records if "99.80.0.240" in (r["id.orig_h"], r["id.resp_h"])]
    assert (rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_p"]) == ("192.168.1.115", 46551, 443)
    assert rec["history"] == "^aR"
    big = [r for r in records if r["proto"] == "udp" and r["orig_bytes"] > 1_000_000]
    assert [(r["id.orig_h"], r["id.resp_h"]) for r in big] == [("192.168.1.115", "130.104.214.55")]
