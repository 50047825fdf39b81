"""Tests for netwatch.enrich.addrclass: a table across every class, local nets, the compiled
and the pure pieces against a per-address rule scan and ``ipaddress``."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.enrich import addrclass
from netwatch.enrich.addrclass import (
    AddrClass,
    AddressClassifier,
    _first_match,
    _PurePieces,
    embedded_ipv4,
    ip_text,
)

C = AddrClass
LOCAL_NETS = (
    ipaddress.ip_network("10.20.0.0/16"),
    ipaddress.ip_network("193.0.10.0/24"),  # a site that owns public space
    ipaddress.ip_network("198.51.100.0/24"),  # documentation range configured as local
    ipaddress.ip_network("2a01:4f8:1::/48"),
    ipaddress.ip_network("fd00:1::/64"),
    ipaddress.ip_network("203.0.113.8/31"),  # point-to-point: no directed broadcast
)


def packed(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


# (address, expected class, expected is_site_local)
TABLE = [
    # public
    ("8.8.8.8", C.PUBLIC, False),
    ("1.1.1.1", C.PUBLIC, False),
    ("2001:4860:4860::8888", C.PUBLIC, False),
    ("2a00:1450:4001:82a::200e", C.PUBLIC, False),
    ("192.0.0.9", C.PUBLIC, False),  # PCP anycast: globally reachable
    ("192.175.48.1", C.PUBLIC, False),  # AS112 direct delegation
    ("2001::1", C.PUBLIC, False),  # Teredo: Internet endpoint through a tunnel
    ("2002:c000:204::1", C.PUBLIC, False),  # 6to4
    ("2001:4:112::1", C.PUBLIC, False),  # AS112-v6 inside 2001::/23
    ("64:ff9b::808:808", C.PUBLIC, False),  # NAT64 of 8.8.8.8
    # RFC 1918 / ULA / CGNAT
    ("10.0.0.1", C.PRIVATE, False),
    ("172.16.0.1", C.PRIVATE, False),
    ("172.31.255.254", C.PRIVATE, False),
    ("192.168.1.1", C.PRIVATE, False),
    ("172.32.0.1", C.PUBLIC, False),  # just outside 172.16/12
    ("fd12:3456::1", C.ULA, False),
    ("fc00::1", C.ULA, False),
    ("100.64.0.1", C.CGNAT, False),
    ("100.127.255.254", C.CGNAT, False),
    ("100.128.0.1", C.PUBLIC, False),
    # link-local, loopback, multicast, broadcast
    ("169.254.1.1", C.LINK_LOCAL, False),
    ("fe80::1", C.LINK_LOCAL, False),
    ("febf::1", C.LINK_LOCAL, False),
    ("127.0.0.1", C.LOOPBACK, False),
    ("127.255.0.9", C.LOOPBACK, False),
    ("::1", C.LOOPBACK, False),
    ("224.0.0.251", C.MULTICAST, False),
    ("239.255.255.250", C.MULTICAST, False),
    ("ff02::fb", C.MULTICAST, False),
    ("ff05::c", C.MULTICAST, False),
    ("255.255.255.255", C.BROADCAST, False),
    # documentation, unspecified, reserved
    ("192.0.2.7", C.DOCUMENTATION, False),
    ("203.0.113.200", C.DOCUMENTATION, False),
    ("2001:db8::1", C.DOCUMENTATION, False),
    ("3fff:1::1", C.DOCUMENTATION, False),
    ("0.0.0.0", C.UNSPECIFIED, False),
    ("0.1.2.3", C.UNSPECIFIED, False),
    ("::", C.UNSPECIFIED, False),
    ("240.0.0.1", C.RESERVED, False),
    ("254.1.1.1", C.RESERVED, False),
    ("192.0.0.8", C.RESERVED, False),
    ("192.0.0.170", C.RESERVED, False),
    ("198.18.0.1", C.RESERVED, False),
    ("198.19.255.1", C.RESERVED, False),
    ("192.88.99.1", C.RESERVED, False),
    ("64:ff9b::a00:1", C.RESERVED, False),  # NAT64 of 10.0.0.1: not allowed by RFC 6052
    ("64:ff9b:1::1", C.RESERVED, False),
    ("100::1", C.RESERVED, False),
    ("2001:2::1", C.RESERVED, False),  # benchmarking
    ("2001:10::1", C.RESERVED, False),  # deprecated ORCHID
    ("5f00::1", C.RESERVED, False),
    ("fec0::1", C.RESERVED, False),  # deprecated site-local, outside 2000::/3
    ("::102:304", C.RESERVED, False),  # IPv4-compatible, deprecated
    ("4000::1", C.RESERVED, False),  # unassigned IPv6 space
    # configured local nets
    ("10.20.1.1", C.PRIVATE, True),  # special class wins, still site-local
    ("10.20.255.255", C.BROADCAST, True),  # directed broadcast of 10.20.0.0/16
    ("10.21.255.255", C.PRIVATE, False),
    ("193.0.10.5", C.LOCAL_NET, True),
    ("193.0.10.255", C.BROADCAST, True),
    ("193.0.10.0", C.LOCAL_NET, True),
    ("193.0.11.5", C.PUBLIC, False),
    ("198.51.100.255", C.BROADCAST, True),
    ("198.51.100.4", C.DOCUMENTATION, True),
    ("203.0.113.9", C.DOCUMENTATION, True),  # /31: .9 is a host, not a broadcast
    ("2a01:4f8:1::10", C.LOCAL_NET, True),
    ("2a01:4f8:2::10", C.PUBLIC, False),
    ("fd00:1::5", C.ULA, True),
    # IPv4-mapped IPv6 is the IPv4 address, local nets included
    ("::ffff:8.8.8.8", C.PUBLIC, False),
    ("::ffff:10.0.0.1", C.PRIVATE, False),
    ("::ffff:193.0.10.5", C.LOCAL_NET, True),
    ("::ffff:10.20.255.255", C.BROADCAST, True),
    ("::ffff:127.0.0.1", C.LOOPBACK, False),
]


@pytest.fixture(params=["compiled", "pure"])
def pieces(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test with the compiled pieces and again with the pure-Python ones (as under
    ``NETWATCH_PURE=1``); classifiers must be made inside the test."""
    if request.param == "pure":
        monkeypatch.setattr(addrclass, "PIECES", None)
    elif addrclass.PIECES is None:
        pytest.skip("netwatch._mmdb is not built (or NETWATCH_PURE=1)")
    yield request.param


