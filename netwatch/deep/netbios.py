"""NetBIOS name service (UDP 137): Zeek's ``dns`` service, and the name asked for.

Zeek runs its DNS analyzer on UDP 137 (NetBIOS name service messages, RFC 1002 section 4.2,
share the DNS message layout), so a NetBIOS query or registration is logged with the service
``dns``. :class:`NetbiosParser` parses the message with :func:`netwatch.deep.dns.parse_dns`
and decodes the question's first-level encoded name (RFC 1001 section 14.1: 32 letters
``A``-``P``, two per byte) into ``flow.app["dns_query"]``; the 16th byte (the NetBIOS
suffix) and the padding spaces are dropped. NetBIOS answers (NB records) are not fed to the
passive DNS cache: they name LAN hosts, not what a client resolved.

Reads no configuration; never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service
from netwatch.deep.discovery.identity import clean_text
from netwatch.deep.dns import parse_dns

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

NETBIOS_NS_PORT: Final = 137
_ENCODED_LEN: Final = 32


def decode_netbios_name(label: str) -> str | None:
    """``EOGFGLGPCACACACACACACACACACACAAA`` -> ``Neko``; None when not first-level encoded."""
    first = label.split(".", 1)[0].upper()
    if len(first) != _ENCODED_LEN or any(not "A" <= c <= "P" for c in first):
        return None
    raw = bytes(
        ((ord(first[i]) - 65) << 4) | (ord(first[i + 1]) - 65) for i in range(0, _ENCODED_LEN, 2)
    )
    return clean_text(raw[:15].rstrip(b" \x00").decode("latin-1"))


class NetbiosParser(DeepParser):
    """NetBIOS name service messages: ``dns`` (as Zeek logs them) and the decoded name."""

    rank = 1
    udp_ports = frozenset({NETBIOS_NS_PORT})

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        msg = parse_dns(data)
        if msg is None:
            ctx.count("netbios_unparsed")
            return None
        ctx.count("netbios_ns")
        service(flow, "dns")
        name = decode_netbios_name(msg.qname) if msg.qname else None
        if name:
            flow.app_set("dns_query", name)
        return Verdict.DONE
