"""The general header walk: every link type, tag, tunnel, fragment and malformation.

:class:`FrameWalk` is created only for the frames the inline fast path in
:mod:`netwatch.decode.frames` does not take (QinQ, MPLS, PPPoE, IP options, IPv6
extension headers, fragments, tunnels, other link types, anything malformed). It walks
the headers with ``struct`` and returns the innermost-IP :data:`Decoded` tuple, or None
after counting a reason through the decoder's ``fail``/``other`` callbacks.

Link types: Ethernet, raw IP, Linux cooked (v1, v2), BSD NULL/LOOP, PPP (with or without
HDLC-like framing), 802.11 data frames with LLC/SNAP (bare or after a radiotap header).

Encapsulations: 802.1Q/802.1ad/QinQ and VN-Tag (802.1Qbh, 6 bytes), in any order (at most
:data:`MAX_VLAN_TAGS` tags per Ethernet header), IEEE 802.1ah PBB (the I-tag, then the
customer's Ethernet frame), Cisco FabricPath (the 16-byte outer header, then the classical
Ethernet frame), MPLS label stacks (at most :data:`MAX_LABELS` labels) carrying IP or an
Ethernet pseudowire (with or without control word), PPPoE sessions, PPP in GRE, GRE
(checksum, key, sequence, PPTP v1 acknowledgment), ERSPAN types I (no header), II (8 bytes)
and III (12 bytes, plus the optional 8-byte platform sub-header), IP-in-IP and 6in4, and the
UDP tunnels of :mod:`netwatch.decode.tunnels` (VXLAN, Geneve, Teredo, AYIYA, GTPv1-U, GRE
in UDP). Encapsulations (tunnels, pseudowires, MAC-in-MAC) nest at most
:data:`MAX_TUNNEL_DEPTH` deep. VXLAN-GPE is not decapsulated.

A UDP tunnel's outer datagram is a flow of its own, as in Zeek's conn.log: each one the
walk decapsulates is appended to the decoder's ``outer`` list (an
:class:`~netwatch.decode.tunnels.OuterHop`) before the inner packet is walked, so the
pipeline accounts it even when the inner packet turns out malformed. A malformed tunnel
header is counted (``Decoder.tunnels``, by reason, as is a UDP tunnel past the depth bound)
and its datagram stays a plain UDP packet of its flow, as in Zeek. IPv6's
"no next header" (59) carries no flow (Zeek logs none; a Teredo bubble is one).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from netwatch.capture.linktypes import LinkType
from netwatch.decode.tunnels import (
    AYIYA,
    GENEVE,
    GTPV1,
    IPV6_NO_NEXT,
    OUTER_PACKETS,
    TEREDO,
    VXLAN,
    VXLAN_PORTS,
    OuterHop,
    Parsed,
    Payload,
    Tunnel,
    TunnelHeader,
    ayiya,
    geneve,
    gtpv1,
    teredo,
    tunnel_kind,
    vxlan,
)

if TYPE_CHECKING:
    from netwatch.decode.frames import Decoded, Decoder

FRAGMENT = 0x10000
NO_VLAN = -1
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMP6 = 1, 6, 17, 58
MAX_TUNNEL_DEPTH = 8
MAX_LABELS = 16
#: 802.1Q/802.1ad tags read after one Ethernet header; a deeper stack is ``vlan_too_deep``
#: (real networks stack two, rarely three: the bound keeps a hostile frame's walk short).
MAX_VLAN_TAGS = 8

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
ETH_MPLS = frozenset({0x8847, 0x8848})
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558  # transparent Ethernet bridging (Ethernet over GRE/Geneve)
ETH_VNTAG = 0x8926  # VN-Tag (802.1Qbh): 4 bytes of tag, then the next EtherType
ETH_PBB = 0x88E7  # 802.1ah I-tag: 4 bytes (priority, flags, I-SID), then C-DA, C-SA, type
ETH_FABRICPATH = 0x8903  # Cisco FabricPath: FTag/TTL (2 bytes), then the inner frame
#: What the tag loop of :meth:`FrameWalk.ethertype` steps over: VLAN tags and VN-Tags.
ETH_SHIMS = ETH_VLAN_TAGS | {ETH_VNTAG}
ETH_ERSPAN_1_2, ETH_ERSPAN_3, ETH_PPP = 0x88BE, 0x22EB, 0x880B
#: Non-IP EtherTypes handed to the decoder's ``l2_hook`` (Hikvision SADP over layer 2).
L2_HOOK_ETHERTYPES = frozenset({0x8033})

NON_IP_NAMES = {
    0x0806: "arp",
    0x8035: "rarp",
    0x88CC: "lldp",
    0x888E: "eapol",
    0x8863: "pppoe_discovery",
    0x88F7: "ptp",
    0x8809: "slow_protocols",
    0x8033: "hik_sadp_l2",
    0x8899: "realtek",
    0x9000: "loopback",
}

_U16 = struct.Struct("!H")
_TAG = struct.Struct("!HH")
_IP4 = struct.Struct("!BxHHHxBxx4s4s")
_IP6 = struct.Struct("!IHBx16s16s")
_PORTS = struct.Struct("!HH")
_TCP_REST = struct.Struct("!IIBBH")
_EXT = struct.Struct("!BB")
_FRAG6 = struct.Struct("!BxHI")
_IP6_EXT = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_PPP_IP = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
_IP_VERSION = {4: ETH_IPV4, 6: ETH_IPV6}
IP_TUNNELS = frozenset({4, 41, 47})  # IP in IP, IPv6 in IP, GRE
#: Link types :meth:`FrameWalk.link` walks (the others have a fixed header: ``link_header``).
WALKED_LINKS = frozenset(
    {LinkType.PPP, LinkType.PPP_HDLC, LinkType.IEEE802_11, LinkType.IEEE802_11_RADIOTAP}
)


class Piece(NamedTuple):
    """Where a fragment sits in its datagram: byte offset, and whether more follow."""

    offset: int
    more: bool


class Rebuild(NamedTuple):
    """What walking a fragmented tunnel datagram needs once it is whole: the first
    fragment's bytes before its UDP header, its IP header length, and the walk's state."""

    head: bytes
    ip_header: int
    proto: int
    src: bytes
    dst: bytes
    mac_off: int
    vlan: int
    depth: int
    in_gtp: bool


class FrameWalk:
    """One frame's walk through its headers; holds the layer state instead of arguments."""

    __slots__ = (
        "_d",
        "depth",
        "dst",
        "frame",
        "in_gtp",
        "mac_off",
        "src",
        "tot",
        "ts",
        "vlan",
        "wirelen",
    )

    def __init__(self, decoder: Decoder, frame: bytes, wirelen: int, ts: float) -> None:
        self._d = decoder
        self.frame = frame
        self.wirelen = wirelen
        self.ts = ts
        self.depth = 0
        self.in_gtp = False
        self.mac_off = -1
        self.vlan = NO_VLAN
        self.src = self.dst = b""
        self.tot = 0

    def fail(self, reason: str) -> None:
        """Count the frame under ``reason``."""
        self._d.fail(reason)

    # -- link and layer 2.5 ---------------------------------------------------------------

    def link(self, linktype: int) -> Decoded | None:
        """The frame of a link type with a walk of its own (PPP, 802.11, radiotap)."""
        if linktype == LinkType.IEEE802_11_RADIOTAP:
            if len(self.frame) < 4:
                self.fail("link_truncated")
                return None
            return self.wifi(int.from_bytes(self.frame[2:4], "little"))
        if linktype == LinkType.IEEE802_11:
            return self.wifi(0)
        return self.ppp(0)

    def wifi(self, off: int) -> Decoded | None:
        """An 802.11 data frame (QoS, four-address and HT-control forms) carrying LLC/SNAP.
        Management, control, null-data and protected frames are not IP (counted as such)."""
        frame = self.frame
        if len(frame) < off + 24:
            self.fail("link_truncated")
            return None
        fc0, fc1 = frame[off], frame[off + 1]
        if (fc0 >> 2) & 3 != 2 or fc0 & 0x40:  # not data, or a data frame without data
            self._d.other("wifi_not_data")
            return None
        if fc1 & 0x40:
            self._d.other("wifi_protected")
            return None
        hdr = 24 + (6 if fc1 & 3 == 3 else 0)
        if fc0 & 0x80:  # QoS data: QoS control, and HT control when the order bit is set
            hdr += 2 + (4 if fc1 & 0x80 else 0)
        off += hdr
        if len(frame) < off + 8:
            self.fail("link_truncated")
            return None
        if frame[off : off + 3] != b"\xaa\xaa\x03":
            self._d.other("llc")
            return None
        self.mac_off = -1  # 802.11 addresses are not in Ethernet order
        return self.ethertype(off + 8, _U16.unpack_from(frame, off + 6)[0])

    def ether(self, off: int) -> Decoded | None:
        """An Ethernet header at ``off``; the innermost one gives the flow's MACs."""
        if len(self.frame) < off + 14:
            self.fail("link_truncated")
            return None
        self.mac_off = off
        self.vlan = NO_VLAN
        return self.ethertype(off + 14, _U16.unpack_from(self.frame, off + 12)[0])

    def nested_ether(self, off: int) -> Decoded | None:
        """An Ethernet frame inside another (pseudowire, PBB, FabricPath): bounded nesting."""
        if self.depth >= MAX_TUNNEL_DEPTH:
            self.fail("tunnel_too_deep")
            return None
        self.depth += 1
        return self.ether(off)

    def ethertype(self, off: int, etype: int) -> Decoded | None:
        """Whatever follows an EtherType: tags, IP, MPLS, PPPoE, MAC-in-MAC, or non-IP."""
        frame = self.frame
        tags = 0
        while etype in ETH_SHIMS:
            if tags == MAX_VLAN_TAGS:
                self.fail("vlan_too_deep")
                return None
            if etype == ETH_VNTAG:
                if len(frame) < off + 6:
                    self.fail("vntag_truncated")
                    return None
                etype = _U16.unpack_from(frame, off + 4)[0]
                off += 6
            else:
                if len(frame) < off + 4:
                    self.fail("vlan_truncated")
                    return None
                tci, etype = _TAG.unpack_from(frame, off)
                self.vlan = tci & 0x0FFF
                off += 4
            tags += 1
        if etype == ETH_IPV4:
            return self.ipv4(off)
        if etype == ETH_IPV6:
            return self.ipv6(off)
        if etype in ETH_MPLS:
            return self.mpls(off)
        if etype == ETH_PPPOE_SESSION:
            if len(frame) < off + 8:
                self.fail("pppoe_truncated")
                return None
            return self.ppp_protocol(off + 8, _U16.unpack_from(frame, off + 6)[0], "pppoe_control")
        if etype == ETH_PBB:
            return self.nested_ether(off + 4)
        if etype == ETH_FABRICPATH:
            return self.nested_ether(off + 2)
        self._d.other("llc" if etype < 0x0600 else NON_IP_NAMES.get(etype, "other_ethertype"))
        if self._d.l2_hook is not None and etype in L2_HOOK_ETHERTYPES:
            self._d.l2_hook(etype, self.frame, off, self.mac_off)
        return None

    def mpls(self, off: int) -> Decoded | None:
        """An MPLS label stack, then IP or an Ethernet pseudowire."""
        frame = self.frame
        for _ in range(MAX_LABELS):
            if len(frame) < off + 4:
                self.fail("mpls_truncated")
                return None
            bottom = frame[off + 2] & 1
            off += 4
            if bottom:
                break
        else:
            self.fail("mpls_too_deep")
            return None
        if len(frame) <= off:
            self.fail("mpls_truncated")
            return None
        nibble = frame[off] >> 4
        if nibble == 4:
            return self.ipv4(off)
        if nibble == 6:
            return self.ipv6(off)
        if nibble == 0 and len(frame) >= off + 4 + 14:
            off += 4  # pseudowire control word
        return self.nested_ether(off)

    def ppp_protocol(self, off: int, proto: int, control: str) -> Decoded | None:
        """The payload of a PPP frame whose protocol field has been read."""
        inner = _PPP_IP.get(proto)
        if inner is None:
            self._d.other(control)
            return None
        return self.ethertype(off, inner)

    def ppp(self, off: int) -> Decoded | None:
        """A PPP frame (in GRE): optional HDLC address/control, 1- or 2-byte protocol."""
        frame = self.frame
        if len(frame) >= off + 2 and frame[off] == 0xFF and frame[off + 1] == 0x03:
            off += 2
        if len(frame) < off + 1:
            self.fail("ppp_truncated")
            return None
        if frame[off] & 1:  # protocol-field compression
            return self.ppp_protocol(off + 1, frame[off], "ppp_control")
        if len(frame) < off + 2:
            self.fail("ppp_truncated")
            return None
        return self.ppp_protocol(off + 2, _U16.unpack_from(frame, off)[0], "ppp_control")

    # -- IP -------------------------------------------------------------------------------

    def ipv4(self, off: int) -> Decoded | None:
        """An IPv4 header (options and fragments included)."""
        frame = self.frame
        if len(frame) < off + 20:
            self.fail("ipv4_truncated")
            return None
        vhl, tot, ipid, frag, proto, src, dst = _IP4.unpack_from(frame, off)
        if vhl >> 4 != 4:
            self.fail("ip_bad_version")
            return None
        hl = (vhl & 0x0F) << 2
        if hl < 20:
            self.fail("ipv4_bad_header_length")
            return None
        limit = self.wirelen - off
        if tot == 0 or tot > limit:  # 0: TSO/LSO on the capturing host; >: bad length
            tot = limit
        if tot < hl:
            self.fail("ipv4_bad_total_length")
            return None
        self.src, self.dst, self.tot = src, dst, tot
        l4 = off + hl
        if frag & 0x3FFF:
            where = Piece((frag & 0x1FFF) << 3, bool(frag & 0x2000))
            return self.fragment((src, dst, proto, ipid), where, l4, proto, tot - hl)
        return self.transport(l4, proto, tot - hl)

    def ipv6(self, off: int) -> Decoded | None:
        """An IPv6 header and its extension headers (fragment header included)."""
        frame = self.frame
        flen = len(frame)
        if flen < off + 40:
            self.fail("ipv6_truncated")
            return None
        vtf, plen, nxt, src, dst = _IP6.unpack_from(frame, off)
        if vtf >> 28 != 6:
            self.fail("ip_bad_version")
            return None
        limit = self.wirelen - off - 40
        zero_length = plen == 0
        if plen == 0 or plen > limit:  # jumbogram/TSO, or a bad length
            plen = max(limit, 0)
        self.src, self.dst, self.tot = src, dst, plen + 40
        l4 = off + 40
        end = l4 + plen
        frag: tuple[tuple[bytes, bytes, int, int], Piece] | None = None
        for _ in range(16):
            if nxt in _IP6_EXT or nxt == 51:
                if flen < l4 + 2:
                    self.fail("ipv6_ext_truncated")
                    return None
                nxt2, hlen = _EXT.unpack_from(frame, l4)
                l4 += (hlen + 2) << 2 if nxt == 51 else (hlen + 1) << 3
                nxt = nxt2
            elif nxt == 44:
                if flen < l4 + 8:
                    self.fail("ipv6_ext_truncated")
                    return None
                if zero_length:  # RFC 2675 s. 3: no jumbogram carries a Fragment header
                    self.fail("ipv6_bad_payload_length")
                    return None
                nxt, offm, ident = _FRAG6.unpack_from(frame, l4)
                l4 += 8
                if offm & 0xFFF9:  # not an atomic fragment
                    frag = ((src, dst, nxt, ident), Piece(offm & 0xFFF8, bool(offm & 1)))
            else:
                break
        else:
            self.fail("ipv6_ext_too_many")
            return None
        if l4 > end:
            self.fail("ipv6_ext_bad_length")
            return None
        if frag is not None:
            return self.fragment(frag[0], frag[1], l4, nxt, end - l4)
        return self.transport(l4, nxt, end - l4)

    def fragment(
        self, key: tuple[bytes, bytes, int, int], where: Piece, l4: int, proto: int, pay_len: int
    ) -> Decoded | None:
        """A fragment: the first decides the flow (the inner one for a tunnel); later ones
        of any protocol join it, or wait for it. UDP datagrams to a deep parser's port are
        also rebuilt (the decoder's reassembler): the first fragment's partial payload is
        then not inspected, the whole datagram is, once its last piece arrives."""
        frame = self.frame
        if where.offset == 0:
            if (proto == PROTO_UDP or proto in IP_TUNNELS) and self.fragmented_tunnel(
                key, l4, proto, pay_len
            ):
                return None  # counted once whole, as Zeek does
            d = self.transport(l4, proto, pay_len)
            if d is not None:
                if (
                    proto == PROTO_UDP
                    and d[2] == PROTO_UDP
                    and d[10] == l4 + 8  # the UDP header is this IP header's (no tunnel)
                    and len(frame) >= l4 + pay_len  # not cut by a snaplen
                    and self._d.reassemble_first(key, d, frame[l4 : l4 + pay_len], self.ts)
                ):
                    d = (*d[:10], -1, *d[11:])  # inspected whole, when complete
                self._d.first_fragment(key, d, self.ts)
            return d
        later: Decoded = (
            self.src,
            self.dst,
            proto,
            0,
            0,
            self.tot,
            FRAGMENT,
            0,
            0,
            0,
            -1,
            pay_len,
            frame,
            self.mac_off,
            self.vlan,
        )
        piece = frame[l4 : l4 + pay_len] if len(frame) >= l4 + pay_len else None
        return self._d.later_fragment(key, later, self.ts, where, piece)

    def fragmented_tunnel(
        self, key: tuple[bytes, bytes, int, int], l4: int, proto: int, pay_len: int
    ) -> bool:
        """The first fragment of a tunnel datagram (GRE, IP in IP, or UDP that may carry a
        tunnel): rebuilt whole before its tunnel is walked (its fragments are then not
        counted one by one: the whole datagram is, as in Zeek). False (a plain first
        fragment) when it carries no tunnel, a snaplen cut it, or the reassembler's bounds
        refuse it."""
        frame = self.frame
        end = l4 + pay_len
        if self.depth >= MAX_TUNNEL_DEPTH or len(frame) < end:
            return False
        sport = dport = 0
        if proto == PROTO_UDP:
            if pay_len < 8:
                return False
            sport, dport = _PORTS.unpack_from(frame, l4)
            if tunnel_kind(frame, l4 + 8, end, sport, dport) is None:
                return False
        ctx = Rebuild(
            frame[:l4],
            self.tot - pay_len,
            proto,
            self.src,
            self.dst,
            self.mac_off,
            self.vlan,
            self.depth,
            self.in_gtp,
        )
        flow = (self.src, self.dst, proto, sport, dport)
        return self._d.tunnel_first(key, flow, ctx, frame[l4:end], self.ts)

    @classmethod
    def rebuilt(cls, decoder: Decoder, ctx: Rebuild, whole: bytes, ts: float) -> Decoded | None:
        """Walk a fragmented tunnel datagram made whole (``whole``: the IP payload) as one
        packet: its outer hop (UDP) and its inner packet, as for an unfragmented one."""
        frame = ctx.head + whole
        walk = cls(decoder, frame, len(frame), ts)
        walk.src, walk.dst, walk.mac_off, walk.vlan = ctx.src, ctx.dst, ctx.mac_off, ctx.vlan
        walk.depth, walk.in_gtp = ctx.depth, ctx.in_gtp
        walk.tot = ctx.ip_header + len(whole)
        return walk.transport(len(ctx.head), ctx.proto, len(whole))

    # -- transport and tunnels ------------------------------------------------------------

    #: ICMP/ICMPv6 header bytes before the payload Zeek counts in orig_bytes/resp_bytes (type,
    #: code, checksum and the 4-byte rest of header: echo id/sequence, unused, MTU, pointer).
    ICMP_HEADER = 8

    def transport(self, l4: int, proto: int, pay_len: int) -> Decoded | None:
        """TCP, UDP (or a UDP tunnel), ICMP, an IP tunnel, or another IP protocol."""
        frame, flen = self.frame, len(self.frame)
        src, dst, tot, mac, vlan = self.src, self.dst, self.tot, self.mac_off, self.vlan
        if proto == PROTO_TCP:
            if flen < l4 + 20:
                self.fail("tcp_truncated")
                return None
            sport, dport = _PORTS.unpack_from(frame, l4)
            seq, ack, doff, flags, win = _TCP_REST.unpack_from(frame, l4 + 4)
            thl = (doff >> 4) << 2
            if thl < 20 or thl > pay_len:
                self.fail("tcp_bad_header_length")
                return None
            return (
                src,
                dst,
                proto,
                sport,
                dport,
                tot,
                flags,
                seq,
                ack,
                win,
                l4 + thl,
                pay_len - thl,
                frame,
                mac,
                vlan,
            )
        if proto == PROTO_UDP:
            if flen < l4 + 8:
                self.fail("udp_truncated")
                return None
            if pay_len < 8:
                self.fail("udp_bad_length")
                return None
            sport, dport = _PORTS.unpack_from(frame, l4)
            plain: Decoded = (
                src,
                dst,
                proto,
                sport,
                dport,
                tot,
                0,
                0,
                0,
                0,
                l4 + 8,
                pay_len - 8,
                frame,
                mac,
                vlan,
            )
            end = min(l4 + pay_len, flen)
            tunnel = tunnel_kind(frame, l4 + 8, end, sport, dport)
            if tunnel is not None:
                if self.depth < MAX_TUNNEL_DEPTH:
                    return self.udp_tunnel(plain, tunnel, end)
                self._d.tunnel_error("tunnel_too_deep")
            return plain
        if proto in (PROTO_ICMP, PROTO_ICMP6):
            if flen < l4 + 2:
                self.fail("icmp_truncated")
                return None
            return (
                src,
                dst,
                proto,
                frame[l4],
                frame[l4 + 1],
                tot,
                0,
                0,
                0,
                0,
                l4 + self.ICMP_HEADER,
                max(pay_len - self.ICMP_HEADER, 0),
                frame,
                mac,
                vlan,
            )
        if proto in IP_TUNNELS:
            if self.depth >= MAX_TUNNEL_DEPTH:
                self.fail("tunnel_too_deep")
                return None
            self.depth += 1
            if proto == 4:
                return self.ipv4(l4)
            if proto == 41:
                return self.ipv6(l4)
            return self.gre(l4)
        if proto == IPV6_NO_NEXT:  # nothing follows (a Teredo bubble): Zeek logs no flow
            self._d.other("ipv6_no_next")
            return None
        return (src, dst, proto, 0, 0, tot, 0, 0, 0, 0, -1, pay_len, frame, mac, vlan)

    def udp_tunnel(self, plain: Decoded, tunnel: Tunnel, end: int) -> Decoded | None:
        """A UDP datagram that may carry ``tunnel`` (payload up to ``end``): its header
        parsed, the outer datagram handed on (``Decoder.outer``), the inner packet walked.
        Not tunnel data, or a malformed header (counted): the plain UDP packet."""
        parsed = self.tunnel_header(tunnel, plain[10], end, plain[3], plain[4])
        if not isinstance(parsed, TunnelHeader):
            if isinstance(parsed, str):
                self._d.tunnel_error(parsed)
            return plain
        self._d.outer.append(OuterHop((*plain[:10], -1, *plain[11:]), tunnel))
        self._d.tunnels[OUTER_PACKETS] += 1
        self.depth += 1
        self.in_gtp = tunnel is GTPV1  # Zeek: no GTP right inside GTP
        off = parsed.off
        if parsed.payload is Payload.GRE:
            return self.gre(off)
        if parsed.payload is Payload.ETHER:
            ptype = parsed.ethertype
            if ptype in (0, ETH_TEB):
                return self.ether(off)
            if ptype not in (ETH_IPV4, ETH_IPV6):
                self.fail("geneve_unknown_protocol")
                return None
        elif parsed.payload is Payload.IP:
            ptype = _IP_VERSION.get(self.frame[off] >> 4, 0) if off < len(self.frame) else 0
            if not ptype:
                self.fail("ip_bad_version")
                return None
        else:
            self._d.other("tunnel_no_packet")
            return None
        self.mac_off, self.vlan = -1, NO_VLAN
        return self.ethertype(off, ptype)

    def tunnel_header(self, tunnel: Tunnel, off: int, end: int, sport: int, dport: int) -> Parsed:
        """The header of ``tunnel`` at ``off`` (see :mod:`netwatch.decode.tunnels`)."""
        frame = self.frame
        if tunnel is VXLAN:
            return vxlan(frame, off, end, dport if dport in VXLAN_PORTS else sport)
        if tunnel is GENEVE:
            return geneve(frame, off, end)
        if tunnel is TEREDO:
            return teredo(frame, off, end)
        if tunnel is AYIYA:
            return ayiya(frame, off, end)
        if tunnel is GTPV1:
            return gtpv1(frame, off, end, self.in_gtp)
        return TunnelHeader(off, Payload.GRE)

    def gre(self, off: int) -> Decoded | None:
        """GRE (v0, or PPTP's v1) and what it carries: ERSPAN, Ethernet, IP, PPP, MPLS."""
        frame = self.frame
        if len(frame) < off + 4:
            self.fail("gre_truncated")
            return None
        flags, ptype = _TAG.unpack_from(frame, off)
        version = flags & 0x7
        if flags & 0x4000 or version > 1:
            self.fail("gre_unsupported")
            return None
        seq = flags & 0x1000
        off += (
            4
            + (4 if flags & 0x8000 else 0)
            + (4 if flags & 0x2000 else 0)
            + (4 if seq else 0)
            + (4 if version == 1 and flags & 0x0080 else 0)
        )
        if ptype == ETH_ERSPAN_1_2:
            return self.ether(off + 8 if seq else off)  # type II has an 8-byte header
        if ptype == ETH_ERSPAN_3:
            if len(frame) < off + 12:
                self.fail("erspan_truncated")
                return None
            return self.ether(off + (20 if frame[off + 11] & 1 else 12))
        if ptype == ETH_TEB:
            return self.ether(off)
        if ptype == ETH_PPP:
            return self.ppp(off)
        if ptype in (ETH_IPV4, ETH_IPV6) or ptype in ETH_MPLS:
            return self.ethertype(off, ptype)
        self.fail("gre_unknown_protocol")
        return None


