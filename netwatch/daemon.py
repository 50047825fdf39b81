"""``netwatch run``: the daemon around the pipeline.

It builds the pipeline from the config, serves Prometheus metrics on ``metrics.listen``
(127.0.0.1:9847 by default), queues every alert in the durable outbox under ``state_dir``
(persisted before any delivery attempt) and drains it into the configured sinks from a
separate thread, so capture never waits on a sink. Each alert is also logged as one line.

The capture source is ``capture.files`` (:class:`~netwatch.capture.source.FileSource`:
in order, optionally looped and paced in real time); the loop takes one batch at a time
and does its periodic work between batches, never per packet:

* feeds the systemd watchdog (``WATCHDOG=1`` every half ``WATCHDOG_USEC``) and refreshes
  ``STATUS=``; a stalled capture loop therefore gets the service restarted;
* checks flows still active every ``alerts.evaluate_active_s`` of packet time (rules and
  per-camera traffic), so a long upload is reported while it lasts;
* records the pipeline lag and applies a pending reload.

Signals: SIGHUP re-reads the config file and the seeds, builds the new sinks and GeoIP
databases, and swaps them in only if everything is valid; otherwise the error is logged,
``netwatch_config_last_reload_successful`` drops to 0 and the old config keeps running.
Flow and JSON-lines files are reopened (logrotate). Changes to ``capture``, ``metrics``,
``state_dir`` and the flow-table limits need a restart (logged). SIGTERM/SIGINT stop
reading, end every flow (flow records and alerts are written), then deliver what the
sinks accept within ``DRAIN_S`` seconds; the rest stays in the outbox for the next start.
Under systemd (``NOTIFY_SOCKET``) READY=1, RELOADING=1, STATUS=, WATCHDOG=1 and
STOPPING=1 are sent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from netwatch.alerts.model import Alert
from netwatch.alerts.router import AlertRouter
from netwatch.capture.afpacket import RingError, RingSettings, interface_present
from netwatch.capture.bpf import compile_filter
from netwatch.capture.live import LiveSource
from netwatch.capture.source import END_OF_PASS, Block, CaptureCounts, FileSource, Source
from netwatch.config import Config
from netwatch.delivery import Deliverer
from netwatch.detect.capture_loss import CaptureLossMonitor
from netwatch.enrich.geo import age_warning
from netwatch.logs import alert_fields, configure_logging, remove_logging
from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, NetwatchCollector
from netwatch.metrics.daemon import DaemonCollector, DaemonState
from netwatch.metrics.server import MetricsServer, load_web_config
from netwatch.outbox import Outbox
from netwatch.output.flowlog import JsonLinesWriter
from netwatch.pipeline import Pipeline
from netwatch.privileges import drop_privileges
from netwatch.signatures.match import SignatureMatcher
from netwatch.sinks import build_sinks
from netwatch.sinks.base import Sink
from netwatch.systemd import Notifier, Watchdog
from netwatch.workers import PoolCollector, WorkerPool

log = logging.getLogger("netwatch.daemon")
alert_log = logging.getLogger("netwatch.alert")

DRAIN_S = 10.0
PUMP_INTERVAL_S = 1.0
STATUS_INTERVAL_S = 10.0
MAX_GROUPS_REMEMBERED = 100_000  # alert identity -> camera group, as workers report them
RESTART_KEYS = ("capture", "metrics", "state_dir", "flow_log", "alert_log", "flows", "dns")


class UsageError(Exception):
    """The config asks for something this daemon cannot do (exit 2)."""


class Daemon:
    """One running sensor: pipeline, metrics, delivery (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
    ) -> None:
        if not cfg.capture.files and not cfg.capture.interfaces:
            raise UsageError("capture: nothing to read (set capture.interfaces or capture.files)")
        self.cfg = cfg
        self.config_path = config_path
        self.clock = clock
        self.notify = notifier or Notifier.from_env()
        self.watchdog = Watchdog.from_env(self.notify)
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.state = DaemonState()
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.deliverer = Deliverer(
            Outbox(cfg.state_dir / "outbox.sqlite"), self._sinks(cfg), clock=clock
        )
        self.flow_log = JsonLinesWriter(cfg.flow_log) if cfg.flow_log else None
        self.alert_log = JsonLinesWriter(cfg.alert_log) if cfg.alert_log else None
        self.alerts = AlertCounter(self._alert)
        self.traffic = CameraTraffic(None)
        self.pipeline = Pipeline(cfg, self._record, on_alert=self.alerts, state_dir=cfg.state_dir)
        self._hook_router()
        self.traffic.resolve = camera_resolver(self.pipeline)
        self.live = not cfg.capture.files
        self.loss = CaptureLossMonitor(cfg.capture.loss_threshold)
        self.registry = CollectorRegistry()
        self.pool: WorkerPool | None = None
        workers = resolve_workers(cfg.capture.workers)
        if self.live and cfg.capture.method == "afpacket" and workers > 1:
            self.pool = WorkerPool(cfg, config_path, workers, ring_settings(cfg), self._seen)
            self.pool_router = AlertRouter(self.alerts, cfg.alerts.suppress_s)
            self.pool_router.on_repeat = self._repeat
            self.source: Source | WorkerPool = self.pool
            self.registry.register(PoolCollector(self.pool, self.alerts, self.traffic))
        else:
            self.source = build_source(cfg)
            self.registry.register(
                NetwatchCollector(self.pipeline, alerts=self.alerts, traffic=self.traffic)
            )
        self.registry.register(
            DaemonCollector(self.state, lambda: self.deliverer, self._capture_counts, clock)
        )
        ProcessCollector(registry=self.registry)
        web = load_web_config(cfg.metrics.web_config) if cfg.metrics.web_config else None
        self.metrics = MetricsServer(
            self.registry, cfg.metrics.listen.port, host=cfg.metrics.listen.host, web=web
        )
        self._pump_thread = threading.Thread(target=self._pump_loop, name="delivery", daemon=True)
        self._last_status = 0.0
        self.drain_s = DRAIN_S
        self._groups: dict[tuple[str, str, str], str | None] = {}

    # ------------------------------------------------------------------ wiring

    def _sinks(self, cfg: Config) -> list[Sink]:
        sinks = build_sinks(cfg.sinks)
        for sink in sinks:
            lifecycle = getattr(sink, "lifecycle", None)
            if lifecycle is not None:
                lifecycle(cfg.alerts.resend_s, cfg.alerts.resolve_s)
        return sinks

    def _hook_router(self) -> None:
        if self.pipeline.detector is not None:
            self.pipeline.detector.router.on_repeat = self._repeat

    def _capture_counts(self) -> Mapping[str, CaptureCounts]:
        return self.source.counts()

    def _record(self, rec: dict[str, Any]) -> None:
        self.traffic.record(rec)
        if self.flow_log is not None:
            self.flow_log.write(rec)

    def _seen(self, alert: Alert, group: str | None) -> None:
        """A worker saw an alert identity (emitted or repeated there): route it once."""
        if len(self._groups) >= MAX_GROUPS_REMEMBERED:  # bounded like the router's state
            self._groups.clear()
        self._groups[alert.identity] = group
        self.pool_router.submit(alert)

    def _group_of(self, alert: Alert) -> str | None:
        if alert.identity in self._groups:
            return self._groups[alert.identity]
        detector = self.pipeline.detector
        address = alert.device_address()
        if detector is None or address is None:
            return None
        device = detector.devices.camera(*address)
        return device.group if device is not None else None

    def _alert(self, alert: Alert, count: int) -> None:
        record = alert.record(count)
        alert_log.warning("%s", alert.one_line(), extra={"fields": alert_fields(record)})
        if self.alert_log is not None:
            self.alert_log.write(record)
        self.traffic.alert(alert.device, alert.rule)
        self.deliverer.enqueue(alert, count, self._group_of(alert))

    def _repeat(self, alert: Alert) -> None:
        self.deliverer.repeat(alert, self._group_of(alert))

    def _pump_loop(self) -> None:
        while not self.stop.wait(PUMP_INTERVAL_S):
            self.deliverer.pump()

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        """Serve until the input ends (without ``capture.loop``) or a stop signal."""
        if self.pool is not None:
            return self._run_pool(self.pool)
        self.metrics.start()
        log.info(
            "metrics on http://%s:%d/metrics",
            self.cfg.metrics.listen.host,
            self.metrics.port,
            extra={"fields": {"listen": f"{self.cfg.metrics.listen.host}:{self.metrics.port}"}},
        )
        self._drop_privileges()
        self.pipeline.warm_up()
        warning = age_warning(
            self.pipeline.geo_backend.describe(),
            datetime.fromtimestamp(self.clock(), UTC).date(),
            self.cfg.geoip.max_age_days,
        )
        if warning:
            log.warning("%s", warning)
        self._pump_thread.start()
        self.notify.send("READY=1", "STATUS=capturing")
        source = self.source
        assert not isinstance(source, WorkerPool)
        try:
            for batch in source.batches(self.stop):
                if batch is END_OF_PASS:
                    if self.cfg.capture.loop:
                        # a looped pass replays the same 5-tuples: end its flows first
                        self.pipeline.end_pass()
                    continue
                if isinstance(batch, Block):
                    self.pipeline.run_block(batch)
                    self._after_batch(batch.last_ts)
                elif batch:
                    self.pipeline.run(batch)
                    self._after_batch(batch[-1][0])
                elif self.live:
                    self.pipeline.advance(self.clock())
                self._housekeeping()
        finally:
            self.shutdown()
        return 0

    def _run_pool(self, pool: WorkerPool) -> int:
        pool.start()  # fork first: no thread may run at fork time
        self.metrics.start()
        log.info("metrics on http://%s:%d/metrics", self.cfg.metrics.listen.host, self.metrics.port)
        self._drop_privileges()
        self._pump_thread.start()
        self.notify.send("READY=1", f"STATUS=capturing with {pool.n} workers")
        try:
            while not self.stop.is_set() and pool.poll(0.25):
                last = pool.last_packet_ts()
                if last is not None:
                    self.state.last_packet_ts = last
                    self.state.lag_s = max(0.0, self.clock() - last)
                self._housekeeping()
        finally:
            pool.stop()
            self.shutdown()
        return 1 if pool.failed else 0

    def _after_batch(self, last_ts: float) -> None:
        self.state.last_packet_ts = last_ts
        if self.live or self.cfg.capture.realtime:
            self.state.lag_s = max(0.0, self.clock() - last_ts)
        self.pipeline.check_active(last_ts, self.traffic.progress)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self.watchdog.ping(now)
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            if self.pool is not None:
                self.pool.signal(signal.SIGHUP)
            self.reload()
        if self.live:
            self._check_loss()
        if now - self._last_status >= STATUS_INTERVAL_S:
            self._last_status = now
            emitted = sum(self.alerts.counts.values())
            self.notify.send(f"STATUS=capturing: {self.source.packets} packets, {emitted} alerts")

    def _check_loss(self) -> None:
        detector = self.pipeline.detector
        for alert in self.loss.check(self.clock(), self.source.counts()):
            if self.pool is not None:
                self.pool_router.submit(alert)
            elif detector is not None:
                detector.router.submit(alert)
            else:
                self.alerts(alert, 1)

    def _drop_privileges(self) -> None:
        """Capture sockets, the metrics socket and the state files are open: drop root."""
        cfg = self.cfg
        writable = [cfg.state_dir]
        writable += [p.parent for p in (cfg.flow_log, cfg.alert_log) if p is not None]
        writable += [s.path.parent for s in cfg.sinks if s.type == "jsonl" and s.path]
        drop_privileges(cfg.capture.user, writable, log=log)

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
        try:
            cfg = Config.load(self.config_path)
            signatures = SignatureMatcher.load()
            sinks = self._sinks(cfg)
            self.pipeline.reconfigure(cfg, signatures)
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
        self.deliverer.replace_sinks(sinks)
        self._hook_router()
        configure_logging(cfg.logging)
        self._reopen()
        self.state.reload_ok = True
        self.state.reload_success_ts = self.clock()
        self.state.reloads["success"] += 1
        log.info("reloaded %s", self.config_path)
        return True

    def _reopen(self) -> None:
        self.deliverer.reopen()
        for writer in (self.flow_log, self.alert_log):
            if writer is not None:
                writer.reopen()

    # ------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """End every flow, deliver within ``drain_s``, keep the rest in the outbox."""
        self.notify.send("STOPPING=1")
        self.stop.set()
        self.pipeline.finish()
        for writer in (self.flow_log, self.alert_log):
            if writer is not None:
                writer.close()
        if self._pump_thread.is_alive():
            self._pump_thread.join()
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline and any(self.deliverer.outbox.depth().values()):
            if not self.deliverer.pump():
                time.sleep(0.2)
        left = sum(self.deliverer.outbox.depth().values())
        if left:
            log.warning("%d alert deliveries left in the outbox for the next start", left)
        self.deliverer.close()
        self.metrics.close()


