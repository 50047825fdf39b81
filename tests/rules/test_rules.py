"""Pcap-driven tests of each rule: a generated capture per behaviour, replayed end to end.

GeoIP answers come from a small fixed table (the rules are under test here, not geoip2;
the MaxMind-format code has its own tests against MaxMind's test databases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.incidents import findings
from netwatch.config import Config
from netwatch.enrich.geo import GeoInfo, GeoSourceInfo
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.deep.discovery.builders import sadp_probe_match

CAM_MAC, GW_MAC, NVR_MAC = "bc:ad:28:1a:2b:01", "02:00:5e:10:00:01", "02:4e:56:00:00:0a"
CAM, NVR, RESOLVER, NTP = "10.20.0.11", "10.20.0.10", "10.20.0.53", "10.20.0.123"
CLOUD, FOREIGN, OUTSIDER = "175.16.199.1", "89.160.20.112", "81.2.69.142"

GEO = {
    CLOUD: GeoInfo("CN", 4837, "CHINA UNICOM"),
    "110.43.68.240": GeoInfo("CN", 4134, "CHINANET"),
    "36.156.49.100": GeoInfo("CN", 9808, "China Mobile"),
    FOREIGN: GeoInfo("SE", 29518, "Bredband2 AB"),
    OUTSIDER: GeoInfo("GB", 20712, "Andrews & Arnold"),
    "8.8.8.8": GeoInfo("US", 15169, "GOOGLE"),
}

BASE_CONFIG = """
cameras:
  - {name: lobby-1, ip: 10.20.0.11, group: lobby}
groups:
  lobby:
    allow_names: ["*.allowed.example"]
    dns_servers: [10.20.0.53]
    deny_countries: [CN]
