"""The durable alert outbox: every alert payload is committed to SQLite before delivery.

``put`` commits an item (due at once); an item still waiting for the same sink and key (the
alert identity) absorbs a new one instead (its ``count`` grows), so an outage of any length
delivers each identity once, with how often it was seen. ``due(now)`` lists what may be
tried; a success
``delivered`` deletes the item; a failure is rescheduled with exponential backoff and full
jitter (``random() * min(max_backoff_s, base_backoff_s * 2**(attempts-1))``), or after the
server's ``Retry-After`` when that is longer. A restart reopens the same file and loses
nothing. Time and the random source are injected; nothing here reads the wall clock.

Config read: none (the daemon passes ``state_dir/outbox.sqlite``). Known limits: one writer
process; items are kept until delivered (no expiry, ``depth()`` shows the backlog).
"""

from __future__ import annotations

import functools
import json
import random
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

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
"""


@dataclass(frozen=True, slots=True)
class Item:
    """One queued payload for one sink."""

    id: int
    sink: str
    key: str
    payload: dict[str, Any]
    attempts: int
    next_attempt: float


_F = TypeVar("_F", bound=Callable[..., Any])


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _locked(method: _F) -> _F:
    """Run the method under the outbox's lock (it is shared by two threads)."""

    @functools.wraps(method)
    def wrapper(self: Outbox, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


class Outbox:
    """A SQLite-backed queue of payloads per sink (``path`` may be ``":memory:"``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        rng: Callable[[], float] = random.random,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # the capture thread enqueues while the delivery thread drains: one connection,
        # serialised by a lock
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.RLock()
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._rng = rng
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s

    @_locked
    def put(self, sink: str, key: str, payload: dict[str, Any], now: float = 0.0) -> int:
        """Commit one item, due at once (``now``: when it was queued); an item already
        waiting with the same sink and key absorbs it instead. Returns the item's id."""
        row = self._db.execute(
            "SELECT id, payload FROM outbox WHERE sink = ? AND key = ? ORDER BY id LIMIT 1",
            (sink, key),
        ).fetchone()
        if row is not None:
            merged = json.loads(row[1])
            merged["count"] = int(merged.get("count") or 1) + int(payload.get("count") or 1)
            with self._db:
                self._db.execute(
                    "UPDATE outbox SET payload = ? WHERE id = ?", (_dumps(merged), row[0])
                )
            return int(row[0])
        with self._db:
            cur = self._db.execute(
                "INSERT INTO outbox (sink, key, payload, created) VALUES (?, ?, ?, ?)",
                (sink, key, _dumps(payload), now),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    @_locked
    def due(self, now: float, limit: int = 100, *, sink: str | None = None) -> list[Item]:
        """Items whose next attempt is at or before ``now``, oldest first."""
        sql = "SELECT id, sink, key, payload, attempts, next_attempt FROM outbox"
        sql += " WHERE next_attempt <= ?" + (" AND sink = ?" if sink is not None else "")
        args: tuple[Any, ...] = (now, sink) if sink is not None else (now,)
        rows = self._db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [Item(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    @_locked
    def delivered(self, item_id: int) -> None:
        """Forget a delivered item."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    @_locked
    def failed(self, item_id: int, now: float, retry_after: float | None = None) -> float:
        """Reschedule a failed item; returns the delay chosen (seconds)."""
        row = self._db.execute("SELECT attempts FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return 0.0
        attempts = int(row[0]) + 1
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2.0 ** min(attempts - 1, 62))
        delay = self._rng() * ceiling
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        with self._db:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE id = ?",
                (attempts, now + delay, item_id),
            )
        return float(delay)

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

    @_locked
    def close(self) -> None:
        """Close the database (everything is already committed)."""
        self._db.close()
