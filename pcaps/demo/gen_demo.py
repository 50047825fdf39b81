"""Generate camera-site-demo.pcap: a small synthetic camera site that misbehaves on purpose.

Usage: python pcaps/demo/gen_demo.py [--out PATH] [--seed N]
(default: camera-site-demo.pcap beside this script, seed 7; same seed, same bytes).

One minute of traffic on a mirror port: four cameras (two Hikvision MACs bc:ad:28:..., one Dahua
b4:4c:3b:..., one with a locally administered MAC = unknown vendor, on tagged VLAN 30), one NVR,
a local DNS resolver and NTP server. Benign: RTSP/RTP/RTCP from every camera to the NVR, NTP,
local DNS, ARP, ICMP echo. Suspicious (see README.md beside this file for the expected alerts):
Hik-Connect/EZVIZ cloud contact by DNS then TCP 8666 and TLS with SNI (also over IPv6), Dahua
Easy4IP-style UDP 8800, a bit-inverted STUN probe and a long RTP-like upload to a public host,
a hard-coded public resolver (8.8.8.8) and cleartext Xiongmai-style cloud HTTP, audio in SDP
and RTP, and an inbound HTTP connection from the internet answered with `Server: App-webs/`.

Public addresses come from MaxMind's test databases (../shared/corpus/maxmind/FACTS.md), so
GeoIP lookups against those databases return countries: 175.16.199.1 and 111.235.160.1 CN,
2001:218::1 JP, 89.160.20.112 SE (AS29518), 216.160.83.56 US (AS209), 81.2.69.142 GB,
67.43.156.1 BT (AS35908). 8.8.8.8 is the real public resolver (absent from the test DBs).
Hostnames, ports and protocol details come from research/signatures.md; payloads whose wire
format that research does not document (Hik-Connect on TCP 8666, the Dahua device-side P2P
messages, the Xiongmai server reply) are labelled synthetic placeholders.

Reads no config. Known limits: media rates are scaled down (sub-stream video of a few kbit/s,
PCMU audio) to keep the file under 2 MB; no loss or retransmission.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netwatch.testing import pcapgen as pg
from netwatch.testing.pcapgen import DnsRecord, DnsType, Route, Trace

SEED = 7
EPOCH_US = 1_768_467_600_000_000  # 2026-01-15T09:00:00Z
SPAN_US = 60_000_000
MAX_FILE_BYTES = 2_000_000
MS = 1_000
SECOND = 1_000_000
OUT = Path(__file__).with_name("camera-site-demo.pcap")


@dataclass(frozen=True, slots=True)
class Node:
    """A host on the mirrored site network."""

    name: str
    mac: str
    ip: str
    ip6: str = ""
    vlans: tuple[int, ...] = ()


GATEWAY = Node("gateway", "02:00:5e:10:00:01", "10.20.0.1", "fd00:20::1")
NVR = Node("nvr-1", "02:4e:56:00:00:0a", "10.20.0.10")
HIK1 = Node("cam-hik-1", "bc:ad:28:1a:2b:01", "10.20.0.11")
HIK2 = Node("cam-hik-2", "bc:ad:28:1a:2b:02", "10.20.0.12", "fd00:20::12")
DAHUA = Node("cam-dahua-1", "b4:4c:3b:5e:6f:03", "10.20.0.13")
GENERIC = Node("cam-generic-1", "02:12:34:56:78:14", "10.30.0.14", vlans=(30,))
RESOLVER = Node("dns-1", "02:00:00:00:00:53", "10.20.0.53", "fd00:20::53")
NTP = Node("ntp-1", "02:00:00:00:01:23", "10.20.0.123")
CAMERAS = (HIK1, HIK2, DAHUA, GENERIC)

# Public peers: MaxMind test-database addresses (country per GeoIP2-Country-Test).
HIK_CONNECT_IP = "175.16.199.1"  # CN: litedev.hik-connect.com (registration, TCP 8666)
EZVIZ_IP = "111.235.160.1"  # CN: dev.ys7.com (EZVIZ device OTA host, HTTPS)
EZVIZ_IP6 = "2001:218::1"  # JP: dev.ys7.com AAAA
EASY4IP_IP = "89.160.20.112"  # SE: www.easy4ipcloud.com (Dahua P2P, UDP 8800)
UPLOAD_IP = "216.160.83.56"  # US: P2P peer receiving the long upload
# RTP payload of the upload: 10 packets/s of 1,100 bytes (88 kbit/s, ~540 kB in 50 s), just
# above outbound_stream's stream threshold (500 kB per 60 s), far below a real sub-stream
UPLOAD_PAYLOAD = 1100
SCANNER_IP = "81.2.69.142"  # GB: reaches cam-hik-2:80 from outside
XM_CLOUD_IP = "67.43.156.1"  # BT: pub-cfg.secu100.net (Xiongmai config server, HTTP 8086)
PUBLIC_DNS = "8.8.8.8"

# When things happen (seconds into the capture); README.md quotes these.
T_HIK_CONNECT = 5.0
T_EZVIZ_TLS = 12.0
T_EZVIZ_TLS6 = 20.0
T_INBOUND_HTTP = 30.0
T_EASY4IP = 3.0
T_UPLOAD = (8.0, 58.0)
T_PUBLIC_DNS = 2.0


def us(seconds: float) -> int:
    """Seconds into the capture -> µs."""
    return round(seconds * SECOND)


def lan(src: Node, dst: Node, *, v6: bool = False) -> Route:
    """src -> dst as the mirror sees it: direct on one segment; between segments, the leg on
    the tagged segment (the router's MAC stands in for the far host)."""
    src_ip, dst_ip = (src.ip6, dst.ip6) if v6 else (src.ip, dst.ip)
    if src.vlans == dst.vlans:
        return Route.of(src.mac, src_ip, dst.mac, dst_ip, src.vlans)
    if src.vlans:
        return Route.of(src.mac, src_ip, GATEWAY.mac, dst_ip, src.vlans)
    return Route.of(GATEWAY.mac, src_ip, dst.mac, dst_ip, dst.vlans)


def wan(src: Node, peer_ip: str) -> Route:
    """src -> a public address through the gateway."""
    src_ip = src.ip6 if ":" in peer_ip else src.ip
    return Route.of(src.mac, src_ip, GATEWAY.mac, peer_ip, src.vlans)


class Site(pg.TraceBuilder):
    """The demo trace being built, drawing from one generator seeded with ``seed``."""

    def __init__(self, seed: int) -> None:
        super().__init__(random.Random(seed))


# --- benign background --------------------------------------------------------------------------


def arp_ntp_icmp(site: Site) -> None:
    """ARP at start-up, NTP against the local server (after a local lookup), NVR pings."""
    trace, t = site.trace, us(0.05)
    for cam in CAMERAS:
        gw_ip = "10.30.0.1" if cam.vlans else GATEWAY.ip
        trace.add(t, pg.arp_frame(1, cam.mac, cam.ip, gw_ip, vlans=cam.vlans))
        trace.add(
            t + 300,
            pg.arp_frame(2, GATEWAY.mac, gw_ip, cam.ip, target_mac=cam.mac, vlans=cam.vlans),
        )
        t += 7 * MS
    for cam in (HIK1, HIK2, DAHUA):
        trace.add(t, pg.arp_frame(1, NVR.mac, NVR.ip, cam.ip))
        trace.add(t + 250, pg.arp_frame(2, cam.mac, cam.ip, NVR.ip, target_mac=NVR.mac))
        t += 5 * MS
    ntp = [DnsRecord("ntp.cctv.internal", DnsType.A, NTP.ip, ttl=3600)]
    for k, cam in enumerate(CAMERAS):
        start = us(1.0 + 0.4 * k)
        if not cam.vlans:  # the VLAN 30 camera has the NTP address configured, no lookup
            start = site.lookup(lan(cam, RESOLVER), start, "ntp.cctv.internal", ntp) + 2 * MS
        for when in (start, start + us(30)):
            ntp_exchange(site, cam, when)
    for when in (10, 30, 50):
        for k, cam in enumerate((HIK1, HIK2, DAHUA)):
            ping(site, lan(NVR, cam), us(when) + k * 3 * MS, seq=when // 20 + 1)


def ntp_exchange(site: Site, cam: Node, t: int) -> None:
    """Client (mode 3) and server (mode 4) NTP packets."""
    route, sport = lan(cam, NTP), 123
    ask = pg.ntp_packet(3, transmit_us=EPOCH_US + t)
    answer = pg.ntp_packet(
        4,
        transmit_us=EPOCH_US + t + 450,
        origin_us=EPOCH_US + t,
        receive_us=EPOCH_US + t + 400,
        stratum=2,
        reference_id=b"GPS\x00",
    )
    site.trace.add(t, pg.udp_frame(route, sport, 123, ask))
    site.trace.add(t + 600, pg.udp_frame(route.reverse(), 123, sport, answer))


def ping(site: Site, route: Route, t: int, *, seq: int) -> None:
    """One ICMP echo request and its reply."""
    payload = bytes(range(56))
    site.trace.add(t, pg.icmp_echo_frame(route, 0x4E56, seq, payload, ip_ident=seq))
    site.trace.add(t + 400, pg.icmp_echo_frame(route.reverse(), 0x4E56, seq, payload, reply=True))


# --- RTSP / RTP to the NVR ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stream:
    """How one camera serves its stream to the NVR."""

    cam: Node
    path: str
    challenge: str  # WWW-Authenticate value of the first DESCRIBE's 401
    server: str  # RTSP Server header ("" = none)
    audio: bool
    start_s: float


STREAMS = (
    Stream(HIK1, "/Streaming/Channels/102", 'Digest realm="Hikvision"', "", False, 0.3),
    Stream(HIK2, "/Streaming/Channels/102", 'Digest realm="Hikvision"', "", True, 0.5),
    Stream(
        DAHUA,
        "/cam/realmonitor?channel=1&subtype=1",
        'Basic realm="device"',
        "Dahua Rtsp Server",
        False,
        0.7,
    ),
    Stream(GENERIC, "/stream1", 'Basic realm="/"', "H264DVR rtspd 1.0", False, 0.9),
)


def rtsp_setup(site: Site, st: Stream, media_ports: Sequence[tuple[int, int]], ssrc: int) -> int:
    """OPTIONS, DESCRIBE (401 then SDP), SETUP per track, PLAY; returns when media may start."""
    url = f"rtsp://{st.cam.ip}:554{st.path}"
    s = site.session(lan(NVR, st.cam), 554)
    t = site.connect(s, us(st.start_s), 400)
    server = [("Server", st.server)] if st.server else []
    nonce = site.rng.randbytes(16).hex()
    challenge = [("WWW-Authenticate", st.challenge)]
    if "Digest" in st.challenge:  # Hikvision: a digest challenge, then Basic realm="/"
        challenge = [
            ("WWW-Authenticate", f'{st.challenge}, nonce="{nonce}", stale="FALSE"'),
            ("WWW-Authenticate", 'Basic realm="/"'),
        ]
    digest = f'username="admin", realm="Hikvision", nonce="{nonce}", uri="{url}"'
    auth = (
        f'Digest {digest}, response="{site.rng.randbytes(16).hex()}"'
        if "Digest" in st.challenge
        else "Basic YWRtaW46c3ludGhldGlj"  # admin:synthetic
    )
    body = pg.sdp(st.cam.ip, session_id=ssrc, session_name="Media Presentation", audio=st.audio)
    messages = [
        (True, pg.rtsp_request("OPTIONS", url, 1)),
        (
            False,
            pg.rtsp_response(
                1, [*server, ("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")]
            ),
        ),
        (True, pg.rtsp_request("DESCRIBE", url, 2, [("Accept", "application/sdp")])),
        (
            False,
            pg.rtsp_response(2, [*server, *challenge], status=401, reason="Unauthorized"),
        ),
        (
            True,
            pg.rtsp_request(
                "DESCRIBE", url, 3, [("Accept", "application/sdp"), ("Authorization", auth)]
            ),
        ),
        (
            False,
            pg.rtsp_response(
                3, [*server, ("Content-Type", "application/sdp"), ("Content-Base", url + "/")], body
            ),
        ),
    ]
    session = f"{ssrc:08X}"
    for track, (nvr_port, cam_port) in enumerate(media_ports, start=1):
        transport = f"RTP/AVP;unicast;client_port={nvr_port}-{nvr_port + 1}"
        messages += [
            (
                True,
                pg.rtsp_request(
                    "SETUP",
                    f"{url}/trackID={track}",
                    3 + track,
                    [("Authorization", auth), ("Transport", transport)],
                ),
            ),
            (
                False,
                pg.rtsp_response(
                    3 + track,
                    [
                        *server,
                        ("Session", f"{session};timeout=60"),
                        ("Transport", f"{transport};server_port={cam_port}-{cam_port + 1}"),
                    ],
                ),
            ),
        ]
    cseq = 4 + len(media_ports)
    messages += [
        (
            True,
            pg.rtsp_request(
                "PLAY",
                url,
                cseq,
                [("Authorization", auth), ("Session", session), ("Range", "npt=0.000-")],
            ),
        ),
        (
            False,
            pg.rtsp_response(
                cseq, [*server, ("Session", session), ("RTP-Info", f"url={url}/trackID=1;seq=0")]
            ),
        ),
    ]
    t = site.converse(s, t, messages, 3 * MS)
    site.trace.add(t, s.ack(True))
    for k, when in enumerate((us(25) + t, us(50) + t)):  # keep-alives
        end = site.converse(
            s,
            when,
            [
                (True, pg.rtsp_request("GET_PARAMETER", url, cseq + 1 + k, [("Session", session)])),
                (False, pg.rtsp_response(cseq + 1 + k, [*server, ("Session", session)])),
            ],
            2 * MS,
        )
        site.trace.add(end, s.ack(True))
    return t + 5 * MS


def video(
    site: Site, route: Route, ports: tuple[int, int], ssrc: int, span: tuple[int, int]
) -> None:
    """5 frames/s sub-stream: an I-frame (3 x 700 B) every 2 s, else one 250 B P-frame packet."""
    rng, trace = site.rng, site.trace
    seq, ts, ident = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16)
    for frame, t in enumerate(range(span[0], span[1], 200 * MS)):
        sizes = (700, 700, 700) if frame % 10 == 0 else (250,)
        for j, size in enumerate(sizes):
            packet = pg.rtp(seq, ts, ssrc, rng.randbytes(size), marker=j == len(sizes) - 1)
            trace.add(t + j * 150, pg.udp_frame(route, *ports, packet, ident=ident))
            seq, ident = seq + 1, ident + 1
        ts += 18_000


def audio(
    site: Site, route: Route, ports: tuple[int, int], ssrc: int, span: tuple[int, int]
) -> None:
    """G.711 mu-law (RTP payload type 0): 160 bytes every 20 ms."""
    rng, trace = site.rng, site.trace
    seq, ts, ident = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16)
    for n, t in enumerate(range(span[0], span[1], 20 * MS)):
        packet = pg.rtp(
            seq + n, ts + 160 * n, ssrc, rng.randbytes(160), payload_type=0, marker=n == 0
        )
        trace.add(t, pg.udp_frame(route, *ports, packet, ident=ident + n))


