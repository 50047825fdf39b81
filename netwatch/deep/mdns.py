"""mDNS/DNS-SD identity: the names and service types a device announces (UDP 5353).

:func:`parse_mdns` reads an mDNS *response* (QR set: an announcement or an answer; queries
are clients asking, never a device signal) and returns the owner and target names of its
answer and additional records (PTR, SRV, A/AAAA owners) and the DNS-SD service types among
them (``_psia._tcp``, ``_dhnap._tcp``, ...), and the ``key=value`` strings of service
instances' TXT records (``_hap._tcp|ci=17``: a HomeKit accessory of category 17, an IP
camera). :func:`observe_mdns` matches them against the LAN fingerprints of
``seeds/device_fingerprints.yaml`` (``mdns_name``, ``mdns_service``, ``mdns_txt``) and
reports the sender through the parser context (camera signal or ``hint:``).

This module defines no registered parser: UDP 5353 is claimed by the DNS parser (it feeds
the passive DNS cache), which calls :func:`observe_mdns` on its mDNS payloads (integration
note: one call in ``DnsParser.udp`` when either port is 5353).

Reads no configuration; never raises. Known limits: at most ``MAX_RECORDS`` records,
``MAX_NAMES`` names and ``MAX_TXT`` TXT strings per message; a name that does not decode
(cut by a snaplen, a bad pointer) ends the walk with what was read so far.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

from netwatch.deep.base import Context
from netwatch.deep.discovery.identity import clean_text, lan_identity
from netwatch.deep.dnsname import read_name
from netwatch.lazyre import lazy
from netwatch.signatures.lan import lan_matcher

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MDNS_PORT = 5353
MAX_RECORDS = 64
MAX_NAMES = 32
MAX_TXT = 32  # TXT key=value strings kept per message
_HEADER = struct.Struct("!HHHHHH")
_RR_TAIL = struct.Struct("!HHIH")
_QR = 0x8000
_PTR, _TXT, _SRV = 12, 16, 33


_service = lazy(r"(?i)(?:^|\.)(_[a-z0-9-]{1,63}\._(?:tcp|udp))(?:\.|$)")


class Announcement(NamedTuple):
    """What an mDNS response announces: names, DNS-SD service types, TXT pairs."""

    names: tuple[str, ...]
    services: tuple[str, ...]
    #: ``<service type>|<key>=<value>`` of each TXT string whose owner is a service
    #: instance (``Front door._hap._tcp.local`` + ``ci=17`` -> ``_hap._tcp|ci=17``).
    txt: tuple[str, ...] = ()


def parse_mdns(payload: bytes) -> Announcement | None:
    """What an mDNS response announces; None for a query or a broken header."""
    if len(payload) < _HEADER.size:
        return None
    _id, flags, qd, an, ns, ar = _HEADER.unpack_from(payload)
    if not flags & _QR:
        return None
    off = _HEADER.size
    names: dict[str, None] = {}
    txt: dict[str, None] = {}
    try:
        for _ in range(min(qd, MAX_RECORDS)):
            _question, off = _name(payload, off)
            off += 4
        for _ in range(min(an + ns + ar, MAX_RECORDS)):
            owner, off = _name(payload, off)
            rtype, _cls, _ttl, size = _RR_TAIL.unpack_from(payload, off)
            off += _RR_TAIL.size
            _add(names, owner)
            if rtype == _PTR:
                _add(names, _name(payload, off)[0])
            elif rtype == _SRV and size > 6:
                _add(names, _name(payload, off + 6)[0])
            elif rtype == _TXT:
                _txt(txt, owner, payload[off : off + size])
            off += size
            if len(names) >= MAX_NAMES:
                break
    except (struct.error, IndexError, ValueError):
        pass
    service = _service()
    services = {m.group(1).lower(): None for n in names for m in [service.search(n)] if m}
    return Announcement(tuple(names), tuple(services), tuple(txt))


def _name(payload: bytes, off: int) -> tuple[str, int]:
    """The name at ``off`` and the offset past it; ValueError where dpkt's unpack_name raises."""
    decoded = read_name(payload, off)
    if decoded is None:
        raise ValueError(f"no DNS name at offset {off}")
    return decoded


def _txt(out: dict[str, None], owner: str, rdata: bytes) -> None:
    """The ``key=value`` strings of a service instance's TXT record (RFC 6763 s. 6)."""
    service = _service().search(owner)
    if service is None:
        return
    at = 0
    while at < len(rdata) and len(out) < MAX_TXT:
        size = rdata[at]
        text = clean_text(rdata[at + 1 : at + 1 + size].decode("utf-8", "replace"))
        at += 1 + size
        if text and "=" in text:
            out[f"{service.group(1).lower()}|{text}"] = None


def _add(names: dict[str, None], name: str) -> None:
    text = clean_text(name)
    if text is not None and len(names) < MAX_NAMES:
        names[text] = None


def lan_pairs(
    names: tuple[str, ...], services: tuple[str, ...], txt: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """The (field, value) pairs matched against the LAN fingerprints."""
    pairs = [("mdns_service", s) for s in services]
    pairs.extend(("mdns_name", n) for n in names if not n.startswith("_"))
    pairs.extend(("mdns_txt", t) for t in txt)
    return pairs


def observe_mdns(ctx: Context, flow: Flow, is_orig: bool, data: bytes) -> None:
    """Report what the sender of an mDNS response announces (camera signal or hint)."""
    found = parse_mdns(data)
    if found is None:
        return
    # the sender's MAC when the frame had one: a device often announces itself over mDNS
    # before DHCP (a link-local or leftover address), and its MAC is what stays
    mac = flow.orig_mac if is_orig else flow.resp_mac
    host = mac if mac is not None and len(mac) == 6 else (flow.orig_h if is_orig else flow.resp_h)
    for hit in lan_matcher().match_all(lan_pairs(*found)):
        ctx.count("mdns_identity")
        ctx.camera(host, hit.vendor, hit.how, lan_identity("mdns", hit, None, None))
