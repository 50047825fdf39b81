"""netwatch.testing.pcapgen builds frames that dpkt parses with valid checksums; the demo and
benchmark generators built on it are deterministic and produce the promised mix."""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.testing import pcapgen as pg
from netwatch.testing.pcapgen import DnsRecord, DnsType, Route, TcpFlag, TcpSession, Trace
from tests.profile import examples

REPO = Path(__file__).resolve().parents[2]
DEMO_GEN = REPO / "pcaps" / "demo" / "gen_demo.py"
DEMO_PCAP = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
SITE_GEN = REPO / "bench" / "gen_site_pcap.py"
OUI_TSV = REPO.parent / "shared" / "research" / "covered_vendor_oui.tsv"

ROUTES = {
    "v4": Route.of("bc:ad:28:00:00:01", "10.20.0.11", "02:00:5e:00:00:01", "175.16.199.1"),
    "v4-dot1q": Route.of(
        "bc:ad:28:00:00:01", "10.20.0.11", "02:00:5e:00:00:01", "81.2.69.142", (20,)
    ),
    "v4-qinq": Route.of(
        "b4:4c:3b:00:00:02", "10.30.0.14", "02:00:5e:00:00:01", "89.160.20.112", (100, 30)
    ),
    "v6": Route.of("bc:ad:28:00:00:02", "fd00:20::12", "02:00:5e:00:00:01", "2001:218::1"),
    "v6-dot1q": Route.of(
        "bc:ad:28:00:00:02", "fd00:20::12", "02:00:5e:00:00:01", "2001:218::1", (10,)
    ),
}
settings.register_profile("pcapgen", max_examples=examples(60), deadline=None)


def ip_layer(frame: bytes) -> dpkt.ip.IP | dpkt.ip6.IP6:
    """The IP packet of a frame built by pcapgen (asserts it is one)."""
    ip = dpkt.ethernet.Ethernet(frame).data
    assert isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6)
    return ip


def assert_checksums_valid(frame: bytes) -> None:
    """IPv4 header and TCP/UDP/ICMP checksums are correct, by two independent computations."""
    ip = ip_layer(frame)
    raw = bytes(ip)
    if isinstance(ip, dpkt.ip.IP):
        assert dpkt.in_cksum(raw[: ip.hl * 4]) == 0
        header_len = ip.hl * 4
    else:
        header_len = 40
    proto = ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt
    l4 = raw[header_len:]
    if proto == pg.IPPROTO_ICMP:
        assert dpkt.in_cksum(l4) == 0
        return
    assert pg.internet_checksum(pg.pseudo_header(ip.src, ip.dst, proto, len(l4)) + l4) == 0
    sent = ip.data.sum  # dpkt recomputes a zeroed checksum on serialisation
    ip.data.sum = 0
    if isinstance(ip, dpkt.ip.IP):
        ip.sum = 0
    again = (dpkt.ip.IP if isinstance(ip, dpkt.ip.IP) else dpkt.ip6.IP6)(bytes(ip))
    assert again.data.sum == sent or (sent == 0xFFFF and again.data.sum == 0)


def session_frames(route: Route) -> list[bytes]:
    s = TcpSession(route, 40000, 443, client_isn=0xFFFF_FF00, server_isn=77)
    hello = pg.tls_client_hello("dev.ys7.com", client_random=bytes(range(32)))
    return [
        *s.handshake(),
        *s.send(True, hello),
        *s.send(False, bytes(4000)),
        s.ack(True),
        *s.close(),
    ]


# --- checksums and layers -------------------------------------------------------------------


@settings(settings.get_profile("pcapgen"))
@given(st.binary(max_size=300))
def test_internet_checksum_agrees_with_dpkt(data: bytes) -> None:
    assert pg.internet_checksum(data) == dpkt.in_cksum(data)


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_every_layer_parses_with_valid_checksums(name: str) -> None:
    route = ROUTES[name]
    frames = [
        *session_frames(route),
        pg.udp_frame(route, 5000, 53, pg.dns_query(7, "dev.ys7.com")),
        pg.udp_frame(route, 5000, 6000, b""),
        pg.icmp_echo_frame(route, 1, 2, b"ping"),
        pg.icmp_echo_frame(route.reverse(), 1, 2, b"ping", reply=True),
    ]
    for frame in frames:
        assert_checksums_valid(frame)
        assert len(frame) >= pg.ETH_MIN_FRAME
        eth = dpkt.ethernet.Ethernet(frame)
        assert [tag.id for tag in getattr(eth, "vlan_tags", [])] == list(route.vlans)


