"""The synchronous core: frames in, ended flow records out. No I/O, packet time only.

:class:`Pipeline` wires decode -> flow table -> deep inspection -> enrichment from a
:class:`~netwatch.config.Config`. Components that touch the outside world (the GeoIP
backend, the uid random source, the record consumer) are injected with production
defaults, so tests and replays are deterministic. :meth:`Pipeline.run` is the hot loop;
everything per flow happens in callbacks that run once per flow.

Evidence (``evidence`` store given, :mod:`netwatch.alerts.evidence`): flows with a site-local
end keep their first frames; while a flow's rules run, an alert about that flow that the
router emits gets the flow's frames written as a pcap file and carries its path and SHA-256.
The rules never see the frames.

Incidents end on the flow table's sweep (:meth:`AlertRouter.expire
<netwatch.alerts.router.AlertRouter.expire>` at the sweep's time): on packet time while
packets come, on wall time through :meth:`Pipeline.advance` on a quiet live link; a flow's
alerts are sightings at the flow's last packet. :meth:`Pipeline.finish` ends the incidents
still open when asked (end of the input, not a live daemon's stop).

Notifications (``group_notifications``, the default; :mod:`netwatch.alerts.grouping`): what
the router emits is grouped per camera (``alerts.group_wait_s``/``group_interval_s``) before
``on_alert``; the sweep sends the groups that are due, :meth:`Pipeline.finish` all pending
ones. Capture workers pass ``group_notifications=False``: their parent groups.

Garbage collector (:func:`tune_collector`, run by :meth:`Pipeline.warm_up`, so once per
process before traffic): full collections of the cyclic collector are made rare. Flows do not
form reference cycles (their memory goes back by reference counting), but every full
collection walks every live flow, and with the default thresholds a flood of new flows (the
table growing by a quarter) triggered one every few seconds: about a fifth of the CPU time
of ``bench/bench_flood.py``. Young collections are unchanged.

Config read: everything the components read, ``evidence.*``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netwatch.alerts.evidence import EvidenceStore, KeepLimits, PacketKeeper
from netwatch.alerts.grouping import DeviceGroups
from netwatch.alerts.model import Alert
from netwatch.alerts.router import Emit
from netwatch.capture.files import CaptureFile, MappedPcap
from netwatch.capture.source import Block
from netwatch.config import Config
from netwatch.core import use_core_loop
from netwatch.corefeed import run_core
from netwatch.decode.frames import Decoder
from netwatch.decode.outer import outer_flow
from netwatch.detect.baseline import Baseline, DestinationBaseline
from netwatch.detect.devices import CameraVendor, mixed_vendors
from netwatch.detect.engine import Detector
from netwatch.detect.recognised import RecognisedCameras
from netwatch.detect.resolvers import public_resolver_table
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.geo import CachedGeo, GeoBackend, cache_dir_of, geo_from_settings
from netwatch.enrich.inventory import Inventory
from netwatch.enrich.macvendor import MacVendors
from netwatch.enrich.names import PassiveDns
from netwatch.fastloop import run_mapped
from netwatch.flow.ids import UidSource
from netwatch.flow.inspect import BannerMatch, Inspector
from netwatch.flow.record import Enrichers, FlowEnds, flow_record_ends
from netwatch.flow.table import EndReason, Flow, FlowSettings, FlowTable
from netwatch.signatures.lan import lan_matcher
from netwatch.signatures.match import SignatureMatcher

Packet = tuple[float, int, int, bytes]


def banner_vendor_of(signatures: SignatureMatcher) -> BannerMatch:
    """The banner lookup from the seeds' device fingerprints: (field, value) -> vendor."""

    def banner_vendor(field: str, value: str) -> str | None:
        found = signatures.match_banner(field, value)
        return found.vendor if found is not None else None

    return banner_vendor


def camera_vendor_of(signatures: SignatureMatcher) -> CameraVendor:
    """The camera-maker lookup from the seeds' vendor OUI table (camera makers only)."""

    def camera_vendor(mac: bytes) -> str | None:
        entry = signatures.vendor_of_mac(mac)
        return entry.vendor if entry is not None and entry.camera_vendor else None

    return camera_vendor


