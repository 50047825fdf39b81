"""The persistence edge of the ``new_destination`` baseline: SQLite in ``state_dir``.

:class:`SqliteBaselineStore` keeps the baseline across restarts (``baseline.sqlite``).
Only the process that owns the baseline opens it (the daemon, or the parent of the capture
workers); workers never do.

* :meth:`~SqliteBaselineStore.load` reads the file once at start, in rowid (insertion) order,
  at most ``max_destinations`` keys and ``max_per_device`` per camera; strings are interned,
  so 200,000 keys take tens of MB and well under a second. What the bounds leave on disk is
  counted in ``load_skipped``.
* :meth:`~SqliteBaselineStore.record` never blocks and never raises: it appends the change to
  a bounded pending list (``max_pending``; beyond it changes are dropped and counted in
  ``dropped``). A writer thread, started on the first change (so no thread exists before
  the daemon forks its workers), writes what is pending in one transaction every
  ``interval_s`` or as soon as ``batch`` changes wait.
* A storage error (locked, read-only, full, deleted or corrupt file) is logged, counted in
  ``write_errors`` and retried on the next round with a fresh connection; the batch stays
  pending (within ``max_pending``). A corrupt file found at load is renamed aside
  (``baseline.sqlite.corrupt``) and a fresh one is started: the cameras learn again.
* :meth:`~SqliteBaselineStore.flush` waits (bounded) until what was recorded is written;
  :meth:`~SqliteBaselineStore.close` flushes and stops the writer.

Config read: none directly (the caller passes ``learning.max_destinations`` and
``learning.max_per_device`` to :meth:`load`). Known limits: changes still pending at a crash
(at most ``interval_s`` of them) are lost, so those destinations are learnt (or reported)
again; the file is never pruned when the bounds are lowered, only partly loaded.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netwatch.detect.destinations import (
    BaselineChange,
    BaselineSnapshot,
    DestinationAdded,
    DestinationKey,
    DeviceFirstSeen,
)

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, first_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS destinations (
    device TEXT NOT NULL, dest TEXT NOT NULL, port INTEGER NOT NULL, proto TEXT NOT NULL,
    first_seen REAL NOT NULL, learned INTEGER NOT NULL,
    PRIMARY KEY (device, dest, port, proto)
);
"""
_ADD_DEVICE = "INSERT OR IGNORE INTO devices VALUES (?, ?)"
_ADD_DEST = "INSERT OR IGNORE INTO destinations VALUES (?, ?, ?, ?, ?, ?)"
BUSY_TIMEOUT_S = 2.0  # the writer thread waits this long for a lock, then retries later


@dataclass(slots=True)
class StoreCounters:
    """What the store did (exported as metrics by the owner)."""

    written: int = 0
    write_errors: int = 0
    dropped: int = 0
    load_skipped: int = 0
    load_errors: int = 0


