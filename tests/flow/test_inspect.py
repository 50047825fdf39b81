"""Tests for the deep-inspection hand-off: what reaches the parsers and what lands on flows."""

from __future__ import annotations

import struct

from netwatch.decode.frames import Decoder
from netwatch.enrich.names import PassiveDns
from netwatch.flow.ids import UidSource
from netwatch.flow.inspect import Inspector
from netwatch.flow.table import EndReason, Flow, FlowSettings, FlowTable
from netwatch.pipeline import banner_vendor_of
from netwatch.signatures.match import SignatureMatcher
from netwatch.testing import pcapgen as g

NVR = g.Route.of("02:4e:56:00:00:0a", "10.20.0.10", "bc:ad:28:00:00:01", "10.20.0.11")
DNS = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "02:00:00:00:00:53", "10.20.0.53")


def run(frames: list[bytes], max_packets: int = 8) -> tuple[list[Flow], Inspector]:
    names = PassiveDns()
    inspector = Inspector(names, max_hello_bytes=16384)
    ended: list[Flow] = []

    def on_end(f: Flow, reason: EndReason) -> None:
        ended.append(f)

    table = FlowTable(
        FlowSettings(max_payload_packets=max_packets),
        on_end,
        inspect=inspector.payload,
        uids=UidSource(1),
    )
    decoder = Decoder()
    for i, frame in enumerate(frames):
        d = decoder.decode(1, frame, len(frame), 1.0 + i / 1000)
        assert d is not None
        table.packet(1.0 + i / 1000, d)
    table.flush()
    return ended, inspector


def test_rtsp_sdp_body_in_a_later_segment_is_joined() -> None:
    s = g.TcpSession(NVR, 40000, 554)
    body = g.sdp("10.20.0.11", session_id=1, audio=True)
    reply = g.rtsp_response(
        2, [("Server", "Dahua Rtsp Server"), ("Content-Type", "application/sdp")], body
    )
    head, rest = reply[: reply.index(b"\r\n\r\n") + 4], reply[reply.index(b"\r\n\r\n") + 4 :]
    frames = [
        *s.handshake(),
        *s.send(True, g.rtsp_request("DESCRIBE", "rtsp://10.20.0.11/", 2)),
        s.segment(False, 0x18, head),
        s.segment(False, 0x18, rest),
    ]
    (flow,), _ = run(frames)
    assert flow.app is not None
    assert flow.app["rtsp_media"] == ("video", "audio")
    assert flow.app["server"] == "Dahua Rtsp Server"
    assert flow.app["service"] == ["rtsp"]


def test_client_hello_over_three_segments() -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "00:11:22:33:44:55", "175.16.199.1")
    s = g.TcpSession(route, 50000, 443)
    hello = g.tls_client_hello("litedev.hik-connect.com", client_random=bytes(range(32)))
    parts = [hello[:7], hello[7:100], hello[100:]]
    (flow,), inspector = run([*s.handshake(), *(s.segment(True, 0x18, p) for p in parts)])
    assert flow.app is not None and flow.app["sni"] == "litedev.hik-connect.com"
    assert inspector.parsed == {"tls_client_hello": 1}
    assert "_pending_o" not in flow.app


def test_dns_over_tcp_split_message_feeds_the_cache() -> None:
    s = g.TcpSession(DNS, 40001, 53)
    answer = g.dns_response(
        9,
        "dev.ys7.com",
        g.DnsType.A,
        [g.DnsRecord("dev.ys7.com", g.DnsType.A, "111.235.160.1", 600)],
    )
    framed = struct.pack("!H", len(answer)) + answer
    query = g.dns_query(9, "dev.ys7.com")
    frames = [
        *s.handshake(),
        *s.send(True, struct.pack("!H", len(query)) + query),
        s.segment(False, 0x18, framed[:20]),
        s.segment(False, 0x18, framed[20:]),
    ]
    _, inspector = run(frames)
    assert inspector.names.lookup(g.ip_bytes("111.235.160.1"), 2.0) == "dev.ys7.com"
    assert inspector.parsed["dns"] == 2


def test_budget_limits_what_reaches_the_parsers() -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "02:4e:56:00:00:0a", "10.20.0.10")
    frames = [g.udp_frame(route, 5000, 53, g.dns_query(i, f"n{i}.example")) for i in range(20)]
    (flow,), inspector = run(frames, max_packets=3)
    assert inspector.parsed["dns"] == 3 and flow.o_pkts == 20


def test_unknown_tcp_payload_is_not_buffered() -> None:
    s = g.TcpSession(NVR, 40002, 9000)
    (flow,), inspector = run([*s.handshake(), *s.send(True, b"\x00\x01binary protocol")])
    assert inspector.parsed == {}
    assert flow.app is None


def test_an_rtsp_options_request_is_not_taken_for_http() -> None:
    """``OPTIONS `` starts HTTP and RTSP requests alike: HTTP claims it first by magic,
    passes on a request line that is not HTTP, and RTSP reads it."""
    s = g.TcpSession(NVR, 40002, 554)
    frames = [
        *s.handshake(),
        *s.send(True, g.rtsp_request("OPTIONS", "rtsp://10.20.0.11:554/", 1)),
        *s.send(False, g.rtsp_response(1, [("Server", "Rtsp Server/3.0")])),
    ]
    (flow,), inspector = run(frames)
    assert flow.app is not None
    assert flow.app["service"] == ["rtsp"]
    assert "http_method" not in flow.app
    assert inspector.parsed.get("http_request", 0) == 0
    assert inspector.parsed["rtsp"] == 2