def rtcp(
    site: Site, route: Route, ports: tuple[int, int], ssrcs: tuple[int, int], span: tuple[int, int]
) -> None:
    """Sender reports from the camera and receiver reports from the NVR every 5 s."""
    back = route.reverse()
    for n, t in enumerate(range(span[0] + us(2), span[1], us(5)), start=1):
        sr = pg.rtcp_sender_report(
            ssrcs[0],
            unix_us=EPOCH_US + t,
            rtp_timestamp=t * 9 // 100,
            packets=n * 30,
            octets=n * 12_000,
            cname=f"cam{ssrcs[0]:08x}",
        )
        site.trace.add(t, pg.udp_frame(route, ports[0] + 1, ports[1] + 1, sr))
        rr = pg.rtcp_receiver_report(ssrcs[1], ssrcs[0], highest_seq=n * 30)
        site.trace.add(t + 2 * MS, pg.udp_frame(back, ports[1] + 1, ports[0] + 1, rr))


def nvr_streams(site: Site) -> None:
    """Every camera streams to the NVR for the whole capture; cam-hik-2 also sends audio."""
    for k, st in enumerate(STREAMS):
        ssrc = site.rng.getrandbits(32)
        ports = [(40000 + 10 * k, 8000 + 2 * site.rng.randrange(500))]
        if st.audio:
            ports.append((40002 + 10 * k, ports[0][1] + 2))
        start = rtsp_setup(site, st, ports, ssrc)
        route, span = lan(st.cam, NVR), (start, SPAN_US - 10 * MS)
        video(site, route, (ports[0][1], ports[0][0]), ssrc, span)
        rtcp(site, route, (ports[0][1], ports[0][0]), (ssrc, site.rng.getrandbits(32)), span)
        if st.audio:
            audio_ssrc = site.rng.getrandbits(32)
            audio(site, route, (ports[1][1], ports[1][0]), audio_ssrc, (start + 7 * MS, span[1]))


