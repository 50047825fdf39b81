"""SNMP on UDP 161/162: Zeek's ``snmp`` service (cameras and NVRs answer SNMP).

Zeek's SNMP analyzer (read for behaviour) is attached to UDP 161 and 162 and confirms the
protocol once a message's header parses. :func:`snmp_version` reads the BER header (RFC 3416,
RFC 3412): a SEQUENCE whose length fits the datagram, then an INTEGER version 0 (v1), 1 (v2c)
or 3 (v3), then for v1/v2c an OCTET STRING community or for v3 a SEQUENCE (the global data).
Reads no configuration; never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

SNMP_PORTS: Final = frozenset({161, 162})
_SEQUENCE, _INTEGER, _OCTET_STRING = 0x30, 0x02, 0x04
_VERSIONS: Final = {0: "v1", 1: "v2c", 3: "v3"}


def _length(data: bytes, off: int) -> tuple[int, int] | None:
    """A BER length at ``off``: (length, offset of the contents), or None."""
    if off >= len(data):
        return None
    first = data[off]
    if first < 0x80:
        return first, off + 1
    size = first & 0x7F
    if not 1 <= size <= 3 or off + 1 + size > len(data):
        return None
    return int.from_bytes(data[off + 1 : off + 1 + size], "big"), off + 1 + size


def snmp_version(data: bytes) -> str | None:
    """``v1``, ``v2c`` or ``v3`` for an SNMP message, else None."""
    if len(data) < 8 or data[0] != _SEQUENCE:
        return None
    outer = _length(data, 1)
    if outer is None or outer[1] + outer[0] != len(data) or data[outer[1]] != _INTEGER:
        return None
    version_len = _length(data, outer[1] + 1)
    if version_len is None or version_len[0] != 1 or version_len[1] >= len(data) - 1:
        return None
    version = _VERSIONS.get(data[version_len[1]])
    following = data[version_len[1] + 1]
    expected = _SEQUENCE if version == "v3" else _OCTET_STRING
    return version if version is not None and following == expected else None


class SnmpParser(DeepParser):
    """SNMP on UDP 161/162: ``snmp`` once a message header parses."""

    rank = 9
    udp_ports = SNMP_PORTS

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        version = snmp_version(data)
        if version is None:
            return None
        ctx.count("snmp")
        service(flow, "snmp")
        flow.app_set("snmp_version", version)
        return Verdict.DONE
