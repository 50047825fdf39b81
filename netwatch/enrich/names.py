"""Names seen on the wire: a passive DNS cache, and which name best describes a peer.

``PassiveDns`` remembers, from the DNS answers the sensor sees, which name a client asked
for to reach an address (after CNAME chains are followed back to the question by
``netwatch.deep.dns.resolve_chain``), per (client, address) and per address (the most
recent name any client got). Entries live for the record TTL clamped to
[``min_ttl_s``, ``max_ttl_s``] in packet time: nothing here reads a clock.

``best_name`` picks the name for a flow record among TLS SNI, HTTP Host and DNS.

Configuration read: none directly (the caller passes the size and TTL bounds).

Known limits:
- Answers are trusted as seen (no bailiwick or DNSSEC check); a spoofed answer seen on
  the mirror port names an address wrongly until it expires.
- Many names can share one address (CDNs, virtual hosting): per address only the most
  recent name is kept, which is why the per-client entry is preferred.
- Names resolved over DoH/DoT or before capture started are unknown.
- The minimum TTL keeps a name for short-TTL answers (load balancers often answer with
  TTL 0-30 s while the connection starts just after); the maximum bounds stale entries.
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable

DEFAULT_MAX_ENTRIES = 100_000
_ANY_CLIENT = b""  # key part used for the "any client" entry of an address

Answers = dict[str, tuple[str, int]] | Iterable[tuple[bytes, str, int]]


def _pack(ip_text: str) -> bytes | None:
    family = socket.AF_INET6 if ":" in ip_text else socket.AF_INET
    try:
        return socket.inet_pton(family, ip_text)
    except (OSError, ValueError):
        return None


class PassiveDns:
    """Bounded address -> name cache fed by observed DNS answers, queried at packet time.

    Holds at most ``max_entries`` entries (one per (client, address) plus one per address);
    when full, the oldest-inserted entry is dropped (``evictions``). Expired entries are
    dropped when a lookup meets them (``expired``) or by ``purge_expired``.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        min_ttl_s: float = 60,
        max_ttl_s: float = 86400,
    ) -> None:
        if max_entries < 1 or min_ttl_s > max_ttl_s:
            raise ValueError("need max_entries >= 1 and min_ttl_s <= max_ttl_s")
        self.max_entries = max_entries
        self.min_ttl_s = min_ttl_s
        self.max_ttl_s = max_ttl_s
        self._table: OrderedDict[tuple[bytes, bytes], tuple[str, float]] = OrderedDict()
        self.evictions = 0
        self.expired = 0
        self.invalid = 0
        #: Called with (client, address, name, expiry) for each name learnt here (capture
        #: workers share them); not called for names given to :meth:`share`.
        self.on_learn: Callable[[bytes | None, bytes, str, float], None] | None = None

    def __len__(self) -> int:
        return len(self._table)

    def observe(self, client: bytes | None, mapping: Answers, ts: float) -> None:
        """Record answers seen at packet time ``ts`` by ``client`` (None when unknown).

        ``mapping`` is either ``resolve_chain`` output ({address text: (asked name, ttl)})
        or (packed address, asked name, ttl) tuples. Unparseable addresses are counted in
        ``invalid`` and skipped.
        """
        if isinstance(mapping, dict):
            for text, (name, ttl) in mapping.items():
                self._observe_one(client, _pack(text), name, ttl, ts)
        else:
            self.learn(client, mapping, ts)

    def learn(
        self, client: bytes | None, answers: Iterable[tuple[bytes, str, int]], ts: float
    ) -> None:
        """:meth:`observe` of (packed address, asked name, ttl) tuples, in one loop: the
        DNS parser's form (``netwatch.deep.dns``), one call per answer message.

        Does what ``_observe_one`` then ``share`` then ``_put`` do for each tuple, in the
        same order (the any-client entry before the client's), so evictions and the
        ``on_learn`` calls are the same."""
        share = self.share
        low, high, hook = self.min_ttl_s, self.max_ttl_s, self.on_learn
        for addr, asked, ttl in answers:
            if addr is None or len(addr) not in (4, 16) or not asked:
                self.invalid += 1
                continue
            name = asked.rstrip(".").lower()
            expiry = ts + (low if ttl < low else high if ttl > high else ttl)  # clamped
            share(client, addr, name, expiry)
            if hook is not None:
                hook(client, addr, name, expiry)

    def _observe_one(
        self, client: bytes | None, addr: bytes | None, name: str, ttl: float, ts: float
    ) -> None:
        if addr is None or len(addr) not in (4, 16) or not name:
            self.invalid += 1
            return
        name = name.rstrip(".").lower()
        expiry = ts + min(max(ttl, self.min_ttl_s), self.max_ttl_s)
        self.share(client, addr, name, expiry)
        if self.on_learn is not None:
            self.on_learn(client, addr, name, expiry)

    def share(self, client: bytes | None, addr: bytes, name: str, expiry: float) -> None:
        """Record a name (already normalised, with its expiry) learnt elsewhere."""
        self._put((_ANY_CLIENT, addr), (name, expiry))
        if client:
            self._put((client, addr), (name, expiry))

    def _put(self, key: tuple[bytes, bytes], value: tuple[str, float]) -> None:
        table = self._table
        if key in table:
            table.move_to_end(key)  # a refreshed entry is the newest
        elif len(table) >= self.max_entries:
            table.popitem(last=False)
            self.evictions += 1
        table[key] = value

    def lookup(self, addr: bytes, ts: float, client: bytes | None = None) -> str | None:
        """The name ``client`` (else any client) asked for to reach ``addr``, valid at ``ts``."""
        table = self._table
        if not table:  # no name learnt (no DNS answer seen yet, or none on this link)
            return None
        if client:
            name = self._valid((client, addr), ts)
            if name is not None:
                return name
        return self._valid((_ANY_CLIENT, addr), ts)

    def _valid(self, key: tuple[bytes, bytes], ts: float) -> str | None:
        entry = self._table.get(key)
        if entry is None:
            return None
        if ts >= entry[1]:
            del self._table[key]
            self.expired += 1
            return None
        return entry[0]

    def purge_expired(self, ts: float) -> int:
        """Drop every entry expired at ``ts`` (a full scan: call it rarely); returns the count."""
        stale = [key for key, (_name, expiry) in self._table.items() if ts >= expiry]
        for key in stale:
            del self._table[key]
        self.expired += len(stale)
        return len(stale)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host_name(http_host: str | None) -> str | None:
    """The name part of an HTTP Host header: no port, no IP literal, lowercase."""
    if not http_host:
        return None
    host = http_host.strip()
    if host.startswith("["):  # [v6]:port
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".").lower()
    if not host or _is_ip_literal(host):
        return None
    return host


def best_name(sni: str | None, http_host: str | None, dns_name: str | None) -> str | None:
    """The name that best says who a peer is: TLS SNI, then HTTP Host, then DNS.

    SNI and Host are what the device itself asked the server for, in this very
    connection, so they name the service even behind shared CDN/cloud addresses where many
    names resolve to one IP. The DNS name is inferred from an earlier answer that merely
    mapped a name to this address (possibly for another client or another name), so it is
    the fallback. A Host that is an IP literal names nothing and is skipped; its port is
    dropped. Empty strings count as absent.
    """
    if sni:
        return sni.rstrip(".").lower()
    host = _host_name(http_host)
    if host is not None:
        return host
    return dns_name.rstrip(".").lower() if dns_name else None
