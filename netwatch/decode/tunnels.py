"""UDP tunnel headers: which datagrams carry a tunnel, and where the inner packet starts.

The general walk (:mod:`netwatch.decode.walk`) asks :func:`tunnel_kind` which tunnel a
UDP datagram may carry, then the matching parser here where its inner packet starts. The
parsers are pure functions over the frame's bytes: they never raise on hostile bytes, and
answer with a :class:`TunnelHeader`, :data:`PLAIN` (not tunnel data: the datagram stays a
plain UDP packet of its flow) or a reason (a malformed header: the walk counts it in
``Decoder.tunnels`` and keeps the datagram as a plain UDP packet, as Zeek does).

Semantics follow Zeek's packet analysers (zeek/zeek ``src/packet_analysis/protocol/``:
``vxlan``, ``geneve``, ``teredo``, ``ayiya``, ``gtpv1``, and the port sets of
``scripts/base/packet-protocols/*/main.zeek``):

- by port: VXLAN 4789 (and Linux's 8472 when the I flag is set), Geneve 6081, Teredo 3544,
  AYIYA 5072, GTPv1 2152 and 2123, GRE in UDP 4754 (RFC 8086). Zeek decides on the
  connection's responder port; netwatch, without per-flow state, on the destination port,
  else the source port (a reply from the tunnel endpoint);
- by content, on any other port (Zeek's protocol detection): Teredo (an IPv6 header with a
  ``2001:0::/32`` address, or an origin indication or authentication header before an IPv6
  header) and AYIYA (its second and third bytes ``52 11``);
- Teredo: at most one authentication header, then at most one origin indication, then an
  IPv6 packet whose payload length fills the datagram exactly (a bubble, no next header and
  no payload, may carry trailing bytes); a bubble has no inner flow;
- AYIYA: identity (2**n bytes) and signature (4n bytes) lengths from the header; only the
  forward operation carries a packet;
- GTPv1-U: version 1, protocol type GTP, message T-PDU (255); the optional sequence/N-PDU
  word when any of E/S/PN is set; extension headers (4-byte units) up to next type 0; the
  inner IPv4/IPv6 packet must fill the datagram exactly; GTP is never inside GTP.

The outer UDP flow is recorded too (Zeek logs it with the tunnel as its ``service``):
:class:`OuterHop` is what the walk hands the pipeline for it, through
``Decoder.outer`` (:mod:`netwatch.decode.outer`). Zeek's confirmation rules decide the
service: at once for VXLAN, Geneve, AYIYA and GTPv1, for Teredo only after both directions
carried valid Teredo (Zeek's default ``Tunnel::delay_teredo_confirmation``), never for GRE.

Fragmented tunnel datagrams are rebuilt first and walked whole, counted as one packet
(``Decoder.tunnel_first``), as Zeek reassembles before it decapsulates.

Config read: none. Known limits: a flow is judged packet by packet (Zeek stops decapsulating a
connection after its first malformed tunnel packet, and the fused loop of
:mod:`netwatch.fastloop` may keep a flow's later datagrams from the decoder when its first
ones were not recognisably a tunnel on a port that says nothing); Zeek's ``X`` in the
history of an inner connection whose tunnel changed too often
(``Tunnel::max_changes_per_connection``) is not reproduced; no ``tunnel_parents`` field.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from netwatch.decode.frames import Decoded

VXLAN_PORT: Final = 4789
VXLAN_LINUX_PORT: Final = 8472
GENEVE_PORT: Final = 6081
TEREDO_PORT: Final = 3544
AYIYA_PORT: Final = 5072
GTP_U_PORT: Final = 2152
GTP_C_PORT: Final = 2123
GRE_UDP_PORT: Final = 4754
VXLAN_PORTS: Final = frozenset({VXLAN_PORT, VXLAN_LINUX_PORT})
#: UDP ports whose datagrams the general walk looks into for a tunnel (either port).
TUNNEL_UDP_PORTS: Final = frozenset(
    {
        VXLAN_PORT,
        VXLAN_LINUX_PORT,
        GENEVE_PORT,
        TEREDO_PORT,
        AYIYA_PORT,
        GTP_U_PORT,
        GTP_C_PORT,
        GRE_UDP_PORT,
    }
)
#: First payload bytes that may start a Teredo packet on any port: an IPv6 header
#: (0x60-0x6f) or an origin indication / authentication header (0x00).
TEREDO_LEAD: Final = bytes(1 if b == 0 or b >> 4 == 6 else 0 for b in range(256))
AYIYA_MAGIC: Final = b"\x52\x11"  # second and third bytes Zeek's AYIYA detection wants
TEREDO_PREFIX: Final = b"\x20\x01\x00\x00"  # 2001:0::/32, Teredo addresses
IPV6_HEADER: Final = 40
IPV6_NO_NEXT: Final = 59
GTP_T_PDU: Final = 255
MAX_GTP_EXTENSIONS: Final = 16  # extension headers read before the chain is called malformed
#: ``Decoder.tunnels`` keys: datagrams also counted in an outer flow, and tunnel fragments
#: folded into their whole datagram (or lost with an incomplete one).
OUTER_PACKETS: Final = "outer_packets"
FRAGMENTS_FOLDED: Final = "fragments_folded"

_U16 = struct.Struct("!H")


class Payload(IntEnum):
    """What a tunnel header is followed by."""

    NONE = 0  # nothing to walk (a Teredo bubble, an AYIYA message that is not a packet)
    ETHER = 1  # an Ethernet frame
    IP = 2  # an IP packet (its version nibble says which)
    GRE = 3  # a GRE header


class Confirm(IntEnum):
    """When a tunnel's outer flow gets the tunnel as its service (Zeek's confirmation)."""

    NEVER = 0
    NOW = 1
    BOTH_SIDES = 2  # once each direction carried a valid tunnel packet


class TunnelHeader(NamedTuple):
    """A parsed tunnel header: where its payload starts and what that payload is."""

    off: int
    payload: Payload
    ethertype: int = 0  # the payload's EtherType when it is given (Geneve)


class Tunnel(NamedTuple):
    """A tunnel protocol: its service name in flow records and when that is given."""

    service: str | None
    confirm: Confirm


class OuterHop(NamedTuple):
    """A tunnel's outer UDP packet (payload offset -1: never inspected) and its tunnel;
    its tunnel header was valid (it counts towards the tunnel's confirmation)."""

    d: Decoded
    tunnel: Tunnel


VXLAN = Tunnel("vxlan", Confirm.NOW)
GENEVE = Tunnel("geneve", Confirm.NOW)
TEREDO = Tunnel("teredo", Confirm.BOTH_SIDES)
AYIYA = Tunnel("ayiya", Confirm.NOW)
GTPV1 = Tunnel("gtpv1", Confirm.NOW)
GRE_UDP = Tunnel(None, Confirm.NEVER)

_BY_PORT: dict[int, Tunnel] = {
    VXLAN_PORT: VXLAN,
    VXLAN_LINUX_PORT: VXLAN,
    GENEVE_PORT: GENEVE,
    TEREDO_PORT: TEREDO,
    AYIYA_PORT: AYIYA,
    GTP_U_PORT: GTPV1,
    GTP_C_PORT: GTPV1,
    GRE_UDP_PORT: GRE_UDP,
}


class Plain(NamedTuple):
    """Not tunnel data: the datagram is a plain UDP packet of its flow."""


PLAIN: Final = Plain()
Parsed = TunnelHeader | Plain | str  # str: a malformed header's failure reason


def tunnel_kind(frame: bytes, off: int, end: int, sport: int, dport: int) -> Tunnel | None:
    """The tunnel a UDP payload (``frame[off:end]``) may carry, by port or by content."""
    tunnel = _BY_PORT.get(dport) or _BY_PORT.get(sport)
    if tunnel is not None:
        return tunnel
    if end - off >= IPV6_HEADER and TEREDO_LEAD[frame[off]] and teredo_detected(frame, off, end):
        return TEREDO
    if end - off >= 3 and frame[off + 1 : off + 3] == AYIYA_MAGIC:
        return AYIYA
    return None


def teredo_detected(frame: bytes, off: int, end: int) -> bool:
    """Zeek's Teredo detection on a port not registered for it (``end - off >= 40``)."""
    first = frame[off]
    if first >> 4 == 6 and TEREDO_PREFIX in (frame[off + 8 : off + 12], frame[off + 24 : off + 28]):
        return True
    if first >> 4 != 6 and first != 0:
        return False
    tag = frame[off + 1]
    if tag == 1:  # authentication, which must be followed by an origin indication
        skip = 13 + frame[off + 2] + frame[off + 3]
        if end - off - skip < IPV6_HEADER:
            return False
        off += skip
        tag = _U16.unpack_from(frame, off)[0]
    if tag != 0:
        return False
    off += 8  # origin indication, then an IPv6 header
    return end - off >= IPV6_HEADER and frame[off] >> 4 == 6


def vxlan(frame: bytes, off: int, end: int, port: int) -> Parsed:
    """VXLAN: 8 bytes with the I flag, then Ethernet. Linux's port without it is plain."""
    if end - off < 8 + 14 or not frame[off] & 0x08:
        return "vxlan_malformed" if port == VXLAN_PORT else PLAIN
    return TunnelHeader(off + 8, Payload.ETHER)


def geneve(frame: bytes, off: int, end: int) -> Parsed:
    """Geneve: version 0, 8 bytes plus options, then what its protocol type says."""
    if end - off < 8:
        return "geneve_truncated"
    if frame[off] >> 6:
        return PLAIN  # Zeek: a weird, no confirmation, nothing decapsulated
    inner = off + 8 + ((frame[off] & 0x3F) << 2)
    if inner > end:
        return "geneve_truncated"
    return TunnelHeader(inner, Payload.ETHER, _U16.unpack_from(frame, off + 2)[0])


def teredo(frame: bytes, off: int, end: int) -> Parsed:
    """Teredo: optional authentication, optional origin indication, then IPv6."""
    seen_auth = seen_origin = False
    while True:  # at most three rounds: each kind of header is taken once
        if end - off < 2:
            return "teredo_truncated"
        tag = _U16.unpack_from(frame, off)[0]
        if tag == 0:
            if seen_origin:
                return PLAIN
            if end - off < 8:
                return "teredo_truncated"
            off += 8
            seen_origin = True
        elif tag == 1:
            if seen_origin or seen_auth:
                return PLAIN
            if end - off < 4:
                return "teredo_truncated"
            off += 13 + frame[off + 2] + frame[off + 3]
            if off > end:
                return "teredo_truncated"
            seen_auth = True
        elif tag >> 12 == 6:
            return _teredo_ipv6(frame, off, end)
        else:
            return PLAIN


def _teredo_ipv6(frame: bytes, off: int, end: int) -> Parsed:
    """The IPv6 packet of a Teredo datagram: it must fill the datagram (bubbles excepted)."""
    if end - off < IPV6_HEADER:
        return "teredo_truncated"
    plen = _U16.unpack_from(frame, off + 4)[0]
    have = end - off - IPV6_HEADER
    if plen > have:
        return "teredo_truncated"
    bubble = plen == 0 and frame[off + 6] == IPV6_NO_NEXT
    if plen < have and not bubble:
        return "teredo_bad_length"
    return TunnelHeader(off, Payload.NONE if bubble else Payload.IP)


def ayiya(frame: bytes, off: int, end: int) -> Parsed:
    """AYIYA: a header sized by its identity and signature lengths, then a packet."""
    if end - off < 8:
        return "ayiya_truncated"
    identity = 1 << (frame[off] >> 4)  # 2**n bytes, up to 32 KiB
    inner = off + 8 + identity + (frame[off + 1] >> 4) * 4
    if inner > end:
        return "ayiya_truncated"
    if frame[off + 2] & 0x0F != 1:  # not the forward operation: no packet, not confirmed
        return PLAIN
    if inner == end or frame[off + 3] not in (4, 41):
        return TunnelHeader(inner, Payload.NONE)
    return TunnelHeader(inner, Payload.IP)


def gtpv1(frame: bytes, off: int, end: int, in_gtp: bool) -> Parsed:
    """GTPv1-U: a T-PDU's header (optional word, extension headers), then IPv4/IPv6."""
    if end - off < 8:
        return "gtp_truncated"
    flags, msg = frame[off], frame[off + 1]
    if in_gtp or flags >> 5 != 1:
        return "gtp_malformed"  # GTP inside GTP, or not version 1
    if not flags & 0x10 or msg != GTP_T_PDU:
        return PLAIN  # GTP' or a signalling message: nothing to decapsulate
    inner = off + 8
    if flags & 0x07:
        inner += 4
        if inner > end:
            return "gtp_truncated"
        if flags & 0x04:
            for _ in range(MAX_GTP_EXTENSIONS):
                if inner >= end:
                    return "gtp_truncated"
                units = frame[inner]
                if units == 0:
                    return "gtp_malformed"
                inner += units * 4
                if inner > end:
                    return "gtp_truncated"
                if frame[inner - 1] == 0:
                    break
            else:
                return "gtp_malformed"
    return _gtp_inner(frame, inner, end)


def _gtp_inner(frame: bytes, off: int, end: int) -> Parsed:
    """The IP packet of a T-PDU: IPv4 or IPv6 whose length fills the datagram exactly."""
    if end - off < 20:
        return "gtp_truncated"
    version = frame[off] >> 4
    if version == 4:
        total = _U16.unpack_from(frame, off + 2)[0]
    elif version == 6:
        if end - off < IPV6_HEADER:
            return "gtp_truncated"
        total = IPV6_HEADER + _U16.unpack_from(frame, off + 4)[0]
    else:
        return "gtp_malformed"
    if total != end - off:
        return "gtp_bad_length"
    return TunnelHeader(off, Payload.IP)
