"""Capture files as a daemon source: batches of packets, optionally paced in real time.

:class:`FileSource` reads ``capture.files`` in order and hands the daemon batches of at most
``max_batch`` packets, so the daemon can feed its watchdog, check signals and run its
periodic work between batches however large a file is. With ``capture.loop`` it starts
over after the last file; each pass ends with an :data:`END_OF_PASS` marker (a looped pass
replays the same 5-tuples, so the daemon ends every flow between passes).

With ``capture.realtime`` the packets are released at the capture's own pace
(``capture.speed`` times faster), and their timestamps are shifted so that the first
packet of each pass happens "now": the pipeline, the alerts and Alertmanager then see
times as a live capture would give them. A batch never waits longer than
``max_wait_s`` of wall time, so a quiet stretch in the file still returns to the daemon.
Without pacing, packets keep their recorded times and are read as fast as possible.

Every capture source subclasses :class:`Source`, which registers it in :data:`SOURCES` under
its ``kind`` (the class name without ``Source``, lower case, unless the class names one:
``file``, ``afpacket``, ``tshark``); a kind defined twice fails at import.
:mod:`netwatch.capture.registry` picks the source the config asks for through it.

Config read: ``capture.files``, ``capture.loop``, ``capture.realtime``, ``capture.speed``.
Known limits: pacing sleeps per batch, so packets within one wait slice (``max_wait_s``)
are released together; a stopped source returns at the next batch boundary.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from netwatch.capture.files import CaptureError, MappedPcap, add_problems, open_capture
from netwatch.capture.pcap import Record as Packet
from netwatch.registry import register, snake_name

if TYPE_CHECKING:
    from netwatch.config import Config


@dataclass(slots=True)
class CaptureCounts:
    """Packets one capture source delivered, and those it lost (kernel ring, interface)."""

    received: int = 0
    dropped_kernel: int = 0
    dropped_interface: int = 0
    errors: int = 0  # open failures, interface down or removed
    up: bool = True  # capturing now


@dataclass(frozen=True, slots=True)
class Block:
    """Frames already laid out as classic pcap records (nanosecond stamps), so the fused
    per-packet loop (:mod:`netwatch.fastloop`) can take them as it takes a mapped file."""

    mapped: MappedPcap
    count: int
    last_ts: float


Batch = list[Packet]


SOURCES: dict[str, type[Source]] = {}
"""Every capture source class by kind, filled as the classes are defined."""


class Source(abc.ABC):
    """What the daemon needs of a capture source (files, live rings, tshark).

    A subclass registers itself under ``kind`` (``class LiveSource(Source, kind="afpacket")``;
    by default the class name without ``Source``, in snake case) and builds itself from the
    config in :meth:`from_config`, without opening anything; :meth:`open` then opens what
    needs privileges, before they are dropped.
    """

    kind: ClassVar[str] = ""
    #: True for a live capture (packet times are now: idle time advances the flow table,
    #: capture loss is watched); False for a replay of files.
    live: ClassVar[bool] = True
    packets: int
    """Packets delivered so far, all interfaces."""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = kind or snake_name(cls.__name__, "Source")
        register(SOURCES, cls.kind, cls, "capture source kind")

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Config) -> Self:
        """The source ``capture.*`` describes; checks it, opens nothing."""

    def open(self) -> None:  # noqa: B027 (most sources have nothing to open early)
        """Open what needs privileges (sockets, rings); runs before the privilege drop."""

    @abc.abstractmethod
    def batches(self, stop: threading.Event) -> Iterator[Batch | Block | None]:
        """Batches of packets (or blocks) until the input ends or ``stop`` is set."""

    @abc.abstractmethod
    def counts(self) -> dict[str, CaptureCounts]:
        """Per interface: packets delivered and lost so far."""

    def close(self) -> None:  # noqa: B027 (most sources close as their batches end)
        """Release what :meth:`open` and :meth:`batches` hold (idempotent)."""


END_OF_PASS: Final = None
"""Yielded (instead of a batch) after the last file of each pass."""


class FileSource(Source):
    """``capture.files`` as batches for the daemon (see the module docstring)."""

    live = False

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        loop: bool = False,
        realtime: bool = False,
        speed: float = 1.0,
        max_batch: int = 4096,
        max_wait_s: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.paths = tuple(paths)
        self.loop = loop
        self.realtime = realtime
        self.speed = speed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._clock = clock
        self.passes = 0
        self.packets = 0
        self.problems: dict[str, int] = {}  # file problems met, by kind (add_problems)

    @classmethod
    def from_config(cls, cfg: Config) -> Self:
        c = cfg.capture
        return cls(c.files, loop=c.loop, realtime=c.realtime, speed=c.speed)

    def counts(self) -> dict[str, CaptureCounts]:
        """Packets read, under the interface name ``file`` (files drop nothing)."""
        return {"file": CaptureCounts(received=self.packets)}

    def batches(self, stop: threading.Event) -> Iterator[Batch | None]:
        """Batches of packets, :data:`END_OF_PASS` after each pass, until done or ``stop``."""
        while not stop.is_set():
            yield from self._one_pass(stop)
            self.passes += 1
            yield END_OF_PASS
            if not self.loop:
                return

    def _one_pass(self, stop: threading.Event) -> Iterator[Batch]:
        origin: tuple[float, float] | None = None  # (first packet time, wall time it maps to)
        for path in self.paths:
            if stop.is_set():
                return
            try:
                cap = open_capture(path)
            except CaptureError:
                if self.passes:  # a file that went away after the first pass: skip it
                    continue
                raise
            with cap:
                batch: Batch = []
                for pkt in cap.packets():
                    if self.realtime:
                        if origin is None:
                            origin = (pkt[0], self._clock())
                        due = origin[1] + (pkt[0] - origin[0]) / self.speed
                        pkt = (due, pkt[1], pkt[2], pkt[3])
                        if due > self._clock():
                            if batch:
                                yield batch
                                batch = []
                            # wait in slices, handing an empty batch back after each one
                            while (left := due - self._clock()) > 0:
                                if stop.wait(min(left, self.max_wait_s)):
                                    return
                                yield []
                    batch.append(pkt)
                    self.packets += 1
                    if len(batch) >= self.max_batch:
                        yield batch
                        batch = []
                        if stop.is_set():
                            return
                if batch:
                    yield batch
            add_problems(self.problems, cap.stats)
