"""Dahua discovery: DHIP JSON on UDP 37810 and the legacy binary form on UDP 5050.

Registered as a discovery protocol (its port and parser); runs only on the payloads the
dispatcher routes here; reads no configuration; never raises.
Formats (source keys from ``research/signatures.md`` §1b, §2 and §7):

- DHIP header, 32 bytes: LE u32 ``0x20`` (header size), ``DHIP``, LE u32 session id, LE u32
  request id, LE u32 body length, 0, LE u32 body length, 0; then a JSON body ([DH-CONSOLE]
  ``net.py``; [US] ``Dahua2.cs``; ``DahuaCancelCall.php``). Only the ``DHIP`` magic is
  required; the body is the declared length, or the rest of the payload when the declared
  length is longer than what was captured.
- DHIP search (client): ``{"method":"DHDiscover.search","params":{"mac":"","uni":1}}``
  ([US] ``Dahua2.cs``; [DH-CONSOLE]). Reply (device): ``{"mac":...,"method":
  "client.notifyDevInfo","params":{"deviceInfo":{DeviceType, DeviceClass, SerialNo, Version,
  IPv4Address{IPAddress,...}, Vendor, ...}}}`` ([US] ``Dahua2.selftest``; idx 69173564975).
  Mapping: model = ``DeviceType`` (e.g. ``IPC-HDW1230S``), device_type = ``DeviceClass``,
  firmware = ``Version``, serial = ``SerialNo``, mac = top-level ``mac`` (else a deviceInfo
  ``MAC``/``Mac``: a **Guess**), ip = ``IPv4Address.IPAddress`` (else ``IPv6Address.IPAddress``:
  a **Guess**). Any other ``method`` gives None.
- Legacy 5050 search (client): ``A3 01`` then ``00 01`` ([US] ``Dahua1.cs``,
  [DH-CONSOLE]) or ``00 00`` ([PYDVR] ``DeviceManager.py``); signatures.md §5.10 notes the
  disagreement, so both are accepted. Reply (device): ``B3 00`` ([DH-CONSOLE] "B3 00
  discovery"; [US] ``Dahua1.cs``), a 120-byte struct with the device type (NUL-padded, 16 bytes)
  at 0x28 and the IPv4 address (network order) at 0x38 (signatures.md §2). After the struct
  comes a section whose length is byte 2: the MAC as 17 characters of text, then the model
  ([US] ``Dahua1.cs`` "section 2"; [PYDVR] ``SearchDahua`` reads ``[120:137]`` and ``[137:]``).

cloud_enabled is always None: signatures.md documents Dahua's cloud switch only as device
configuration (``T2UServer.Enable``), not as a field of any discovery message.

Known limits: a DHIP body cut by snaplen is not parsed (None); DHIP on TCP (port 5000 or the
HTTP port) is not routed here; the 5050 reply is not checked beyond its first two bytes.
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
import struct

from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.identity import (
    DeviceIdentity,
    RawFields,
    clean_text,
    first,
    normalize_ip,
    normalize_mac,
    raw_fields,
)
from netwatch.deep.discovery.jsonbody import JsonObject, child, load_object, scalars
from netwatch.deep.discovery.seeded import seed_port

DHIP_PORT = seed_port("dahua-dhip-discovery")
LEGACY_PORT = seed_port("dahua-legacy-discovery")
VENDOR = "Dahua"
DHIP_MAGIC = b"DHIP"
DHIP_HEADER_BYTES = 32
SEARCH_METHOD = "DHDiscover.search"
NOTIFY_METHOD = "client.notifyDevInfo"
LEGACY_PROBE = b"\xa3\x01"
LEGACY_REPLY = b"\xb3\x00"
LEGACY_STRUCT_BYTES = 120
LEGACY_TYPE_OFFSET = 0x28
LEGACY_IP_OFFSET = 0x38
LEGACY_MAC_CHARS = 17

_BODY_LENGTH = struct.Struct("<I")


def parse_dhip(payload: bytes) -> DeviceIdentity | None:
    """Parse a DHIP discovery search (client) or ``client.notifyDevInfo`` (device) message."""
    if len(payload) < DHIP_HEADER_BYTES or payload[4:8] != DHIP_MAGIC:
        return None
    (length,) = _BODY_LENGTH.unpack_from(payload, 16)
    message = load_object(payload[DHIP_HEADER_BYTES : DHIP_HEADER_BYTES + length])
    if message is None:
        return None
    method = message.get("method")
    evidence = raw_fields(scalars(message))
    if method == SEARCH_METHOD:
        return _dhip_identity({}, mac=None, is_reply=False, evidence=evidence)
    info = child(child(message, "params"), "deviceInfo")
    if method != NOTIFY_METHOD or info is None:
        return None
    mac = first(
        normalize_mac(message.get("mac")),
        normalize_mac(info.get("MAC")),
        normalize_mac(info.get("Mac")),
    )
    return _dhip_identity(info, mac=mac, is_reply=True, evidence=evidence)


def _dhip_identity(
    info: JsonObject, *, mac: str | None, is_reply: bool, evidence: RawFields
) -> DeviceIdentity:
    return DeviceIdentity(
        protocol="dhip",
        vendor=VENDOR if is_reply else None,
        model=clean_text(info.get("DeviceType")),
        firmware=clean_text(info.get("Version")),
        serial=clean_text(info.get("SerialNo")),
        mac=mac,
        ip=first(_address(info, "IPv4Address"), _address(info, "IPv6Address")),
        device_type=clean_text(info.get("DeviceClass")),
        cloud_enabled=None,
        is_camera=is_reply,
        is_reply=is_reply,
        raw_fields=evidence,
    )


def _address(info: JsonObject, key: str) -> str | None:
    block = child(info, key)
    return normalize_ip(block.get("IPAddress")) if block is not None else None


def parse_dahua_5050(payload: bytes) -> DeviceIdentity | None:
    """Parse a legacy Dahua search (``A3 01``, client) or reply (``B3 00``, device) on UDP 5050."""
    if payload.startswith(LEGACY_PROBE) and len(payload) >= 4:
        evidence = raw_fields([("header", payload[:4].hex())])
        return DeviceIdentity(
            protocol="dahua_5050", vendor=None, model=None, firmware=None, serial=None,
            mac=None, ip=None, device_type=None, cloud_enabled=None, is_camera=False,
            is_reply=False, raw_fields=evidence,
        )  # fmt: skip
    if not payload.startswith(LEGACY_REPLY) or len(payload) < LEGACY_IP_OFFSET + 4:
        return None
    device_type = _c_string(payload[LEGACY_TYPE_OFFSET : LEGACY_TYPE_OFFSET + 16])
    ip = normalize_ip(socket.inet_ntoa(payload[LEGACY_IP_OFFSET : LEGACY_IP_OFFSET + 4]))
    section = payload[LEGACY_STRUCT_BYTES : LEGACY_STRUCT_BYTES + payload[2]]
    mac_text = _c_string(section[:LEGACY_MAC_CHARS])
    model = _c_string(section[LEGACY_MAC_CHARS:])
    evidence = raw_fields(
        [("DeviceType", device_type), ("IPAddress", ip), ("MAC", mac_text), ("Model", model)]
    )
    return DeviceIdentity(
        protocol="dahua_5050",
        vendor=VENDOR,
        model=model,
        firmware=None,
        serial=None,
        mac=normalize_mac(mac_text),
        ip=ip,
        device_type=device_type,
        cloud_enabled=None,
        is_camera=True,
        is_reply=True,
        raw_fields=evidence,
    )


def _c_string(data: bytes) -> str | None:
    """Text of a NUL-terminated (or NUL-padded) field."""
    return clean_text(data.split(b"\x00", 1)[0].decode("utf-8", "replace"))


class DhipDiscovery(DiscoveryProtocol):
    """Dahua DHIP on UDP 37810."""

    port = DHIP_PORT
    parse = staticmethod(parse_dhip)


class DahuaLegacyDiscovery(DiscoveryProtocol):
    """Dahua's legacy binary search on UDP 5050."""

    port = LEGACY_PORT
    parse = staticmethod(parse_dahua_5050)
