"""One baseline for several capture workers: the workers observe, one process decides.

With ``capture.workers`` > 1 a camera's flows are spread over worker processes by flow
hash, so no worker alone can tell whether a destination is new. The parent owns the one
real :class:`~netwatch.detect.baseline.Baseline` (and its SQLite file); each worker runs
``new_destination`` against a :class:`WorkerBaseline`, which never touches disk and never
blocks:

* a key it has already passed on (or was told about) costs a set lookup and nothing more;
* any other key is sent to the parent as a :class:`BaselineObservation`, carrying the
  candidate ``new_destination`` alert, through the injected non-blocking ``send``; when
  ``send`` refuses (the pipe is full) the observation is counted in ``send_failed`` and
  sent again at the key's next flow.

In the parent, :class:`BaselineOwner` passes each observation to the baseline, which
decides learned / known / new; the alert of a new destination is returned to be routed,
so it is emitted once however many workers saw the destination. The owner can also hand
out the keys it decided as a :class:`BaselineKnown` message, which workers apply with
:meth:`WorkerBaseline.learn` so their caches converge (optional: without it each worker
sends each key once). Messages are frozen dataclasses, picklable over a
``multiprocessing`` pipe; :class:`PipeSend` is a ``send`` that never blocks on one.

Config read: none directly (the parent passes ``learning.*``). Bounds: a worker's cache
holds at most ``max_keys`` (oldest forgotten first, counted in ``forgotten``; a forgotten
key is sent again once, and the owner answers "known").
"""

from __future__ import annotations

import select
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING

from netwatch.alerts.model import Alert
from netwatch.detect.baseline import (
    DEFAULT_MAX_DESTINATIONS,
    Baseline,
    Candidate,
    DestinationKey,
    Verdict,
)

if TYPE_CHECKING:
    from netwatch.config.schema import LearningConfig

#: Hands a message to the owner without blocking; False when it could not.
Send = Callable[[object], bool]
GroupOf = Callable[[Alert], str | None]
MAX_MESSAGE_BYTES = select.PIPE_BUF - 4  # Connection.send_bytes adds a 4-byte length


@dataclass(frozen=True, slots=True)
class BaselineObservation:
    """A worker saw ``key`` at packet time ``ts`` and does not know it: the owner decides.

    ``alert`` is the ``new_destination`` alert to emit if the key is new; ``group`` is the
    camera's group as the worker knows it (for the sinks' ``groups`` filter)."""

    key: DestinationKey
    ts: float
    alert: Alert
    group: str | None = None


@dataclass(frozen=True, slots=True)
class BaselineKnown:
    """Keys the owner has decided (learned, known or new): workers need not send them."""

    keys: tuple[DestinationKey, ...]


@dataclass(slots=True)
class WorkerCounters:
    """What a worker's baseline did (exported with the worker's metrics)."""

    sent: int = 0
    send_failed: int = 0
    forgotten: int = 0
    learnt: int = 0


