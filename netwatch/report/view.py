"""The report's view model: the inventory JSON read into typed rows, with the totals.

:func:`view_of` takes the inventory dict (:mod:`netwatch.inventory`: built from captures, or
the file a sensor or ``replay --state-dir`` saved) and returns a :class:`ReportView`: the
summary (cameras by vendor, how many talk outside the site, to how many countries and ASes,
bytes up), the traffic per country, AS and name over all cameras, the cloud/P2P platforms,
the exposure and audio findings, one :class:`CameraView` per camera, and the GeoIP data's
name, licence and attribution. Nothing here formats HTML.

The input is data from the wire and from a file: every field is type-checked as it is
read; a missing or mistyped field becomes ``None``/0/empty rather than an error, so a
partly written or older inventory still renders. Strings stay unescaped here (the renderer
escapes every one).

Config read: none. Bounded: at most ``MAX_CAMERAS`` cameras and ``MAX_ENTRIES`` entries
of each list per camera are read (the rest counted, or cut: a saved file is not trusted to
be as small as the inventory keeps it); the totals list at most ``MAX_ROWS`` rows each,
the overview of findings ``MAX_FINDINGS_LISTED``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netwatch.alerts.model import Severity, rank_of

MAX_ROWS = 20
MAX_FINDINGS_LISTED = 200  # the overview of every finding; the camera sections list all
#: What a view reads of an inventory at most (a file is not trusted to be small): cameras,
#: and per camera the entries of each list; the rest is counted in ``ReportView.not_shown``.
MAX_CAMERAS = 4096
MAX_ENTRIES = 256
LOCAL = "local"
UNKNOWN = "unknown"
OTHERS = "others"
#: Rules whose findings say the camera is reachable from outside the site.
EXPOSURE_RULES = frozenset({"inbound_access", "upnp_port_mapping"})
#: Rules whose findings are about sound.
AUDIO_RULES = frozenset({"audio_stream"})
#: Rules whose findings are cloud/P2P registrations or NAT traversal.
PLATFORM_RULES = frozenset({"cloud_registration", "cloud_enabled", "nat_traversal"})
SEVERITY_ORDER = tuple(s.value for s in Severity)
#: How a camera was recognised, in words: the head of a ``recognised_by`` entry (the part
#: before ``:``; netwatch.detect.devices names the vocabulary) -> what a person reads.
RECOGNITION_WORDS = {
    "inventory": "listed in the inventory",
    "vendor_oui": "MAC prefix of a camera maker",
    "banner": "server banner",
    "payload": "payload signature",
    "pppp": "CS2/PPPP P2P message",
    "dhcp_fingerprint": "DHCP fingerprint",
    "dhcp_hostname": "DHCP host name",
    "mdns_name": "mDNS name",
    "mdns_service": "mDNS service",
    "mdns_txt": "mDNS TXT record",
    "mdns_identity": "mDNS identity",
    "ssdp_server": "SSDP Server header",
    "ssdp_location": "SSDP location",
    "ssdp_usn": "SSDP USN",
    "upnp_description": "UPnP description",
    "upnp_manufacturer": "UPnP manufacturer",
    "upnp_model": "UPnP model name",
}


def describe_how(how: str) -> str:
    """``dhcp_hostname:dlink-dcs`` -> ``DHCP host name (dlink-dcs)``; a bare word no table
    knows is a discovery protocol's name (``dlink_setup`` -> ``discovery reply
    (dlink_setup)``)."""
    head, colon, detail = how.partition(":")
    word = RECOGNITION_WORDS.get(head)
    if word is None:
        return f"{head} ({detail})" if colon else f"discovery reply ({how})"
    return f"{word} ({detail})" if detail else word


def _str(value: Any) -> str | None:
    """A string field (numbers turned to text), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _list(value: Any, limit: int | None = None) -> list[Any]:
    """The first ``limit`` (default ``MAX_ENTRIES``) entries of a list (empty for anything
    else)."""
    if not isinstance(value, list):
        return []
    return value[: MAX_ENTRIES if limit is None else limit]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(s for s in (_str(v) for v in _list(value)) if s is not None)


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """Traffic to one country, AS or name: bytes each way and flows."""

    label: str
    bytes_out: int
    bytes_in: int
    flows: int
    detail: str | None = None  # the AS organisation next to its number
    cameras: int = 1  # how many cameras the row sums (totals over cameras)


