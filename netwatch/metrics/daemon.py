"""The daemon's own Prometheus families: capture, pipeline lag, alert delivery, reloads.

:class:`DaemonCollector` reads, at scrape time, what the daemon keeps anyway: per-capture-
source packet counters (``interface`` is the interface name, or ``file`` for capture files),
the pipeline lag, the outbox (depth and age of the oldest waiting alert, per sink; its storage
health: faults survived, whether the file is in use or the in-memory fallback, rows, bytes,
the intake, and items dropped by reason), each sink's delivery counters and the config
reload state. Every configured sink and both drop
stages always have a sample (zero when idle), so dashboards and alerting rules see a series
from the first scrape.

Config read: none. Known limit: outbox figures come from one SQLite query per scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netwatch.capture.source import CaptureCounts
from netwatch.delivery import Deliverer
from netwatch.rules.base import SensorRules

DROP_STAGES = ("kernel", "interface")
# every reason an outbox item can be dropped for (always exported, zero when none)
OUTBOX_DROP_REASONS = ("max_rows", "max_bytes", "intake_full", "invalid")


@dataclass(slots=True)
class DaemonState:
    """What the daemon's loop and reloads update (read by the collector)."""

    started: float = field(default_factory=time.time)
    lag_s: float = 0.0
    last_packet_ts: float | None = None
    reload_ok: bool = True
    reload_success_ts: float = field(default_factory=time.time)
    reloads: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})


class DaemonCollector(Collector):
    """``netwatch_capture_*``, ``netwatch_pipeline_*``, ``netwatch_outbox_*``,
    ``netwatch_sink_*`` and ``netwatch_config_*`` families."""

    def __init__(
        self,
        state: DaemonState,
        deliverer: Callable[[], Deliverer],
        capture: Callable[[], Mapping[str, CaptureCounts]],
        clock: Callable[[], float] = time.time,
        sensors: SensorRules | None = None,
    ) -> None:
        self.state = state
        self.deliverer = deliverer
        self.capture = capture
        self.clock = clock
        self.sensors = sensors

    def describe(self) -> list[Metric]:
        """Nothing: keeps ``register`` from running a collection."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Fresh families for one scrape."""
        yield from self._capture()
        yield from self._delivery()
        yield from self._reload()
        yield from self._sensor_rules()

    def _sensor_rules(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            "netwatch_sensor_rule_errors",
            "Sensor rule failures (isolated, counted; the rule is fed again next time), by rule.",
            labels=["rule"],
        )
        if self.sensors is not None:
            counts = {rule.id: 0 for rule in self.sensors.rules} | dict(self.sensors.errors.counts)
            for rule, n in sorted(counts.items()):
                fam.add_metric([rule], n)
        yield fam

    def _capture(self) -> Iterator[Metric]:
        counts = dict(self.capture())
        received = CounterMetricFamily(
            "netwatch_capture_received_packets",
            "Packets the capture source delivered, by interface ('file' for capture files).",
            labels=["interface"],
        )
        dropped = CounterMetricFamily(
            "netwatch_capture_dropped_packets",
            "Packets lost before netwatch saw them, by interface and stage (kernel, interface).",
            labels=["interface", "stage"],
        )
        errors = CounterMetricFamily(
            "netwatch_capture_errors",
            "Capture trouble by interface: open failures, interface down or removed.",
            labels=["interface"],
        )
        up = GaugeMetricFamily(
            "netwatch_capture_up", "1 while the interface is being captured.", labels=["interface"]
        )
        for name, c in sorted(counts.items()):
            received.add_metric([name], c.received)
            dropped.add_metric([name, "kernel"], c.dropped_kernel)
            dropped.add_metric([name, "interface"], c.dropped_interface)
            errors.add_metric([name], c.errors)
            up.add_metric([name], 1 if c.up else 0)
        yield received
        yield dropped
        yield errors
        yield up
        yield GaugeMetricFamily(
            "netwatch_pipeline_lag_seconds",
            "How far behind its capture source the pipeline was at its last batch (wall time "
            "minus packet time; 0 for capture files read as fast as possible).",
            value=self.state.lag_s,
        )
        last = GaugeMetricFamily(
            "netwatch_pipeline_last_packet_timestamp_seconds",
            "Packet time of the last packet processed (absent before the first).",
        )
        if self.state.last_packet_ts is not None:
            last.add_metric([], self.state.last_packet_ts)
        yield last

    def _delivery(self) -> Iterator[Metric]:
        d = self.deliverer()
        depth, oldest = d.outbox.depth(), d.outbox.oldest()
        now = self.clock()
        names = sorted(set(d.sinks) | set(depth))
        fams = {
            "depth": GaugeMetricFamily(
                "netwatch_outbox_depth", "Alert deliveries waiting in the outbox.", labels=["sink"]
            ),
            "age": GaugeMetricFamily(
                "netwatch_outbox_oldest_age_seconds",
                "Age of the oldest alert delivery waiting (0 when none).",
                labels=["sink"],
            ),
        }
        for name in names:
            fams["depth"].add_metric([name], depth.get(name, 0))
            age = now - oldest[name] if name in oldest and oldest[name] > 0 else 0.0
            fams["age"].add_metric([name], max(0.0, age))
        yield from fams.values()
        yield from _storage_families(d)
        yield from _sink_families(d)

    def _reload(self) -> Iterator[Metric]:
        s = self.state
        yield GaugeMetricFamily(
            "netwatch_config_last_reload_successful",
            "1 when the last config load (start or SIGHUP) succeeded, else 0.",
            value=1 if s.reload_ok else 0,
        )
        yield GaugeMetricFamily(
            "netwatch_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.",
            value=s.reload_success_ts,
        )
        reloads = CounterMetricFamily(
            "netwatch_config_reloads", "Config reloads (SIGHUP), by result.", labels=["result"]
        )
        for result, n in sorted(s.reloads.items()):
            reloads.add_metric([result], n)
        yield reloads


