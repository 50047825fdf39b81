"""The data a report renders: the camera inventory as JSON (``INVENTORY_VERSION`` 1).

Two ways to get it:

- :func:`inventory_from_captures` replays capture files through
  :class:`~netwatch.pipeline.Pipeline` (detection on, no evidence files) and builds the
  inventory from what the replay saw: the recognised cameras (the detector's
  :class:`~netwatch.detect.devices.Devices`), every ended flow record (who talked to whom,
  bytes each way, country/AS/name of the peer) and every incident the alert router ended.
  It is the stand-in for the inventory builder of :mod:`netwatch.inventory` (issue 14):
  the same JSON shape, one function to swap.
- :func:`load_inventory` reads the inventory a sensor saved in its state directory
  (``<state_dir>/INVENTORY_FILE``).

Shape (the interface shared with ``netwatch cameras``): ``{"version", "generated", "site",
"source", "cameras": [...]}``; per camera its addresses, identity (vendor, model, firmware,
serial, ``recognised_by``, group, managed), first/last seen, ``platforms``, ``peers``
(countries, ASes and names with bytes each way and flows, ASes and names of peers
outside the site only; ``local`` for peers inside the site,
``unknown`` without GeoIP data), ``bytes_out_external`` and ``incidents``. Fields this
module adds (readers must not need them): per incident ``direction``, ``peer``,
``peer_country``, ``peer_asn``, ``peer_org``, ``platform``, ``peers``, ``flow_uid`` and
``evidence`` (the alert's evidence fields); per camera ``name`` (the inventory name of a
managed camera), ``confidence``, ``mac_vendor`` (the IEEE registrant of its MAC prefix:
whose it is when no camera signal named a vendor) and ``note``.

How a camera is put together: flow ends inside the site are tallied per (IP address,
MAC) pair; the pairs of one MAC are one device (a dual-stack camera is one camera; an
address DHCP gave to another device later stays that device's), unless that MAC stood for
more than ``MAX_ADDRESSES_PER_MAC`` addresses (a router in front of a segment: each pair
stays its own device, listed without the router's MAC). A device is a
camera when the detector recognises any of its (address, MAC) pairs; a camera recognised
only by its MAC (no flow showed its address) is listed with no addresses. A peer is
outside the site unless it is site-local, multicast, broadcast, link-local, loopback or
unspecified; only bytes to peers outside count in ``bytes_out_external``. Incidents that
were still going when the input ended are ``open``.

Bounded: ``MAX_HOSTS`` site-local (address, MAC) pairs tallied (later ones counted in
``HostTally.overflow``), ``MAX_TALLY_KEYS`` countries/ASes/names per address (the rest go
to ``OTHERS``), ``MAX_LISTED`` entries per list in the output (the rest summed in one
``OTHERS`` entry), ``MAX_INCIDENTS`` incidents per camera (the rest dropped, counted in the
camera's ``incidents_dropped``).

Config read: everything :class:`~netwatch.pipeline.Pipeline` reads, ``site.name``.
Known limits: a replay's alerts use the pipeline's per-address device names (before the
inventory helper's one-device work lands, an IPv6 alert of a dual-stack camera names the
IPv6 address; it is still filed under the one camera by MAC); the flow record has no AS of
an outside originator, so inbound peers are looked up again through the same GeoIP cache.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from netwatch.alerts.model import Alert, EndReason, IncidentEnd
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.detect.devices import CameraSummary, Device, Devices
from netwatch.enrich.addrclass import AddrClass, AddressClassifier
from netwatch.enrich.geo import CachedGeo, GeoBackend
from netwatch.flow.ids import UidSource
from netwatch.pipeline import Pipeline

K = TypeVar("K")
INVENTORY_VERSION = 1
#: The file a sensor keeps its inventory in, under its state directory.
INVENTORY_FILE = "inventory.json"
LOCAL = "local"
UNKNOWN = "unknown"
OTHERS = "others"
MAX_HOSTS = 4096
MAX_TALLY_KEYS = 256
MAX_LISTED = 64
MAX_INCIDENTS = 256
MAX_ADDRESSES_PER_MAC = 8
MAX_INCIDENT_EVIDENCE_CHARS = 4000
#: Peers that never leave the site's link, whatever ``site.local_nets`` says.
NOT_OUTSIDE = frozenset(
    {
        AddrClass.MULTICAST,
        AddrClass.BROADCAST,
        AddrClass.LINK_LOCAL,
        AddrClass.LOOPBACK,
        AddrClass.UNSPECIFIED,
    }
)
#: Evidence keys that repeat other reports, not this finding's own evidence.
NOT_EVIDENCE = frozenset({"grouped", "incident", "folded"})


class InventoryError(ValueError):
    """A saved inventory that cannot be read: missing, not JSON, or of another version."""


@dataclass(slots=True)
class Traffic:
    """Bytes each way and flows, to one peer country, AS or name."""

    bytes_out: int = 0
    bytes_in: int = 0
    flows: int = 0

    def add(self, out: int, into: int, flows: int = 1) -> None:
        self.bytes_out += out
        self.bytes_in += into
        self.flows += flows


AsKey = tuple[int | None, str | None]
MacVendor = Callable[[bytes], str | None]


@dataclass(slots=True)
class Host:
    """What one site-local address did with one MAC (None: no layer 2): when, and whom
    it talked to."""

    ip: bytes
    mac: bytes | None
    first: float = float("inf")
    last: float = float("-inf")
    countries: dict[str, Traffic] = field(default_factory=dict)
    asns: dict[AsKey, Traffic] = field(default_factory=dict)
    names: dict[str, Traffic] = field(default_factory=dict)
    bytes_out_external: int = 0


def _tally(table: dict[K, Traffic], key: K, others: K, out: int, into: int) -> None:
    """Add to ``key``'s traffic, or to ``others`` once the table is full (the last of its
    ``MAX_TALLY_KEYS`` places is kept for ``others``)."""
    entry = table.get(key)
    if entry is None:
        if len(table) >= MAX_TALLY_KEYS - 1:
            key = others
        entry = table.setdefault(key, Traffic())
    entry.add(out, into)


class HostTally:
    """Flow records in, per site-local address tallies out (bounded: ``MAX_HOSTS``)."""

    def __init__(self, classifier: AddressClassifier, geo: CachedGeo) -> None:
        self._classifier = classifier
        self._geo = geo
        self.hosts: dict[tuple[bytes, bytes | None], Host] = {}
        self.overflow = 0  # flow ends at (address, MAC) pairs beyond the bound, not tallied
        self.span: tuple[float, float] | None = None  # first and last packet time of all flows

    def add(self, rec: Mapping[str, Any]) -> None:
        """Tally one flow record for each of its site-local ends."""
        first = float(rec["ts"])
        last = first + float(rec["duration"] or 0.0)
        lo, hi = self.span if self.span is not None else (first, last)
        self.span = (min(lo, first), max(hi, last))
        orig, resp = _packed(rec["id.orig_h"]), _packed(rec["id.resp_h"])
        o_bytes, r_bytes = int(rec["orig_bytes"] or 0), int(rec["resp_bytes"] or 0)
        if rec["local_orig"]:
            peer = _Peer(resp, rec["resp_cc"], rec["resp_asn"], rec["resp_org"], rec["resp_name"])
            self._end(orig, rec["orig_l2_addr"], first, last, peer, o_bytes, r_bytes)
        if rec["local_resp"]:
            peer = self._peer_of_originator(orig)
            self._end(resp, rec["resp_l2_addr"], first, last, peer, r_bytes, o_bytes)

    def _peer_of_originator(self, addr: bytes) -> _Peer:
        """An originating peer (the record carries only its country): look it up again."""
        geo = self._geo.lookup(addr)
        return _Peer(addr, geo.cc, geo.asn, geo.org, None)

    def _end(
        self,
        ip: bytes,
        mac: str | None,
        first: float,
        last: float,
        peer: _Peer,
        out: int,
        into: int,
    ) -> None:
        key = (ip, bytes.fromhex(mac.replace(":", "")) if mac else None)
        host = self.hosts.get(key)
        if host is None:
            if len(self.hosts) >= MAX_HOSTS:
                self.overflow += 1
                return
            host = self.hosts[key] = Host(*key)
        host.first = min(host.first, first)
        host.last = max(host.last, last)
        if self._is_outside(peer.addr):
            country = peer.cc or UNKNOWN
            _tally(host.asns, (peer.asn, peer.org), (None, OTHERS), out, into)
            host.bytes_out_external += out
            if peer.name:
                _tally(host.names, peer.name, OTHERS, out, into)
        else:
            country = LOCAL
        _tally(host.countries, country, OTHERS, out, into)

    def _is_outside(self, addr: bytes) -> bool:
        if self._classifier.is_site_local(addr):
            return False
        return self._classifier.classify(addr) not in NOT_OUTSIDE


@dataclass(frozen=True, slots=True)
class _Peer:
    addr: bytes
    cc: str | None
    asn: int | None
    org: str | None
    name: str | None


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class IncidentLog:
    """Incidents as the router ended them, per device (IP text and MAC text)."""

    def __init__(self) -> None:
        self.ended: list[IncidentEnd] = []
        self.dropped = 0

    def add(self, end: IncidentEnd) -> None:
        """The router's ``on_end``: keep the end (bounded, ``MAX_HOSTS * 4``)."""
        if len(self.ended) >= MAX_HOSTS * 4:
            self.dropped += 1
            return
        self.ended.append(end)


