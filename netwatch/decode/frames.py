"""The fast-path frame decoder: link layer to the innermost IP 5-tuple with ``struct`` only.

Every captured frame goes through :meth:`Decoder.decode`, which walks the headers with
precompiled ``struct.Struct`` objects on the frame bytes (no per-packet objects besides the
returned tuple) and returns a :data:`Decoded` tuple or ``None``. It never raises: every frame
it cannot attribute is counted under a reason in :attr:`Decoder.failures`, and frames that
are not IP at all (ARP, LLDP, STP, ...) are counted in :attr:`Decoder.non_ip`.

Handled: link types Ethernet, raw IP, Linux SLL/SLL2, BSD NULL/LOOP; 802.1Q/802.1ad/QinQ
tags (any depth), MPLS label stacks (IP or Ethernet pseudowire, with or without control
word), PPPoE sessions, IPv4 (options, fragments), IPv6 (extension headers, fragments),
TCP/UDP/ICMP/ICMPv6, and the mirror-port encapsulations GRE (incl. PPTP-style v1), ERSPAN
types I/II/III, VXLAN (UDP 4789/8472), Geneve (UDP 6081), IP-in-IP and 6in4. Flows are keyed
on the innermost IP header; the outer tunnel packet is not a flow.

Config read: ``flows.max_fragments``, ``flows.fragment_timeout_s`` (fragment attribution).
Known limits: checksums are not verified (mirror ports see offloaded checksums); Teredo,
GTP and VXLAN-GPE are not decapsulated (their outer UDP flow is kept instead).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from netwatch.capture.linktypes import LinkType
from netwatch.decode.fragments import FragmentTracker

# (src, dst, proto, sport, dport, ip_len, tcp_flags, seq, ack, win,
#  payload_offset, payload_len, frame, mac_offset, vlan)
Decoded = tuple[
    bytes, bytes, int, int, int, int, int, int, int, int, int, int, bytes, int, int
]

#: ``tcp_flags`` value marking a non-first fragment: counted, but no transport header.
FRAGMENT = 0x10000
#: ``vlan`` when the frame carried no 802.1Q tag.
NO_VLAN = -1

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP6 = 58

MAX_TUNNEL_DEPTH = 8
MAX_LABELS = 16

_ETH = struct.Struct("!H")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U32_LE = struct.Struct("<I")
# IPv4 header (20 bytes) fused with the first 4 transport bytes (the ports).
_IP4_PORTS = struct.Struct("!BxHHHxBxx4s4sHH")
_IP4 = struct.Struct("!BxHHHxBxx4s4s")
_IP6 = struct.Struct("!IHBx16s16s")
_IP6_PORTS = struct.Struct("!IHBx16s16sHH")
_PORTS = struct.Struct("!HH")
_TCP_REST = struct.Struct("!IIBBH")  # seq, ack, data offset, flags, window (at tcp+4)
_UDP_LEN = struct.Struct("!H")
_EXT = struct.Struct("!BB")
_FRAG6 = struct.Struct("!BxHI")
_GRE = struct.Struct("!HH")

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
ETH_MPLS = frozenset({0x8847, 0x8848})
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558  # transparent Ethernet bridging (Ethernet over GRE/Geneve)
ETH_ERSPAN_1_2 = 0x88BE
ETH_ERSPAN_3 = 0x22EB
ETH_PPP = 0x880B

_NON_IP_NAMES = {
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

_IP6_EXT = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_VXLAN_PORTS = frozenset({4789, 8472})
_GENEVE_PORT = 6081
_TUNNEL_UDP = _VXLAN_PORTS | {_GENEVE_PORT}
_PPP_IP = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
_NULL_AF_IPV6 = frozenset({24, 28, 30})


class Decoder:
    """Decodes frames to :data:`Decoded` tuples; counts every frame it cannot attribute."""

    def __init__(self, max_fragments: int = 4096, fragment_timeout_s: float = 30.0) -> None:
        self.failures: dict[str, int] = {}
        self.non_ip: dict[str, int] = {}
        self.frags = FragmentTracker(max_fragments, fragment_timeout_s, self.fail)
        #: Later fragments released by the arrival of their first fragment: (ts, Decoded).
        self.released: list[tuple[float, Decoded]] = []
        self._link: dict[int, Callable[[bytes], tuple[int, int, int]]] = {
            LinkType.RAW: _link_raw,
            LinkType.IPV4: lambda f: (ETH_IPV4, 0, -1),
            LinkType.IPV6: lambda f: (ETH_IPV6, 0, -1),
            LinkType.LINUX_SLL: _link_sll,
            LinkType.LINUX_SLL2: _link_sll2,
            LinkType.NULL: _link_null,
            LinkType.LOOP: _link_loop,
        }

    def fail(self, reason: str) -> None:
        """Count one frame (or fragment) that could not be attributed to a flow."""
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def _other(self, name: str) -> None:
        self.non_ip[name] = self.non_ip.get(name, 0) + 1

    def decode(self, linktype: int, frame: bytes, wirelen: int, ts: float) -> Decoded | None:
        """Decode one frame; return its innermost-IP view or None (counted). Never raises.

        The common shapes (Ethernet, at most one 802.1Q tag, IPv4 without options or IPv6
        without extension headers, unfragmented TCP or non-tunnel UDP) are decoded inline
        with two ``unpack_from`` calls; everything else takes the general walk.
        """
        flen = len(frame)
        if linktype == 1 and flen >= 58:
            etype = frame[12] << 8 | frame[13]
            off = 14
            vlan = NO_VLAN
            if etype == 0x8100:
                vlan = (frame[14] << 8 | frame[15]) & 0x0FFF
                etype = frame[16] << 8 | frame[17]
                off = 18
            if etype == ETH_IPV4:
                vhl, tot, _id, frag, proto, src, dst, sport, dport = _IP4_PORTS.unpack_from(
                    frame, off
                )
                if vhl == 0x45 and not frag & 0x3FFF:
                    limit = wirelen - off
                    if tot == 0 or tot > limit:
                        tot = limit
                    if proto == PROTO_TCP:
                        seq, ack, doff, flags, win = _TCP_REST.unpack_from(frame, off + 24)
                        thl = (doff >> 4) << 2
                        if 20 <= thl <= tot - 20:
                            return (src, dst, 6, sport, dport, tot, flags, seq, ack, win,
                                    off + 20 + thl, tot - 20 - thl, frame, 0, vlan)
                    elif proto == PROTO_UDP and tot >= 28 and dport not in _TUNNEL_UDP:
                        return (src, dst, 17, sport, dport, tot, 0, 0, 0, 0, off + 28, tot - 28,
                                frame, 0, vlan)
            elif etype == ETH_IPV6 and flen >= off + 44:
                vtf, plen, nxt, src, dst, sport, dport = _IP6_PORTS.unpack_from(frame, off)
                if vtf >> 28 == 6:
                    limit = wirelen - off - 40
                    if plen == 0 or plen > limit:
                        plen = max(limit, 0)
                    if nxt == PROTO_TCP and flen >= off + 60:
                        seq, ack, doff, flags, win = _TCP_REST.unpack_from(frame, off + 44)
                        thl = (doff >> 4) << 2
                        if 20 <= thl <= plen:
                            return (src, dst, 6, sport, dport, plen + 40, flags, seq, ack, win,
                                    off + 40 + thl, plen - thl, frame, 0, vlan)
                    elif nxt == PROTO_UDP and plen >= 8 and dport not in _TUNNEL_UDP:
                        return (src, dst, 17, sport, dport, plen + 40, 0, 0, 0, 0, off + 48,
                                plen - 8, frame, 0, vlan)
        return self._walk(linktype, frame, wirelen, ts)

    def _walk(self, linktype: int, frame: bytes, wirelen: int, ts: float) -> Decoded | None:
        """The general header walk: every link type, tag, tunnel, fragment and malformation."""
        try:
            if linktype == 1:
                if len(frame) < 14:
                    self.fail("link_truncated")
                    return None
                return self._ether(frame, 0, wirelen, ts, 0)
            link = self._link.get(linktype)
            if link is None:
                self.fail("unknown_linktype")
                return None
            etype, off, _ = link(frame)
            if etype < 0:
                self.fail("link_truncated" if etype == -1 else "link_unknown_protocol")
                return None
            return self._ethertype(frame, off, etype, wirelen, ts, 0, -1, NO_VLAN)
        except (struct.error, IndexError, ValueError):
            self.fail("truncated")
            return None

    # -- link and layer-2.5 ---------------------------------------------------------------

    def _ether(self, frame: bytes, off: int, wirelen: int, ts: float, depth: int) -> Decoded | None:
        """Ethernet header at ``off`` (the innermost Ethernet header gives the MACs)."""
        if len(frame) < off + 14:
            self.fail("link_truncated")
            return None
        (etype,) = _ETH.unpack_from(frame, off + 12)
        return self._ethertype(frame, off + 14, etype, wirelen, ts, depth, off, NO_VLAN)

    def _ethertype(
        self,
        frame: bytes,
        off: int,
        etype: int,
        wirelen: int,
        ts: float,
        depth: int,
        mac_off: int,
        vlan: int,
    ) -> Decoded | None:
        while etype in ETH_VLAN_TAGS:
            if len(frame) < off + 4:
                self.fail("vlan_truncated")
                return None
            tci, etype = _IP4_VLAN.unpack_from(frame, off)
            vlan = tci & 0x0FFF
            off += 4
        if etype == ETH_IPV4:
            return self._ipv4(frame, off, wirelen, ts, depth, mac_off, vlan)
        if etype == ETH_IPV6:
            return self._ipv6(frame, off, wirelen, ts, depth, mac_off, vlan)
        if etype in ETH_MPLS:
            return self._mpls(frame, off, wirelen, ts, depth, mac_off, vlan)
        if etype == ETH_PPPOE_SESSION:
            if len(frame) < off + 8:
                self.fail("pppoe_truncated")
                return None
            (ppp,) = _U16.unpack_from(frame, off + 6)
            inner = _PPP_IP.get(ppp)
            if inner is None:
                self._other("pppoe_control")
                return None
            return self._ethertype(frame, off + 8, inner, wirelen, ts, depth, mac_off, vlan)
        if etype < 0x0600:
            self._other("llc")  # 802.3 length field: STP, CDP, DTP, ...
        else:
            self._other(_NON_IP_NAMES.get(etype, "other_ethertype"))
        return None

    def _mpls(
        self, frame: bytes, off: int, wirelen: int, ts: float, depth: int, mac_off: int, vlan: int
    ) -> Decoded | None:
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
            return self._ipv4(frame, off, wirelen, ts, depth, mac_off, vlan)
        if nibble == 6:
            return self._ipv6(frame, off, wirelen, ts, depth, mac_off, vlan)
        if nibble == 0 and len(frame) >= off + 4 + 14:
            off += 4  # pseudowire control word, then Ethernet
        return self._ether(frame, off, wirelen, ts, depth + 1)

    # -- IP -------------------------------------------------------------------------------

    def _ipv4(
        self, frame: bytes, off: int, wirelen: int, ts: float, depth: int, mac_off: int, vlan: int
    ) -> Decoded | None:
        flen = len(frame)
        if flen < off + 20:
            self.fail("ipv4_truncated")
            return None
        if flen >= off + 24:
            vhl, tot, ipid, frag, proto, src, dst, sport, dport = _IP4_PORTS.unpack_from(frame, off)
        else:
            vhl, tot, ipid, frag, proto, src, dst = _IP4.unpack_from(frame, off)
            sport = dport = -1
        if vhl >> 4 != 4:
            self.fail("ip_bad_version")
            return None
        hl = (vhl & 0x0F) << 2
        if hl < 20:
            self.fail("ipv4_bad_header_length")
            return None
        limit = wirelen - off
        if tot == 0 or tot > limit:  # 0: TSO/LSO on the capturing host; >: bad length
            tot = limit
        if tot < hl:
            self.fail("ipv4_bad_total_length")
            return None
        l4 = off + hl
        pay_len = tot - hl
        if frag & 0x3FFF:
            return self._ipv4_fragment(
                frame, l4, src, dst, proto, ipid, frag, tot, pay_len, wirelen, ts, depth,
                mac_off, vlan,
            )
        if hl != 20:
            sport = dport = -1  # options: the ports are further on
        return self._transport(
            frame, l4, src, dst, proto, tot, pay_len, wirelen, ts, depth, mac_off, vlan,
            sport, dport,
        )

    def _ipv4_fragment(
        self,
        frame: bytes,
        l4: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ipid: int,
        frag: int,
        tot: int,
        pay_len: int,
        wirelen: int,
        ts: float,
        depth: int,
        mac_off: int,
        vlan: int,
    ) -> Decoded | None:
        key = (src, dst, proto, ipid)
        if frag & 0x1FFF == 0:  # first fragment: it has the transport header
            d = self._transport(
                frame, l4, src, dst, proto, tot, pay_len, wirelen, ts, depth, mac_off, vlan,
                -1, -1,
            )
            if d is not None:
                self._first_fragment(key, d, ts)
            return d
        return self._later_fragment(key, src, dst, proto, tot, pay_len, frame, mac_off, vlan, ts)

    def _first_fragment(self, key: tuple[bytes, bytes, int, int], d: Decoded, ts: float) -> None:
        if d[2] == PROTO_TCP or d[2] == PROTO_UDP:
            held = self.frags.first(key, d[3], d[4], ts)
            if held:
                self.released.extend(
                    (hts, (*hd[:3], d[3], d[4], *hd[5:])) for hts, hd in held
                )

    def _later_fragment(
        self,
        key: tuple[bytes, bytes, int, int],
        src: bytes,
        dst: bytes,
        proto: int,
        tot: int,
        pay_len: int,
        frame: bytes,
        mac_off: int,
        vlan: int,
        ts: float,
    ) -> Decoded | None:
        if proto != PROTO_TCP and proto != PROTO_UDP:
            # ICMP and others are keyed without ports: attribute directly.
            return (src, dst, proto, 0, 0, tot, FRAGMENT, 0, 0, 0, -1, pay_len, frame, mac_off, vlan)
        ports = self.frags.later(key, ts)
        d: Decoded = (src, dst, proto, 0, 0, tot, FRAGMENT, 0, 0, 0, -1, pay_len, frame, mac_off,
                      vlan)
        if ports is None:
            self.frags.hold(key, ts, (ts, d))
            return None
        return (src, dst, proto, ports[0], ports[1], tot, FRAGMENT, 0, 0, 0, -1, pay_len, frame,
                mac_off, vlan)

    def _ipv6(
        self, frame: bytes, off: int, wirelen: int, ts: float, depth: int, mac_off: int, vlan: int
    ) -> Decoded | None:
        flen = len(frame)
        if flen < off + 40:
            self.fail("ipv6_truncated")
            return None
        vtf, plen, nxt, src, dst = _IP6.unpack_from(frame, off)
        if vtf >> 28 != 6:
            self.fail("ip_bad_version")
            return None
        limit = wirelen - off - 40
        if plen == 0 or plen > limit:  # jumbogram / TSO, or snap-truncated length
            plen = max(limit, 0)
        tot = plen + 40
        l4 = off + 40
        end = l4 + plen
        frag_key: tuple[bytes, bytes, int, int] | None = None
        first = True
        for _ in range(16):
            if nxt in _IP6_EXT or nxt == 51:
                if flen < l4 + 2:
                    self.fail("ipv6_ext_truncated")
                    return None
                nxt2, hlen = _EXT.unpack_from(frame, l4)
                size = (hlen + 2) << 2 if nxt == 51 else (hlen + 1) << 3
                nxt = nxt2
                l4 += size
            elif nxt == 44:
                if flen < l4 + 8:
                    self.fail("ipv6_ext_truncated")
                    return None
                nxt2, offm, ident = _FRAG6.unpack_from(frame, l4)
                l4 += 8
                nxt = nxt2
                if offm & 0xFFF9 == 0:  # offset 0 and M clear: atomic fragment
                    continue
                frag_key = (src, dst, nxt, ident)
                first = offm & 0xFFF8 == 0
            else:
                break
        else:
            self.fail("ipv6_ext_too_many")
            return None
        if l4 > end:
            self.fail("ipv6_ext_bad_length")
            return None
        pay_len = end - l4
        if frag_key is not None:
            if not first:
                return self._later_fragment(
                    frag_key, src, dst, nxt, tot, pay_len, frame, mac_off, vlan, ts
                )
            d = self._transport(
                frame, l4, src, dst, nxt, tot, pay_len, wirelen, ts, depth, mac_off, vlan, -1, -1
            )
            if d is not None:
                self._first_fragment(frag_key, d, ts)
            return d
        return self._transport(
            frame, l4, src, dst, nxt, tot, pay_len, wirelen, ts, depth, mac_off, vlan, -1, -1
        )

    # -- transport and tunnels ------------------------------------------------------------

    def _transport(
        self,
        frame: bytes,
        l4: int,
        src: bytes,
        dst: bytes,
        proto: int,
        tot: int,
        pay_len: int,
        wirelen: int,
        ts: float,
        depth: int,
        mac_off: int,
        vlan: int,
        sport: int,
        dport: int,
    ) -> Decoded | None:
        flen = len(frame)
        if proto == PROTO_TCP:
            if flen < l4 + 20:
                self.fail("tcp_truncated")
                return None
            if sport < 0:
                sport, dport = _PORTS.unpack_from(frame, l4)
            seq, ack, doff, flags, win = _TCP_REST.unpack_from(frame, l4 + 4)
            thl = (doff >> 4) << 2
            if thl < 20 or thl > pay_len:
                self.fail("tcp_bad_header_length")
                return None
            return (src, dst, proto, sport, dport, tot, flags, seq, ack, win, l4 + thl,
                    pay_len - thl, frame, mac_off, vlan)
        if proto == PROTO_UDP:
            if flen < l4 + 8:
                self.fail("udp_truncated")
                return None
            if pay_len < 8:
                self.fail("udp_bad_length")
                return None
            if sport < 0:
                sport, dport = _PORTS.unpack_from(frame, l4)
            if depth < MAX_TUNNEL_DEPTH:
                if dport in _VXLAN_PORTS:
                    d = self._vxlan(frame, l4 + 8, wirelen, ts, depth)
                    if d is not None or dport == 4789:
                        return d
                elif dport == _GENEVE_PORT:
                    return self._geneve(frame, l4 + 8, wirelen, ts, depth)
            return (src, dst, proto, sport, dport, tot, 0, 0, 0, 0, l4 + 8, pay_len - 8, frame,
                    mac_off, vlan)
        if proto == PROTO_ICMP or proto == PROTO_ICMP6:
            if flen < l4 + 2:
                self.fail("icmp_truncated")
                return None
            return (src, dst, proto, frame[l4], frame[l4 + 1], tot, 0, 0, 0, 0, l4 + 4,
                    max(pay_len - 4, 0), frame, mac_off, vlan)
        if proto == 47 or proto == 4 or proto == 41:
            if depth >= MAX_TUNNEL_DEPTH:
                self.fail("tunnel_too_deep")
                return None
            if proto == 4:
                return self._ipv4(frame, l4, wirelen, ts, depth + 1, mac_off, vlan)
            if proto == 41:
                return self._ipv6(frame, l4, wirelen, ts, depth + 1, mac_off, vlan)
            return self._gre(frame, l4, wirelen, ts, depth + 1, mac_off, vlan)
        return (src, dst, proto, 0, 0, tot, 0, 0, 0, 0, -1, pay_len, frame, mac_off, vlan)

    def _gre(
        self, frame: bytes, off: int, wirelen: int, ts: float, depth: int, mac_off: int, vlan: int
    ) -> Decoded | None:
        if len(frame) < off + 4:
            self.fail("gre_truncated")
            return None
        flags, ptype = _GRE.unpack_from(frame, off)
        version = flags & 0x7
        if flags & 0x4000 or version > 1:
            self.fail("gre_unsupported")
            return None
        hlen = 4
        if flags & 0x8000:
            hlen += 4  # checksum + reserved
        if flags & 0x2000:
            hlen += 4  # key (PPTP: payload length + call id)
        seq = flags & 0x1000
        if seq:
            hlen += 4
        if version == 1 and flags & 0x0080:
            hlen += 4  # PPTP acknowledgment number
        off += hlen
        if ptype == ETH_ERSPAN_1_2:
            if seq:  # type II: 8-byte ERSPAN header; type I has none
                off += 8
            return self._ether(frame, off, wirelen, ts, depth)
        if ptype == ETH_ERSPAN_3:
            if len(frame) < off + 12:
                self.fail("erspan_truncated")
                return None
            optional = frame[off + 11] & 1
            off += 20 if optional else 12
            return self._ether(frame, off, wirelen, ts, depth)
        if ptype == ETH_TEB:
            return self._ether(frame, off, wirelen, ts, depth)
        if ptype == ETH_PPP:
            return self._ppp(frame, off, wirelen, ts, depth, mac_off, vlan)
        if ptype in (ETH_IPV4, ETH_IPV6) or ptype in ETH_MPLS:
            return self._ethertype(frame, off, ptype, wirelen, ts, depth, mac_off, vlan)
        self.fail("gre_unknown_protocol")
        return None

    def _ppp(
        self, frame: bytes, off: int, wirelen: int, ts: float, depth: int, mac_off: int, vlan: int
    ) -> Decoded | None:
        if len(frame) < off + 2:
            self.fail("ppp_truncated")
            return None
        if frame[off] == 0xFF and frame[off + 1] == 0x03:
            off += 2  # HDLC address/control
        if len(frame) < off + 1:
            self.fail("ppp_truncated")
            return None
        if frame[off] & 1:  # protocol-field compression: one byte
            proto = frame[off]
            off += 1
        else:
            if len(frame) < off + 2:
                self.fail("ppp_truncated")
                return None
            (proto,) = _U16.unpack_from(frame, off)
            off += 2
        inner = _PPP_IP.get(proto)
        if inner is None:
            self._other("ppp_control")
            return None
        return self._ethertype(frame, off, inner, wirelen, ts, depth, mac_off, vlan)

    def _vxlan(self, frame: bytes, off: int, wirelen: int, ts: float, depth: int) -> Decoded | None:
        if len(frame) < off + 8 + 14 or not frame[off] & 0x08:
            return None  # not VXLAN after all: keep the outer UDP flow
        return self._ether(frame, off + 8, wirelen, ts, depth + 1)

    def _geneve(self, frame: bytes, off: int, wirelen: int, ts: float, depth: int) -> Decoded | None:
        if len(frame) < off + 8:
            self.fail("geneve_truncated")
            return None
        optlen = (frame[off] & 0x3F) << 2
        (ptype,) = _U16.unpack_from(frame, off + 2)
        off += 8 + optlen
        if ptype == ETH_TEB:
            return self._ether(frame, off, wirelen, ts, depth + 1)
        if ptype in (ETH_IPV4, ETH_IPV6):
            return self._ethertype(frame, off, ptype, wirelen, ts, depth + 1, -1, NO_VLAN)
        self.fail("geneve_unknown_protocol")
        return None


_IP4_VLAN = struct.Struct("!HH")


def _link_raw(frame: bytes) -> tuple[int, int, int]:
    if not frame:
        return (-1, 0, -1)
    nibble = frame[0] >> 4
    if nibble == 4:
        return (ETH_IPV4, 0, -1)
    if nibble == 6:
        return (ETH_IPV6, 0, -1)
    return (-2, 0, -1)


def _link_sll(frame: bytes) -> tuple[int, int, int]:
    if len(frame) < 16:
        return (-1, 0, -1)
    (proto,) = _U16.unpack_from(frame, 14)
    return (proto, 16, -1)


def _link_sll2(frame: bytes) -> tuple[int, int, int]:
    if len(frame) < 20:
        return (-1, 0, -1)
    (proto,) = _U16.unpack_from(frame, 0)
    return (proto, 20, -1)


def _af_to_ethertype(af: int) -> int:
    if af == 2:
        return ETH_IPV4
    if af in _NULL_AF_IPV6:
        return ETH_IPV6
    return -2


def _link_null(frame: bytes) -> tuple[int, int, int]:
    if len(frame) < 4:
        return (-1, 0, -1)
    (af,) = _U32_LE.unpack_from(frame, 0)
    if af > 0xFFFF:  # written by a big-endian host
        (af,) = _U32.unpack_from(frame, 0)
    return (_af_to_ethertype(af), 4, -1)


def _link_loop(frame: bytes) -> tuple[int, int, int]:
    if len(frame) < 4:
        return (-1, 0, -1)
    (af,) = _U32.unpack_from(frame, 0)
    return (_af_to_ethertype(af), 4, -1)


def describe(d: Decoded) -> dict[str, Any]:
    """A readable dict of a decoded tuple (tests and debugging; never on the fast path)."""
    names = ("src", "dst", "proto", "sport", "dport", "ip_len", "tcp_flags", "seq", "ack",
             "win", "payload_offset", "payload_len", "frame", "mac_offset", "vlan")
    return dict(zip(names, d, strict=True))
