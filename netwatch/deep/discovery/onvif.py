"""ONVIF / WS-Discovery (SOAP over UDP 3702): client searches vs. device answers and announcements.

Registered as a discovery protocol (its port and parser); runs only on the payloads the
dispatcher routes here; reads no configuration; never raises.
Sources (``research/signatures.md`` §2 and §7): [US] ``Wsdiscovery.cs`` and
``Wsdiscovery.selftest``; [NMAP] ``nselib/wsdd.lua``; the OASIS WS-Discovery message names.

- The message must be a SOAP ``Envelope`` (an SADP ``<Probe>`` is not WS-Discovery); its
  kind is the first element named ``Probe`` or ``Resolve`` (a client's
  search: ``is_reply=False``) or ``ProbeMatches``, ``ResolveMatches``, ``Hello`` or ``Bye``
  (a device's answer or announcement: ``is_reply=True``), with any namespace prefix. Anything
  else gives None.
- ``is_camera``: a reply or announcement whose ``Types`` holds ``NetworkVideoTransmitter``
  under any prefix (signatures.md: camera type ``dn:NetworkVideoTransmitter``). A client's
  ``Probe`` for that type is not a camera.
- From a device message: ``Scopes`` ``onvif://www.onvif.org/hardware/<model>`` -> model,
  ``.../name/<name>`` -> vendor (devices put their maker or product name there: as announced),
  ``.../MAC/<mac>`` -> mac (percent-decoded); device_type = the local names in ``Types``;
  ip = the host of the first ``XAddrs`` URL that is an IP address. WS-Discovery carries no
  firmware or serial number (None).

Parsing is the bounded, DTD-free extraction of ``xmlscan`` (64 KiB cap, no entity expansion,
messages with a DTD refused); see there for why it is not an XML parser.

Known limits: only the first ``ProbeMatch`` of a ``ProbeMatches`` is read (devices send one);
at most ``MAX_SCOPES`` scopes are examined; a ``name`` scope is free text and may hold a
product or user-set name rather than the maker.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.identity import (
    DeviceIdentity,
    clean_text,
    normalize_ip,
    normalize_mac,
    raw_fields,
)
from netwatch.deep.discovery.seeded import seed_port
from netwatch.deep.discovery.xmlscan import decode_document, element_text
from netwatch.lazyre import lazy

WSD_PORT = seed_port("onvif-ws-discovery")
MAX_SCOPES = 32
MAX_XADDRS = 8
CAMERA_TYPE = "NetworkVideoTransmitter"
CLIENT_KINDS = frozenset({"Probe", "Resolve"})
DEVICE_KINDS = frozenset({"ProbeMatches", "ResolveMatches", "Hello", "Bye"})


_envelope = lazy(r"<(?:[A-Za-z_][\w.-]{0,63}:)?Envelope[\s>]")


_kind = lazy(
    r"<(?:[A-Za-z_][\w.-]{0,63}:)?(ProbeMatches|ResolveMatches|Probe|Resolve|Hello|Bye)[\s>/]"
)


_onvif_scope = lazy(r"onvif://www\.onvif\.org/([A-Za-z_]+)/(.+)", re.IGNORECASE)


def parse_onvif(payload: bytes) -> DeviceIdentity | None:
    """Parse a WS-Discovery message; None if it is not one of the six discovery messages."""
    document = decode_document(payload)
    if document is None:
        return None
    envelope = _envelope().search(document)
    kind_match = _kind().search(document, envelope.end()) if envelope else None
    if kind_match is None:
        return None
    kind = kind_match.group(1)
    is_reply = kind in DEVICE_KINDS
    types = (clean_text(element_text(document, "Types")) or "").split()
    scopes = (element_text(document, "Scopes") or "").split()[:MAX_SCOPES]
    xaddrs = (element_text(document, "XAddrs") or "").split()[:MAX_XADDRS]
    evidence = raw_fields(
        [
            ("kind", kind),
            ("Action", element_text(document, "Action")),
            ("Address", element_text(document, "Address")),
            ("Types", " ".join(types)),
            ("XAddrs", " ".join(xaddrs)),
            *(("Scope", scope) for scope in scopes),
        ]
    )
    local_types = [name.rsplit(":", 1)[-1] for name in types]
    if not is_reply:
        return DeviceIdentity(
            protocol="onvif", vendor=None, model=None, firmware=None, serial=None, mac=None,
            ip=None, device_type=None, cloud_enabled=None, is_camera=False, is_reply=False,
            raw_fields=evidence,
        )  # fmt: skip
    scoped = _scope_values(scopes)
    return DeviceIdentity(
        protocol="onvif",
        vendor=scoped.get("name"),
        model=scoped.get("hardware"),
        firmware=None,
        serial=None,
        mac=normalize_mac(scoped.get("mac")),
        ip=_xaddr_ip(xaddrs),
        device_type=clean_text(" ".join(local_types)),
        cloud_enabled=None,
        is_camera=CAMERA_TYPE in local_types,
        is_reply=True,
        raw_fields=evidence,
    )


def _scope_values(scopes: list[str]) -> dict[str, str]:
    """First value per ``onvif://www.onvif.org/<category>/<value>`` scope, category lowercased."""
    values: dict[str, str] = {}
    for scope in scopes:
        match = _onvif_scope().fullmatch(scope)
        if match is None:
            continue
        value = clean_text(unquote(match.group(2), errors="replace"))
        category = match.group(1).lower()
        if value is not None and category not in values:
            values[category] = value
    return values


def _xaddr_ip(xaddrs: list[str]) -> str | None:
    """The host of the first service URL whose host is an IP address."""
    for url in xaddrs:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            continue
        address = normalize_ip(host)
        if address is not None:
            return address
    return None


class OnvifDiscovery(DiscoveryProtocol):
    """ONVIF WS-Discovery on UDP 3702."""

    port = WSD_PORT
    parse = staticmethod(parse_onvif)