class SqliteBaselineStore:
    """Baseline changes written to SQLite by a writer thread (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        interval_s: float = 1.0,
        batch: int = 5_000,
        max_pending: int = 200_000,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.interval_s = interval_s
        self.batch = batch
        self.max_pending = max_pending
        self.counters = StoreCounters()
        self._pending: list[BaselineChange] = []
        self._accepted = 0  # changes accepted into _pending, ever
        self._settled = 0  # of those, written (or given up at close)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # SQLite is imported only when a store is made (a replay without a state directory
        # makes none), here, so the writer thread never imports it after a privilege drop
        import sqlite3  # noqa: F401, PLC0415

    # ---------------------------------------------------------------- start

    def load(self, max_destinations: int, max_per_device: int) -> BaselineSnapshot:
        """Everything known so far, within the bounds; never raises (empty on error)."""
        import sqlite3  # noqa: PLC0415 - lazy: a replay without a state directory has no store

        try:
            return self._load(max_destinations, max_per_device)
        except sqlite3.DatabaseError as exc:
            self.counters.load_errors += 1
            log.error("baseline %s unreadable (%s): starting a new one", self.path, exc)
            self._set_aside()
        except OSError as exc:
            self.counters.load_errors += 1
            log.error("baseline %s: cannot open (%s): learning in memory", self.path, exc)
        return BaselineSnapshot.empty()

    def _load(self, max_destinations: int, max_per_device: int) -> BaselineSnapshot:
        import sqlite3  # noqa: PLC0415 - lazy (see load)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path))
        try:
            db.executescript(_SCHEMA)
            devices = {
                sys.intern(d): float(ts)
                for d, ts in db.execute("SELECT * FROM devices LIMIT ?", (max_destinations,))
            }
            rows = db.execute(
                "SELECT device, dest, port, proto FROM destinations LIMIT ?", (max_destinations,)
            )
            keys, read = _bounded_keys(rows, max_per_device)
            if read >= max_destinations:  # the LIMIT cut: count what it left (a full scan)
                read = db.execute("SELECT count(*) FROM destinations").fetchone()[0]
        finally:
            db.close()
        self.counters.load_skipped = int(read) - len(keys)
        if self.counters.load_skipped:
            log.warning(
                "baseline %s: %d destinations left unloaded by the bounds",
                self.path,
                self.counters.load_skipped,
            )
        return BaselineSnapshot(devices, keys)

    def _set_aside(self) -> None:
        with contextlib.suppress(OSError):
            self.path.replace(self.path.with_name(self.path.name + ".corrupt"))

    # ---------------------------------------------------------------- packet path

    def record(self, change: BaselineChange) -> None:
        """Queue one change for the writer thread; never blocks on I/O, never raises."""
        with self._cond:
            if len(self._pending) >= self.max_pending:
                self.counters.dropped += 1
                return
            self._pending.append(change)
            self._accepted += 1
            if len(self._pending) >= self.batch:
                self._cond.notify_all()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="baseline-writer", daemon=True)
        self._thread = thread
        thread.start()

    # ---------------------------------------------------------------- writer thread

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        while True:
            with self._cond:
                if not self._pending and not self._stopping:
                    self._cond.wait(self.interval_s)
                batch, self._pending = self._pending, []
                stopping = self._stopping
            if batch:
                db = self._write(db, batch)
            if stopping and not batch:
                break
            if stopping and db is None:  # the last attempt failed: give up, counted
                self._give_up()
                break
        if db is not None:
            db.close()

    def _write(
        self, db: sqlite3.Connection | None, batch: Sequence[BaselineChange]
    ) -> sqlite3.Connection | None:
        """Write ``batch`` in one transaction; the connection to reuse, or None after an error
        (the batch is then pending again and the next round reconnects)."""
        import sqlite3  # noqa: PLC0415 - loaded by __init__ already (before any privilege drop)

        try:
            if db is None:
                db = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s)
                db.executescript(_SCHEMA)
            with db:
                db.executemany(_ADD_DEVICE, _device_rows(batch))
                db.executemany(_ADD_DEST, _destination_rows(batch))
        except (sqlite3.Error, OSError) as exc:
            self.counters.write_errors += 1
            log.error("baseline %s: write failed, will retry: %s", self.path, exc)
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._requeue(batch)
            if not self._stopping:
                time.sleep(min(self.interval_s, 1.0))
            return None
        with self._cond:
            self.counters.written += len(batch)
            self._settled += len(batch)
            self._cond.notify_all()
        return db

    def _requeue(self, batch: Sequence[BaselineChange]) -> None:
        with self._cond:
            merged = [*batch, *self._pending]
            keep = merged[: self.max_pending]
            lost = len(merged) - len(keep)
            self.counters.dropped += lost
            self._settled += lost
            self._pending = keep
            self._cond.notify_all()

    def _give_up(self) -> None:
        with self._cond:
            lost = len(self._pending)
            self._pending = []
            self.counters.dropped += lost
            self._settled += lost
            self._cond.notify_all()
        if lost:
            log.error("baseline %s: %d changes not written at close", self.path, lost)

    # ---------------------------------------------------------------- owner's control

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every change recorded so far is written; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._accepted
            self._cond.notify_all()
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return self._settled >= target
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (within ``timeout_s``) and stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("baseline %s: writer still busy after %.1f s", self.path, timeout_s)


def _bounded_keys(
    rows: sqlite3.Cursor | Sequence[tuple[str, str, int, str]], max_per_device: int
) -> tuple[list[DestinationKey], int]:
    """The keys within ``max_per_device`` each (strings interned), and how many rows."""
    keys: list[DestinationKey] = []
    read = 0
    per_device: dict[str, int] = {}
    intern = sys.intern
    for device, dest, port, proto in rows:
        read += 1
        n = per_device.get(device, 0)
        if n >= max_per_device:
            continue
        per_device[device] = n + 1
        keys.append(DestinationKey(intern(device), intern(dest), int(port), intern(proto)))
    return keys, read


def _device_rows(batch: Sequence[BaselineChange]) -> list[tuple[str, float]]:
    return [(c.device, c.ts) for c in batch if isinstance(c, DeviceFirstSeen)]


def _destination_rows(
    batch: Sequence[BaselineChange],
) -> list[tuple[str, str, int, str, float, int]]:
    return [(*c.key, c.ts, int(c.learned)) for c in batch if isinstance(c, DestinationAdded)]
