"""Fast lookups over the loaded signatures, built once: names, ports, payloads, MACs, banners.

`SignatureMatcher(signatures)` precomputes dicts so that each question is a few dict lookups:

- `match_name(name)`: exact DNS name first, then DNS suffixes walked label by label from the
  longest (`a.b.hik-connect.com` tries `.b.hik-connect.com`, then `.hik-connect.com`, ...).
  Case and one trailing dot are ignored. No regex per name.
- `endpoints_for_port(proto, port)`: the cloud services that use a port (ports marked
  `generic` in the seeds, such as 443, are left out).
- `match_payload(proto, port, payload, direction)`: candidates come from a
  (proto, port, direction) table; port-specific signatures first, then by confidence, then
  by cost (offset checks, then substrings, then regexes). Within one signature the offset
  checks run first and regexes last. Substrings and regexes only look at the first
  `scan_limit` bytes. Two exact prefilters, decided once from the seeds, make this one pass
  instead of one check per signature: each table is indexed by the payload's first byte (a
  signature whose bytes at offset 0, or whose regex anchored at the start, cannot start
  with it is left out), and each such row keeps one substring of every candidate needing
  some (its longest); when none of those occurs in the window, only the candidates needing
  no substring are tried (a few `find` calls instead of a regex alternation, which costs
  ~7 ns a byte: 10 µs over a padded ClientHello). With the compiled part built
  (``netwatch._deep.payload_first``) a row's offset checks and substrings run in C instead,
  candidate by candidate in the same order (one call per lookup, no ``find`` per substring);
  only a candidate's regexes are left to ``re``. The table of a (proto, direction, port) is
  remembered per lookup key (at most ``_MEMO_MAX``).
- `vendor_of_mac(mac)`, `match_banner(field, value)`, `match_discovery(port, payload)`,
  `match_ethertype(ethertype, payload)`.

Called once per flow or per deep-parsed message, never per packet. Reads no config. Known
limits: a payload signature sees one payload (a TCP segment or UDP datagram), so magic split
across segments is missed; banner matching is case-sensitive, as in nmap's probes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from netwatch.compiled import optional
from netwatch.signatures import loader
from netwatch.signatures.model import (
    CONFIDENCE_RANK,
    DIRECTIONS,
    CloudEndpoint,
    DiscoveryMarker,
    DiscoveryProtocol,
    Fingerprint,
    Match,
    PayloadSignature,
    Signatures,
    VendorOui,
)

SCAN_LIMIT_BYTES = 2048
MAX_NAME_CHARS = 254  # 253 plus a trailing dot
_PROTOS = ("tcp", "udp")
#: The compiled scan of a row (``netwatch._deep.payload_first``), or None (not built,
#: ``NETWATCH_PURE=1``, ``NETWATCH_CORE=python``): :meth:`SignatureMatcher.match_payload`
#: then runs the Python prefilters and ``_Conditions.hit``. Same answers
#: (tests/signatures/test_match.py).
_FIRST: Callable[[bytes | bytearray | memoryview, int, tuple[_Spec, ...], int], int] | None = (
    optional("_deep", "payload_first", loop=True)
)
#: Payload tables remembered per (proto, direction, port) as asked, at most this many.
_MEMO_MAX = 4096
_BYTES = range(256)


@dataclass(frozen=True, slots=True)
class _Conditions:
    """A conjunction of `Match`es split by cost: plain offsets, masked offsets, needles, regexes."""

    fixed: tuple[tuple[int, bytes], ...]
    masked: tuple[tuple[int, int, int, int], ...]  # offset, length, mask, wanted value
    needles: tuple[bytes, ...]
    patterns: tuple[re.Pattern[bytes], ...]

    @classmethod
    def of(cls, matches: Iterable[Match]) -> _Conditions:
        fixed: list[tuple[int, bytes]] = []
        masked: list[tuple[int, int, int, int]] = []
        needles: list[bytes] = []
        patterns: list[re.Pattern[bytes]] = []
        for m in matches:
            if m.hex is not None and m.offset is not None:
                if m.mask is None:
                    fixed.append((m.offset, m.hex))
                else:
                    mask, want = int.from_bytes(m.mask), int.from_bytes(m.hex)
                    masked.append((m.offset, len(m.hex), mask, want))
            elif m.contains is not None:
                needles.append(m.contains)
            elif m.regex is not None:
                patterns.append(m.regex)
        return cls(tuple(fixed), tuple(masked), tuple(needles), tuple(patterns))

    @property
    def cost(self) -> int:
        """0: has an offset check (cheap rejection); 1: substrings only; 2: regexes only."""
        return 0 if self.fixed or self.masked else 1 if self.needles else 2

    def hit(self, payload: bytes, limit: int) -> bool:
        for off, value in self.fixed:
            if not payload.startswith(value, off):
                return False
        for off, size, mask, want in self.masked:
            chunk = payload[off : off + size]
            if len(chunk) != size or int.from_bytes(chunk) & mask != want:
                return False
        for needle in self.needles:
            if payload.find(needle, 0, limit) < 0:
                return False
        patterns = self.patterns  # mostly none: no generator made then
        return not patterns or all(p.search(payload, 0, limit) is not None for p in patterns)

    def first_bytes(self) -> frozenset[int] | None:
        """The first payload bytes that can meet the offset-0 checks and the regexes anchored
        at the start (:func:`_anchored_first`); None: any byte can."""
        admitted: set[int] | None = None
        for off, value in self.fixed:
            if off == 0 and value:
                admitted = {value[0]} if admitted is None else admitted & {value[0]}
        for off, size, mask, want in self.masked:
            if off == 0 and size:
                top, wanted = mask >> 8 * (size - 1), want >> 8 * (size - 1)
                fits = {b for b in _BYTES if b & top == wanted}
                admitted = fits if admitted is None else admitted & fits
        for pattern in self.patterns:
            first = _anchored_first(pattern)
            if first is not None:
                admitted = {first} if admitted is None else admitted & {first}
        return None if admitted is None else frozenset(admitted)

    def spec(self) -> _Spec:
        """The offset checks and substrings as :func:`netwatch._deep.payload_first` reads
        them: the masked checks as (offset, mask bytes, wanted bytes) of the checked length
        (mask bits above it can only meet the chunk's zero bits: dropped)."""
        masked = tuple(
            (off, (mask & ((1 << 8 * size) - 1)).to_bytes(size), want.to_bytes(size))
            for off, size, mask, want in self.masked
        )
        return self.fixed, masked, self.needles

    def key_needle(self) -> bytes | None:
        """One substring every match contains (the longest: the quickest to look for)."""
        return max(self.needles, key=len) if self.needles else None


#: Bytes that stand for themselves in a regex (outside a class) and are not a quantifier.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_<>@!%&=,;:'\"")
_FREE_FLAGS = re.IGNORECASE | re.MULTILINE | re.VERBOSE


def _anchored_first(pattern: re.Pattern[bytes]) -> int | None:
    """The byte a match must start the payload with, when the regex's text says so plainly
    (``\\A`` or ``^`` then a plain byte not made optional, no alternation anywhere, no flag
    that changes what those mean); None: not known. Searched from offset 0, such a regex
    can only match at 0, so a payload starting with another byte cannot match."""
    text = pattern.pattern
    if pattern.flags & _FREE_FLAGS or b"|" in text:
        return None
    if text.startswith(b"\\A"):
        rest = text[2:]
    elif text.startswith(b"^"):
        rest = text[1:]
    else:
        return None
    if not rest or rest[0] not in _PLAIN or rest[1:2] in (b"*", b"?", b"{"):
        return None
    return rest[0]


_Candidates = tuple[tuple[PayloadSignature, _Conditions], ...]
#: A candidate's conditions without its regexes, for :func:`netwatch._deep.payload_first`.
_Spec = tuple[
    tuple[tuple[int, bytes], ...], tuple[tuple[int, bytes, bytes], ...], tuple[bytes, ...]
]


class _Row(NamedTuple):
    """The candidates one first byte admits, in the list's order."""

    #: all of them
    full: _Candidates
    #: those that need no substring (all a payload can match when no ``gate`` occurs in it)
    plain: _Candidates
    #: one substring of each candidate that needs some (empty: none does)
    gate: tuple[bytes, ...]
    #: ``full``'s conditions but the regexes, for the compiled scan (:data:`_FIRST`)
    specs: tuple[_Spec, ...]


@dataclass(frozen=True, slots=True)
class _Scan:
    """One candidate list of `match_payload`, prefiltered (see the module docstring)."""

    #: every candidate, in order (what the prefilters stand for)
    candidates: _Candidates
    #: payload's first byte -> the candidates it admits
    by_first: tuple[_Row, ...]

    @classmethod
    def of(
        cls,
        candidates: _Candidates,
        first: dict[int, frozenset[int] | None],
        classes: list[frozenset[int]],
        specs: dict[int, _Spec] | None = None,
    ) -> _Scan:
        """``first``: each candidate's ``first_bytes()`` by the id of its conditions;
        ``classes``: the bytes that every such set holds all of or none of (one row is
        worked out per class); ``specs``: each candidate's :meth:`_Conditions.spec` by the
        id of its conditions (made here when not given)."""
        gates = [(c, first[id(c[1])]) for c in candidates]
        if specs is None:
            specs = {id(c[1]): c[1].spec() for c in candidates}
        by_first: list[_Row] = [_Row((), (), (), ())] * 256
        for same in classes:
            one = min(same)  # any byte of the class admits what every other one does
            full = tuple(c for c, gate in gates if gate is None or one in gate)
            plain = tuple(c for c in full if not c[1].needles)
            needles = (c[1].key_needle() for c in full)
            gate = tuple(dict.fromkeys(n for n in needles if n is not None))
            row = _Row(full, plain, gate, tuple([specs[id(cond)] for _, cond in full]))
            for byte in same:
                by_first[byte] = row
        return cls(candidates, tuple(by_first))


#: Stands for a lookup not remembered yet (never a real table).
_UNKNOWN = _Scan((), (_Row((), (), (), ()),) * 256)


class SignatureMatcher:
    """All matchers over one `Signatures` bundle; build once, then query per flow."""

    def __init__(self, signatures: Signatures, *, scan_limit: int = SCAN_LIMIT_BYTES) -> None:
        self.signatures = signatures
        self.scan_limit = scan_limit
        eps = signatures.endpoints
        self._names = {name: ep for ep in eps for name in ep.names}
        self._suffixes = {suffix: ep for ep in eps for suffix in ep.suffixes}
        self._ports = _port_table(eps)
        self._payload_any, self._payload_port = _payload_tables(signatures.payloads)
        #: (proto as asked, direction, port) -> the table :meth:`_payload_scan` finds
        self._scans: dict[tuple[str, str, int], _Scan | None] = {}
        self._ouis = {o.prefix: o for o in signatures.ouis}
        self._banners = {
            name: _BannerField([f for f in signatures.fingerprints if f.field == name])
            for name in {f.field for f in signatures.fingerprints}
        }
        self._discovery_udp, self._discovery_eth = _discovery_tables(signatures.discovery)

    @classmethod
    def load(cls, seeds_dir: Path | None = None) -> SignatureMatcher:
        """`Signatures.load(seeds_dir)` and the matchers over it."""
        return cls(Signatures.load(seeds_dir))

    # ------------------------------------------------------------ names and ports

    def match_name(self, name: str) -> CloudEndpoint | None:
        """The cloud endpoint a DNS/SNI/Host name belongs to (exact name, then suffixes)."""
        if not name or len(name) > MAX_NAME_CHARS:
            return None
        name = name.lower().removesuffix(".")
        hit = self._names.get(name)
        if hit is not None:
            return hit
        dot = name.find(".")
        while dot >= 0:
            hit = self._suffixes.get(name[dot:])
            if hit is not None:
                return hit
            dot = name.find(".", dot + 1)
        return None

    def endpoints_for_port(self, proto: str, port: int) -> tuple[CloudEndpoint, ...]:
        """Cloud services documented on this server port, most confident first (no `generic`)."""
        return self._ports.get((proto.lower(), port), ())

    # ------------------------------------------------------------ payloads

    def match_payload(
        self, proto: str, port: int, payload: bytes, direction: str
    ) -> PayloadSignature | None:
        """The first payload signature that matches, or None; never raises.

        `proto` is tcp/udp, `port` the flow's server (responder) port, `direction` who sent
        the payload: `client` (the originator) or `server`.
        """
        if not payload:
            return None
        key = (proto, direction, port)
        scans = self._scans
        scan = scans.get(key, _UNKNOWN)
        if scan is _UNKNOWN:
            if len(scans) >= _MEMO_MAX:
                scans.clear()
            scan = scans[key] = self._payload_scan(proto, port, direction)
        if scan is None:
            return None
        limit = self.scan_limit
        full, plain, gate, specs = scan.by_first[payload[0]]
        first = _FIRST
        if first is not None and limit >= 0:
            # the row's offset checks and substrings in C, in order; a regex left to re
            if not specs:
                return None
            at = first(payload, limit, specs, 0)
            while at >= 0:
                sig, cond = full[at]
                patterns = cond.patterns
                if not patterns or all(p.search(payload, 0, limit) is not None for p in patterns):
                    return sig
                at = first(payload, limit, specs, at + 1)
            return None
        candidates = full
        if gate:
            # find, not ``needle in window``: CPython 3.11's bytes ``in`` first tries the
            # needle as an int and formats (then clears) a TypeError on every call; and
            # on the window, with no bounds to parse per call
            find = (payload if len(payload) <= limit else payload[:limit]).find
            for needle in gate:
                if find(needle) >= 0:
                    break
            else:  # no candidate that needs a substring can match
                candidates = plain
        for sig, cond in candidates:
            if cond.hit(payload, limit):
                return sig
        return None

    def _payload_scan(self, proto: str, port: int, direction: str) -> _Scan | None:
        """The candidate table of a lookup: the port's own, else the protocol's."""
        proto = proto.lower()
        return self._payload_port.get((proto, direction, port)) or self._payload_any.get(
            (proto, direction)
        )

    # ------------------------------------------------------------ MACs and banners

    def vendor_of_mac(self, mac: bytes) -> VendorOui | None:
        """The covered-vendor prefix entry of a MAC (6 bytes, or at least the first 3)."""
        return self._ouis.get(bytes(mac[:3])) if len(mac) >= 3 else None

    def match_banner(self, field: str, value: str) -> Fingerprint | None:
        """The fingerprint a header value matches (`field`: http_server, rtsp_server, ...)."""
        matcher = self._banners.get(field)
        return matcher.match(value.strip()) if matcher is not None else None

    # ------------------------------------------------------------ discovery

    def match_discovery(
        self, port: int, payload: bytes
    ) -> tuple[DiscoveryProtocol, DiscoveryMarker] | None:
        """The UDP discovery protocol and message kind of a payload to or from `port`."""
        return self._first_marker(self._discovery_udp.get(port, ()), payload)

    def match_ethertype(
        self, ethertype: int, payload: bytes
    ) -> tuple[DiscoveryProtocol, DiscoveryMarker] | None:
        """The layer-2 discovery protocol and message kind of a frame payload."""
        return self._first_marker(self._discovery_eth.get(ethertype, ()), payload)

    def _first_marker(
        self, markers: Iterable[_Marker], payload: bytes
    ) -> tuple[DiscoveryProtocol, DiscoveryMarker] | None:
        for proto, mk, cond in markers:
            if cond.hit(payload, self.scan_limit):
                return proto, mk
        return None


def _port_table(
    endpoints: Iterable[CloudEndpoint],
) -> dict[tuple[str, int], tuple[CloudEndpoint, ...]]:
    """(proto, port) -> endpoints using it, most confident first; generic ports left out."""
    table: dict[tuple[str, int], list[CloudEndpoint]] = {}
    for ep in endpoints:
        for p in ep.ports:
            if not p.generic:
                table.setdefault((p.proto, p.port), []).append(ep)
    rank = CONFIDENCE_RANK
    return {k: tuple(sorted(v, key=lambda ep: rank[ep.confidence])) for k, v in table.items()}


def _discovery_tables(
    protocols: Iterable[DiscoveryProtocol],
) -> tuple[dict[int, list[_Marker]], dict[int, list[_Marker]]]:
    """UDP port -> markers, EtherType -> markers, each in file order."""
    udp: dict[int, list[_Marker]] = {}
    eth: dict[int, list[_Marker]] = {}
    for proto in protocols:
        for mk in proto.markers:
            entry = (proto, mk, _Conditions.of(mk.match))
            for port in proto.ports:
                udp.setdefault(port, []).append(entry)
            if proto.ethertype is not None:
                eth.setdefault(proto.ethertype, []).append(entry)
    return udp, eth


_Marker = tuple[DiscoveryProtocol, DiscoveryMarker, _Conditions]


def _payload_tables(
    sigs: Iterable[PayloadSignature],
) -> tuple[dict[tuple[str, str], _Scan], dict[tuple[str, str, int], _Scan]]:
    """(proto, direction) -> candidates for any port; (proto, direction, port) -> for that port."""
    compiled = [(i, s, _Conditions.of(s.match)) for i, s in enumerate(sigs)]
    compiled.sort(key=lambda t: (not t[1].ports, CONFIDENCE_RANK[t[1].confidence], t[2].cost, t[0]))
    any_port: dict[tuple[str, str], list[tuple[PayloadSignature, _Conditions]]] = {}
    by_port: dict[tuple[str, str, int], list[tuple[PayloadSignature, _Conditions]]] = {}
    for _, sig, cond in compiled:
        protos = _PROTOS if sig.transport == "any" else (sig.transport,)
        dirs = DIRECTIONS if sig.direction == "any" else (sig.direction,)
        for proto in protos:
            for d in dirs:
                if sig.ports:
                    for port in sig.ports:
                        by_port.setdefault((proto, d, port), []).append((sig, cond))
                else:
                    any_port.setdefault((proto, d), []).append((sig, cond))
    # A specific port also tries the any-port signatures, after its own (already sorted).
    for (proto, d, _), found in by_port.items():
        found.extend(any_port.get((proto, d), ()))
    first = {id(cond): cond.first_bytes() for _, _, cond in compiled}
    specs = {id(cond): cond.spec() for _, _, cond in compiled}
    classes = [frozenset(_BYTES)]
    for gate in {g for g in first.values() if g is not None}:
        classes = [part for same in classes for part in (same & gate, same - gate) if part]
    scans: dict[tuple[int, ...], _Scan] = {}  # the same list on several ports: one scan

    def scan(found: list[tuple[PayloadSignature, _Conditions]]) -> _Scan:
        ids = tuple(id(cond) for _, cond in found)
        if ids not in scans:
            scans[ids] = _Scan.of(tuple(found), first, classes, specs)
        return scans[ids]

    return (
        {k: scan(v) for k, v in any_port.items()},
        {k: scan(v) for k, v in by_port.items()},
    )


class _BannerField:
    """The fingerprints of one header field: exact (dict), prefixes, substrings, regexes."""

    def __init__(self, prints: list[Fingerprint]) -> None:
        self.exact = {f.value: f for f in reversed(prints) if f.match == "exact"}
        by_len = sorted((f for f in prints if f.match == "prefix"), key=lambda f: -len(f.value))
        self.prefixes = tuple((f.value, f) for f in by_len)
        self.any_prefix = tuple(v for v, _ in self.prefixes)
        self.contains = tuple((f.value, f) for f in prints if f.match == "contains")
        self._regex_prints = tuple(f for f in prints if f.match == "regex")
        self._regexes: tuple[tuple[re.Pattern[str], Fingerprint], ...] | None = None

    @property
    def regexes(self) -> tuple[tuple[re.Pattern[str], Fingerprint], ...]:
        """The regex fingerprints, compiled at the first value that reaches them (not at start:
        a start compiles none of them; the seeds were checked when their file was read)."""
        if self._regexes is None:
            self._regexes = tuple(
                (loader.compile_regex(f.value, as_bytes=False), f) for f in self._regex_prints
            )
        return self._regexes

    def match(self, value: str) -> Fingerprint | None:
        hit = self.exact.get(value)
        if hit is not None:
            return hit
        if self.any_prefix and value.startswith(self.any_prefix):
            return next(f for p, f in self.prefixes if value.startswith(p))
        for needle, f in self.contains:
            if needle in value:
                return f
        for pattern, f in self.regexes:
            if pattern.search(value) is not None:
                return f
        return None