@pytest.fixture
def classifier(pieces: str) -> AddressClassifier:
    return AddressClassifier(LOCAL_NETS)


@pytest.mark.parametrize(("text", "expected", "site"), TABLE)
def test_table(classifier: AddressClassifier, text: str, expected: AddrClass, site: bool) -> None:
    addr = packed(text)
    assert classifier.classify(addr) is expected
    assert classifier.is_site_local(addr) is site
    assert classifier.is_local(addr) is (expected is not AddrClass.PUBLIC)
    assert classifier.classify(addr) is expected  # the same answer the second time
    assert _reference(classifier, addr) == (expected, site)


def test_table_covers_every_class_in_both_families() -> None:
    seen = {expected for _text, expected, _site in TABLE}
    assert seen == set(AddrClass)
    assert sum(1 for text, *_ in TABLE if ":" in text) >= 20
    assert len(TABLE) >= 40


def test_no_local_nets_means_no_local_net_class(pieces: str) -> None:
    classifier = AddressClassifier([])
    assert classifier.classify(packed("193.0.10.5")) is AddrClass.PUBLIC
    assert classifier.classify(packed("10.255.255.255")) is AddrClass.PRIVATE
    assert not classifier.is_site_local(packed("10.0.0.1"))


def test_the_pieces_are_compiled_unless_pure(pieces: str) -> None:
    classifier = AddressClassifier(LOCAL_NETS)
    owner = getattr(classifier.is_site_local, "__self__", None)
    assert isinstance(owner, _PurePieces) is (pieces == "pure")


class _Counting(AddressClassifier):
    asked = 0

    def is_site_local(self, addr: bytes) -> bool:
        self.asked += 1
        return super().is_site_local(addr)


def test_a_subclass_override_is_called(pieces: str) -> None:
    """The lookups stand in for the methods on an instance only where a subclass keeps
    them: an override is called, and its super() call answers."""
    counting = _Counting(LOCAL_NETS)
    assert counting.is_site_local(packed("10.20.1.1")) is True
    assert counting.is_site_local(packed("8.8.8.8")) is False
    assert counting.asked == 2
    assert counting.classify(packed("10.20.1.1")) is AddrClass.PRIVATE
    assert "is_site_local" not in vars(counting) and "classify" in vars(counting)


def test_pure_environment_leaves_the_compiled_pieces_unused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETWATCH_PURE", "1")
    assert addrclass._load_pieces() is None
    monkeypatch.delenv("NETWATCH_PURE")
    if addrclass.PIECES is not None:
        assert addrclass._load_pieces() is addrclass.PIECES


