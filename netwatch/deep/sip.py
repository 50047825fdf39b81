"""SIP on UDP 5060: Zeek's ``sip`` service (door stations, intercoms, camera audio calls).

Zeek's SIP analyzer (read for behaviour) is attached to UDP 5060 and confirms the protocol on
a request or response line it parses. :func:`is_sip` checks the first line: ``METHOD URI
SIP/2.0`` with an upper-case method token, or ``SIP/2.0 <3 digits> ...`` (RFC 3261 section
7). Reads no configuration; never raises. Known limit: SIP over TCP or TLS (5061) is not named
(Zeek's analyzer is UDP only).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

SIP_PORT: Final = 5060
_REQUEST = re.compile(rb"[A-Z]{3,16} [!-~]{1,512} SIP/2\.0\r?\n")
_STATUS = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9] ")


def is_sip(data: bytes) -> bool:
    """Whether ``data`` starts with a SIP request or status line."""
    return bool(_STATUS.match(data) or _REQUEST.match(data, 0, 600))


class SipParser(DeepParser):
    """SIP on UDP 5060: ``sip`` once a request or status line parses."""

    rank = 8
    udp_ports = frozenset({SIP_PORT})

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        if not is_sip(data):
            return None
        ctx.count("sip")
        service(flow, "sip")
        return Verdict.DONE
