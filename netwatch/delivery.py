"""Alert delivery: the router's alerts go through the durable outbox to every sink.

Threads and who touches what:

- the capture thread calls :meth:`Deliverer.enqueue` (and ``repeat``, and ``enqueue_ended``
  for an incident that ended): it appends to a
  bounded in-memory intake (``intake_max`` entries; over it the entry is dropped and counted
  as ``intake_full``) and returns at once; it never touches SQLite and never raises;
- one store thread moves the intake into the outbox in one transaction per batch and looks
  after the storage (:class:`Store`);
- one sender thread per sink claims that sink's due items, sends them with a total deadline
  per attempt (the sink's ``timeout_s``) outside any database lock, then settles them
  (delivered: deleted; permanent failure, HTTP 4xx: dropped and counted; otherwise
  rescheduled with backoff). A slow sink therefore never delays another. The same thread
  runs the sink's ``refresh`` (Alertmanager re-sends) and persists the sink's state.

Storage faults (:class:`Store`): any ``sqlite3.Error``/``OSError`` of the outbox file (corrupt,
deleted, read-only or full state directory) is logged (one structured line per kind and
minute), counted and survived: items go to an in-memory SQLite outbox with the same code and
bounds, are still delivered, and move back into the file once it can be re-opened (every
``reopen_s``); a corrupt file is moved aside as ``outbox.sqlite.corrupt-<time>`` (never
deleted), then created anew. A file deleted or replaced under the running daemon is
re-created and the open connection's items are moved into it.

Life cycle: the constructor has no side effects. :meth:`Deliverer.open` opens (creates) the
outbox file and returns the paths it created (the daemon calls it before dropping privileges
and gives those paths to the target user); :meth:`Deliverer.start` starts the threads;
:meth:`Deliverer.shutdown` stores the intake, lets the senders drain until one monotonic
deadline, stops the threads and closes everything, never raising; what is not delivered stays
in the outbox. Without threads (tests, replay), :meth:`Deliverer.pump` does one round on the
calling thread.

Incident ends (:class:`~netwatch.alerts.model.IncidentEnd`) take the same path (intake,
outbox, sender, counted per sink) under a key of their own (the identity and ``ended``), so
an end never merges into a firing alert still queued; each sink decides whether it takes
ends (its ``accepts``, the config's ``ended``); :attr:`Deliverer.ended` counts the ends
queued for at least one sink.

Config read: ``sinks`` (through the built sinks), ``alerts.outbox_max_rows`` and
``alerts.outbox_max_mb`` (through :meth:`Deliverer.from_config`). Known limits: delivery is
at-least-once (a crash between send and commit re-sends); items of sinks no longer
configured stay queued; a sink that ignores ``cutoff`` (a custom one) can outlive the
shutdown deadline: its thread is abandoned (a daemon thread) and its items stay queued.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from netwatch.alerts.grouping import members, regroup
from netwatch.alerts.model import Alert, IncidentEnd, Status
from netwatch.config.schema import AlertsConfig
from netwatch.outbox import Entry, Item, Outbox, OutboxLimits
from netwatch.sinks.base import Delivery, Sink

log = logging.getLogger(__name__)

OUTBOX_FILE: Final = "outbox.sqlite"
INTAKE_MAX: Final = 10_000
STORE_BATCH: Final = 2_000  # intake entries per transaction
MIGRATE_BATCH: Final = 1_000  # rows moved per step from a fallback outbox
POLL_S: Final = 1.0  # a sender's idle wait; also how often refresh runs
REOPEN_S: Final = 5.0  # how often a failed outbox file is tried again
LOG_EVERY_S: Final = 60.0  # at most one storage-fault line per kind per minute
ABORT_MARGIN_S: Final = 0.25  # attempts in flight at shutdown end this long before the deadline
SQLITE_CORRUPT: Final = 11
SQLITE_NOTADB: Final = 26
MEMORY: Final = ":memory:"
StorageError = (sqlite3.Error, OSError)


@dataclass(slots=True)
class SinkStats:
    """Counters of one sink (alerts, not requests)."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_success: float | None = None  # wall time of the last accepted batch