# --- behaviours netwatch exists to catch ---------------------------------------------------------


def hik_connect(site: Site) -> None:
    """cam-hik-1 resolves litedev.hik-connect.com and keeps a TCP 8666 session to it.

    signatures.md: the registration host and port are documented, the bytes are not (a binary
    reply of about 200 bytes), so both directions carry random placeholder bytes.
    """
    answer = [DnsRecord("litedev.hik-connect.com", DnsType.A, HIK_CONNECT_IP, ttl=600)]
    t = site.lookup(lan(HIK1, RESOLVER), us(T_HIK_CONNECT), "litedev.hik-connect.com", answer)
    s = site.session(wan(HIK1, HIK_CONNECT_IP), 8666)
    t = site.connect(s, t + 2 * MS, 180 * MS)
    rng = site.rng
    t = site.converse(s, t, [(True, rng.randbytes(164)), (False, rng.randbytes(204))], 180 * MS)
    site.trace.add(t, s.ack(True))
    for when in range(t + us(15), SPAN_US - us(2), us(15)):
        end = site.converse(
            s, when, [(True, rng.randbytes(48)), (False, rng.randbytes(32))], 180 * MS
        )
        site.trace.add(end, s.ack(True))


def ezviz_tls(site: Site, cam: Node, start_s: float, peer_ip: str) -> None:
    """A camera resolves dev.ys7.com (EZVIZ device OTA host) and talks TLS to it with SNI."""
    v6 = ":" in peer_ip
    record = DnsRecord("dev.ys7.com", DnsType.AAAA if v6 else DnsType.A, peer_ip, ttl=300)
    t = site.lookup(lan(cam, RESOLVER, v6=v6), us(start_s), "dev.ys7.com", [record])
    s = site.session(wan(cam, peer_ip), 443)
    rtt, rng = 210 * MS, site.rng
    t = site.connect(s, t + 3 * MS, rtt)
    hello = pg.tls_client_hello(
        "dev.ys7.com", client_random=rng.randbytes(32), session_id=rng.randbytes(32)
    )
    server = pg.tls_server_hello(server_random=rng.randbytes(32), session_id=rng.randbytes(32))
    server += pg.tls_application_data(rng.randbytes(2400))  # encrypted extensions, certificate, ...
    messages = [
        (True, hello),
        (False, server),
        (
            True,
            pg.tls_application_data(rng.randbytes(64))
            + pg.tls_application_data(rng.randbytes(320)),
        ),
        (False, pg.tls_application_data(rng.randbytes(3900))),
    ]
    t = site.converse(s, t, messages, rtt)
    site.trace.add(t, s.ack(True))
    site.trace.add_burst(t + us(1), s.close(True), rtt)


