"""Xiongmai / XMEye ("NetSurveillance", "Sofia") discovery on UDP 34569.

Registered as a discovery protocol (its port and parser); runs only on the payloads the
dispatcher routes here; reads no configuration; never raises.
Format (source keys from ``research/signatures.md`` §1c, §2 and §7):

- 20-byte little-endian DVRIP header: ``FF`` head, version (``00`` in requests, ``01`` seen in
  replies), 2 reserved, u32 session, u32 sequence, 2 bytes, u16 message id at 14, u32 body
  length at 16; JSON body ending ``0A 00`` ([PYDVR] ``dvrip.py`` ``"BB2xII2xHI"``; [LPI]
  ``lpi_netcat_cctv.cc``).
- Search (client): message 1530 (``FA 05``), empty body. Reply (device): message 1531 with JSON
  ``{"NetWork.NetCommon": {...}, "Ret": 100, ...}`` ([PYDVR] ``DeviceManager.py``
  ``SearchXM``).
- ``NetWork.NetCommon`` mapping: mac = ``MAC``; serial = ``SN``; ip = ``HostIP``, a hex string
  of the address read as a little-endian u32 (``"0x6401A8C0"`` is 192.168.1.100: [PYDVR]
  ``GetIP``/``SetIP``), a dotted address is accepted too (**Guess**); device_type =
  ``DeviceType`` (a number in the examples). firmware = ``Version`` or ``SoftWareVersion``
  when present (**Guess**: the replies in [PYDVR] carry no version field). ``HostName`` is a
  user-set name, kept only as evidence; model is None.

Any other message id gives None (e.g. 1532/1533, the network-settings write and its answer).
cloud_enabled is always None: signatures.md documents ``NetWork.Nat.NatEnable`` only as
device configuration read over DVRIP, not as part of the discovery reply. No vendor MAC
block exists for Xiongmai (signatures.md §5.6), so this protocol is the identification.

Known limits: a body cut by snaplen is not parsed (None); the version byte is not checked.
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
import struct

from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.identity import (
    DeviceIdentity,
    clean_text,
    first,
    normalize_ip,
    normalize_mac,
    raw_fields,
)
from netwatch.deep.discovery.jsonbody import child, load_object, scalars
from netwatch.deep.discovery.seeded import seed_port
from netwatch.lazyre import lazy

XM_PORT = seed_port("xm-discovery")
VENDOR = "Xiongmai"
HEAD = 0xFF
SEARCH_MSG = 1530
REPLY_MSG = 1531
HEADER_BYTES = 20
NET_COMMON = "NetWork.NetCommon"


_hex_address = lazy(r"0[xX]([0-9A-Fa-f]{1,8})")


_HEADER = struct.Struct("<BB2xII2xHI")  # head, version, session, sequence, message id, length


def parse_xiongmai(payload: bytes) -> DeviceIdentity | None:
    """Parse a Xiongmai search (message 1530, client) or reply (1531, device); else None."""
    if len(payload) < HEADER_BYTES:
        return None
    head, version, _session, _sequence, message_id, length = _HEADER.unpack_from(payload)
    if head != HEAD or message_id not in {SEARCH_MSG, REPLY_MSG}:
        return None
    header_fields: list[tuple[str, object]] = [("msg", message_id), ("version", version)]
    if message_id == SEARCH_MSG:
        return DeviceIdentity(
            protocol="xiongmai", vendor=None, model=None, firmware=None, serial=None, mac=None,
            ip=None, device_type=None, cloud_enabled=None, is_camera=False, is_reply=False,
            raw_fields=raw_fields(header_fields),
        )  # fmt: skip
    message = load_object(payload[HEADER_BYTES : HEADER_BYTES + length])
    common = child(message, NET_COMMON)
    if message is None or common is None:
        return None
    return DeviceIdentity(
        protocol="xiongmai",
        vendor=VENDOR,
        model=None,
        firmware=first(
            clean_text(common.get("Version")), clean_text(common.get("SoftWareVersion"))
        ),
        serial=clean_text(common.get("SN")),
        mac=normalize_mac(common.get("MAC")),
        ip=host_ip(common.get("HostIP")),
        device_type=clean_text(common.get("DeviceType")),
        cloud_enabled=None,
        is_camera=True,
        is_reply=True,
        raw_fields=raw_fields([*header_fields, *scalars(message)]),
    )


def host_ip(value: object) -> str | None:
    """Xiongmai's ``"0x6401A8C0"`` (little-endian u32) or a dotted address; None otherwise."""
    text = clean_text(value)
    if text is None:
        return None
    match = _hex_address().fullmatch(text)
    if match is None:
        return normalize_ip(text)
    number = int(match.group(1), 16)
    return normalize_ip(socket.inet_ntoa(number.to_bytes(4, "little")))


class XiongmaiDiscovery(DiscoveryProtocol):
    """Xiongmai / XMEye search on UDP 34569."""

    port = XM_PORT
    parse = staticmethod(parse_xiongmai)