@pytest.mark.parametrize("size", [0, 3, 5, 15, 17])
def test_bad_length_is_a_caller_error(classifier: AddressClassifier, size: int) -> None:
    for ask in (classifier.classify, classifier.is_local, classifier.is_site_local):
        with pytest.raises(ValueError, match="4 or 16 bytes"):
            ask(bytes(size))


def test_ip_text_and_embedded_ipv4() -> None:
    assert ip_text(packed("10.0.0.1")) == "10.0.0.1"
    assert ip_text(packed("2001:db8:0:0::1")) == "2001:db8::1"
    assert ip_text(packed("::ffff:8.8.8.8")) == "::ffff:8.8.8.8"
    assert embedded_ipv4(packed("::ffff:8.8.8.8")) == packed("8.8.8.8")
    assert embedded_ipv4(packed("64:ff9b::8.8.4.4")) == packed("8.8.4.4")
    assert embedded_ipv4(packed("2001:db8::8.8.4.4")) is None
    assert embedded_ipv4(packed("8.8.4.4")) is None


@pytest.mark.parametrize("pure", [False, True])
@given(addr=st.binary(min_size=4, max_size=4))
def test_ipv4_agrees_with_stdlib_on_private_and_global(addr: bytes, pure: bool) -> None:
    """Where Python's ipaddress and IANA agree plainly, so do we."""
    classifier = _EMPTY[pure]
    std = ipaddress.IPv4Address(addr)
    cls = classifier.classify(addr)
    if std.is_multicast:
        assert cls is AddrClass.MULTICAST
    elif std.is_global:
        assert cls is AddrClass.PUBLIC
    else:
        assert cls is not AddrClass.PUBLIC or str(std) in ("192.0.0.9", "192.0.0.10")
    mapped = b"\x00" * 10 + b"\xff\xff" + addr
    assert classifier.classify(mapped) is cls


def _scan_v4(c: AddressClassifier, value: int) -> tuple[AddrClass, bool]:
    """The reference answer: every rule in order, most specific first, then the local nets."""
    site = any(value & mask == net for net, mask in c._v4_local)
    cls = _first_match(c._v4_rules, value)
    return (AddrClass.LOCAL_NET if cls is AddrClass.PUBLIC and site else cls), site


_OVERLAPPING_NETS = [
    ipaddress.ip_network(n) for n in ("10.20.0.0/16", "100.64.8.0/22", "8.8.8.0/24", "8.8.8.8/32")
]


def test_ipv4_pieces_agree_with_the_rule_scan_at_every_edge() -> None:
    """Each address at, just before and just after a piece boundary gets the rule scan's
    answer (local nets inside special ranges, nested and single-address nets included)."""
    c = AddressClassifier(_OVERLAPPING_NETS)
    for start in c._v4_starts:
        for value in (start - 1, start, start + 1):
            if 0 <= value < 1 << 32:
                assert c._compute_v4(value.to_bytes(4, "big")) == _scan_v4(c, value), hex(value)


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_ipv4_pieces_agree_with_the_rule_scan(value: int) -> None:
    c = AddressClassifier(_OVERLAPPING_NETS)
    assert c._compute_v4(value.to_bytes(4, "big")) == _scan_v4(c, value)


# ---- the pieces (compiled and pure) against a per-address reference ----

_MAPPED = b"\x00" * 10 + b"\xff\xff"
_NAT64 = bytes.fromhex("0064ff9b") + b"\x00" * 8


def _reference(c: AddressClassifier, addr: bytes) -> tuple[AddrClass, bool]:
    """The answer worked out for one address as before the pieces: the rule scan (most
    specific prefix first) for the class, ``ipaddress`` membership for the local nets, the
    IPv4-mapped form as its IPv4 address and NAT64 by the class of the IPv4 inside."""
    if len(addr) == 16 and addr[:12] == _MAPPED:
        addr = addr[12:]
    ip = ipaddress.ip_address(addr)
    site = any(ip in net for net in c.local_nets if net.version == ip.version)
    if len(addr) == 4:
        cls = _first_match(c._v4_rules, int(ip))
    elif addr[:12] == _NAT64:
        inner = _first_match(c._v4_rules, int.from_bytes(addr[12:], "big"))
        cls = AddrClass.PUBLIC if inner is AddrClass.PUBLIC else AddrClass.RESERVED
    else:
        cls = _first_match(c._v6_rules, int(ip))
    return (AddrClass.LOCAL_NET if cls is AddrClass.PUBLIC and site else cls), site


