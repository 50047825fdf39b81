"""GTP-U outer flows (UDP 2152): Zeek's ``gtpv1`` service.

Zeek's GTPv1 analyzer (read for behaviour) runs on UDP 2152 (user plane) and 2123 (control
plane) and confirms the tunnel when a GTPv1 G-PDU (message type 255, 3GPP TS 29.281 section 5)
carries an IP packet: its outer connection is then logged with the service ``gtpv1``; a GTP
message of another type (echo, error indication) is not (Zeek's
``core.tunnels.gtp.not_user_plane_data`` baseline). :func:`is_gtp_user_data` checks the
mandatory header (version 1, protocol type GTP, the length field matching the datagram), skips
the optional sequence number/N-PDU/extension fields and looks at the IP version nibble of the
payload. Unwrapping the inner packet is the decoder's business, not this parser's.

Reads no configuration; never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

GTP_PORTS: Final = frozenset({2152, 2123})
MSG_G_PDU: Final = 0xFF
_HEADER: Final = 8
_OPTIONAL: Final = 4  # sequence number (2), N-PDU number (1), next extension type (1)
_FLAGS_OPTIONAL: Final = 0x07  # E, S, PN bits


def is_gtp_user_data(data: bytes) -> bool:
    """A GTPv1 G-PDU whose payload starts like an IPv4 or IPv6 packet."""
    if len(data) < _HEADER + 1:
        return False
    flags, msg_type = data[0], data[1]
    if flags >> 5 != 1 or not flags & 0x10 or msg_type != MSG_G_PDU:
        return False
    if int.from_bytes(data[2:4], "big") != len(data) - _HEADER:
        return False
    off = _HEADER + (_OPTIONAL if flags & _FLAGS_OPTIONAL else 0)
    if flags & 0x04:  # extension headers: units of 4 bytes, the last byte names the next one
        for _ in range(8):
            if off >= len(data) or data[off - 1] == 0:
                break
            units = data[off]
            if units == 0:
                return False
            off += 4 * units
    return off < len(data) and data[off] >> 4 in (4, 6)


class GtpParser(DeepParser):
    """GTP-U: ``gtpv1`` on the outer flow once a G-PDU carries an IP packet."""

    rank = 6
    udp_ports = GTP_PORTS

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        if not is_gtp_user_data(data):
            return None
        ctx.count("gtp_user_data")
        service(flow, "gtpv1")
        return Verdict.DONE