def inbound_http(site: Site) -> None:
    """A host on the internet (GB) opens cam-hik-2:80 through a port forward; App-webs answers.

    The Host header names the site's public address, 203.0.113.10 (a documentation address).
    """
    route = Route.of(GATEWAY.mac, SCANNER_IP, HIK2.mac, HIK2.ip)
    s = site.session(route, 80)
    t = site.connect(
        s, us(T_INBOUND_HTTP), 400
    )  # the camera answers at once; the ACK is a WAN RTT later
    request = pg.http_request(
        "GET", "/", [("Host", "203.0.113.10"), ("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")]
    )
    body = b"<!DOCTYPE html>\n<html><head><title></title></head><body></body></html>\n"
    response = pg.http_response(
        200,
        "OK",
        [("Server", "App-webs/"), ("Content-Type", "text/html")],
        body,
        version="HTTP/1.0",
    )
    t = site.converse(s, t + 70 * MS, [(True, request), (False, response)], 2 * MS)
    site.trace.add_burst(t, s.close(False), 70 * MS)  # HTTP/1.0: the camera closes first


def easy4ip(site: Site) -> None:
    """cam-dahua-1 resolves www.easy4ipcloud.com and talks DHGET/DHPOST over UDP 8800 every 10 s.

    signatures.md documents the client side (request line `DHGET `/`DHPOST ` ... `HTTP/1.1`,
    paths, UDP 8800); that devices use the same server and framing is its own Guess. Bodies are
    synthetic placeholders.
    """
    record = DnsRecord("www.easy4ipcloud.com", DnsType.A, EASY4IP_IP, ttl=300)
    t = site.lookup(lan(DAHUA, RESOLVER), us(T_EASY4IP), "www.easy4ipcloud.com", [record])
    route, sport, serial = wan(DAHUA, EASY4IP_IP), site.port(), "SYNTH0DH0000001"
    for n, when in enumerate(range(t + 3 * MS, SPAN_US - us(1), us(10)), start=1):
        if n == 1:
            request = pg.http_request("DHGET", "/probe/p2psrv", [("CSeq", "1")])
        else:
            body = f"<body><DevSN>{serial}</DevSN><Status>online</Status></body>".encode()
            request = pg.http_request(
                "DHPOST", f"/online/p2psrv/{serial}", [("CSeq", str(n))], body
            )
        site.trace.add(when, pg.udp_frame(route, sport, 8800, request, ident=n))
        reply = pg.http_response(200, "OK", [("CSeq", str(n))])
        site.trace.add(when + 160 * MS, pg.udp_frame(route.reverse(), 8800, sport, reply, ident=n))