@dataclass(slots=True)
class _Group:
    """(address, MAC) pairs that are one device: those of one MAC."""

    hosts: list[Host]
    mac: bytes | None


def _group_hosts(hosts: Iterable[Host]) -> list[_Group]:
    """The pairs of one MAC joined into one device; a MAC seen at more than
    ``MAX_ADDRESSES_PER_MAC`` addresses (a router) and a pair without a MAC join nothing.
    An address reused by another device (DHCP) is that other device's: pairs, not
    addresses, are joined."""
    by_mac: dict[bytes, list[Host]] = {}
    alone: list[_Group] = []
    for host in hosts:
        if host.mac is None:
            alone.append(_Group([host], None))
        else:
            by_mac.setdefault(host.mac, []).append(host)
    groups: list[_Group] = []
    for mac, members in by_mac.items():
        if len(members) <= MAX_ADDRESSES_PER_MAC:
            groups.append(_Group(members, mac))
        else:
            groups.extend(_Group([h], None) for h in members)
    return groups + alone


def _device_of(devices: Devices, group: _Group) -> Device | None:
    """The camera this device is, by any of its (address, MAC) pairs; the managed or most
    evidenced answer when they differ."""
    found: list[Device] = []
    for host in group.hosts:
        dev = devices.camera(host.ip, host.mac)
        if dev is not None:
            found.append(dev)
    if not found:
        return None
    return max(found, key=lambda d: (d.managed, len(d.signals), ":" not in d.ip))


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _listed(rows: list[dict[str, Any]], others: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows by bytes out (then in, then label), the first ``MAX_LISTED`` and one ``others``
    row summing the rest."""
    rows.sort(key=lambda r: (-r["bytes_out"], -r["bytes_in"], json.dumps(r, sort_keys=True)))
    if len(rows) <= MAX_LISTED:
        return rows
    kept, rest = rows[: MAX_LISTED - 1], rows[MAX_LISTED - 1 :]
    for key in ("bytes_out", "bytes_in", "flows"):
        others[key] = sum(r[key] for r in rest)
    return [*kept, others]


def _merge(tables: Iterable[dict[K, Traffic]]) -> dict[K, Traffic]:
    merged: dict[K, Traffic] = {}
    for table in tables:
        for key, t in table.items():
            merged.setdefault(key, Traffic()).add(t.bytes_out, t.bytes_in, t.flows)
    return merged


def _traffic(t: Traffic) -> dict[str, int]:
    return {"bytes_out": t.bytes_out, "bytes_in": t.bytes_in, "flows": t.flows}


def _peers(group: _Group) -> dict[str, list[dict[str, Any]]]:
    countries = _merge(h.countries for h in group.hosts)
    asns = _merge(h.asns for h in group.hosts)
    names = _merge(h.names for h in group.hosts)
    return {
        "countries": _listed(
            [{"country": k, **_traffic(t)} for k, t in countries.items()], {"country": OTHERS}
        ),
        "asns": _listed(
            [{"asn": a, "org": o, **_traffic(t)} for (a, o), t in asns.items()],
            {"asn": None, "org": OTHERS},
        ),
        "names": _listed([{"name": k, **_traffic(t)} for k, t in names.items()], {"name": OTHERS}),
    }


def _evidence(alert: Alert) -> dict[str, Any]:
    """The alert's own evidence fields (not the reports grouped or folded into it), JSON
    values only; an oversized value is cut (hostile bytes can make long strings)."""
    out: dict[str, Any] = {}
    for key, value in alert.evidence.items():
        if key in NOT_EVIDENCE:
            continue
        text = json.dumps(value, default=str)
        if len(text) > MAX_INCIDENT_EVIDENCE_CHARS:
            value = text[:MAX_INCIDENT_EVIDENCE_CHARS] + "..."
        out[str(key)] = json.loads(json.dumps(value, default=str))
    if alert.evidence_pcap is not None:
        out["evidence_pcap"] = alert.evidence_pcap
    return out


def _incident(end: IncidentEnd) -> dict[str, Any]:
    a = end.alert
    return {
        "rule": a.rule,
        "severity": end.severity.value,
        "reached": a.reached or None,
        "first": end.first_seen,
        "last": end.last_seen,
        "count": end.sightings,
        "open": end.reason is EndReason.END_OF_INPUT,
        "summary": a.summary,
        "direction": a.direction.value,
        "peer": a.peer or None,
        "peer_country": a.peer_country,
        "peer_asn": a.peer_asn,
        "peer_org": a.peer_org,
        "platform": a.platform,
        "peers": [*end.peers, *([f"+{end.more_peers} more"] if end.more_peers else [])],
        "flow_uid": a.flow_uid,
        "evidence": _evidence(a),
    }


def _platforms(ends: Sequence[IncidentEnd]) -> list[dict[str, Any]]:
    """The cloud/P2P platforms the camera's incidents named, first/last seen and flows."""
    seen: dict[str, dict[str, Any]] = {}
    for end in ends:
        name = end.alert.platform
        if not name:
            continue
        row = seen.setdefault(
            name, {"name": name, "first_seen": end.first_seen, "last_seen": end.last_seen}
        )
        row["first_seen"] = min(row["first_seen"], end.first_seen)
        row["last_seen"] = max(row["last_seen"], end.last_seen)
        row["flows"] = row.get("flows", 0) + end.sightings
    return sorted(seen.values(), key=lambda r: (r["first_seen"], r["name"]))


def _addresses(group: _Group) -> tuple[list[str], list[str]]:
    v4 = sorted(h.ip for h in group.hosts if len(h.ip) == 4)
    v6 = sorted(h.ip for h in group.hosts if len(h.ip) == 16)
    return [str(ipaddress.ip_address(a)) for a in v4], [str(ipaddress.ip_address(a)) for a in v6]


def _camera_entry(
    dev: Device | CameraSummary,
    macs: list[str],
    addresses: tuple[list[str], list[str]],
    span: tuple[float, float],
) -> dict[str, Any]:
    """One camera's identity fields (peers, platforms and incidents added by the caller)."""
    is_device = isinstance(dev, Device)
    ident = macs[0] if macs else (addresses[0] or addresses[1] or ["?"])[0]
    return {
        "id": ident,
        "name": dev.name if isinstance(dev, Device) and dev.managed else None,
        "macs": macs,
        "ipv4": addresses[0],
        "ipv6": addresses[1],
        "vendor": _vendor(dev),
        "model": dev.model,
        "firmware": dev.firmware if isinstance(dev, Device) else None,
        "serial": dev.serial if isinstance(dev, Device) else None,
        "recognised_by": _recognised_by(dev),
        "confidence": dev.confidence,
        "group": dev.group if isinstance(dev, Device) else None,
        "managed": dev.managed if isinstance(dev, Device) else False,
        "first_seen": span[0],
        "last_seen": span[1],
        "platforms": [],
        "peers": {"countries": [], "asns": [], "names": []},
        "bytes_out_external": 0,
        "incidents": [],
    } | ({} if is_device else {"note": "recognised by its MAC; no flow showed its address"})


def _vendor(dev: Device | CameraSummary) -> str | None:
    """The camera maker: the device's, else the first camera signal's (an inventory camera
    with a MAC no camera maker registered still said who made it)."""
    return dev.vendor or next((s.vendor for s in dev.signals if s.camera and s.vendor), None)


def _recognised_by(dev: Device | CameraSummary) -> list[str]:
    """The ways it was recognised: ``inventory`` first when listed, then camera signals."""
    hows = ["inventory"] if isinstance(dev, Device) and dev.managed else []
    hows += [s.how for s in dev.signals if s.camera]
    return list(dict.fromkeys(hows))


def _incidents_of(ends: Sequence[IncidentEnd], ips: set[str], macs: set[str]) -> list[IncidentEnd]:
    """The incidents about this camera: by MAC when both have one, else by address."""
    return [e for e in ends if _is_about(e.alert, ips, macs)]


def _is_about(alert: Alert, ips: set[str], macs: set[str]) -> bool:
    if macs and alert.device_mac is not None:
        return alert.device_mac in macs
    return alert.device_ip in ips


def build_inventory(
    devices: Devices,
    tally: HostTally,
    incidents: IncidentLog,
    *,
    site: str | None,
    source: Mapping[str, Any],
    generated: str,
    mac_vendor: MacVendor | None = None,
) -> dict[str, Any]:
    """The inventory JSON from a finished pipeline's devices, host tallies and incidents;
    ``mac_vendor`` names the registrant of each camera's MAC prefix (``mac_vendor``)."""
    span = tally.span or (0.0, 0.0)
    cameras: list[dict[str, Any]] = []
    listed_macs: set[str] = set()
    listed_ips: set[str] = set()
    for group in _group_hosts(list(tally.hosts.values())):
        dev = _device_of(devices, group)
        if dev is None:
            continue
        macs = [_mac_text(group.mac)] if group.mac is not None else []
        addresses = _addresses(group)
        first = min(h.first for h in group.hosts)
        last = max(h.last for h in group.hosts)
        cam = _camera_entry(dev, macs, addresses, (first, last))
        cam["peers"] = _peers(group)
        cam["bytes_out_external"] = sum(h.bytes_out_external for h in group.hosts)
        ips = {*addresses[0], *addresses[1]}
        _add_incidents(cam, _incidents_of(incidents.ended, ips, set(macs)))
        listed_macs.update(macs)
        listed_ips.update(ips)
        cameras.append(cam)
    for summary in devices.cameras():
        if summary.address in listed_ips or (summary.mac or summary.address) in listed_macs:
            continue
        macs = [summary.mac] if summary.mac else []
        ip_only = [] if summary.mac == summary.address else [summary.address]
        addresses = ([a for a in ip_only if ":" not in a], [a for a in ip_only if ":" in a])
        cam = _camera_entry(summary, macs, addresses, span)
        _add_incidents(cam, _incidents_of(incidents.ended, set(ip_only), set(macs)))
        cameras.append(cam)
    if mac_vendor is not None:
        for cam in cameras:
            cam["mac_vendor"] = _registrant(mac_vendor, cam["macs"])
    cameras.sort(key=lambda c: (-c["bytes_out_external"], c["id"]))
    return {
        "version": INVENTORY_VERSION,
        "generated": generated,
        "site": site,
        "source": dict(source),
        "cameras": cameras,
    }


def _registrant(mac_vendor: MacVendor, macs: Sequence[str]) -> str | None:
    """The IEEE registrant of the first MAC's prefix (None: none, or not registered)."""
    if not macs:
        return None
    return mac_vendor(bytes.fromhex(macs[0].replace(":", "")))


def _add_incidents(cam: dict[str, Any], ends: Sequence[IncidentEnd]) -> None:
    cam["platforms"] = _platforms(ends)
    ordered = sorted(ends, key=lambda e: (e.severity.rank, e.first_seen, e.alert.rule))
    cam["incidents"] = [_incident(e) for e in ordered[:MAX_INCIDENTS]]
    if len(ordered) > MAX_INCIDENTS:
        cam["incidents_dropped"] = len(ordered) - MAX_INCIDENTS


def now_iso() -> str:
    """The current time as ISO 8601 UTC, seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inventory_from_captures(
    paths: Sequence[Path],
    cfg: Config,
    *,
    geo: GeoBackend | None = None,
    generated: str | None = None,
    on_pipeline: Callable[[Pipeline], None] | None = None,
) -> dict[str, Any]:
    """Replay ``paths`` (detection on) and build the inventory JSON of what they showed.
    Raises CaptureError before any work when a file is unreadable."""
    captures = [open_capture(p) for p in paths]
    incidents = IncidentLog()
    tallies: list[HostTally] = []  # the one tally, made once the pipeline's parts exist

    def on_record(rec: dict[str, Any]) -> None:
        tallies[0].add(rec)

    try:
        pipe = Pipeline(cfg, on_record, geo=geo, uids=UidSource(0), on_alert=_no_alert)
        assert pipe.detector is not None  # on_alert given: detection runs
        pipe.detector.router.on_end = incidents.add
        tally = HostTally(pipe.classifier, pipe.enrichers.geo)
        tallies.append(tally)
        pipe.warm_up()
        for cap in captures:
            pipe.run_capture(cap)
        pipe.finish()
    finally:
        for cap in captures:
            cap.close()
    if on_pipeline is not None:
        on_pipeline(pipe)
    return build_inventory(
        pipe.detector.devices,
        tally,
        incidents,
        site=cfg.site.name,
        source={"captures": [str(p) for p in paths]},
        generated=generated or now_iso(),
        mac_vendor=pipe.enrichers.vendors.vendor,
    )


def _no_alert(_alert: Alert, _count: int) -> None:
    """Notifications are not needed: the report reads the incidents as they end."""


def load_inventory(path: Path) -> dict[str, Any]:
    """A saved inventory (``INVENTORY_FILE``); InventoryError names the file and what is
    wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(
            f"{path}: no saved inventory (a sensor writes it to its state directory; "
            "`netwatch replay --state-dir DIR` writes one too)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read the inventory: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise InventoryError(f"{path}: not an inventory (no list of cameras)")
    if data.get("version") != INVENTORY_VERSION:
        raise InventoryError(
            f"{path}: inventory version {data.get('version')!r}, this netwatch reads "
            f"version {INVENTORY_VERSION}"
        )
    return data
