"""Hikvision SADP: the XML form on UDP 37020 and the layer-2 form on EtherType 0x8033.

Registered as a discovery protocol (its port and parser); runs only on the payloads the
dispatcher routes here; reads no configuration; never raises.
Formats (source keys from ``research/signatures.md`` §2 and §7):

- XML request: ``<Probe><Uuid/><Types>inquiry</Types></Probe>`` from a client, to 239.255.255.250
  ([US] ``Hikvision.cs``; [HIKTOOLS] ``hiktools/sadp/client.py``). ``Types=SetHCPlatform``
  with ``HCPlatformEnable`` and ``Password`` is a LAN host switching Hik-Connect on
  (idx 17256165405, Low-Med).
- XML reply: ``<ProbeMatch>`` with ``DeviceType, DeviceDescription, DeviceSN, MAC, IPv4Address,
  IPv6Address, SoftwareVersion, HCPlatformEnable, OEMInfo, ...`` ([US] ``Hikvision.selftest``,
  synthetic; several parsers). ``HCPlatformEnable`` is sometimes the string ``flase``.
- Layer 2: EtherType 0x8033, first payload byte ``0x21``, second byte ``0x02`` (called the
  version), 38-byte header ([HIKTOOLS] ``lua/sadp.lua``, ``hiktools/csadp/model.py``;
  ``sadp.h``). signatures.md documents nothing else inside the header, so ``parse_sadp_l2``
  keeps the header bytes as evidence and reports no MAC, IP or model. The second byte is
  read as hiktools' dissector reads it, as the packet type: 1 is a response (sent by a
  device: ``is_reply``/``is_camera`` True, vendor Hikvision), 2 a request (the SADP tool on
  a PC: both False). signatures.md calls the usual value 0x02 a "version"; that agrees with
  the frames seen being requests. The caller takes the device's MAC from the Ethernet
  header.

Field mapping of a ``ProbeMatch``: model = ``DeviceDescription`` (the model string, e.g.
``DS-2CD2043G0-I``); device_type = ``DeviceType`` (a numeric class code); firmware =
``SoftwareVersion``; serial = ``DeviceSN``; ip = ``IPv4Address``, else ``IPv6Address``;
cloud_enabled = ``HCPlatformEnable``. A ``Probe`` reports only its evidence: a requested
``HCPlatformEnable`` is not the device's state, so cloud_enabled stays None there.

Known limits: see ``xmlscan`` (DTDs refused, flat extraction, 64 KiB); a message whose first
element is neither ``Probe`` nor ``ProbeMatch`` is not SADP (None).
"""

from __future__ import annotations

from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.identity import (
    DeviceIdentity,
    clean_text,
    first,
    normalize_ip,
    normalize_mac,
    parse_flag,
    raw_fields,
)
from netwatch.deep.discovery.seeded import seed_port
from netwatch.deep.discovery.xmlscan import decode_document, element_text, leaves
from netwatch.lazyre import lazy
from netwatch.signatures.lan import discovery_seed

SADP_PORT = seed_port("hik-sadp-v2")
SADP_ETHERTYPE = discovery_seed("hik-sadp-v1").ethertype or 0x8033
SADP_L2_RESPONSE = 0x01  # packet type byte of a device's response ([HIKTOOLS] lua/sadp.lua)
SADP_L2_MARKER = 0x21
SADP_L2_HEADER_BYTES = 38
VENDOR = "Hikvision"


_root = lazy(r"(?:<\?xml[^<>]{0,200}\?>\s*)?<(Probe|ProbeMatch)[\s>/]")


def parse_sadp(payload: bytes) -> DeviceIdentity | None:
    """Parse an SADP XML ``Probe`` (client) or ``ProbeMatch`` (device); None if not SADP."""
    document = decode_document(payload)
    if document is None:
        return None
    root = _root().match(document)
    if root is None:
        return None
    is_reply = root.group(1) == "ProbeMatch"
    fields = leaves(document)
    evidence = raw_fields(fields)
    if not is_reply:
        return DeviceIdentity(
            protocol="sadp", vendor=None, model=None, firmware=None, serial=None,
            mac=None, ip=None, device_type=None, cloud_enabled=None,
            is_camera=False, is_reply=False, raw_fields=evidence,
        )  # fmt: skip

    def text(name: str) -> str | None:
        return clean_text(element_text(document, name))

    return DeviceIdentity(
        protocol="sadp",
        vendor=VENDOR,
        model=text("DeviceDescription"),
        firmware=text("SoftwareVersion"),
        serial=text("DeviceSN"),
        mac=normalize_mac(text("MAC")),
        ip=first(normalize_ip(text("IPv4Address")), normalize_ip(text("IPv6Address"))),
        device_type=text("DeviceType"),
        cloud_enabled=parse_flag(text("HCPlatformEnable")),
        is_camera=True,
        is_reply=True,
        raw_fields=evidence,
    )


def parse_sadp_l2(frame_payload: bytes) -> DeviceIdentity | None:
    """Recognise an SADP layer-2 frame (the bytes after EtherType 0x8033); None otherwise."""
    header = frame_payload[:SADP_L2_HEADER_BYTES]
    if len(header) < SADP_L2_HEADER_BYTES or header[0] != SADP_L2_MARKER:
        return None
    evidence = raw_fields(
        [
            ("marker", f"0x{header[0]:02x}"),
            ("version", f"0x{header[1]:02x}"),
            ("header", header.hex()),
            ("payload_bytes", len(frame_payload) - SADP_L2_HEADER_BYTES),
        ]
    )
    reply = header[1] == SADP_L2_RESPONSE
    return DeviceIdentity(
        protocol="sadp_l2", vendor="Hikvision" if reply else None, model=None, firmware=None,
        serial=None, mac=None, ip=None, device_type=None, cloud_enabled=None, is_camera=reply,
        is_reply=reply, raw_fields=evidence,
    )  # fmt: skip


class SadpDiscovery(DiscoveryProtocol):
    """Hikvision SADP (XML) on UDP 37020."""

    port = SADP_PORT
    parse = staticmethod(parse_sadp)