def _check(c: AddressClassifier, addr: bytes) -> None:
    cls, site = _reference(c, addr)
    assert c.classify(addr) is cls, ip_text(addr)
    assert c.is_site_local(addr) is site, ip_text(addr)
    assert c.is_local(addr) is (cls is not AddrClass.PUBLIC), ip_text(addr)


def _both(nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> list[AddressClassifier]:
    """A classifier on the compiled pieces (when built) and one on the pure ones."""
    made = [AddressClassifier(nets)]
    saved = addrclass.PIECES
    try:
        addrclass.PIECES = None
        made.append(AddressClassifier(nets))
    finally:
        addrclass.PIECES = saved
    return made


_EMPTY = {False: AddressClassifier([]), True: _both([])[-1]}
_EDGE_NETS = [
    *_OVERLAPPING_NETS,
    *LOCAL_NETS,
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("255.255.255.254/31"),
    ipaddress.ip_network("2001::/32"),  # Teredo inside the reserved 2001::/23
    ipaddress.ip_network("64:ff9b::/120"),  # part of the NAT64 range
    ipaddress.ip_network("::ffff:0:0/96"),  # the whole IPv4-mapped range as IPv6
    ipaddress.ip_network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"),
    ipaddress.ip_network("::/128"),
]


def _near_every_edge(c: AddressClassifier) -> Iterator[bytes]:
    for start in c._v4_starts:
        for value in (start - 1, start, start + 1):
            if 0 <= value < 1 << 32:
                packed4 = value.to_bytes(4, "big")
                yield packed4
                yield _MAPPED + packed4
                yield _NAT64 + packed4
    for start in c._v6_starts:
        for value in (start - 1, start, start + 1):
            if 0 <= value < 1 << 128:
                yield value.to_bytes(16, "big")


@pytest.mark.parametrize("nets", [[], LOCAL_NETS, _EDGE_NETS], ids=["none", "site", "edges"])
def test_every_piece_edge_agrees_with_the_reference(
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> None:
    """Each address at, just before and just after any piece start (IPv4, IPv4-mapped,
    NAT64 and IPv6) gets the per-address answer, compiled and pure."""
    for c in _both(list(nets)):
        for addr in _near_every_edge(c):
            _check(c, addr)


_BOTH_EDGES = _both(_EDGE_NETS)


def _addresses() -> st.SearchStrategy[bytes]:
    v4 = st.binary(min_size=4, max_size=4)
    return st.one_of(
        v4,
        v4.map(lambda a: _MAPPED + a),
        v4.map(lambda a: _NAT64 + a),
        st.binary(min_size=16, max_size=16),
        # IPv6 near the special ranges: a random tail after a chosen prefix
        st.tuples(
            st.sampled_from(
                [
                    b"\x20\x01\x00",
                    b"\x20\x01\x0d\xb8",
                    b"\xfe\x80",
                    b"\xfc",
                    b"\x00" * 15,
                    b"\x2a\x01\x04\xf8\x00\x01",
                    b"\xfd\x00\x00\x01",
                    b"\x00\x64\xff\x9b",
                ]
            ),
            st.binary(min_size=16, max_size=16),
        ).map(lambda pair: (pair[0] + pair[1])[:16]),
    )


@given(addr=_addresses())
def test_addresses_agree_with_the_reference(addr: bytes) -> None:
    for c in _BOTH_EDGES:
        _check(c, addr)


def _networks() -> st.SearchStrategy[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    v4 = st.tuples(st.integers(0, (1 << 32) - 1), st.integers(0, 32)).map(
        lambda p: ipaddress.IPv4Network((p[0], p[1]), strict=False)
    )
    v6 = st.tuples(st.integers(0, (1 << 128) - 1), st.integers(0, 128)).map(
        lambda p: ipaddress.IPv6Network((p[0], p[1]), strict=False)
    )
    return st.one_of(v4, v6)


@settings(max_examples=60, deadline=None)
@given(nets=st.lists(_networks(), max_size=6), addrs=st.lists(_addresses(), max_size=20))
def test_any_local_nets_agree_with_the_reference(
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network], addrs: list[bytes]
) -> None:
    """Random local nets (any prefix, overlapping, inside special ranges): the pieces'
    answers at their own edges and at random addresses are the per-address answers."""
    for c in _both(nets):
        for addr in [*addrs, *(bytes(n.network_address.packed) for n in nets)]:
            _check(c, addr)
            if len(addr) == 4:
                _check(c, _MAPPED + addr)
                _check(c, _NAT64 + addr)
        edges = list(_near_every_edge(c))
        for addr in edges[:: max(1, len(edges) // 200)]:
            _check(c, addr)
