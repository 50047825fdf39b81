"""UPnP device description: the manufacturer and model a device serves at its LOCATION URL.

:func:`parse_description` reads the ``<manufacturer>``, ``<modelName>``, ``<modelNumber>``
and ``<deviceType>`` of the first ``<device>`` of a UPnP description (the XML body an
SSDP ``LOCATION`` points to) with the DTD-free, bounded extraction of
:mod:`~netwatch.deep.discovery.xmlscan`. :func:`observe_description` matches them against the
LAN fingerprints of ``seeds/device_fingerprints.yaml`` (``upnp_manufacturer``,
``upnp_model``) and reports the HTTP server (the device) through the parser context.

This module defines no registered parser: the HTTP parser owns HTTP responses; it calls
:func:`observe_description` on a response body whose Content-Type is XML and that holds a
``urn:schemas-upnp-org:device-1-0`` root (integration note). Reads no configuration; never
raises. Known limits: only the first device of the description is read (embedded devices
are not); a body cut by the HTTP parser's buffer keeps only the elements before the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.deep.base import Context
from netwatch.deep.discovery.identity import clean_text, lan_identity
from netwatch.deep.discovery.xmlscan import decode_document, element_text
from netwatch.signatures.lan import lan_matcher

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

UPNP_DEVICE_NS = "urn:schemas-upnp-org:device-1-0"


@dataclass(frozen=True, slots=True)
class UpnpDescription:
    """What a UPnP description says about its device."""

    manufacturer: str | None
    model_name: str | None
    model_number: str | None
    device_type: str | None

    def lan_pairs(self) -> list[tuple[str, str]]:
        pairs = [("upnp_manufacturer", self.manufacturer), ("upnp_model", self.model_name)]
        return [(field, value) for field, value in pairs if value]


def parse_description(body: bytes) -> UpnpDescription | None:
    """The description's device fields; None when the body is not a UPnP description."""
    document = decode_document(body)
    if document is None or UPNP_DEVICE_NS not in document:
        return None
    device = document.find("<device")
    scope = document[device:] if device >= 0 else document
    found = UpnpDescription(
        manufacturer=clean_text(element_text(scope, "manufacturer")),
        model_name=clean_text(element_text(scope, "modelName")),
        model_number=clean_text(element_text(scope, "modelNumber")),
        device_type=clean_text(element_text(scope, "deviceType")),
    )
    return found if any((found.manufacturer, found.model_name, found.device_type)) else None


def observe_description(ctx: Context, flow: Flow, body: bytes) -> UpnpDescription | None:
    """Report what the serving end of ``flow`` says in its description (camera or hint)."""
    found = parse_description(body)
    if found is None:
        return None
    ctx.count("upnp_description")
    for hit in lan_matcher().match_all(found.lan_pairs()):
        ident = lan_identity("upnp", hit, None, None)
        ctx.camera(flow.resp_h, hit.vendor, hit.how, ident)
    return found