_WARM_UP_MAC = bytes.fromhex("00000c000001")  # any registered OUI: loads netaddr's index
#: Generation-1 collections between two full collections (CPython's default: 10). With 1,000
#: and the default young thresholds, a full collection comes after about 7 million net new
#: container objects (CPython also waits for the long-lived objects to grow by a quarter).
FULL_COLLECTION_EVERY = 1000


def tune_collector() -> None:
    """Make full collections of the cyclic garbage collector rare (module docstring); the
    young generations keep their thresholds."""
    young, middle, full = gc.get_threshold()
    if young and full < FULL_COLLECTION_EVERY:  # young 0: collection switched off, keep it
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


RecordSink = Callable[[dict[str, Any]], None]


def flow_settings(cfg: Config) -> FlowSettings:
    """Flow-table settings from the ``flows`` and ``deep`` config sections."""
    fl = cfg.flows
    return FlowSettings(
        max_flows=fl.max_flows,
        tcp_idle_s=fl.tcp_idle_s,
        udp_idle_s=fl.udp_idle_s,
        icmp_idle_s=fl.icmp_idle_s,
        other_idle_s=fl.other_idle_s,
        tcp_closed_s=fl.tcp_closed_s,
        tcp_attempt_s=fl.tcp_attempt_s,
        tcp_partial_close_s=fl.tcp_partial_close_s,
        dns_idle_s=fl.dns_idle_s,
        active_timeout_s=fl.active_timeout_s,
        max_payload_packets=cfg.deep.max_payload_packets,
    )


def geo_backend(cfg: Config) -> GeoBackend:
    """The GeoIP backend the config asks for (MaxMind files, the built-in data, or none)."""
    g = cfg.geoip
    cache_dir = cache_dir_of(g.cache, g.cache_dir)
    return geo_from_settings(g.country_db, g.asn_db, g.city_db, g.builtin, cache_dir)


@dataclass
class PipelineStats:
    """Counters of one pipeline run (read by the summary and, later, by metrics)."""

    packets: int = 0
    wire_bytes: int = 0
    flows_by_reason: dict[str, int] = field(default_factory=dict)
    active_evaluations: int = 0