class WorkerBaseline:
    """A capture worker's :class:`~netwatch.detect.baseline.DestinationBaseline`: a cache
    of keys and a non-blocking ``send`` to the owner (module docstring)."""

    def __init__(
        self,
        period_s: float,
        send: Send,
        *,
        max_keys: int = DEFAULT_MAX_DESTINATIONS,
        group_of: GroupOf | None = None,
    ) -> None:
        self._period_s = period_s
        self._send = send
        self._group_of = group_of
        self.max_keys = max_keys
        self.counters = WorkerCounters()
        self._known: OrderedDict[DestinationKey, None] = OrderedDict()

    @classmethod
    def of(
        cls, learning: LearningConfig, send: Send, group_of: GroupOf | None = None
    ) -> WorkerBaseline:
        """The ``learning:`` settings (the cache holds up to ``max_destinations`` keys)."""
        return cls(learning.period_s, send, max_keys=learning.max_destinations, group_of=group_of)

    @property
    def period_s(self) -> float:
        """The learning period (``learning.period_s``), for the alert's evidence."""
        return self._period_s

    def observe(self, key: DestinationKey, ts: float, candidate: Candidate) -> Alert | None:
        """Send an unknown key to the owner; always None (the owner emits new ones)."""
        if key in self._known:
            return None
        alert = candidate()
        group = self._group_of(alert) if self._group_of is not None else None
        if self._send(BaselineObservation(key, ts, alert, group)):
            self.counters.sent += 1
            self._remember(key)
        else:
            self.counters.send_failed += 1
        return None

    def learn(self, msg: BaselineKnown) -> None:
        """Keys the owner decided: this worker will not send them."""
        for key in msg.keys:
            if key not in self._known:
                self.counters.learnt += 1
                self._remember(key)

    def _remember(self, key: DestinationKey) -> None:
        if len(self._known) >= self.max_keys:
            self._known.popitem(last=False)
            self.counters.forgotten += 1
        self._known[key] = None

    def close(self) -> None:
        """Nothing to store: the owner keeps the baseline."""

    def __len__(self) -> int:
        return len(self._known)


@dataclass(slots=True)
class OwnerCounters:
    """Observations the owner received, by verdict (exported by the parent)."""

    received: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)
    unshared: int = 0  # decided keys not relayed: more than max_unshared were waiting


class BaselineOwner:
    """The parent's side: decides the workers' observations against the one baseline."""

    def __init__(
        self, baseline: Baseline, *, share_keys: bool = False, max_unshared: int = 100_000
    ) -> None:
        self.baseline = baseline
        self.share_keys = share_keys
        self.max_unshared = max_unshared
        self.counters = OwnerCounters()
        self._decided: list[DestinationKey] = []

    def receive(self, obs: BaselineObservation) -> Alert | None:
        """The alert to route when ``obs.key`` is a new destination, else None."""
        verdict = self.baseline.decide(obs.key, obs.ts)
        self.counters.received += 1
        by = self.counters.by_verdict
        by[verdict.value] = by.get(verdict.value, 0) + 1
        if self.share_keys and verdict in (Verdict.KNOWN, Verdict.LEARNED, Verdict.NEW):
            if len(self._decided) < self.max_unshared:
                self._decided.append(obs.key)
            else:
                self.counters.unshared += 1
        return obs.alert if verdict is Verdict.NEW else None

    def known(self, limit: int = 1_000) -> BaselineKnown | None:
        """With ``share_keys``: the keys decided since the last call (at most ``limit``),
        to relay to every worker; None when there are none."""
        if not self._decided:
            return None
        keys, self._decided = self._decided[:limit], self._decided[limit:]
        return BaselineKnown(tuple(keys))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until the baseline's changes are stored."""
        return self.baseline.flush(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Store what is pending (within ``timeout_s``); stop the store's writer."""
        self.baseline.close(timeout_s)


class PipeSend:
    """A ``send`` over a ``multiprocessing`` pipe that never blocks.

    The message is pickled here and written in one ``write`` only while the pipe has a free
    page (POLLOUT), which on Linux takes any write up to ``PIPE_BUF`` without waiting; a
    full pipe (``full``) or a message above ``PIPE_BUF`` (``too_big``; an observation is a
    few hundred bytes) is refused and counted. The reader's ``Connection.recv`` reads it
    as any ``send``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.full = 0
        self.too_big = 0
        self._poll = select.poll()
        self._poll.register(conn.fileno(), select.POLLOUT)

    def __call__(self, msg: object) -> bool:
        data = ForkingPickler.dumps(msg)
        if len(data) > MAX_MESSAGE_BYTES:
            self.too_big += 1
            return False
        if not self._poll.poll(0):
            self.full += 1
            return False
        try:
            self.conn.send_bytes(data)
        except OSError:
            return False
        return True
