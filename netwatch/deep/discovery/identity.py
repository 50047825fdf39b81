"""What a discovery message says about the device (or client) that sent it, and field cleaning.

``DeviceIdentity`` is the one value every discovery parser returns; the helpers here turn
announced text into bounded, normalised fields. Reads no configuration; never raises.

Field meanings:
- ``vendor``: for the vendor protocols (SADP, DHIP, Dahua 5050, Xiongmai) the firmware family
  the protocol implies, set only on device replies (signatures.md §3: "any device that answers
  SADP runs Hikvision firmware", marked there as a **Guess**; the OEM brand a device announces,
  e.g. SADP ``OEMInfo`` or DHIP ``Vendor``, stays in ``raw_fields``). For ONVIF, the
  ``onvif://www.onvif.org/name/...`` scope as announced.
- ``is_reply``: the message is an answer or announcement from a device, not a client's search.
- ``is_camera``: a device announces itself as camera-class. For the vendor protocols this is
  ``is_reply`` (only the vendor's firmware answers them: the same §3 **Guess**); for ONVIF it
  needs a ``NetworkVideoTransmitter`` type in a reply or announcement.
- ``cloud_enabled``: only SADP documents a passive indicator (``HCPlatformEnable``); None
  elsewhere and whenever the value is absent or unreadable.
- ``raw_fields``: the announced (key, value) pairs kept as evidence, at most
  ``MAX_RAW_FIELDS``, each value cut to ``MAX_TEXT_CHARS``; secrets (``Password``, ``Salt``,
  ...) are replaced by ``REDACTED``.

Known limits:
- Control characters are dropped from text; text is cut to ``MAX_TEXT_CHARS`` characters.
- A MAC is accepted as 6 hex pairs separated by ``:`` or ``-``, 3 dot-separated groups of 4, or
  12 bare hex digits; anything else gives ``mac=None`` (the raw text stays in ``raw_fields``).
- An IP must parse as IPv4 or IPv6 (no leading zeros, no zone); the unspecified addresses
  (``0.0.0.0``, ``::``) count as absent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from netwatch.signatures.lan import LanHit

MAX_PAYLOAD_BYTES = 65536  # bytes of a message examined; the rest is ignored
MAX_RAW_FIELDS = 32
MAX_TEXT_CHARS = 256
REDACTED = "<redacted>"

RawFields = tuple[tuple[str, str], ...]


_control = lazy(r"[\x00-\x1f\x7f-\x9f]")


_mac_pairs = lazy(r"[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}")


_mac_dotted = lazy(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}")


_mac_bare = lazy(r"[0-9A-Fa-f]{12}")


_SECRET_KEYS = frozenset(
    {"password", "oldpassword", "newpassword", "salt", "verificationcode", "authcode",
     "securitycode", "passwd", "pwd"}
)  # fmt: skip
_TRUE = frozenset({"true", "1", "yes", "on", "enable", "enabled"})
_FALSE = frozenset({"false", "flase", "0", "no", "off", "disable", "disabled"})  # sic "flase"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What one discovery message announces (device reply) or asks (client probe)."""

    protocol: str  # "sadp", "sadp_l2", "dhip", "dahua_5050", "xiongmai", "onvif"
    vendor: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    mac: str | None  # "aa:bb:cc:dd:ee:ff"
    ip: str | None  # as announced in the message (not the packet's source address)
    device_type: str | None
    cloud_enabled: bool | None
    is_camera: bool
    is_reply: bool
    raw_fields: RawFields


def clean_text(value: object) -> str | None:
    """Announced text without control characters, stripped and cut; None when empty."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = _control().sub("", str(value)[: MAX_TEXT_CHARS * 4]).strip()
    return text[:MAX_TEXT_CHARS] or None


def normalize_mac(value: object) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from the usual MAC spellings; None for anything else."""
    text = clean_text(value)
    if text is None or len(text) > 17:
        return None
    if not (
        _mac_pairs().fullmatch(text) or _mac_dotted().fullmatch(text) or _mac_bare().fullmatch(text)
    ):
        return None
    digits = re.sub(r"[^0-9A-Fa-f]", "", text).lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def normalize_ip(value: object) -> str | None:
    """Canonical text of an announced IPv4/IPv6 address; None if invalid or unspecified."""
    text = clean_text(value)
    if text is None or len(text) > 45 or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if address.is_unspecified else str(address)


def parse_flag(value: object) -> bool | None:
    """A boolean as devices spell it (including SADP's ``flase``); None when unreadable."""
    if isinstance(value, bool):
        return value
    text = clean_text(value)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    return False if lowered in _FALSE else None


def raw_fields(pairs: Iterable[tuple[str, object]]) -> RawFields:
    """Bounded evidence pairs: cleaned keys and values, secrets redacted, empties dropped."""
    kept: list[tuple[str, str]] = []
    for key, value in pairs:
        if len(kept) >= MAX_RAW_FIELDS:
            break
        name = clean_text(key)
        text = clean_text(value) if not isinstance(value, bool) else str(value).lower()
        if name is None or text is None:
            continue
        if name.rsplit(".", 1)[-1].lower() in _SECRET_KEYS:
            text = REDACTED
        kept.append((name[:64], text))
    return tuple(kept)


def first(*values: str | None) -> str | None:
    """The first value that is not None."""
    return next((value for value in values if value is not None), None)


def lan_identity(protocol: str, hit: LanHit, mac: str | None, ip: str | None) -> DeviceIdentity:
    """The identity a LAN fingerprint hit reports (DHCP, mDNS, SSDP): the matched value and
    the fingerprint id as evidence; a camera when the fingerprint's strength is camera."""
    field = hit.fingerprint.field
    return DeviceIdentity(
        protocol=protocol,
        vendor=hit.vendor,
        model=hit.model,
        firmware=None,
        serial=None,
        mac=mac,
        ip=ip,
        device_type=None,
        cloud_enabled=None,
        is_camera=hit.camera,
        is_reply=True,
        raw_fields=raw_fields([(field, hit.value), ("fingerprint", hit.fingerprint.id)]),
    )