"""


#: Alert options: every report goes out at once, alone (router tests, not grouping ones).
AT_ONCE = "group_wait_s: 0, group_interval_s: 0"


class TableGeo:
    """A fixed GeoIP table for rule tests."""

    def lookup(self, ip_text: str) -> GeoInfo:
        return GEO.get(ip_text, GeoInfo(None, None, None))

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("table", "builtin", None, "test table", ())


def replay(tmp_path: Path, trace: g.Trace, config: str = BASE_CONFIG) -> list[dict[str, Any]]:
    pcap, cfg, out = tmp_path / "s.pcap", tmp_path / "c.yaml", tmp_path / "alerts.jsonl"
    trace.write(pcap)
    cfg.write_text(config)
    summary = run_replay([pcap], Config.load(cfg), alerts_out=out, geo=TableGeo(), uid_seed=1)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.alerts == len(alerts) and not summary.rule_errors
    # the rules' findings: a flow's notification holds the findings folded into it
    return [finding for alert in alerts for finding in findings(alert)]


def route(dst: str, src: str = CAM, src_mac: str = CAM_MAC) -> g.Route:
    return g.Route.of(src_mac, src, GW_MAC, dst)


def tcp_session(t: g.Trace, r: g.Route, dport: int, ts: int, data: bytes = b"x" * 200) -> None:
    s = g.TcpSession(r, 40000 + dport % 1000, dport)
    ts = t.add_burst(ts, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, data), 1000)
    ts = t.add_burst(ts, s.send(False, b"y" * 300), 1000)
    t.add_burst(ts, s.close(True), 1000)


def dns_exchange(t: g.Trace, resolver: str, name: str, answer: str, ts: int) -> None:
    r = route(resolver)
    t.add(ts, g.udp_frame(r, 5353 + ts % 1000, 53, g.dns_query(1, name)))
    rr = [g.DnsRecord(name, g.DnsType.A, answer, 300)]
    t.add(
        ts + 500,
        g.udp_frame(r.reverse(), 53, 5353 + ts % 1000, g.dns_response(1, name, g.DnsType.A, rr)),
    )


def rules_of(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["rule"] for a in alerts)


def test_benign_site_raises_nothing(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, RESOLVER, "ntp.cctv.internal", NTP, 1_000_000)
    t.add(1_100_000, g.udp_frame(route(NTP), 123, 123, bytes(48)))
    t.add(1_101_000, g.udp_frame(route(NTP).reverse(), 123, 123, bytes(48)))
    nvr = g.Route.of(NVR_MAC, NVR, CAM_MAC, CAM)
    s = g.TcpSession(nvr, 50000, 554)
    ts = t.add_burst(2_000_000, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, g.rtsp_request("DESCRIBE", f"rtsp://{CAM}/", 2)), 1000)
    body = g.sdp(CAM, session_id=1)
    t.add_burst(
        ts, s.send(False, g.rtsp_response(2, [("Content-Type", "application/sdp")], body)), 1000
    )
    for i in range(50):
        t.add(3_000_000 + i * 1000, g.udp_frame(route(NVR, CAM), 8000, 9000, b"v" * 1200))
    assert replay(tmp_path, t) == []


def test_unexpected_egress_with_name_and_evidence(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, RESOLVER, "updates.vendor.example", FOREIGN, 1_000_000)
    tcp_session(t, route(FOREIGN), 50123, 2_000_000)
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "unexpected_egress" and alert["severity"] == "medium"
    assert alert["device"] == "lobby-1" and alert["peer_name"] == "updates.vendor.example"
    assert (alert["peer_country"], alert["peer_asn"], alert["peer_port"]) == ("SE", 29518, 50123)
    assert alert["evidence"]["group"] == "lobby" and alert["evidence"]["bytes_up"] == 200
    assert alert["direction"] == "outbound" and alert["flow_uid"].startswith("C")


def test_allow_listed_name_is_quiet(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, RESOLVER, "fw.allowed.example", FOREIGN, 1_000_000)
    tcp_session(t, route(FOREIGN), 443, 2_000_000)
    assert replay(tmp_path, t) == []


def test_denied_country_and_egress_both_fire(tmp_path: Path) -> None:
    t = g.Trace()
    tcp_session(t, route(CLOUD), 443, 1_000_000)
    assert rules_of(replay(tmp_path, t)) == ["denied_country", "unexpected_egress"]


def test_one_denied_country_is_one_incident_whatever_its_networks(tmp_path: Path) -> None:
    """Three CN networks (three ASes) reached over UDP: one denied_country notification for
    the camera and CN, with the later peers in its incident; the camera's ICMP port
    unreachable back to one of them is not a finding of its own."""
    t = g.Trace()
    ts = 1_000_000
    for peer in (CLOUD, "110.43.68.240", "36.156.49.100"):
        t.add(ts, g.udp_frame(route(peer), 40000, 9000, b"hello" * 10))
        ts += 10_000_000
    t.add(ts, g.ip_frame(route("110.43.68.240"), 1, b"\x03\x03\x00\x00" + bytes(4) + bytes(28)))
    pcap, cfg, out = tmp_path / "s.pcap", tmp_path / "c.yaml", tmp_path / "alerts.jsonl"
    t.write(pcap)
    cfg.write_text(BASE_CONFIG + "alerts: {resolve_s: 3600}\n")
    run_replay([pcap], Config.load(cfg), alerts_out=out, geo=TableGeo(), uid_seed=1)
    notes = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["rule"], a["reached"]) for a in notes] == [("denied_country", "denied country CN")]
    assert [f["rule"] for f in notes[0]["evidence"]["folded"]] == ["unexpected_egress"]
    # every finding is still there: the three flows, none for the ICMP error
    every = replay(tmp_path, t, BASE_CONFIG + "alerts: {suppress_s: 0.000001, " + AT_ONCE + "}\n")
    denied = [a for a in every if a["rule"] == "denied_country"]
    assert sorted(a["peer_ip"] for a in denied) == sorted([CLOUD, "110.43.68.240", "36.156.49.100"])
    assert all(a["proto"] == "udp" for a in denied)


def test_rogue_dns_public_resolver(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, "8.8.8.8", "pub-cfg.secu100.net", FOREIGN, 1_000_000)
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "rogue_dns" and alert["evidence"]["query"] == "pub-cfg.secu100.net"
    assert alert["peer_ip"] == "8.8.8.8"


def test_inbound_access_only_when_the_camera_answers(tmp_path: Path) -> None:
    t = g.Trace()
    outsider = g.Route.of(GW_MAC, OUTSIDER, CAM_MAC, CAM)
    s = g.TcpSession(outsider, 51000, 80)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, g.http_request("GET", "/", [("Host", CAM)])), 1000)
    t.add_burst(ts, s.send(False, g.http_response(200, "OK", [("Server", "App-webs/")])), 1000)
    probe = g.TcpSession(outsider, 51001, 23)
    t.add(5_000_000, probe.segment(True, 0x02))  # a scan: SYN, never answered
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "inbound_access" and alert["direction"] == "inbound"
    assert alert["peer_ip"] == OUTSIDER and alert["peer_country"] == "GB"
    assert alert["evidence"]["server"] == "App-webs/" and alert["evidence"]["service_port"] == 80


def test_audio_stream_from_sdp(tmp_path: Path) -> None:
    t = g.Trace()
    nvr = g.Route.of(NVR_MAC, NVR, CAM_MAC, CAM)
    s = g.TcpSession(nvr, 50000, 554)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, g.rtsp_request("DESCRIBE", f"rtsp://{CAM}/", 2)), 1000)
    body = g.sdp(CAM, session_id=1, audio=True)
    reply = g.rtsp_response(2, [("Server", "Hikvision-Webs")], body)
    t.add_burst(ts, s.send(False, reply), 1000)
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "audio_stream" and alert["severity"] == "medium"
    assert alert["evidence"]["sdp_media"] == ["video", "audio"]


def test_repeats_are_suppressed_with_a_count(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(5):
        tcp_session(t, route(FOREIGN), 50123, 1_000_000 + i * 10_000_000)
    alerts = replay(tmp_path, t, BASE_CONFIG + "alerts: {suppress_s: 30, " + AT_ONCE + "}\n")
    # flows at 1, 11, 21, 31, 41 s: reported at 1, then at 31 for itself and the two repeats
    assert [(a["ts"][17:19], a["count"]) for a in alerts] == [("01", 1), ("31", 3)]


@pytest.mark.parametrize("vlan", [(), (20,)])
def test_ipv6_and_vlan_variants(tmp_path: Path, vlan: tuple[int, ...]) -> None:
    t = g.Trace()
    r6 = g.Route.of(CAM_MAC, "fd00:20::11", GW_MAC, "2001:218::1", vlan)
    tcp_session(t, r6, 443, 1_000_000)
    config = BASE_CONFIG.replace("ip: 10.20.0.11", "mac: 'bc:ad:28:1a:2b:01'")
    (alert,) = replay(tmp_path, t, config)
    assert alert["rule"] == "unexpected_egress" and alert["device_ip"] == "fd00:20::11"
    assert alert["device"] == "lobby-1"


GENERIC_MAC = "02:aa:bb:cc:dd:01"  # locally administered: no vendor, only discovery tells


def sadp_announcement(t: g.Trace, ip: str, mac: str, ts: int, cloud: str) -> None:
    r = g.Route.of(mac, ip, "01:00:5e:7f:ff:fa", "239.255.255.250")
    t.add(
        ts,
        g.udp_frame(
            r,
            37020,
            37020,
            sadp_probe_match(IPv4Address=ip, MAC=mac.replace(":", "-"), HCPlatformEnable=cloud),
        ),
    )


def test_cloud_enabled_from_sadp_and_zero_config_discovery(tmp_path: Path) -> None:
    t = g.Trace()
    sadp_announcement(t, "10.20.0.77", GENERIC_MAC, 1_000_000, "true")
    tcp_session(t, route(FOREIGN, "10.20.0.77", GENERIC_MAC), 8666, 2_000_000)
    alerts = replay(tmp_path, t, "")  # zero-config: no inventory, default group
    # 8666 is Hik-Connect's registration port: a port-only cloud match (medium)
    assert rules_of(alerts) == ["cloud_enabled", "cloud_registration", "unexpected_egress"]
    port_only = next(a for a in alerts if a["rule"] == "cloud_registration")
    assert port_only["severity"] == "medium" and port_only["evidence"]["endpoint"] is None
    cloud = next(a for a in alerts if a["rule"] == "cloud_enabled")
    assert cloud["device"] == "10.20.0.77" and cloud["peer_ip"] is None
    assert cloud["evidence"]["model"] == "DS-2CD2043G0-I"
    egress = next(a for a in alerts if a["rule"] == "unexpected_egress")
    assert egress["vendor"] == "Hikvision" and egress["evidence"]["group"] == "default"
    # what the discovery reply said about the device travels with every alert
    assert egress["evidence"]["device_model"] == "DS-2CD2043G0-I"
    assert egress["evidence"]["device_serial"].startswith("DS-2CD2043G0-I")


def test_cloud_disabled_is_quiet(tmp_path: Path) -> None:
    t = g.Trace()
    sadp_announcement(t, "10.20.0.77", GENERIC_MAC, 1_000_000, "false")
    assert replay(tmp_path, t, "") == []


def test_unmanaged_device_once_per_device_with_an_inventory(tmp_path: Path) -> None:
    t = g.Trace()
    sadp_announcement(t, "10.20.0.77", GENERIC_MAC, 1_000_000, "false")
    for i, peer in enumerate((NVR, RESOLVER, NTP)):
        t.add(
            2_000_000 + i * 1000,
            g.udp_frame(route(peer, "10.20.0.77", GENERIC_MAC), 9000 + i, 9999, b"z"),
        )
    alerts = replay(tmp_path, t)
    assert rules_of(alerts) == ["unmanaged_device"]
    assert alerts[0]["evidence"]["recognised_by"] == "sadp"


def dual_stack_camera(t: g.Trace, v4: str, v6: str, ts: int) -> None:
    """A camera of vendor MAC prefix that talks from its IPv6 address, then its IPv4 one."""
    t.add(ts, g.udp_frame(route("fd00::53", v6), 9000, 53, b"z"))
    for i, peer in enumerate((NVR, RESOLVER)):
        t.add(ts + 1000 + i * 1000, g.udp_frame(route(peer, v4), 9001 + i, 9999, b"z"))


def test_unmanaged_device_once_for_a_dual_stack_camera(tmp_path: Path) -> None:
    t = g.Trace()
    dual_stack_camera(t, "10.20.0.78", "fd00::78", 1_000_000)
    config = BASE_CONFIG + "site:\n  local_nets: [10.0.0.0/8, 'fd00::/8']\n"
    alerts = replay(tmp_path, t, config)
    assert rules_of(alerts) == ["unmanaged_device"]
    assert alerts[0]["device"] == "fd00::78"  # its first address names the one device


def test_an_inventory_camera_by_ip_is_managed_at_its_ipv6_address(tmp_path: Path) -> None:
    t = g.Trace()
    s = g.TcpSession(route(NVR), 41000, 554)  # the listed address: a flow that lasts
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    t.add(ts + 1000, g.udp_frame(route("fd00::53", "fd00::11"), 9000, 53, b"z"))
    t.add_burst(ts + 40_000_000, s.close(True), 1000)  # the IPv6 flow ended long before
    config = BASE_CONFIG + "site:\n  local_nets: [10.0.0.0/8, 'fd00::/8']\n"
    assert "unmanaged_device" not in rules_of(replay(tmp_path, t, config))


def test_cloud_registration_by_name_learned_through_a_public_resolver(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, "8.8.8.8", "litedev.hik-connect.com", FOREIGN, 1_000_000)
    s = g.TcpSession(route(FOREIGN), 41000, 443)  # TLS without SNI: only the DNS name
    ts = t.add_burst(60_000_000, s.handshake(), 1000)  # a minute later, a new flow
    t.add_burst(ts, s.send(True, b"\x17\x03\x03" + bytes(100)), 1000)
    alerts = replay(tmp_path, t)
    assert rules_of(alerts) == ["cloud_registration", "rogue_dns", "unexpected_egress"]
    cloud = next(a for a in alerts if a["rule"] == "cloud_registration")
    assert cloud["severity"] == "high" and cloud["peer_name"] == "litedev.hik-connect.com"
    assert cloud["evidence"]["endpoint"] and cloud["evidence"]["names_seen"] == [
        "litedev.hik-connect.com"
    ]


def test_cloud_registration_by_payload_magic(tmp_path: Path) -> None:
    t = g.Trace()
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?><PPVSPMessage><Version>4.0</Version>"
        b"<Method>REGISTER</Method><Params><DeviceID>x</DeviceID></Params></PPVSPMessage>"
    )
    t.add(1_000_000, g.udp_frame(route(FOREIGN), 40001, 7660, body))
    cloud = next(a for a in replay(tmp_path, t) if a["rule"] == "cloud_registration")
    assert cloud["evidence"]["payload_signatures"] == ["hik-ehome-register"]


def test_allowed_cloud_is_quiet(tmp_path: Path) -> None:
    t = g.Trace()
    dns_exchange(t, RESOLVER, "litedev.hik-connect.com", FOREIGN, 1_000_000)
    tcp_session(t, route(FOREIGN), 8666, 2_000_000)
    config = BASE_CONFIG.replace('["*.allowed.example"]', '["*.hik-connect.com"]')
    assert replay(tmp_path, t, config) == []


def test_stun_is_nat_traversal(tmp_path: Path) -> None:
    t = g.Trace()
    req = g.stun_message(0x0001, bytes(range(12)))
    t.add(1_000_000, g.udp_frame(route(FOREIGN), 40002, 3478, req))
    assert "nat_traversal" in rules_of(replay(tmp_path, t))


def test_upnp_add_port_mapping(tmp_path: Path) -> None:
    t = g.Trace()
    router = g.Route.of(CAM_MAC, CAM, GW_MAC, "10.20.0.1")
    soap = g.http_request(
        "POST",
        "/ctl/IPConn",
        [
            ("Host", "10.20.0.1:5000"),
            ("SOAPAction", '"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"'),
        ],
        b"<s:Envelope><u:AddPortMapping/></s:Envelope>",
    )
    s = g.TcpSession(router, 42000, 5000)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    t.add_burst(ts, s.send(True, soap), 1000)
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "upnp_port_mapping" and alert["direction"] == "local"


def test_outbound_stream_above_threshold_only(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(600):  # 600 x 1,200 B over 30 s to a public peer: 720 kB
        t.add(1_000_000 + i * 50_000, g.udp_frame(route(FOREIGN), 40010, 51616, b"v" * 1200))
    for i in range(100):  # 120 kB: below the 500 kB threshold
        t.add(1_000_000 + i * 50_000, g.udp_frame(route(CLOUD), 40011, 51617, b"v" * 1200))
    alerts = [a for a in replay(tmp_path, t) if a["rule"] == "outbound_stream"]
    assert len(alerts) == 1 and alerts[0]["peer_ip"] == FOREIGN
    assert alerts[0]["severity"] == "critical" and alerts[0]["evidence"]["bytes_up"] == 720_000


def _flows_to(t: g.Trace, peers: list[tuple[str, int]]) -> None:
    for i, (peer, at_s) in enumerate(peers):
        t.add(at_s * 1_000_000, g.udp_frame(route(peer), 41000 + i, 50500, b"q"))


NEW_DEST_CONFIG = "cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\nlearning: {period_s: 10}\n"


def test_new_destination_after_learning_alerts_once(tmp_path: Path) -> None:
    t = g.Trace()
    _flows_to(t, [(FOREIGN, 1), (CLOUD, 100), (CLOUD, 200), (FOREIGN, 300)])
    alerts = [a for a in replay(tmp_path, t, NEW_DEST_CONFIG) if a["rule"] == "new_destination"]
    assert len(alerts) == 1
    assert alerts[0]["evidence"]["destination"] == "175.16.199.0/24"


def test_new_destination_baseline_survives_a_restart(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\nlearning: {period_s: 50}\n")
    state = tmp_path / "state"
    first, second = g.Trace(), g.Trace()
    _flows_to(first, [(FOREIGN, 1)])  # learned during the period
    _flows_to(second, [(FOREIGN, 100), (CLOUD, 110)])  # after it, in a new run
    found = []
    for i, trace in enumerate((first, second)):
        pcap, out = tmp_path / f"{i}.pcap", tmp_path / f"{i}.jsonl"
        trace.write(pcap)
        run_replay([pcap], Config.load(cfg), alerts_out=out, geo=TableGeo(), state_dir=state)
        found += [r for x in out.read_text().splitlines() for r in findings(json.loads(x))]
    new = [a["peer_ip"] for a in found if a["rule"] == "new_destination"]
    assert new == [CLOUD]
    assert (state / "baseline.sqlite").is_file()


def test_audio_rtp_without_rtsp(tmp_path: Path) -> None:
    t = g.Trace()
    for i in range(10):
        t.add(
            1_000_000 + i * 20_000,
            g.udp_frame(route(NVR), 40020, 40030, g.rtp(i, i * 160, 9, bytes(160), payload_type=8)),
        )
    (alert,) = replay(tmp_path, t)
    assert alert["rule"] == "audio_stream" and alert["evidence"]["rtp_audio_codec"] == "PCMA"
    assert alert["direction"] == "local" and alert["severity"] == "medium"


def test_layer2_sadp_response_makes_the_sender_a_camera(tmp_path: Path) -> None:
    t = g.Trace()
    header = bytes([0x21, 0x01]) + bytes(36)  # SADP v1 response (packet type 1)
    t.add(1_000_000, g.ethernet(b"\xff" * 6, g.mac_bytes(GENERIC_MAC), 0x8033, header))
    tcp_session(t, route(FOREIGN, "10.20.0.78", GENERIC_MAC), 50123, 2_000_000)
    (alert,) = replay(tmp_path, t, "")
    assert alert["rule"] == "unexpected_egress" and alert["device"] == "10.20.0.78"
    assert alert["vendor"] == "Hikvision"


def test_layer2_sadp_request_does_not(tmp_path: Path) -> None:
    t = g.Trace()
    header = bytes([0x21, 0x02]) + bytes(36)  # a request: the SADP tool on a PC
    t.add(1_000_000, g.ethernet(b"\xff" * 6, g.mac_bytes(GENERIC_MAC), 0x8033, header))
    tcp_session(t, route(FOREIGN, "10.20.0.78", GENERIC_MAC), 50123, 2_000_000)
    assert replay(tmp_path, t, "") == []


def test_vendor_device_protocol_identifies_a_camera_without_oui(tmp_path: Path) -> None:
    t = g.Trace()
    body = b'{"DssProtocol":{"MessageType":"MSG_DEV_REGISTER_REQ","SerialNumber":"x"}}'
    req = g.http_request("POST", "/", [("Host", "access-dss.secu100.net")], body)
    s = g.TcpSession(route(FOREIGN, "10.30.0.14", GENERIC_MAC), 43000, 8765)
    ts = t.add_burst(1_000_000, s.handshake(), 1000)
    t.add_burst(ts, s.send(True, req), 1000)
    alerts = replay(tmp_path, t, "")  # zero-config; a Xiongmai has no IEEE prefix
    assert rules_of(alerts) == ["cloud_registration", "unexpected_egress"]
    assert {a["vendor"] for a in alerts} == {"Xiongmai"}