def test_an_http_options_request_stays_http() -> None:
    s = g.TcpSession(NVR, 40003, 80)
    request = b"OPTIONS * HTTP/1.1\r\nHost: 10.20.0.11\r\n\r\n"
    frames = [*s.handshake(), *s.send(True, request)]
    (flow,), inspector = run(frames)
    assert flow.app is not None
    assert (flow.app["service"], flow.app["http_method"]) == (["http"], "OPTIONS")
    assert inspector.parsed.get("rtsp", 0) == 0


def test_an_rtsp_401_realm_names_the_camera_maker() -> None:
    """A camera that answers DESCRIBE with 401 and its realm is recognised by the realm."""
    seen: list[tuple[bytes, str | None, str]] = []
    s = g.TcpSession(NVR, 40004, 554)
    frames = [
        *s.handshake(),
        *s.send(True, g.rtsp_request("DESCRIBE", "rtsp://10.20.0.11:554/stream1", 2)),
        *s.send(
            False,
            g.rtsp_response(
                2,
                [("WWW-Authenticate", 'Digest realm="TP-Link IP-Camera", nonce="abc"')],
                status=401,
            ),
        ),
    ]
    names = PassiveDns()
    inspector = Inspector(
        names,
        on_camera=lambda host, vendor, how, ident: seen.append((host, vendor, how)),
        banners=banner_vendor_of(SignatureMatcher.load()),
    )
    table = FlowTable(FlowSettings(), lambda f, r: None, inspect=inspector.payload)
    decoder = Decoder()
    for i, frame in enumerate(frames):
        d = decoder.decode(1, frame, len(frame), 1.0 + i / 1000)
        assert d is not None
        table.packet(1.0 + i / 1000, d)
    assert seen == [(g.ip_bytes("10.20.0.11"), "TP-Link", "banner:www_authenticate")]


# -- Zeek's service semantics: confirmation needs what Zeek's analyzers need -----------------

GET = b"GET /index.html HTTP/1.1\r\nHost: 10.20.0.11\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _services(frames: list[bytes]) -> list[str]:
    (flow,), _ = run(frames)
    return list((flow.app or {}).get("service", []))


def test_http_request_alone_confirms_only_on_an_http_port() -> None:
    on_80, on_9000 = g.TcpSession(NVR, 40010, 80), g.TcpSession(NVR, 40011, 9000)
    assert _services([*on_80.handshake(), *on_80.send(True, GET)]) == ["http"]
    assert _services([*on_9000.handshake(), *on_9000.send(True, GET)]) == []
    both = [*on_9000.handshake(), *on_9000.send(True, GET), *on_9000.send(False, OK)]
    assert _services(both) == ["http"]


def test_a_lone_mid_stream_request_is_not_http() -> None:
    """No SYN seen: Zeek's HTTP analyzer ignores a partial connection's contents."""
    s = g.TcpSession(NVR, 40012, 80)
    assert _services([s.segment(True, 0x18, GET), s.segment(False, 0x18, OK)]) == []


def test_a_request_answered_by_another_protocol_is_not_http() -> None:
    s = g.TcpSession(NVR, 40013, 80)
    frames = [*s.handshake(), *s.send(True, GET), *s.send(False, b"SSH-2.0-OpenSSH_9.6\r\n")]
    assert _services(frames) == []


def test_a_tls_client_answered_in_plain_text_is_not_ssl() -> None:
    s = g.TcpSession(NVR, 40014, 443)
    hello = g.tls_client_hello("cam.example", client_random=bytes(32))
    frames = [*s.handshake(), *s.send(True, hello), *s.send(False, OK)]
    assert _services(frames) == []
    tls_reply = b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"
    assert _services([*s.handshake(), *s.send(True, hello), *s.send(False, tls_reply)]) == ["ssl"]


def test_a_connect_tunnel_is_recognised_afresh() -> None:
    """Zeek's http-connect baselines: TLS through a proxy is ``http,ssl``."""
    s = g.TcpSession(NVR, 40015, 3128)
    hello = g.tls_client_hello("cam.example", client_random=bytes(32))
    frames = [
        *s.handshake(),
        *s.send(True, b"CONNECT cam.example:443 HTTP/1.1\r\nHost: cam.example:443\r\n\r\n"),
        *s.send(False, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        *s.send(True, hello),
        *s.send(False, b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"),
    ]
    (flow,), _ = run(frames)
    assert flow.app is not None
    assert (flow.app["service"], flow.app["sni"]) == (["http", "ssl"], "cam.example")


def test_a_client_hello_seen_mid_connection_keeps_its_sni_but_is_not_ssl() -> None:
    """Zeek's SSL analyzer ignores partial connections; the SNI still names the server."""
    s = g.TcpSession(NVR, 40016, 443)
    hello = g.tls_client_hello("cam.example", client_random=bytes(32))
    (flow,), _ = run([s.segment(True, 0x18, hello)])
    assert flow.app is not None
    assert flow.app["sni"] == "cam.example" and "service" not in flow.app


def test_an_sslv2_client_hello_is_ssl_on_an_ssl_port_only() -> None:
    challenge, specs = bytes(16), b"\x01\x00\x80\x07\x00\xc0"
    body = b"\x01\x03\x01" + b"\x00\x06\x00\x00\x00\x10" + specs + challenge
    hello = bytes((0x80, len(body))) + body
    v2_reply = b"\x80\x10\x04" + bytes(15)
    on_443, on_4443 = g.TcpSession(NVR, 40017, 443), g.TcpSession(NVR, 40018, 4443)
    assert _services(
        [*on_443.handshake(), *on_443.send(True, hello), *on_443.send(False, v2_reply)]
    ) == ["ssl"]
    assert _services([*on_4443.handshake(), *on_4443.send(True, hello)]) == []
