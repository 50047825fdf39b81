"""Generate a realistic camera-site capture for netwatch's parser and flow-table benchmarks.

Usage: python bench/gen_site_pcap.py OUT.pcap [--packets 1000000] [--seed 1] [--duration 10]

The mix follows research/performance.md section 1 (the capture the measured rates refer to):
- 48 Hikvision/Dahua cameras (vendor MAC prefixes) on 802.1Q VLAN 20 stream RTP/UDP H.264
  video (1,200-byte payloads, an I-frame burst every 2 s, 2-8 Mbit/s weights) to 2 NVRs; the
  NVRs hold RTSP/TCP sessions to each camera's port 554 (OPTIONS, DESCRIBE with SDP offering
  m=video and, for every third camera, m=audio; SETUP, PLAY, GET_PARAMETER keep-alives, a few
  TEARDOWNs) and exchange RTCP sender/receiver reports; the cameras query an NTP server.
- TLS/TCP from workstations to public IPv4 hosts (44 % of packets): handshake, ClientHello with
  SNI, ServerHello, Pareto-sized downloads in 1,448-byte segments with a client ACK every second
  segment, FIN close. Each connection follows a DNS lookup (A, sometimes via a CNAME) whose answer
  is the server's address.
- IPv6 (15 %): TLS/TCP with AAAA lookups, and QUIC-like UDP 443.
- DNS query/answer pairs over IPv4 and IPv6 (about 2,500 transactions per million packets),
  ICMP echo, ARP.
- Workstation flows are split between untagged and VLAN 10 so that 57 % of all frames carry a
  VLAN tag (camera VLAN 20 is always tagged). At a million packets this puts about 28 % of the
  TLS/QUIC packets (a third of those flows, mostly small ones) on VLAN 10.

The packet count is exact: every flow's packet count is fixed at planning time and the camera
video streams absorb the remainder. Output is deterministic for (packets, seed, duration); every
checksum is valid. Frames are rendered from prebuilt templates (netwatch.testing.pcapgen
.FrameTemplate) and merged by timestamp, so a million packets take seconds.

Reads no config. Known limits: no loss or retransmission, payloads are random bytes after the
handshakes, server names use the reserved example.* domains, and no vendor-cloud traffic (see
pcaps/demo for that).
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from netwatch.testing import pcapgen as pg
from netwatch.testing.pcapgen import DnsRecord, DnsType, FrameTemplate, Route, TcpFlag, TcpSession

EPOCH_US = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z
MS = 1_000
SECOND = 1_000_000
CAMERAS = 48
CAMERA_VLAN = 20
CLIENT_VLAN = 10
TLS4_SHARE = 0.44
V6_SHARE = 0.15
QUIC_OF_V6 = 0.4
VLAN_SHARE = 0.57
DNS_PER_MILLION = 2500
TLS4_PER_MILLION = 1700
TLS6_PER_MILLION = 350
QUIC_PER_MILLION = 150
ICMP_PER_MILLION = 20
ARP_PER_MILLION = 100
FRAME_US = 40_000  # 25 frames/s
GOP_FRAMES = 50  # an I-frame every 2 s
IFRAME_WEIGHT = 10
RTP_TICKS_PER_FRAME = 3_600  # 90 kHz clock
RTP_PAYLOAD = 1_200
MIN_RTP_PER_CAMERA = 25
QUIC_PAYLOAD = 1_232
PARETO_ALPHA = 1.2
PARETO_CAP = 400.0
ROUTER_MAC = "02:00:5e:00:00:01"


class Kind(enum.Enum):
    """Flow kinds reported in the summary."""

    RTP = "rtp"
    RTCP = "rtcp"
    RTSP = "rtsp"
    TLS4 = "tls4"
    TLS6 = "tls6"
    QUIC = "quic6"
    DNS = "dns"
    NTP = "ntp"
    ICMP = "icmp"
    ARP = "arp"


class FrameSource(Protocol):
    """Anything that yields one flow's (ts_us, frame) records in time order."""

    def frames(self) -> Iterator[tuple[int, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Planned:
    """One planned flow: its exact packet count and the source that renders it."""

    kind: Kind
    packets: int
    tagged: bool
    ipv6: bool
    source: FrameSource


@dataclass(frozen=True, slots=True)
class Host:
    """A host on the mirrored LAN."""

    mac: str
    ip: str
    vlans: tuple[int, ...] = ()

    def to(self, mac: str, ip: str) -> Route:
        """Route from this host to (mac, ip) on this host's segment."""
        return Route.of(self.mac, self.ip, mac, ip, self.vlans)


def split_exact(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` that sum exactly to `total`."""
    whole, acc, prev, out = sum(weights), 0.0, 0, []
    for weight in weights:
        acc += weight
        cur = min(total, math.floor(total * acc / whole))
        out.append(cur - prev)
        prev = cur
    out[-1] += total - prev
    return out


# --- camera flows -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpVideo:
    """Camera -> NVR H.264 over RTP/UDP: P-frames every 40 ms, an I-frame burst every 2 s."""

    route: Route
    ports: tuple[int, int]
    ssrc: int
    start_us: int
    end_us: int
    packets: int
    seed: int

    def _per_frame(self) -> list[int]:
        n_frames = max(1, (self.end_us - self.start_us) // FRAME_US)
        weights = [IFRAME_WEIGHT if i % GOP_FRAMES == 0 else 1 for i in range(n_frames)]
        return split_exact(self.packets, weights)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        rng = random.Random(self.seed)
        renders = [
            FrameTemplate.of(
                pg.udp_frame(
                    self.route, *self.ports, pg.rtp(0, 0, self.ssrc, rng.randbytes(RTP_PAYLOAD))
                ),
                9,
                "BHI",
            ).render
            for _ in range(4)
        ]
        seq, ip_id, ts0 = rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(32)
        for i, n in enumerate(self._per_frame()):
            t = self.start_us + i * FRAME_US + rng.randrange(2 * MS)
            gap = max(1, min(120, 36 * MS // max(n, 1)))
            rtp_ts = (ts0 + i * RTP_TICKS_PER_FRAME) & 0xFFFFFFFF
            for j in range(n):
                marker = 0xE0 if j == n - 1 else 0x60  # marker bit | payload type 96
                yield t + j * gap, renders[seq & 3](ip_id, (marker, seq & 0xFFFF, rtp_ts))
                seq += 1
                ip_id += 1


@dataclass(frozen=True, slots=True)
class RtcpReports:
    """Camera sender reports and NVR receiver reports, once a second."""

    route: Route  # camera -> NVR
    ports: tuple[int, int]
    ssrcs: tuple[int, int]  # camera, NVR
    times_us: tuple[int, ...]

    def frames(self) -> Iterator[tuple[int, bytes]]:
        cam, nvr = self.ssrcs
        back = self.route.reverse()
        for n, t in enumerate(self.times_us, start=1):
            sr = pg.rtcp_sender_report(
                cam,
                unix_us=EPOCH_US + t,
                rtp_timestamp=t * 9 // 100,
                packets=n * 800,
                octets=n * 960_000,
                cname=f"cam{cam:08x}",
            )
            yield t, pg.udp_frame(self.route, *self.ports, sr, ident=n)
            rr = pg.rtcp_receiver_report(nvr, cam, highest_seq=n * 800)
            yield t + MS, pg.udp_frame(back, self.ports[1], self.ports[0], rr, ident=n)


@dataclass(frozen=True, slots=True)
class RtspSession:
    """NVR -> camera:554: OPTIONS, DESCRIBE (SDP), SETUP, PLAY, keep-alives, maybe TEARDOWN."""

    route: Route  # NVR -> camera
    sport: int
    url: str
    audio: bool
    rtp_ports: tuple[int, int]  # NVR client port, camera server port
    ssrc: int
    start_us: int
    keepalive_us: tuple[int, ...]
    teardown_us: int  # 0: the session outlives the capture

    @staticmethod
    def count(keepalives: int, teardown: bool) -> int:
        """Packets: handshake 3, four request/response pairs, ACK, 3 per keep-alive, 5 to close."""
        return 12 + 3 * keepalives + (5 if teardown else 0)

    def _exchange(
        self, s: TcpSession, t: int, request: bytes, response: bytes
    ) -> Iterator[tuple[int, bytes]]:
        yield t, s.send(True, request)[0]
        yield t + 3 * MS, s.send(False, response)[0]

    def _requests(self) -> list[tuple[bytes, bytes]]:
        cport, sport = self.rtp_ports
        body = pg.sdp(pg.ip_text(self.route.dst_ip), session_id=self.ssrc, audio=self.audio)
        transport = f"RTP/AVP;unicast;client_port={cport}-{cport + 1}"
        return [
            (
                pg.rtsp_request("OPTIONS", self.url, 1),
                pg.rtsp_response(
                    1, [("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")]
                ),
            ),
            (
                pg.rtsp_request("DESCRIBE", self.url, 2, [("Accept", "application/sdp")]),
                pg.rtsp_response(
                    2, [("Content-Type", "application/sdp"), ("Content-Base", self.url + "/")], body
                ),
            ),
            (
                pg.rtsp_request("SETUP", self.url + "/trackID=1", 3, [("Transport", transport)]),
                pg.rtsp_response(
                    3,
                    [
                        ("Session", f"{self.ssrc:08X};timeout=60"),
                        (
                            "Transport",
                            f"{transport};server_port={sport}-{sport + 1};ssrc={self.ssrc:08X}",
                        ),
                    ],
                ),
            ),
            (
                pg.rtsp_request(
                    "PLAY", self.url, 4, [("Session", f"{self.ssrc:08X}"), ("Range", "npt=0.000-")]
                ),
                pg.rtsp_response(4, [("Session", f"{self.ssrc:08X}")]),
            ),
        ]

    def frames(self) -> Iterator[tuple[int, bytes]]:
        rng = random.Random(self.ssrc)
        s = TcpSession(
            self.route,
            self.sport,
            554,
            client_isn=rng.getrandbits(32),
            server_isn=rng.getrandbits(32),
            ip_ids=(rng.getrandbits(16), rng.getrandbits(16)),
        )
        t = self.start_us
        yield from zip((t, t + 300, t + 400), s.handshake(), strict=True)
        for request, response in self._requests():
            t += 4 * MS
            yield from self._exchange(s, t, request, response)
        yield t + 3 * MS + 200, s.ack(True)
        session = [("Session", f"{self.ssrc:08X}")]
        for cseq, ka in enumerate(self.keepalive_us, start=5):
            yield from self._exchange(
                s,
                ka,
                pg.rtsp_request("GET_PARAMETER", self.url, cseq, session),
                pg.rtsp_response(cseq, session),
            )
            yield ka + 3 * MS + 200, s.ack(True)
        if self.teardown_us:
            t = self.teardown_us
            yield from self._exchange(
                s,
                t,
                pg.rtsp_request("TEARDOWN", self.url, 99, session),
                pg.rtsp_response(99, session),
            )
            yield from zip((t + 4 * MS, t + 5 * MS, t + 5 * MS + 100), s.close(True), strict=True)


# --- workstation flows --------------------------------------------------------------------------


def tls_count(segments: int) -> int:
    """Packets of a TlsDownload with `segments` server segments (the first is the ServerHello)."""
    rest = segments - 1
    return 9 + rest + (rest + 1) // 2


@dataclass(frozen=True, slots=True)
class TlsDownload:
    """Client -> server:443: handshake, ClientHello (SNI), ServerHello, request, download, FIN."""

    route: Route  # client -> server
    sport: int
    server_name: str
    start_us: int
    rtt_us: int
    segments: int
    interval_us: int
    filler: bytes
    seed: int

    def _hello_segment(self, rng: random.Random, size: int) -> bytes:
        hello = pg.tls_server_hello(server_random=rng.randbytes(32), session_id=rng.randbytes(32))
        return hello + pg.tls_application_data(rng.randbytes(size - len(hello) - 5))

    def _opening(self, s: TcpSession, rng: random.Random) -> Iterator[tuple[int, bytes]]:
        t, rtt = self.start_us, self.rtt_us
        hello = pg.tls_client_hello(
            self.server_name, client_random=rng.randbytes(32), session_id=rng.randbytes(32)
        )
        times = (t, t + rtt, t + rtt + 40, t + rtt + 60)
        yield from zip(times, [*s.handshake(), *s.send(True, hello)], strict=True)
        yield (
            t + 2 * rtt,
            s.segment(False, TcpFlag.ACK | TcpFlag.PSH, self._hello_segment(rng, s.segment_size)),
        )
        request = pg.tls_application_data(rng.randbytes(rng.randrange(80, 600)))
        yield t + 2 * rtt + 300, s.send(True, request)[0]

    def frames(self) -> Iterator[tuple[int, bytes]]:
        rng = random.Random(self.seed)
        s = TcpSession(
            self.route,
            self.sport,
            443,
            client_isn=rng.getrandbits(32),
            server_isn=rng.getrandbits(32),
            ip_ids=(rng.getrandbits(16), rng.getrandbits(16)),
        )
        yield from self._opening(s, rng)
        size, n = s.segment_size, self.segments - 1
        data = s.template(False, self.filler[:size]).render
        ack = s.template(True, b"").render
        sseq, cseq = s.next_seq(False), s.next_seq(True)
        sid, cid = s.next_ip_id(False), s.next_ip_id(True)
        t0, iv = self.start_us + 3 * self.rtt_us, self.interval_us
        delay = min(30, iv // 2)
        for i in range(n):
            t = t0 + i * iv
            yield t, data(sid + i, (sseq & 0xFFFFFFFF, cseq))
            sseq += size
            if i % 2 or i == n - 1:
                yield t + delay, ack(cid, (cseq, sseq & 0xFFFFFFFF))
                cid += 1
        s.advance(False, n * size, n)
        s.advance(True, 0, (n + 1) // 2)
        t = t0 + n * iv + 50 * MS
        yield from zip((t, t + self.rtt_us, t + self.rtt_us + 50), s.close(True), strict=True)


def quic_count(server_packets: int) -> int:
    """Packets of a QuicDownload: 2 Initials, data, an ACK per 3 data packets, a close."""
    return 3 + server_packets + server_packets // 3


@dataclass(frozen=True, slots=True)
class QuicDownload:
    """QUIC-like UDP 443: client and server Initials, then short-header data with client ACKs."""

    route: Route
    sport: int
    start_us: int
    rtt_us: int
    server_packets: int
    interval_us: int
    filler: bytes
    seed: int

    def frames(self) -> Iterator[tuple[int, bytes]]:
        rng = random.Random(self.seed)
        dcid, scid, back = rng.randbytes(8), rng.randbytes(8), self.route.reverse()
        t = self.start_us
        initial = pg.quic_long_header(dcid, scid, 0, rng.randbytes(QUIC_PAYLOAD - 30))
        yield t, pg.udp_frame(self.route, self.sport, 443, initial)
        reply = pg.quic_long_header(scid, dcid, 0, rng.randbytes(QUIC_PAYLOAD - 30))
        yield t + self.rtt_us, pg.udp_frame(back, 443, self.sport, reply)
        data = FrameTemplate.of(
            pg.udp_frame(
                back,
                443,
                self.sport,
                pg.quic_short_header(scid, 0, self.filler[: QUIC_PAYLOAD - 13]),
            ),
            17,
            "I",
        ).render
        ack = FrameTemplate.of(
            pg.udp_frame(
                self.route, self.sport, 443, pg.quic_short_header(dcid, 0, rng.randbytes(31))
            ),
            17,
            "I",
        ).render
        t0, iv = t + 2 * self.rtt_us, self.interval_us
        delay = min(25, iv // 2)
        for i in range(self.server_packets):
            yield t0 + i * iv, data(0, (i + 1,))
            if i % 3 == 2:
                yield t0 + i * iv + delay, ack(0, (i // 3 + 1,))
        close = pg.quic_short_header(dcid, 1 << 20, rng.randbytes(24))
        yield (
            t0 + self.server_packets * iv + 20 * MS,
            pg.udp_frame(self.route, self.sport, 443, close),
        )


@dataclass(frozen=True, slots=True)
class DnsLookup:
    """One query and its answer."""

    route: Route  # client -> resolver
    sport: int
    txid: int
    name: str
    qtype: DnsType
    answers: tuple[DnsRecord, ...]
    start_us: int
    rtt_us: int

    def frames(self) -> Iterator[tuple[int, bytes]]:
        query = pg.dns_query(self.txid, self.name, self.qtype)
        yield self.start_us, pg.udp_frame(self.route, self.sport, 53, query, ident=self.txid)
        answer = pg.dns_response(self.txid, self.name, self.qtype, self.answers)
        back = self.route.reverse()
        yield (
            self.start_us + self.rtt_us,
            pg.udp_frame(back, 53, self.sport, answer, ident=self.txid),
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """A fixed list of prebuilt (ts_us, frame) records: NTP, ICMP echo, ARP."""

    records: tuple[tuple[int, bytes], ...]

    def frames(self) -> Iterator[tuple[int, bytes]]:
        yield from self.records


# --- the site -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    """Hosts of the synthetic site and the public peers its workstations reach."""

    cameras: tuple[Host, ...]
    hikvision: tuple[bool, ...]
    nvrs: tuple[Host, ...]
    ntp: Host
    resolver_mac: str
    clients: tuple[tuple[Host, ...], ...]  # indexed by 2 * ipv6 + tagged
    services4: tuple[tuple[str, tuple[DnsRecord, ...]], ...]
    services6: tuple[tuple[str, tuple[DnsRecord, ...]], ...]

    def client(self, rng: random.Random, ipv6: bool, tagged: bool) -> Host:
        """A random workstation of the given family and segment."""
        return rng.choice(self.clients[2 * ipv6 + tagged])

    def resolver_route(self, client: Host) -> Route:
        """Client -> its resolver (same segment when untagged, through the router when tagged)."""
        mac = ROUTER_MAC if client.vlans else self.resolver_mac
        return client.to(mac, "fd00:1::53" if ":" in client.ip else "10.1.0.53")


def _public_ip(rng: random.Random, ipv6: bool) -> str:
    while True:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address
        if ipv6:
            addr = ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(124))
        else:
            addr = ipaddress.IPv4Address(rng.getrandbits(32))
        if addr.is_global and not addr.is_multicast:
            return str(addr)


def _services(
    rng: random.Random, count: int, ipv6: bool
) -> tuple[tuple[str, tuple[DnsRecord, ...]], ...]:
    rtype = DnsType.AAAA if ipv6 else DnsType.A
    peers = [_public_ip(rng, ipv6) for _ in range(count * 3 // 2)]
    out = []
    for i in range(count):
        name = (
            f"{rng.choice(('api', 'www', 'cdn', 'static', 'img', 'media'))}.svc{i:03d}.example.com"
        )
        target, ip = name, rng.choice(peers)
        records: list[DnsRecord] = []
        if rng.random() < 0.3:
            target = f"edge{rng.randrange(1000):03d}.cdn{rng.randrange(20)}.example.net"
            records.append(DnsRecord(name, DnsType.CNAME, target, ttl=300))
        records.append(DnsRecord(target, rtype, ip, ttl=rng.choice((60, 300, 3600))))
        out.append((name, tuple(records)))
    return tuple(out)


def _clients(rng: random.Random, ipv6: bool, tagged: bool, count: int) -> tuple[Host, ...]:
    vlans = (CLIENT_VLAN,) if tagged else ()
    net = 10 if tagged else 1
    hosts = []
    for k in range(count):
        ip = f"fd00:{net}::{0x1000 + k:x}" if ipv6 else f"10.{net}.{k // 200}.{k % 200 + 20}"
        hosts.append(Host(pg.host_mac("02:c1:1e", rng.getrandbits(24)), ip, vlans))
    return tuple(hosts)


def build_site(rng: random.Random) -> Site:
    """Cameras (2/3 Hikvision, 1/3 Dahua MAC prefixes), NVRs, servers and workstations."""
    hik = tuple(i % 3 != 2 for i in range(CAMERAS))
    cams = tuple(
        Host(
            pg.host_mac(
                pg.HIKVISION_OUIS[i % 6] if hik[i] else pg.DAHUA_OUIS[i % 4], rng.getrandbits(24)
            ),
            f"10.20.1.{i + 1}",
            (CAMERA_VLAN,),
        )
        for i in range(CAMERAS)
    )
    nvrs = tuple(
        Host(pg.host_mac("02:4e:56", k), f"10.20.0.{k + 2}", (CAMERA_VLAN,)) for k in range(2)
    )
    clients = tuple(
        _clients(rng, v6, tag, 100 if tag else 200) for v6 in (False, True) for tag in (False, True)
    )
    return Site(
        cams,
        hik,
        nvrs,
        Host(pg.host_mac("02:4e:54", 1), "10.20.0.123", (CAMERA_VLAN,)),
        "02:00:00:00:00:35",
        clients,
        _services(rng, 400, False),
        _services(rng, 150, True),
    )


# --- planning -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    """What to generate."""

    packets: int
    seed: int
    duration_us: int


@dataclass(frozen=True, slots=True)
class ConnSize:
    """A workstation connection before it gets a client, a server and a time."""

    kind: Kind
    units: int  # TLS: server segments; QUIC: server packets
    packets: int  # the connection alone (its DNS lookup adds 2)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a connection starts and how fast it runs."""

    start_us: int
    rtt_us: int
    interval_us: int


def _exchange(kind: Kind, records: list[tuple[int, bytes]], tagged: bool) -> Planned:
    return Planned(kind, len(records), tagged, False, Exchange(tuple(records)))


def _pareto_units(rng: random.Random, flows: int, units: int) -> list[int]:
    weights = [min(rng.paretovariate(PARETO_ALPHA), PARETO_CAP) for _ in range(flows)]
    return [max(1, u) for u in split_exact(max(units, flows), weights)]


def choose_tagged(rng: random.Random, costs: Sequence[int], target: int) -> list[bool]:
    """Greedy, in random order: tag a flow when its packets still fit under `target`."""
    tagged, total = [False] * len(costs), 0
    order = list(range(len(costs)))
    rng.shuffle(order)
    for i in order:
        if total + costs[i] <= target:
            tagged[i], total = True, total + costs[i]
    return tagged


class Planner:
    """Plans every flow of one capture from one seeded random generator."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        self.scale = params.packets / 1e6
        self.site = build_site(self.rng)
        self._next_port: dict[str, int] = {}

    def port(self, ip: str) -> int:
        """Sequential ephemeral ports per host, so no two planned flows share a 5-tuple."""
        port = self._next_port.get(ip) or self.rng.randrange(32768, 50000)
        self._next_port[ip] = port + 1
        return port

    def plan(self) -> list[Planned]:
        """Every flow, with exact packet counts that sum to params.packets."""
        fixed, streams = self.cameras()
        fixed += self.icmp() + self.arp()
        sizes = self.sizes()
        extra = max(0, round(DNS_PER_MILLION * self.scale) - len(sizes))
        packets = self.params.packets
        rtp_total = (
            packets - sum(p.packets for p in fixed) - sum(s.packets + 2 for s in sizes) - 2 * extra
        )
        if rtp_total < CAMERAS * MIN_RTP_PER_CAMERA:
            raise ValueError(f"{packets} packets is too few for this mix (try 10000 or more)")
        target = round(VLAN_SHARE * packets) - rtp_total - sum(p.packets for p in fixed if p.tagged)
        tagged = choose_tagged(self.rng, [s.packets + 2 for s in sizes] + [2] * extra, target)
        flows = fixed + self.connections(sizes, tagged[: len(sizes)])
        flows += self.extra_lookups(tagged[len(sizes) :])
        return flows + self.video(streams, rtp_total)

    # cameras

    def cameras(self) -> tuple[list[Planned], list[RtpVideo]]:
        """RTSP sessions, RTCP and NTP per camera, plus the RTP streams (sized later)."""
        planned: list[Planned] = []
        streams: list[RtpVideo] = []
        for i, cam in enumerate(self.site.cameras):
            nvr = self.site.nvrs[i // (CAMERAS // 2)]
            rtsp, stream = self._camera_session(i, cam, nvr)
            planned.append(rtsp)
            streams.append(stream)
            planned.append(self._rtcp(stream))
            planned.append(self._ntp(cam, self.rng.randrange(self.params.duration_us - 10 * MS)))
        return planned, streams

    def _camera_session(self, i: int, cam: Host, nvr: Host) -> tuple[Planned, RtpVideo]:
        rng, end = self.rng, self.params.duration_us
        start, ssrc = rng.randrange(200 * MS), rng.getrandbits(32)
        teardown = end - 300 * MS if i % 8 == 7 else 0
        rtp_start, rtp_end = start + 30 * MS, (teardown - 10 * MS) if teardown else end
        cam_port, nvr_port = rng.randrange(4000, 8000) * 2, 30000 + 2 * i
        path = (
            "Streaming/Channels/101"
            if self.site.hikvision[i]
            else "cam/realmonitor?channel=1&subtype=0"
        )
        keepalives = tuple(range(rtp_start + 5 * SECOND, rtp_end - 100 * MS, 5 * SECOND))
        rtsp = RtspSession(
            nvr.to(cam.mac, cam.ip),
            self.port(nvr.ip),
            f"rtsp://{cam.ip}:554/{path}",
            i % 3 == 0,
            (nvr_port, cam_port),
            ssrc,
            start,
            keepalives,
            teardown,
        )
        count = RtspSession.count(len(keepalives), bool(teardown))
        stream = RtpVideo(
            cam.to(nvr.mac, nvr.ip),
            (cam_port, nvr_port),
            ssrc,
            rtp_start,
            rtp_end,
            0,
            rng.getrandbits(32),
        )
        return Planned(Kind.RTSP, count, True, False, rtsp), stream

    def _rtcp(self, stream: RtpVideo) -> Planned:
        times = tuple(range(stream.start_us + 500 * MS, stream.end_us - 5 * MS, SECOND))
        ports = (stream.ports[0] + 1, stream.ports[1] + 1)
        reports = RtcpReports(stream.route, ports, (stream.ssrc, self.rng.getrandbits(32)), times)
        return Planned(Kind.RTCP, 2 * len(times), True, False, reports)

    def _ntp(self, cam: Host, t: int) -> Planned:
        ntp = self.site.ntp
        route, sport = cam.to(ntp.mac, ntp.ip), self.rng.randrange(1024, 65000)
        ask = pg.ntp_packet(3, transmit_us=EPOCH_US + t)
        answer = pg.ntp_packet(
            4,
            transmit_us=EPOCH_US + t + 600,
            origin_us=EPOCH_US + t,
            receive_us=EPOCH_US + t + 500,
            stratum=2,
            reference_id=b"GPS\x00",
        )
        back = route.reverse()
        return _exchange(
            Kind.NTP,
            [
                (t, pg.udp_frame(route, sport, 123, ask)),
                (t + 800, pg.udp_frame(back, 123, sport, answer)),
            ],
            True,
        )

    def video(self, streams: Sequence[RtpVideo], total: int) -> list[Planned]:
        """Size the RTP streams (2-8 Mbit/s weights) so they absorb the remaining packets."""
        weights = [self.rng.uniform(2.0, 8.0) for _ in streams]
        out = []
        for s, count in zip(streams, split_exact(total, weights), strict=True):
            video = RtpVideo(s.route, s.ports, s.ssrc, s.start_us, s.end_us, count, s.seed)
            out.append(Planned(Kind.RTP, count, True, False, video))
        return out

    # small stuff

    def icmp(self) -> list[Planned]:
        """Echo sessions of 10 pings: NVR -> camera (VLAN 20) and workstation -> public host."""
        out, rng, span = [], self.rng, self.params.duration_us
        for k in range(max(2, round(ICMP_PER_MILLION * self.scale))):
            lan = k % 2 == 0
            if lan:
                cam = rng.choice(self.site.cameras)
                route = self.site.nvrs[0].to(cam.mac, cam.ip)
            else:
                route = self.site.client(rng, False, False).to(ROUTER_MAC, _public_ip(rng, False))
            t0, ident, payload = rng.randrange(span // 2), rng.getrandbits(16), bytes(range(48))
            frames = []
            for n in range(10):
                t = t0 + n * span // 20
                frames.append(
                    (t, pg.icmp_echo_frame(route, ident, n + 1, payload, ip_ident=ident + n))
                )
                frames.append(
                    (
                        t + 700,
                        pg.icmp_echo_frame(route.reverse(), ident, n + 1, payload, reply=True),
                    )
                )
            out.append(_exchange(Kind.ICMP, frames, lan))
        return out

    def arp(self) -> list[Planned]:
        """Who-has / is-at pairs: camera -> NVR on VLAN 20, workstation -> router untagged."""
        out, rng = [], self.rng
        for k in range(max(2, round(ARP_PER_MILLION * self.scale))):
            lan, t = k % 2 == 0, rng.randrange(self.params.duration_us - MS)
            if lan:
                asker, target = rng.choice(self.site.cameras), self.site.nvrs[rng.randrange(2)]
            else:
                asker, target = self.site.client(rng, False, False), Host(ROUTER_MAC, "10.1.0.1")
            request = pg.arp_frame(1, asker.mac, asker.ip, target.ip, vlans=asker.vlans)
            reply = pg.arp_frame(
                2, target.mac, target.ip, asker.ip, target_mac=asker.mac, vlans=asker.vlans
            )
            out.append(_exchange(Kind.ARP, [(t, request), (t + 200, reply)], lan))
        return out

    # workstations

    def sizes(self) -> list[ConnSize]:
        """Pareto-sized TLS (IPv4, IPv6) and QUIC connections filling their packet shares."""
        out: list[ConnSize] = []
        rng, packets = self.rng, self.params.packets
        n4, n6, nq = (
            max(least, round(per * self.scale))
            for least, per in ((4, TLS4_PER_MILLION), (2, TLS6_PER_MILLION), (1, QUIC_PER_MILLION))
        )
        for kind, n, budget in (
            (Kind.TLS4, n4, packets * TLS4_SHARE),
            (Kind.TLS6, n6, packets * V6_SHARE * (1 - QUIC_OF_V6)),
        ):
            out += [
                ConnSize(kind, u, tls_count(u))
                for u in _pareto_units(rng, n, int((budget - 8.5 * n) / 1.5))
            ]
        quic_units = int((packets * V6_SHARE * QUIC_OF_V6 - 3 * nq) * 3 / 4)
        return out + [
            ConnSize(Kind.QUIC, u, quic_count(u)) for u in _pareto_units(rng, nq, quic_units)
        ]

    def _timing(self, units: int, unit_bytes: int) -> Timing:
        rng, span = self.rng, self.params.duration_us
        rtt = rng.randrange(8 * MS, 120 * MS)
        rate = math.exp(rng.uniform(math.log(2e6), math.log(2e8)))  # bit/s, log-uniform
        interval = max(1, int(unit_bytes * 8 * SECOND / rate))
        latest = int(span * 0.95) - units * interval - 5 * rtt - 60 * MS
        start = rng.randrange(60 * MS, max(61 * MS, latest))
        room = span - start - 5 * rtt - 60 * MS
        return Timing(start, rtt, max(1, min(interval, room // units)))

    def connections(self, sizes: Sequence[ConnSize], tagged: Sequence[bool]) -> list[Planned]:
        """Give each sized connection a client, a server (from its DNS lookup) and a time."""
        fillers = [self.rng.randbytes(pg.IPV4_SEGMENT) for _ in range(16)]
        out: list[Planned] = []
        for size, tag in zip(sizes, tagged, strict=True):
            rng, ipv6 = self.rng, size.kind is not Kind.TLS4
            client = self.site.client(rng, ipv6, tag)
            name, answers = rng.choice(self.site.services6 if ipv6 else self.site.services4)
            unit = (
                QUIC_PAYLOAD
                if size.kind is Kind.QUIC
                else (pg.IPV6_SEGMENT if ipv6 else pg.IPV4_SEGMENT)
            )
            timing = self._timing(size.units, unit)
            dns_rtt = rng.randrange(MS, 40 * MS)
            lookup_at = timing.start_us - dns_rtt - rng.randrange(100, 3 * MS)
            out.append(self.lookup(client, name, answers, lookup_at, dns_rtt))
            route, sport = client.to(ROUTER_MAC, answers[-1].value), self.port(client.ip)
            filler, seed = rng.choice(fillers), rng.getrandbits(32)
            source: FrameSource
            if size.kind is Kind.QUIC:
                source = QuicDownload(
                    route,
                    sport,
                    timing.start_us,
                    timing.rtt_us,
                    size.units,
                    timing.interval_us,
                    filler,
                    seed,
                )
            else:
                source = TlsDownload(
                    route,
                    sport,
                    name,
                    timing.start_us,
                    timing.rtt_us,
                    size.units,
                    timing.interval_us,
                    filler,
                    seed,
                )
            out.append(Planned(size.kind, size.packets, tag, ipv6, source))
        return out

    def lookup(
        self, client: Host, name: str, answers: tuple[DnsRecord, ...], t: int, rtt: int
    ) -> Planned:
        """One DNS transaction of `client` for `name`, answered with `answers`."""
        route = self.site.resolver_route(client)
        qtype = answers[-1].rtype
        lookup = DnsLookup(
            route, self.port(client.ip), self.rng.getrandbits(16), name, qtype, answers, t, rtt
        )
        return Planned(Kind.DNS, 2, bool(client.vlans), ":" in client.ip, lookup)

    def extra_lookups(self, tagged: Sequence[bool]) -> list[Planned]:
        """DNS transactions that no connection follows (cached or abandoned names)."""
        out, rng = [], self.rng
        for tag in tagged:
            ipv6 = rng.random() < V6_SHARE
            name, answers = rng.choice(self.site.services6 if ipv6 else self.site.services4)
            client = self.site.client(rng, ipv6, tag)
            t = rng.randrange(self.params.duration_us - 50 * MS)
            out.append(self.lookup(client, name, answers, t, rng.randrange(MS, 40 * MS)))
        return out


def plan(params: Params) -> list[Planned]:
    """Every flow of the capture, with exact packet counts that sum to params.packets."""
    return Planner(params).plan()


# --- output -------------------------------------------------------------------------------------


def generate(flows: Sequence[Planned], out: Path) -> tuple[int, int]:
    """Merge every flow by timestamp into a classic pcap; returns (packets, wire bytes).

    Equal timestamps keep pcapgen.merge_by_time's deterministic order.
    """
    sources = [p.source.frames() for p in flows]
    with out.open("wb") as stream, pg.PcapWriter(stream) as writer:
        writer.write_records(pg.merge_by_time(sources), offset_us=EPOCH_US)
    return writer.packets, writer.wire_bytes


def summary(
    flows: Sequence[Planned], packets: int, wire_bytes: int, out: Path, elapsed_s: float
) -> str:
    """Human-readable report of what was written."""
    flow_kinds = Counter(p.kind.value for p in flows)
    pkt_kinds: Counter[str] = Counter()
    for p in flows:
        pkt_kinds[p.kind.value] += p.packets
    tagged = sum(p.packets for p in flows if p.tagged)
    ipv6 = sum(p.packets for p in flows if p.ipv6)
    ip_flows = sum(n for kind, n in flow_kinds.items() if kind != Kind.ARP.value)
    lines = [
        f"wrote {out}: {packets:,} packets, {wire_bytes:,} bytes of frames",
        f"file size {out.stat().st_size:,} bytes",
        f"generated in {elapsed_s:.1f} s ({packets / elapsed_s:,.0f} packets/s)",
        f"VLAN-tagged {100 * tagged / packets:.1f} % of frames, IPv6 {100 * ipv6 / packets:.1f} %",
        f"IP flows: {ip_flows:,} (+{flow_kinds[Kind.ARP.value]} ARP exchanges)",
        "flows by kind:   " + ", ".join(f"{k} {n:,}" for k, n in sorted(flow_kinds.items())),
        "packets by kind: " + ", ".join(f"{k} {n:,}" for k, n in sorted(pkt_kinds.items())),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="output .pcap path")
    parser.add_argument("--packets", type=int, default=1_000_000, help="exact number of packets")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")
    parser.add_argument("--duration", type=float, default=10.0, help="capture span in seconds")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        flows = plan(Params(args.packets, args.seed, int(args.duration * SECOND)))
    except ValueError as exc:
        parser.error(str(exc))
    packets, wire_bytes = generate(flows, args.out)
    print(summary(flows, packets, wire_bytes, args.out, time.perf_counter() - started))
    if packets != args.packets:
        print(f"error: wrote {packets} packets, planned {args.packets}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
