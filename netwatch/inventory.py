"""The camera inventory as data: which cameras, whose, and where they talk.

:class:`CameraInventory` is fed what the pipeline produces anyway: each ended flow's record
(:meth:`~CameraInventory.record`: a flow end whose ``orig_device``/``resp_device`` names a
camera adds to that camera's addresses, first/last seen, bytes each way per peer country,
AS and name (ASes and names of peers outside the site only), bytes sent outside the site,
cloud/P2P platforms by the name it asked for),
each notification (:meth:`~CameraInventory.alert`: every report in it, the alert router's
incidents, becomes or updates an incident keyed by rule and what was reached, with the rules
of the findings folded into it; platforms the rules named) and
each incident end (:meth:`~CameraInventory.ended`). :meth:`~CameraInventory.describe` adds
what the detector knows of each camera (vendor, model, firmware, serial, how recognised,
group, managed) from :meth:`netwatch.detect.devices.Devices.cameras`.

:meth:`~CameraInventory.as_json` is THE interface the HTML report and ``netwatch cameras``
read (version 1)::

    {"version": 1, "generated": ISO 8601, "site": str|null,
     "source": {"captures": [...]} | {"state_dir": str},
     "geoip": {"name", "built", "licence", "attribution"} | null,
     "cameras": [{"id", "name", "macs", "ipv4", "ipv6", "vendor", "mac_vendor", "model",
                  "firmware", "serial", "recognised_by", "confidence", "group", "managed",
                  "first_seen", "last_seen",
                  "platforms": [{"name", "first_seen", "last_seen", "flows"}],
                  "peers": {"countries": [{"country", "bytes_out", "bytes_in", "flows"}],
                            "asns": [{"asn", "org", "bytes_out", "bytes_in", "flows"}],
                            "names": [{"name", "bytes_out", "bytes_in", "flows"}]},
                  "bytes_out_external": int,
                  "incidents": [{"rule", "severity", "reached", "first", "last", "count",
                                 "open", "summary", "folded", "direction", "peer",
                                 "peer_country", "peer_asn", "peer_org", "platform",
                                 "flow_uid", "peers", "evidence"}]}]}

``name`` is the inventory name of a camera listed in the config (null otherwise),
``mac_vendor`` the IEEE registrant of its first MAC's prefix (whose it is when no camera
signal named a vendor). ``geoip`` says which GeoIP data placed the peers, its licence and
the attribution line it requires (the built-in DB-IP Lite data is CC BY 4.0: every page
showing its answers prints the attribution). An incident's ``evidence`` is its lead
report's evidence fields (not the reports grouped or folded into it; at most
``MAX_EVIDENCE_KEYS`` fields, a value longer than ``MAX_EVIDENCE_CHARS`` as JSON cut to
text), ``peers`` what the router counted when it ended (``+N more`` beyond its bound);
``open`` stays true for an incident that was still going when the capture files ended.
Readers must not need any of these fields (an older file has none).

Peer country ``local`` is a peer inside the site (or one that never leaves its link:
multicast, broadcast, link-local, loopback, unspecified), ``unknown`` one without GeoIP
data; an originator peer (an inbound flow) has no AS in the flow record: it is looked up
again through the pipeline's cached GeoIP when the feeder gives :attr:`geo_of` (else
``asn`` and ``org`` are null). A platform one rule names ``X`` and another ``X cloud`` is
one entry, ``X cloud`` (an incident's ``platform`` names it so too). Lists are sorted by
``bytes_out`` (incidents: open first, then the latest), at most ``MAX_LISTED`` entries
each, the rest summed into one ``others`` entry.

Kept in the state directory (``<state_dir>/inventory.json``, :func:`save`: written to a
temporary file and renamed, so a reader sees the old or the new file, never half of one;
:func:`load`: a file that is not a version-1 inventory raises :class:`InventoryError`, which
the daemon logs and starts afresh from, and ``netwatch cameras`` prints). The daemon writes
it every ``SAVE_INTERVAL_S`` and at shutdown; ``netwatch replay --state-dir`` at the end.

Bounded: at most ``MAX_CAMERAS`` cameras (later ones counted in ``dropped_cameras``),
``MAX_KEPT`` peers/platforms/incidents per camera and kind while counting (later keys are
summed under ``others``, counted in ``dropped_keys``), ``MAX_ADDRESSES`` addresses per camera.

Config read: ``site.name`` (the ``site`` field), ``state_dir`` (the daemon's file). Known
limits: with capture workers (``capture.workers`` > 1) the parent sees no flow records, so
the daemon's inventory holds alerts and incidents only, and each worker names unlisted
cameras itself; a camera's id is :attr:`netwatch.detect.devices.Device.name`: a single
process daemon hands the saved ids back to the detector at start-up (:meth:`ids`), so an
unlisted camera keeps its id across restarts; ``first_seen``/``last_seen`` are 0 for a
camera recognised without any flow of its own (a discovery reply only).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netwatch.alerts.grouping import members
from netwatch.alerts.model import Alert, EndReason, IncidentEnd, rank_of
from netwatch.signatures.match import SignatureMatcher

if TYPE_CHECKING:
    from netwatch.config import Config
    from netwatch.detect.devices import CameraSummary
    from netwatch.enrich.geo import GeoBackend, GeoInfo, GeoSourceInfo

log = logging.getLogger("netwatch.inventory")

VERSION = 1
INVENTORY_FILE = "inventory.json"
MAX_CAMERAS = 4096
MAX_KEPT = 256  # keys counted per camera and kind (countries, ASes, names, ...)
MAX_LISTED = 64  # entries per list in the JSON form, the rest under "others"
MAX_ADDRESSES = 16
MAX_FOLDED = 16  # rules folded into one incident's reports, kept
MAX_EVIDENCE_KEYS = 24  # evidence fields kept per incident
MAX_EVIDENCE_CHARS = 400  # a longer evidence value (as JSON) is cut to this much text
MAX_PEERS = 16  # peers of an ended incident kept
#: Evidence keys that repeat other reports (or the router's state), not the finding's own.
NOT_EVIDENCE = frozenset({"grouped", "incident", "folded"})
PLATFORM_SUFFIX = " cloud"
OTHERS = "others"
LOCAL = "local"
UNKNOWN = "unknown"
SAVE_INTERVAL_S = 60.0
MAX_FILE_BYTES = 64 * 1024 * 1024  # a larger file is no inventory netwatch wrote

#: Matches a DNS/SNI name to a cloud/P2P platform name (``<vendor> cloud``), or None.
PlatformOf = Callable[[str], str | None]
#: The IEEE registrant of a MAC's prefix (6 bytes), or None.
MacVendor = Callable[[bytes], str | None]
#: The GeoIP answer for a packed address (:meth:`netwatch.enrich.geo.CachedGeo.lookup`).
GeoOf = Callable[[bytes], "GeoInfo"]


class InventoryError(Exception):
    """The inventory file cannot be read or is not a version-1 inventory."""


@dataclass(slots=True)
class Traffic:
    """Bytes each way and flows, of one camera with one peer key."""

    bytes_out: int = 0
    bytes_in: int = 0
    flows: int = 0

    def add(self, out: int, into: int, flows: int = 1) -> None:
        self.bytes_out += out
        self.bytes_in += into
        self.flows += flows


@dataclass(slots=True)
class Sighting:
    """A platform seen: when first and last, in how many flows (or reports)."""

    first_seen: float
    last_seen: float
    flows: int = 0

    def saw(self, ts: float, n: int = 1) -> None:
        self.first_seen = min(self.first_seen, ts)
        self.last_seen = max(self.last_seen, ts)
        self.flows += n


@dataclass(slots=True)
class Incident:
    """One incident of a camera: (rule, reached)."""

    rule: str
    severity: str
    reached: str | None
    first: float
    last: float
    count: int
    open: bool
    summary: str
    folded: dict[str, None] = field(default_factory=dict)  # rules folded into its reports
    about: Mapping[str, Any] = field(default_factory=dict)  # ABOUT_KEYS of its lead report
    evidence: dict[str, Any] = field(default_factory=dict)  # bounded (_evidence)
    peers: list[str] = field(default_factory=list)  # as the router counted them, bounded

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "reached": self.reached,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "open": self.open,
            "summary": self.summary,
            "folded": list(self.folded),
            **{key: self.about.get(key) for key in ABOUT_KEYS},
            "peers": list(self.peers),
            "evidence": dict(self.evidence),
        }


#: What an incident keeps of its lead report's fields, besides rule/severity/reached/summary.
ABOUT_KEYS = ("direction", "peer", "peer_country", "peer_asn", "peer_org", "platform", "flow_uid")


@dataclass(slots=True)
class Camera:
    """What is known of one camera (the aggregate behind one ``cameras`` entry)."""

    id: str
    first_seen: float
    last_seen: float
    macs: dict[str, None] = field(default_factory=dict)
    addresses: dict[str, None] = field(default_factory=dict)
    vendor: str | None = None
    mac_vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    recognised_by: list[str] = field(default_factory=list)
    confidence: str | None = None
    group: str | None = None
    managed: bool = False
    platforms: dict[str, Sighting] = field(default_factory=dict)
    countries: dict[str, Traffic] = field(default_factory=dict)
    asns: dict[tuple[int | None, str | None], Traffic] = field(default_factory=dict)
    names: dict[str, Traffic] = field(default_factory=dict)
    bytes_out_external: int = 0
    incidents: dict[tuple[str, str | None], Incident] = field(default_factory=dict)

    def seen(self, first: float, last: float) -> None:
        self.first_seen = min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)

    def address(self, ip: str | None, mac: str | None) -> None:
        if ip and ip not in self.addresses and len(self.addresses) < MAX_ADDRESSES:
            self.addresses[ip] = None
        if mac and mac not in self.macs and len(self.macs) < MAX_ADDRESSES:
            self.macs[mac] = None


class CameraInventory:
    """The cameras seen and what they did (see the module docstring). Thread-safe."""

    def __init__(self, platform_of: PlatformOf | None = None) -> None:
        self.platform_of = platform_of
        #: Which GeoIP data placed the peers (:func:`geoip_json`), set by the feeder.
        self.geoip: dict[str, Any] | None = None
        #: Looks up an originating peer's AS (the flow record carries only its country),
        #: set by the feeder (the pipeline's cached GeoIP; None: such a peer has no AS).
        self.geo_of: GeoOf | None = None
        self.cameras: dict[str, Camera] = {}
        self.dropped_cameras = 0
        self.dropped_keys = 0
        self._lock = threading.Lock()

    # -- feeding --------------------------------------------------------------------------

    def record(self, rec: Mapping[str, Any]) -> None:
        """An ended flow's record: each camera end adds to its camera."""
        orig, resp = rec.get("orig_device"), rec.get("resp_device")
        if orig is None and resp is None:
            return
        with self._lock:
            if orig is not None:
                self._flow_end(str(orig), rec, "orig", "resp")
            if resp is not None:
                self._flow_end(str(resp), rec, "resp", "orig")

    def alert(self, alert: Alert, count: int) -> None:
        """A notification: each report and finding in it is an incident of its camera."""
        with self._lock:
            for report in members(alert.record(count)):
                self._incident(report, _ts_of(report, alert.ts))

    def ended(self, end: IncidentEnd) -> None:
        """An incident ended: no longer open (unless the input ended while it went on),
        with the router's sightings and peers (an incident no notification told of is
        added from its end)."""
        with self._lock:
            cam = self.cameras.get(end.alert.device)
            key = (end.alert.rule, end.alert.reached or None)
            incident = cam.incidents.get(key) if cam else None
            if cam is None or incident is None:
                self._incident(end.record(), end.first_seen)
                cam = self.cameras.get(end.alert.device)
                incident = cam.incidents.get(key) if cam else None
                if cam is None or incident is None:
                    return
                incident.count = 0
            incident.open = end.reason is EndReason.END_OF_INPUT
            incident.first = min(incident.first, end.first_seen)
            incident.last = max(incident.last, end.last_seen)
            incident.count = max(incident.count, end.sightings)
            incident.severity = _graver(incident.severity, end.severity.value)
            platform = cam.platforms.get(_shown_platform(cam, incident.about.get("platform")) or "")
            if platform is not None:  # seen as long as the incident went on
                platform.last_seen = max(platform.last_seen, end.last_seen)
            more = [f"+{end.more_peers} more"] if end.more_peers else []
            incident.peers = [*(str(p) for p in end.peers[:MAX_PEERS]), *more]

    def describe(
        self, devices: Iterable[CameraSummary], mac_vendor: MacVendor | None = None
    ) -> None:
        """What the detector knows of each camera (every recognised one is listed);
        ``mac_vendor`` names the registrant of each camera's MAC prefix."""
        with self._lock:
            for dev in devices:
                cam = self._camera(dev.name or dev.address, None)
                if cam is None:
                    continue
                for address in dev.addresses or (dev.address,):
                    cam.address(address if _is_ip(address) else None, None)
                cam.address(None, dev.mac)
                cam.vendor = dev.vendor or _signal_vendor(dev) or cam.vendor
                cam.model = dev.model or cam.model
                cam.firmware = dev.firmware or cam.firmware
                cam.serial = dev.serial or cam.serial
                cam.group, cam.managed = dev.group, dev.managed
                cam.confidence = dev.confidence or cam.confidence
                if mac_vendor is not None and cam.macs:
                    cam.mac_vendor = _registrant(mac_vendor, next(iter(cam.macs)))
                hows = ["inventory"] if dev.managed else []
                hows += [s.how for s in dev.signals if s.camera]
                cam.recognised_by = list(dict.fromkeys([*hows, *cam.recognised_by]))[:8]

    # -- the JSON form --------------------------------------------------------------------

    def as_json(
        self,
        source: Mapping[str, Any],
        site: str | None = None,
        generated: datetime | None = None,
    ) -> dict[str, Any]:
        """The inventory in its version-1 JSON form (module docstring)."""
        when = generated or datetime.now(UTC)
        with self._lock:
            cameras = [_camera_json(c) for c in self.cameras.values()]
        cameras.sort(key=lambda c: (-c["bytes_out_external"], c["id"]))
        return {
            "version": VERSION,
            "generated": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "site": site,
            "source": dict(source),
            "geoip": dict(self.geoip) if self.geoip is not None else None,
            "cameras": cameras,
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Start from a saved inventory (:func:`load`'s result): its cameras and totals."""
        with self._lock:
            for entry in doc.get("cameras", ()):
                cam = _camera_of_json(entry)
                if cam.id not in self.cameras and len(self.cameras) < MAX_CAMERAS:
                    self.cameras[cam.id] = cam

    def ids(self) -> list[tuple[str, str]]:
        """(MAC, id) of each camera not in the config's inventory that has one MAC: what
        :meth:`netwatch.detect.devices.Devices.restore_ids` takes after a restart."""
        with self._lock:
            return [
                (next(iter(c.macs)), c.id)
                for c in self.cameras.values()
                if len(c.macs) == 1 and not c.managed
            ]

    # -- internals ------------------------------------------------------------------------

    def _camera(self, name: str, ts: float | None) -> Camera | None:
        cam = self.cameras.get(name)
        if cam is None:
            if len(self.cameras) >= MAX_CAMERAS:
                self.dropped_cameras += 1
                return None
            at = ts if ts is not None else 0.0
            cam = self.cameras[name] = Camera(name, at, at)
        elif ts is not None and cam.first_seen == 0.0:
            cam.first_seen = ts
        return cam

    def _flow_end(self, name: str, rec: Mapping[str, Any], side: str, other: str) -> None:
        ts = float(rec.get("ts") or 0.0)
        cam = self._camera(name, ts)
        if cam is None:
            return
        cam.seen(ts, ts + float(rec.get("duration") or 0.0))
        cam.address(str(rec.get(f"id.{side}_h") or "") or None, rec.get(f"{side}_l2_addr"))
        out = int(rec.get(f"{side}_ip_bytes") or 0)
        into = int(rec.get(f"{other}_ip_bytes") or 0)
        inside = bool(rec.get(f"local_{other}")) or _on_link(rec.get(f"id.{other}_h"))
        if not inside:
            cam.bytes_out_external += out
        country = LOCAL if inside else str(rec.get(f"{other}_cc") or UNKNOWN)
        self._add(cam.countries, country, OTHERS).add(out, into)
        if not inside:  # ASes and names: of peers outside the site only
            asn, org = rec.get(f"{other}_asn"), rec.get(f"{other}_org")
            if other == "orig" and self.geo_of is not None:
                asn, org = self._originator_as(rec.get("id.orig_h"))
            asn_key = (int(asn) if asn else None, str(org) if org else None)
            self._add(cam.asns, asn_key, (None, OTHERS)).add(out, into)
        name_seen = rec.get("resp_name") if side == "orig" else None
        if name_seen:
            if not inside:
                self._add(cam.names, str(name_seen), OTHERS).add(out, into)
            platform = self.platform_of(str(name_seen)) if self.platform_of else None
            if platform:
                self._platform(cam, platform, ts)

    def _originator_as(self, text: Any) -> tuple[int | None, str | None]:
        """An originating peer's AS and organisation, looked up again (None, None when it
        is no address or has none)."""
        assert self.geo_of is not None
        try:
            packed = ipaddress.ip_address(str(text)).packed
        except ValueError:
            return None, None
        info = self.geo_of(packed)
        return info.asn, info.org

    def _add(self, table: dict[Any, Traffic], key: Any, others: Any) -> Traffic:
        found = table.get(key)
        if found is None:
            if len(table) >= MAX_KEPT:
                self.dropped_keys += 1
                key = others
                found = table.get(key)
            if found is None:
                found = table[key] = Traffic()
        return found

    def _platform(self, cam: Camera, named: str, ts: float) -> None:
        name = _platform_key(cam, named)
        seen = cam.platforms.get(name)
        if seen is None:
            if len(cam.platforms) >= MAX_KEPT:
                self.dropped_keys += 1
                return
            seen = cam.platforms[name] = Sighting(ts, ts)
        seen.saw(ts)

    def _incident(self, item: Mapping[str, Any], ts: float) -> None:
        device = item.get("device")
        cam = self._camera(str(device), ts) if device else None
        if cam is None:
            return
        cam.address(item.get("device_ip"), item.get("device_mac"))
        cam.vendor = cam.vendor or item.get("vendor")
        cam.group = cam.group or item.get("group")
        rule, reached = str(item.get("rule")), item.get("reached") or None
        platform = item.get("platform") or (item.get("evidence") or {}).get("platform")
        if platform:
            self._platform(cam, str(platform), ts)
        severity, count = str(item.get("severity")), int(item.get("count") or 1)
        folded = (item.get("evidence") or {}).get("folded") or ()
        known = cam.incidents.get((rule, reached))
        if known is None:
            if len(cam.incidents) >= MAX_KEPT:
                self.dropped_keys += 1
                return
            summary = str(item.get("summary") or "")
            known = cam.incidents[(rule, reached)] = Incident(
                rule, severity, reached, ts, ts, 0, True, summary
            )
            known.about = _about(item)
            known.evidence = _evidence(item)
        else:
            known.summary = str(item.get("summary") or known.summary)
        for finding in folded[:MAX_FOLDED]:
            known.folded[str(finding.get("rule"))] = None
        known.first, known.last = min(known.first, ts), max(known.last, ts)
        known.count += count
        known.open = True
        known.severity = _graver(known.severity, severity)


def _graver(a: str, b: str) -> str:
    """The graver of two severity words (an unknown word ranks last)."""
    return a if rank_of(a) <= rank_of(b) else b


def _platform_key(cam: Camera, named: str) -> str:
    """One entry per platform: ``X`` and ``X cloud`` are one (``nat_traversal`` names the
    vendor alone, ``cloud_registration`` ``<vendor> cloud``), kept as ``X cloud`` once
    either rule said so (an ``X`` entry is renamed); a name only ever given bare (a P2P
    network such as ``CS2 Network PPPP``) stays as it is."""
    bare = named.removesuffix(PLATFORM_SUFFIX)
    cloud = bare + PLATFORM_SUFFIX
    if named == bare:  # the vendor alone: its cloud entry when there is one
        return cloud if cloud in cam.platforms and bare not in cam.platforms else bare
    if bare in cam.platforms and cloud not in cam.platforms:
        cam.platforms[cloud] = cam.platforms.pop(bare)
    return cloud


def _shown_platform(cam: Camera, named: str | None) -> str | None:
    """An incident's platform as the camera's platform list names it."""
    if named is None or named in cam.platforms:
        return named
    cloud = named + PLATFORM_SUFFIX
    return cloud if cloud in cam.platforms else named


@functools.lru_cache(maxsize=4096)
def _on_link(text: Any) -> bool:
    """A peer that never leaves the site's link: multicast, broadcast, link-local,
    loopback or unspecified (False for anything that is no address)."""
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return False
    broadcast = ip.version == 4 and int(ip) == 0xFFFFFFFF
    return ip.is_multicast or ip.is_link_local or ip.is_loopback or ip.is_unspecified or broadcast


def _about(item: Mapping[str, Any]) -> dict[str, Any]:
    """The lead report's fields an incident keeps (``ABOUT_KEYS``), JSON values only."""
    peer = item.get("peer") or item.get("peer_name") or item.get("peer_ip") or None
    about = {key: item.get(key) for key in ABOUT_KEYS}
    about["peer"] = peer
    return {
        k: v if v is None or isinstance(v, int | float | str) else str(v) for k, v in about.items()
    }


def _evidence(item: Mapping[str, Any]) -> dict[str, Any]:
    """A report's own evidence fields (not the reports grouped or folded into it), JSON
    values only, at most ``MAX_EVIDENCE_KEYS``; a value longer than ``MAX_EVIDENCE_CHARS``
    as JSON is cut to that much text (hostile bytes can make long strings)."""
    given = item.get("evidence")
    fields = dict(given) if isinstance(given, Mapping) else {}
    if item.get("evidence_pcap"):
        fields["evidence_pcap"] = item["evidence_pcap"]
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in NOT_EVIDENCE:
            continue
        if len(out) >= MAX_EVIDENCE_KEYS:
            break
        text = json.dumps(value, default=str)
        if len(text) > MAX_EVIDENCE_CHARS:
            out[str(key)] = text[:MAX_EVIDENCE_CHARS] + "..."
        else:
            out[str(key)] = json.loads(text)
    return out


def _signal_vendor(dev: CameraSummary) -> str | None:
    """The maker the first camera signal named (a listed camera whose MAC no camera maker
    registered still said who made it through its traffic)."""
    return next((s.vendor for s in dev.signals if s.camera and s.vendor), None)


def _registrant(mac_vendor: MacVendor, mac: str) -> str | None:
    """The IEEE registrant of a MAC text's prefix (None: not a MAC, or not registered)."""
    try:
        packed = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        return None
    return mac_vendor(packed) if len(packed) == 6 else None


def geoip_json(info: GeoSourceInfo) -> dict[str, Any]:
    """The inventory's ``geoip`` entry for a GeoIP backend's description: its name, build
    date, licence and the attribution its licence requires (the built-in DB-IP data's)."""
    from netwatch.enrich.geo import BUILTIN_ATTRIBUTION  # noqa: PLC0415 - geo loads maxminddb

    return {
        "name": info.name,
        "built": info.build_date.isoformat() if info.build_date is not None else None,
        "licence": info.licence or None,
        "attribution": BUILTIN_ATTRIBUTION if info.kind == "builtin" else None,
    }


def _ts_of(item: Mapping[str, Any], default: float) -> float:
    """A report's own time (its record's RFC 3339 ``ts``), else ``default``."""
    try:
        return datetime.fromisoformat(str(item["ts"])).timestamp()
    except (KeyError, ValueError):
        return default


def _is_ip(text: str) -> bool:
    return "." in text or (":" in text and len(text) != 17)  # a MAC text is 17 characters


def _top(
    table: Mapping[Any, Traffic], entry: Callable[[Any], dict[str, Any]], others: dict[str, Any]
) -> list[dict[str, Any]]:
    """Entries by bytes_out (then flows, then key), the first ``MAX_LISTED``; the rest and
    what was counted under ``others`` summed into one last entry."""
    ranked = sorted(table.items(), key=lambda kv: (-kv[1].bytes_out, -kv[1].flows, str(kv[0])))
    rest = Traffic()
    listed: list[dict[str, Any]] = []
    for key, t in ranked:
        if len(listed) < MAX_LISTED and key not in (OTHERS, (None, OTHERS)):
            listed.append({**entry(key), **_traffic(t)})
        else:
            rest.add(t.bytes_out, t.bytes_in, t.flows)
    if rest.flows or rest.bytes_out or rest.bytes_in:
        listed.append({**others, **_traffic(rest)})
    return listed


def _traffic(t: Traffic) -> dict[str, int]:
    return {"bytes_out": t.bytes_out, "bytes_in": t.bytes_in, "flows": t.flows}


def _camera_json(cam: Camera) -> dict[str, Any]:
    ipv4 = [a for a in cam.addresses if "." in a and ":" not in a]
    ipv6 = [a for a in cam.addresses if ":" in a]
    platforms = sorted(cam.platforms.items(), key=lambda kv: (-kv[1].flows, kv[0]))
    incidents = sorted(cam.incidents.values(), key=lambda i: (not i.open, -i.last, i.rule))
    return {
        "id": cam.id,
        "name": cam.id if cam.managed else None,
        "macs": list(cam.macs),
        "ipv4": ipv4,
        "ipv6": ipv6,
        "vendor": cam.vendor,
        "mac_vendor": cam.mac_vendor,
        "model": cam.model,
        "firmware": cam.firmware,
        "serial": cam.serial,
        "recognised_by": list(cam.recognised_by),
        "confidence": cam.confidence,
        "group": cam.group,
        "managed": cam.managed,
        "first_seen": cam.first_seen,
        "last_seen": cam.last_seen,
        "platforms": [
            {"name": n, "first_seen": s.first_seen, "last_seen": s.last_seen, "flows": s.flows}
            for n, s in platforms[:MAX_LISTED]
        ],
        "peers": {
            "countries": _top(cam.countries, lambda k: {"country": k}, {"country": OTHERS}),
            "asns": _top(
                cam.asns, lambda k: {"asn": k[0], "org": k[1]}, {"asn": None, "org": OTHERS}
            ),
            "names": _top(cam.names, lambda k: {"name": k}, {"name": OTHERS}),
        },
        "bytes_out_external": cam.bytes_out_external,
        "incidents": [
            {**i.as_json(), "platform": _shown_platform(cam, i.about.get("platform"))}
            for i in incidents[:MAX_LISTED]
        ],
    }


def _camera_of_json(entry: Mapping[str, Any]) -> Camera:
    """A camera back from its JSON form (lists beyond ``MAX_LISTED`` stay summed)."""
    cam = Camera(
        str(entry["id"]),
        float(entry.get("first_seen") or 0.0),
        float(entry.get("last_seen") or 0.0),
    )
    for ip in [*entry.get("ipv4", ()), *entry.get("ipv6", ())]:
        cam.address(str(ip), None)
    for mac in entry.get("macs", ()):
        cam.address(None, str(mac))
    cam.vendor, cam.model = entry.get("vendor"), entry.get("model")
    cam.mac_vendor, cam.confidence = entry.get("mac_vendor"), entry.get("confidence")
    cam.firmware, cam.serial = entry.get("firmware"), entry.get("serial")
    cam.recognised_by = [str(h) for h in entry.get("recognised_by", ())]
    cam.group, cam.managed = entry.get("group"), bool(entry.get("managed"))
    cam.bytes_out_external = int(entry.get("bytes_out_external") or 0)
    for p in entry.get("platforms", ()):
        cam.platforms[str(p["name"])] = Sighting(
            float(p["first_seen"]), float(p["last_seen"]), int(p["flows"])
        )
    peers = entry.get("peers") or {}
    for c in peers.get("countries", ()):
        cam.countries[str(c["country"])] = _traffic_of(c)
    for a in peers.get("asns", ()):
        org = a.get("org")
        key = (None, OTHERS) if org == OTHERS and a.get("asn") is None else (a.get("asn"), org)
        cam.asns[key] = _traffic_of(a)
    for n in peers.get("names", ()):
        cam.names[str(n["name"])] = _traffic_of(n)
    for i in entry.get("incidents", ()):
        incident = Incident(
            str(i["rule"]),
            str(i["severity"]),
            i.get("reached"),
            float(i["first"]),
            float(i["last"]),
            int(i["count"]),
            bool(i["open"]),
            str(i.get("summary") or ""),
            dict.fromkeys(str(r) for r in i.get("folded", ())),
            _about(i),
            _evidence(i),
            [str(p) for p in i.get("peers") or ()][: MAX_PEERS + 1],
        )
        cam.incidents[(incident.rule, incident.reached)] = incident
    return cam


def _traffic_of(entry: Mapping[str, Any]) -> Traffic:
    return Traffic(int(entry["bytes_out"]), int(entry["bytes_in"]), int(entry["flows"]))


# -- the file in the state directory -----------------------------------------------------------


def save(doc: Mapping[str, Any], path: Path) -> None:
    """Write the inventory atomically (a temporary file in the same directory, renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=".inventory.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=1, sort_keys=False)
            out.write("\n")
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any]:
    """A saved inventory; :class:`InventoryError` (naming the file) when it cannot be read
    or is not a version-1 inventory (it is then not used: never a crash)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InventoryError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InventoryError(f"{path}: no inventory (no sensor or replay wrote one)") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InventoryError(f"{path}: unreadable inventory: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        got = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
        raise InventoryError(f"{path}: not a version-{VERSION} inventory (version {got})")
    cameras = doc.get("cameras")
    if not isinstance(cameras, list):
        raise InventoryError(f"{path}: no list of cameras")
    try:
        for entry in cameras:
            _camera_of_json(entry)  # every entry must read back
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InventoryError(f"{path}: a camera entry is malformed: {exc!r}") from exc
    return doc


def restored(path: Path, platform_of: PlatformOf | None = None) -> CameraInventory:
    """An inventory starting from the saved file when there is a good one (a bad one is
    logged and set aside as ``<file>.corrupt``; a missing one starts empty)."""
    inventory = CameraInventory(platform_of)
    if not path.exists():
        return inventory
    try:
        inventory.restore(load(path))
    except InventoryError as exc:
        log.error("inventory not restored, starting afresh: %s", exc)
        with contextlib.suppress(OSError):  # a read-only directory: it stays, logged
            os.replace(path, path.with_name(path.name + ".corrupt"))
    return inventory


def platform_matcher(signatures: SignatureMatcher | None = None) -> PlatformOf:
    """``<vendor> cloud`` for a name of a cloud endpoint in the seeds (as
    ``cloud_registration`` names it), else None."""
    matcher = signatures if signatures is not None else SignatureMatcher.load()

    def platform_of(name: str) -> str | None:
        hit = matcher.match_name(name)
        return f"{hit.vendor} cloud" if hit is not None else None

    return platform_of


TABLE_COLUMNS = (
    "camera",
    "vendor/model",
    "addresses",
    "recognised by",
    "platforms",
    "sent outside",
    "countries (bytes out)",
    "incidents",
)


def table_lines(doc: Mapping[str, Any]) -> list[str]:
    """The inventory as a plain-text table for a terminal (``netwatch cameras``), with the
    GeoIP data's name and the attribution its licence requires."""
    rows = [list(TABLE_COLUMNS)]
    for cam in doc.get("cameras", ()):
        made = " ".join(str(x) for x in (cam.get("vendor"), cam.get("model")) if x) or "?"
        addresses = [*cam.get("ipv4", ()), *cam.get("ipv6", ())][:3]
        more = len(cam.get("ipv4", ())) + len(cam.get("ipv6", ())) - len(addresses)
        countries = [
            f"{c['country']} {_size(c['bytes_out'])}" for c in cam["peers"]["countries"][:3]
        ]
        incidents = cam.get("incidents", ())
        opened = sum(1 for i in incidents if i.get("open"))
        rows.append(
            [
                str(cam["id"]) + ("" if cam.get("managed") else " *"),
                made,
                ", ".join(addresses) + (f" +{more}" if more > 0 else ""),
                ", ".join(cam.get("recognised_by", ())[:2]) or "-",
                ", ".join(p["name"] for p in cam.get("platforms", ())[:3]) or "-",
                _size(int(cam.get("bytes_out_external") or 0)),
                ", ".join(countries) or "-",
                f"{len(incidents)} ({opened} open)",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    cameras = len(rows) - 1
    unlisted = sum(1 for c in doc.get("cameras", ()) if not c.get("managed"))
    lines.append(
        f"{cameras} camera{'' if cameras == 1 else 's'} ({unlisted} not in the inventory: *); "
        f"generated {doc.get('generated')}"
    )
    geo = doc.get("geoip")
    if isinstance(geo, Mapping) and geo.get("name"):  # its licence may require attribution
        credit = f"; {geo['attribution']}" if geo.get("attribution") else ""
        lines.append(f"countries and ASes from {geo['name']}{credit}")
    return lines


def _size(n: int) -> str:
    """Bytes for a person: ``950 B``, ``12.3 kB``, ``4.1 MB``."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n_f = n / 1000
        if n_f < 1000 or unit == "TB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    return f"{n} B"


def build_from_captures(
    paths: Sequence[Path], cfg: Config, *, geo: GeoBackend | None = None
) -> dict[str, Any]:
    """The inventory of what these capture files show (the JSON form): a replay without
    outputs (the report's entry point)."""
    from netwatch.replay import run_replay  # noqa: PLC0415 - replay feeds this module

    inventory = CameraInventory(platform_matcher())
    run_replay(paths, cfg, geo=geo, inventory=inventory)
    return inventory.as_json({"captures": [str(p) for p in paths]}, site=cfg.site.name)
