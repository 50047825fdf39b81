"""The signature data as frozen values, and `Signatures.load()` that reads all seed files.

Each seed entry is a frozen dataclass whose fields declare their converter (the pattern of
`netwatch/config/schema.py`), so the YAML keys, their types and their checks are this one
table; `loader.py` turns a file into these values or one `FILE:LINE: key.path: message`
error. Every entry carries `source` (citing the `[KEY]`s its file header names) and
`confidence` (high|med|low|guess, as in research/signatures.md).

| file | entries | key |
| --- | --- | --- |
| `cloud_endpoints.yaml` | `CloudEndpoint` | `endpoints` |
| `payload_signatures.yaml` | `PayloadSignature` | `signatures` |
| `device_fingerprints.yaml` | `Fingerprint` | `fingerprints` |
| `discovery_protocols.yaml` | `DiscoveryProtocol` | `protocols` |
| `camera_vendor_oui.tsv` | `VendorOui` | (TSV rows) |

Payload match language (`Match`): exactly one of `{offset, hex[, mask]}` (the bytes at
`offset`, each ANDed with `mask` when given, equal `hex`), `{contains: ascii}` (the text
occurs in the scanned window) or `{regex: ...}` (a bytes regex searched in the window);
`match:` is one condition or a list that must all hold.

Reads no netwatch config. Known limits: see `loader.py` (one error per run).
"""

# RUF009: `key(...)` returns `dataclasses.field(default=..., metadata=...)` with immutable
# defaults, as in netwatch/config/schema.py.
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from netwatch.config.loader import OneOf, Rules, Variant, list_of, optional, section
from netwatch.config.schema import key
from netwatch.config.values import boolean, choice
from netwatch.seedstore import stored
from netwatch.signatures import loader

ENDPOINTS_FILE = "cloud_endpoints.yaml"
PAYLOADS_FILE = "payload_signatures.yaml"
FINGERPRINTS_FILE = "device_fingerprints.yaml"
DISCOVERY_FILE = "discovery_protocols.yaml"
OUI_FILE = "camera_vendor_oui.tsv"

BANNER_FIELDS = ("http_server", "rtsp_server", "www_authenticate", "user_agent")
#: What a device says about itself on the LAN (read by the DHCP, mDNS and SSDP parsers;
#: never by the banner lookup, so a LAN fingerprint cannot make a server banner).
LAN_FIELDS = (
    "dhcp_hostname",  # DHCP option 12
    "dhcp_vendor_class",  # DHCP option 60
    "dhcp_fingerprint",  # "<OUI>|<option 60>|<option 55 as 1,3,6,...>"
    "mdns_name",  # an mDNS/DNS-SD owner, instance or host name
    "mdns_service",  # a DNS-SD service type ("_psia._tcp")
    "mdns_txt",  # "<service type>|<key>=<value>" of a TXT string ("_hap._tcp|ci=17")
    "ssdp_server",  # SSDP SERVER header (NOTIFY, M-SEARCH reply)
    "ssdp_location",  # SSDP LOCATION URL
    "ssdp_usn",  # SSDP USN / NT
    "upnp_manufacturer",  # UPnP device description <manufacturer>
    "upnp_model",  # UPnP device description <modelName>
    "mac_prefix",  # "AA:BB:CC" (upper case), a vendor's MA-L prefix
)
#: camera: the value alone makes a camera (a model name, a camera service, a camera
#: discovery protocol); weak: it names a vendor that also makes non-camera products (kept
#: as evidence, never a camera alone).
STRENGTHS = ("camera", "weak")
BANNER_MATCHES = ("exact", "prefix", "contains", "regex")
DIRECTIONS = ("client", "server")
CONFIDENCE_RANK = {name: rank for rank, name in enumerate(loader.CONFIDENCES)}


def _duplicate(values: tuple[Any, ...], what: str, name: str) -> tuple[str, str] | None:
    dup = loader.first_duplicate(values)
    return None if dup is None else (name, f"duplicate {what} {dup}")


# ---------------------------------------------------------------- payload conditions


