"""``netwatch replay``: offline analysis of capture files through the live pipeline.

Reads the captures in order, runs them through :class:`~netwatch.pipeline.Pipeline`, writes
every flow to the flow log (``--flows``), runs the detection rules on every ended flow and
writes their alert records to ``--alerts`` (one line each also goes to the log), ends all
flows at end of input and returns a :class:`ReplaySummary` (packets, bytes, flows,
decode failures by reason, cameras recognised and how, alerts by rule, incidents ended,
rate). The cameras line tells "no alerts" from "saw no cameras": ``cameras: 2 (discovery 1,
mac_prefix 1)``.

Incidents: an incident quiet for ``alerts.resolve_s`` of packet time ends during the replay,
and every incident still open ends at the end of the input; each end is one log line (the
incident's span, sightings and peers). The ``--alerts`` file keeps one line per
notification: ends go there only with ``ended_to_alerts`` (off by default, so alert files
keep their shape).

With ``--state-dir`` (and ``evidence.enabled``, the default) each alert about a flow carries
the flow's first packets as a pcap file under ``<state_dir>/evidence``
(:mod:`netwatch.alerts.evidence`); without a state directory no evidence is kept. With
``--state-dir`` the camera inventory of what the captures showed is written to
``<state_dir>/inventory.json`` at the end (:mod:`netwatch.inventory`; ``netwatch cameras
--state-dir`` prints it); a caller may pass its own ``inventory`` to be fed instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from netwatch.alerts.evidence import EvidenceStore
from netwatch.alerts.model import Alert, IncidentEnd
from netwatch.capture.files import CaptureFile, add_problems, open_capture
from netwatch.config import Config
from netwatch.detect.baseline import BASELINE_FILE, Baseline
from netwatch.detect.devices import CameraVendor
from netwatch.detect.recognised import summary_line
from netwatch.enrich.geo import GeoBackend
from netwatch.flow.ids import UidSource
from netwatch.output.flowlog import JsonLinesWriter
from netwatch.pipeline import Pipeline
from netwatch.progress import ClearLine, Progress

if TYPE_CHECKING:
    from netwatch.inventory import CameraInventory

alert_log_line = logging.getLogger("netwatch.alert")


@dataclass
class ReplaySummary:
    """What a replay did, for the terminal summary and tests."""

    files: int = 0
    packets: int = 0
    wire_bytes: int = 0
    flows: int = 0
    flows_by_reason: dict[str, int] = field(default_factory=dict)
    decode_failures: dict[str, int] = field(default_factory=dict)
    non_ip: dict[str, int] = field(default_factory=dict)
    deep_parsed: dict[str, int] = field(default_factory=dict)
    capture_problems: dict[str, int] = field(default_factory=dict)
    fragment_entries_evicted: int = 0
    reassembly: dict[str, int] = field(default_factory=dict)  # rebuilt datagrams, by outcome
    #: Tunnel datagrams also counted in an outer flow, and tunnel fragments folded into
    #: their whole datagram (``Decoder.tunnels``).
    tunnels: dict[str, int] = field(default_factory=dict)
    cameras: dict[str, int] = field(default_factory=dict)  # cameras seen, by how recognised
    alerts: int = 0  # notifications (one alert record each, reports grouped in them)
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    alerts_suppressed: int = 0
    incidents_ended: int = 0
    rule_errors: dict[str, int] = field(default_factory=dict)
    #: Evidence files written, and alerts without one because the write failed; None when
    #: no evidence was kept (no state directory, or ``evidence.enabled: false``).
    evidence: dict[str, int] | None = None
    elapsed_s: float = 0.0

    def take(
        self,
        pipe: Pipeline,
        problems: Mapping[str, int],
        store: EvidenceStore | None = None,
    ) -> None:
        """Fill in what the pipeline and its evidence store counted (after
        ``Pipeline.finish``), with the capture files' ``problems`` (``add_problems``): also
        what ``netwatch run`` prints when its files end."""
        self.packets = pipe.stats.packets
        self.wire_bytes = pipe.stats.wire_bytes
        self.flows_by_reason = {k: v for k, v in pipe.stats.flows_by_reason.items() if v}
        self.flows = sum(self.flows_by_reason.values())
        self.decode_failures = dict(pipe.decoder.failures)
        self.non_ip = dict(pipe.decoder.non_ip)
        self.deep_parsed = dict(pipe.inspector.parsed)
        self.fragment_entries_evicted = pipe.decoder.frags.evicted
        self.reassembly = {k: v for k, v in pipe.decoder.reassembler.counts().items() if v}
        self.tunnels = {k: v for k, v in pipe.decoder.tunnels.items() if v}
        self.cameras = pipe.recognised.by_how()
        if pipe.detector is not None:
            router = pipe.detector.router
            self.alerts_by_rule = dict(router.by_rule)
            self.alerts_suppressed = router.suppressed
            self.rule_errors = dict(pipe.detector.errors.counts)
            self.incidents_ended = router.ended
        if pipe.notify is not None:
            self.alerts = pipe.notify.notifications
        self.capture_problems = dict(problems)
        if store is not None:
            c = store.counters
            self.evidence = {"written": c.written, "write_error": c.dropped["write_error"]}

    @property
    def packets_per_s(self) -> float:
        """Throughput of the whole pipeline (packets per wall-clock second)."""
        return self.packets / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        """The short human summary printed after a replay."""

        def kv(d: dict[str, int]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(d.items())) or "none"

        evidence = [] if self.evidence is None else [f"evidence files: {kv(self.evidence)}"]
        return [
            f"files: {self.files}  packets: {self.packets}  bytes: {self.wire_bytes}",
            f"flows: {self.flows} ({kv(self.flows_by_reason)})",
            f"decode failures: {sum(self.decode_failures.values())} ({kv(self.decode_failures)})",
            f"non-IP frames: {sum(self.non_ip.values())} ({kv(self.non_ip)})",
            f"capture file problems: {kv(self.capture_problems)}",
            f"fragment table evictions: {self.fragment_entries_evicted}; "
            f"datagrams rebuilt from fragments: {kv(self.reassembly)}; tunnels: {kv(self.tunnels)}",
            summary_line(self.cameras),
            f"alerts: {sum(self.alerts_by_rule.values())} ({kv(self.alerts_by_rule)}) in "
            f"{self.alerts} notification{'' if self.alerts == 1 else 's'}; repeats suppressed: "
            f"{self.alerts_suppressed}; incidents ended: {self.incidents_ended}; "
            f"rule errors: {sum(self.rule_errors.values())}",
            *evidence,
            f"elapsed: {self.elapsed_s:.3f} s  rate: {self.packets_per_s:,.0f} packets/s",
        ]


def run_replay(
    paths: Sequence[Path],
    cfg: Config,
    *,
    flows_out: Path | None = None,
    alerts_out: Path | None = None,
    geo: GeoBackend | None = None,
    uid_seed: int | None = None,
    camera_vendor: CameraVendor | None = None,
    detect: bool = True,
    state_dir: Path | None = None,
    ended_to_alerts: bool = False,
    progress: TextIO | None = None,
    inventory: CameraInventory | None = None,
    ready: Callable[[], None] | None = None,
) -> ReplaySummary:
    """Replay capture files; raises CaptureError before any work if a file is unreadable.
    ``progress``: a terminal to show a progress line on (:mod:`netwatch.progress`).
    ``ready``: called once the pipeline is built and warmed up, before the first packet
    (``netwatch replay`` freezes what start-up made then)."""
    captures = [open_capture(p) for p in paths]
    if inventory is None and state_dir is not None:
        # a replay without a state directory keeps no inventory: not imported then
        from netwatch.inventory import CameraInventory, platform_matcher  # noqa: PLC0415

        inventory = CameraInventory(platform_matcher())
    flow_log = JsonLinesWriter(flows_out, truncate=True) if flows_out is not None else None
    alert_log = JsonLinesWriter(alerts_out, truncate=True) if alerts_out is not None else None
    summary = ReplaySummary(files=len(captures))

    def on_record(rec: dict[str, Any]) -> None:
        if flow_log is not None:
            flow_log.write(rec)
        if inventory is not None:
            inventory.record(rec)

    def on_alert(alert: Alert, count: int) -> None:
        summary.alerts += 1
        if inventory is not None:
            inventory.alert(alert, count)
        alert_log_line.warning("%s", alert.one_line())
        if alert_log is not None:
            alert_log.write(alert.record(count))

    def on_end(end: IncidentEnd) -> None:
        if inventory is not None:
            inventory.ended(end)
        alert_log_line.warning("%s", end.one_line())
        if alert_log is not None and ended_to_alerts:
            alert_log.write(end.record())

    store = None
    if state_dir is not None and detect and cfg.evidence.enabled:
        store = EvidenceStore.of(cfg.evidence, state_dir)
        store.open()
    try:
        pipe = Pipeline(
            cfg,
            # no inventory (the usual replay): the flow log's own write, one call per record
            flow_log.write if flow_log is not None and inventory is None else on_record,
            geo=geo,
            uids=UidSource(uid_seed),
            on_alert=on_alert if detect else None,
            camera_vendor=camera_vendor,
            baseline=(
                Baseline.of(cfg.learning, state_dir / BASELINE_FILE)
                if state_dir is not None
                else None
            ),
            evidence=store,
        )
        if pipe.detector is not None:
            pipe.detector.router.on_end = on_end
        if inventory is not None:  # an inbound peer's AS (not in the flow record)
            inventory.geo_of = pipe.enrichers.geo.lookup
        pipe.warm_up()
        if ready is not None:
            ready()
        start = time.perf_counter()
        with _progress(progress, pipe, captures) as at:
            for at.index, cap in enumerate(captures):
                pipe.run_capture(cap)
            pipe.finish()
        summary.elapsed_s = time.perf_counter() - start
    finally:
        for cap in captures:
            cap.close()
        if flow_log is not None:
            flow_log.close()
        if alert_log is not None:
            alert_log.close()
    summary.take(pipe, _capture_problems(captures), store)
    if inventory is not None:
        from netwatch.inventory import INVENTORY_FILE, geoip_json, save  # noqa: PLC0415

        if pipe.detector is not None:
            inventory.describe(pipe.detector.devices.cameras(), pipe.enrichers.vendors.vendor)
        inventory.geoip = geoip_json(pipe.enrichers.geo.backend.describe())
        if state_dir is not None:
            source = {"captures": [str(p) for p in paths]}
            state_dir.mkdir(parents=True, exist_ok=True)
            save(inventory.as_json(source, site=cfg.site.name), state_dir / INVENTORY_FILE)
    return summary


@dataclass
class _At:
    """Which capture a replay is reading (for the progress line)."""

    index: int = 0


@contextmanager
def _progress(
    stream: TextIO | None, pipe: Pipeline, captures: Sequence[CaptureFile]
) -> Iterator[_At]:
    """A progress line on ``stream`` while the body runs (none without a stream); log
    records wipe it before they are written."""
    at = _At()
    if stream is None:
        yield at
        return

    def text() -> str:
        cap = captures[min(at.index, len(captures) - 1)]
        swept = pipe.table.swept_at
        when = (
            datetime.fromtimestamp(swept, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if math.isfinite(swept)
            else "-"
        )
        ended = sum(pipe.table.ended.values())
        alerts = sum(pipe.detector.router.by_rule.values()) if pipe.detector else 0
        return (
            f"file {at.index + 1}/{len(captures)} {cap.path.name}: packet time {when}, "
            f"{ended:,} flows ended, {len(pipe.table):,} active, {alerts:,} alerts"
        )

    handlers = logging.getLogger().handlers
    with Progress(stream, text) as shown:
        wipe = ClearLine(shown)
        for handler in handlers:
            handler.addFilter(wipe)
        try:
            yield at
        finally:
            for handler in handlers:
                handler.removeFilter(wipe)


def _capture_problems(captures: Sequence[CaptureFile]) -> dict[str, int]:
    problems: dict[str, int] = {}
    for cap in captures:
        add_problems(problems, cap.stats)
    return problems
