"""Address classes: is a packed IPv4/IPv6 address public, private, special or the site's own?

Every flow endpoint is classified (a binary search over precomputed pieces of the address
space, in C when it is built) to decide whether it is worth a GeoIP lookup (only PUBLIC
addresses are), whether it belongs to the site (Zeek ``local_orig``/``local_resp``) and how
the rules should treat it.

Configuration read: ``site.local_nets`` (passed in as networks; the config layer owns the
defaults).

Sources. The special ranges follow the IANA "IPv4 Special-Purpose Address Registry" and the
"IPv6 Special-Purpose Address Registry" (the registries set up by RFC 6890 and updated by
RFC 8190), the IANA "IPv4 Multicast Address Space Registry" (224.0.0.0/4), and the IANA
"Internet Protocol Version 6 Address Space" registry (only 2000::/3 is global unicast).

Decisions (longest matching prefix wins, so an exception inside a larger block applies):
- Registry entries whose "Globally Reachable" is False become RESERVED unless a more
  specific class exists (PRIVATE, CGNAT, ...). Entries whose "Globally Reachable" is True
  (PCP/TURN anycast 192.0.0.9 and .10, AS112 192.31.196.0/24, 192.175.48.0/24 and
  2001:4:112::/48, AMT 192.52.193.0/24 and 2001:3::/32, ORCHIDv2, drone DETs,
  2620:4f:8000::/48) are PUBLIC: traffic to them leaves the site.
- 2001::/32 (Teredo) and 2002::/16 (6to4) are "N/A" in the registry; they are real
  Internet endpoints reached through a tunnel, so they are PUBLIC (a camera tunnelling out
  must not be hidden).
- 64:ff9b::/96 (NAT64 well-known prefix, RFC 6052) is classified as the IPv4 address it
  embeds when that is PUBLIC, else RESERVED (RFC 6052 section 3.1 forbids non-global IPv4
  there). ``embedded_ipv4`` gives the address a GeoIP lookup should use. 64:ff9b:1::/48
  (local-use translation, RFC 8215) is RESERVED.
- IPv4-mapped IPv6 (::ffff:a.b.c.d) is classified exactly as a.b.c.d, local nets included.
- IPv6 outside 2000::/3, fc00::/7, fe80::/10 and ff00::/8 is RESERVED (unassigned space,
  including deprecated site-local fec0::/10 and IPv4-compatible ::a.b.c.d).
- 3fff::/20 (RFC 9637) is DOCUMENTATION like 2001:db8::/32.
- LOCAL_NET is given only to addresses that are otherwise PUBLIC: an address in both
  10.0.0.0/8 and a configured local net stays PRIVATE (``is_site_local`` still says True).
- BROADCAST is 255.255.255.255 and the directed broadcast of each configured IPv4 local
  net of prefix length /30 or shorter (/31 and /32 have none, RFC 3021).

Known limits: the tables are a snapshot of the registries (checked 2026). The environment
variable ``NETWATCH_PURE=1`` leaves the compiled lookup (``netwatch._mmdb.Pieces``) unused.
"""

from __future__ import annotations

import _socket as socket  # inet_ntop/pton without socket.py (its enums, selectors): ~3 ms
import bisect
import enum
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from netwatch.compiled import optional

if TYPE_CHECKING:
    from netwatch._mmdb import Pieces

_T = TypeVar("_T")
_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_NAT64_PREFIX = bytes.fromhex("0064ff9b") + b"\x00" * 8
_bisect = bisect.bisect_right


class AddrClass(enum.Enum):
    """What kind of address this is, as far as routing and policy are concerned."""

    PUBLIC = "public"
    PRIVATE = "private"
    ULA = "ula"
    CGNAT = "cgnat"
    LINK_LOCAL = "link_local"
    LOOPBACK = "loopback"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    DOCUMENTATION = "documentation"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"
    LOCAL_NET = "local_net"


