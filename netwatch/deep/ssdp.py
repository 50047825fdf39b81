"""SSDP deep parser: what a UPnP device announces (NOTIFY) or answers (M-SEARCH reply).

Claims UDP 1900 (the first ``deep.max_payload_packets`` payloads of each direction: a
device sends its IGD ``M-SEARCH`` and its ``NOTIFY``s from one port, so one look is not
enough). The payload signatures of the seeds still run on every payload it reads (the IGD
``M-SEARCH`` of ``upnp_port_mapping``), through the inspector's signature hook.
From a ``NOTIFY * HTTP/1.1`` or an ``HTTP/1.1 200 OK`` reply it reads ``SERVER``,
``LOCATION``, ``USN`` and ``NT``/``ST`` and matches them against the LAN fingerprints of
``seeds/device_fingerprints.yaml`` (``ssdp_server``, ``ssdp_location``, ``ssdp_usn``); the
sender is the device. An ``M-SEARCH`` request is a client looking for devices (a phone, a
camera looking for the router's IGD): never a camera signal.

Reads no configuration; never raises. Known limits: the signature hook is the inspector's
``_signature`` (integration note: make it public in the parser Context); the
UPnP device description behind ``LOCATION`` is fetched over HTTP by the viewer, not read
here (see the integration notes); headers past ``MAX_HEADER_BYTES`` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.deep.base import Context, DeepParser, service
from netwatch.deep.discovery.identity import clean_text, lan_identity
from netwatch.deep.discovery.seeded import seed_port
from netwatch.signatures.lan import lan_matcher

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

SSDP_PORT = seed_port("ssdp-igd-search")
MAX_HEADER_BYTES = 2048
MAX_HEADERS = 32
_FIELDS = {
    "server": "ssdp_server",
    "location": "ssdp_location",
    "usn": "ssdp_usn",
    "nt": "ssdp_usn",
    "st": "ssdp_usn",
}


@dataclass(frozen=True, slots=True)
class SsdpMessage:
    """A device's SSDP message: its kind and the headers netwatch reads."""

    kind: str  # "notify" | "reply"
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), only _FIELDS names

    def lan_pairs(self) -> list[tuple[str, str]]:
        return [(_FIELDS[name], value) for name, value in self.headers]


def parse_ssdp(payload: bytes) -> SsdpMessage | None:
    """A NOTIFY or M-SEARCH reply, or None (an M-SEARCH request, or not SSDP)."""
    head = payload[:MAX_HEADER_BYTES].decode("latin-1")
    lines = head.split("\n", MAX_HEADERS + 1)
    first = lines[0].strip().upper()
    if first.startswith("NOTIFY "):
        kind = "notify"
    elif first.startswith("HTTP/1.") and " 200" in first:
        kind = "reply"
    else:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1 : MAX_HEADERS + 1]:
        name, sep, value = line.partition(":")
        key = name.strip().lower()
        text = clean_text(value) if sep else None
        if key in _FIELDS and text is not None:
            headers.append((key, text))
    return SsdpMessage(kind, tuple(headers))


class SsdpParser(DeepParser):
    """SSDP NOTIFY and M-SEARCH replies: the sender's SERVER, LOCATION and USN."""

    rank = 3
    udp_ports = frozenset({SSDP_PORT})

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        signatures = getattr(ctx, "_signature", None)  # the payload signatures still run
        if signatures is not None:
            signatures(flow, "udp", is_orig, data)
        msg = parse_ssdp(data)
        if msg is None:
            return
        ctx.count(f"ssdp_{msg.kind}")
        service(flow, "ssdp")
        host = flow.orig_h if is_orig else flow.resp_h
        for hit in lan_matcher().match_all(msg.lan_pairs()):
            ctx.camera(host, hit.vendor, hit.how, lan_identity("ssdp", hit, None, None))