def _storage_families(d: Deliverer) -> Iterator[Metric]:
    h = d.health()
    yield CounterMetricFamily(
        "netwatch_outbox_storage_errors",
        "Outbox storage faults survived (SQLite or file errors: corrupt, deleted, read-only, "
        "full).",
        value=h.errors,
    )
    yield GaugeMetricFamily(
        "netwatch_outbox_storage_ok",
        "1 while the outbox file is in use and healthy, 0 while alerts are kept in memory.",
        value=1 if h.ok else 0,
    )
    yield GaugeMetricFamily(
        "netwatch_outbox_in_memory",
        "1 while new alert deliveries go to the bounded in-memory fallback outbox.",
        value=1 if h.in_memory else 0,
    )
    yield GaugeMetricFamily(
        "netwatch_outbox_rows", "Alert deliveries held by the outbox (all sinks).", value=h.rows
    )
    yield GaugeMetricFamily(
        "netwatch_outbox_bytes", "Payload bytes held by the outbox (all sinks).", value=h.bytes
    )
    yield GaugeMetricFamily(
        "netwatch_outbox_intake_depth",
        "Alert deliveries accepted from capture and not yet committed to the outbox.",
        value=h.intake,
    )
    dropped = CounterMetricFamily(
        "netwatch_outbox_dropped",
        "Alert deliveries dropped before delivery, by reason (max_rows, max_bytes: over the "
        "outbox bound; intake_full: the in-memory intake was full; invalid: not storable).",
        labels=["reason"],
    )
    for reason in sorted(set(OUTBOX_DROP_REASONS) | set(h.dropped)):
        dropped.add_metric([reason], h.dropped.get(reason, 0))
    yield dropped


def _sink_families(d: Deliverer) -> Iterator[Metric]:
    stats = dict(d.stats)
    for attr, doc in (
        ("enqueued", "Alerts queued for the sink."),
        ("delivered", "Alerts the sink accepted."),
        ("failed", "Alert delivery attempts that failed and will be retried."),
        ("dropped", "Alerts the sink rejected permanently (HTTP 4xx), not retried."),
    ):
        fam = CounterMetricFamily(f"netwatch_sink_alerts_{attr}", doc, labels=["sink"])
        for name, st in sorted(stats.items()):
            fam.add_metric([name], getattr(st, attr))
        yield fam
    last = GaugeMetricFamily(
        "netwatch_sink_last_success_timestamp_seconds",
        "When the sink last accepted a batch (absent before the first).",
        labels=["sink"],
    )
    for name, st in sorted(stats.items()):
        if st.last_success is not None:
            last.add_metric([name], st.last_success)
    yield last
