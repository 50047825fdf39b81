"""``netwatch run``: the sensor's one life cycle around the pipeline.

The model is uvicorn's ``Server``: :class:`Daemon` is built from a config with no side
effects, then

* :meth:`Daemon.startup` opens everything that needs root or must exist before the drop,
  in this order: capture workers are forked (before any thread), the state directory, the
  durable outbox and the flow/alert logs, the capture sockets and the metrics socket; the
  GeoIP data and every module the daemon may ever import are loaded; then privileges are
  dropped (``capture.user``) and the threads start (metrics, delivery);
* :meth:`Daemon.main_loop` runs the one capture loop (:class:`~netwatch.loop.CaptureLoop`,
  the same loop every capture worker runs) with the daemon's periodic work between
  batches: watchdog ping, ``STATUS=``, a pending reload, capture-loss checks, flushing the
  flow log once a second; pruning the evidence directory every ``EVIDENCE_PRUNE_S``;
* :meth:`Daemon.shutdown` has ONE deadline (``shutdown_timeout_s``, below systemd's
  ``TimeoutStopSec``) for everything: stop capture, end every flow (records and alerts are
  written), flush the logs, drain the sinks; what is not delivered by then stays in the
  outbox for the next start. It never raises.

Incidents end (:mod:`netwatch.alerts.router`): the router that decides what is emitted (the
pipeline's, or with capture workers the parent's) hands each end to :meth:`_ended`: one
structured log line and the deliverer's intake (each sink decides whether it takes ends;
the alert log keeps one line per notification and gets none). Quiet incidents end on the
flow-table sweep, which also runs on wall time on a quiet link (the capture loop's
``advance``); with capture workers, the parent ends them on wall time between polls, a
sighting being the time the parent hears of it. Capture files read to their end (not a
live daemon's stop, when the cameras are still at it) end every open incident.

Alerts leave the core through :meth:`_alert`: one structured log line, the alert log, and
the deliverer's in-memory intake (the outbox is written by the delivery threads, never by
the capture thread), so a storage or sink fault never slows or stops capture. An alert about
a flow carries the flow's first packets as a pcap file in ``<state_dir>/evidence`` when
``evidence.enabled`` (:mod:`netwatch.alerts.evidence`; the directory is created before the
privilege drop and handed to ``capture.user``; a failed write is counted, the alert goes out
without it). With capture workers, each worker writes the evidence of its own flows.

The camera inventory (:mod:`netwatch.inventory`) is restored from
``<state_dir>/inventory.json`` at start-up (a corrupt file is logged and set aside), fed
every flow record, notification and incident end, and written back (atomically) every
``SAVE_INTERVAL_S`` and at shutdown; ``netwatch cameras`` reads it. With capture workers
the parent sees no flow records: the inventory then holds what the alerts say.

Signals (installed by :func:`run_daemon` before the config is even read, so a SIGTERM
during start-up is a clean exit 0): SIGTERM/SIGINT stop; SIGHUP re-reads the config file
and the seeds, builds the new sinks and GeoIP databases, and swaps them in only if all of
it is valid (else the error is logged, ``netwatch_config_last_reload_successful`` drops to
0 and the old config keeps running). Flow and JSON-lines files are reopened (logrotate).
Changes to ``capture``, ``metrics``, ``state_dir``, ``evidence`` and the flow-table limits
need a restart (logged). Under systemd (``NOTIFY_SOCKET``) READY=1, RELOADING=1, STATUS=,
WATCHDOG=1 and STOPPING=1 are sent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from netwatch.alerts.evidence import DIR_MODE, EVIDENCE_DIR, EvidenceStore
from netwatch.alerts.grouping import DeviceGroups, report_rules
from netwatch.alerts.model import Alert, IncidentEnd
from netwatch.alerts.router import AlertRouter
from netwatch.capture.registry import build_source
from netwatch.capture.source import CaptureCounts, FileSource, Source
from netwatch.config import Config
from netwatch.delivery import Deliverer
from netwatch.detect.baseline import BASELINE_FILE, Baseline
from netwatch.detect.baseline_share import BaselineOwner
from netwatch.inventory import (
    INVENTORY_FILE,
    SAVE_INTERVAL_S,
    CameraInventory,
    geoip_json,
    platform_matcher,
    restored,
    save,
)
from netwatch.logs import alert_fields, configure_logging, remove_logging
from netwatch.loop import CaptureLoop
from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, InventoryCollector, NetwatchCollector
from netwatch.metrics.daemon import DaemonCollector, DaemonState
from netwatch.metrics.labels import labelled_registry, site_labels
from netwatch.metrics.server import MetricsServer
from netwatch.output.flowlog import JsonLinesWriter
from netwatch.pipeline import Pipeline
from netwatch.preflight import preflight
from netwatch.preload import preload
from netwatch.privileges import Owned, drop_privileges
from netwatch.replay import ReplaySummary
from netwatch.rules import sensor_rules
from netwatch.systemd import Notifier, Watchdog
from netwatch.workers import PoolCollector, WorkerPool

log = logging.getLogger("netwatch.daemon")
alert_log = logging.getLogger("netwatch.alert")

STATUS_INTERVAL_S = 10.0
FLUSH_INTERVAL_S = 1.0
#: How often a live sensor reads its capture counters for ``capture_loss`` (its window is a
#: minute; reading them on every block cost about 4 % of a busy worker)
LOSS_CHECK_S = 1.0
EVIDENCE_PRUNE_S = 600.0  # age bound checked this often even when no alert writes a file
POOL_POLL_S = 0.25
MAX_GROUPS_REMEMBERED = 100_000  # alert identity -> camera group, as workers report them
RESTART_KEYS = (
    "capture",
    "metrics",
    "state_dir",
    "flow_log",
    "alert_log",
    "flows",
    "dns",
    "evidence",
)


class Daemon:
    """One running sensor: build, :meth:`startup`, :meth:`main_loop`, :meth:`shutdown`."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.clock = clock
        self.notify = notifier or Notifier.from_env()
        self.watchdog = Watchdog.from_env(self.notify)
        self.stop = stop if stop is not None else threading.Event()
        self.reload_requested = threading.Event()
        self.state = DaemonState()
        self.live = not cfg.capture.files
        self.workers = resolve_workers(cfg.capture.workers)
        self.shutdown_s = cfg.shutdown_timeout_s
        self.alerts = AlertCounter(self._alert)
        self.traffic = CameraTraffic(None)
        self.sensors = sensor_rules(cfg)  # rules fed by the sensor itself (capture_loss)
        self.registry = CollectorRegistry()
        # opened by startup(); None until then (and shutdown() copes with any of them absent)
        self.deliverer: Deliverer | None = None
        self.flow_log: JsonLinesWriter | None = None
        self.alert_log: JsonLinesWriter | None = None
        self.pipeline: Pipeline | None = None
        self.baseline: Baseline | None = None
        self.owner: BaselineOwner | None = None
        self.pool: WorkerPool | None = None
        self.pool_router: AlertRouter | None = None
        #: The workers' alerts, one notification per camera per interval (pool only).
        self.pool_groups: DeviceGroups | None = None
        self.source: Source | WorkerPool | None = None
        self.metrics: MetricsServer | None = None
        self.loop: CaptureLoop | None = None
        self._loop_started = 0.0  # perf_counter() when main_loop began (0: not yet)
        self.evidence: EvidenceStore | None = None
        #: The camera inventory, kept in ``<state_dir>/inventory.json`` (netwatch.inventory).
        self.inventory: CameraInventory | None = None
        self._last_inventory = 0.0
        self._last_status = 0.0
        self._last_flush = 0.0
        self._last_prune = 0.0
        self._last_loss_check = 0.0
        self._groups: dict[tuple[str, str, str], str | None] = {}
        self._shut = False
        self._ready = False  # startup() completed
        self.owned = Owned()  # what startup() creates (and hands to capture.user)
        self.signals: Signals | None = None  # set by run_daemon: which signal stopped us

    # ------------------------------------------------------------------ start-up

    def startup(self) -> None:
        """Open everything, drop privileges, start the threads (see the module docstring).

        Raises UsageError, RingError, BpfError, SinkError, PrivilegeError... (exit 2) or
        OSError; whatever was opened is released by :meth:`shutdown`."""
        cfg = self.cfg
        # every module the daemon and its workers may import, before the fork and the drop
        preload(optional=cfg.capture.method == "tshark")
        plan = preflight(cfg)  # every check check-config makes; loads GeoIP and the seeds
        for warning in plan.warnings:
            log.warning("%s", warning)
        if plan.geo_info is not None and plan.geo_info.origin:  # the built-in data's
            log.info("GeoIP data %s: %s", plan.geo_info.name, plan.geo_info.origin)
        self._create_files()  # state_dir and the logs: before the baseline and any fork
        self.inventory = restored(cfg.state_dir / INVENTORY_FILE, platform_matcher(plan.signatures))
        # the baseline is loaded (no thread, no open connection) before any fork; its
        # writer thread starts at the first change, in this process only
        self.baseline = Baseline.of(cfg.learning, cfg.state_dir / BASELINE_FILE)
        if self.live and plan.ring is not None and self.workers > 1:
            # fork first: no thread may run at fork time
            self.owner = BaselineOwner(self.baseline, share_keys=True)
            self.pool = WorkerPool(
                cfg, self.config_path, self.workers, plan.ring, self._seen, self.owner
            )
            self.pool.start()
        self.deliverer = Deliverer.from_config(
            cfg.state_dir, list(plan.sinks), cfg.alerts, clock=self.clock
        )
        for path in self.deliverer.open():  # creates the outbox before the drop
            self.owned.adopt(path)
        if self.pool is None:  # with workers, each worker appends to the flow log itself
            self.flow_log = JsonLinesWriter(cfg.flow_log) if cfg.flow_log else None
        if cfg.alert_log:  # whole lines on disk at once: a kill -9 loses none
            self.alert_log = JsonLinesWriter(cfg.alert_log, line_buffered=True)
        if cfg.evidence.enabled and self.pool is None:  # each worker has its own store
            self.evidence = EvidenceStore.of(cfg.evidence, cfg.state_dir)
            self.evidence.open()
        self.pipeline = Pipeline(
            cfg,
            self._record,
            on_alert=self.alerts,
            baseline=self.baseline,
            geo=plan.geo,
            signatures=plan.signatures,
            evidence=self.evidence,
        )
        self._hook_router()
        if self.inventory is not None:  # an inbound peer's AS (not in the flow record)
            self.inventory.geo_of = self.pipeline.enrichers.geo.lookup
        if self.pipeline.detector is not None and self.pool is None:  # ids across restarts
            self.pipeline.detector.devices.restore_ids(self.inventory.ids())
        self.traffic.resolve = camera_resolver(self.pipeline)
        if self.pool is not None:
            self.pool_groups = DeviceGroups.of(self.alerts, cfg.alerts)
            self.pool_router = AlertRouter.of(self.pool_groups.add, cfg.alerts)
            self.pool_groups.clock = self.pool_router.latest
            self.pool_router.on_repeat = self._repeat
            self.pool_router.on_end = self._ended
            self.source = self.pool
            self.registry.register(
                PoolCollector(
                    self.pool, self.alerts, self.traffic, self.pool_router, self.pool_groups
                )
            )
        else:
            self.source = build_source(cfg)
            self.source.open()  # the capture sockets, as root
            self.registry.register(
                NetwatchCollector(self.pipeline, alerts=self.alerts, traffic=self.traffic)
            )
        self.registry.register(InventoryCollector(self.inventory))
        self.registry.register(
            DaemonCollector(
                self.state, self._deliverer, self._capture_counts, self.clock, self.sensors
            )
        )
        ProcessCollector(registry=self.registry)
        self.metrics = MetricsServer(
            labelled_registry(self.registry, site_labels(cfg)),
            cfg.metrics.listen.port,
            host=cfg.metrics.listen.host,
            web=plan.web,
        )
        self.metrics.bind()  # as root (a privileged port works); scrapes wait in the backlog
        self.pipeline.warm_up()  # the GeoIP data set and the IEEE index, before the drop
        self._drop_privileges()
        self.metrics.serve()  # after the loading, so no scrape is starved by it
        listen = f"{cfg.metrics.listen.host}:{self.metrics.port}"
        log.info("metrics on http://%s/metrics", listen, extra={"fields": {"listen": listen}})
        self.deliverer.start()
        status = f"capturing with {self.pool.n} workers" if self.pool else "capturing"
        self.notify.send("READY=1", f"STATUS={status}")
        self._ready = True

    def _create_files(self) -> None:
        """Create what netwatch owns through ``self.owned``: only that is handed to
        ``capture.user`` by the drop (never the config's directory or other files in it).
        """
        cfg = self.cfg
        self.owned.directory(cfg.state_dir)
        # the baseline is loaded as root: an empty file is opened as a new database
        self.owned.file(cfg.state_dir / BASELINE_FILE, 0o600)
        if cfg.evidence.enabled:
            self.owned.directory(cfg.state_dir / EVIDENCE_DIR, DIR_MODE)
        for path in (cfg.flow_log, cfg.alert_log):
            if path is not None:
                self.owned.file(path)
        for sink in cfg.sinks:
            if sink.type == "jsonl" and sink.path is not None:
                self.owned.file(sink.path)

    def _drop_privileges(self) -> None:
        """Capture sockets, the metrics socket and the state files are open: drop root."""
        writable = [self.cfg.state_dir]
        if self.cfg.evidence.enabled:
            writable.append(self.cfg.state_dir / EVIDENCE_DIR)
        drop_privileges(self.cfg.capture.user, self.owned, writable_dirs=writable, log=log)

    # ------------------------------------------------------------------ wiring

    def _deliverer(self) -> Deliverer:
        assert self.deliverer is not None
        return self.deliverer

    def _hook_router(self) -> None:
        if self.pipeline is not None and self.pipeline.detector is not None:
            self.pipeline.detector.router.on_repeat = self._repeat
            self.pipeline.detector.router.on_end = self._ended

    def _capture_counts(self) -> Mapping[str, CaptureCounts]:
        return self.source.counts() if self.source is not None else {}

    def _record(self, rec: dict[str, Any]) -> None:
        self.traffic.record(rec)
        if self.inventory is not None:
            self.inventory.record(rec)
        if self.flow_log is not None:
            self.flow_log.write(rec)

    def _seen(self, alert: Alert, group: str | None) -> None:
        """A worker saw an alert identity (emitted or repeated there): route it once."""
        if len(self._groups) >= MAX_GROUPS_REMEMBERED:  # bounded like the router's state
            self._groups.clear()
        self._groups[alert.identity] = group
        if self.pool_router is not None:
            self.pool_router.seen_at = self.clock()  # the worker saw it just now
            try:
                self.pool_router.submit(alert)
            finally:
                self.pool_router.seen_at = None

    def _group_of(self, alert: Alert) -> str | None:
        if alert.identity in self._groups:
            return self._groups[alert.identity]
        detector = self.pipeline.detector if self.pipeline is not None else None
        address = alert.device_address()
        if detector is None or address is None:
            return None
        device = detector.devices.camera(*address)
        return device.group if device is not None else None

    def _alert(self, alert: Alert, count: int) -> None:
        alert = alert.at_site(self.cfg.site.name)
        record = alert.record(count)
        alert_log.warning("%s", alert.one_line(), extra={"fields": alert_fields(record)})
        if self.alert_log is not None:
            self.alert_log.write(record)
        for rule, _ in report_rules(alert):
            self.traffic.alert(alert.device, rule)
        if self.inventory is not None:
            self.inventory.alert(alert, count)
        if self.deliverer is not None:
            self.deliverer.enqueue(alert, count, self._group_of(alert))

    def _ended(self, end: IncidentEnd) -> None:
        """An incident ended: one log line, and the sinks that take ends."""
        end = end.at_site(self.cfg.site.name)
        if self.inventory is not None:
            self.inventory.ended(end)
        record = end.record()
        span = {k: record[k] for k in ("status", "first_seen", "last_seen", "sightings")}
        fields = {**alert_fields(record), **span}
        alert_log.warning("%s", end.one_line(), extra={"fields": fields})
        if self.deliverer is not None:
            self.deliverer.enqueue_ended(end, self._group_of(end.alert))

    def _repeat(self, alert: Alert) -> None:
        if self.deliverer is not None:
            self.deliverer.repeat(alert.at_site(self.cfg.site.name), self._group_of(alert))

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        """startup, main_loop, shutdown: serve until the input ends or a stop signal. Over
        capture files read once (no ``capture.loop``), print ``netwatch replay``'s summary
        to stdout at the end."""
        try:
            self.startup()
            return self.main_loop()
        finally:
            self.shutdown()
            self._print_summary()

    def _print_summary(self) -> None:
        source = self.source
        if not isinstance(source, FileSource) or source.loop or self.pipeline is None:
            return
        elapsed_s = time.perf_counter() - self._loop_started if self._loop_started else 0.0
        summary = ReplaySummary(files=len(source.paths), elapsed_s=elapsed_s)
        summary.take(self.pipeline, source.problems, self.evidence)
        try:
            sys.stdout.write("".join(line + "\n" for line in summary.lines()))
            sys.stdout.flush()
        except OSError:  # a closed stdout must not turn a clean stop into a failure
            pass

    def main_loop(self) -> int:
        """Capture until the input ends (without ``capture.loop``) or a stop signal."""
        if self.stop.is_set():
            return 0
        self._loop_started = time.perf_counter()
        if self.pool is not None:
            return self._pool_loop(self.pool)
        assert self.pipeline is not None and self.source is not None
        assert not isinstance(self.source, WorkerPool)
        self.loop = CaptureLoop(
            self.pipeline,
            self.source,
            self.stop,
            tick=self._tick,
            live=self.live,
            loop_files=self.cfg.capture.loop,
            clock=self.clock,
            on_progress=self.traffic.progress,
        )
        self.loop.run()
        return 0

    def _pool_loop(self, pool: WorkerPool) -> int:
        while not self.stop.is_set() and pool.poll(POOL_POLL_S):
            pool.share_baseline()
            self._tick(pool.last_packet_ts())
        return 1 if pool.failed else 0

    def _tick(self, last_ts: float | None) -> None:
        """The daemon's periodic work between two batches."""
        if last_ts is not None:
            self.state.last_packet_ts = last_ts
            if self.live or self.cfg.capture.realtime:
                self.state.lag_s = max(0.0, self.clock() - last_ts)
        now = time.monotonic()
        self.watchdog.ping(now)
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            if self.pool is not None:
                self.pool.signal(signal.SIGHUP)
            self.reload()
        if self.live and now - self._last_loss_check >= LOSS_CHECK_S:
            self._last_loss_check = now
            self._check_loss()
        if self.pool_router is not None:  # the workers' incidents end here, on wall time
            if self.pool_groups is not None:  # notifications due go out first
                self.pool_groups.tick(self.clock())
            self.pool_router.expire(self.clock())
        if now - self._last_flush >= FLUSH_INTERVAL_S:
            self._last_flush = now
            if self.flow_log is not None:
                self.flow_log.flush()
        if self.evidence is not None and now - self._last_prune >= EVIDENCE_PRUNE_S:
            self._last_prune = now
            self.evidence.prune()
        if now - self._last_inventory >= SAVE_INTERVAL_S:
            self._last_inventory = now
            self._save_inventory()
        if now - self._last_status >= STATUS_INTERVAL_S:
            self._last_status = now
            emitted = sum(self.alerts.counts.values())
            packets = self.source.packets if self.source is not None else 0
            self.notify.send(f"STATUS=capturing: {packets} packets, {emitted} alerts")

    def _check_loss(self) -> None:
        for alert in self.sensors.on_capture(self.clock(), self._capture_counts()):
            self._submit(alert)

    def _submit(self, alert: Alert) -> None:
        """A sensor alert (not from a flow) into the router that de-duplicates it."""
        detector = self.pipeline.detector if self.pipeline is not None else None
        if self.pool_router is not None:
            self.pool_router.submit(alert)
        elif detector is not None:
            detector.router.submit(alert)
        else:
            self.alerts(alert, 1)

    # ------------------------------------------------------------------ reload

    def reload(self) -> bool:
        """Re-read config and seeds; swap them in only when all of it is valid."""
        self.notify.send("RELOADING=1")
        try:
            ok = self._reload()
        finally:
            self.notify.send("READY=1")
        return ok

    def _reload(self) -> bool:
        if self.config_path is None:
            log.info("reload: no config file (built-in defaults); reopening files only")
            self._reopen()
            return True
        assert self.pipeline is not None and self.deliverer is not None
        try:
            cfg = Config.load(self.config_path)
            plan = preflight(cfg, reload=True)
            self.pipeline.reconfigure(cfg, plan.signatures)
        except Exception as exc:  # any invalid piece: keep running the old config
            self.state.reload_ok = False
            self.state.reloads["failure"] += 1
            log.error("reload failed, keeping the running config: %s", exc)
            self._reopen()
            return False
        for key in RESTART_KEYS:
            if getattr(cfg, key) != getattr(self.cfg, key):
                log.warning("reload: %s changed; it takes effect at the next restart", key)
        self.cfg = dataclasses.replace(cfg, **{k: getattr(self.cfg, k) for k in RESTART_KEYS})
        self.deliverer.replace_sinks(list(plan.sinks))
        if self.pool_router is not None:
            self.pool_router.configure(cfg.alerts)
        if self.pool_groups is not None:
            self.pool_groups.configure(cfg.alerts)
        self._hook_router()
        configure_logging(cfg.logging)
        self._reopen()
        self.state.reload_ok = True
        self.state.reload_success_ts = self.clock()
        self.state.reloads["success"] += 1
        log.info("reloaded %s", self.config_path)
        return True

    def _reopen(self) -> None:
        if self.deliverer is not None:
            self.deliverer.reopen()
        for writer in (self.flow_log, self.alert_log):
            if writer is not None:
                writer.reopen()

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, deadline: float | None = None) -> None:
        """Stop within one deadline (monotonic; default ``shutdown_timeout_s`` from now):
        end every flow, flush the logs, deliver what the sinks accept in the time left;
        the rest stays in the outbox. Idempotent; never raises."""
        if self._shut:
            return
        self._shut = True
        if deadline is None:
            deadline = time.monotonic() + self.shutdown_s
        self.notify.send("STOPPING=1")
        got = self.signals.received if self.signals is not None else None
        if got is not None:
            why = f"signal {signal.Signals(got).name}"
        else:
            why = "end of input" if self._ready else "start-up failed"
        log.info("stopping (%s)", why, extra={"fields": {"reason": why}})
        self.stop.set()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("workers", lambda: self._stop_pool(deadline)),
            ("capture", self._close_source),
            ("flows", self._end_flows),
            ("logs", self._close_logs),
            ("inventory", self._save_inventory),
            # metrics stop before the outbox they read closes: no scrape gets a 500
            ("metrics", self._close_metrics),
            ("delivery", lambda: self._drain(deadline)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # one failing step must not lose the others' work
                log.error(
                    "shutdown: %s failed: %s: %s",
                    what,
                    type(exc).__name__,
                    exc,
                    extra={"fields": {"step": what}},
                )
        left = deadline - time.monotonic()
        log.info("stopped (%.1f s of the shutdown deadline left)", max(0.0, left))

    def _stop_pool(self, deadline: float) -> None:
        if self.pool is not None:
            # the workers end their flows; keep a third of the time for delivery
            self.pool.stop(max(0.5, (deadline - time.monotonic()) * 2 / 3))
        if self.pool_groups is not None:  # the workers' last alerts are in: send them
            self.pool_groups.flush_all()
        if self.owner is not None:  # the workers' last observations are in: store them
            self.owner.close(max(0.1, (deadline - time.monotonic()) / 3))

    def _close_source(self) -> None:
        if self.source is not None and not isinstance(self.source, WorkerPool):
            self.source.close()

    def _end_flows(self) -> None:
        if self.pipeline is not None and self.pool is None:
            # files read to their end close their incidents; a live sensor's stay open
            self.pipeline.finish(end_incidents=not self.live)

    def _save_inventory(self) -> None:
        """Write the camera inventory (what the detector knows of each camera first); a
        failed write is logged, the next one tries again."""
        if self.inventory is None:
            return
        detector = self.pipeline.detector if self.pipeline is not None else None
        if self.pipeline is not None and detector is not None:
            vendors = self.pipeline.enrichers.vendors
            self.inventory.describe(detector.devices.cameras(), vendors.vendor)
        if self.pipeline is not None:  # the data in use now (a reload may have changed it)
            self.inventory.geoip = geoip_json(self.pipeline.enrichers.geo.backend.describe())
        source = {"state_dir": str(self.cfg.state_dir)}
        doc = self.inventory.as_json(source, site=self.cfg.site.name)
        try:
            save(doc, self.cfg.state_dir / INVENTORY_FILE)
        except OSError as exc:
            log.error("inventory not written: %s", exc, extra={"fields": {"error": str(exc)}})

    def _close_logs(self) -> None:
        for writer in (self.flow_log, self.alert_log):
            if writer is not None:
                writer.close()

    def _drain(self, deadline: float) -> None:
        if self.deliverer is not None:
            self.deliverer.shutdown(deadline)  # what is left stays in the outbox (logged)

    def _close_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()


def resolve_workers(asked: int) -> int:
    """``capture.workers``: 0 picks one worker per two CPUs, at least one."""
    return asked if asked > 0 else max(1, (os.cpu_count() or 1) // 2)


@dataclass(slots=True)
class Signals:
    """What the signal handlers set: ``stop`` (SIGTERM/SIGINT), ``reload`` (SIGHUP) and the
    last stop signal received (logged by the daemon, not in the handler)."""

    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)
    received: int | None = None


def install_signal_handlers() -> Signals:
    """SIGTERM/SIGINT set ``stop``, SIGHUP sets ``reload``: installed before anything else,
    so a signal during start-up (config, GeoIP loading) ends in a clean exit 0."""
    signals = Signals()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        signals.received = signum
        signals.stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        signals.reload.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    return signals


def run_daemon(config: Path | None) -> int:
    """The ``netwatch run`` command; raises UsageError/ConfigError for exit 2."""
    signals = install_signal_handlers()
    cfg = Config.load(config) if config is not None else Config.default()
    configure_logging(cfg.logging)
    try:
        daemon = Daemon(cfg, config, stop=signals.stop)
        daemon.reload_requested = signals.reload
        daemon.signals = signals
        return daemon.run()
    finally:
        remove_logging()