def test_qinq_uses_802_1ad_outer_and_802_1q_inner_tpid() -> None:
    frame = pg.udp_frame(ROUTES["v4-qinq"], 1, 2, b"x")
    assert struct.unpack_from(">HHHH", frame, 12) == (pg.ETH_P_8021AD, 100, pg.ETH_P_8021Q, 30)
    assert struct.unpack_from(">H", frame, 20)[0] == pg.ETH_P_IPV4
    with pytest.raises(ValueError, match="VLAN"):
        pg.vlan_tags((1, 2, 3))


def test_tcp_session_sequence_numbers_flags_and_close() -> None:
    s = TcpSession(ROUTES["v4"], 40000, 443, client_isn=0xFFFF_FFFF, server_isn=500)
    frames = [*s.handshake(), *s.send(True, b"a" * 10), *s.send(False, b"b" * 3000), *s.close()]
    tcp = [ip_layer(f).data for f in frames]
    flags = [t.flags for t in tcp]
    syn, fin, ack, psh = TcpFlag.SYN, TcpFlag.FIN, TcpFlag.ACK, TcpFlag.PSH
    assert flags == [syn, syn | ack, ack, ack | psh, ack, ack, ack | psh, fin | ack, fin | ack, ack]
    assert (tcp[0].seq, tcp[1].seq, tcp[1].ack) == (0xFFFF_FFFF, 500, 0)  # SYN wraps to 0
    assert (tcp[2].seq, tcp[2].ack, tcp[3].seq) == (0, 501, 0)
    assert [len(t.data) for t in tcp[4:7]] == [1448, 1448, 104]
    assert [t.seq for t in tcp[4:7]] == [501, 1949, 3397]
    assert tcp[4].ack == 10
    assert (tcp[7].seq, tcp[7].ack) == (10, 3501)  # client FIN after all server data
    assert (tcp[8].seq, tcp[8].ack) == (3501, 11)  # the FIN consumed one sequence number
    assert (tcp[9].seq, tcp[9].ack) == (11, 3502)


def test_ipv4_fragments_reassemble_to_the_udp_datagram() -> None:
    route, payload = ROUTES["v4-dot1q"], bytes(range(256)) * 16
    frames = pg.udp_fragment_frames(route, 5004, 5005, payload, ident=0x1234, mtu=1500)
    ips = [ip_layer(f) for f in frames]
    assert len(ips) == 3
    assert all(dpkt.in_cksum(bytes(ip)[:20]) == 0 for ip in ips)
    assert [(ip.mf, ip.df, ip.offset * 8) for ip in ips] == [(1, 0, 0), (1, 0, 1480), (0, 0, 2960)]
    datagram = b"".join(bytes(ip)[20:] for ip in ips)
    assert datagram == pg.udp_datagram(route.src_ip, route.dst_ip, 5004, 5005, payload)


def test_arp_frames() -> None:
    request = dpkt.ethernet.Ethernet(
        pg.arp_frame(1, "bc:ad:28:00:00:01", "10.20.0.11", "10.20.0.1")
    )
    assert request.dst == pg.BROADCAST_MAC
    assert (request.arp.op, request.arp.tpa) == (1, pg.ip_bytes("10.20.0.1"))
    reply_frame = pg.arp_frame(
        2, "02:00:5e:00:00:01", "10.20.0.1", "10.20.0.11", target_mac="bc:ad:28:00:00:01"
    )
    reply = dpkt.ethernet.Ethernet(reply_frame)
    assert (reply.dst, reply.arp.op, reply.arp.sha) == (
        pg.mac_bytes("bc:ad:28:00:00:01"),
        2,
        pg.mac_bytes("02:00:5e:00:00:01"),
    )


# --- fast templates --------------------------------------------------------------------------