def inverted_stun(site: Site, binding_type: int, attributes: bytes) -> bytes:
    """A 44-byte STUN message with every byte inverted (Dahua P2P's NAT probe)."""
    return pg.invert_bytes(pg.stun_message(binding_type, site.rng.randbytes(12), attributes))


def p2p_upload(site: Site) -> None:
    """cam-dahua-1 probes a public peer with bit-inverted STUN, then streams RTP-like to it (50 s,
    enough for ``outbound_stream`` to count it as a video feed).

    Inverted STUN: every byte 0xFF - b, 44-byte payloads starting FF FE FF E7 in both directions
    (signatures.md, libprotoident). The peer port is arbitrary; the peer returns an RTCP receiver
    report every 5 s on the same port pair (RTCP multiplexing).
    """
    route, back = wan(DAHUA, UPLOAD_IP), wan(DAHUA, UPLOAD_IP).reverse()
    sport, dport = site.port(), 51000 + site.rng.randrange(1000)
    start, end = us(T_UPLOAD[0]), us(T_UPLOAD[1])
    software = pg.stun_attribute(0x8022, b"synthetic-probe-0001")  # 24 bytes of attributes
    mapped = pg.stun_attribute(0x0020, bytes((0, 1)) + site.rng.randbytes(6)) + pg.stun_attribute(
        0x8022, b"synth-01"
    )
    for k in range(2):
        t = start + k * 500 * MS
        site.trace.add(t, pg.udp_frame(route, sport, dport, inverted_stun(site, 0x0001, software)))
        site.trace.add(
            t + 150 * MS, pg.udp_frame(back, dport, sport, inverted_stun(site, 0x0001, mapped))
        )
    rng, ssrc, seq, ts = (
        site.rng,
        site.rng.getrandbits(32),
        site.rng.getrandbits(16),
        site.rng.getrandbits(32),
    )
    for n, t in enumerate(range(start + us(1), end, 100 * MS)):
        packet = pg.rtp(seq + n, ts + 9_000 * n, ssrc, rng.randbytes(UPLOAD_PAYLOAD), marker=True)
        site.trace.add(t, pg.udp_frame(route, sport, dport, packet, ident=n))
        if n % 50 == 49:
            rr = pg.rtcp_receiver_report(rng.getrandbits(32), ssrc, highest_seq=seq + n)
            site.trace.add(t + 60 * MS, pg.udp_frame(back, dport, sport, rr))