class Pipeline:
    """decode -> flows -> deep inspection -> enrichment; ended flows go to ``on_record``."""

    def __init__(
        self,
        cfg: Config,
        on_record: RecordSink,
        *,
        geo: GeoBackend | None = None,
        uids: UidSource | None = None,
        on_alert: Emit | None = None,
        camera_vendor: CameraVendor | None = None,
        signatures: SignatureMatcher | None = None,
        baseline: DestinationBaseline | None = None,
        evidence: EvidenceStore | None = None,
        group_notifications: bool = True,
    ) -> None:
        self.cfg = cfg
        self.stats = PipelineStats()
        #: The fused loop for mapped pcaps and live blocks: the one with its fast branch in C
        #: when the compiled core is loaded (:mod:`netwatch.corefeed`), else (or with
        #: ``NETWATCH_CORE=python``) Python's (:mod:`netwatch.fastloop`).
        self.run_mapped: Callable[[Pipeline, MappedPcap], tuple[int, int]] = (
            run_core if use_core_loop() else run_mapped
        )
        self.classifier = AddressClassifier(cfg.site.local_nets)
        #: Evidence files (None: no flow keeps frames); the keeper holds the frames.
        self.evidence = evidence if on_alert is not None else None
        self.keeper = PacketKeeper(KeepLimits.of(cfg.evidence))
        self._alerting: Flow | None = None  # the flow whose rules are running
        #: One notification per camera per interval (None: every report goes out alone, as
        #: in a capture worker, whose parent groups what it reports).
        self.notify: DeviceGroups | None = None
        if on_alert is not None and group_notifications:
            self.notify = DeviceGroups.of(on_alert, cfg.alerts)
            on_alert = self.notify.add
        if on_alert is not None and self.evidence is not None:
            on_alert = self._with_evidence(on_alert, self.evidence)
        self.names = PassiveDns(cfg.dns.cache_size, cfg.dns.min_ttl_s, cfg.dns.max_ttl_s)
        self.inspector = Inspector(self.names, cfg.deep.max_hello_bytes)
        self.decoder = Decoder(
            cfg.flows.max_fragments,
            cfg.flows.fragment_timeout_s,
            reassemble_ports=self.inspector.udp_ports,
        )
        self.geo_backend = geo if geo is not None else geo_backend(cfg)
        #: The cameras seen in traffic and how recognised (flow records, summary, metrics).
        self.recognised = RecognisedCameras()
        self.enrichers = Enrichers(
            classifier=self.classifier,
            geo=CachedGeo(self.geo_backend, self.classifier),
            vendors=MacVendors(),
            inventory=Inventory(cfg.cameras),
            cameras=self.recognised.device,
        )
        self._on_record = on_record
        #: Capture workers share DNS names, which may arrive after a flow began: look the
        #: responder's name up again (as of the flow's start) when the flow is reported.
        self.late_names = False
        self._last_check: float | None = None  # packet time of the last check_active run
        self.detector: Detector | None = None
        #: Devices.bind when the inventory lists exact addresses (else nothing to learn).
        self._bind: Callable[[bytes, bytes | None], None] | None = None
        if on_alert is not None:
            self.signatures = signatures or SignatureMatcher.load()
            vendor = camera_vendor or camera_vendor_of(self.signatures)
            if baseline is None:  # the edges give a stored or shared one; else in memory
                baseline = Baseline.of(cfg.learning, None)
            detector = Detector(
                cfg, self.enrichers, vendor, on_alert, self.signatures, baseline=baseline
            )
            self._hook_detector(detector)
            if self.notify is not None:
                self.notify.clock = detector.router.latest
        self.table = FlowTable(
            flow_settings(cfg),
            self._flow_ended,
            inspect=self.inspector.payload,
            on_start=self._flow_started,
            on_sweep=self._swept,
            uids=uids,
        )

    def reconfigure(self, cfg: Config, signatures: SignatureMatcher | None = None) -> None:
        """Apply a reloaded config (SIGHUP) and seeds: site networks, inventory, groups,
        alert settings and GeoIP databases (re-opened, so refreshed files are picked up).
        Active flows, learned DNS names, devices found by discovery, baselines and alert
        suppression state are kept. Flow-table limits and timeouts, fragment limits and the
        DNS cache size keep their start-up values. Raises (and changes nothing) when the new
        GeoIP databases or seeds cannot be loaded."""
        g = cfg.geoip
        if g == self.cfg.geoip and not (g.country_db or g.asn_db or g.city_db):
            geo = self.geo_backend  # the built-in data set cannot change: keep it loaded
        else:
            geo = geo_backend(cfg)  # database files are re-opened (refreshed files)
            geo.describe()
        old = self.detector
        if old is not None:
            signatures = signatures or SignatureMatcher.load()
        self.cfg = cfg
        self.classifier = AddressClassifier(cfg.site.local_nets)
        self.geo_backend = geo
        self.enrichers = Enrichers(
            classifier=self.classifier,
            geo=CachedGeo(geo, self.classifier),
            vendors=self.enrichers.vendors,
            inventory=Inventory(cfg.cameras),
            cameras=self.recognised.device,
        )
        if old is None or signatures is None:
            return
        self.signatures = signatures
        new = Detector(
            cfg,
            self.enrichers,
            camera_vendor_of(signatures),
            old.router.emit,
            signatures,
            baseline=old.baseline,
        )
        new.devices.adopt(old.devices)
        new.resolvers.adopt(old.resolvers)
        new.router = old.router
        new.router.configure(cfg.alerts)
        if self.notify is not None:
            self.notify.configure(cfg.alerts)
        new.errors = old.errors
        self._hook_detector(new)

    def _hook_detector(self, detector: Detector) -> None:
        self.detector = detector
        self.recognised.devices = detector.devices
        self._bind = detector.devices.bind if detector.devices.binds else None
        self.inspector.on_camera = detector.camera_seen
        self.inspector.banners = banner_vendor_of(self.signatures)
        self.inspector.payloads = self.signatures.match_payload
        self.decoder.l2_hook = detector.l2_frame

    def warm_up(self) -> None:
        """Load lazily loaded data before traffic (and before a privilege drop, after which
        an installation the user cannot read is unreadable): the GeoIP data set, the IEEE
        registry index, and the seeds parsers and rules read on first use; then make full
        garbage collections rare (:func:`tune_collector`)."""
        self.geo_backend.describe()
        self.enrichers.vendors.vendor(_WARM_UP_MAC)
        lan_matcher()  # DHCP/SSDP/mDNS fingerprints
        mixed_vendors()  # vendors whose MAC prefix is only a hint
        public_resolver_table()  # rogue_dns
        tune_collector()

    def _flow_started(self, f: Flow, ts: float) -> None:
        f.name = self.names.lookup(f.resp_h, ts, f.orig_h)
        if self._bind is not None:  # an inventory camera's MAC, before its flows end
            self._bind(f.orig_h, f.orig_mac)
            self._bind(f.resp_h, f.resp_mac)
        if self.evidence is not None and (
            self.classifier.is_site_local(f.orig_h) or self.classifier.is_site_local(f.resp_h)
        ):
            self.keeper.start(f)  # only a flow with a site-local end can alert

    def _flow_ended(self, f: Flow, reason: EndReason) -> None:
        if self.late_names and f.name is None:
            f.name = self.names.lookup(f.resp_h, f.first, f.orig_h)
        if f.app is not None:  # the parsers keep no state on a flow none spoke about
            self.inspector.end(f)
        record, ends = flow_record_ends(f, self.enrichers)
        self._on_record(record)
        detector = self.detector
        if detector is not None:
            if ends.orig_camera is None and ends.resp_camera is None:
                # no camera end: no rule runs, nothing to alert; only a flow to the
                # resolvers' port tells the detector something
                if f.resp_p == detector.observed_port:
                    detector.observe(f, record)
            else:
                self._detect(f, record, ends)
        if f.ev is not None:
            self.keeper.release(f)

    def _detect(self, f: Flow, record: dict[str, Any], ends: FlowEnds) -> None:
        """Run the rules on ``f``; its alerts, when emitted, get its evidence file; the
        router counts them as sightings at the flow's last packet. ``ends``: what the record
        found out about the flow's ends (the detector's devices answered for its cameras)."""
        assert self.detector is not None
        self._alerting = f
        router = self.detector.router
        router.seen_at = f.last
        try:
            self.detector.flow_ended(f, record, ends)
        finally:
            self._alerting = None
            router.seen_at = None

    def _swept(self, now: float) -> None:
        """The flow table's periodic sweep (packet time, or wall time on a quiet link):
        expire held fragments, end quiet incidents."""
        self.decoder.expire(now)
        if self.notify is not None:
            self.notify.tick(now)  # reports due go out before quiet incidents end
        if self.detector is not None:
            self.detector.router.expire(now)

    def _with_evidence(self, emit: Emit, store: EvidenceStore) -> Emit:
        """``emit``, after writing the evidence of the flow whose rules are running."""

        def emit_with_evidence(alert: Alert, count: int) -> None:
            f = self._alerting
            if f is not None and f.ev is not None and alert.flow_uid == f.uid:
                alert = store.attach(alert, f.ev)
            emit(alert, count)

        return emit_with_evidence

    def check_active(self, now: float, on_progress: RecordSink | None = None) -> int:
        """Call after each batch with its last packet time: every
        ``alerts.evaluate_active_s`` of packet time, :meth:`evaluate_active` on the flows
        that saw packets since the previous check (the first call only starts the clock)."""
        last = self._last_check
        if last is None:
            self._last_check = now
            return 0
        if now - last < self.cfg.alerts.evaluate_active_s:
            return 0
        self._last_check = now
        return self.evaluate_active(now, last, on_progress)

    def evaluate_active(
        self, now: float, since: float, on_progress: RecordSink | None = None
    ) -> int:
        """Check flows still active: those older than ``alerts.evaluate_active_s`` that saw a
        packet at or after ``since`` get a provisional record (passed to ``on_progress``)
        and go through the rules; returns how many. Called by the daemon between batches,
        never per packet; the router keeps a flow from being counted twice."""
        min_age = self.cfg.alerts.evaluate_active_s
        n = 0
        for f in self.table.flows.values():
            if f.last < since or now - f.first < min_age or f.state == 2:
                continue
            if self.late_names and f.name is None:
                f.name = self.names.lookup(f.resp_h, f.first, f.orig_h)
            record, ends = flow_record_ends(f, self.enrichers)
            if on_progress is not None:
                on_progress(record)
            if self.detector is not None:
                self._detect(f, record, ends)
            n += 1
        self.stats.active_evaluations += n
        return n

    def advance(self, now: float) -> None:
        """Live capture on a quiet link: let timers run at wall time ``now`` (packet times
        are wall times there), so flows end and alerts come without waiting for traffic."""
        if now >= self.table.next_sweep:
            self.table.sweep(now)

    def account(self, ts: float, linktype: int, frame: bytes, wirelen: int) -> None:
        """Decode one frame and account it (and any fragments it releases) to its flow; a
        tunnelled frame also to its outer UDP flows (``Decoder.outer``)."""
        d = self.decoder.decode(linktype, frame, wirelen, ts)
        outer = self.decoder.outer
        if outer:
            for hop in outer:
                outer_flow(self.table.packet(ts, hop.d), hop)
            outer.clear()
        if d is not None:
            f = self.table.packet(ts, d)
            if f.keep:
                self.keeper.keep(f, ts, linktype, frame, wirelen)
        released = self.decoder.released
        if released:
            for rts, rd in released:
                self.table.packet(rts, rd)
            released.clear()
        whole = self.decoder.reassembled
        if whole:
            for wts, wd in whole:
                self.table.inspect_only(wts, wd)
            whole.clear()

    def run(self, packets: Iterable[Packet]) -> None:
        """The general loop, for every frame the fused loop does not take."""
        account = self.account
        n = 0
        nbytes = 0
        for ts, linktype, wirelen, frame in packets:
            n += 1
            nbytes += wirelen
            account(ts, linktype, frame, wirelen)
        self.stats.packets += n
        self.stats.wire_bytes += nbytes

    def run_capture(self, capture: CaptureFile) -> None:
        """One capture file: the fused loop for a mapped classic pcap, else :meth:`run`."""
        mapped = capture.mapped_pcap()
        if mapped is None:
            self.run(capture.packets())
            return
        n, nbytes = self.run_mapped(self, mapped)
        self.stats.packets += n
        self.stats.wire_bytes += nbytes

    def run_block(self, block: Block) -> None:
        """A live capture block (pcap records in memory) through the fused loop."""
        n, nbytes = self.run_mapped(self, block.mapped)
        self.stats.packets += n
        self.stats.wire_bytes += nbytes

    def end_pass(self) -> None:
        """End every flow and drop held fragments (end of input, or of one looped pass), and
        send the notifications waiting (a looped pass replays the same packet times, so
        the groups' clock would not pass their due time again)."""
        self.decoder.frags.flush()
        self.table.flush()
        self.stats.flows_by_reason = dict(self.table.ended)
        if self.notify is not None:
            self.notify.flush_all()

    def finish(self, *, end_incidents: bool = True) -> None:
        """End of input: end and emit every flow; held fragments become orphans; with
        ``end_incidents`` every open incident ends too (a live daemon stopping keeps them:
        the cameras are still at it)."""
        self.end_pass()
        if self.detector is not None:
            if end_incidents:
                self.detector.router.end_all()
            self.detector.close()
