"""NTP deep parser: Zeek's ``ntp`` service for UDP 123.

Zeek's NTP analyzer (read for behaviour) is attached to UDP 123 and confirms the protocol on
every message it parses: the first byte's mode (its low three bits) picks the layout, a
standard message (modes 1 to 5) needs the 48-byte header of RFC 5905 section 7.3, a control
message (mode 6, RFC 9327) its 12-byte header, a private one (mode 7) 8 bytes, and mode 0
has no body to parse. :func:`is_ntp` applies the same length rules.

Reads no configuration; never raises. Known limit: Zeek also flips the connection's
orientation when the first message is a server's (mode 4 from the originator); that belongs
to the flow table, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

NTP_PORT: Final = 123
#: The smallest message Zeek's NTP parser accepts, by mode.
MIN_LENGTH: Final = {0: 1, 1: 48, 2: 48, 3: 48, 4: 48, 5: 48, 6: 12, 7: 8}


def is_ntp(data: bytes) -> bool:
    """Whether ``data`` parses as an NTP message by its mode's length rule."""
    return bool(data) and len(data) >= MIN_LENGTH[data[0] & 0x07]


class NtpParser(DeepParser):
    """NTP on UDP 123: ``ntp`` once a message parses."""

    rank = 4
    udp_ports = frozenset({NTP_PORT})

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        if not is_ntp(data):
            ctx.count("ntp_unparsed")
            return None
        ctx.count("ntp")
        service(flow, "ntp")
        return Verdict.DONE