_C = AddrClass
_IPV4_TABLE: tuple[tuple[str, AddrClass], ...] = (
    ("0.0.0.0/0", _C.PUBLIC),
    ("0.0.0.0/8", _C.UNSPECIFIED),
    ("10.0.0.0/8", _C.PRIVATE),
    ("100.64.0.0/10", _C.CGNAT),
    ("127.0.0.0/8", _C.LOOPBACK),
    ("169.254.0.0/16", _C.LINK_LOCAL),
    ("172.16.0.0/12", _C.PRIVATE),
    ("192.0.0.0/24", _C.RESERVED),
    ("192.0.0.9/32", _C.PUBLIC),
    ("192.0.0.10/32", _C.PUBLIC),
    ("192.0.2.0/24", _C.DOCUMENTATION),
    ("192.31.196.0/24", _C.PUBLIC),
    ("192.52.193.0/24", _C.PUBLIC),
    ("192.88.99.0/24", _C.RESERVED),
    ("192.168.0.0/16", _C.PRIVATE),
    ("192.175.48.0/24", _C.PUBLIC),
    ("198.18.0.0/15", _C.RESERVED),
    ("198.51.100.0/24", _C.DOCUMENTATION),
    ("203.0.113.0/24", _C.DOCUMENTATION),
    ("224.0.0.0/4", _C.MULTICAST),
    ("240.0.0.0/4", _C.RESERVED),
    ("255.255.255.255/32", _C.BROADCAST),
)
_IPV6_TABLE: tuple[tuple[str, AddrClass], ...] = (
    ("::/0", _C.RESERVED),
    ("::/128", _C.UNSPECIFIED),
    ("::1/128", _C.LOOPBACK),
    ("64:ff9b:1::/48", _C.RESERVED),
    ("100::/64", _C.RESERVED),
    ("100:0:0:1::/64", _C.RESERVED),
    ("2000::/3", _C.PUBLIC),
    ("2001::/23", _C.RESERVED),
    ("2001::/32", _C.PUBLIC),
    ("2001:1::1/128", _C.PUBLIC),
    ("2001:1::2/128", _C.PUBLIC),
    ("2001:1::3/128", _C.PUBLIC),
    ("2001:3::/32", _C.PUBLIC),
    ("2001:4:112::/48", _C.PUBLIC),
    ("2001:20::/28", _C.PUBLIC),
    ("2001:30::/28", _C.PUBLIC),
    ("2001:db8::/32", _C.DOCUMENTATION),
    ("2620:4f:8000::/48", _C.PUBLIC),
    ("3fff::/20", _C.DOCUMENTATION),
    ("5f00::/16", _C.RESERVED),
    ("fc00::/7", _C.ULA),
    ("fe80::/10", _C.LINK_LOCAL),
    ("ff00::/8", _C.MULTICAST),
)

# (network as int, netmask as int, class), most specific first: the first match wins.
_Rule = tuple[int, int, AddrClass]
_Entry = tuple[IPv4Network | IPv6Network, AddrClass]


def _compile(entries: Sequence[_Entry]) -> tuple[_Rule, ...]:
    ordered = sorted(entries, key=lambda entry: entry[0].prefixlen, reverse=True)
    return tuple((int(net.network_address), int(net.netmask), cls) for net, cls in ordered)


def _parse_table(table: tuple[tuple[str, AddrClass], ...]) -> list[_Entry]:
    return [(ip_network(cidr), cls) for cidr, cls in table]


def _first_match(rules: tuple[_Rule, ...], value: int) -> AddrClass:
    for network, mask, cls in rules:
        if value & mask == network:
            return cls
    return AddrClass.PUBLIC  # unreachable: both tables end with a /0 entry


def _intervals(
    rules: tuple[_Rule, ...], local: tuple[tuple[int, int], ...], bits: int
) -> tuple[list[int], list[tuple[AddrClass, bool]]]:
    """The address space cut where any rule's or local net's prefix starts or ends: within
    one piece every address matches the same rules, so the piece's first address gives the
    answer for all of it. Returns (sorted piece starts, (class, site-local) of each piece)."""
    top = 1 << bits
    cuts = {0}
    for network, mask, _cls in rules:
        cuts.update((network, network + (~mask & (top - 1)) + 1))
    for network, mask in local:
        cuts.update((network, network + (~mask & (top - 1)) + 1))
    starts = sorted(cut for cut in cuts if cut < top)
    answers = []
    for start in starts:
        site = any(start & mask == net for net, mask in local)
        cls = _first_match(rules, start)
        answers.append((AddrClass.LOCAL_NET if cls is AddrClass.PUBLIC and site else cls, site))
    return starts, answers