@settings(settings.get_profile("pcapgen"))
@given(
    st.sampled_from(sorted(ROUTES)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
    st.binary(max_size=1448),
)
def test_tcp_template_renders_the_same_bytes_as_the_builder(
    name: str, seq: int, ack: int, ip_id: int, payload: bytes
) -> None:
    route = ROUTES[name]
    template = TcpSession(route, 443, 40000).template(True, payload)
    built = pg.tcp_frame(
        route, 443, 40000, seq=seq, ack=ack, flags=TcpFlag.ACK, payload=payload, ident=ip_id
    )
    assert template.render(ip_id, (seq, ack)) == built


@settings(settings.get_profile("pcapgen"))
@given(
    st.sampled_from(sorted(ROUTES)),
    st.tuples(st.booleans(), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)),
    st.integers(0, 2**16 - 1),
    st.binary(max_size=1200),
)
def test_rtp_template_renders_the_same_bytes_as_the_builder(
    name: str, rtp_fields: tuple[bool, int, int], ip_id: int, payload: bytes
) -> None:
    marker, seq, ts = rtp_fields
    route = ROUTES[name]
    template = pg.FrameTemplate.of(
        pg.udp_frame(route, 8000, 40000, pg.rtp(0, 0, 0xABCD, payload)), 9, "BHI"
    )
    rendered = template.render(ip_id, ((0x80 if marker else 0) | 96, seq, ts))
    built = pg.udp_frame(
        route, 8000, 40000, pg.rtp(seq, ts, 0xABCD, payload, marker=marker), ident=ip_id
    )
    assert rendered == built
    rtp = dpkt.rtp.RTP(ip_layer(rendered).data.data)
    assert (rtp.version, rtp.m, rtp.pt, rtp.seq, rtp.ts) == (2, int(marker), 96, seq, ts)


def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff() -> None:
    route, prefix = ROUTES["v4"], b"camera"
    probe = pg.udp_datagram(route.src_ip, route.dst_ip, 9, 9, prefix + bytes(2))
    pseudo = pg.pseudo_header(route.src_ip, route.dst_ip, pg.IPPROTO_UDP, len(probe))
    payload = prefix + pg.internet_checksum(pseudo + probe[:6] + bytes(2) + probe[8:]).to_bytes(
        2, "big"
    )
    frame = pg.udp_frame(route, 9, 9, payload)
    assert ip_layer(frame).data.sum == 0xFFFF
    assert_checksums_valid(frame)
    template = pg.FrameTemplate.of(pg.udp_frame(route, 9, 9, bytes(8)), 8, "II")
    assert template.render(0, (int.from_bytes(payload[:4]), int.from_bytes(payload[4:]))) == frame


def test_template_rejects_a_patch_over_the_checksum() -> None:
    frame = pg.udp_frame(ROUTES["v4"], 1, 2, bytes(20))
    with pytest.raises(ValueError, match="checksum"):
        pg.FrameTemplate.of(frame, 4, "I")


# --- application payloads ----------------------------------------------------------------------


def sni_of(record: bytes) -> str:
    """Independent parse of a ClientHello record down to the server_name extension."""
    assert record[0] == 22 and record[5] == 1
    hello = record[9:]
    pos = 2 + 32
    pos += 1 + hello[pos]  # session id
    pos += 2 + struct.unpack_from(">H", hello, pos)[0]  # cipher suites
    pos += 1 + hello[pos]  # compression methods
    end = pos + 2 + struct.unpack_from(">H", hello, pos)[0]
    pos += 2
    while pos < end:
        ext_type, length = struct.unpack_from(">HH", hello, pos)
        if ext_type == 0:
            name_len = struct.unpack_from(">H", hello, pos + 7)[0]
            return hello[pos + 9 : pos + 9 + name_len].decode("ascii")
        pos += 4 + length
    raise AssertionError("no server_name extension")


