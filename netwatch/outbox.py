"""The durable alert outbox: every alert payload is committed to SQLite before delivery.

``put``/``put_many`` commit items (due at once); an item still waiting for the same sink and
key (the alert identity) absorbs a new one instead (its ``count`` grows, and the reports
grouped in either notification are all kept: :func:`netwatch.alerts.grouping.absorb`), so an
outage of any length delivers each identity once, with how often it was seen. An item a sender has
``claim``-ed (in flight) never absorbs anything: a re-report that arrives during the send is
a new item, so a successful send cannot swallow it. ``delivered`` deletes items; ``failed``
releases them and reschedules with exponential backoff and full jitter
(``random() * min(max_backoff_s, base_backoff_s * 2**(attempts-1))``), or after the server's
``Retry-After`` when that is longer, capped at ``max_backoff_s`` (a Retry-After of 1e11 s or
infinity, even one stored by an older version, waits at most ``max_backoff_s``).

Bounds (:class:`OutboxLimits`): at most ``max_rows`` items and ``max_bytes`` of payload;
over a bound the lowest severity goes first, then the oldest (never an item in flight);
every eviction is reported to ``on_drop(reason, n)`` (reason ``max_rows`` or ``max_bytes``).

The ``sink_state`` table keeps small per-sink state across restarts (which alerts an
Alertmanager sink keeps firing). A restart reopens the same file and loses nothing; claims
of a previous process are void. Files written by an older version open unchanged (missing
columns are added with ALTER TABLE). Time and the random source are injected; nothing here
reads the wall clock.

Errors: every method may raise ``sqlite3.Error`` or ``OSError`` (a corrupt, deleted or
read-only file, a full disk); :class:`netwatch.delivery.Store` survives them.

Config read: none (the daemon passes ``state_dir/outbox.sqlite`` and ``alerts.outbox_*``).
Known limits: one writer process; one connection, serialised by a lock (held only for one
statement batch, never during a send).
"""

from __future__ import annotations

import functools
import json
import math
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from netwatch.alerts.grouping import absorb
from netwatch.alerts.model import Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (sink, key);
CREATE TABLE IF NOT EXISTS sink_state (
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (sink, key)
);
"""
# columns added after the first release: name -> definition (ALTER TABLE ADD COLUMN)
_ADDED_COLUMNS: Mapping[str, str] = {
    "prio": "INTEGER NOT NULL DEFAULT 0",  # 4 critical ... 0 info (evicted first)
    "size": "INTEGER NOT NULL DEFAULT 0",  # payload bytes
    "claimed": "INTEGER NOT NULL DEFAULT 0",  # 1 while a sender has it in flight
}
_EVICT_INDEX = "CREATE INDEX IF NOT EXISTS outbox_evict ON outbox (prio, id)"
_PRIO = {s.value: len(Severity) - 1 - s.rank for s in Severity}
_PRIO_SQL = (
    "CASE json_extract(payload, '$.severity') "
    + " ".join(f"WHEN '{name}' THEN {p}" for name, p in _PRIO.items())
    + " ELSE 0 END"
)
EVICT_CHUNK = 500
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """How much the outbox may hold (rows and payload bytes, over all sinks)."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Item:
    """One queued payload for one sink."""

    id: int
    sink: str
    key: str
    payload: dict[str, Any]
    attempts: int
    next_attempt: float


class Entry(NamedTuple):
    """One payload to queue (``now``: when it was queued)."""

    sink: str
    key: str
    payload: dict[str, Any]
    now: float = 0.0


class Row(NamedTuple):
    """A waiting item as moved between two outboxes (fallback migration)."""

    sink: str
    key: str
    payload: str
    attempts: int
    next_attempt: float
    created: float


_F = TypeVar("_F", bound=Callable[..., Any])


def _dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _prio(payload: Mapping[str, Any]) -> int:
    return _PRIO.get(str(payload.get("severity")), 0)


