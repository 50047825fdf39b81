"""Bounded IP fragment attribution: later fragments join the flow of their first fragment.

Only the first fragment of an IPv4/IPv6 datagram carries the transport header (or, for a
fragmented tunnel packet, the inner headers), so the decoder remembers, per datagram id
``(src, dst, proto, ip_id)``, the flow the first fragment was attributed to: its 5-tuple
``(src, dst, proto, sport, dport)``, which is the inner one for a tunnel. Later fragments
of any protocol then join that flow (never dropped silently). A later fragment that
arrives *before* its first one is held (bounded) and released when the first arrives.

Config read: ``flows.max_fragments`` (entries) and ``flows.fragment_timeout_s``.
Limits: no payload reassembly (we count, we do not rebuild datagrams); when the table is full
the oldest datagram entry is evicted (``evicted``; later fragments of that datagram are then
orphans); held fragments whose first fragment never arrives are counted as
``fragment_orphaned`` decode failures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FragKey = tuple[bytes, bytes, int, int]
#: The flow a datagram's first fragment went to: (src, dst, proto, sport, dport).
Attribution = tuple[bytes, bytes, int, int, int]


class FragmentTracker:
    """Remembers first-fragment ports per datagram id, within a bounded table."""

    __slots__ = ("_count", "_max", "_table", "_timeout", "evicted", "held")

    def __init__(self, max_entries: int, timeout_s: float, count: Callable[[str], None]) -> None:
        self._max = max_entries
        self._timeout = timeout_s
        self._count = count
        # key -> [attribution or None, last_ts, held (ts, decoded) tuples or None]
        self._table: dict[FragKey, list[Any]] = {}
        self.held = 0
        #: Datagram entries dropped because the table was full: an event, not a lost frame
        #: (the held fragments such an entry carried are counted as ``fragment_orphaned``).
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._table)

    def first(self, key: FragKey, flow: Attribution, ts: float) -> list[Any]:
        """Record where a first fragment went; return the later fragments held for it."""
        entry = self._table.get(key)
        if entry is None:
            self._insert(key, [flow, ts, None])
            return []
        held = entry[2] or []
        self.held -= len(held)
        entry[0] = flow
        entry[1] = ts
        entry[2] = None
        return held

    def later(self, key: FragKey, ts: float) -> Attribution | None:
        """Where this datagram's first fragment went, or None when not seen yet."""
        entry = self._table.get(key)
        if entry is None or entry[0] is None:
            return None
        entry[1] = ts
        flow: Attribution = entry[0]
        return flow

    def hold(self, key: FragKey, ts: float, decoded: Any) -> None:
        """Keep a later fragment whose first fragment has not been seen (bounded)."""
        entry = self._table.get(key)
        if entry is None:
            entry = [None, ts, []]
            self._insert(key, entry)
        elif entry[2] is None:
            entry[2] = []
        if len(entry[2]) >= 64:
            self._count("fragment_orphaned")
            return
        entry[2].append(decoded)
        self.held += 1

    def expire(self, now: float) -> None:
        """Drop datagram entries idle for longer than the timeout (packet time)."""
        horizon = now - self._timeout
        stale = [k for k, e in self._table.items() if e[1] < horizon]
        for key in stale:
            self._drop(key)

    def flush(self) -> None:
        """End of input: every still-held fragment is an orphan."""
        for key in list(self._table):
            self._drop(key)

    def _insert(self, key: FragKey, entry: list[Any]) -> None:
        if len(self._table) >= self._max:
            oldest = next(iter(self._table))
            self._drop(oldest)
            self.evicted += 1
        self._table[key] = entry

    def _drop(self, key: FragKey) -> None:
        entry = self._table.pop(key)
        held = entry[2]
        if held:
            self.held -= len(held)
            for _ in held:
                self._count("fragment_orphaned")
