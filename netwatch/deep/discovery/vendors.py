"""Consumer-camera vendors' LAN discovery: D-Link setup (UDP 62976), TP-Link TDP (UDP
20002), Xiaomi miIO hello (UDP 54321).

Ports and message kinds come from ``seeds/discovery_protocols.yaml``
(:mod:`~netwatch.deep.discovery.seeded`); this module reads the fields:

- D-Link setup discovery (seed ``dlink-setup-discovery``, observed in the camera-real
  D-Link captures): the ``ff ff .. 00 a0 00`` form carries the camera's MAC (bytes 6-11),
  IPv4 (12-15) and a product text ("Wireless Internet Camera"); the ``fd fd`` form nothing
  readable. Both come only from cameras in the captures seen (the seed's confidence: low).
- TP-Link TDP (seed ``tplink-tdp``, python-kasa): a 16-byte header, then JSON whose
  ``result`` names ``device_type`` (``SMART.IPCAMERA`` for Tapo cameras), ``device_model``,
  ``mac`` and ``ip``; a plug or hub reply is a device but not a camera.
- Xiaomi miIO (seed ``xiaomi-miio``, python-miio): a hello reply carries the device id
  (bytes 8-11); every miIO device answers, so it is never a camera by itself.

Reads no configuration; never raises. Known limits: TDP bodies that are encrypted or cut
give the message kind only; the D-Link product text is kept as ``device_type``, not a model.
"""

from __future__ import annotations

from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.identity import DeviceIdentity, clean_text, normalize_ip, normalize_mac
from netwatch.deep.discovery.jsonbody import child, load_object
from netwatch.deep.discovery.seeded import Fields, seed_port, seeded
from netwatch.lazyre import lazy
from netwatch.signatures.model import DiscoveryMarker

TDP_HEADER_LEN = 16


_printable = lazy(rb"[\x20-\x7e]{4,64}")


def _dlink(payload: bytes, mk: DiscoveryMarker) -> Fields:
    if mk.message != "camera-announce" or len(payload) < 16:
        return Fields()
    mac = normalize_mac(payload[6:12].hex())
    ip = normalize_ip(".".join(str(b) for b in payload[12:16]))
    text = _printable().search(payload, 16)
    product = clean_text(text.group().decode("ascii")) if text else None
    return Fields(mac=mac, ip=ip, device_type=product, raw=(("product", product or ""),))


def _tplink(payload: bytes, mk: DiscoveryMarker) -> Fields:
    result = child(load_object(payload[TDP_HEADER_LEN:]), "result")
    if result is None:
        return Fields()
    device_type = clean_text(result.get("device_type"))
    model = clean_text(result.get("device_model"))
    return Fields(
        model=model,
        mac=normalize_mac(result.get("mac")),
        ip=normalize_ip(result.get("ip")),
        device_type=device_type,
        raw=(("device_type", device_type or ""), ("device_model", model or "")),
    )


def _miio(payload: bytes, mk: DiscoveryMarker) -> Fields:
    device_id = payload[8:12].hex() if len(payload) >= 12 else None
    return Fields(serial=device_id, raw=(("device_id", device_id or ""),))


_DLINK_PARSE = seeded("dlink-setup-discovery", "dlink_setup", _dlink)
_TPLINK_PARSE = seeded("tplink-tdp", "tplink_tdp", _tplink)
_MIIO_PARSE = seeded("xiaomi-miio", "miio", _miio)


class DlinkSetupDiscovery(DiscoveryProtocol):
    """D-Link cameras' setup broadcasts (UDP 62976)."""

    port = seed_port("dlink-setup-discovery")

    @staticmethod
    def parse(payload: bytes) -> DeviceIdentity | None:
        return _DLINK_PARSE(payload)


class TplinkTdpDiscovery(DiscoveryProtocol):
    """TP-Link discovery replies (UDP 20002); a camera only for ``SMART.IPCAMERA``."""

    port = seed_port("tplink-tdp")

    @staticmethod
    def parse(payload: bytes) -> DeviceIdentity | None:
        return _TPLINK_PARSE(payload)


class MiioDiscovery(DiscoveryProtocol):
    """Xiaomi miIO hello and replies (UDP 54321); never a camera alone."""

    port = seed_port("xiaomi-miio")

    @staticmethod
    def parse(payload: bytes) -> DeviceIdentity | None:
        return _MIIO_PARSE(payload)