def _locked(method: _F) -> _F:
    """Run the method under the outbox's lock (store and sender threads share it)."""

    @functools.wraps(method)
    def wrapper(self: Outbox, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


def _no_drop(reason: str, n: int) -> None:
    """The default ``on_drop``: nothing (counted by the caller's hook)."""


class Outbox:
    """A SQLite-backed queue of payloads per sink (``path`` may be ``":memory:"``).

    Constructing it opens (and creates, for a file path) the database and its parent
    directory."""

    def __init__(
        self,
        path: str | Path,
        *,
        rng: Callable[[], float] = random.random,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        limits: OutboxLimits | None = None,
        on_drop: Callable[[str, int], None] = _no_drop,
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.RLock()
        try:
            self._db.executescript(_SCHEMA)
            self._migrate()
            with self._db:
                # a new process (or a re-opened file) tries every waiting delivery at once:
                # whatever was in flight when it stopped is no longer, and a backoff chosen
                # by the previous process is not this one's (a server that still wants a
                # pause says so again with Retry-After, capped)
                self._db.execute("UPDATE outbox SET claimed = 0, next_attempt = 0")
            self._rows, self._bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
            ).fetchone()
        except BaseException:
            self._db.close()
            raise
        self.rng = rng
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.limits = limits or OutboxLimits()
        self.on_drop = on_drop

    def _migrate(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        missing = [name for name in _ADDED_COLUMNS if name not in have]
        with self._db:
            for name in missing:
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {_ADDED_COLUMNS[name]}")
            if missing:
                self._db.execute(
                    f"UPDATE outbox SET prio = {_PRIO_SQL}, size = length(CAST(payload AS BLOB))"
                )
            self._db.execute(_EVICT_INDEX)

    # ------------------------------------------------------------------ queueing

    def put(self, sink: str, key: str, payload: dict[str, Any], now: float = 0.0) -> int:
        """Commit one item, due at once (``now``: when it was queued); an item waiting (not in
        flight) with the same sink and key absorbs it instead. Returns the item's id."""
        return self.put_many([Entry(sink, key, payload, now)])[0]

    @_locked
    def put_many(self, entries: Sequence[Entry]) -> list[int]:
        """Commit several items in one transaction (see :meth:`put`); then enforce the
        bounds. Raises ValueError (nothing committed) for a payload that is not JSON."""
        texts = [_dumps(e.payload) for e in entries]
        with self._db:
            ids = [
                self._insert(Row(e.sink, e.key, text, 0, 0.0, e.now), _prio(e.payload))
                for e, text in zip(entries, texts, strict=True)
            ]
        self._enforce()
        return ids

    def _insert(self, row: Row, prio: int) -> int:
        """Insert or merge one row (inside the caller's transaction)."""
        found = self._db.execute(
            "SELECT id, payload, size FROM outbox WHERE sink = ? AND key = ? AND claimed = 0"
            " ORDER BY id LIMIT 1",
            (row.sink, row.key),
        ).fetchone()
        if found is not None:
            merged = absorb(json.loads(found[1]), json.loads(row.payload))
            text = _dumps(merged)
            size = len(text.encode())
            self._db.execute(
                "UPDATE outbox SET payload = ?, size = ? WHERE id = ?", (text, size, found[0])
            )
            self._bytes += size - int(found[2])
            return int(found[0])
        size = len(row.payload.encode())
        cur = self._db.execute(
            "INSERT INTO outbox (sink, key, payload, attempts, next_attempt, created, prio, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.sink, row.key, row.payload, row.attempts, row.next_attempt, row.created, prio,
             size),
        )  # fmt: skip
        self._rows += 1
        self._bytes += size
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _enforce(self) -> None:
        """Evict the lowest severity, then the oldest, until both bounds hold."""
        while self._rows > self.limits.max_rows or self._bytes > self.limits.max_bytes:
            reason = "max_rows" if self._rows > self.limits.max_rows else "max_bytes"
            want = self._rows - self.limits.max_rows if reason == "max_rows" else EVICT_CHUNK
            victims = self._db.execute(
                "SELECT id, size FROM outbox WHERE claimed = 0 ORDER BY prio, id LIMIT ?",
                (max(1, min(want, EVICT_CHUNK)),),
            ).fetchall()
            if not victims:
                return  # everything left is in flight
            dropped = 0
            with self._db:
                for item_id, size in victims:
                    if reason == "max_bytes" and self._bytes <= self.limits.max_bytes:
                        break
                    self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
                    self._rows -= 1
                    self._bytes -= int(size)
                    dropped += 1
            self.on_drop(reason, dropped)

    # ------------------------------------------------------------------ sending

    @_locked
    def due(self, now: float, limit: int = 100, *, sink: str | None = None) -> list[Item]:
        """Items not in flight whose next attempt is at or before ``now``, oldest first."""
        sql = "SELECT id, sink, key, payload, attempts, next_attempt FROM outbox"
        sql += " WHERE claimed = 0 AND next_attempt <= ?"
        sql += " AND sink = ?" if sink is not None else ""
        args: tuple[Any, ...] = (now, sink) if sink is not None else (now,)
        rows = self._db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [Item(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    @_locked
    def claim(self, sink: str, now: float, limit: int = 100) -> list[Item]:
        """The due items of ``sink`` (see :meth:`due`), marked in flight until
        :meth:`delivered`, :meth:`failed` or :meth:`release`. A next attempt further than
        ``max_backoff_s`` from ``now`` (stored by an older version) is brought forward."""
        with self._db:
            self._db.execute(
                "UPDATE outbox SET next_attempt = ? WHERE sink = ? AND next_attempt > ?",
                (now + self.max_backoff_s, sink, now + self.max_backoff_s),
            )
            items = self.due(now, limit, sink=sink)
            self._db.executemany(
                "UPDATE outbox SET claimed = 1 WHERE id = ?", [(i.id,) for i in items]
            )
        return items

    @_locked
    def delivered(self, item_id: int | Iterable[int]) -> None:
        """Forget delivered (or permanently rejected) items."""
        ids = [item_id] if isinstance(item_id, int) else list(item_id)
        with self._db:
            for one in ids:
                row = self._db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING size", (one,)
                ).fetchone()
                if row is not None:
                    self._rows -= 1
                    self._bytes -= int(row[0])

    @_locked
    def release(self, ids: Iterable[int]) -> None:
        """Items no longer in flight, unchanged (a send abandoned at shutdown)."""
        with self._db:
            for one in ids:
                self._db.execute("UPDATE outbox SET claimed = 0 WHERE id = ?", (one,))
                self._fold(one)

    def _fold(self, item_id: int) -> None:
        """An item back from flight absorbs the re-reports queued for its sink and key
        while it was out (inside the caller's transaction), so an outage still delivers
        each identity once, with every sighting counted."""
        row = self._db.execute(
            "SELECT sink, key, payload, size FROM outbox WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return
        later = self._db.execute(
            "SELECT id, payload, size FROM outbox WHERE sink = ? AND key = ? AND claimed = 0"
            " AND id != ?",
            (row[0], row[1], item_id),
        ).fetchall()
        if not later:
            return
        merged = json.loads(row[2])
        for other_id, payload, size in later:
            merged = absorb(merged, json.loads(payload))
            self._db.execute("DELETE FROM outbox WHERE id = ?", (other_id,))
            self._rows -= 1
            self._bytes -= int(size)
        text = _dumps(merged)
        self._db.execute(
            "UPDATE outbox SET payload = ?, size = ? WHERE id = ?",
            (text, len(text.encode()), item_id),
        )
        self._bytes += len(text.encode()) - int(row[3])

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """The delay before attempt ``attempts + 1``: jittered backoff, or a longer
        ``retry_after`` capped at ``max_backoff_s`` (NaN and infinity count as the cap)."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2.0 ** min(attempts - 1, 62))
        delay = self.rng() * ceiling
        if retry_after is not None:
            capped = self.max_backoff_s if math.isnan(retry_after) else retry_after
            delay = max(delay, min(capped, self.max_backoff_s))
        return float(delay)

    @_locked
    def failed(self, item_id: int, now: float, retry_after: float | None = None) -> float:
        """Release and reschedule a failed item; returns the delay chosen (seconds)."""
        row = self._db.execute("SELECT attempts FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return 0.0
        attempts = int(row[0]) + 1
        delay = self.backoff(attempts, retry_after)
        with self._db:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ?, claimed = 0 WHERE id = ?",
                (attempts, now + delay, item_id),
            )
            self._fold(item_id)
        return delay

    # ------------------------------------------------------------------ figures

    @_locked
    def depth(self) -> dict[str, int]:
        """Items waiting, per sink."""
        rows = self._db.execute("SELECT sink, COUNT(*) FROM outbox GROUP BY sink").fetchall()
        return {sink: n for sink, n in rows}

    @_locked
    def oldest(self) -> dict[str, float]:
        """When the oldest waiting item of each sink was queued (``put``'s ``now``)."""
        rows = self._db.execute("SELECT sink, MIN(created) FROM outbox GROUP BY sink").fetchall()
        return {sink: float(t) for sink, t in rows}

    def totals(self) -> tuple[int, int]:
        """Rows and payload bytes held (kept up to date, no query)."""
        return self._rows, self._bytes

    # ------------------------------------------------------------------ migration

    @_locked
    def take_waiting(self, limit: int = 1000) -> list[Row]:
        """Remove and return up to ``limit`` items not in flight, oldest first (to move them
        into another outbox; put them back with :meth:`add_rows` if that fails)."""
        rows = self._db.execute(
            "SELECT id, sink, key, payload, attempts, next_attempt, created FROM outbox"
            " WHERE claimed = 0 ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        self.delivered([r[0] for r in rows])
        return [Row(*r[1:]) for r in rows]

    @_locked
    def add_rows(self, rows: Sequence[Row]) -> None:
        """Insert rows taken from another outbox (merging as :meth:`put` does)."""
        with self._db:
            for row in rows:
                self._insert(row, _prio(json.loads(row.payload)))
        self._enforce()

    @_locked
    def in_flight(self) -> int:
        """Items claimed and not yet settled."""
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE claimed != 0").fetchone()[0])

    # ------------------------------------------------------------------ sink state

    @_locked
    def save_state(
        self,
        sink: str,
        upserts: Mapping[str, Any],
        deletes: Iterable[str] = (),
        *,
        replace: bool = False,
    ) -> None:
        """Store (JSON) or forget per-key state of a sink, in one transaction (``replace``:
        forget all of the sink's state first)."""
        with self._db:
            if replace:
                self._db.execute("DELETE FROM sink_state WHERE sink = ?", (sink,))
            self._db.executemany(
                "DELETE FROM sink_state WHERE sink = ? AND key = ?", [(sink, k) for k in deletes]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO sink_state (sink, key, value) VALUES (?, ?, ?)",
                [(sink, k, _dumps(v)) for k, v in upserts.items()],
            )

    @_locked
    def load_state(self, sink: str) -> dict[str, Any]:
        """The state stored for ``sink``, by key."""
        rows = self._db.execute(
            "SELECT key, value FROM sink_state WHERE sink = ? ORDER BY rowid", (sink,)
        ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    @_locked
    def state_sinks(self) -> list[str]:
        """Sinks that have stored state."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT sink FROM sink_state")]

    @_locked
    def close(self) -> None:
        """Close the database (everything is already committed)."""
        self._db.close()
