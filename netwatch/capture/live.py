"""Live interfaces as a daemon source: one TPACKET_V3 ring per interface, polled together.

:class:`LiveSource` opens a :class:`~netwatch.capture.afpacket.Ring` on each interface of
``capture.interfaces`` and hands the daemon one :class:`~netwatch.capture.source.Block` per
ring block (every frame the kernel put in it, laid out as pcap records for the fused loop),
or an empty batch after ``max_wait_s`` without traffic, so the daemon's housekeeping never
waits on a quiet mirror port. Several interfaces (two SPAN sessions, say)
are polled together and each keeps its own counters, named by interface in the metrics.

Interface trouble never stops the daemon: an interface that goes down is counted and logged
(the kernel resumes delivery when it comes back up); an interface that is removed, or that
cannot be opened at start or later, is closed and re-opened with exponential backoff (1 s
doubling to 60 s) while the daemon keeps serving metrics and delivering alerts. Only when no
interface at all can be opened at start does :meth:`LiveSource.open` raise, so a typo in the
config is an error at start-up rather than a silent retry loop.

Registered as the ``afpacket`` capture source (``capture.method: afpacket``, the default).
:func:`ring_settings` turns ``capture.*`` into :class:`RingSettings`, compiling the filter
and checking that every interface exists (the worker pool uses it too).

Config read: ``capture.interfaces`` and the ring settings (:class:`RingSettings`):
``capture.snaplen``, ``capture.ring_mb``, ``capture.block_kb``, ``capture.promisc``,
``capture.bpf``.
Known limit: packets of different interfaces are not merged in time order (each batch is
one interface's block, in its own order).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from netwatch.capture.afpacket import (
    Ring,
    RingError,
    RingSettings,
    interface_present,
    wait_readable,
)
from netwatch.capture.bpf import compile_filter
from netwatch.capture.pcap import Record
from netwatch.capture.source import Block, CaptureCounts, Source

if TYPE_CHECKING:
    from netwatch.config import Config

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
BLOCKS_PER_TURN = 8  # blocks taken from one ring before the others get a turn


@dataclass(slots=True)
class _Port:
    """One interface: its ring (None while closed) and its history."""

    name: str
    ring: Ring | None = None
    errors: int = 0
    next_try: float = 0.0
    backoff_s: float = MIN_BACKOFF_S
    # counters of rings closed earlier (re-opened after removal)
    received: int = 0
    kernel_drops: int = 0
    interface_drops: int = 0


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


class LiveSource(Source, kind="afpacket"):
    """``capture.interfaces`` as batches for the daemon (see the module docstring)."""

    def __init__(
        self,
        interfaces: Sequence[str],
        settings: RingSettings,
        *,
        max_wait_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        ring_factory: Callable[[str, RingSettings], Ring] = Ring,
    ) -> None:
        self.settings = settings
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._ring = ring_factory
        self._ports = [_Port(name) for name in interfaces]
        self._lock = threading.Lock()  # counts() runs on the scrape thread
        self.packets = 0

    @classmethod
    def from_config(cls, cfg: Config) -> Self:
        """Checks the interfaces and compiles the filter (RingError/BpfError); opens nothing."""
        return cls(cfg.capture.interfaces, ring_settings(cfg))

    @property
    def interfaces(self) -> list[str]:
        return [p.name for p in self._ports]

    def open(self) -> None:
        """Open every ring; raises RingError only when none could be opened."""
        errors = []
        for port in self._ports:
            err = self._try_open(port)
            if err is not None:
                errors.append(err)
        if errors and len(errors) == len(self._ports):
            raise RingError(0, "; ".join(errors))

    def _try_open(self, port: _Port) -> str | None:
        try:
            ring = self._ring(port.name, self.settings)
        except RingError as exc:
            port.errors += 1
            port.next_try = self._clock() + port.backoff_s
            log.warning(
                "capture on %s failed: %s; retrying in %.0f s",
                port.name,
                exc.strerror or exc,
                port.backoff_s,
                extra={"fields": {"interface": port.name, "retry_s": port.backoff_s}},
            )
            port.backoff_s = min(MAX_BACKOFF_S, port.backoff_s * 2)
            return str(exc.strerror or exc)
        with self._lock:
            port.ring = ring
        port.backoff_s = MIN_BACKOFF_S
        log.info("capturing on %s", port.name, extra={"fields": {"interface": port.name}})
        return None

    def batches(self, stop: threading.Event) -> Iterator[list[Record] | Block | None]:
        """Blocks of frames as they come, ``[]`` after ``max_wait_s`` of quiet, until stop."""
        try:
            while not stop.is_set():
                self._retry_closed()
                open_rings = [p.ring for p in self._ports if p.ring is not None]
                got = False
                for port in self._ports:
                    ring = port.ring
                    for _ in range(BLOCKS_PER_TURN if ring is not None else 0):
                        assert ring is not None
                        block = ring.read_block_pcap()
                        if block is None:
                            break
                        got = True
                        self.packets += block.count
                        yield block
                if got:
                    continue
                if not open_rings:  # every interface is waiting out its backoff
                    stop.wait(self.max_wait_s)
                for ring in wait_readable(open_rings, self.max_wait_s):
                    self._check_error(ring)
                yield []
        finally:
            self.close()

    def _retry_closed(self) -> None:
        now = self._clock()
        for port in self._ports:
            if port.ring is None and now >= port.next_try:
                self._try_open(port)

    def _check_error(self, ring: Ring) -> None:
        err = ring.pending_error()
        if not err and ring.ready():
            return
        port = next(p for p in self._ports if p.ring is ring)
        if err:
            port.errors += 1
            log.warning(
                "capture on %s: %s",
                port.name,
                os.strerror(err),
                extra={"fields": {"interface": port.name, "errno": err}},
            )
        if not interface_present(port.name):
            log.warning("interface %s is gone; re-opening it when it returns", port.name)
            self._close_port(port)
            port.next_try = self._clock() + port.backoff_s

    def _close_port(self, port: _Port) -> None:
        ring = port.ring
        if ring is None:
            return
        stats = ring.poll_kernel_stats()
        with self._lock:
            port.received += stats.packets
            port.kernel_drops += stats.kernel_drops
            port.interface_drops += ring.interface_drops(fresh=True)
            port.ring = None
        ring.close()

    def counts(self) -> dict[str, CaptureCounts]:
        """Per interface: delivered packets, kernel and interface drops (since start)."""
        out = {}
        with self._lock:
            for port in self._ports:
                received, kernel, iface = port.received, port.kernel_drops, port.interface_drops
                ring = port.ring
                if ring is not None:
                    try:
                        stats = ring.poll_kernel_stats()
                    except OSError:
                        stats = ring.stats
                    received += stats.packets
                    kernel += stats.kernel_drops
                    iface += ring.interface_drops()
                out[port.name] = CaptureCounts(
                    received, kernel, iface, errors=port.errors, up=ring is not None
                )
        return out

    def close(self) -> None:
        for port in self._ports:
            self._close_port(port)