def public_resolver(site: Site) -> None:
    """cam-generic-1 (VLAN 30, no vendor OUI) resolves Xiongmai cloud names through 8.8.8.8 and
    posts its configuration query in cleartext HTTP to pub-cfg.secu100.net:8086.

    Host, port, method, JSON keys and `Server: openresty` come from signatures.md; the field
    values and the reply body are synthetic placeholders.
    """
    dns = wan(GENERIC, PUBLIC_DNS)
    record = DnsRecord("pub-cfg.secu100.net", DnsType.A, XM_CLOUD_IP, ttl=600)
    t = site.lookup(dns, us(T_PUBLIC_DNS), "pub-cfg.secu100.net", [record])
    later = DnsRecord("access-dss.secu100.net", DnsType.A, XM_CLOUD_IP, ttl=600)
    site.lookup(dns, us(T_PUBLIC_DNS + 30), "access-dss.secu100.net", [later])
    s = site.session(wan(GENERIC, XM_CLOUD_IP), 8086)
    t = site.connect(s, t + 5 * MS, 260 * MS)
    body = (
        b'{"CfgProtocol":{"Header":{"Version":"1.0","MessageType":"MSG_DSS_CFG_QUERY_REQ"},'
        b'"Body":{"AuthCode":"SYNTH0XM00000001","SerialNumber":"SYNTH0XM00000001","ProductID":"SYNTH"}}}'
    )
    headers = [
        ("Host", "pub-cfg.secu100.net:8086"),
        ("User-Agent", "XAPP"),
        ("Content-Type", "application/json"),
    ]
    reply = pg.http_response(
        200,
        "OK",
        [("Server", "openresty"), ("Content-Type", "application/json")],
        b'{"synthetic":"placeholder reply"}',
    )
    t = site.converse(
        s, t, [(True, pg.http_request("POST", "/", headers, body)), (False, reply)], 260 * MS
    )
    site.trace.add(t, s.ack(True))
    site.trace.add_burst(t + 20 * MS, s.close(True), 260 * MS)


# --- assembly -----------------------------------------------------------------------------------


def build(seed: int = SEED) -> Trace:
    """Every frame of the demo capture (timestamps relative to the start)."""
    site = Site(seed)
    arp_ntp_icmp(site)
    nvr_streams(site)
    hik_connect(site)
    ezviz_tls(site, HIK1, T_EZVIZ_TLS, EZVIZ_IP)
    ezviz_tls(site, HIK2, T_EZVIZ_TLS6, EZVIZ_IP6)
    inbound_http(site)
    easy4ip(site)
    p2p_upload(site)
    public_resolver(site)
    return site.trace


def write(path: Path, seed: int = SEED) -> tuple[int, int]:
    """Build and write the capture; returns (packets, file bytes)."""
    trace = build(seed)
    shifted = Trace()
    for ts, frame in trace.records():
        shifted.add(EPOCH_US + ts, frame)
    shifted.write(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RuntimeError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte budget")
    return len(shifted), size


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Write the synthetic camera-site demo capture.")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output path (default {OUT.name})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = parser.parse_args(argv)
    packets, size = write(args.out, args.seed)
    print(f"wrote {args.out}: {packets} packets, {size} bytes (synthetic, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
