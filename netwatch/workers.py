"""Several capture workers on the same interfaces: PACKET_FANOUT by flow hash, one process each.

With ``capture.workers`` > 1 the daemon forks that many worker processes before it starts
any thread. Each worker opens its own TPACKET_V3 ring on every interface and joins one
``PACKET_FANOUT`` group per interface (hash of the flow, symmetric, fragments reassembled
first), so the kernel hands each flow, both directions, to exactly one worker; each worker
has its own pipeline and flow table, drops privileges once its rings are open, and writes
flow records to the shared flow log in whole lines (one ``write`` per batch of lines on an
``O_APPEND`` file, which Linux keeps atomic against the other workers).

Workers run the daemon's own capture loop (:class:`~netwatch.loop.CaptureLoop`) and report
to the parent over a pipe, in named messages (:class:`Seen`, :class:`Report`,
:class:`LearntName`, :class:`LearntDevice`, :class:`LearntResolver`): every alert sighting
(emitted or a suppressed repeat, with the camera's group) and, every ``REPORT_S``, their
metric families, capture counters and the cameras they recognised since the last report.
The parent owns everything seen from outside: one outbox and its sinks, one metrics
endpoint (worker families summed by series; ``netwatch_cameras`` recounted from the union
of cameras; ``netwatch_cameras_recognised`` counted from the union of the workers'
recognised cameras, each once, the strongest ``how`` winning:
:func:`netwatch.detect.recognised.union_by_how`), and a second alert router that
de-duplicates identities seen by more than one worker (a camera's flows to one peer can
hash to different workers). SIGHUP and SIGTERM are passed on to the workers (on SIGHUP
each reopens its flow log, as the daemon does, for logrotate, then re-reads the config); a
worker that dies makes the daemon exit with status 1 so systemd restarts it.

Config read: ``capture.workers`` and everything a single pipeline reads. Known limits: DNS
names, devices (DHCP-offered resolvers among them) and the resolvers other devices use
(``rogue_dns``) learnt on one worker reach the others through the parent (a relay that
never blocks: a worker whose pipe is full misses an update, counted in ``relay_dropped``;
a relayed fact is applied without being sent again, so nothing loops), so they are
eventually consistent: a camera's DNS flow that ends on one worker before what another
learnt has arrived is judged on what that worker knows; flows look their responder's name
up again when they are reported. The parent keeps each worker's recognised cameras (at
most ``DEFAULT_MAX_CAMERAS`` a worker, more counted in ``recognised_dropped``). The
``new_destination`` baseline is owned by the parent alone (one SQLite file, one writer):
workers send it :class:`BaselineObservation` messages for destinations they do not know
yet, the parent decides and routes each new destination once, and relays the keys it
decided (:class:`BaselineKnown`) so the workers' caches converge; no worker opens the file
or waits on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netwatch.alerts.evidence import EvidenceStore
from netwatch.alerts.grouping import DeviceGroups
from netwatch.alerts.model import Alert
from netwatch.alerts.router import AlertRouter
from netwatch.capture.afpacket import Ring, RingSettings
from netwatch.capture.live import LiveSource
from netwatch.capture.source import CaptureCounts
from netwatch.config import Config
from netwatch.detect.baseline_share import (
    BaselineKnown,
    BaselineObservation,
    BaselineOwner,
    PipeSend,
    WorkerBaseline,
)
from netwatch.detect.recognised import DEFAULT_MAX_CAMERAS, union_by_how
from netwatch.loop import CaptureLoop
from netwatch.metrics.cameras import CameraTraffic, camera_resolver, counter_family
from netwatch.metrics.collector import (
    AlertCounter,
    NetwatchCollector,
    baseline_families,
    notification_families,
    recognised_family,
    router_families,
)
from netwatch.output.flowlog import JsonLinesWriter
from netwatch.pipeline import Pipeline
from netwatch.privileges import Owned, drop_privileges

log = logging.getLogger(__name__)

REPORT_S = 1.0
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Seen:
    """Worker -> parent: an alert identity was emitted or repeated there."""

    alert: Alert
    group: str | None


@dataclass(frozen=True, slots=True)
class Report:
    """Worker -> parent, every ``REPORT_S``: metric families, capture counters, and the
    cameras recognised (camera key -> how) that are new or changed since the last report."""

    families: list[Metric]
    counts: dict[str, CaptureCounts]
    last_ts: float | None
    recognised: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LearntName:
    """A DNS name one worker learnt (relayed by the parent to the others)."""

    client: bytes | None
    addr: bytes
    name: str
    expiry: float


@dataclass(frozen=True, slots=True)
class LearntDevice:
    """A device one worker identified (relayed by the parent to the others)."""

    kind: str
    key: bytes
    vendor: str | None
    how: str
    details: Any


@dataclass(frozen=True, slots=True)
class LearntResolver:
    """A site device (not a camera) one worker saw use a resolver, for ``rogue_dns``
    (relayed by the parent to the others)."""

    resolver: bytes
    client: bytes


Shared = LearntName | LearntDevice | LearntResolver | BaselineKnown
Message = Seen | Report | Shared | BaselineObservation
PARENT_FAMILIES = frozenset(
    {
        "netwatch_alerts",
        "netwatch_camera_alerts",
        "netwatch_cameras",
        "netwatch_cameras_recognised",  # counted from the union of the workers' cameras
        "netwatch_alerts_device_capped",  # the parent's router decides what is emitted
        "netwatch_alert_router_evicted",
        "netwatch_incidents_ended",  # the parent's router ends incidents
        "netwatch_baseline_destinations",  # the workers only forward observations
        "netwatch_baseline_verdicts",
        "netwatch_baseline_store_events",
    }
)
MAX_FAMILIES = frozenset({"netwatch_scrape_duration_seconds", "netwatch_build_info"})
MAX_FAMILIES |= {"netwatch_geoip_database_build_timestamp_seconds"}
# every worker counts the one shared evidence directory: the largest count, not the sum
MAX_FAMILIES |= {"netwatch_evidence_bytes"}


@dataclass
class _Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    conn: Connection  # worker -> parent
    ctrl: Connection  # parent -> worker: what the other workers learnt
    families: list[Metric] = field(default_factory=list)
    counts: dict[str, CaptureCounts] = field(default_factory=dict)
    last_ts: float | None = None
    done: bool = False
    recognised: dict[str, str] = field(default_factory=dict)  # camera key -> how


class WorkerPool:
    """The parent's side: forks the workers and merges what they report."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None,
        n: int,
        settings: RingSettings,
        on_seen: Callable[[Alert, str | None], None],
        baseline: BaselineOwner | None = None,
    ) -> None:
        self.cfg = cfg
        self.baseline = baseline
        self.config_path = config_path
        self.n = n
        self.settings = settings
        self.on_seen = on_seen
        self.workers: list[_Worker] = []
        self.failed = False
        self.relay_dropped = 0
        self.recognised_dropped = 0  # cameras a worker reported beyond DEFAULT_MAX_CAMERAS

    def start(self) -> None:
        """Fork the workers (call before starting any thread)."""
        ctx = multiprocessing.get_context("fork")
        base = (os.getpid() * 16) & 0xFFFF
        for i in range(self.n):
            parent_end, child_end = ctx.Pipe(duplex=False)
            ctrl_in, ctrl_out = ctx.Pipe(duplex=False)
            args = (i, self.cfg, self.config_path, self.settings, base, child_end, ctrl_in)
            proc = ctx.Process(target=_worker_main, args=args, name=f"netwatch-worker-{i}")
            proc.start()
            child_end.close()
            ctrl_in.close()
            self.workers.append(_Worker(i, proc, parent_end, ctrl_out))
        log.info("%d capture workers started (PACKET_FANOUT by flow hash)", self.n)

    def poll(self, timeout_s: float) -> bool:
        """Handle what the workers sent within ``timeout_s``; False once all are done."""
        live = {w.conn: w for w in self.workers if not w.done}
        if not live:
            return False
        for ready in multiprocessing.connection.wait(list(live), timeout_s):
            worker = next(w for c, w in live.items() if c is ready)
            conn = worker.conn
            try:
                while conn.poll():
                    self._handle(worker, conn.recv())
            except (EOFError, OSError):
                worker.done = True
                worker.process.join(5)
                if worker.process.exitcode not in (0, None):
                    self.failed = True
                    log.error("worker %d died (exit %s)", worker.index, worker.process.exitcode)
        return any(not w.done for w in self.workers)

    def _handle(self, worker: _Worker, msg: Message) -> None:
        match msg:
            case Seen(alert, group):
                self.on_seen(alert, group)
            case Report(families, counts, last_ts, recognised):
                worker.families, worker.counts, worker.last_ts = families, counts, last_ts
                self._recognised(worker, recognised)
            case BaselineObservation() if self.baseline is not None:
                new = self.baseline.receive(msg)
                if new is not None:
                    self.on_seen(new, msg.group)
            case LearntName() | LearntDevice() | LearntResolver():
                self._relay(worker, msg)

    def _recognised(self, worker: _Worker, changes: dict[str, str]) -> None:
        """Apply what a worker recognised since its last report, bounded per worker."""
        kept = worker.recognised
        for key, how in changes.items():
            if key in kept or len(kept) < DEFAULT_MAX_CAMERAS:
                kept[key] = how
            else:
                self.recognised_dropped += 1

    def share_baseline(self) -> None:
        """Relay the destinations the baseline decided since the last call to every worker
        (their caches converge, so known destinations stop being sent), never blocking."""
        known = self.baseline.known() if self.baseline is not None else None
        if known is not None:
            self._relay(None, known)

    def _relay(self, origin: _Worker | None, msg: Shared) -> None:
        """Pass a learnt name, device or baseline keys to the other workers, never blocking:
        a worker whose pipe is full misses it (counted in ``relay_dropped``)."""
        for w in self.workers:
            if w is origin or w.done:
                continue
            if _writable(w.ctrl):
                try:
                    w.ctrl.send(msg)
                    continue
                except OSError:
                    pass
            self.relay_dropped += 1

    def signal(self, signum: int) -> None:
        for w in self.workers:
            if not w.done and w.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.process.pid, signum)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask every worker to end its flows and exit within ``timeout_s``; collect what
        they still send; a worker still running then is killed (its flows are lost, the
        alerts it already reported are not)."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.poll(min(POLL_S, timeout_s)):
            pass
        for w in self.workers:
            w.process.join(max(0.0, min(1.0, deadline - time.monotonic())))
            if w.process.is_alive():
                log.error("worker %d did not stop within the shutdown deadline: killed", w.index)
                w.process.kill()
                w.process.join(1)

    def counts(self) -> dict[str, CaptureCounts]:
        """Capture counters per interface, summed over workers."""
        out: dict[str, CaptureCounts] = {}
        for w in self.workers:
            for name, c in w.counts.items():
                t = out.setdefault(name, CaptureCounts(up=True))
                t.received += c.received
                t.dropped_kernel += c.dropped_kernel
                t.dropped_interface = max(t.dropped_interface, c.dropped_interface)
                t.errors += c.errors
                t.up = t.up and c.up
        return out

    @property
    def packets(self) -> int:
        return sum(c.received for c in self.counts().values())

    def last_packet_ts(self) -> float | None:
        stamps = [w.last_ts for w in self.workers if w.last_ts is not None]
        return max(stamps) if stamps else None

    def families(self) -> Iterator[Metric]:
        """The workers' families merged: series summed (a few maxed), cameras recounted
        (``netwatch_cameras_recognised`` from the union of the workers' cameras)."""
        merged: dict[str, Metric] = {}
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for w in self.workers:
            for fam in w.families:
                if fam.name in PARENT_FAMILIES:
                    continue
                if fam.name not in merged:
                    merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                for s in fam.samples:
                    key = (fam.name, s.name, tuple(sorted(s.labels.items())))
                    if fam.name in MAX_FAMILIES:
                        values[key] = max(values.get(key, s.value), s.value)
                    else:
                        values[key] = values.get(key, 0.0) + s.value
        for (name, sample, labels), value in values.items():
            merged[name].add_sample(sample, dict(labels), value)
        yield from merged.values()
        # copies: the scrape thread reads what the polling thread updates
        yield recognised_family(union_by_how(dict(w.recognised) for w in self.workers))
        yield _cameras(merged.get("netwatch_camera_sent_bytes"))


