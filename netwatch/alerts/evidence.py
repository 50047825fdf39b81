"""Evidence a SOC can open: the first packets of an alerting flow, written as a pcap file.

Two halves, both bounded and counted:

* :class:`PacketKeeper` (capture thread, one per pipeline). A flow with a site-local end keeps
  its first ``evidence.packets`` frames as captured (link-layer bytes cut at
  ``evidence.snaplen``, packet time, wire length) in ``Flow.ev``, at most ``evidence.bytes``
  per flow. Only such flows can alert: every flow rule runs on a camera end, and a camera is
  a site-local address (:meth:`netwatch.detect.devices.Devices.camera`); flows between two
  outside hosts keep nothing. ``Flow.keep`` counts the frames still to keep: the fused loop
  (:mod:`netwatch.fastloop`) hands a flow's packets to the general path only while it is
  above 0, so an established flow that has kept its share costs one int test per packet.
  Kept bytes across all flows are capped (``evidence.max_memory_mb``): a flow whose next
  frame would pass a cap stops keeping (``stopped`` counts it, by cap). The frames are
  released when the flow ends, after its rules ran; a flow still active is checked by the
  rules meanwhile (``alerts.evaluate_active_s``) with what it has kept so far.
* :class:`EvidenceStore` (files). When a flow's alert is emitted, its frames are written to
  ``<state_dir>/evidence/<ts>-<rule>-<device>-<flow_uid>.pcap`` (:func:`evidence_name`: wire
  values reduced to ``[A-Za-z0-9._-]``, so no path separator or control character reaches
  the name): classic pcap, microsecond timestamps, the flow's link type as captured, mode
  0640, created exclusively (never through a symlink). The alert then carries
  ``evidence_pcap`` (the path) and ``evidence_sha256``. A write that fails (disk full,
  EACCES, ...) is counted and logged once per errno; the alert goes out without the two
  fields. Disk use is bounded: after each write and on :meth:`EvidenceStore.prune`, files
  older than ``evidence.max_age_days`` and then the oldest files beyond
  ``evidence.max_total_mb`` are deleted (counted by reason). Only names matching
  :func:`name_re` in that directory are ever counted or deleted.

Writes are synchronous on the thread that emits the alert (the capture thread): a file is at
most ``evidence.bytes`` plus record headers, written without fsync, and alerts are few (the
router de-duplicates them and bounds them per device); see the README for measured costs.

Config read: ``evidence.*`` and ``state_dir``. Known limits: fragments released after
arriving ahead of their first fragment, and frames of another link type than the flow's
first, are not kept; with several capture workers each worker writes its own flows'
evidence to the shared directory and the size bound is enforced by each worker on what it
last scanned (a rescan every :data:`RESCAN_S`), so the directory may briefly exceed it, and
an alert seen by two workers that the parent's router then suppresses leaves its file
(bounded like the rest); a repeat of an alert that the router suppresses writes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from netwatch.alerts.model import Alert
from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from netwatch.config.schema import EvidenceConfig
    from netwatch.flow.table import Flow

log = logging.getLogger(__name__)

EVIDENCE_DIR = "evidence"
FILE_MODE = 0o640
DIR_MODE = 0o750
RESCAN_S = 60.0  # the store re-reads its directory at most this often between prunes
MB = 1024 * 1024
DAY_S = 86_400.0
PART_MAX = 64  # characters kept of each wire value in a file name
MAX_SUFFIX = 9  # name collisions tried (-2 .. -9) before the write counts as failed
#: The names the store writes (and so may count and delete): ``<ts>-<parts>.pcap``
#: (compiled at the first scan or name: a replay without a state directory needs neither).
name_re = lazy(r"\d{8}T\d{6}\.\d{6}Z-[A-Za-z0-9._-]{1,400}\.pcap")
_unsafe = lazy(r"[^A-Za-z0-9._-]+")
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_U32 = 0xFFFFFFFF


class KeptPacket(NamedTuple):
    """One frame kept for evidence: packet time, wire length and the captured bytes."""

    ts: float
    wirelen: int
    frame: bytes


class FlowEvidence:
    """The frames one flow keeps (``Flow.ev``), of one link type."""

    __slots__ = ("linktype", "nbytes", "packets")

    def __init__(self) -> None:
        self.linktype = -1  # set by the first kept frame
        self.nbytes = 0
        self.packets: list[KeptPacket] = []


@dataclass(frozen=True, slots=True)
class KeepLimits:
    """How much a flow keeps, and the cap over all flows (bytes of frames)."""

    packets: int = 16
    flow_bytes: int = 65_536
    snaplen: int = 1_600
    memory_bytes: int = 64 * MB

    @classmethod
    def of(cls, cfg: EvidenceConfig) -> KeepLimits:
        """The limits of an ``evidence:`` section."""
        return cls(cfg.packets, cfg.bytes, cfg.snaplen, cfg.max_memory_mb * MB)


class PacketKeeper:
    """Keeps the first frames of flows that may alert (module docstring), bounded."""

    def __init__(self, limits: KeepLimits) -> None:
        self.limits = limits
        self.kept_bytes = 0  # frames held now, over all flows
        self.flows = 0  # flows that started keeping
        self.packets = 0  # frames kept
        #: Flows that stopped keeping early, by cap: ``memory`` (evidence.max_memory_mb),
        #: ``flow_bytes`` (evidence.bytes), ``linktype`` (a frame of another link type).
        self.stopped: dict[str, int] = {"memory": 0, "flow_bytes": 0, "linktype": 0}

    def start(self, f: Flow) -> None:
        """``f`` may alert: keep its first frames."""
        f.keep = self.limits.packets
        f.ev = FlowEvidence()
        self.flows += 1

    def keep(self, f: Flow, ts: float, linktype: int, frame: bytes, wirelen: int) -> None:
        """Keep one frame of ``f`` (called only while ``f.keep`` > 0)."""
        ev = f.ev
        if ev is None:
            f.keep = 0
            return
        if ev.linktype != linktype:
            if ev.linktype >= 0:
                self._stop(f, "linktype")
                return
            ev.linktype = linktype
        data = bytes(frame[: self.limits.snaplen])  # a copy: never pin a capture buffer
        n = len(data)
        if ev.nbytes + n > self.limits.flow_bytes:
            self._stop(f, "flow_bytes")
            return
        if self.kept_bytes + n > self.limits.memory_bytes:
            self._stop(f, "memory")
            return
        ev.packets.append(KeptPacket(ts, wirelen, data))
        ev.nbytes += n
        self.kept_bytes += n
        self.packets += 1
        f.keep -= 1

    def _stop(self, f: Flow, why: str) -> None:
        f.keep = 0
        self.stopped[why] += 1

    def release(self, f: Flow) -> None:
        """The flow ended and its rules ran: drop its frames."""
        ev = f.ev
        if ev is not None:
            self.kept_bytes -= ev.nbytes
            f.ev = None
        f.keep = 0


def _safe(part: str) -> str:
    """A wire value as a file-name part: only ``[A-Za-z0-9._-]``, at most PART_MAX long."""
    return _unsafe().sub("_", part)[:PART_MAX] or "_"


def _stamp(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    except (OverflowError, OSError, ValueError):  # a hostile capture's timestamp
        return "00000000T000000.000000Z"


def evidence_name(alert: Alert) -> str:
    """``<ts>-<rule>-<device>-<flow_uid>.pcap`` with every part sanitised (matches ``name_re``)."""
    parts = (alert.rule, alert.device, alert.flow_uid or "noflow")
    return f"{_stamp(alert.ts)}-{'-'.join(_safe(p) for p in parts)}.pcap"


def pcap_bytes(linktype: int, snaplen: int, packets: Iterable[KeptPacket]) -> bytes:
    """A classic little-endian microsecond pcap file holding ``packets``."""
    out = [_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, max(linktype, 0) & _U32)]
    for p in packets:
        usec_total = round(p.ts * 1_000_000) if p.ts > 0 else 0
        sec, usec = divmod(usec_total, 1_000_000)
        n = len(p.frame)
        out.append(_RECORD.pack(min(sec, _U32), usec, n, min(max(p.wirelen, n), _U32)))
        out.append(p.frame)
    return b"".join(out)


class EvidenceFile(NamedTuple):
    """A written evidence file."""

    path: Path
    sha256: str
    size: int


class _Entry(NamedTuple):
    mtime: float
    size: int


@dataclass(slots=True)
class StoreCounters:
    """What the store did (the ``netwatch_evidence_*`` metric families)."""

    written: int = 0
    #: Files deleted to keep the bounds, by reason (``age``, ``size``).
    deleted: dict[str, int] = field(default_factory=lambda: {"age": 0, "size": 0})
    #: Alerts that went out without evidence, by reason (``write_error``).
    dropped: dict[str, int] = field(default_factory=lambda: {"write_error": 0})
    delete_errors: int = 0


class EvidenceStore:
    """Writes evidence files into one directory and keeps its disk use bounded."""

    def __init__(
        self,
        directory: Path,
        *,
        max_total_bytes: int = 256 * MB,
        max_age_s: float = 30 * DAY_S,
        snaplen: int = 1_600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.max_total_bytes = max_total_bytes
        self.max_age_s = max_age_s
        self.snaplen = snaplen
        self.clock = clock
        self.counters = StoreCounters()
        self._index: dict[str, _Entry] = {}  # oldest first
        self.total_bytes = 0
        self._scanned = float("-inf")
        self._logged: set[str] = set()

    @classmethod
    def of(cls, cfg: EvidenceConfig, state_dir: Path) -> EvidenceStore:
        """The store of an ``evidence:`` section, in ``<state_dir>/evidence``."""
        return cls(
            state_dir / EVIDENCE_DIR,
            max_total_bytes=cfg.max_total_mb * MB,
            max_age_s=cfg.max_age_days * DAY_S,
            snaplen=cfg.snaplen,
        )

    def open(self) -> None:
        """Create the directory if missing (0750), read what is there, apply the bounds."""
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.prune()

    # -- writing --------------------------------------------------------------------------

    def attach(self, alert: Alert, ev: FlowEvidence) -> Alert:
        """Write ``ev`` for ``alert``; the alert with ``evidence_pcap``/``evidence_sha256``,
        or unchanged when there is nothing to write or the write failed (counted)."""
        if not ev.packets:
            return alert
        saved = self.write(alert, ev)
        if saved is None:
            return alert
        return replace(alert, evidence_pcap=str(saved.path), evidence_sha256=saved.sha256)

    def write(self, alert: Alert, ev: FlowEvidence) -> EvidenceFile | None:
        """Write one evidence file; None when it failed (counted, logged once per errno)."""
        import hashlib  # noqa: PLC0415 - OpenSSL (~4 ms) only once a file is written

        data = pcap_bytes(ev.linktype, self.snaplen, ev.packets)
        digest = hashlib.sha256(data).hexdigest()
        try:
            path = self._create(evidence_name(alert), data)
        except OSError as exc:
            self.counters.dropped["write_error"] += 1
            self._log_once("write", exc)
            return None
        now = self.clock()
        self.counters.written += 1
        self._index[path.name] = _Entry(now, len(data))
        self.total_bytes += len(data)
        if now - self._scanned >= RESCAN_S:
            self._scan()
        self._enforce(now, keep=path.name)
        return EvidenceFile(path, digest, len(data))

    def _create(self, name: str, data: bytes) -> Path:
        stem = name.removesuffix(".pcap")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for n in range(1, MAX_SUFFIX + 1):
            path = self.directory / (name if n == 1 else f"{stem}-{n}.pcap")
            try:
                fd = os.open(path, flags, FILE_MODE)
            except FileExistsError:
                continue
            try:
                os.fchmod(fd, FILE_MODE)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.close(fd)
                _unlink_quietly(path)
                raise
            os.close(fd)
            return path
        raise FileExistsError(errno.EEXIST, "every name for this alert is taken", name)

    # -- bounds ---------------------------------------------------------------------------

    def prune(self) -> None:
        """Re-read the directory and delete what is past the age and size bounds."""
        self._scan()
        self._enforce(self.clock())

    def _scan(self) -> None:
        """The index from the directory: our names only, regular files, oldest first."""
        self._scanned = self.clock()
        found: list[tuple[float, str, int]] = []
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    if not name_re().fullmatch(entry.name):
                        continue
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # deleted meanwhile (another worker)
                    found.append((st.st_mtime, entry.name, st.st_size))
        except OSError as exc:
            self._log_once("scan", exc)
            return
        found.sort()
        self._index = {name: _Entry(mtime, size) for mtime, name, size in found}
        self.total_bytes = sum(e.size for e in self._index.values())

    def _enforce(self, now: float, keep: str | None = None) -> None:
        horizon = now - self.max_age_s
        for name, entry in list(self._index.items()):
            if entry.mtime >= horizon:
                break
            self._delete(name, "age")
        for name in list(self._index):
            if self.total_bytes <= self.max_total_bytes:
                break
            if name != keep:  # never the file the alert being emitted names
                self._delete(name, "size")

    def _delete(self, name: str, why: str) -> None:
        entry = self._index.pop(name)
        self.total_bytes -= entry.size
        try:
            os.unlink(self.directory / name)
        except FileNotFoundError:
            return  # removed by someone else (another worker's prune): not ours to count
        except OSError as exc:
            self.counters.delete_errors += 1
            self._log_once("delete", exc)
            return
        self.counters.deleted[why] += 1

    def _log_once(self, what: str, exc: OSError) -> None:
        kind = f"{what}:{errno.errorcode.get(exc.errno or 0, 'unknown')}"
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.error(
            "evidence: cannot %s in %s: %s (logged once; counted in netwatch_evidence_*)",
            what,
            self.directory,
            exc,
            extra={"fields": {"step": what, "errno": kind}},
        )


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
