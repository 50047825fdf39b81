"""The Prometheus view of a running pipeline: a custom collector built fresh at scrape time.

:class:`NetwatchCollector` reads counters the pipeline keeps anyway (packets, decode
failures, flow table, deep parsers, rule errors, router suppression, GeoIP cache) and
turns them into ``*MetricFamily`` objects on each scrape, so capture never calls
prometheus_client per packet. :class:`AlertCounter` wraps the alert emit
(``emit(alert, count)``) and counts emitted alerts per (rule, severity); both label sets
are bounded (rule ids, five severities).
``netwatch_cameras_recognised{how}`` counts the cameras seen in traffic by how they were
recognised (:mod:`netwatch.detect.recognised`; four label values; with capture workers the
parent counts the union, :func:`recognised_family`). Per-camera traffic
comes from :mod:`netwatch.metrics.cameras` (its docstring states the cardinality rules);
the daemon's own families (capture, delivery, reload) from :mod:`netwatch.metrics.daemon`.
No peer IPs or ports are ever label values. ``netwatch_evidence_*`` (present when the
pipeline keeps evidence, :mod:`netwatch.alerts.evidence`): files written, deleted by
reason, alerts that went out without evidence by reason, bytes on disk, and the frames
held in memory with the flows that stopped keeping at a cap.

Config read: none. Known limits: the collector reads
counters another thread mutates; it copies each dict before iterating, which is safe
under the GIL but not a consistent cross-counter snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netwatch import __version__
from netwatch.alerts.evidence import EvidenceStore, PacketKeeper
from netwatch.alerts.grouping import DeviceGroups, report_rules
from netwatch.alerts.model import Alert
from netwatch.alerts.router import AlertRouter, Emit
from netwatch.detect.baseline import Baseline
from netwatch.detect.devices import Devices
from netwatch.inventory import CameraInventory
from netwatch.metrics.cameras import CameraTraffic, camera_families
from netwatch.metrics.cameras import counter_family as _counter
from netwatch.pipeline import Pipeline


class AlertCounter:
    """Counts emitted alerts per (rule, severity), then passes them on to ``emit``; a
    notification counts each report it carries (:mod:`netwatch.alerts.grouping`)."""

    def __init__(self, emit: Emit | None = None) -> None:
        self._emit = emit
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, alert: Alert, count: int) -> None:
        for key in report_rules(alert):
            self.counts[key] = self.counts.get(key, 0) + 1
        if self._emit is not None:
            self._emit(alert, count)


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
        yield _counter(
            "netwatch_fragments_reassembled",
            "Fragmented UDP datagrams to a deep parser's port, by outcome (completed, "
            "dropped, evicted, expired).",
            ["outcome"],
            _by_label(p.decoder.reassembler.counts()),
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
        yield recognised_family(p.recognised.by_how())
        yield from self._geo()
        if p.evidence is not None:
            yield from evidence_families(p.evidence, p.keeper)
        yield from camera_families(self.traffic)

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
            _by_label({r.id: 0 for r in det.rules} | det.errors.counts if det is not None else {}),
        )
        if self.pipeline.notify is not None:
            yield from notification_families(self.pipeline.notify)
        if det is not None:
            yield from router_families(det.router)
            yield from device_families(det.devices)
            if isinstance(det.baseline, Baseline):
                yield from baseline_families(det.baseline)

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
            "Build date of the GeoIP data in use (midnight UTC; the oldest of its files), "
            "labelled with its name; absent when unknown.",
            labels=["database"],
        )
        try:
            info = self.pipeline.geo_backend.describe()
        except Exception:  # a broken database must not fail the scrape
            info = None
        if info is not None and info.build_date is not None:
            date = info.build_date
            stamp = datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp()
            build.add_metric([info.name], stamp)
        yield build


def device_families(devices: Devices) -> Iterator[Metric]:
    """One device per camera (:mod:`netwatch.detect.devices`): devices known by their MAC,
    and what their bounds dropped (devices, addresses of a device, routers' MACs)."""
    yield GaugeMetricFamily(
        "netwatch_devices_linked",
        "Cameras known by their MAC (their IPv4 and IPv6 addresses joined as one device).",
        value=devices.linked,
    )
    yield _counter(
        "netwatch_devices_evicted",
        "Entries dropped at a bound of the device table: a device, an address of a device, "
        "a router's MAC.",
        ["what"],
        [
            (("device",), devices.device_evictions),
            (("address",), devices.address_evictions),
            (("gateway",), devices.gateway_evictions),
        ],
    )


class InventoryCollector(Collector):
    """The camera inventory's size and what its bounds dropped (:mod:`netwatch.inventory`)."""

    def __init__(self, inventory: CameraInventory) -> None:
        self.inventory = inventory

    def collect(self) -> Iterator[Metric]:
        inv = self.inventory
        yield GaugeMetricFamily(
            "netwatch_inventory_cameras",
            "Cameras in the camera inventory (netwatch cameras).",
            value=len(inv.cameras),
        )
        yield _counter(
            "netwatch_inventory_dropped",
            "Inventory entries not kept at a bound: a camera, or a peer, platform or "
            "incident key of a camera (summed under 'others').",
            ["what"],
            [(("camera",), inv.dropped_cameras), (("key",), inv.dropped_keys)],
        )


def router_families(router: AlertRouter) -> Iterator[Metric]:
    """The router's bounds (alerts held back per device, state evicted) and its incident
    ends."""
    c = router.counters()
    yield CounterMetricFamily(
        "netwatch_alerts_device_capped",
        "Alerts held back because their device reached alerts.max_per_device within "
        "alerts.device_window_s (one alert_flood alert says so per device and window).",
        value=c["device_capped"],
    )
    yield _counter(
        "netwatch_alert_router_evicted",
        "Router state forgotten at its bound (oldest first), by kind: alert identities "
        "(suppression) and devices (per-device windows).",
        ["state"],
        [(("identities",), c["dropped_identities"]), (("devices",), c["dropped_devices"])],
    )
    yield CounterMetricFamily(
        "netwatch_incidents_ended",
        "Incidents that ended (not seen for alerts.resolve_s, or open at the end of the "
        "input): one end record each, delivered to the sinks that take ends.",
        value=c["ended"],
    )


def notification_families(groups: DeviceGroups) -> Iterator[Metric]:
    """Notifications (one per camera per alerts.group_interval_s) and what waits for one."""
    c = groups.counters()
    yield CounterMetricFamily(
        "netwatch_notifications",
        "Notifications sent: one per camera and alerts.group_interval_s, carrying every "
        "alert report about the camera since the last one.",
        value=c["notifications"],
    )
    yield CounterMetricFamily(
        "netwatch_alerts_grouped",
        "Alert reports that went out inside another report's notification (listed in its "
        "evidence under grouped).",
        value=c["grouped"],
    )
    yield CounterMetricFamily(
        "netwatch_notifications_early",
        "Notifications sent before they were due because the bound of cameras waiting for "
        "one was reached.",
        value=c["early"],
    )
    yield GaugeMetricFamily(
        "netwatch_alerts_pending",
        "Alert reports waiting for their camera's notification (alerts.group_wait_s, "
        "alerts.group_interval_s).",
        value=groups.pending(),
    )


def recognised_family(by_how: Mapping[str, int]) -> GaugeMetricFamily:
    """``netwatch_cameras_recognised{how}``: one process's tally, or the capture workers'
    union counted by the parent (:func:`netwatch.detect.recognised.union_by_how`)."""
    return _gauge(
        "netwatch_cameras_recognised",
        "Cameras seen in traffic, by how they were recognised (inventory, mac_prefix, "
        "discovery, banner); none at all means no camera rule can fire.",
        ["how"],
        _by_label(by_how),
    )


def evidence_families(store: EvidenceStore, keeper: PacketKeeper) -> Iterator[Metric]:
    """Evidence pcaps: files and bytes on disk, deletions, failures, frames in memory."""
    c = store.counters
    yield CounterMetricFamily(
        "netwatch_evidence_files_written",
        "Evidence pcap files written (one per alert about a flow that kept packets).",
        value=c.written,
    )
    yield _counter(
        "netwatch_evidence_files_deleted",
        "Evidence files deleted to keep evidence.max_age_days (age) and evidence.max_total_mb "
        "(size), oldest first.",
        ["reason"],
        _by_label(c.deleted),
    )
    yield _counter(
        "netwatch_evidence_files_dropped",
        "Alerts that went out without their evidence file, by reason (write_error: disk "
        "full, permissions, ...; logged once per errno).",
        ["reason"],
        _by_label(c.dropped),
    )
    yield GaugeMetricFamily(
        "netwatch_evidence_bytes",
        "Bytes of evidence files in the evidence directory (as last counted).",
        value=store.total_bytes,
    )
    yield GaugeMetricFamily(
        "netwatch_evidence_kept_bytes",
        "Bytes of packets flows hold in memory as evidence now (evidence.max_memory_mb).",
        value=keeper.kept_bytes,
    )
    yield _counter(
        "netwatch_evidence_keeping_stopped",
        "Flows that stopped keeping evidence packets early, by cap (memory: "
        "evidence.max_memory_mb, flow_bytes: evidence.bytes, linktype: mixed link types).",
        ["cap"],
        _by_label(keeper.stopped),
    )


def baseline_families(baseline: Baseline) -> Iterator[Metric]:
    """The new_destination baseline: its size, verdicts, bounds and storage."""
    yield GaugeMetricFamily(
        "netwatch_baseline_destinations",
        "Destinations in the new_destination baseline (bounded by learning.max_destinations).",
        value=len(baseline),
    )
    v = baseline.counters
    yield _counter(
        "netwatch_baseline_verdicts",
        "Destinations the baseline decided, by verdict (capped_*: not kept, a bound was hit).",
        ["verdict"],
        [
            (("learned",), v.learned),
            (("new",), v.new),
            (("capped_device",), v.capped_device),
            (("capped_global",), v.capped_global),
        ],
    )
    store = baseline.store.counters if baseline.store is not None else None
    yield _counter(
        "netwatch_baseline_store_events",
        "What the baseline's SQLite store did, off the packet path: changes written, "
        "write errors (retried), changes dropped at the pending bound, rows skipped at load.",
        ["event"],
        [
            ((name,), getattr(store, name) if store is not None else 0)
            for name in ("written", "write_errors", "dropped", "load_skipped", "load_errors")
        ],
    )


def _gauge(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        fam.add_metric(list(label_values), value)
    return fam


def _build_info(version: str) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(
        "netwatch_build_info", "netwatch build information (always 1).", labels=["version"]
    )
    fam.add_metric([version], 1)
    return fam
