"""MQTT (TCP 1883): the service name ``mqtt`` from the client's CONNECT packet.

Many cameras and doorbells publish events to an MQTT broker. Zeek's base scripts have no
MQTT analyzer, so the name is netwatch's. :func:`parse_connect` reads the fixed header
(packet type 1, flags 0), the remaining length (a 1 to 4 byte varint, MQTT 3.1.1 section
2.2.3) and the variable header's protocol name (``MQTT`` for 3.1.1 and 5.0, ``MQIsdp`` for
3.1) and level; the client identifier that follows is kept as ``mqtt_client_id``.
:class:`MqttParser` claims TCP 1883 (MQTT over TLS on 8883 is TLS).

Reads no configuration; never raises. Known limit: a CONNECT split over segments is read
from the first (a CONNECT is a few dozen bytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from netwatch.deep.base import Context, DeepParser, Verdict, service
from netwatch.deep.discovery.identity import clean_text

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MQTT_PORT: Final = 1883
PROTOCOL_NAMES: Final = {b"MQTT": (4, 5), b"MQIsdp": (3,)}
_CONNECT: Final = 0x10


class MqttConnect(NamedTuple):
    """What a CONNECT says: the protocol level (3, 4 or 5) and the client identifier."""

    level: int
    client_id: str | None


def parse_connect(data: bytes) -> MqttConnect | None:
    """A client's CONNECT packet, or None."""
    if len(data) < 2 or data[0] != _CONNECT:
        return None
    off, remaining = 1, 0
    for shift in range(0, 28, 7):
        if off >= len(data):
            return None
        byte = data[off]
        off += 1
        remaining |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        return None
    name_len = int.from_bytes(data[off : off + 2], "big")
    name = data[off + 2 : off + 2 + name_len]
    levels = PROTOCOL_NAMES.get(name)
    pos = off + 2 + name_len
    if levels is None or pos >= len(data) or data[pos] not in levels or remaining < pos - off:
        return None
    return MqttConnect(data[pos], _client_id(data, pos + 1, data[pos]))


def _client_id(data: bytes, pos: int, level: int) -> str | None:
    """The client identifier after connect flags, keep-alive (and MQTT 5 properties)."""
    pos += 3
    if level == 5:  # properties: a varint length, then the properties, skipped
        if pos >= len(data) or data[pos] & 0x80:
            return None  # no property block is that long in a CONNECT worth reading
        pos += 1 + data[pos]
    size = int.from_bytes(data[pos : pos + 2], "big")
    raw = data[pos + 2 : pos + 2 + size]
    if len(raw) != size:
        return None
    return clean_text(raw.decode("utf-8", "replace"))


class MqttParser(DeepParser):
    """MQTT on TCP 1883: ``mqtt`` and the client identifier from CONNECT."""

    rank = 45
    tcp_ports = frozenset({MQTT_PORT})

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        if not is_orig:
            return Verdict.DONE
        connect = parse_connect(buf)
        if connect is None:
            return Verdict.PASS
        ctx.count("mqtt_connect")
        service(flow, "mqtt")
        if connect.client_id:
            flow.app_set("mqtt_client_id", connect.client_id)
        return Verdict.DONE