@dataclass(frozen=True, slots=True)
class Platform:
    """A cloud/P2P platform a camera registered with."""

    name: str
    first_seen: float | None
    last_seen: float | None
    flows: int


@dataclass(frozen=True, slots=True)
class Finding:
    """One incident: what a rule found, with its evidence fields."""

    rule: str
    severity: str
    reached: str | None
    first: float | None
    last: float | None
    count: int
    open: bool
    summary: str
    direction: str | None
    peer: str | None
    peer_country: str | None
    evidence: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CameraView:
    """One camera as the report shows it."""

    id: str
    name: str | None
    vendor: str | None
    mac_vendor: str | None  # the IEEE registrant of the MAC prefix, when known
    model: str | None
    firmware: str | None
    serial: str | None
    macs: tuple[str, ...]
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    recognised_by: tuple[str, ...]
    group: str | None
    managed: bool
    first_seen: float | None
    last_seen: float | None
    platforms: tuple[Platform, ...]
    countries: tuple[TrafficRow, ...]
    asns: tuple[TrafficRow, ...]
    names: tuple[TrafficRow, ...]
    bytes_out_external: int
    findings: tuple[Finding, ...]

    @property
    def title(self) -> str:
        """How a person names it: the inventory name, else vendor and model, and address."""
        what = " ".join(p for p in (self.vendor, self.model) if p) or "camera"
        if not self.vendor and self.mac_vendor:
            what = f"{what} ({self.mac_vendor})"
        where = (self.ipv4 or self.ipv6 or self.macs or (self.id,))[0]
        return f"{self.name} ({what})" if self.name else f"{what} {where}"

    @property
    def outside_countries(self) -> tuple[str, ...]:
        """The countries it talked to outside the site (``unknown`` included)."""
        return tuple(r.label for r in self.countries if r.label not in (LOCAL, OTHERS))

    @property
    def talks_outside(self) -> bool:
        """Sent or received anything to or from a peer outside the site."""
        return self.bytes_out_external > 0 or bool(self.outside_countries)


@dataclass(frozen=True, slots=True)
class VendorCount:
    """How many cameras of one vendor, and how many of them talk outside the site."""

    vendor: str
    cameras: int
    outside: int


@dataclass(frozen=True, slots=True)
class Summary:
    """The audit's answer in a few numbers."""

    cameras: int
    by_vendor: tuple[VendorCount, ...]
    talking_outside: int
    on_platforms: int  # cameras that registered with a cloud/P2P platform
    countries: tuple[str, ...]  # known countries outside the site
    asns: int
    bytes_up: int
    findings_by_severity: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CameraFinding:
    """A finding with the camera it is about (the exposure and audio sections)."""

    camera: CameraView
    finding: Finding


@dataclass(frozen=True, slots=True)
class PlatformUse:
    """A platform with the camera that used it (the registrations section)."""

    camera: CameraView
    platform: Platform


@dataclass(frozen=True, slots=True)
class GeoData:
    """Which GeoIP data placed the peers, its licence and the attribution it requires."""

    name: str | None
    built: str | None
    licence: str | None
    attribution: str | None

    @property
    def line(self) -> str:
        """One line for the page: ``GeoIP data: NAME, built DATE; LICENCE. ATTRIBUTION``
        (the attribution once: not again when the licence text carries it)."""
        head = "GeoIP data: " + (self.name or "unknown")
        head += f", built {self.built}" if self.built else ""
        head += f"; {self.licence}" if self.licence else ""
        if self.attribution and self.attribution not in (self.licence or ""):
            head += f". {self.attribution}"
        return head


def _geo(value: Any) -> GeoData | None:
    d = _dict(value)
    if not d:
        return None
    return GeoData(
        _str(d.get("name")),
        _str(d.get("built")),
        _str(d.get("licence")),
        _str(d.get("attribution")),
    )


@dataclass(frozen=True, slots=True)
class ReportView:
    """Everything the HTML shows, in order."""

    generated: str | None
    site: str | None
    source: tuple[str, ...]  # what the data came from, one line each
    summary: Summary
    countries: tuple[TrafficRow, ...]
    asns: tuple[TrafficRow, ...]
    names: tuple[TrafficRow, ...]
    platforms: tuple[PlatformUse, ...]
    registrations: tuple[CameraFinding, ...]
    exposure: tuple[CameraFinding, ...]
    audio: tuple[CameraFinding, ...]
    findings: tuple[CameraFinding, ...]  # every finding, most severe first (bounded)
    findings_not_listed: int  # beyond MAX_FINDINGS_LISTED, in the camera sections only
    cameras: tuple[CameraView, ...]
    not_shown: int = 0  # cameras beyond MAX_CAMERAS in the inventory, not read
    geoip: GeoData | None = None  # None: the inventory does not say