def _check_match(v: dict[str, Any]) -> tuple[str, str] | None:
    if v["hex"] is None:
        for name in ("offset", "mask"):
            if v[name] is not None:
                return name, "only valid together with 'hex'"
        return None
    if v["offset"] is None:
        return "offset", "required with 'hex'"
    mask = v["mask"]
    if mask is not None:
        if len(mask) != len(v["hex"]):
            return "mask", f"must be as many bytes as hex ({len(v['hex'])})"
        if any(h & ~m for h, m in zip(v["hex"], mask, strict=True)):
            return "hex", "has bits outside the mask, so it can never match"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One payload condition: bytes at an offset (masked), an ASCII needle, or a regex."""

    RULES: ClassVar[Rules] = Rules(
        one_of=(OneOf(("hex", "contains", "regex")),), check=_check_match
    )
    offset: int | None = key(optional(loader.offset), None)
    hex: bytes | None = key(optional(loader.hex_bytes), None)
    mask: bytes | None = key(optional(loader.hex_bytes), None)
    contains: bytes | None = key(optional(loader.ascii_bytes), None)
    regex: re.Pattern[bytes] | None = key(optional(loader.regex_bytes), None)


_MATCH = loader.one_or_many(section(Match))


def _check_ports(v: dict[str, Any]) -> tuple[str, str] | None:
    return _duplicate(v["ports"], "port", "ports")


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadSignature:
    """Payload magic of a vendor or standard protocol, tied to a DESIGN.md rule id.

    `ports` (empty = any) are the server-side port of the flow; `direction` says who sends
    the payload: the `client` (originator) or the `server`.
    """

    RULES: ClassVar[Rules] = Rules(check=_check_ports)
    id: str = key(loader.slug)
    vendor: str = key(loader.nonempty)
    rule: str = key(loader.rule_id)
    transport: str = key(choice("tcp", "udp", "any"))
    ports: tuple[int, ...] = key(list_of(loader.port), ())
    match: tuple[Match, ...] = key(_MATCH)
    direction: str = key(choice("client", "server", "any"))
    note: str = key(loader.free_text, "")
    source: str = key(loader.nonempty)
    confidence: str = key(loader.confidence)


# ---------------------------------------------------------------- cloud endpoints


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPort:
    """A port a cloud service uses; `generic` ports (443, 80, ...) are no indicator alone."""

    proto: str = key(loader.proto)
    port: int = key(loader.port)
    generic: bool = key(boolean, False)


def _check_endpoint(v: dict[str, Any]) -> tuple[str, str] | None:
    if not (v["names"] or v["suffixes"] or v["ports"]):
        return "", "needs at least one of names, suffixes, ports"
    pairs = tuple(f"{p.proto}/{p.port}" for p in v["ports"])
    return _duplicate(pairs, "port", "ports")


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEndpoint:
    """A vendor cloud / P2P service: exact DNS names, DNS suffixes and its ports.

    A suffix `.zone.tld` matches every name below `zone.tld`, not `zone.tld` itself (list
    that in `names`). Names and suffixes are unique over the whole file.
    """

    RULES: ClassVar[Rules] = Rules(check=_check_endpoint)
    id: str = key(loader.slug)
    vendor: str = key(loader.nonempty)
    service: str = key(loader.nonempty)
    names: tuple[str, ...] = key(list_of(loader.dns_name), ())
    suffixes: tuple[str, ...] = key(list_of(loader.dns_suffix), ())
    ports: tuple[EndpointPort, ...] = key(list_of(section(EndpointPort)), ())
    note: str = key(loader.free_text, "")
    source: str = key(loader.nonempty)
    confidence: str = key(loader.confidence)


# ---------------------------------------------------------------- banners


def _check_fingerprint(v: dict[str, Any]) -> tuple[str, str] | None:
    if v["strength"] == "weak" and v["field"] in BANNER_FIELDS:
        return "strength", "weak is only for LAN fields (a banner match makes a camera)"
    if v["match"] == "regex":
        try:
            loader.compile_regex(v["value"], as_bytes=False)
        except ValueError as exc:
            return "value", str(exc)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint:
    """A header value that names a camera/NVR vendor (case-sensitive; regex = `re.search`)."""

    RULES: ClassVar[Rules] = Rules(check=_check_fingerprint)
    id: str = key(loader.slug)
    vendor: str = key(loader.nonempty)
    field: str = key(choice(*BANNER_FIELDS, *LAN_FIELDS))
    match: str = key(choice(*BANNER_MATCHES))
    value: str = key(loader.nonempty)
    #: "camera" (default) or "weak" (see STRENGTHS); a regex may capture ``(?P<model>...)``.
    strength: str = key(choice(*STRENGTHS), "camera")
    note: str = key(loader.free_text, "")
    source: str = key(loader.nonempty)
    confidence: str = key(loader.confidence)


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryMarker:
    """One message kind of a discovery protocol (`probe`, `reply`, ...) and its match."""

    message: str = key(loader.slug)
    match: tuple[Match, ...] = key(_MATCH)
    #: A message of this kind makes its sender a camera (only the camera firmware sends it).
    camera: bool = key(boolean, False)
    #: A message of this kind is sent by a device (an announcement or a reply to a search).
    device: bool = key(boolean, False)


def _check_discovery(v: dict[str, Any]) -> tuple[str, str] | None:
    return _duplicate(v["ports"], "port", "ports") or _duplicate(
        tuple(m.message for m in v["markers"]), "message", "markers"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryProtocol:
    """A LAN discovery protocol: UDP ports or an EtherType, where it is sent, its messages.

    `markers` are tried in file order; the first whose conditions all hold names the message.
    """

    RULES: ClassVar[Rules] = Rules(
        variant_key="transport",
        variants={
            "udp": Variant(frozenset({"ports"}), (OneOf(("ports",)),)),
            "ethernet": Variant(frozenset({"ethertype"}), (OneOf(("ethertype",)),)),
        },
        check=_check_discovery,
    )
    id: str = key(loader.slug)
    vendor: str = key(loader.nonempty)
    transport: str = key(choice("udp", "ethernet"))
    ports: tuple[int, ...] = key(list_of(loader.port), ())
    ethertype: int | None = key(optional(loader.ethertype), None)
    multicast: str | None = key(optional(loader.multicast), None)
    broadcast: bool = key(boolean, False)
    markers: tuple[DiscoveryMarker, ...] = key(loader.one_or_many(section(DiscoveryMarker)))
    note: str = key(loader.free_text, "")
    source: str = key(loader.nonempty)
    confidence: str = key(loader.confidence)


# ---------------------------------------------------------------- MAC prefixes


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorOui:
    """An IEEE MA-L prefix of a covered vendor; `camera_vendor` tells camera makers apart."""

    oui: str
    vendor: str
    registrant: str
    camera_vendor: bool
    source: str
    confidence: str

    @property
    def prefix(self) -> bytes:
        """The three prefix bytes."""
        return bytes.fromhex(self.oui.replace(":", ""))


OUI_COLUMNS: dict[str, loader.Parse] = {
    "oui": loader.parse_oui,
    "vendor": loader.parse_nonempty,
    "registrant": loader.parse_nonempty,
    "camera_vendor": loader.parse_yes_no,
    "source": loader.parse_nonempty,
    "confidence": loader.parse_confidence,
}


# ---------------------------------------------------------------- per-file loaders


def load_endpoints(path: Path) -> tuple[CloudEndpoint, ...]:
    return loader.load_yaml_entries(path, "endpoints", CloudEndpoint, ("names", "suffixes"))


def load_payloads(path: Path) -> tuple[PayloadSignature, ...]:
    return loader.load_yaml_entries(path, "signatures", PayloadSignature)


def load_fingerprints(path: Path) -> tuple[Fingerprint, ...]:
    return loader.load_yaml_entries(path, "fingerprints", Fingerprint)


def load_discovery(path: Path) -> tuple[DiscoveryProtocol, ...]:
    return loader.load_yaml_entries(path, "protocols", DiscoveryProtocol)


@stored("ouis")  # parsed ahead of time for the package's seeds (netwatch.seedstore)
def load_ouis(path: Path) -> tuple[VendorOui, ...]:
    _, rows = loader.load_tsv_rows(path, OUI_COLUMNS, unique="oui")
    return tuple(VendorOui(**row) for row in rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signatures:
    """Every seed file, validated. Build with `Signatures.load()`."""

    endpoints: tuple[CloudEndpoint, ...]
    payloads: tuple[PayloadSignature, ...]
    fingerprints: tuple[Fingerprint, ...]
    discovery: tuple[DiscoveryProtocol, ...]
    ouis: tuple[VendorOui, ...]
    seeds_dir: Path
    snapshots: Mapping[str, date] = dataclasses.field(default_factory=dict, hash=False)
    """Each file's `snapshot:` date, by file name."""

    @classmethod
    def load(cls, seeds_dir: Path | None = None) -> Signatures:
        """Read and validate all seed files; raises ConfigError (file:line: key: message).

        Without `seeds_dir`: `<checkout>/seeds`, else the `seeds/` installed in the package.
        """
        root = seeds_dir if seeds_dir is not None else loader.default_seeds_dir()
        names = (ENDPOINTS_FILE, PAYLOADS_FILE, FINGERPRINTS_FILE, DISCOVERY_FILE, OUI_FILE)
        snapshots = MappingProxyType({n: loader.snapshot_of(root / n) for n in names})
        return cls(
            endpoints=load_endpoints(root / ENDPOINTS_FILE),
            payloads=load_payloads(root / PAYLOADS_FILE),
            fingerprints=load_fingerprints(root / FINGERPRINTS_FILE),
            discovery=load_discovery(root / DISCOVERY_FILE),
            ouis=load_ouis(root / OUI_FILE),
            seeds_dir=root,
            snapshots=snapshots,
        )