def _writable(conn: Connection) -> bool:
    """True when a small message can be written without blocking (PIPE_BUF free)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLOUT)
    return bool(poller.poll(0))


def _cameras(fam: Metric | None) -> GaugeMetricFamily:
    out = GaugeMetricFamily(
        "netwatch_cameras", "Cameras seen in traffic, by group.", labels=["group"]
    )
    per: dict[str, set[str]] = {}
    for s in fam.samples if fam is not None else ():
        per.setdefault(s.labels["group"], set()).add(s.labels["camera"])
    for group, cams in sorted(per.items()):
        out.add_metric([group], len(cams))
    return out


# ---------------------------------------------------------------------- the worker side


def _worker_main(
    index: int,
    cfg: Config,
    config_path: Path | None,
    settings: RingSettings,
    group_base: int,
    conn: Connection,
    ctrl: Connection,
) -> None:
    stop = threading.Event()
    reload = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (Ctrl-C reaches both)
    signal.signal(signal.SIGHUP, lambda s, f: reload.set())
    code = 0
    try:
        _Work(index, cfg, config_path, settings, group_base, (conn, ctrl), stop, reload).run()
    except Exception:
        log.exception("worker %d failed", index)
        code = 1
    finally:
        conn.close()
        logging.shutdown()
        os._exit(code)


class _Work:
    """One worker process: its rings, its pipeline, its share of the flows."""

    def __init__(
        self,
        index: int,
        cfg: Config,
        config_path: Path | None,
        settings: RingSettings,
        group_base: int,
        pipes: tuple[Connection, Connection],
        stop: threading.Event,
        reload: threading.Event,
    ) -> None:
        self.index, self.cfg, self.config_path = index, cfg, config_path
        (self.conn, self.ctrl), self.stop, self.reload = pipes, stop, reload
        self.flow_log = JsonLinesWriter(cfg.flow_log, atomic_lines=True) if cfg.flow_log else None
        self.traffic = CameraTraffic(None)
        # the parent owns the baseline: this worker forwards what it does not know yet
        self.baseline = WorkerBaseline.of(cfg.learning, PipeSend(self.conn), group_of=self._group)
        # its own flows' evidence files, in the directory the parent created before the fork
        self.evidence = (
            EvidenceStore.of(cfg.evidence, cfg.state_dir) if cfg.evidence.enabled else None
        )
        if self.evidence is not None:
            self.evidence.open()
        self.pipeline = Pipeline(
            cfg,
            self._record,
            on_alert=self._emitted,
            baseline=self.baseline,
            evidence=self.evidence,
            group_notifications=False,  # the parent groups what its router emits
        )
        self.traffic.resolve = camera_resolver(self.pipeline)
        self.pipeline.late_names = True
        self.pipeline.names.on_learn = self._learnt_name
        self._hook_detector()
        self.collector = NetwatchCollector(self.pipeline, traffic=self.traffic)
        self.source = _fanout_source(cfg, settings, group_base)
        self.loop = CaptureLoop(
            self.pipeline,
            self.source,
            stop,
            tick=self._tick,
            live=True,
            clock=time.time,
            on_progress=self.traffic.progress,
        )
        self._last_report = 0.0
        self._last_flush = 0.0

    def _hook_detector(self) -> None:
        det = self.pipeline.detector
        if det is not None:
            det.router.on_repeat = self._seen
            det.devices.on_learn = self._learnt_device
            det.resolvers.on_learn = self._learnt_resolver

    def _learnt_name(self, client: bytes | None, addr: bytes, name: str, expiry: float) -> None:
        self.conn.send(LearntName(client, addr, name, expiry))

    def _learnt_device(self, kind: str, key: bytes, vendor: str | None, how: str, d: Any) -> None:
        self.conn.send(LearntDevice(kind, key, vendor, how, d))

    def _learnt_resolver(self, resolver: bytes, client: bytes) -> None:
        self.conn.send(LearntResolver(resolver, client))

    def _apply_shared(self) -> None:
        """What the other workers learnt (names, devices, resolvers in use), relayed by the
        parent; applied without being sent back (``share``)."""
        detector = self.pipeline.detector
        while self.ctrl.poll():
            match self.ctrl.recv():
                case LearntName(client, addr, name, expiry):
                    self.pipeline.names.share(client, addr, name, expiry)
                case LearntDevice(kind, key, vendor, how, details) if detector is not None:
                    detector.devices.share(kind, key, vendor, how, details)
                case LearntResolver(resolver, client) if detector is not None:
                    detector.resolvers.share(resolver, client)
                case BaselineKnown() as known:
                    self.baseline.learn(known)

    def _record(self, rec: dict[str, Any]) -> None:
        self.traffic.record(rec)
        if self.flow_log is not None:
            self.flow_log.write(rec)

    def _group(self, alert: Alert) -> str | None:
        det = self.pipeline.detector
        address = alert.device_address()
        if det is None or address is None:
            return None
        dev = det.devices.camera(*address)
        return dev.group if dev is not None else None

    def _emitted(self, alert: Alert, count: int) -> None:
        self._seen(alert)

    def _seen(self, alert: Alert) -> None:
        self.conn.send(Seen(alert, self._group(alert)))

    def _report(self, last_ts: float | None) -> None:
        families = list(self.collector.collect())
        recognised = self.pipeline.recognised.changes()
        self.conn.send(Report(families, self.source.counts(), last_ts, recognised))

    def run(self) -> None:
        """The worker's life cycle: startup, the shared capture loop, shutdown."""
        self.startup()
        try:
            self.loop.run()
        finally:
            self.shutdown()

    def startup(self) -> None:
        """Open the rings, load the data sets, then drop privileges."""
        self.source.open()
        self.pipeline.warm_up()
        # the daemon preloaded every module before forking, and creates, checks and hands
        # over the state directory and the logs: nothing here is this worker's own to chown
        drop_privileges(self.cfg.capture.user, Owned(), log=log)

    def _tick(self, last_ts: float | None) -> None:
        """Between batches: what the others learnt, a pending reload, the report."""
        self._apply_shared()
        if self.reload.is_set():
            self.reload.clear()
            self._reload()
        now = time.monotonic()
        if now - self._last_report >= REPORT_S:
            self._last_report = now
            self._report(last_ts)
        if now - self._last_flush >= REPORT_S and self.flow_log is not None:
            self._last_flush = now
            self.flow_log.flush()

    def shutdown(self) -> None:
        """End every flow, write the flow log, send the last report."""
        self._apply_shared()
        self.pipeline.finish()
        if self.flow_log is not None:
            self.flow_log.close()
        self.source.close()
        self._report(self.loop.stats.last_ts)

    def _reload(self) -> None:
        if self.flow_log is not None:  # logrotate moved it; SIGHUP is its postrotate signal
            self.flow_log.reopen()
        if self.config_path is None:
            return
        try:
            self.pipeline.reconfigure(Config.load(self.config_path))
            self._hook_detector()
        except Exception as exc:  # the parent reports reload failures; keep running
            log.error("worker %d: reload failed, keeping the running config: %s", self.index, exc)


