"""DTLS on UDP: Zeek's ``dtls`` service from a client's ClientHello (WebRTC, camera P2P media).

Zeek attaches its DTLS analyzer to any UDP flow whose payload starts like a DTLS ClientHello
(its DPD signature: a handshake record of version 1.0 or 1.2, epoch 0 and sequence number 0,
handshake type 1 and the hello's version again) and confirms it when the hello parses.
:func:`is_dtls_client_hello` applies the same test to the record and handshake headers
(RFC 6347 section 4.1 and 4.2.2). The ClientHello is not parsed further (no SNI: WebRTC's
hellos carry none). Reads no configuration; never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

DTLS_VERSIONS: Final = (b"\xfe\xff", b"\xfe\xfd")  # DTLS 1.0, 1.2
_RECORD_HEADER: Final = 13
_HANDSHAKE_HEADER: Final = 12


def is_dtls_client_hello(data: bytes) -> bool:
    """A DTLS handshake record (epoch 0, sequence 0) carrying a ClientHello."""
    if len(data) < _RECORD_HEADER + _HANDSHAKE_HEADER + 2 or data[0] != 0x16:
        return False
    if data[1:3] not in DTLS_VERSIONS or any(data[3:11]):
        return False
    hello = _RECORD_HEADER
    return data[hello] == 1 and data[hello + 12 : hello + 14] in DTLS_VERSIONS


class DtlsParser(DeepParser):
    """A DTLS ClientHello on an unclaimed UDP flow: ``dtls``."""

    rank = 6
    udp_other = True

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        if not is_dtls_client_hello(data):
            return None
        ctx.count("dtls_client_hello")
        service(flow, "dtls")
        return Verdict.DONE
