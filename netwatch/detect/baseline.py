"""Per-camera destination baselines in SQLite, for ``new_destination``.

A camera's baseline is the set of (destination, port, proto) it used during its learning
period, which starts when the camera is first seen and lasts ``learning.period_s``
(packet time). The destination is the name the camera asked for when there is one, else
the peer's network (/24 for IPv4, /48 for IPv6), so a cloud service that answers from many
addresses is one destination. After learning, a destination not in the baseline is new
once: it is added and reported, then known.

The database lives in ``state_dir`` (``baseline.sqlite``) so baselines survive restarts;
``netwatch replay`` uses an in-memory database unless given a state directory. Writes are
batched (committed every ``commit_every`` changes and on close); known keys are cached in
memory so a flow end costs a set lookup, not a query. Each camera keeps at most
``max_per_device`` destinations (a scan must not grow the database without bound); what
is dropped is counted in ``capped``.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, first_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS destinations (
    device TEXT NOT NULL, dest TEXT NOT NULL, port INTEGER NOT NULL, proto TEXT NOT NULL,
    first_seen REAL NOT NULL, learned INTEGER NOT NULL,
    PRIMARY KEY (device, dest, port, proto)
);
"""

Key = tuple[str, str, int, str]


def destination_of(ip: bytes, name: str | None) -> str:
    """The baseline's destination: the name, else the /24 (IPv4) or /48 (IPv6) network."""
    if name:
        return name
    prefix = 24 if len(ip) == 4 else 48
    return str(ipaddress.ip_network((ipaddress.ip_address(ip), prefix), strict=False))


class Baseline:
    """The learned destinations of every camera."""

    def __init__(
        self,
        path: Path | None,
        period_s: float,
        commit_every: int = 500,
        max_per_device: int = 10_000,
    ) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # used by the pipeline thread only, which need not be the one that opened it
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False
        )
        self._db.executescript(_SCHEMA)
        self.period_s = period_s
        self.max_per_device = max_per_device
        #: Destinations not recorded because their camera already had ``max_per_device``.
        self.capped = 0
        self._commit_every = commit_every
        self._pending = 0
        self._devices: dict[str, float] = dict(
            self._db.execute("SELECT device, first_seen FROM devices").fetchall()
        )
        self._known: set[Key] = {
            (d, dest, int(port), proto)
            for d, dest, port, proto in self._db.execute(
                "SELECT device, dest, port, proto FROM destinations"
            )
        }
        self._per_device: dict[str, int] = {}
        for key in self._known:
            self._per_device[key[0]] = self._per_device.get(key[0], 0) + 1

    def learning(self, device: str, ts: float) -> bool:
        """True while ``device`` is in its learning period (starting it if new)."""
        first = self._devices.get(device)
        if first is None:
            self._devices[device] = first = ts
            self._write("INSERT OR IGNORE INTO devices VALUES (?, ?)", (device, ts))
        return ts < first + self.period_s

    def observe(self, device: str, dest: str, port: int, proto: str, ts: float) -> bool:
        """Record a destination; True when it is new after the learning period."""
        learning = self.learning(device, ts)
        key = (device, dest, port, proto)
        if key in self._known:
            return False
        count = self._per_device.get(device, 0)
        if count >= self.max_per_device:
            self.capped += 1  # a scan or flood: memory stays bounded, and it is counted
            return False
        self._per_device[device] = count + 1
        self._known.add(key)
        self._write(
            "INSERT OR IGNORE INTO destinations VALUES (?, ?, ?, ?, ?, ?)",
            (device, dest, port, proto, ts, int(learning)),
        )
        return not learning

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        self._db.execute(sql, args)
        self._pending += 1
        if self._pending >= self._commit_every:
            self.commit()

    def commit(self) -> None:
        """Make the changes so far durable."""
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        """Commit and close the database."""
        self.commit()
        self._db.close()

    def __len__(self) -> int:
        return len(self._known)