def _fanout_source(cfg: Config, settings: RingSettings, group_base: int) -> LiveSource:
    """A LiveSource whose ring on the i-th interface joins fanout group ``base + i``."""
    groups = {name: (group_base + i) & 0xFFFF for i, name in enumerate(cfg.capture.interfaces)}

    def ring(name: str, s: RingSettings) -> Ring:
        return Ring(name, dataclasses.replace(s, fanout_group=groups[name]))

    return LiveSource(cfg.capture.interfaces, settings, ring_factory=ring)


class PoolCollector(Collector):
    """The workers' merged families plus the parent's alert counters (after its router)."""

    def __init__(
        self,
        pool: WorkerPool,
        alerts: AlertCounter,
        traffic: CameraTraffic,
        router: AlertRouter | None = None,
        groups: DeviceGroups | None = None,
    ) -> None:
        self.pool, self.alerts, self.traffic, self.router = pool, alerts, traffic, router
        self.groups = groups

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.pool.families()
        yield counter_family(
            "netwatch_alerts",
            "Alerts emitted (after de-duplication), by rule and severity.",
            ["rule", "severity"],
            dict(self.alerts.counts).items(),
        )
        yield counter_family(
            "netwatch_camera_alerts",
            "Alerts emitted (after de-duplication) about each camera, by rule.",
            ["camera", "rule"],
            self.traffic.snapshot().alerts.items(),
        )
        if self.router is not None:  # the parent's router: the bound across workers
            yield from router_families(self.router)
        if self.groups is not None:  # the parent's notifications
            yield from notification_families(self.groups)
        if self.pool.baseline is not None:  # the one baseline, owned here
            yield from baseline_families(self.pool.baseline.baseline)