def _row(entry: Any, key: str) -> TrafficRow | None:
    d = _dict(entry)
    if key == "asn":
        asn, org = _opt_int(d.get("asn")), _str(d.get("org"))
        label = f"AS{asn}" if asn is not None else (org or UNKNOWN)
        detail = org if asn is not None else None
    else:
        label, detail = _str(d.get(key)) or UNKNOWN, None
    if not d:
        return None
    return TrafficRow(
        label, _int(d.get("bytes_out")), _int(d.get("bytes_in")), _int(d.get("flows")), detail
    )


def _rows(entries: Any, key: str) -> tuple[TrafficRow, ...]:
    return tuple(r for r in (_row(e, key) for e in _list(entries)) if r is not None)


def _evidence_items(value: Any) -> tuple[tuple[str, str], ...]:
    """Evidence fields as (name, text) pairs; nested values as compact JSON-like text."""
    items: list[tuple[str, str]] = []
    for key, v in _dict(value).items():
        if v is None or (isinstance(v, list | dict) and not v):
            continue
        items.append((str(key), _text_of(v)))
    return tuple(items)


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text_of(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _finding(entry: Any) -> Finding:
    d = _dict(entry)
    given = _str(d.get("severity"))
    severity = given if given in SEVERITY_ORDER else UNKNOWN  # a class name on the page
    return Finding(
        rule=_str(d.get("rule")) or "?",
        severity=severity,
        reached=_str(d.get("reached")),
        first=_float(d.get("first")),
        last=_float(d.get("last")),
        count=_int(d.get("count")),
        open=d.get("open") is True,
        summary=_str(d.get("summary")) or "",
        direction=_str(d.get("direction")),
        peer=_str(d.get("peer")),
        peer_country=_str(d.get("peer_country")),
        evidence=_evidence_items(d.get("evidence")),
    )


def _severity_rank(severity: str) -> int:
    return rank_of(severity)


def _platform(entry: Any) -> Platform | None:
    d = _dict(entry)
    name = _str(d.get("name"))
    if name is None:
        return None
    return Platform(
        name, _float(d.get("first_seen")), _float(d.get("last_seen")), _int(d.get("flows"))
    )


def camera_of(entry: Any) -> CameraView:
    """One camera entry of the inventory, read defensively."""
    d = _dict(entry)
    peers = _dict(d.get("peers"))
    findings = sorted(
        (_finding(i) for i in _list(d.get("incidents"))),
        key=lambda f: (_severity_rank(f.severity), f.first or 0.0, f.rule),
    )
    macs = _strings(d.get("macs"))
    return CameraView(
        id=_str(d.get("id")) or (macs[0] if macs else "?"),
        name=_str(d.get("name")),
        vendor=_str(d.get("vendor")),
        mac_vendor=_str(d.get("mac_vendor")),
        model=_str(d.get("model")),
        firmware=_str(d.get("firmware")),
        serial=_str(d.get("serial")),
        macs=macs,
        ipv4=_strings(d.get("ipv4")),
        ipv6=_strings(d.get("ipv6")),
        recognised_by=_strings(d.get("recognised_by")),
        group=_str(d.get("group")),
        managed=d.get("managed") is True,
        first_seen=_float(d.get("first_seen")),
        last_seen=_float(d.get("last_seen")),
        platforms=tuple(p for p in (_platform(e) for e in _list(d.get("platforms"))) if p),
        countries=_rows(peers.get("countries"), "country"),
        asns=tuple(r for r in _rows(peers.get("asns"), "asn") if r.label != LOCAL),
        names=_rows(peers.get("names"), "name"),
        bytes_out_external=_int(d.get("bytes_out_external")),
        findings=tuple(findings),
    )


def _totals(rows: Iterable[tuple[int, TrafficRow]], skip: frozenset[str]) -> tuple[TrafficRow, ...]:
    """Rows (by camera number) with the same label summed over cameras, with how many
    cameras each sums, by bytes out, ``MAX_ROWS`` at most."""
    merged: dict[str, list[int]] = {}
    details: dict[str, str | None] = {}
    cameras: dict[str, set[int]] = {}
    for cam, r in rows:
        if r.label in skip:
            continue
        t = merged.setdefault(r.label, [0, 0, 0])
        t[0] += r.bytes_out
        t[1] += r.bytes_in
        t[2] += r.flows
        details.setdefault(r.label, r.detail)
        cameras.setdefault(r.label, set()).add(cam)
    out = [TrafficRow(k, v[0], v[1], v[2], details[k], len(cameras[k])) for k, v in merged.items()]
    out.sort(key=lambda r: (-r.bytes_out, -r.bytes_in, r.label))
    return tuple(out[:MAX_ROWS])


def _by_vendor(cameras: Iterable[CameraView]) -> tuple[VendorCount, ...]:
    counts: dict[str, list[int]] = {}
    for cam in cameras:
        vendor = cam.vendor or (
            f"unknown (MAC registered to {cam.mac_vendor})" if cam.mac_vendor else "unknown"
        )
        count = counts.setdefault(vendor, [0, 0])
        count[0] += 1
        count[1] += cam.talks_outside
    rows = [VendorCount(v, n, out) for v, (n, out) in counts.items()]
    return tuple(sorted(rows, key=lambda r: (-r.cameras, r.vendor)))


def _with_rules(cameras: Iterable[CameraView], rules: frozenset[str]) -> tuple[CameraFinding, ...]:
    return tuple(CameraFinding(c, f) for c in cameras for f in c.findings if f.rule in rules)


def _source_lines(source: Any) -> tuple[str, ...]:
    d = _dict(source)
    captures = _strings(d.get("captures"))
    if captures:
        return tuple(f"capture {c}" for c in captures)
    state = _str(d.get("state_dir"))
    return (f"sensor state directory {state}",) if state else ()


def view_of(inventory: Mapping[str, Any]) -> ReportView:
    """The view model of an inventory (see the module docstring)."""
    listed = inventory.get("cameras")
    cameras = tuple(camera_of(c) for c in _list(listed, MAX_CAMERAS))
    not_shown = len(listed) - len(cameras) if isinstance(listed, list) else 0
    numbered = list(enumerate(cameras))
    countries = _totals(((i, r) for i, c in numbered for r in c.countries), frozenset({LOCAL}))
    asns = _totals(((i, r) for i, c in numbered for r in c.asns), frozenset())
    names = _totals(((i, r) for i, c in numbered for r in c.names), frozenset())
    known_countries = sorted({k for c in cameras for k in c.outside_countries if k != UNKNOWN})
    all_asns = {r.label for c in cameras for r in c.asns if r.label not in (UNKNOWN, OTHERS)}
    severities: dict[str, int] = {}
    for cam in cameras:
        for f in cam.findings:
            severities[f.severity] = severities.get(f.severity, 0) + 1
    summary = Summary(
        cameras=len(cameras),
        by_vendor=_by_vendor(cameras),
        talking_outside=sum(1 for c in cameras if c.talks_outside),
        on_platforms=sum(1 for c in cameras if c.platforms),
        countries=tuple(known_countries),
        asns=len(all_asns),
        bytes_up=sum(c.bytes_out_external for c in cameras),
        findings_by_severity=tuple(
            sorted(severities.items(), key=lambda kv: _severity_rank(kv[0]))
        ),
    )
    every = sorted(
        (CameraFinding(c, f) for c in cameras for f in c.findings),
        key=lambda cf: (_severity_rank(cf.finding.severity), cf.finding.first or 0.0),
    )
    return ReportView(
        generated=_str(inventory.get("generated")),
        site=_str(inventory.get("site")),
        source=_source_lines(inventory.get("source")),
        summary=summary,
        countries=countries,
        asns=asns,
        names=names,
        platforms=tuple(PlatformUse(c, p) for c in cameras for p in c.platforms),
        registrations=_with_rules(cameras, PLATFORM_RULES),
        exposure=_with_rules(cameras, EXPOSURE_RULES),
        audio=_with_rules(cameras, AUDIO_RULES),
        findings=tuple(every[:MAX_FINDINGS_LISTED]),
        findings_not_listed=max(0, len(every) - MAX_FINDINGS_LISTED),
        cameras=cameras,
        not_shown=not_shown,
        geoip=_geo(inventory.get("geoip")),
    )