def link_header(linktype: int, frame: bytes) -> tuple[int, int] | str:
    """(EtherType, offset) of what follows a non-Ethernet link header, or a failure reason."""
    parse = _LINKS.get(linktype)
    if parse is None:
        return "unknown_linktype"
    return parse(frame)


def _raw(frame: bytes) -> tuple[int, int] | str:
    if not frame:
        return "link_truncated"
    nibble = frame[0] >> 4
    return (ETH_IPV4, 0) if nibble == 4 else (ETH_IPV6, 0) if nibble == 6 else "ip_bad_version"


def _sll(frame: bytes) -> tuple[int, int] | str:
    return (_U16.unpack_from(frame, 14)[0], 16) if len(frame) >= 16 else "link_truncated"


def _sll2(frame: bytes) -> tuple[int, int] | str:
    return (_U16.unpack_from(frame, 0)[0], 20) if len(frame) >= 20 else "link_truncated"


def _af(af: int) -> tuple[int, int] | str:
    if af == 2:
        return (ETH_IPV4, 4)
    if af in (24, 28, 30):  # AF_INET6 on NetBSD/OpenBSD, FreeBSD, macOS
        return (ETH_IPV6, 4)
    return "link_unknown_protocol"


def _null(frame: bytes) -> tuple[int, int] | str:
    """BSD NULL: the address family in the capturing host's byte order."""
    if len(frame) < 4:
        return "link_truncated"
    af = int.from_bytes(frame[:4], "little")
    return _af(af if af <= 0xFFFF else int.from_bytes(frame[:4], "big"))


def _loop(frame: bytes) -> tuple[int, int] | str:
    """OpenBSD LOOP: the address family in network byte order."""
    return _af(int.from_bytes(frame[:4], "big")) if len(frame) >= 4 else "link_truncated"


_LINKS: dict[int, Callable[[bytes], tuple[int, int] | str]] = {
    LinkType.RAW: _raw,
    LinkType.IPV4: lambda f: (ETH_IPV4, 0),
    LinkType.IPV6: lambda f: (ETH_IPV6, 0),
    LinkType.LINUX_SLL: _sll,
    LinkType.LINUX_SLL2: _sll2,
    LinkType.NULL: _null,
    LinkType.LOOP: _loop,
}
