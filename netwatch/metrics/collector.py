"""The Prometheus view of a running pipeline: a custom collector built fresh at scrape time.

:class:`NetwatchCollector` reads counters the pipeline keeps anyway (packets, decode
failures, flow table, deep parsers, rule errors, router suppression, GeoIP cache) and
turns them into ``*MetricFamily`` objects on each scrape, so capture never calls
prometheus_client per packet. Two small hooks add what the pipeline does not count:

* :class:`AlertCounter` wraps the alert emit (``emit(alert, count)``) and counts emitted
  alerts per (rule, severity); both label sets are bounded (rule ids, five severities).
* :class:`CameraTraffic` is fed each ended flow record (once per flow) and keeps per-camera
  sent/received IP bytes and packets, and flows per peer country.

Cardinality decision: the ``camera`` label is the device name, which is the inventory name
for listed cameras and the camera's IP text only for cameras found without an inventory
entry (vendor MAC prefix, discovery). That is the one place an address may be a label
value; it is bounded by ``max_cameras`` (default 500): cameras first seen after the cap are
counted under ``camera="other"``. Peer countries are capped per camera
(``max_countries``, default 10, first seen kept, later ones under ``country="other"``;
first-seen rather than a moving top-N keeps every series monotonic). Peers without a
GeoIP country (local, special or unresolved addresses) are ``country="unknown"``. Values
that fell into ``other`` are counted in ``netwatch_label_overflow_total{metric}``. No
peer IPs or ports are ever label values.

Config read: none (the caller passes the limits). Known limits: the collector reads
counters another thread mutates; it copies each dict before iterating, which is safe
under the GIL but not a consistent cross-counter snapshot.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netwatch import __version__
from netwatch.alerts.model import Alert
from netwatch.alerts.router import Emit
from netwatch.pipeline import Pipeline

OTHER = "other"
UNKNOWN_COUNTRY = "unknown"
DEFAULT_MAX_CAMERAS = 500
DEFAULT_MAX_COUNTRIES = 10

CameraOf = Callable[[str, str | None], tuple[str, str] | None]
"""(IP text, MAC text or None) of one flow end -> (camera name, group), or None."""


class AlertCounter:
    """Counts emitted alerts per (rule, severity), then passes them on to ``emit``."""

    def __init__(self, emit: Emit | None = None) -> None:
        self._emit = emit
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, alert: Alert, count: int) -> None:
        key = (alert.rule, alert.severity.value)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._emit is not None:
            self._emit(alert, count)


@dataclass(slots=True)
class _Traffic:
    sent_bytes: int = 0
    received_bytes: int = 0
    sent_packets: int = 0
    received_packets: int = 0


def camera_resolver(pipeline: Pipeline) -> CameraOf:
    """Camera identity as the detector sees it (inventory, vendor prefix, discovery); the
    inventory alone when the pipeline runs without detection."""

    def resolve(ip: str, mac: str | None) -> tuple[str, str] | None:
        try:
            packed = ipaddress.ip_address(ip).packed
        except ValueError:
            return None
        mac_b = bytes.fromhex(mac.replace(":", "")) if mac else None
        if pipeline.detector is not None:
            dev = pipeline.detector.devices.camera(packed, mac_b)
            return (dev.name, dev.group) if dev is not None else None
        inv = pipeline.enrichers.inventory.lookup(packed, mac_b)
        return (inv.name, inv.group) if inv is not None else None

    return resolve


class CameraTraffic:
    """Per-camera traffic from ended flow records, with bounded label sets.

    Call :meth:`record` with each flow record (it fits the pipeline's ``on_record`` sink).
    Bytes are IP bytes (``orig_ip_bytes``/``resp_ip_bytes``: headers included, original
    wire length); packets are ``orig_pkts``/``resp_pkts``.
    """

    def __init__(
        self,
        resolve: CameraOf | None = None,
        *,
        max_cameras: int = DEFAULT_MAX_CAMERAS,
        max_countries: int = DEFAULT_MAX_COUNTRIES,
    ) -> None:
        self.resolve = resolve
        self.max_cameras = max_cameras
        self.max_countries = max_countries
        self._lock = threading.Lock()
        self._traffic: dict[tuple[str, str], _Traffic] = {}
        self._countries: dict[str, dict[str, int]] = {}  # camera label -> country -> flows
        self._cameras: set[str] = set()
        self.overflow: dict[str, int] = {}

    def record(self, rec: Mapping[str, Any]) -> None:
        """Account one ended flow to each camera end (a camera-to-camera flow counts twice)."""
        if self.resolve is None:
            return
        for is_orig in (True, False):
            side, other = ("orig", "resp") if is_orig else ("resp", "orig")
            cam = self.resolve(str(rec[f"id.{side}_h"]), rec.get(f"{side}_l2_addr"))
            if cam is None:
                continue
            self.add(
                cam[0],
                cam[1],
                sent_bytes=int(rec.get(f"{side}_ip_bytes") or 0),
                received_bytes=int(rec.get(f"{other}_ip_bytes") or 0),
                sent_packets=int(rec.get(f"{side}_pkts") or 0),
                received_packets=int(rec.get(f"{other}_pkts") or 0),
                peer_country=rec.get(f"{other}_cc"),
            )

    def add(
        self,
        camera: str,
        group: str,
        *,
        sent_bytes: int,
        received_bytes: int,
        sent_packets: int,
        received_packets: int,
        peer_country: str | None,
    ) -> None:
        """Account one flow of one camera."""
        with self._lock:
            if camera not in self._cameras:
                if len(self._cameras) < self.max_cameras:
                    self._cameras.add(camera)
                else:
                    camera = OTHER
                    self._overflowed("netwatch_camera_sent_bytes_total")
            t = self._traffic.get((camera, group))
            if t is None:
                t = self._traffic[(camera, group)] = _Traffic()
            t.sent_bytes += sent_bytes
            t.received_bytes += received_bytes
            t.sent_packets += sent_packets
            t.received_packets += received_packets
            countries = self._countries.setdefault(camera, {})
            cc = peer_country or UNKNOWN_COUNTRY
            if cc not in countries and len(countries) >= self.max_countries:
                cc = OTHER
                self._overflowed("netwatch_camera_peer_country_flows_total")
            countries[cc] = countries.get(cc, 0) + 1

    def _overflowed(self, metric: str) -> None:
        self.overflow[metric] = self.overflow.get(metric, 0) + 1

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str], _Traffic], dict[str, dict[str, int]], dict[str, int]]:
        """Consistent copies of (traffic, countries, overflow) for one scrape."""
        with self._lock:
            traffic = {k: _Traffic(*_fields(v)) for k, v in self._traffic.items()}
            countries = {k: dict(v) for k, v in self._countries.items()}
            return traffic, countries, dict(self.overflow)


def _fields(t: _Traffic) -> tuple[int, int, int, int]:
    return (t.sent_bytes, t.received_bytes, t.sent_packets, t.received_packets)


def _counter(
    name: str, doc: str, labels: Iterable[str], samples: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(samples):
        fam.add_metric(list(values), value)
    return fam


def _by_label(d: Mapping[str, int]) -> list[tuple[tuple[str, ...], float]]:
    return [((k,), v) for k, v in dict(d).items()]


class NetwatchCollector(Collector):
    """Builds every ``netwatch_*`` family from the pipeline's counters on each scrape.

    ``clock`` (seconds, monotonic or not) times the collection for
    ``netwatch_scrape_duration_seconds``. Register on an injected registry::

        registry = CollectorRegistry()
        registry.register(NetwatchCollector(pipe, alerts=counter, traffic=traffic))
    """

    def __init__(
        self,
        pipeline: Pipeline,
        clock: Callable[[], float] = time.perf_counter,
        *,
        alerts: AlertCounter | None = None,
        traffic: CameraTraffic | None = None,
        version: str = __version__,
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.alerts = alerts
        self.traffic = traffic
        self.version = version

    def describe(self) -> Iterable[Metric]:
        """Nothing: keeps ``register`` from running a collection."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Fresh families for one scrape."""
        start = self.clock()
        families = list(self._families())
        duration = GaugeMetricFamily(
            "netwatch_scrape_duration_seconds",
            "Time netwatch took to build this scrape's netwatch_* metrics.",
            value=max(0.0, self.clock() - start),
        )
        yield from families
        yield duration

    def _families(self) -> Iterator[Metric]:
        p = self.pipeline
        yield _build_info(self.version)
        yield CounterMetricFamily(
            "netwatch_packets", "Frames read from capture.", value=p.stats.packets
        )
        yield CounterMetricFamily(
            "netwatch_wire_bytes",
            "Original wire length of the frames read, in bytes.",
            value=p.stats.wire_bytes,
        )
        yield _counter(
            "netwatch_decode_failures",
            "Frames or IP packets that could not be decoded, by reason.",
            ["reason"],
            _by_label(p.decoder.failures),
        )
        yield _counter(
            "netwatch_non_ip_frames",
            "Frames that are not IP (ARP, LLDP, ...), by kind.",
            ["kind"],
            _by_label(p.decoder.non_ip),
        )
        yield GaugeMetricFamily(
            "netwatch_flows_active", "Flows in the flow table now.", value=len(p.table)
        )
        yield _counter(
            "netwatch_flows_ended",
            "Flows ended, by reason.",
            ["reason"],
            _by_label(p.table.ended),
        )
        yield _counter(
            "netwatch_deep_parsed",
            "Messages handed to the deep parsers, by parser outcome.",
            ["parser"],
            _by_label(p.inspector.parsed),
        )
        yield from self._detection()
        yield from self._geo()
        yield from self._cameras()

    def _detection(self) -> Iterator[Metric]:
        det = self.pipeline.detector
        counts = dict(self.alerts.counts) if self.alerts is not None else {}
        yield _counter(
            "netwatch_alerts",
            "Alerts emitted (after de-duplication), by rule and severity.",
            ["rule", "severity"],
            counts.items(),
        )
        yield CounterMetricFamily(
            "netwatch_alerts_suppressed",
            "Repeats of an already reported alert identity, suppressed.",
            value=det.router.suppressed if det is not None else 0,
        )
        yield _counter(
            "netwatch_rule_errors",
            "Rule failures (isolated, counted), by rule.",
            ["rule"],
            _by_label(det.errors.counts) if det is not None else [],
        )

    def _geo(self) -> Iterator[Metric]:
        geo = self.pipeline.enrichers.geo
        yield CounterMetricFamily(
            "netwatch_geoip_lookups", "GeoIP lookups asked for.", value=geo.lookups
        )
        yield CounterMetricFamily(
            "netwatch_geoip_cache_hits", "GeoIP lookups answered from cache.", value=geo.hits
        )
        yield CounterMetricFamily(
            "netwatch_geoip_cache_misses",
            "GeoIP lookups passed to the database.",
            value=geo.misses,
        )
        build = GaugeMetricFamily(
            "netwatch_geoip_database_build_timestamp_seconds",
            "Build date of the GeoIP data in use (midnight UTC); absent when unknown.",
        )
        try:
            date = self.pipeline.geo_backend.describe().build_date
        except Exception:  # a broken database must not fail the scrape
            date = None
        if date is not None:
            stamp = datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp()
            build.add_metric([], stamp)
        yield build

    def _cameras(self) -> Iterator[Metric]:
        traffic, countries, overflow = (
            self.traffic.snapshot() if self.traffic is not None else ({}, {}, {})
        )
        labels = ["camera", "group"]
        for name, doc, attr in (
            ("netwatch_camera_sent_bytes", "IP bytes cameras sent.", 0),
            ("netwatch_camera_received_bytes", "IP bytes cameras received.", 1),
            ("netwatch_camera_sent_packets", "Packets cameras sent.", 2),
            ("netwatch_camera_received_packets", "Packets cameras received.", 3),
        ):
            yield _counter(
                name,
                doc + " Counted at flow end.",
                labels,
                [(key, _fields(t)[attr]) for key, t in traffic.items()],
            )
        yield _counter(
            "netwatch_camera_peer_country_flows",
            "Ended flows of each camera by the peer's GeoIP country (capped per camera).",
            ["camera", "country"],
            [((cam, cc), n) for cam, per in countries.items() for cc, n in per.items()],
        )
        yield _counter(
            "netwatch_label_overflow",
            "Samples counted under an 'other' label value because a label cap was reached.",
            ["metric"],
            _by_label(overflow),
        )


def _build_info(version: str) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(
        "netwatch_build_info", "netwatch build information (always 1).", labels=["version"]
    )
    fam.add_metric([version], 1)
    return fam