def ip_text(addr: bytes) -> str:
    """Packed 4- or 16-byte address to its canonical text ('10.0.0.1', '2001:db8::1')."""
    family = socket.AF_INET if len(addr) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, addr)


def embedded_ipv4(addr: bytes) -> bytes | None:
    """The IPv4 address inside an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address."""
    if len(addr) == 16 and addr[:12] in (_MAPPED_PREFIX, _NAT64_PREFIX):
        return addr[12:]
    return None


class _PurePieces(Generic[_T]):
    """``netwatch._mmdb.Pieces`` in Python (no compiler, or ``NETWATCH_PURE=1``): the same
    answers, one ``bisect`` over the piece starts as integers."""

    def __init__(
        self,
        starts4: list[int],
        values4: tuple[_T, ...],
        starts16: list[int],
        values16: tuple[_T, ...],
    ) -> None:
        self._starts4 = starts4
        self._values4 = values4
        self._starts16 = starts16
        self._values16 = values16

    def get(self, addr: bytes) -> _T:
        """The value of the piece ``addr`` is in (ValueError unless it is 4 or 16 bytes)."""
        size = len(addr)
        if size == 4:
            return self._values4[_bisect(self._starts4, int.from_bytes(addr, "big")) - 1]
        if size == 16:
            return self._values16[_bisect(self._starts16, int.from_bytes(addr, "big")) - 1]
        raise ValueError(f"packed IP address must be 4 or 16 bytes, got {size}")


def _load_pieces() -> type[Pieces[Any]] | None:
    """The compiled pieces, or None when they are not built or ``NETWATCH_PURE=1``."""
    pieces: type[Pieces[Any]] | None = optional("_mmdb", "Pieces")
    return pieces


#: The compiled pieces used by classifiers made from now on (None: ``_PurePieces``).
PIECES: type[Pieces[Any]] | None = _load_pieces()


def _merged(starts: list[int], values: list[_T]) -> tuple[list[int], tuple[_T, ...]]:
    """The pieces with each run of equal neighbours made one (fewer steps to search)."""
    kept_starts: list[int] = []
    kept: list[_T] = []
    for start, value in zip(starts, values, strict=True):
        if not kept or value != kept[-1]:
            kept_starts.append(start)
            kept.append(value)
    return kept_starts, tuple(kept)


