"""Build synthetic frames layer by layer and write them as classic pcap files.

Used by tests, by the demo capture generator (`pcaps/demo/gen_demo.py`) and by the benchmark
generator (`bench/gen_site_pcap.py`); the monitor itself never imports it. Reads no config.

Layers: Ethernet with 802.1Q / QinQ tags, ARP, IPv4 (with fragmentation), IPv6, TCP, UDP,
ICMP and ICMPv6 echo. Every checksum (IPv4 header, TCP, UDP, ICMP, ICMPv6) is computed, so
the frames pass any checksum-validating parser. Application payloads: DNS (through dpkt.dns),
TLS ClientHello/ServerHello (hand-built records with SNI, ALPN, supported_versions,
key_share), HTTP, RTSP with SDP, RTP/RTCP, NTP, QUIC-like long/short headers and STUN.

`TcpSession` keeps both sides' sequence numbers for handshakes, data, ACKs and FIN closes.
`FrameTemplate` is the fast path for benchmarks: a prebuilt frame whose IPv4 id and a run of
TCP/UDP fields are patched per packet with `struct.pack_into`, with both checksums updated
incrementally (RFC 1624 arithmetic) instead of being recomputed over the payload.
`merge_by_time` interleaves per-flow record streams into one time-ordered stream;
`PcapWriter` writes classic pcap (microsecond timestamps, little-endian); `Trace` collects
frames out of order and writes them sorted by time. `HIKVISION_OUIS` / `DAHUA_OUIS` are
vendor MAC prefixes for fixtures.

Timestamps are integers in microseconds. Addresses are passed as text to the `Route.of` /
`*_frame` helpers and as packed bytes to the per-layer builders.

Known limits: no IPv6 extension headers or IPv6 fragmentation, no TCP options beyond the
SYN's MSS/window-scale/SACK-permitted, no pcapng output; TLS records are structurally valid
but carry no real cryptography; builders raise ValueError on impossible arguments.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import operator
import os
import random
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import dpkt

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
LINKTYPE_ETHERNET = 1
BROADCAST_MAC = b"\xff" * 6
ETH_MIN_FRAME = 60
IPV4_SEGMENT = 1448
IPV6_SEGMENT = 1428
NTP_UNIX_OFFSET_S = 2_208_988_800

_U16 = struct.Struct(">H")
_ID_AND_SUM = struct.Struct(">H4sH")  # IPv4 identification, flags..protocol, checksum
_ETH_HEAD = struct.Struct(">6s6s")
_IPV4 = struct.Struct(">BBHHHBBH4s4s")
_IPV6 = struct.Struct(">IHBB16s16s")
_TCP = struct.Struct(">HHIIBBHHH")
_UDP = struct.Struct(">HHHH")
_ICMP_ECHO = struct.Struct(">BBHHH")
_ARP = struct.Struct(">HHBBH6s4s6s4s")
_RTP = struct.Struct(">BBHII")
_PCAP_GLOBAL = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_SYN_OPTIONS_TAIL = bytes([1, 3, 3, 7, 1, 1, 4, 2])  # NOP, window scale 7, NOP, NOP, SACK-OK


class TcpFlag(enum.IntFlag):
    """TCP header flag bits."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20


class DnsType(enum.IntEnum):
    """DNS record types the builders support."""

    A = 1
    CNAME = 5
    AAAA = 28


# --- addresses and checksums -------------------------------------------------------------


def mac_bytes(text: str) -> bytes:
    """`"bc:ad:28:00:00:01"` (or with dashes) -> 6 bytes."""
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return raw


def ip_bytes(text: str) -> bytes:
    """Textual IPv4 or IPv6 address -> packed 4 or 16 bytes."""
    return ipaddress.ip_address(text).packed


def ip_text(packed: bytes) -> str:
    """Packed 4- or 16-byte address -> text."""
    return str(ipaddress.ip_address(packed))