def test_tls_client_hello_sni_is_recoverable() -> None:
    record = pg.tls_client_hello(
        "litedev.hik-connect.com", client_random=bytes(32), session_id=bytes(32)
    )
    assert sni_of(record) == "litedev.hik-connect.com"
    hello = dpkt.ssl.TLSHandshake(dpkt.ssl.TLSRecord(record).data).data
    assert isinstance(hello, dpkt.ssl.TLSClientHello)
    extensions = dict(hello.extensions)
    assert extensions[0][5:].decode() == "litedev.hik-connect.com"
    assert {0, 10, 13, 16, 43, 51} <= set(extensions)
    # inside a TCP segment on the wire
    s = TcpSession(ROUTES["v6"], 40000, 443)
    s.handshake()
    segment = ip_layer(s.send(True, record)[0]).data
    assert sni_of(segment.data) == "litedev.hik-connect.com"


def test_tls_server_hello_is_a_valid_record_pair() -> None:
    data = pg.tls_server_hello(server_random=bytes(range(32)))
    records, used = dpkt.ssl.tls_multi_factory(data)
    assert used == len(data)
    assert [r.type for r in records] == [22, 20]
    assert isinstance(dpkt.ssl.TLSHandshake(records[0].data).data, dpkt.ssl.TLSServerHello)


def test_dns_answers_roundtrip_through_dpkt() -> None:
    answers = [
        DnsRecord("dev.hik-connect.com", DnsType.CNAME, "lb.example.net"),
        DnsRecord("lb.example.net", DnsType.A, "175.16.199.1", ttl=60),
        DnsRecord("lb.example.net", DnsType.AAAA, "2001:218::1"),
    ]
    msg = dpkt.dns.DNS(pg.dns_response(0xBEEF, "dev.hik-connect.com", DnsType.A, answers))
    assert (msg.id, msg.qr, msg.rcode, msg.qd[0].name) == (0xBEEF, 1, 0, "dev.hik-connect.com")
    assert [(rr.type, rr.name) for rr in msg.an] == [
        (5, "dev.hik-connect.com"),
        (1, "lb.example.net"),
        (28, "lb.example.net"),
    ]
    assert (msg.an[0].cname, msg.an[1].ip, msg.an[1].ttl) == (
        "lb.example.net",
        pg.ip_bytes("175.16.199.1"),
        60,
    )
    assert msg.an[2].ip6 == pg.ip_bytes("2001:218::1")
    query = dpkt.dns.DNS(pg.dns_query(1, "dev.ys7.com", DnsType.AAAA))
    assert (query.qr, query.rd, query.qd[0].type) == (0, 1, 28)


def test_rtsp_describe_reply_carries_sdp_with_audio() -> None:
    body = pg.sdp("10.20.0.12", session_id=1, audio=True)
    reply = pg.rtsp_response(2, [("Content-Type", "application/sdp")], body)
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[:2] == [b"RTSP/1.0 200 OK", b"CSeq: 2"]
    assert f"Content-Length: {len(body)}".encode() in head
    assert rest == body
    assert b"m=video 0 RTP/AVP 96" in body and b"m=audio 0 RTP/AVP 0" in body
    assert b"m=audio" not in pg.sdp("10.20.0.11", session_id=1)
    assert pg.rtsp_request("DESCRIBE", "rtsp://10.20.0.12/", 2).startswith(
        b"DESCRIBE rtsp://10.20.0.12/ RTSP/1.0\r\nCSeq: 2\r\n"
    )


def test_http_messages_parse_with_dpkt() -> None:
    request = dpkt.http.Request(
        pg.http_request("GET", "/ISAPI/System/deviceInfo", [("Host", "10.20.0.11")])
    )
    assert (request.method, request.uri, request.headers["host"]) == (
        "GET",
        "/ISAPI/System/deviceInfo",
        "10.20.0.11",
    )
    response = dpkt.http.Response(
        pg.http_response(200, "OK", [("Server", "App-webs/")], b"<html/>", version="HTTP/1.0")
    )
    assert (response.version, response.status, response.headers["server"], response.body) == (
        "1.0",
        "200",
        "App-webs/",
        b"<html/>",
    )