class AddressClassifier:
    """Classifies packed addresses against the IANA tables and the site's local networks.

    The answers are worked out once for every piece of the IPv4 and IPv6 address spaces
    that the tables' prefixes, the local nets and the IPv4-mapped and NAT64 ranges cut them
    into (a few hundred), so ``classify`` / ``is_local`` / ``is_site_local`` are one binary
    search over the piece starts, with no per-address cache (a flood of new addresses costs
    what a known one does): in C (``netwatch._mmdb.Pieces``, about 0.05 µs a call) unless
    it is not built or ``NETWATCH_PURE=1``, else a ``bisect`` in Python. An instance holds
    each lookup itself under the method's name (no Python frame per call), unless a
    subclass overrides that method.

    The per-address reference (``_compute``: the rule scan) is what the pieces are built
    from and what the tests compare them with.
    """

    def __init__(self, local_nets: Sequence[IPv4Network | IPv6Network]) -> None:
        self.local_nets: tuple[IPv4Network | IPv6Network, ...] = tuple(local_nets)
        v4 = [net for net in self.local_nets if isinstance(net, IPv4Network)]
        v6 = [net for net in self.local_nets if isinstance(net, IPv6Network)]
        broadcasts = [
            (IPv4Network(net.broadcast_address), AddrClass.BROADCAST)
            for net in v4
            if net.prefixlen <= 30
        ]
        self._v4_rules = _compile([*_parse_table(_IPV4_TABLE), *broadcasts])
        self._v6_rules = _compile(_parse_table(_IPV6_TABLE))
        self._v4_local = tuple((int(n.network_address), int(n.netmask)) for n in v4)
        self._v6_local = tuple((int(n.network_address), int(n.netmask)) for n in v6)
        # IPv4: the pieces the prefixes cut the space into (the reference for IPv4 too)
        self._v4_starts, self._v4_answers = _intervals(self._v4_rules, self._v4_local, 32)
        self._v6_starts = self._v6_cuts()
        v6_answers = [self._compute(start.to_bytes(16, "big")) for start in self._v6_starts]
        self._classify: Callable[[bytes], AddrClass] = self._pieces(
            [cls for cls, _site in self._v4_answers], [cls for cls, _site in v6_answers]
        ).get
        self._is_local: Callable[[bytes], bool] = self._pieces(
            [cls is not AddrClass.PUBLIC for cls, _site in self._v4_answers],
            [cls is not AddrClass.PUBLIC for cls, _site in v6_answers],
        ).get
        self._is_site_local: Callable[[bytes], bool] = self._pieces(
            [site for _cls, site in self._v4_answers], [site for _cls, site in v6_answers]
        ).get
        for name, lookup in (
            ("classify", self._classify),
            ("is_local", self._is_local),
            ("is_site_local", self._is_site_local),
        ):
            if getattr(type(self), name) is getattr(AddressClassifier, name):
                self.__dict__[name] = lookup  # found before the class's method

    def classify(self, addr: bytes) -> AddrClass:
        """The class of a packed 4- or 16-byte address (ValueError for any other length)."""
        return self._classify(addr)

    def is_local(self, addr: bytes) -> bool:
        """True for anything that is not PUBLIC: such addresses are never geolocated."""
        return self._is_local(addr)

    def is_site_local(self, addr: bytes) -> bool:
        """True when the address is inside a configured local net (Zeek local_orig/resp)."""
        return self._is_site_local(addr)

    def _v6_cuts(self) -> list[int]:
        """Where the IPv6 answer can change: every IPv6 rule's and local net's first address
        and the one after its last, the IPv4-mapped and NAT64 ranges' ends, and inside them
        the IPv4 pieces' starts (their answers follow the IPv4 address they embed)."""
        top = 1 << 128
        cuts = {0}
        for network, mask, _cls in self._v6_rules:
            cuts.update((network, network + (~mask & (top - 1)) + 1))
        for network, mask in self._v6_local:
            cuts.update((network, network + (~mask & (top - 1)) + 1))
        for base in (
            int.from_bytes(_MAPPED_PREFIX + bytes(4), "big"),
            int.from_bytes(_NAT64_PREFIX + bytes(4), "big"),
        ):
            cuts.update(base + start for start in self._v4_starts)
            cuts.add(base + (1 << 32))
        return sorted(cut for cut in cuts if cut < top)

    def _pieces(self, v4: list[_T], v6: list[_T]) -> Pieces[_T] | _PurePieces[_T]:
        """The lookup of ``v4`` (one answer per IPv4 piece) and ``v6`` (per IPv6 piece)."""
        starts4, values4 = _merged(self._v4_starts, v4)
        starts16, values16 = _merged(self._v6_starts, v6)
        if PIECES is None:
            return _PurePieces(starts4, values4, starts16, values16)
        return PIECES(
            b"".join(start.to_bytes(4, "big") for start in starts4),
            values4,
            b"".join(start.to_bytes(16, "big") for start in starts16),
            values16,
        )

    def _compute(self, addr: bytes) -> tuple[AddrClass, bool]:
        """The reference answer (class, site-local) for one address, from the rules: what
        the pieces are built from."""
        if len(addr) == 16:
            inner = embedded_ipv4(addr)
            if inner is not None and addr[:12] == _MAPPED_PREFIX:
                return self._compute_v4(inner)
            return self._compute_v6(addr, inner)
        if len(addr) == 4:
            return self._compute_v4(addr)
        raise ValueError(f"packed IP address must be 4 or 16 bytes, got {len(addr)}")

    def _compute_v4(self, addr: bytes) -> tuple[AddrClass, bool]:
        value = int.from_bytes(addr, "big")
        return self._v4_answers[bisect.bisect_right(self._v4_starts, value) - 1]

    def _compute_v6(self, addr: bytes, nat64_inner: bytes | None) -> tuple[AddrClass, bool]:
        value = int.from_bytes(addr, "big")
        site = any(value & mask == net for net, mask in self._v6_local)
        if nat64_inner is None:
            cls = _first_match(self._v6_rules, value)
        else:
            inner_cls = _first_match(self._v4_rules, int.from_bytes(nat64_inner, "big"))
            cls = AddrClass.PUBLIC if inner_cls is AddrClass.PUBLIC else AddrClass.RESERVED
        if cls is AddrClass.PUBLIC and site:
            cls = AddrClass.LOCAL_NET
        return cls, site
