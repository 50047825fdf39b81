"""The fast-path frame decoder: link layer to the innermost IP 5-tuple with ``struct`` only.

Every captured frame goes through :meth:`Decoder.decode`. The common shapes (Ethernet, at
most one 802.1Q tag, IPv4 without options or IPv6 without extension headers, unfragmented
TCP or non-tunnel UDP) are decoded inline with two ``unpack_from`` calls and no objects
besides the returned :data:`Decoded` tuple; every other frame goes through the general
walk in :mod:`netwatch.decode.walk` (tags, MPLS, PPPoE, tunnels, fragments, other link
types), among them UDP datagrams to or from a tunnel port and those whose first payload
bytes may start Teredo or AYIYA (:mod:`netwatch.decode.tunnels`: Zeek looks for those on
any port). A property test checks that both paths agree.

Tunnels: the outer UDP datagram of each tunnel the walk decapsulates is queued in
:attr:`Decoder.outer` (the caller accounts it as a flow of its own and clears the list).

It never raises: a frame it cannot attribute is counted under a reason in
:attr:`Decoder.failures`, and frames that are not IP at all (ARP, LLDP, STP, ...) are
counted in :attr:`Decoder.non_ip`. Checksums are not verified (mirror ports see offloaded
checksums).

Fragments: later fragments join their first fragment's flow (:class:`FragmentTracker`), and
UDP datagrams to a port a deep parser reads (``reassemble_ports``) are rebuilt, bounded
(:class:`Reassembler`): the whole datagram is queued in :attr:`Decoder.reassembled` for
inspection only (its fragments were counted as they came), whatever order they arrive in.
A fragmented tunnel datagram (GRE, IP in IP, or UDP that may carry a tunnel) is rebuilt
too, and walked whole once
complete, counted as one packet as Zeek does (its fragments are not counted one by one:
:attr:`Decoder.tunnels` keeps the tally that conserves every frame read).

Config read: ``flows.max_fragments``, ``flows.fragment_timeout_s`` (fragment attribution and
the reassembly timeout).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from netwatch.decode.fragments import (
    Attribution,
    FragKey,
    FragmentTracker,
    Reassembler,
    ReassemblyLimits,
)
from netwatch.decode.tunnels import (
    AYIYA_MAGIC,
    FRAGMENTS_FOLDED,
    OUTER_PACKETS,
    TEREDO_LEAD,
    TUNNEL_UDP_PORTS,
    OuterHop,
)
from netwatch.decode.walk import (
    ETH_IPV4,
    ETH_IPV6,
    FRAGMENT,
    NO_VLAN,
    PROTO_TCP,
    PROTO_UDP,
    WALKED_LINKS,
    FrameWalk,
    Piece,
    Rebuild,
    link_header,
)

__all__ = ["FRAGMENT", "NO_VLAN", "Decoded", "Decoder", "describe"]

# (src, dst, proto, sport, dport, ip_len, tcp_flags, seq, ack, win,
#  payload_offset, payload_len, frame, mac_offset, vlan)
Decoded = tuple[bytes, bytes, int, int, int, int, int, int, int, int, int, int, bytes, int, int]

_IP4_PORTS = struct.Struct("!BxHHHxBxx4s4sHH")  # IPv4 header fused with the two ports
_IP6_PORTS = struct.Struct("!IHBx16s16sHH")  # IPv6 header fused with the two ports
_TCP_REST = struct.Struct("!IIBBH")  # seq, ack, data offset, flags, window (at tcp+4)
_AYIYA_1 = AYIYA_MAGIC[0]  # a UDP payload whose second byte is this may be AYIYA
_TEREDO_MIN4 = 20 + 8 + 40  # IPv4 total length from which a UDP payload may be Teredo
_TEREDO_MIN6 = 8 + 40  # the same as an IPv6 payload length


class Held(NamedTuple):
    """A later fragment as the walk saw it: kept until its first fragment arrives."""

    ts: float
    d: Decoded
    where: Piece
    piece: bytes | None  # its IP payload (None when a snaplen cut it)


class Decoder:
    """Decodes frames to :data:`Decoded` tuples; counts every frame it cannot attribute."""

    def __init__(
        self,
        max_fragments: int = 4096,
        fragment_timeout_s: float = 30.0,
        reassemble_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.failures: dict[str, int] = {}
        self.non_ip: dict[str, int] = {}
        self.frags = FragmentTracker(max_fragments, fragment_timeout_s, self.fail)
        #: Later fragments released by the arrival of their first fragment: (ts, Decoded).
        self.released: list[tuple[float, Decoded]] = []
        #: Fragmented UDP datagrams to these ports (the deep parsers') are rebuilt, bounded.
        self.reassembler = Reassembler(
            reassemble_ports, ReassemblyLimits(timeout_s=fragment_timeout_s)
        )
        #: Whole datagrams rebuilt from fragments, for inspection only (their fragments were
        #: counted as they came): (ts, Decoded over the UDP header and data).
        self.reassembled: list[tuple[float, Decoded]] = []
        #: The outer UDP datagram of each tunnel the last walk decapsulated, outermost first
        #: (a flow of its own, as in Zeek). The caller accounts and clears them; the next
        #: walk starts the list afresh.
        self.outer: list[OuterHop] = []
        #: Tunnel bookkeeping, so that every frame read stays accounted for exactly once:
        #: ``outer_packets``, datagrams counted in an outer flow besides their inner packet
        #: (:attr:`outer`); ``fragments_folded``, fragments of tunnel datagrams not counted
        #: as packets themselves (all but one of a datagram made whole, and every fragment
        #: of one that never completed); and malformed tunnel headers by reason (their
        #: datagrams stay plain UDP packets of their flow: not failures).
        self.tunnels: dict[str, int] = {OUTER_PACKETS: 0, FRAGMENTS_FOLDED: 0}
        #: Called with (ethertype, frame, payload offset, MAC offset) for the non-IP frames of
        #: ``walk.L2_HOOK_ETHERTYPES`` (layer-2 SADP); they are counted as non-IP either way.
        self.l2_hook: Callable[[int, bytes, int, int], None] | None = None

    def fail(self, reason: str) -> None:
        """Count one frame (or fragment) that could not be attributed to a flow."""
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def tunnel_error(self, reason: str) -> None:
        """Count a malformed tunnel header (or a tunnel past the depth bound) whose datagram
        is kept as a plain UDP packet of its flow."""
        self.tunnels[reason] = self.tunnels.get(reason, 0) + 1

    def other(self, name: str) -> None:
        """Count one frame that is not IP (ARP, LLDP, ...): not a failure."""
        self.non_ip[name] = self.non_ip.get(name, 0) + 1

    def decode(self, linktype: int, frame: bytes, wirelen: int, ts: float) -> Decoded | None:
        """Decode one frame; return its innermost-IP view or None (counted). Never raises."""
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
                    if tot == 0 or tot > limit:  # 0: TSO on the capturing host
                        tot = limit
                    if proto == PROTO_TCP:
                        seq, ack, doff, flags, win = _TCP_REST.unpack_from(frame, off + 24)
                        thl = (doff >> 4) << 2
                        if 20 <= thl <= tot - 20:
                            return (
                                src,
                                dst,
                                6,
                                sport,
                                dport,
                                tot,
                                flags,
                                seq,
                                ack,
                                win,
                                off + 20 + thl,
                                tot - 20 - thl,
                                frame,
                                0,
                                vlan,
                            )
                    elif (
                        proto == PROTO_UDP
                        and tot >= 28
                        and dport not in TUNNEL_UDP_PORTS
                        and sport not in TUNNEL_UDP_PORTS
                        and frame[off + 29] != _AYIYA_1
                        and (tot < _TEREDO_MIN4 or not TEREDO_LEAD[frame[off + 28]])
                    ):
                        return (
                            src,
                            dst,
                            17,
                            sport,
                            dport,
                            tot,
                            0,
                            0,
                            0,
                            0,
                            off + 28,
                            tot - 28,
                            frame,
                            0,
                            vlan,
                        )
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
                            return (
                                src,
                                dst,
                                6,
                                sport,
                                dport,
                                plen + 40,
                                flags,
                                seq,
                                ack,
                                win,
                                off + 40 + thl,
                                plen - thl,
                                frame,
                                0,
                                vlan,
                            )
                    elif (
                        nxt == PROTO_UDP
                        and plen >= 8
                        and flen >= off + 48
                        and dport not in TUNNEL_UDP_PORTS
                        and sport not in TUNNEL_UDP_PORTS
                        and (flen < off + 50 or frame[off + 49] != _AYIYA_1)
                        and (
                            plen < _TEREDO_MIN6
                            or flen < off + 48 + 40
                            or not TEREDO_LEAD[frame[off + 48]]
                        )
                    ):
                        return (
                            src,
                            dst,
                            17,
                            sport,
                            dport,
                            plen + 40,
                            0,
                            0,
                            0,
                            0,
                            off + 48,
                            plen - 8,
                            frame,
                            0,
                            vlan,
                        )
        return self._walk(linktype, frame, wirelen, ts)

    def _walk(self, linktype: int, frame: bytes, wirelen: int, ts: float) -> Decoded | None:
        """The general walk (:class:`~netwatch.decode.walk.FrameWalk`) for every other frame."""
        if self.outer:
            self.outer.clear()
        walk = FrameWalk(self, frame, wirelen, ts)
        try:
            if linktype == 1:
                return walk.ether(0)
            if linktype in WALKED_LINKS:
                return walk.link(linktype)
            link = link_header(linktype, frame)
            if isinstance(link, str):
                self.fail(link)
                return None
            return walk.ethertype(link[1], link[0])
        except (struct.error, IndexError, ValueError):
            self.fail("truncated")
            return None

    # -- fragments (called by the walk) ----------------------------------------------------

    def first_fragment(self, key: FragKey, d: Decoded, ts: float) -> None:
        """Remember the flow a first fragment went to; release fragments that waited for it
        (and add their pieces to the datagram when it is being rebuilt)."""
        flow = (d[0], d[1], d[2], d[3], d[4])
        held: Held
        for held in self.frags.first(key, flow, ts):
            self.released.append((held.ts, _attributed(held.d, flow)))
            self._rebuild(key, held, flow)

    def reassemble_first(self, key: FragKey, d: Decoded, datagram: bytes, ts: float) -> bool:
        """Offer a first UDP fragment (``datagram``: UDP header and data so far) to the
        reassembler; True when it keeps it (a deep parser's port)."""
        return self.reassembler.first(key, d[3], d[4], datagram, ts)

    def tunnel_first(
        self, key: FragKey, flow: Attribution, ctx: Rebuild, datagram: bytes, ts: float
    ) -> bool:
        """The first fragment of a datagram that may carry a tunnel: rebuilt whole, not
        counted until then (later fragments held for it join it). True when kept."""
        if not self.reassembler.first(key, flow[3], flow[4], datagram, ts, tag=ctx):
            return False
        self.tunnels[FRAGMENTS_FOLDED] += 1
        for held in self.frags.first(key, flow, ts):
            self._rebuild(key, held, flow)
        return True

    def later_fragment(
        self, key: FragKey, d: Decoded, ts: float, where: Piece, piece: bytes | None
    ) -> Decoded | None:
        """A later fragment, attributed to its first fragment's flow; None while it is held.
        When it completes a datagram being rebuilt, the whole datagram is queued in
        :attr:`reassembled` (or, for a tunnel datagram, walked: see :meth:`_rebuild`); the
        fragments of a tunnel datagram are not counted one by one."""
        flow = self.frags.later(key, ts)
        held = Held(ts, d, where, piece)
        if flow is None:
            self.frags.hold(key, ts, held)
            return None
        if self.reassembler.tag_of(key) is not None:
            if piece is not None:
                self._rebuild(key, held, flow)
                return None
            self.reassembler.abandon(key)  # a snaplen cut it: the rest counts one by one
        self._rebuild(key, held, flow)
        return _attributed(d, flow)

    def _rebuild(self, key: FragKey, held: Held, flow: Attribution) -> None:
        """Add a later fragment's piece to its datagram when that one is being rebuilt;
        queue the whole datagram when this piece completes it. A whole tunnel datagram is
        walked as one packet: its outer hop joins :attr:`outer`, its inner packet (or the
        plain datagram) :attr:`released`."""
        if key not in self.reassembler:
            return
        ctx = self.reassembler.tag_of(key)
        if held.piece is None:
            if ctx is not None:
                self.reassembler.abandon(key)
            return
        if ctx is not None:
            self.tunnels[FRAGMENTS_FOLDED] += 1
        where = held.where
        whole = self.reassembler.later(key, where.offset, held.piece, where.more, held.ts)
        if whole is None or (len(whole) < 8 and not isinstance(ctx, Rebuild)):
            return
        if isinstance(ctx, Rebuild):
            self.tunnels[FRAGMENTS_FOLDED] -= 1  # the whole datagram counts as one packet
            d = FrameWalk.rebuilt(self, ctx, whole, held.ts)
            if d is not None:
                self.released.append((held.ts, d))
        else:
            self.reassembled.append((held.ts, _whole(whole, held.d, flow)))

    def expire(self, now: float) -> None:
        """Drop fragment state idle for longer than the timeout (packet time)."""
        self.frags.expire(now)
        self.reassembler.expire(now)


def _whole(datagram: bytes, d: Decoded, flow: tuple[bytes, bytes, int, int, int]) -> Decoded:
    """An inspect-only tuple over a rebuilt UDP datagram (``datagram``: header and data)."""
    return (*flow, d[5], 0, 0, 0, 0, 8, len(datagram) - 8, datagram, -1, d[14])


def _attributed(d: Decoded, flow: tuple[bytes, bytes, int, int, int]) -> Decoded:
    """A later fragment's tuple with the first fragment's flow (the inner one for a tunnel)."""
    return (*flow, *d[5:13], -1, d[14])


def describe(d: Decoded) -> dict[str, Any]:
    """A readable dict of a decoded tuple (tests and debugging; never on the fast path)."""
    names = (
        "src",
        "dst",
        "proto",
        "sport",
        "dport",
        "ip_len",
        "tcp_flags",
        "seq",
        "ack",
        "win",
        "payload_offset",
        "payload_len",
        "frame",
        "mac_offset",
        "vlan",
    )
    return dict(zip(names, d, strict=True))
