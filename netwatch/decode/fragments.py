"""Bounded IP fragment attribution: later fragments join the flow of their first fragment.

Only the first fragment of an IPv4/IPv6 datagram carries the transport header (or, for a
fragmented tunnel packet, the inner headers), so the decoder remembers, per datagram id
``(src, dst, proto, ip_id)``, the flow the first fragment was attributed to: its 5-tuple
``(src, dst, proto, sport, dport)``, which is the inner one for a tunnel. Later fragments
of any protocol then join that flow (never dropped silently). A later fragment that
arrives *before* its first one is held (bounded) and released when the first arrives.

Config read: ``flows.max_fragments`` (entries) and ``flows.fragment_timeout_s``.
:class:`Reassembler` rebuilds fragmented UDP datagrams for the ports the deep parsers read,
and the tunnel datagrams the decoder tags (bounded; see its docstring);
:class:`FragmentTracker` itself does no payload reassembly.
Limits: when the table is full
the oldest datagram entry is evicted (``evicted``; later fragments of that datagram are then
orphans); held fragments whose first fragment never arrives are counted as
``fragment_orphaned`` decode failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
        # key -> [attribution or None, last_ts, held later fragments (opaque to this table) or None]
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


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    """Bounds of :class:`Reassembler` (datagrams in progress, bytes each and in all)."""

    max_datagrams: int = 64
    max_datagram_bytes: int = 65_535
    max_total_bytes: int = 1 << 20
    timeout_s: float = 30.0


class _Partial:
    """One datagram being rebuilt: its pieces by offset and, once known, its length."""

    __slots__ = ("end", "pieces", "size", "tag", "ts")

    def __init__(self, ts: float, tag: object | None = None) -> None:
        self.tag = tag  # the caller's note on why it is rebuilt (a tunnel's context), or None
        self.pieces: dict[int, bytes] = {}
        self.size = 0  # bytes held
        self.end: int | None = None  # the length, once the last fragment (MF=0) arrived
        self.ts = ts

    def whole(self) -> bytes | None:
        """The datagram when its pieces cover 0..end without a gap or overlap; else None."""
        if self.end is None:
            return None
        at = 0
        parts = []
        for off in sorted(self.pieces):
            if off != at:
                return None
            parts.append(self.pieces[off])
            at += len(self.pieces[off])
        return b"".join(parts) if at == self.end else None


class Reassembler:
    """Rebuilds fragmented UDP datagrams for the ports the deep parsers read, bounded.

    The walk calls :meth:`first` with a first fragment's ports and IP payload (UDP header
    included) and :meth:`later` with each later fragment's offset (bytes), payload and
    more-fragments flag; when the pieces cover the whole datagram, the call that completes
    it returns the IP payload (UDP header and data) and the entry is dropped. Only
    datagrams whose first fragment names a port of ``ports`` are kept (a 2,383-byte ONVIF
    Hello, a large mDNS or DNS answer); everything else costs a dict lookup.

    Bounds (``ReassemblyLimits``): at most ``max_datagrams`` in progress and
    ``max_total_bytes`` held (the oldest is evicted: ``evicted``), at most
    ``max_datagram_bytes`` per datagram (more drops it: ``dropped``), and ``expire`` drops
    datagrams idle for ``timeout_s`` (``expired``). Overlapping or inconsistent pieces drop
    the datagram (``dropped``). Known limit: a later fragment that arrives before its first
    fragment is held by the tracker above and handed to :meth:`later` when its first
    fragment arrives (the decoder does this), so arrival order does not matter.

    A first fragment may also be kept whatever its ports with a ``tag`` (the decoder's
    fragmented tunnel datagrams: their inner packet is walked once the datagram is whole);
    :meth:`tag_of` returns it while the datagram is in progress.
    """

    __slots__ = ("_limits", "_ports", "_table", "_total", "completed", "dropped", "evicted",
                 "expired")  # fmt: skip

    def __init__(self, ports: frozenset[int], limits: ReassemblyLimits | None = None) -> None:
        self._ports = ports
        self._limits = limits or ReassemblyLimits()
        self._table: dict[FragKey, _Partial] = {}
        self._total = 0
        self.completed = 0
        self.dropped = 0
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: FragKey) -> bool:
        """A datagram with this id is being rebuilt."""
        return key in self._table

    @property
    def held_bytes(self) -> int:
        """Bytes held for datagrams in progress."""
        return self._total

    def wants(self, sport: int, dport: int) -> bool:
        """A datagram between these ports is rebuilt."""
        return sport in self._ports or dport in self._ports

    def tag_of(self, key: FragKey) -> object | None:
        """The tag a datagram in progress was started with (None: untagged or unknown)."""
        entry = self._table.get(key)
        return None if entry is None else entry.tag

    def first(
        self,
        key: FragKey,
        sport: int,
        dport: int,
        payload: bytes,
        ts: float,
        tag: object | None = None,
    ) -> bool:
        """A first fragment (offset 0, more fragments follow): start its datagram. True when
        it is kept (a port of ``ports``, or tagged; within the bounds)."""
        if tag is None and not self.wants(sport, dport):
            return False
        self._drop(key)  # a reused id starts afresh
        if len(payload) > self._limits.max_datagram_bytes:
            self.dropped += 1
            return False
        while self._table and (
            len(self._table) >= self._limits.max_datagrams
            or self._total + len(payload) > self._limits.max_total_bytes
        ):
            self._drop(next(iter(self._table)))
            self.evicted += 1
        entry = _Partial(ts, tag)
        self._table[key] = entry
        return self._put(key, entry, 0, payload)

    def later(
        self, key: FragKey, offset: int, payload: bytes, more: bool, ts: float
    ) -> bytes | None:
        """A later fragment; the whole IP payload when this one completes the datagram."""
        entry = self._table.get(key)
        if entry is None:
            return None
        end = offset + len(payload)
        if not more:
            if entry.end is not None and entry.end != end:
                self._fail(key)
                return None
            entry.end = end
        entry.ts = ts
        if not self._put(key, entry, offset, payload):
            return None
        whole = entry.whole()
        if whole is None:
            return None
        self._drop(key)
        self.completed += 1
        return whole

    def abandon(self, key: FragKey) -> None:
        """Give up a datagram (a piece of it cannot be had): counted as ``dropped``."""
        if key in self._table:
            self._fail(key)

    def counts(self) -> dict[str, int]:
        """The outcome counters by name (metrics and the replay summary)."""
        return {
            "completed": self.completed,
            "dropped": self.dropped,
            "evicted": self.evicted,
            "expired": self.expired,
        }

    def expire(self, now: float) -> None:
        """Drop datagrams idle for longer than the timeout (packet time)."""
        horizon = now - self._limits.timeout_s
        for key in [k for k, e in self._table.items() if e.ts < horizon]:
            self._drop(key)
            self.expired += 1

    def _put(self, key: FragKey, entry: _Partial, offset: int, payload: bytes) -> bool:
        """Store a piece; False (and the datagram dropped) when it breaks a bound or
        overlaps another piece."""
        end = offset + len(payload)
        too_big = end > self._limits.max_datagram_bytes
        past_end = entry.end is not None and end > entry.end
        overlaps = any(
            off < end and offset < off + len(piece) for off, piece in entry.pieces.items()
        )
        if (
            too_big
            or past_end
            or overlaps
            or self._total + len(payload) > self._limits.max_total_bytes
        ):
            self._fail(key)
            return False
        entry.pieces[offset] = payload
        entry.size += len(payload)
        self._total += len(payload)
        return True

    def _fail(self, key: FragKey) -> None:
        self._drop(key)
        self.dropped += 1

    def _drop(self, key: FragKey) -> None:
        entry = self._table.pop(key, None)
        if entry is not None:
            self._total -= entry.size
