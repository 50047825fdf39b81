"""Discovery protocols driven by ``seeds/discovery_protocols.yaml``: port and messages.

A protocol class built with :func:`seeded` reads its UDP port and its message markers from
the seed entry it names (at import: the seed is the one place they are written); the code
adds only what the markers cannot say, the fields a message carries (``Extract``). The
first marker that holds names the message; a marker with ``device: true`` makes the
identity a device's (``is_reply``), with ``camera: true`` a camera's (``is_camera``).

Reads no netwatch configuration (the default seeds directory, once); never raises on
payloads. Known limit: a seed entry with several ports gives the class its first port only
(the registry routes one port per protocol).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netwatch.deep.discovery.identity import (
    MAX_PAYLOAD_BYTES,
    DeviceIdentity,
    RawFields,
    raw_fields,
)
from netwatch.signatures.lan import SeedMarkers, discovery_seed
from netwatch.signatures.model import DiscoveryMarker


@dataclass(frozen=True, slots=True)
class Fields:
    """What a message says besides its kind (all optional)."""

    model: str | None = None
    serial: str | None = None
    mac: str | None = None
    ip: str | None = None
    device_type: str | None = None
    raw: RawFields = ()


Extract = Callable[[bytes, DiscoveryMarker], Fields]
Parse = Callable[[bytes], DeviceIdentity | None]


def seed_port(seed_id: str) -> int:
    """The (first) UDP port of a seed entry."""
    return discovery_seed(seed_id).ports[0]


def seeded(seed_id: str, protocol: str, extract: Extract) -> Parse:
    """The parser of a seed entry's messages, with ``extract`` reading their fields."""
    markers = SeedMarkers(discovery_seed(seed_id))
    vendor = markers.proto.vendor

    def parse(payload: bytes) -> DeviceIdentity | None:
        data = payload[:MAX_PAYLOAD_BYTES]
        mk = markers.message(data)
        if mk is None:
            return None
        found = extract(data, mk) if mk.device else Fields()
        return DeviceIdentity(
            protocol=protocol,
            vendor=vendor if mk.device else None,
            model=found.model,
            firmware=None,
            serial=found.serial,
            mac=found.mac,
            ip=found.ip,
            device_type=found.device_type,
            cloud_enabled=None,
            is_camera=mk.camera,
            is_reply=mk.device,
            raw_fields=raw_fields([("message", mk.message), *found.raw]),
        )

    return parse
