"""Alert delivery: the router's alerts go through the durable outbox to every sink.

``enqueue(alert, count)`` commits one outbox item per sink whose filters accept the alert,
before anything is sent. ``pump(now, budget)`` sends the due items of each sink in batches
(``Sink.max_batch``), deletes what was delivered and reschedules the rest with backoff; once
a batch of a sink fails, that sink waits for its next turn. It never raises: a sink that
raises counts as a failure (its message scrubbed of the sink's secrets), a permanent failure
(HTTP 4xx other than 408/429) is dropped, logged and counted.

Config read: ``sinks`` (through the built sinks). Known limits: delivery is at-least-once
(a crash between send and commit re-sends); items of sinks no longer configured stay queued.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netwatch.alerts.model import Alert
from netwatch.outbox import Item, Outbox
from netwatch.sinks.base import Delivery, Sink

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SinkStats:
    """Counters of one sink (alerts, not requests)."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_success: float | None = None  # wall time of the last accepted batch


class Deliverer:
    """Feeds the outbox from alerts and drains it into the sinks."""

    def __init__(
        self, outbox: Outbox, sinks: Iterable[Sink], clock: Callable[[], float] = time.time
    ) -> None:
        self.outbox = outbox
        self.sinks = {s.name: s for s in sinks}
        self._clock = clock
        self.stats = {name: SinkStats() for name in self.sinks}
        self._sending = threading.Lock()  # pump vs. replace_sinks

    def replace_sinks(self, sinks: Iterable[Sink]) -> None:
        """Swap in newly built sinks (a reload); the old ones are closed. Items queued for a
        sink that is no longer configured stay in the outbox until it comes back."""
        new = {s.name: s for s in sinks}
        with self._sending:
            old, self.sinks = self.sinks, new
            self.stats = {name: self.stats.get(name) or SinkStats() for name in new}
        for sink in old.values():
            sink.close()

    def reopen(self) -> None:
        """Reopen the files of file sinks (logrotate moved them), between two sends."""
        with self._sending:
            for sink in self.sinks.values():
                reopen = getattr(sink, "reopen", None)
                if reopen is not None:
                    reopen()

    def enqueue(self, alert: Alert, count: int = 1, group: str | None = None) -> int:
        """Queue the alert for each accepting sink; returns how many sinks took it."""
        record = alert.record(count)
        key = json.dumps(alert.identity)
        now = self._clock()
        taken = 0
        for name, sink in self.sinks.items():
            if sink.accepts(record, group):
                self.outbox.put(name, key, record, now)
                sink.note(record, now)
                self.stats[name].enqueued += 1
                taken += 1
        return taken

    def repeat(self, alert: Alert, group: str | None = None) -> None:
        """A suppressed repeat: nothing is queued, but sinks that keep alerts firing hear of it."""
        record = alert.record(1)
        now = self._clock()
        for sink in self.sinks.values():
            if sink.accepts(record, group):
                sink.note(record, now, queued=False)

    def pump(self, now: float | None = None, budget: int = 100) -> int:
        """Try up to ``budget`` due items per sink; returns how many were delivered."""
        now = self._clock() if now is None else now
        with self._sending:
            return self._pump(now, budget)

    def _pump(self, now: float, budget: int) -> int:
        done = 0
        for name, sink in self.sinks.items():
            items = self.outbox.due(now, budget, sink=name)
            step = max(1, sink.max_batch)
            for start in range(0, len(items), step):
                batch = items[start : start + step]
                result = self._send(sink, batch)
                self._settle(sink, batch, result, now)
                if not result.ok:
                    break
                done += len(batch)
            try:
                sink.refresh(now)
            except Exception as exc:  # isolated like a failed send
                log.warning("sink %s: refresh failed: %s", name, sink.scrub(str(exc)))
        return done

    def close(self) -> None:
        """Close every sink, then the outbox."""
        with self._sending:
            for sink in self.sinks.values():
                sink.close()
            self.outbox.close()

    def _send(self, sink: Sink, batch: list[Item]) -> Delivery:
        try:
            return sink.send([item.payload for item in batch])
        except Exception as exc:  # a failing sink is isolated and counted
            return Delivery.failure(sink.scrub(f"{type(exc).__name__}: {exc}"))

    def _settle(self, sink: Sink, batch: list[Item], result: Delivery, now: float) -> None:
        stats = self.stats[sink.name]
        if result.ok:
            for item in batch:
                self.outbox.delivered(item.id)
            stats.delivered += len(batch)
            stats.last_success = now
            return
        if result.permanent:
            for item in batch:
                self.outbox.delivered(item.id)
            stats.dropped += len(batch)
            log.error("sink %s dropped %d alert(s): %s", sink.name, len(batch), result.error)
            return
        for item in batch:
            self.outbox.failed(item.id, now, result.retry_after)
        stats.failed += len(batch)
        log.warning("sink %s failed %d alert(s): %s", sink.name, len(batch), result.error)