def internet_checksum(data: bytes | bytearray) -> int:
    """RFC 1071 one's-complement checksum (uses sum-of-words == big integer mod 0xFFFF)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = int.from_bytes(data, "big")
    if total == 0:
        return 0xFFFF
    return 0xFFFF - (total % 0xFFFF or 0xFFFF)


def pseudo_header(src_ip: bytes, dst_ip: bytes, proto: int, length: int) -> bytes:
    """The IPv4 or IPv6 pseudo-header that TCP, UDP and ICMPv6 checksums cover."""
    if len(src_ip) == 4:
        return src_ip + dst_ip + bytes((0, proto)) + _U16.pack(length)
    return src_ip + dst_ip + length.to_bytes(4, "big") + bytes((0, 0, 0, proto))


def _with_checksum(data: bytes, at: int, checksum: int) -> bytes:
    return data[:at] + _U16.pack(checksum) + data[at + 2 :]


# --- layer 2 -------------------------------------------------------------------------------


def vlan_tags(vlans: Sequence[int]) -> bytes:
    """802.1Q tag (one id) or QinQ tags (outer 802.1ad S-tag, inner C-tag), outermost first."""
    if len(vlans) > 2:
        raise ValueError("at most two VLAN tags (QinQ) are supported")
    tpids = (ETH_P_8021Q,) if len(vlans) == 1 else (ETH_P_8021AD, ETH_P_8021Q)
    out = b""
    for tpid, vid in zip(tpids, vlans, strict=False):
        if not 0 < vid < 4095:
            raise ValueError(f"VLAN id out of range: {vid}")
        out += _U16.pack(tpid) + _U16.pack(vid)
    return out


def ethernet(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, vlans: Sequence[int] = ()
) -> bytes:
    """Ethernet II frame, optionally tagged, zero-padded to the 60-byte minimum (no FCS)."""
    frame = _ETH_HEAD.pack(dst, src) + vlan_tags(vlans) + _U16.pack(ethertype) + payload
    if len(frame) < ETH_MIN_FRAME:
        frame += bytes(ETH_MIN_FRAME - len(frame))
    return frame


def arp(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    """ARP payload for Ethernet/IPv4 (op 1 request, 2 reply)."""
    return _ARP.pack(1, ETH_P_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)


# --- layer 3 -------------------------------------------------------------------------------


def ipv4(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0,
    ttl: int = 64,
    tos: int = 0,
    dont_fragment: bool = True,
    more_fragments: bool = False,
    fragment_offset: int = 0,
) -> bytes:
    """IPv4 packet with a 20-byte header and a valid header checksum.

    `fragment_offset` is in bytes and must be a multiple of 8.
    """
    if fragment_offset % 8:
        raise ValueError("fragment offset must be a multiple of 8 bytes")
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0)
    header = _IPV4.pack(
        0x45,
        tos,
        20 + len(payload),
        ident & 0xFFFF,
        flags | fragment_offset // 8,
        ttl,
        proto,
        0,
        src,
        dst,
    )
    return _with_checksum(header, 10, internet_checksum(header)) + payload


def ipv4_fragments(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    *,
    mtu: int = 1500,
    ident: int,
    ttl: int = 64,
) -> list[bytes]:
    """Split an upper-layer payload (checksum already final) into IPv4 fragments for `mtu`."""
    chunk = (mtu - 20) // 8 * 8
    if chunk <= 0:
        raise ValueError(f"MTU too small: {mtu}")
    offsets = range(0, len(payload), chunk)
    return [
        ipv4(
            src,
            dst,
            proto,
            payload[off : off + chunk],
            ident=ident,
            ttl=ttl,
            dont_fragment=False,
            more_fragments=off + chunk < len(payload),
            fragment_offset=off,
        )
        for off in offsets
    ]


def ipv6(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
    flow_label: int = 0,
    traffic_class: int = 0,
) -> bytes:
    """IPv6 packet with a fixed 40-byte header and no extension headers."""
    first = (6 << 28) | (traffic_class << 20) | (flow_label & 0xFFFFF)
    return _IPV6.pack(first, len(payload), next_header, hop_limit, src, dst) + payload


# --- layer 4 -------------------------------------------------------------------------------


def tcp_segment(
    src_ip: bytes,
    dst_ip: bytes,
    sport: int,
    dport: int,
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    window: int = 64240,
    options: bytes = b"",
) -> bytes:
    """TCP header (+ options, padded to 4 bytes by the caller) and payload, checksum set."""
    if len(options) % 4:
        raise ValueError("TCP options must be padded to a multiple of 4 bytes")
    offset = (20 + len(options)) // 4
    header = _TCP.pack(
        sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, flags, window, 0, 0
    )
    segment = header + options + payload
    pseudo = pseudo_header(src_ip, dst_ip, IPPROTO_TCP, len(segment))
    return _with_checksum(segment, 16, internet_checksum(pseudo + segment))


def udp_datagram(src_ip: bytes, dst_ip: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """UDP header and payload with the checksum set (0 is sent as 0xFFFF)."""
    datagram = _UDP.pack(sport, dport, 8 + len(payload), 0) + payload
    pseudo = pseudo_header(src_ip, dst_ip, IPPROTO_UDP, len(datagram))
    return _with_checksum(datagram, 6, internet_checksum(pseudo + datagram) or 0xFFFF)


def icmp_echo(ident: int, seq: int, payload: bytes, *, reply: bool = False) -> bytes:
    """ICMPv4 echo request (type 8) or reply (type 0)."""
    message = _ICMP_ECHO.pack(0 if reply else 8, 0, 0, ident, seq) + payload
    return _with_checksum(message, 2, internet_checksum(message))


def icmpv6_echo(
    src_ip: bytes, dst_ip: bytes, ident: int, seq: int, payload: bytes, *, reply: bool = False
) -> bytes:
    """ICMPv6 echo request (128) or reply (129); the checksum covers the pseudo-header."""
    message = _ICMP_ECHO.pack(129 if reply else 128, 0, 0, ident, seq) + payload
    pseudo = pseudo_header(src_ip, dst_ip, IPPROTO_ICMPV6, len(message))
    return _with_checksum(message, 2, internet_checksum(pseudo + message))


# --- frames along a route --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """One direction of a conversation as the mirror port sees it: MACs, IPs, VLAN tags."""

    src_mac: bytes
    dst_mac: bytes
    src_ip: bytes
    dst_ip: bytes
    vlans: tuple[int, ...] = ()

    @classmethod
    def of(
        cls, src_mac: str, src_ip: str, dst_mac: str, dst_ip: str, vlans: Sequence[int] = ()
    ) -> Route:
        """Build from text; both IPs must be the same version."""
        src, dst = ip_bytes(src_ip), ip_bytes(dst_ip)
        if len(src) != len(dst):
            raise ValueError(f"mixed IP versions: {src_ip} -> {dst_ip}")
        return cls(mac_bytes(src_mac), mac_bytes(dst_mac), src, dst, tuple(vlans))

    @property
    def is_ipv6(self) -> bool:
        """True when the route carries IPv6."""
        return len(self.src_ip) == 16

    def reverse(self) -> Route:
        """The same route in the opposite direction (same VLAN tags)."""
        return Route(self.dst_mac, self.src_mac, self.dst_ip, self.src_ip, self.vlans)


def ip_frame(route: Route, proto: int, l4: bytes, *, ident: int = 0, ttl: int = 64) -> bytes:
    """Wrap an upper-layer payload in IPv4 or IPv6 (by address family) and Ethernet."""
    if route.is_ipv6:
        packet, ethertype = ipv6(route.src_ip, route.dst_ip, proto, l4, hop_limit=ttl), ETH_P_IPV6
    else:
        packet = ipv4(route.src_ip, route.dst_ip, proto, l4, ident=ident, ttl=ttl)
        ethertype = ETH_P_IPV4
    return ethernet(route.dst_mac, route.src_mac, ethertype, packet, route.vlans)


def tcp_frame(
    route: Route,
    sport: int,
    dport: int,
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    ident: int = 0,
    window: int = 64240,
    options: bytes = b"",
) -> bytes:
    """A complete Ethernet/IP/TCP frame."""
    segment = tcp_segment(
        route.src_ip,
        route.dst_ip,
        sport,
        dport,
        seq=seq,
        ack=ack,
        flags=flags,
        payload=payload,
        window=window,
        options=options,
    )
    return ip_frame(route, IPPROTO_TCP, segment, ident=ident)


def udp_frame(route: Route, sport: int, dport: int, payload: bytes, *, ident: int = 0) -> bytes:
    """A complete Ethernet/IP/UDP frame."""
    datagram = udp_datagram(route.src_ip, route.dst_ip, sport, dport, payload)
    return ip_frame(route, IPPROTO_UDP, datagram, ident=ident)


def udp_fragment_frames(
    route: Route, sport: int, dport: int, payload: bytes, *, ident: int, mtu: int = 1500
) -> list[bytes]:
    """A UDP datagram larger than the MTU, as a list of IPv4 fragment frames."""
    if route.is_ipv6:
        raise ValueError("IPv6 fragmentation is not supported")
    datagram = udp_datagram(route.src_ip, route.dst_ip, sport, dport, payload)
    packets = ipv4_fragments(
        route.src_ip, route.dst_ip, IPPROTO_UDP, datagram, mtu=mtu, ident=ident
    )
    return [ethernet(route.dst_mac, route.src_mac, ETH_P_IPV4, p, route.vlans) for p in packets]


def icmp_echo_frame(
    route: Route, ident: int, seq: int, payload: bytes, *, reply: bool = False, ip_ident: int = 0
) -> bytes:
    """ICMP (IPv4) or ICMPv6 echo request/reply frame."""
    if route.is_ipv6:
        msg = icmpv6_echo(route.src_ip, route.dst_ip, ident, seq, payload, reply=reply)
        return ip_frame(route, IPPROTO_ICMPV6, msg)
    return ip_frame(
        route, IPPROTO_ICMP, icmp_echo(ident, seq, payload, reply=reply), ident=ip_ident
    )


def arp_frame(
    op: int,
    sender_mac: str,
    sender_ip: str,
    target_ip: str,
    *,
    target_mac: str = "00:00:00:00:00:00",
    vlans: Sequence[int] = (),
) -> bytes:
    """ARP request (op 1, broadcast) or reply (op 2, unicast to `target_mac`)."""
    smac, tmac = mac_bytes(sender_mac), mac_bytes(target_mac)
    body = arp(op, smac, ip_bytes(sender_ip), tmac, ip_bytes(target_ip))
    return ethernet(BROADCAST_MAC if op == 1 else tmac, smac, ETH_P_ARP, body, vlans)


# --- TCP sessions ---------------------------------------------------------------------------


class TcpSession:
    """One TCP connection: builds frames for both sides with consistent seq/ack and IP ids.

    Side 0 is the client (the route's source), side 1 the server. Every segment acknowledges
    everything the other side has sent so far (no loss, no reordering).
    """

    def __init__(
        self,
        route: Route,
        sport: int,
        dport: int,
        *,
        client_isn: int = 1_000_000,
        server_isn: int = 2_000_000,
        ip_ids: tuple[int, int] = (1, 1),
        window: int = 64240,
    ) -> None:
        self.route = route
        self.segment_size = IPV6_SEGMENT if route.is_ipv6 else IPV4_SEGMENT
        self._routes = (route, route.reverse())
        self._ports = ((sport, dport), (dport, sport))
        self._next_seq = [client_isn & 0xFFFFFFFF, server_isn & 0xFFFFFFFF]
        self._ip_id = list(ip_ids)
        self._window = window

    @staticmethod
    def _side(from_client: bool) -> int:
        return 0 if from_client else 1

    def next_seq(self, from_client: bool) -> int:
        """The sequence number the side's next segment will carry."""
        return self._next_seq[self._side(from_client)]

    def next_ip_id(self, from_client: bool) -> int:
        """The IPv4 id the side's next packet will carry."""
        return self._ip_id[self._side(from_client)]

    def advance(self, from_client: bool, nbytes: int, packets: int) -> None:
        """Account for segments the caller rendered itself (e.g. through a FrameTemplate)."""
        side = self._side(from_client)
        self._next_seq[side] = (self._next_seq[side] + nbytes) & 0xFFFFFFFF
        self._ip_id[side] = (self._ip_id[side] + packets) & 0xFFFF

    def segment(self, from_client: bool, flags: int, payload: bytes = b"") -> bytes:
        """One segment from a side; SYN and FIN consume one sequence number."""
        side = self._side(from_client)
        seq, other = self._next_seq[side], self._next_seq[1 - side]
        ack = other if flags & TcpFlag.ACK else 0
        sport, dport = self._ports[side]
        frame = tcp_frame(
            self._routes[side],
            sport,
            dport,
            seq=seq,
            ack=ack,
            flags=flags,
            payload=payload,
            ident=self._ip_id[side],
            window=self._window,
            options=self._syn_options() if flags & TcpFlag.SYN else b"",
        )
        used = len(payload) + (1 if flags & (TcpFlag.SYN | TcpFlag.FIN) else 0)
        self.advance(from_client, used, 1)
        return frame

    def _syn_options(self) -> bytes:
        mss = self.segment_size + 12
        return bytes((2, 4)) + _U16.pack(mss) + _SYN_OPTIONS_TAIL

    def handshake(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK."""
        return [
            self.segment(True, TcpFlag.SYN),
            self.segment(False, TcpFlag.SYN | TcpFlag.ACK),
            self.segment(True, TcpFlag.ACK),
        ]

    def send(self, from_client: bool, data: bytes) -> list[bytes]:
        """Data split into segment_size chunks; the last one carries PSH."""
        size = self.segment_size
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        flags = [TcpFlag.ACK] * (len(chunks) - 1) + [TcpFlag.ACK | TcpFlag.PSH]
        return [self.segment(from_client, f, c) for f, c in zip(flags, chunks, strict=True)]

    def ack(self, from_client: bool) -> bytes:
        """A pure ACK."""
        return self.segment(from_client, TcpFlag.ACK)

    def close(self, from_client: bool = True) -> list[bytes]:
        """FIN-ACK from the closing side, FIN-ACK back, final ACK."""
        fin = TcpFlag.FIN | TcpFlag.ACK
        return [
            self.segment(from_client, fin),
            self.segment(not from_client, fin),
            self.segment(from_client, TcpFlag.ACK),
        ]

    def reset(self, from_client: bool) -> bytes:
        """RST-ACK from a side."""
        return self.segment(from_client, TcpFlag.RST | TcpFlag.ACK)

    def template(
        self, from_client: bool, payload: bytes, flags: int = TcpFlag.ACK
    ) -> FrameTemplate:
        """A FrameTemplate for this side whose seq and ack are patched per packet."""
        side = self._side(from_client)
        sport, dport = self._ports[side]
        frame = tcp_frame(
            self._routes[side],
            sport,
            dport,
            seq=0,
            ack=0,
            flags=flags,
            payload=payload,
            window=self._window,
        )
        return FrameTemplate.of(frame, 4, "II")


# --- fast templates ------------------------------------------------------------------------


def _l3_offset(frame: bytes) -> tuple[int, int]:
    off = 12
    ethertype = _U16.unpack_from(frame, off)[0]
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD):
        off += 4
        ethertype = _U16.unpack_from(frame, off)[0]
    return off + 2, ethertype


@dataclass(frozen=True, slots=True)
class FrameTemplate:
    """A prebuilt IPv4/IPv6 TCP or UDP frame with per-packet patch fields.

    `render(ip_id, values)` writes `values` (big-endian, `patch`) at `patch_at` bytes into the
    L4 header, sets the IPv4 id, and updates both checksums from precomputed sums instead of
    re-summing the payload: the base sum is taken with the patched words (the patch region
    widened to 16-bit boundaries) zeroed, and since 2**16 == 1 (mod 0xFFFF) those words add
    back as one big-endian integer. Only the header part (`head`) is copied per packet; the
    payload (`tail`) is appended as is. `render` is a closure over these fields (fast path).
    """

    head: bytes
    tail: bytes
    ip_at: int  # offset of the IPv4 header, -1 for IPv6
    ip_mid: bytes  # IPv4 flags, fragment offset, TTL, protocol (between id and checksum)
    ip_sum: int
    l4_sum: int
    csum_at: int
    zero_csum: int  # what a computed 0 is sent as: 0xFFFF for UDP, 0 for TCP
    patch: struct.Struct
    patch_abs: int
    words: tuple[int, int]  # [start, end) of the 16-bit words the patch touches
    render: Callable[[int, tuple[int, ...]], bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "render", _renderer(self))

    @classmethod
    def of(cls, frame: bytes, patch_at: int, patch_format: str) -> FrameTemplate:
        """Analyse a frame built by this module; patch_at is relative to the L4 header."""
        l3, ethertype = _l3_offset(frame)
        if ethertype == ETH_P_IPV4:
            l4 = l3 + (frame[l3] & 0x0F) * 4
            proto, l4_len = frame[l3 + 9], _U16.unpack_from(frame, l3 + 2)[0] - (l4 - l3)
            src, dst, ip_at = frame[l3 + 12 : l3 + 16], frame[l3 + 16 : l3 + 20], l3
        elif ethertype == ETH_P_IPV6:
            l4, proto, l4_len = l3 + 40, frame[l3 + 6], _U16.unpack_from(frame, l3 + 4)[0]
            src, dst, ip_at = frame[l3 + 8 : l3 + 24], frame[l3 + 24 : l3 + 40], -1
        else:
            raise ValueError(f"not an IP frame (ethertype {ethertype:#06x})")
        if proto not in (IPPROTO_TCP, IPPROTO_UDP):
            raise ValueError(f"templates support TCP and UDP, not protocol {proto}")
        patch = struct.Struct(">" + patch_format)
        csum_at, start = l4 + (16 if proto == IPPROTO_TCP else 6), l4 + patch_at
        words = (start - (start - l4) % 2, start + patch.size + (start + patch.size - l4) % 2)
        if words[0] < csum_at + 2 and csum_at < words[1]:
            raise ValueError("the patch region must not touch the checksum field")
        work = bytearray(frame)
        work[start : start + patch.size] = bytes(patch.size)
        work[csum_at : csum_at + 2] = b"\x00\x00"
        base = work[l4 : words[0]] + bytes(words[1] - words[0]) + work[words[1] : l4 + l4_len]
        pseudo = pseudo_header(src, dst, proto, l4_len)
        l4_sum = int.from_bytes(pseudo + base + bytes(l4_len % 2), "big")
        ip_sum = 0
        if ip_at >= 0:
            work[ip_at + 4 : ip_at + 6] = work[ip_at + 10 : ip_at + 12] = b"\x00\x00"
            ip_sum = int.from_bytes(work[ip_at:l4], "big") % 0xFFFF
        split = max(csum_at + 2, words[1])
        return cls(
            head=bytes(work[:split]),
            tail=bytes(work[split:]),
            ip_at=ip_at,
            ip_mid=bytes(work[ip_at + 6 : ip_at + 10]) if ip_at >= 0 else b"",
            ip_sum=ip_sum,
            l4_sum=l4_sum % 0xFFFF,
            csum_at=csum_at,
            zero_csum=0xFFFF if proto == IPPROTO_UDP else 0,
            patch=patch,
            patch_abs=start,
            words=words,
        )


def _renderer(t: FrameTemplate) -> Callable[[int, tuple[int, ...]], bytes]:
    """The per-packet hot path, with every field bound to a local of the closure."""
    head, tail, join = t.head, t.tail, b"".join
    pack_patch, pack_u16, pack_ip = t.patch.pack_into, _U16.pack_into, _ID_AND_SUM.pack_into
    patch_abs, csum_at, zero_csum, l4_sum = t.patch_abs, t.csum_at, t.zero_csum, t.l4_sum
    w0, w1 = t.words
    is_ipv4, ip_id_at, ip_mid, ip_sum = t.ip_at >= 0, t.ip_at + 4, t.ip_mid, t.ip_sum

    def render(ip_id: int, values: tuple[int, ...]) -> bytes:
        buf = bytearray(head)
        pack_patch(buf, patch_abs, *values)
        total = l4_sum + int.from_bytes(buf[w0:w1], "big")
        pack_u16(buf, csum_at, 0xFFFF - (total % 0xFFFF or 0xFFFF) or zero_csum)
        if is_ipv4:
            ip_id &= 0xFFFF
            total = ip_sum + ip_id
            pack_ip(buf, ip_id_at, ip_id, ip_mid, 0xFFFF - (total % 0xFFFF or 0xFFFF))
        return join((buf, tail))

    return render


# --- DNS -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One answer record: `value` is an address for A/AAAA, a name for CNAME."""

    name: str
    rtype: DnsType
    value: str
    ttl: int = 300


def _dns_rr(record: DnsRecord) -> dpkt.dns.DNS.RR:
    rr = dpkt.dns.DNS.RR(
        name=record.name, type=int(record.rtype), cls=dpkt.dns.DNS_IN, ttl=record.ttl
    )
    if record.rtype is DnsType.CNAME:
        rr.cname = record.value
    elif record.rtype is DnsType.AAAA:
        rr.ip6 = ip_bytes(record.value)
    else:
        rr.ip = ip_bytes(record.value)
    return rr


def dns_query(txid: int, name: str, qtype: DnsType = DnsType.A) -> bytes:
    """A recursive query with one question."""
    question = dpkt.dns.DNS.Q(name=name, type=int(qtype), cls=dpkt.dns.DNS_IN)
    return bytes(dpkt.dns.DNS(id=txid, op=dpkt.dns.DNS_RD, qd=[question]))


def dns_response(
    txid: int, name: str, qtype: DnsType, answers: Sequence[DnsRecord], *, rcode: int = 0
) -> bytes:
    """The answer to `dns_query(txid, name, qtype)` (names compressed by dpkt)."""
    question = dpkt.dns.DNS.Q(name=name, type=int(qtype), cls=dpkt.dns.DNS_IN)
    op = dpkt.dns.DNS_QR | dpkt.dns.DNS_RD | dpkt.dns.DNS_RA | (rcode & 0xF)
    msg = dpkt.dns.DNS(id=txid, op=op, qd=[question], an=[_dns_rr(r) for r in answers])
    return bytes(msg)


# --- TLS -----------------------------------------------------------------------------------

TLS_CIPHER_SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)
TLS_SIGNATURE_ALGORITHMS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
TLS_GROUP_X25519 = 0x001D


def _u8_prefixed(data: bytes) -> bytes:
    return bytes((len(data),)) + data


def _u16_prefixed(data: bytes) -> bytes:
    return _U16.pack(len(data)) + data


def _u16_list(values: Iterable[int]) -> bytes:
    return b"".join(_U16.pack(v) for v in values)


def tls_extension(ext_type: int, body: bytes) -> bytes:
    """One TLS extension: type, length, body."""
    return _U16.pack(ext_type) + _u16_prefixed(body)


def tls_record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    """A TLS record header (type, legacy version, length) followed by `body`."""
    return bytes((content_type,)) + _U16.pack(version) + _u16_prefixed(body)


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def _client_extensions(server_name: str, alpn: Sequence[str], key_share: bytes) -> bytes:
    name = server_name.encode("ascii")
    alpn_list = b"".join(_u8_prefixed(p.encode("ascii")) for p in alpn)
    parts = [
        tls_extension(0, _u16_prefixed(b"\x00" + _u16_prefixed(name))),  # server_name
        tls_extension(10, _u16_prefixed(_u16_list((TLS_GROUP_X25519, 0x0017, 0x0018)))),
        tls_extension(11, b"\x01\x00"),  # ec_point_formats: uncompressed
        tls_extension(13, _u16_prefixed(_u16_list(TLS_SIGNATURE_ALGORITHMS))),
        tls_extension(16, _u16_prefixed(alpn_list)) if alpn else b"",
        tls_extension(43, _u8_prefixed(_u16_list((0x0304, 0x0303)))),  # supported_versions
        tls_extension(45, b"\x01\x01"),  # psk_key_exchange_modes: psk_dhe_ke
        tls_extension(51, _u16_prefixed(_U16.pack(TLS_GROUP_X25519) + _u16_prefixed(key_share))),
    ]
    return b"".join(parts)


def tls_client_hello(
    server_name: str,
    *,
    client_random: bytes,
    session_id: bytes = b"",
    alpn: Sequence[str] = ("h2", "http/1.1"),
) -> bytes:
    """A TLS 1.3-style ClientHello record carrying SNI `server_name`.

    The x25519 key share is derived from `client_random`, so output is deterministic.
    """
    if len(client_random) != 32:
        raise ValueError("client_random must be 32 bytes")
    key_share = hashlib.sha256(client_random).digest()
    body = (
        _U16.pack(0x0303)
        + client_random
        + _u8_prefixed(session_id)
        + _u16_prefixed(_u16_list(TLS_CIPHER_SUITES))
        + b"\x01\x00"
        + _u16_prefixed(_client_extensions(server_name, alpn, key_share))
    )
    return tls_record(22, _handshake(1, body), version=0x0301)


def tls_server_hello(*, server_random: bytes, session_id: bytes = b"") -> bytes:
    """ServerHello (TLS 1.3, TLS_AES_128_GCM_SHA256) followed by a ChangeCipherSpec record."""
    if len(server_random) != 32:
        raise ValueError("server_random must be 32 bytes")
    key_share = hashlib.sha256(server_random).digest()
    extensions = tls_extension(43, _U16.pack(0x0304)) + tls_extension(
        51, _U16.pack(TLS_GROUP_X25519) + _u16_prefixed(key_share)
    )
    body = (
        _U16.pack(0x0303)
        + server_random
        + _u8_prefixed(session_id)
        + _U16.pack(0x1301)
        + b"\x00"
        + _u16_prefixed(extensions)
    )
    return tls_record(22, _handshake(2, body)) + tls_record(20, b"\x01")


def tls_application_data(ciphertext: bytes) -> bytes:
    """An application_data record (content type 23) around opaque bytes."""
    return tls_record(23, ciphertext)


# --- HTTP, RTSP, SDP -----------------------------------------------------------------------


def _header_block(start_line: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    if body and not any(name.lower() == "content-length" for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_request(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """An HTTP request; Content-Length is added for a body unless given."""
    return _header_block(f"{method} {target} {version}", headers, body)


def http_response(
    status: int,
    reason: str,
    headers: Sequence[tuple[str, str]],
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """An HTTP response; Content-Length is added for a body unless given."""
    return _header_block(f"{version} {status} {reason}", headers, body)


def rtsp_request(
    method: str, url: str, cseq: int, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """An RTSP/1.0 request with its CSeq header first."""
    return _header_block(f"{method} {url} RTSP/1.0", [("CSeq", str(cseq)), *headers], b"")


def rtsp_response(
    cseq: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    status: int = 200,
    reason: str = "OK",
) -> bytes:
    """An RTSP/1.0 response; Content-Length is added for a body unless given."""
    return _header_block(f"RTSP/1.0 {status} {reason}", [("CSeq", str(cseq)), *headers], body)


def sdp(
    origin_ip: str,
    *,
    session_id: int,
    session_name: str = "Media Presentation",
    video: bool = True,
    audio: bool = False,
) -> bytes:
    """An SDP body as cameras return it to DESCRIBE: H.264 video, optional G.711 audio."""
    family = "IP6" if ":" in origin_ip else "IP4"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {origin_ip}",
        f"s={session_name}",
        f"c=IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",
        "t=0 0",
        "a=control:*",
    ]
    if video:
        lines += [
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 packetization-mode=1",
            "a=control:trackID=1",
        ]
    if audio:
        lines += ["m=audio 0 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=control:trackID=2"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# --- RTP, RTCP, NTP, QUIC, STUN --------------------------------------------------------------


def rtp(
    seq: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    payload_type: int = 96,
    marker: bool = False,
) -> bytes:
    """RTP version 2 header (no CSRCs, no extension) and payload."""
    second = (0x80 if marker else 0) | payload_type
    return _RTP.pack(0x80, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def ntp_timestamp(unix_us: int) -> bytes:
    """64-bit NTP timestamp (seconds since 1900, 32-bit fraction) for a Unix time in µs."""
    sec, usec = divmod(unix_us, 1_000_000)
    return struct.pack(">II", sec + NTP_UNIX_OFFSET_S, (usec << 32) // 1_000_000)


def rtcp_sender_report(
    ssrc: int, *, unix_us: int, rtp_timestamp: int, packets: int, octets: int, cname: str
) -> bytes:
    """Compound RTCP: a Sender Report (PT 200) without blocks plus SDES (PT 202) CNAME."""
    report = struct.pack(">BBHI", 0x80, 200, 6, ssrc) + ntp_timestamp(unix_us)
    report += struct.pack(">III", rtp_timestamp & 0xFFFFFFFF, packets, octets)
    item = bytes((1, len(cname))) + cname.encode("ascii") + b"\x00"
    item += bytes(-(len(item) + 4) % 4)
    sdes = struct.pack(">BBHI", 0x81, 202, (len(item) + 4) // 4, ssrc) + item
    return report + sdes


def rtcp_receiver_report(
    ssrc: int, source_ssrc: int, *, highest_seq: int, jitter: int = 0
) -> bytes:
    """RTCP Receiver Report (PT 201) with one report block and no loss."""
    block = struct.pack(">IIIIII", source_ssrc, 0, highest_seq, jitter, 0, 0)
    return struct.pack(">BBHI", 0x81, 201, 7, ssrc) + block


def ntp_packet(
    mode: int,
    *,
    transmit_us: int,
    origin_us: int = 0,
    receive_us: int = 0,
    stratum: int = 0,
    reference_id: bytes = b"\x00\x00\x00\x00",
) -> bytes:
    """NTPv4 packet (mode 3 client, 4 server); zero timestamps stay zero."""

    def stamp(us: int) -> bytes:
        return ntp_timestamp(us) if us else bytes(8)

    head = struct.pack(">BBbbII4s", (4 << 3) | mode, stratum, 6, -20, 0, 0, reference_id)
    reference = stamp(receive_us - 60_000_000) if receive_us else bytes(8)
    return head + reference + stamp(origin_us) + stamp(receive_us) + stamp(transmit_us)


def quic_long_header(dcid: bytes, scid: bytes, packet_number: int, payload: bytes) -> bytes:
    """A QUIC v1 Initial-type long header packet (4-byte packet number, no token)."""
    length = 4 + len(payload)
    return (
        bytes((0xC3,))
        + (1).to_bytes(4, "big")
        + _u8_prefixed(dcid)
        + _u8_prefixed(scid)
        + b"\x00"
        + _U16.pack(0x4000 | length)
        + packet_number.to_bytes(4, "big")
        + payload
    )


def quic_short_header(dcid: bytes, packet_number: int, payload: bytes) -> bytes:
    """A QUIC 1-RTT short header packet (4-byte packet number)."""
    return bytes((0x43,)) + dcid + (packet_number & 0xFFFFFFFF).to_bytes(4, "big") + payload


def stun_attribute(attr_type: int, value: bytes) -> bytes:
    """One STUN attribute, value padded to 4 bytes."""
    return _U16.pack(attr_type) + _u16_prefixed(value) + bytes(-len(value) % 4)


def stun_message(msg_type: int, transaction_id: bytes, attributes: bytes = b"") -> bytes:
    """RFC 5389 message: type, length, magic cookie 0x2112A442, 12-byte transaction id."""
    if len(transaction_id) != 12:
        raise ValueError("STUN transaction id must be 12 bytes")
    head = _U16.pack(msg_type) + _U16.pack(len(attributes)) + b"\x21\x12\xa4\x42"
    return head + transaction_id + attributes


def invert_bytes(data: bytes) -> bytes:
    """Every byte b -> 0xFF - b (the bit-inverted form some P2P stacks use for STUN)."""
    return bytes(0xFF - b for b in data)


# --- fixture data --------------------------------------------------------------------------

# Camera-vendor MAC prefixes (IEEE MA-L) as listed in ../shared/research/covered_vendor_oui.tsv,
# which took them from the IEEE registry shipped in netaddr 1.3.0; a test checks every entry
# against that file. Synthetic captures use them so vendor identification has something to find.
HIKVISION_OUIS = ("bc:ad:28", "28:57:be", "a4:14:37", "44:19:b6", "c0:56:e3", "4c:bd:8f")
DAHUA_OUIS = ("b4:4c:3b", "3c:ef:8c", "e0:50:8b", "38:af:29")


def host_mac(prefix: str, serial: int) -> str:
    """A MAC made of a 3-byte prefix (an OUI, or e.g. "02:00:00" for locally administered)
    and the low 24 bits of `serial`."""
    return f"{prefix}:{(serial >> 16) & 0xFF:02x}:{(serial >> 8) & 0xFF:02x}:{serial & 0xFF:02x}"


# --- pcap output -----------------------------------------------------------------------------


Record = tuple[int, bytes]


class _Cursor:
    """A stream being merged and its next record."""

    __slots__ = ("record", "source")

    def __init__(self, record: Record, source: Iterator[Record]) -> None:
        self.record = record
        self.source = source


def _first_records(sources: Iterable[Iterator[Record]]) -> list[tuple[int, int, _Cursor]]:
    waiting = []
    for order, source in enumerate(sources):
        first = next(source, None)
        if first is not None:
            waiting.append((first[0], order, _Cursor(first, source)))
    waiting.sort(key=operator.itemgetter(0, 1), reverse=True)  # earliest last, for pop()
    return waiting


def _drain(active: list[_Cursor], end: int, batch: list[Record]) -> list[_Cursor]:
    """Move every active stream's records before `end` into batch; return unfinished ones."""
    append, keep = batch.append, []
    for cursor in active:
        record: Record | None = cursor.record
        source = cursor.source
        while record is not None and record[0] < end:
            append(record)
            record = next(source, None)
        if record is not None:
            cursor.record = record
            keep.append(cursor)
    return keep


def merge_by_time(
    sources: Iterable[Iterator[Record]], *, window_us: int = 20_000
) -> Iterator[Record]:
    """Merge (ts_us, frame) streams, each sorted by time, into one stream sorted by time.

    Window by window, every stream is drained up to the window end and the window's records
    are sorted by timestamp (stable, so ties keep a deterministic order: streams by first
    timestamp then position, records in stream order). With thousands of interleaved
    streams this costs far less per packet than a heap merge.
    """
    waiting = _first_records(sources)
    active: list[_Cursor] = []
    batch: list[Record] = []
    end = 0
    while waiting or active:
        if not batch:  # skip empty windows: jump to the window of the next record
            heads = [cursor.record[0] for cursor in active]
            if waiting:
                heads.append(waiting[-1][0])
            end = max(end, min(heads) // window_us * window_us)
        end += window_us
        while waiting and waiting[-1][0] < end:
            active.append(waiting.pop()[2])
        batch = []
        active = _drain(active, end, batch)
        batch.sort(key=operator.itemgetter(0))
        yield from batch


class PcapWriter:
    """Classic pcap writer (magic a1b2c3d4, little-endian, µs timestamps).

    Records are batched in memory and written every `batch` packets and on `flush()` (use the
    writer as a context manager, or call flush() before closing the stream). Frames longer than
    `snaplen` are truncated; the record keeps the original length. `packets` and `wire_bytes`
    count what was written.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        snaplen: int = 262_144,
        linktype: int = LINKTYPE_ETHERNET,
        batch: int = 4096,
    ) -> None:
        self._stream = stream
        self._snaplen = snaplen
        self._batch = batch
        self._parts: list[bytes] = []
        self.packets = 0
        self.wire_bytes = 0
        stream.write(_PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def write(self, ts_us: int, frame: bytes | bytearray) -> None:
        """Append one record."""
        self.write_records(((ts_us, bytes(frame)),))

    def write_records(self, records: Iterable[Record], *, offset_us: int = 0) -> None:
        """Append (ts_us, frame) records, adding `offset_us` to each timestamp (fast path)."""
        pack, snaplen, parts = _PCAP_RECORD.pack, self._snaplen, self._parts
        append, limit = parts.append, 2 * self._batch
        packets = wire_bytes = 0
        for ts_us, frame in records:
            ts_us += offset_us
            wire = len(frame)
            append(pack(ts_us // 1_000_000, ts_us % 1_000_000, min(wire, snaplen), wire))
            append(frame if wire <= snaplen else frame[:snaplen])
            packets += 1
            wire_bytes += wire
            if len(parts) >= limit:
                self.flush()
        self.packets += packets
        self.wire_bytes += wire_bytes

    def flush(self) -> None:
        """Write the batched records to the stream."""
        if self._parts:
            self._stream.write(b"".join(self._parts))
            self._parts.clear()


class Trace:
    """Frames collected in any order, written to pcap sorted by time (ties keep add order)."""

    def __init__(self) -> None:
        self._records: list[tuple[int, int, bytes]] = []

    def __len__(self) -> int:
        return len(self._records)

    def add(self, ts_us: int, frame: bytes) -> None:
        """Add one frame at `ts_us`."""
        self._records.append((ts_us, len(self._records), frame))

    def add_burst(self, ts_us: int, frames: Iterable[bytes], gap_us: int) -> int:
        """Add frames `gap_us` apart starting at `ts_us`; returns the time after the last."""
        for frame in frames:
            self.add(ts_us, frame)
            ts_us += gap_us
        return ts_us

    def records(self) -> list[tuple[int, bytes]]:
        """(ts_us, frame) sorted by time."""
        return [(ts, frame) for ts, _, frame in sorted(self._records, key=lambda r: r[:2])]

    def write(self, path: str | os.PathLike[str], *, snaplen: int = 262_144) -> int:
        """Write the sorted trace to `path`; returns the number of wire bytes."""
        with open(path, "wb") as stream, PcapWriter(stream, snaplen=snaplen) as writer:
            for ts_us, frame in self.records():
                writer.write(ts_us, frame)
        return writer.wire_bytes


class TraceBuilder:
    """A capture being built from one seeded random source: the moves generators share.

    ``pcaps/demo/gen_demo.py`` and ``pcaps/scenarios/gen_scenarios.py`` build on it; the
    order in which it draws from ``rng`` is part of their committed captures' bytes.
    """

    def __init__(self, rng: random.Random) -> None:
        self.trace = Trace()
        self.rng = rng

    def port(self) -> int:
        """A random ephemeral port."""
        return self.rng.randrange(32768, 61000)

    def session(self, route: Route, dport: int) -> TcpSession:
        """A TCP session from a random port with random ISNs and IP ids."""
        rng = self.rng
        return TcpSession(
            route,
            self.port(),
            dport,
            client_isn=rng.getrandbits(32),
            server_isn=rng.getrandbits(32),
            ip_ids=(rng.getrandbits(16), rng.getrandbits(16)),
        )

    def connect(self, s: TcpSession, t: int, rtt_us: int) -> int:
        """SYN at t, SYN-ACK after the round trip, ACK; returns the time after the ACK."""
        syn, syn_ack, ack = s.handshake()
        self.trace.add(t, syn)
        self.trace.add(t + rtt_us, syn_ack)
        self.trace.add(t + rtt_us + 150, ack)
        return t + rtt_us + 300

    def converse(
        self, s: TcpSession, t: int, messages: Sequence[tuple[bool, bytes]], gap_us: int
    ) -> int:
        """Send each (from_client, data) `gap_us` after the previous; returns the next time."""
        for from_client, data in messages:
            t = self.trace.add_burst(t, s.send(from_client, data), 120) + gap_us
        return t

    def lookup(self, route: Route, t: int, name: str, answers: Sequence[DnsRecord]) -> int:
        """A DNS query on `route` and its answer 4-30 ms later; returns the answer time."""
        qtype = answers[-1].rtype if answers else DnsType.A
        txid, sport = self.rng.getrandbits(16), self.port()
        rtt = self.rng.randrange(4_000, 30_000)
        query = dns_query(txid, name, qtype)
        self.trace.add(t, udp_frame(route, sport, 53, query, ident=txid))
        answer = dns_response(txid, name, qtype, answers)
        self.trace.add(t + rtt, udp_frame(route.reverse(), 53, sport, answer, ident=txid))
        return t + rtt