def test_rtcp_ntp_quic_and_inverted_stun_layouts() -> None:
    sr = pg.rtcp_sender_report(
        7, unix_us=1_768_467_600_000_000, rtp_timestamp=9, packets=3, octets=4, cname="cam1"
    )
    assert (sr[1], struct.unpack_from(">H", sr, 2)[0], len(sr) % 4) == (200, 6, 0)
    assert sr[28 + 1] == 202
    assert len(pg.rtcp_receiver_report(1, 7, highest_seq=5)) == 32
    ntp = pg.ntp_packet(3, transmit_us=1_768_467_600_000_000)
    assert (len(ntp), ntp[0] & 7, struct.unpack_from(">I", ntp, 40)[0]) == (
        48,
        3,
        1_768_467_600 + pg.NTP_UNIX_OFFSET_S,
    )
    initial = pg.quic_long_header(bytes(8), bytes(8), 0, bytes(100))
    assert initial[0] & 0xC0 == 0xC0 and initial[1:5] == b"\x00\x00\x00\x01"
    probe = pg.invert_bytes(pg.stun_message(1, bytes(12), pg.stun_attribute(0x8022, bytes(20))))
    assert len(probe) == 44 and probe[:8] == bytes.fromhex("fffeffe7deed5bbd")


# --- output --------------------------------------------------------------------------------------


def test_trace_writes_sorted_records_and_snaplen_keeps_wire_length(tmp_path: Path) -> None:
    trace = Trace()
    big = pg.udp_frame(ROUTES["v4"], 1, 2, bytes(1000))
    trace.add(2_500_000, big)
    trace.add(1_000_001, pg.udp_frame(ROUTES["v4"], 1, 2, b"first"))
    trace.add(2_500_000, pg.udp_frame(ROUTES["v4"], 1, 2, b"tie, added last"))
    path = tmp_path / "t.pcap"
    assert trace.write(path, snaplen=200) == sum(len(f) for _, f in trace.records())
    with path.open("rb") as stream:
        reader = dpkt.pcap.Reader(stream)
        assert (reader.snaplen, reader.datalink()) == (200, dpkt.pcap.DLT_EN10MB)
        stamps = [ts for ts, _ in reader]
    assert stamps == [1.000001, 2.5, 2.5]
    raw = path.read_bytes()
    second = 24 + 16 + struct.unpack_from("<I", raw, 24 + 8)[0]
    assert struct.unpack_from("<IIII", raw, second) == (2, 500_000, 200, len(big))


@settings(settings.get_profile("pcapgen"))
@given(
    st.lists(st.lists(st.integers(0, 200_000), max_size=40), max_size=12), st.integers(1, 50_000)
)
def test_merge_by_time_is_sorted_and_conserves_records(
    streams: list[list[int]], window: int
) -> None:
    sources = [
        [(ts, b"%d-%d" % (i, k)) for k, ts in enumerate(sorted(s))] for i, s in enumerate(streams)
    ]
    merged = list(pg.merge_by_time((iter(s) for s in sources), window_us=window))
    assert [ts for ts, _ in merged] == sorted(ts for s in sources for ts, _ in s)
    assert sorted(merged) == sorted(r for s in sources for r in s)


def test_fixture_ouis_are_in_the_registry_extract() -> None:
    if not OUI_TSV.exists():
        pytest.skip(f"{OUI_TSV} is absent (the OUI cross-check reads ../shared/research)")
    rows = [line.split("\t") for line in OUI_TSV.read_text().splitlines()[1:]]
    registry = {(row[0], row[1].lower()) for row in rows if len(row) > 1}
    assert all(("Hikvision", oui) in registry for oui in pg.HIKVISION_OUIS)
    assert all(("Dahua", oui) in registry for oui in pg.DAHUA_OUIS)


# --- the generators ----------------------------------------------------------------------------


