"""Per-camera destination baselines for ``new_destination``: the in-memory decision.

A camera's baseline is the set of (destination, port, proto) it used during its learning
period, which starts when the camera is first seen and lasts ``learning.period_s``
(packet time). The destination is the name the camera asked for when there is one, else
the peer's network (/24 for IPv4, /48 for IPv6), so a cloud service that answers from many
addresses is one destination. After learning, a destination not in the baseline is new
once: it is added and reported, then known.

:class:`Baseline` decides in memory (a set lookup per flow end) and does no I/O itself: each
change goes to an injected :class:`BaselineStore` whose ``record`` never blocks (the SQLite
edge, :class:`~netwatch.detect.baseline_store.SqliteBaselineStore`, writes on its own
thread). Without a store the baseline lives in memory only (``netwatch replay`` without a
state directory). Rules see the narrower :class:`DestinationBaseline` interface, which the
capture workers implement too (:mod:`netwatch.detect.baseline_share`): there one process
owns the baseline and the workers send it observations.

Bounds, each counted in :class:`BaselineCounters`: at most ``max_per_device`` destinations
per camera (``learning.max_per_device``; a scan must not grow the baseline) and at most
``max_destinations`` in all (``learning.max_destinations``; 300 cameras x 10k destinations
must not take 740 MB); the cameras tracked share the global bound. A destination dropped by
a bound is not reported (a scan is reported by the other rules and the router's per-device
bound). Known limit: the first-seen time of a camera is the first observation the owner
receives; with several workers that can be a little later than the camera's first flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from netwatch.alerts.model import Alert
from netwatch.detect.baseline_store import SqliteBaselineStore, StoreCounters
from netwatch.detect.destinations import (
    BaselineChange,
    BaselineSnapshot,
    DestinationAdded,
    DestinationKey,
    DeviceFirstSeen,
    destination_of,
)

if TYPE_CHECKING:
    from netwatch.config.schema import LearningConfig

__all__ = [
    "Baseline",
    "BaselineCounters",
    "BaselineStore",
    "Candidate",
    "DestinationBaseline",
    "DestinationKey",
    "Verdict",
    "destination_of",
]

DEFAULT_PERIOD_S = 604_800.0
DEFAULT_MAX_PER_DEVICE = 10_000
DEFAULT_MAX_DESTINATIONS = 200_000

#: Builds the candidate ``new_destination`` alert; called only when it may be needed.
Candidate = Callable[[], Alert]


BASELINE_FILE = "baseline.sqlite"
"""The baseline's file name in ``state_dir``."""


class Verdict(StrEnum):
    """What the baseline made of one observation."""

    KNOWN = "known"
    LEARNED = "learned"  # added during the camera's learning period
    NEW = "new"  # added after it: report it
    CAPPED_DEVICE = "capped_device"  # not added: the camera has max_per_device
    CAPPED_GLOBAL = "capped_global"  # not added: the baseline has max_destinations


class BaselineStore(Protocol):
    """Where a baseline's changes are kept; ``record`` must never block nor raise."""

    counters: StoreCounters

    def load(self, max_destinations: int, max_per_device: int) -> BaselineSnapshot: ...

    def record(self, change: BaselineChange) -> None: ...

    def flush(self, timeout_s: float = 5.0) -> bool: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class DestinationBaseline(Protocol):
    """What ``new_destination`` needs: the learning period, and one call per flow end that
    returns the alert to yield now (or None: known, learning, capped, or handed to the
    process that owns the baseline, which emits it)."""

    @property
    def period_s(self) -> float: ...

    def observe(self, key: DestinationKey, ts: float, candidate: Candidate) -> Alert | None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class BaselineCounters:
    """Verdicts so far (exported as metrics; ``known`` is not counted, it is the hot path)."""

    learned: int = 0
    new: int = 0
    capped_device: int = 0
    capped_global: int = 0


class Baseline:
    """The learned destinations of every camera: the one real decision (module docstring).

    ``path`` is a shorthand for ``store=SqliteBaselineStore(path)``."""

    def __init__(
        self,
        path: Path | None = None,
        period_s: float = DEFAULT_PERIOD_S,
        *,
        max_per_device: int = DEFAULT_MAX_PER_DEVICE,
        max_destinations: int = DEFAULT_MAX_DESTINATIONS,
        store: BaselineStore | None = None,
    ) -> None:
        if store is None and path is not None:
            store = SqliteBaselineStore(path)
        self.store = store
        self._period_s = period_s
        self.max_per_device = max_per_device
        self.max_destinations = max_destinations
        self.counters = BaselineCounters()
        snap = store.load(max_destinations, max_per_device) if store else BaselineSnapshot.empty()
        self._devices: dict[str, float] = dict(snap.devices)
        self._known: set[DestinationKey] = set(snap.keys)
        self._per_device: dict[str, int] = {}
        for key in self._known:
            self._per_device[key.device] = self._per_device.get(key.device, 0) + 1

    @classmethod
    def of(cls, learning: LearningConfig, path: Path | None) -> Baseline:
        """The ``learning:`` settings, stored in ``path`` (None: in memory). Loads the file:
        call it at start, in the process that owns the baseline."""
        return cls(
            path,
            learning.period_s,
            max_per_device=learning.max_per_device,
            max_destinations=learning.max_destinations,
        )

    @property
    def period_s(self) -> float:
        """The learning period (``learning.period_s``)."""
        return self._period_s

    def learning(self, device: str, ts: float) -> bool:
        """True while ``device`` is in its learning period (starting it if new)."""
        first = self._devices.get(device)
        if first is None:
            self._devices[device] = first = ts
            if self.store is not None:  # (no record built without a store)
                self.store.record(DeviceFirstSeen(device, ts))
        return ts < first + self._period_s

    def decide(self, key: DestinationKey, ts: float) -> Verdict:
        """Record one observation of ``key`` at packet time ``ts``; what it was."""
        if key in self._known:
            return Verdict.KNOWN
        count = self._per_device.get(key.device, 0)
        if count >= self.max_per_device:
            self.counters.capped_device += 1
            return Verdict.CAPPED_DEVICE
        if self._full(key.device):
            self.counters.capped_global += 1
            return Verdict.CAPPED_GLOBAL
        learning = self.learning(key.device, ts)
        self._per_device[key.device] = count + 1
        self._known.add(key)
        if self.store is not None:  # (no record built without a store: every new key)
            self.store.record(DestinationAdded(key, ts, learning))
        if learning:
            self.counters.learned += 1
            return Verdict.LEARNED
        self.counters.new += 1
        return Verdict.NEW

    def _full(self, device: str) -> bool:
        """The global bound: on keys, and on cameras tracked (a camera is tracked from its
        first destination added)."""
        if len(self._known) >= self.max_destinations:
            return True
        return device not in self._devices and len(self._devices) >= self.max_destinations

    def observe(self, key: DestinationKey, ts: float, candidate: Candidate) -> Alert | None:
        """:class:`DestinationBaseline`: the candidate alert when ``key`` is new."""
        return candidate() if self.decide(key, ts) is Verdict.NEW else None

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until the changes so far are stored; True without a store."""
        return self.store.flush(timeout_s) if self.store is not None else True

    def close(self, timeout_s: float = 5.0) -> None:
        """Store what is pending (within ``timeout_s``) and stop the store's writer."""
        if self.store is not None:
            self.store.close(timeout_s)

    def __len__(self) -> int:
        return len(self._known)