def build_source(cfg: Config) -> Source:
    """The capture source the config asks for; raises BpfError/RingError (exit 2)."""
    c = cfg.capture
    if c.files:
        return FileSource(c.files, loop=c.loop, realtime=c.realtime, speed=c.speed)
    if c.method == "tshark":
        from netwatch.capture.tshark import TsharkSource  # noqa: PLC0415 (pyshark: only if asked)

        return TsharkSource(c.interfaces, bpf=c.bpf, snaplen=c.snaplen)
    source = LiveSource(c.interfaces, ring_settings(cfg))
    source.open()
    return source


def ring_settings(cfg: Config) -> RingSettings:
    """The ring settings of ``capture.*``; the filter is compiled here (BpfError: exit 2),
    and every interface must exist at start (RingError: exit 2)."""
    c = cfg.capture
    for name in c.interfaces:
        if not interface_present(name):
            raise RingError(0, f"{name}: no such interface")
    return RingSettings(
        snaplen=c.snaplen,
        ring_mb=c.ring_mb,
        block_kb=c.block_kb,
        promisc=c.promisc,
        bpf=compile_filter(c.bpf, snaplen=c.snaplen),
    )


def resolve_workers(asked: int) -> int:
    """``capture.workers``: 0 picks one worker per two CPUs, at least one."""
    return asked if asked > 0 else max(1, (os.cpu_count() or 1) // 2)


def run_daemon(config: Path | None) -> int:
    """The ``netwatch run`` command; raises UsageError/ConfigError for exit 2."""
    cfg = Config.load(config) if config is not None else Config.default()
    configure_logging(cfg.logging)
    try:
        return _serve(Daemon(cfg, config))
    finally:
        remove_logging()


def _serve(daemon: Daemon) -> int:

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        daemon.stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        daemon.reload_requested.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    return daemon.run()