def run(script: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    with path.open("rb") as stream:
        yield from dpkt.pcap.Reader(stream)


def is_arp(frame: bytes) -> bool:
    return frame[12:14] == b"\x08\x06" or frame[16:18] == b"\x08\x06"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "a.pcap"
    run(DEMO_GEN, "--out", str(path))
    return path


def test_demo_generation_is_deterministic(demo_copy: Path, tmp_path: Path) -> None:
    again = tmp_path / "b.pcap"
    run(DEMO_GEN, "--out", str(again), "--seed", "7")
    assert sha256(again) == sha256(demo_copy)
    other = tmp_path / "c.pcap"
    run(DEMO_GEN, "--out", str(other), "--seed", "8")
    assert sha256(other) != sha256(demo_copy)


def test_committed_demo_capture_matches_its_generator(demo_copy: Path) -> None:
    assert DEMO_PCAP.exists(), "run python pcaps/demo/gen_demo.py"
    assert sha256(DEMO_PCAP) == sha256(demo_copy), "regenerate with python pcaps/demo/gen_demo.py"


def test_demo_capture_contains_the_promised_behaviours(demo_copy: Path) -> None:
    assert demo_copy.stat().st_size < 2_000_000
    packets = list(read_pcap(demo_copy))
    assert 5_000 <= len(packets) <= 20_000
    assert [ts for ts, _ in packets] == sorted(ts for ts, _ in packets)
    blob = b"".join(frame for _, frame in packets)
    for needle in (
        b"\x07litedev\x0bhik-connect\x03com",
        b"\x03dev\x03ys7\x03com",
        b"\x03www\x0ceasy4ipcloud\x03com",
        b"\x07pub-cfg\x07secu100\x03net",
        b"Server: App-webs/",
        b"m=audio 0 RTP/AVP 0",
        b"DHPOST /online/p2psrv/",
        bytes.fromhex("fffeffe7deed5bbd"),
    ):
        assert needle in blob, needle
    ip_frames = [frame for _, frame in packets if not is_arp(frame)]
    ips = [ip_layer(frame) for frame in ip_frames]
    assert any(isinstance(ip, dpkt.ip6.IP6) for ip in ips)
    assert any(frame[12:16] == b"\x81\x00\x00\x1e" for _, frame in packets)  # VLAN 30
    assert any(ip.dst == pg.ip_bytes("8.8.8.8") for ip in ips)
    for frame in ip_frames[::10]:
        assert_checksums_valid(frame)


def load_site_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_site_pcap", SITE_GEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_site_plan_counts_match_what_each_flow_renders() -> None:
    gen = load_site_generator()
    flows = gen.plan(gen.Params(12_000, 3, 10_000_000))
    assert sum(p.packets for p in flows) == 12_000
    for p in flows:
        records = list(p.source.frames())
        assert len(records) == p.packets, p.kind
        assert [ts for ts, _ in records] == sorted(ts for ts, _ in records), p.kind


def test_site_capture_has_exact_count_and_the_performance_mix(tmp_path: Path) -> None:
    out = tmp_path / "site.pcap"
    summary = run(SITE_GEN, str(out), "--packets", "20000", "--seed", "5")
    assert "20,000 packets" in summary
    packets = list(read_pcap(out))
    assert len(packets) == 20_000
    stamps = [ts for ts, _ in packets]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] <= 10.0
    tagged = sum(frame[12:14] in (b"\x81\x00", b"\x88\xa8") for _, frame in packets)
    assert abs(tagged / 20_000 - 0.57) < 0.02
    answered: set[bytes] = set()
    syn_to_known = syn_total = ipv6 = 0
    for _, frame in packets:
        ip = dpkt.ethernet.Ethernet(frame).data
        ipv6 += isinstance(ip, dpkt.ip6.IP6)
        if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
            continue
        l4 = ip.data
        if isinstance(l4, dpkt.udp.UDP) and l4.sport == 53:
            answered |= {
                rr.ip if rr.type == 1 else rr.ip6
                for rr in dpkt.dns.DNS(l4.data).an
                if rr.type in (1, 28)
            }
        elif isinstance(l4, dpkt.tcp.TCP) and l4.dport == 443 and l4.flags == TcpFlag.SYN:
            syn_total += 1
            syn_to_known += ip.dst in answered
    assert abs(ipv6 / 20_000 - 0.15) < 0.02
    assert syn_total > 20 and syn_to_known == syn_total
    for _, frame in packets[::97]:
        if not is_arp(frame):
            assert_checksums_valid(frame)
    again = tmp_path / "again.pcap"
    run(SITE_GEN, str(again), "--packets", "20000", "--seed", "5")
    assert sha256(again) == sha256(out)