@dataclass(frozen=True, slots=True)
class StorageHealth:
    """The outbox storage as the metrics see it."""

    errors: int  # storage faults survived
    ok: bool  # the outbox file is in use and its last operation succeeded
    in_memory: bool  # items are kept in the in-memory fallback
    rows: int
    bytes: int
    dropped: Mapping[str, int]  # items dropped, by reason
    intake: int  # entries waiting in the intake


class DrainResult(NamedTuple):
    """What :meth:`Deliverer.shutdown` left behind."""

    left: int  # deliveries still in the outbox
    stuck: tuple[str, ...]  # sinks whose sender did not stop by the deadline


class Store:
    """The outbox behind a fault barrier: a file outbox with an in-memory fallback.

    Every method catches storage errors (logged, counted, the fallback takes over) and never
    raises them. ``path`` None: ``primary`` is used as is (and the fallback on a fault)."""

    def __init__(
        self,
        path: Path | None,
        factory: Callable[[str], Outbox],
        *,
        primary: Outbox | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        reopen_s: float = REOPEN_S,
        pending: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.path = path
        self._pending = pending
        self._factory = factory
        self._clock = clock
        self._mono = monotonic
        self.reopen_s = reopen_s
        self.current: Outbox | None = primary
        self.file: Outbox | None = primary if path is None else None
        self._old: list[Outbox] = []  # fallbacks and stale connections to move into current
        self._identity: tuple[int, int] | None = None
        self._corrupt = False
        self._next_reopen = 0.0
        self._logged: dict[str, float] = {}
        self._lock = threading.RLock()  # guards current/_old swaps (not the SQL)
        self.errors = 0
        self.epoch = 0  # bumped whenever ``current`` changes (sinks then save all state)
        self.dropped: dict[str, int] = {}
        self.closed = False
        self.moved_aside: list[Path] = []

    # ------------------------------------------------------------------ opening

    def open(self) -> list[Path]:
        """Open (create) the outbox file; returns the paths this created (directories and
        the file). On failure the in-memory fallback is used and nothing raises."""
        if self.path is None or self.file is not None:
            return []
        created = [p for p in (*reversed(self.path.parents), self.path) if not p.exists()]
        self._open_file()
        if self.current is None:
            self._use(self._memory())
        return [p for p in created if p.exists()]

    def _open_file(self) -> bool:
        """Open the file (a corrupt one is moved aside first); False on a storage error."""
        assert self.path is not None
        try:
            if self._corrupt and self._unreadable():
                self._move_aside()
            try:
                box = self._factory(str(self.path))
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise
                self._move_aside()  # not a database at all: keep it aside, start afresh
                box = self._factory(str(self.path))
            st = os.stat(self.path)
        except StorageError as exc:
            self._fault("open", exc)
            return False
        self._corrupt = False
        with self._lock:
            if self.current is not None:
                self._old.append(self.current)
            self.file = self.current = box
            self._identity = (st.st_dev, st.st_ino)
            self.epoch += 1
        return True

    def _unreadable(self) -> bool:
        """True when the file exists but is not a sound SQLite database."""
        assert self.path is not None
        if not self.path.exists():
            return False
        try:
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                row = db.execute("PRAGMA quick_check").fetchone()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            return _is_corrupt(exc)
        return row is None or row[0] != "ok"

    def _move_aside(self) -> None:
        assert self.path is not None
        if not self.path.exists():
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        os.replace(self.path, aside)
        journal = self.path.with_name(self.path.name + "-journal")
        if journal.exists():
            os.replace(journal, aside.with_name(aside.name + "-journal"))
        self.moved_aside.append(aside)
        log.error(
            "outbox %s is corrupt: moved aside to %s, starting a new one",
            self.path,
            aside,
            extra={"fields": {"path": str(self.path), "moved_to": str(aside)}},
        )

    def _memory(self) -> Outbox:
        return self._factory(MEMORY)

    def _use(self, box: Outbox) -> None:
        with self._lock:
            self.current = box
            self.epoch += 1

    # ------------------------------------------------------------------ faults

    def _fault(self, op: str, exc: BaseException, box: Outbox | None = None) -> None:
        """Count and log a storage error; ``box`` (the outbox that failed, if any) is left:
        a failed file for a later re-open, the current outbox for a new in-memory one."""
        with self._lock:
            self.errors += 1
            self._log_fault(op, exc)
            if _is_corrupt(exc):
                self._corrupt = True
            if box is None:
                return
            if box is self.file:
                self.file = None
                with contextlib.suppress(*StorageError):
                    box.close()
                self._next_reopen = self._mono() + self.reopen_s
            if box is self.current:
                if box.path == MEMORY:
                    self._old.append(box)  # whatever it still holds moves on later
                self._use(self._memory())

    def _log_fault(self, op: str, exc: BaseException) -> None:
        kind = f"{op}:{type(exc).__name__}"
        now = self._mono()
        if now - self._logged.get(kind, -LOG_EVERY_S) < LOG_EVERY_S:
            return
        self._logged[kind] = now
        log.error(
            "outbox storage fault (%s): %s; alerts are kept in memory until it recovers",
            op,
            exc,
            extra={
                "fields": {
                    "op": op,
                    "error": type(exc).__name__,
                    "detail": str(exc),
                    "path": str(self.path or MEMORY),
                    "errors": self.errors,
                }
            },
        )

    def _try(self, op: str, fn: Callable[[Outbox], Any], default: Any = None) -> Any:
        """``fn(current)``; on a storage error, once more on the fallback."""
        for _ in range(2):
            box = self._box()
            if box is None:
                return default
            try:
                return fn(box)
            except StorageError as exc:
                self._fault(op, exc, box)
        return default

    def _box(self) -> Outbox | None:
        with self._lock:
            if self.closed:
                return None
            if self.current is None:
                if self.path is not None:
                    self.open()
                else:
                    self._use(self._memory())
            return self.current

    def on_drop(self, reason: str, n: int) -> None:
        """Count dropped items (the outboxes' eviction hook, and the intake's)."""
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    # ------------------------------------------------------------------ queueing

    def put_many(self, entries: Sequence[Entry]) -> None:
        """Commit entries; one that is not JSON is dropped (``invalid``), the rest kept."""
        if not entries:
            return
        try:
            self._try("put", lambda box: box.put_many(entries))
        except ValueError:
            for entry in entries:
                try:
                    self._try("put", functools.partial(_put_one, entry=entry))
                except ValueError:
                    self.on_drop("invalid", 1)

    def claim(self, sink: str, now: float, limit: int) -> tuple[Outbox | None, list[Item]]:
        """Due items of ``sink``, in flight from now on, and the outbox that holds them."""
        box = self._box()
        if box is None:
            return None, []
        try:
            return box, box.claim(sink, now, limit)
        except StorageError as exc:
            self._fault("claim", exc, box)
            return None, []

    def settle(self, box: Outbox, op: str, fn: Callable[[Outbox], Any]) -> None:
        """Settle claimed items in the outbox they came from (never raises)."""
        if self.closed:
            return
        try:
            fn(box)
        except StorageError as exc:
            if box is self.current or box is self.file:
                self._fault(op, exc, box)
            # a fallback already replaced: the items stay where they were (re-sent later)

    # ------------------------------------------------------------------ upkeep

    def maintain(self) -> None:
        """Store-thread upkeep: notice a deleted file, re-open a failed one, move fallback
        items back. Never raises."""
        if self.closed or self.path is None:
            return
        if self.file is not None and self._replaced():
            self._fault("check", FileNotFoundError(f"outbox {self.path} was deleted or replaced"))
            with self._lock:
                stale, self.file = self.file, None
                self._old.append(stale)  # its waiting items move into the new file
                if self.current is stale:
                    self.current = None
            if not self._open_file() and self.current is None:
                self._use(self._memory())
        if self.file is None and self._mono() >= self._next_reopen:
            self._next_reopen = self._mono() + self.reopen_s
            self._open_file()
        self._migrate()

    def persist(self) -> int:
        """At shutdown: move what the in-memory fallback holds into the file if at all
        possible; returns the items that stay in memory only (lost at exit, logged)."""
        if self.closed:
            return 0
        if self.path is not None and self.file is None:
            self._open_file()
        for _ in range(10_000):
            before = sum(box.totals()[0] for box in self._old)
            self._migrate()
            after = sum(box.totals()[0] for box in self._old)
            if not self._old or after >= before:
                break
        boxes = [*self._old, self.current]
        lost = sum(b.totals()[0] for b in boxes if b is not None and b.path == MEMORY)
        if lost:
            log.error(
                "%d alert deliveries held in memory are lost at exit (outbox unavailable)",
                lost,
                extra={"fields": {"lost": lost, "path": str(self.path or MEMORY)}},
            )
        return lost

    def _replaced(self) -> bool:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def _migrate(self) -> None:
        """Move waiting items of old outboxes into the current one; close emptied ones."""
        for old in list(self._old):
            target = self.current
            if target is None or target is old:
                continue
            try:
                rows = old.take_waiting(MIGRATE_BATCH)
            except StorageError:
                rows = []
            if rows:
                try:
                    target.add_rows(rows)
                except StorageError as exc:
                    with contextlib.suppress(*StorageError):
                        old.add_rows(rows)
                    self._fault("migrate", exc, target)
                    return
            with contextlib.suppress(*StorageError):
                if old.totals()[0] == 0:
                    old.close()
                    self._old.remove(old)

    # ------------------------------------------------------------------ figures

    def _boxes(self) -> Iterator[Outbox]:
        with self._lock:
            boxes = [self.current, *self._old] if self.current is not None else list(self._old)
        yield from boxes

    def depth(self) -> dict[str, int]:
        """Items waiting, per sink (over the file, any fallback and the intake)."""
        total: dict[str, int] = dict(self._pending())
        for box in self._boxes():
            try:
                for sink, n in box.depth().items():
                    total[sink] = total.get(sink, 0) + n
            except StorageError as exc:
                self._fault("depth", exc, box)
        return total

    def oldest(self) -> dict[str, float]:
        """When the oldest waiting item of each sink was queued."""
        first: dict[str, float] = {}
        for box in self._boxes():
            try:
                for sink, t in box.oldest().items():
                    first[sink] = min(t, first.get(sink, t))
            except StorageError as exc:
                self._fault("oldest", exc, box)
        return first

    def health(self, intake: int) -> StorageHealth:
        """Counters and gauges for the metrics."""
        rows = size = 0
        for box in self._boxes():
            r, b = box.totals()
            rows, size = rows + r, size + b
        file_ok = self.file is not None and self.current is self.file
        return StorageHealth(
            self.errors,
            file_ok,
            self.current is not None and self.current.path == MEMORY,
            rows,
            size,
            dict(self.dropped),
            intake,
        )

    # ------------------------------------------------------------------ sink state

    def save_state(self, sink: str, upserts: Mapping[str, Any], deletes: Iterable[str], *,
                   replace: bool) -> None:  # fmt: skip
        """Persist a sink's state (``replace``: all of it)."""

        self._try("state", lambda box: box.save_state(sink, upserts, deletes, replace=replace))

    def load_state(self, sink: str) -> dict[str, Any]:
        """A sink's persisted state (empty when none or unreadable)."""
        found: dict[str, Any] = self._try("state", lambda box: box.load_state(sink), {})
        return found

    def close(self) -> None:
        """Close every outbox; never raises."""
        with self._lock:
            self.closed = True
            boxes = [self.current, self.file, *self._old]
            self.current = self.file = None
            self._old = []
        for box in {id(b): b for b in boxes if b is not None}.values():
            with contextlib.suppress(*StorageError):
                box.close()


def _put_one(box: Outbox, entry: Entry) -> None:
    box.put_many([entry])


def _release(box: Outbox, batch: list[Item]) -> None:
    box.release(item.id for item in batch)


def _is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code in (SQLITE_CORRUPT, SQLITE_NOTADB)


@dataclass(eq=False)
class _Slot:
    """One sink with its sender thread and the lock that serialises its sends."""

    sink: Sink
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    restored: bool = False
    epoch: int = -1  # the store epoch the sink's full state was last saved in
    last_refresh: float = float("-inf")


class Deliverer:
    """Feeds the outbox from alerts and drains it into the sinks (see the module docstring).

    ``outbox``: an open :class:`Outbox` (used as is), or the path of the outbox file (opened
    by :meth:`open`, or by the first storage operation when ``open`` was not called)."""

    def __init__(
        self,
        outbox: Outbox | Path | str,
        sinks: Iterable[Sink],
        clock: Callable[[], float] = time.time,
        *,
        limits: OutboxLimits | None = None,
        intake_max: int = INTAKE_MAX,
        rng: Callable[[], float] = random.random,
        max_backoff_s: float = 300.0,
        poll_s: float = POLL_S,
        reopen_s: float = REOPEN_S,
    ) -> None:
        self._clock = clock
        self.limits = limits or (outbox.limits if isinstance(outbox, Outbox) else OutboxLimits())
        primary = outbox if isinstance(outbox, Outbox) else None
        self._rng, self._max_backoff = rng, max_backoff_s
        if primary is not None:
            self._rng, self._max_backoff = primary.rng, primary.max_backoff_s
        self.outbox = Store(
            None if primary is not None else Path(outbox),  # type: ignore[arg-type]
            self._new_outbox,
            primary=primary,
            clock=clock,
            reopen_s=reopen_s,
            pending=self._intake_depth,
        )
        if primary is not None:
            primary.on_drop = self.outbox.on_drop
        self.intake_max = intake_max
        self.poll_s = poll_s
        self._intake: deque[Entry] = deque()
        self._intake_lock = threading.Lock()
        self._store_wake = threading.Event()
        self._store_stop = threading.Event()
        self._store_thread: threading.Thread | None = None
        self._draining = threading.Event()
        self._started = False
        self._slots = {s.name: _Slot(s) for s in sinks}
        self.stats = {name: SinkStats() for name in self._slots}
        #: Incident ends queued for at least one sink.
        self.ended = 0

    @classmethod
    def from_config(
        cls,
        state_dir: Path,
        sinks: Iterable[Sink],
        alerts: AlertsConfig,
        clock: Callable[[], float] = time.time,
    ) -> Deliverer:
        """A deliverer for ``state_dir/outbox.sqlite`` (not opened yet) bounded by
        ``alerts.outbox_max_rows`` and ``alerts.outbox_max_mb``."""
        limits = OutboxLimits(
            max_rows=alerts.outbox_max_rows, max_bytes=alerts.outbox_max_mb * 1024 * 1024
        )
        return cls(state_dir / OUTBOX_FILE, sinks, clock, limits=limits)

    def _new_outbox(self, path: str) -> Outbox:
        return Outbox(
            path,
            rng=self._rng,
            max_backoff_s=self._max_backoff,
            limits=self.limits,
            on_drop=self.outbox.on_drop,
        )

    @property
    def sinks(self) -> dict[str, Sink]:
        """The current sinks, by name."""
        return {name: slot.sink for name, slot in self._slots.items()}

    # ------------------------------------------------------------------ life cycle

    def open(self) -> list[Path]:
        """Open the outbox file, creating it (and its directories) when missing; returns the
        paths created. Call before dropping privileges. Never raises (a failure leaves the
        in-memory fallback in use, retried later)."""
        return self.outbox.open()

    def start(self) -> None:
        """Start the store thread and one sender thread per sink."""
        if self._started:
            return
        self._started = True
        self._store_thread = threading.Thread(
            target=self._store_loop, name="outbox-store", daemon=True
        )
        self._store_thread.start()
        for slot in self._slots.values():
            self._start_slot(slot)

    def _start_slot(self, slot: _Slot) -> None:
        slot.thread = threading.Thread(
            target=self._sender_loop, args=(slot,), name=f"sink-{slot.sink.name}", daemon=True
        )
        slot.thread.start()

    def replace_sinks(self, sinks: Iterable[Sink]) -> None:
        """Swap in newly built sinks (a reload); the old ones are closed once their sender
        stops. Items queued for a sink no longer configured stay in the outbox."""
        new = {s.name: _Slot(s) for s in sinks}
        for name, slot in new.items():  # a rebuilt sink keeps what its predecessor kept
            before = self._slots.get(name)
            if before is not None and type(before.sink) is type(slot.sink):
                self._hand_over(before, slot)
        old, self._slots = self._slots, new
        self.stats = {name: self.stats.get(name) or SinkStats() for name in new}
        for slot in old.values():
            slot.stop.set()
            slot.wake.set()
            if slot.thread is None:
                self._close_sink(slot)
        if self._started:
            for slot in new.values():
                self._start_slot(slot)

    def _hand_over(self, old: _Slot, new: _Slot) -> None:
        try:
            state = old.sink.state_changes(full=True)
            if state is not None:
                new.sink.restore_state(state.upserts)
        except Exception as exc:
            log.warning("sink %s: state not handed over: %s", new.sink.name, exc)
            return
        new.restored = True  # its first save replaces what is stored

    def reopen(self) -> None:
        """Reopen the files of file sinks (logrotate moved them), between two sends."""
        for slot in self._slots.values():
            reopen = getattr(slot.sink, "reopen", None)
            if reopen is not None:
                with slot.lock:
                    reopen()

    # ------------------------------------------------------------------ capture side

    def enqueue(self, alert: Alert, count: int = 1, group: str | None = None) -> int:
        """Queue the alert for each accepting sink (in memory; the store thread commits it);
        returns how many sinks took it. Never raises, never blocks on storage."""
        try:
            record = alert.record(count)
            key = json.dumps(alert.identity)
        except Exception as exc:  # an alert that cannot be recorded: counted, not raised
            log.error("alert not queued: %s", exc)
            self.outbox.on_drop("invalid", 1)
            return 0
        return self._enqueue(record, key, group, note=True)

    def enqueue_ended(self, end: IncidentEnd, group: str | None = None) -> int:
        """Queue an incident's end for each sink that takes ends; returns how many took it.
        Never raises, never blocks on storage."""
        try:
            record = end.record()
            key = json.dumps([*end.identity, Status.ENDED.value])
        except Exception as exc:
            log.error("incident end not queued: %s", exc)
            self.outbox.on_drop("invalid", 1)
            return 0
        taken = self._enqueue(record, key, group, note=False)
        if taken:
            self.ended += 1
        return taken

    def _enqueue(self, record: dict[str, Any], key: str, group: str | None, *, note: bool) -> int:
        now = self._clock()
        taken = 0
        reports = list(members(record))
        for name, slot in list(self._slots.items()):
            try:
                mine, mine_key = record, key
                if len(reports) > 1:  # a sink's filters apply to each report it carries
                    wanted = [r for r in reports if slot.sink.accepts(r, group)]
                    if not wanted:
                        continue
                    if len(wanted) < len(reports):
                        mine = regroup(wanted)
                        mine_key = json.dumps([mine["rule"], mine["device"], mine["reached"]])
                elif not slot.sink.accepts(record, group):
                    continue
                taken += self._admit(Entry(name, mine_key, mine, now))
                if note:
                    slot.sink.note(mine, now)
                self.stats.setdefault(name, SinkStats()).enqueued += 1
            except Exception as exc:  # a sink's filter or note failing isolates that sink
                log.error("sink %s: enqueue failed: %s", name, slot.sink.scrub(str(exc)))
        if taken:
            self._store_wake.set()
        return taken

    def _intake_depth(self) -> dict[str, int]:
        """Intake entries per sink (not committed yet)."""
        with self._intake_lock:
            return dict(Counter(entry.sink for entry in self._intake))

    def _admit(self, entry: Entry) -> int:
        with self._intake_lock:
            if len(self._intake) >= self.intake_max:
                self.outbox.on_drop("intake_full", 1)
                return 0
            self._intake.append(entry)
        return 1

    def repeat(self, alert: Alert, group: str | None = None) -> None:
        """A suppressed repeat: nothing is queued, but sinks that keep alerts firing hear of
        it. Never raises."""
        try:
            record = alert.record(1)
            now = self._clock()
            for slot in list(self._slots.values()):
                if slot.sink.accepts(record, group):
                    slot.sink.note(record, now, queued=False)
        except Exception as exc:
            log.error("repeat not noted: %s", exc)

    # ------------------------------------------------------------------ store thread

    def store_intake(self) -> int:
        """Commit everything in the intake (batched transactions); returns entries taken."""
        taken = 0
        while True:
            with self._intake_lock:
                n = min(len(self._intake), STORE_BATCH)
                batch = [self._intake.popleft() for _ in range(n)]
            if not batch:
                return taken
            self.outbox.put_many(batch)
            taken += len(batch)

    def _store_loop(self) -> None:
        while not self._store_stop.is_set():
            self._store_wake.wait(self.poll_s)
            self._store_wake.clear()
            self._store_round()
        self._store_round()

    def _store_round(self) -> None:
        try:
            if self.store_intake():
                for slot in list(self._slots.values()):
                    slot.wake.set()
            self.outbox.maintain()
        except Exception:  # never let the store thread die
            log.exception("outbox store round failed")

    # ------------------------------------------------------------------ sender side

    def _sender_loop(self, slot: _Slot) -> None:
        try:
            while not slot.stop.is_set():
                with slot.lock:
                    _, ok, claimed = self._round(slot, self._clock(), slot.sink.max_batch)
                if self._draining.is_set() and (not claimed or not ok):
                    break
                if claimed and ok:
                    continue  # more may be due
                slot.wake.wait(self.poll_s)
                slot.wake.clear()
        except Exception:  # pragma: no cover - _round isolates sink errors
            log.exception("sink %s: sender stopped", slot.sink.name)
        finally:
            self._save_state(slot)
            if slot.stop.is_set() and slot not in self._slots.values():
                self._close_sink(slot)

    def pump(self, now: float | None = None, budget: int = 100) -> int:
        """One round on the calling thread: commit the intake, then try up to ``budget`` due
        items per sink; returns how many were delivered."""
        now = self._clock() if now is None else now
        self.store_intake()
        self.outbox.maintain()
        done = 0
        for slot in list(self._slots.values()):
            with slot.lock:
                done += self._round(slot, now, budget, refresh_always=True)[0]
        return done

    def _round(
        self, slot: _Slot, now: float, budget: int, *, refresh_always: bool = False
    ) -> tuple[int, bool, int]:
        """Send up to ``budget`` due items of one sink (stop at a failure), refresh, save
        state. Returns (delivered, no failure, items claimed)."""
        self._restore(slot)
        sink, done, ok, claimed = slot.sink, 0, True, 0
        step = max(1, sink.max_batch)
        box, items = self.outbox.claim(sink.name, now, budget)
        claimed = len(items)
        for start in range(0, len(items), step):
            batch = items[start : start + step]
            if not ok:
                assert box is not None
                self.outbox.settle(box, "release", functools.partial(_release, batch=batch))
                continue
            result = self._send(sink, batch)
            assert box is not None
            self._settle(box, sink, batch, result, now)
            ok = result.ok
            done += len(batch) if ok else 0
        mono = time.monotonic()
        if refresh_always or mono - slot.last_refresh >= self.poll_s:
            slot.last_refresh = mono
            try:
                sink.refresh(now)
            except Exception as exc:  # isolated like a failed send
                log.warning("sink %s: refresh failed: %s", sink.name, sink.scrub(str(exc)))
        self._save_state(slot)
        return done, ok, claimed

    def _restore(self, slot: _Slot) -> None:
        if slot.restored:
            return
        slot.restored = True
        state = self.outbox.load_state(slot.sink.name)
        if state:
            try:
                slot.sink.restore_state(state)
            except Exception as exc:
                log.warning("sink %s: state not restored: %s", slot.sink.name, exc)
        slot.epoch = self.outbox.epoch

    def _save_state(self, slot: _Slot) -> None:
        try:
            full = slot.epoch != self.outbox.epoch
            delta = slot.sink.state_changes(full=full)
        except Exception as exc:
            log.warning("sink %s: state not saved: %s", slot.sink.name, exc)
            return
        slot.epoch = self.outbox.epoch
        if delta is not None:
            replace = delta.full
            self.outbox.save_state(slot.sink.name, delta.upserts, delta.deletes, replace=replace)

    def _send(self, sink: Sink, batch: list[Item]) -> Delivery:
        try:
            return sink.send([item.payload for item in batch])
        except Exception as exc:  # a failing sink is isolated and counted
            return Delivery.failure(sink.scrub(f"{type(exc).__name__}: {exc}"))

    def _settle(
        self, box: Outbox, sink: Sink, batch: list[Item], result: Delivery, now: float
    ) -> None:
        stats = self.stats.get(sink.name) or SinkStats()
        ids = [item.id for item in batch]
        if result.ok:
            self.outbox.settle(box, "delivered", lambda b: b.delivered(ids))
            stats.delivered += len(batch)
            stats.last_success = now
            return
        if result.permanent:
            self.outbox.settle(box, "dropped", lambda b: b.delivered(ids))
            stats.dropped += len(batch)
            log.error("sink %s dropped %d alert(s): %s", sink.name, len(batch), result.error)
            return

        def reschedule(b: Outbox) -> None:
            for item_id in ids:
                b.failed(item_id, now, result.retry_after)

        self.outbox.settle(box, "failed", reschedule)
        stats.failed += len(batch)
        log.warning("sink %s failed %d alert(s): %s", sink.name, len(batch), result.error)

    def _close_sink(self, slot: _Slot) -> None:
        try:
            slot.sink.close()
        except Exception as exc:
            log.warning("sink %s: close failed: %s", slot.sink.name, slot.sink.scrub(str(exc)))

    # ------------------------------------------------------------------ figures

    def health(self) -> StorageHealth:
        """Storage counters and gauges (for the metrics)."""
        with self._intake_lock:
            intake = len(self._intake)
        return self.outbox.health(intake)

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, deadline: float) -> DrainResult:
        """Commit the intake, let the senders deliver until ``deadline`` (``time.monotonic``),
        stop every thread and close sinks and outbox. Returns by the deadline (plus a few
        milliseconds) even when a receiver trickles; never raises. What is not delivered
        stays in the outbox."""
        try:
            return self._shutdown(deadline)
        except Exception:  # never let shutdown fail the daemon's exit
            log.exception("delivery shutdown failed")
            return DrainResult(-1, ())

    def _shutdown(self, deadline: float) -> DrainResult:
        slots = list(self._slots.values())
        # attempts are cut a little before the deadline, so their senders settle and stop
        margin = min(ABORT_MARGIN_S, max(0.0, deadline - time.monotonic()) * 0.2)
        for slot in slots:
            slot.sink.interrupt_at(deadline - margin)
        if self._store_thread is not None:
            self._store_stop.set()
            self._store_wake.set()
            self._store_thread.join(max(0.0, deadline - time.monotonic()))
        self.store_intake()
        self._draining.set()  # only now: a sender that finds nothing due may stop
        if self._started:
            for slot in slots:
                slot.wake.set()
            for slot in slots:
                if slot.thread is not None:
                    slot.thread.join(max(0.0, deadline - time.monotonic()))
        else:
            while time.monotonic() < deadline and any(self.outbox.depth().get(s) for s in
                                                       self._slots):  # fmt: skip
                if not self.pump():
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        stuck = tuple(s.sink.name for s in slots if s.thread is not None and s.thread.is_alive())
        for slot in slots:
            slot.stop.set()
            if slot.sink.name not in stuck:
                with slot.lock:
                    self._save_state(slot)
                self._close_sink(slot)
        self.store_intake()  # anything enqueued meanwhile
        self.outbox.persist()
        left = sum(self.outbox.depth().values())
        self.outbox.close()
        if left:
            log.warning("%d alert deliveries left in the outbox for the next start", left)
        if stuck:
            log.warning("sink sender(s) still busy at the deadline: %s", ", ".join(stuck))
        return DrainResult(left, stuck)

    def close(self) -> None:
        """Stop at once: commit the intake, close sinks and outbox (no drain)."""
        self.shutdown(time.monotonic())
