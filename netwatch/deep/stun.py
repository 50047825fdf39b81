"""STUN (RFC 8489) on UDP: the service name ``stun`` (Zeek has no STUN analyzer).

Cameras and their phone apps use STUN to find their public address before a P2P session
(the payload signatures of the seeds name the vendors' variants; this parser only names the
service). :func:`is_stun` checks the RFC 8489 header: the two top bits of the message type
zero, a length that is a multiple of 4 and matches the datagram, and the magic cookie
``0x2112A442``; the classic RFC 3489 form without the cookie is not recognised (too weak a
test on one datagram). :class:`StunParser` looks at UDP payloads no port claims.

Reads no configuration; never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAGIC_COOKIE: Final = b"\x21\x12\xa4\x42"
_HEADER: Final = 20


def is_stun(data: bytes) -> bool:
    """Whether ``data`` is one RFC 8489 STUN message."""
    if len(data) < _HEADER or data[0] & 0xC0 or data[4:8] != MAGIC_COOKIE:
        return False
    length = int.from_bytes(data[2:4], "big")
    return length % 4 == 0 and length == len(data) - _HEADER


class StunParser(DeepParser):
    """A STUN message on an unclaimed UDP flow: ``stun``."""

    rank = 7
    udp_other = True

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        if not is_stun(data):
            return None
        ctx.count("stun")
        service(flow, "stun")
        return Verdict.DONE
