"""Per-camera traffic for Prometheus: bytes and packets by direction, peer countries, ASNs.

:class:`CameraTraffic` is fed flow records: :meth:`~CameraTraffic.progress` with the
provisional record of a flow still active (the daemon's periodic check, so a long upload
shows while it lasts) and :meth:`~CameraTraffic.record` with the final record at flow end;
:meth:`~CameraTraffic.alert` with each emitted alert (``netwatch_camera_alerts_total``).
Only what was not yet counted for that flow is added, so every byte counts once. Bytes are
IP bytes (``orig_ip_bytes``/``resp_ip_bytes``: headers included, wire length); packets are
``orig_pkts``/``resp_pkts``. A flow counts once in the per-country and per-ASN flow
counters, at its first sighting.

Cardinality: the ``camera`` label is the device name (the inventory name, or the camera's IP
text for cameras found without an inventory entry: the one place an address may be a label
value), bounded by ``max_cameras`` (default 500; later cameras count as ``other``). Peer
countries and ASNs are capped per camera (``max_countries`` 10, ``max_asns`` 10; first seen
kept, later ones as ``other``; first-seen rather than a moving top-N keeps every series
monotonic). Peers inside the site (the flow record's ``local_orig``/``local_resp``) are
country ``local``; other peers without GeoIP data are ``unknown``; a peer whose AS number
is unknown but whose organisation is known keeps the organisation (``asn="unknown"``).
``netwatch_camera_external_sent_bytes_total{camera}`` counts the IP bytes each camera sent
to peers outside the site (a "who sends video out" panel), under the same camera cap.
Every value that fell into ``other`` is counted in ``netwatch_label_overflow_total{metric}``.
No peer IP or port is a label.

Config read: none (the caller passes the limits). Thread-safe: the capture thread writes,
the scrape reads a snapshot under the lock.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from netwatch.pipeline import Pipeline

OTHER = "other"
UNKNOWN = "unknown"
LOCAL = "local"  # the peer is inside the site
DEFAULT_MAX_CAMERAS = 500
DEFAULT_MAX_COUNTRIES = 10
DEFAULT_MAX_ASNS = 10
CAPPED_METRICS = (
    "netwatch_camera_sent_bytes_total",
    "netwatch_camera_peer_country_flows_total",
    "netwatch_camera_peer_asn_flows_total",
)
_MAX_PENDING = 1_000_000  # flows with a partial count held at once (bounded by max_flows)

CameraOf = Callable[[str, str | None], tuple[str, str] | None]
"""(IP text, MAC text or None) of one flow end -> (camera name, group), or None."""

Counts = tuple[int, int, int, int]  # sent bytes, received bytes, sent packets, received packets


@dataclass(slots=True)
class _Traffic:
    sent_bytes: int = 0
    received_bytes: int = 0
    sent_packets: int = 0
    received_packets: int = 0

    def add(self, c: Counts) -> None:
        self.sent_bytes += c[0]
        self.received_bytes += c[1]
        self.sent_packets += c[2]
        self.received_packets += c[3]

    def fields(self) -> Counts:
        return (self.sent_bytes, self.received_bytes, self.sent_packets, self.received_packets)


@dataclass(slots=True)
class Snapshot:
    """Consistent copies of every counter, for one scrape."""

    traffic: dict[tuple[str, str], Counts]
    countries: dict[tuple[str, str], tuple[int, int]]  # (camera, cc) -> (flows, sent bytes)
    asns: dict[tuple[str, str, str], int]  # (camera, asn, org) -> flows
    overflow: dict[str, int]
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # (camera, rule)
    external: dict[str, int] = field(default_factory=dict)  # camera -> bytes sent outside


def camera_resolver(pipeline: Pipeline) -> CameraOf:
    """Camera identity as the detector sees it (inventory, vendor prefix, discovery); the
    inventory alone when the pipeline runs without detection."""

    def resolve(ip: str, mac: str | None) -> tuple[str, str] | None:
        try:  # inet_pton: ten times faster than ipaddress, once per flow end
            packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
        except OSError:
            return None
        mac_b = bytes.fromhex(mac.replace(":", "")) if mac else None
        if pipeline.detector is not None:
            dev = pipeline.detector.devices.camera(packed, mac_b)
            return (dev.name, dev.group) if dev is not None else None
        inv = pipeline.enrichers.inventory.lookup(packed, mac_b)
        return (inv.name, inv.group) if inv is not None else None

    return resolve


def _side_counts(rec: Mapping[str, Any], side: str, other: str) -> Counts:
    return (
        int(rec.get(f"{side}_ip_bytes") or 0),
        int(rec.get(f"{other}_ip_bytes") or 0),
        int(rec.get(f"{side}_pkts") or 0),
        int(rec.get(f"{other}_pkts") or 0),
    )


def _minus(a: Counts, b: Counts) -> Counts:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


class CameraTraffic:
    """Per-camera traffic from flow records, with bounded label sets (module docstring)."""

    def __init__(
        self,
        resolve: CameraOf | None = None,
        *,
        max_cameras: int = DEFAULT_MAX_CAMERAS,
        max_countries: int = DEFAULT_MAX_COUNTRIES,
        max_asns: int = DEFAULT_MAX_ASNS,
    ) -> None:
        self.resolve = resolve
        self.max_cameras = max_cameras
        self.max_countries = max_countries
        self.max_asns = max_asns
        self._lock = threading.Lock()
        self._traffic: dict[tuple[str, str], _Traffic] = {}
        self._countries: dict[str, dict[str, list[int]]] = {}  # camera -> cc -> [flows, bytes]
        self._asns: dict[str, dict[tuple[str, str], int]] = {}  # camera -> (asn, org) -> flows
        self._cameras: set[str] = set()
        self._counted: dict[tuple[str, bool], Counts] = {}  # (flow uid, orig side) -> so far
        self._alerts: dict[tuple[str, str], int] = {}  # (camera, rule) -> alerts
        self._external: dict[str, int] = {}  # camera -> IP bytes sent outside the site
        self.overflow: dict[str, int] = {}

    def progress(self, rec: Mapping[str, Any]) -> None:
        """Account what an active flow did since it was last seen (it goes on)."""
        self._account(rec, final=False)

    def record(self, rec: Mapping[str, Any]) -> None:
        """Account an ended flow (a camera-to-camera flow counts for both cameras)."""
        self._account(rec, final=True)

    def _account(self, rec: Mapping[str, Any], *, final: bool) -> None:
        if self.resolve is None:
            return
        uid = str(rec.get("uid", ""))
        for side, other in (("orig", "resp"), ("resp", "orig")):
            cam = self.resolve(str(rec[f"id.{side}_h"]), rec.get(f"{side}_l2_addr"))
            if cam is None:
                continue
            now = _side_counts(rec, side, other)
            with self._lock:
                key = (uid, side == "orig")
                before = self._counted.pop(key, None) if final else self._counted.get(key)
                if not final and (before is not None or len(self._counted) < _MAX_PENDING):
                    self._counted[key] = now
                delta = now if before is None else _minus(now, before)
                self._add(cam, delta, rec, other, first=before is None)

    def _add(
        self, cam: tuple[str, str], delta: Counts, rec: Mapping[str, Any], peer: str, first: bool
    ) -> None:
        camera, group = cam
        if camera not in self._cameras:
            if len(self._cameras) < self.max_cameras:
                self._cameras.add(camera)
            else:
                camera = OTHER
                if first:
                    self._overflowed("netwatch_camera_sent_bytes_total")
        t = self._traffic.get((camera, group))
        if t is None:
            t = self._traffic[(camera, group)] = _Traffic()
        t.add(delta)
        inside = bool(rec.get(f"local_{peer}"))
        if not inside:
            self._external[camera] = self._external.get(camera, 0) + delta[0]
        countries = self._countries.setdefault(camera, {})
        cc = LOCAL if inside else str(rec.get(f"{peer}_cc") or UNKNOWN)
        if cc not in countries and len(countries) >= self.max_countries:
            cc = OTHER
            if first:
                self._overflowed("netwatch_camera_peer_country_flows_total")
        entry = countries.setdefault(cc, [0, 0])
        entry[0] += 1 if first else 0
        entry[1] += delta[0]
        if first:
            self._count_asn(camera, rec, peer)

    def _count_asn(self, camera: str, rec: Mapping[str, Any], peer: str) -> None:
        asns = self._asns.setdefault(camera, {})
        asn, org = rec.get(f"{peer}_asn"), str(rec.get(f"{peer}_org") or "")
        number = str(asn) if asn else UNKNOWN  # the organisation stays without its number
        key = (LOCAL, "") if rec.get(f"local_{peer}") else (number, org)
        if key not in asns and len(asns) >= self.max_asns:
            key = (OTHER, "")
            self._overflowed("netwatch_camera_peer_asn_flows_total")
        asns[key] = asns.get(key, 0) + 1

    def alert(self, camera: str, rule: str) -> None:
        """Count one emitted alert of a camera (``camera`` is the alert's device name)."""
        with self._lock:
            if camera not in self._cameras:
                if len(self._cameras) < self.max_cameras:
                    self._cameras.add(camera)
                else:
                    camera = OTHER
                    self._overflowed("netwatch_camera_sent_bytes_total")
            self._alerts[(camera, rule)] = self._alerts.get((camera, rule), 0) + 1

    def _overflowed(self, metric: str) -> None:
        self.overflow[metric] = self.overflow.get(metric, 0) + 1

    def snapshot(self) -> Snapshot:
        """Consistent copies of every counter for one scrape."""
        with self._lock:
            return Snapshot(
                {k: v.fields() for k, v in self._traffic.items()},
                {
                    (c, cc): (e[0], e[1])
                    for c, per in self._countries.items()
                    for cc, e in per.items()
                },
                {(c, a, o): n for c, per in self._asns.items() for (a, o), n in per.items()},
                dict(self.overflow),
                dict(self._alerts),
                dict(self._external),
            )


def counter_family(
    name: str, doc: str, labels: Iterable[str], samples: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    """A counter family with one sample per (label values, value), in label order."""
    fam = CounterMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(samples):
        fam.add_metric(list(values), value)
    return fam


def camera_families(traffic: CameraTraffic | None) -> Iterator[Metric]:
    """The ``netwatch_camera*`` families and the label-overflow counter."""
    snap = traffic.snapshot() if traffic is not None else Snapshot({}, {}, {}, {})
    for i, (name, doc) in enumerate(
        (
            ("netwatch_camera_sent_bytes", "IP bytes cameras sent."),
            ("netwatch_camera_received_bytes", "IP bytes cameras received."),
            ("netwatch_camera_sent_packets", "Packets cameras sent."),
            ("netwatch_camera_received_packets", "Packets cameras received."),
        )
    ):
        yield counter_family(
            name,
            doc + " Counted while flows are active and at their end.",
            ["camera", "group"],
            [(key, c[i]) for key, c in snap.traffic.items()],
        )
    cameras = GaugeMetricFamily(
        "netwatch_cameras", "Cameras seen in traffic, by group.", labels=["group"]
    )
    per_group: dict[str, int] = {}
    for _camera, group in snap.traffic:
        per_group[group] = per_group.get(group, 0) + 1
    for group, n in sorted(per_group.items()):
        cameras.add_metric([group], n)
    yield cameras
    yield counter_family(
        "netwatch_camera_alerts",
        "Alerts emitted (after de-duplication) about each camera, by rule.",
        ["camera", "rule"],
        list(snap.alerts.items()),
    )
    yield counter_family(
        "netwatch_camera_peer_country_flows",
        "Flows of each camera by the peer's GeoIP country (capped per camera).",
        ["camera", "country"],
        [(k, v[0]) for k, v in snap.countries.items()],
    )
    yield counter_family(
        "netwatch_camera_peer_country_sent_bytes",
        "IP bytes each camera sent, by the peer's GeoIP country (capped per camera).",
        ["camera", "country"],
        [(k, v[1]) for k, v in snap.countries.items()],
    )
    yield counter_family(
        "netwatch_camera_external_sent_bytes",
        "IP bytes each camera sent to peers outside the site (capped with the cameras).",
        ["camera"],
        [((c,), n) for c, n in snap.external.items()],
    )
    yield counter_family(
        "netwatch_camera_peer_asn_flows",
        "Flows of each camera by the peer's AS number and organisation (capped per camera).",
        ["camera", "asn", "org"],
        list(snap.asns.items()),
    )
    capped = dict.fromkeys(CAPPED_METRICS, 0) | snap.overflow  # known series start at 0
    yield counter_family(
        "netwatch_label_overflow",
        "Samples counted under an 'other' label value because a label cap was reached.",
        ["metric"],
        [((k,), v) for k, v in capped.items()],
    )
