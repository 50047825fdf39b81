"""The DNS parser against its previous, dpkt-based version (``tests/deep/dns_reference.py``),
and the mDNS walk against itself with dpkt's name decoder: identical results on every payload
of the real captures, on bit-flipped and cut copies of them, and on generated hostile
messages (compression-pointer chains and loops, long and cut labels, bytes that are not
UTF-8). The name decoder alone: ``tests/deep/test_dnsname.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep import dns, mdns
from netwatch.deep.dns import parse_dns, parse_dns_tcp
from tests.conftest import PCAP_CORPUS
from tests.deep import dns_reference as reference
from tests.deep.test_dns import _cname_chain_response, l4_payloads, mutate
from tests.profile import examples

REPO = Path(__file__).resolve().parents[2]
DNS_PORTS = frozenset({53, 5353, 5355})


def _payloads(root: Path) -> Iterator[tuple[bool, bytes]]:
    """(is a DNS port, payload) for every TCP/UDP payload of the captures under ``root``; a
    capture cut inside a record gives what precedes the cut."""
    for path in sorted(p for p in root.rglob("*.pcap*") if p.is_file()):
        try:
            for seg in l4_payloads(path):
                yield bool(DNS_PORTS & {seg.sport, seg.dport}), seg.payload
        except dpkt.NeedData:
            continue


def _same(payload: bytes) -> None:
    """The reference's answer, from the compiled message walk (when built) and from the
    Python one."""
    expected = reference.parse_dns(payload)
    assert parse_dns(payload) == expected, payload.hex()
    if dns.C_SCAN is not None:
        compiled, dns.C_SCAN = dns.C_SCAN, None
        try:
            assert parse_dns(payload) == expected, payload.hex()
        finally:
            dns.C_SCAN = compiled


@pytest.fixture(scope="module")
def captured() -> list[tuple[bool, bytes]]:
    """Every payload of the real corpus and of the repository's captures."""
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent: the real-capture tests need ../shared/corpus")
    return [*_payloads(PCAP_CORPUS), *_payloads(REPO / "pcaps")]


def test_every_captured_payload_parses_as_before(captured: list[tuple[bool, bytes]]) -> None:
    dns = 0
    for is_dns, payload in captured:
        _same(payload)
        dns += is_dns
    assert dns > 2000  # the corpus's DNS, mDNS and LLMNR messages are all in there


def test_the_captured_dns_survives_bit_flips_and_cuts_as_before(
    captured: list[tuple[bool, bytes]],
) -> None:
    messages = [payload for is_dns, payload in captured if is_dns and len(payload) >= 12]
    for index, payload in enumerate(messages):
        for salt in range(4):
            noise = struct.pack(">HHHH", index * 7 + salt * 131, index + salt, salt * 977, index)
            mutated = mutate(payload, noise if salt else noise[2:])
            _same(mutated)


# ---- generated messages ----------------------------------------------------------------

_TOKEN = st.one_of(
    st.builds(lambda n, text: bytes([n]) + text, st.integers(0, 70), st.binary(max_size=70)),
    st.builds(lambda hi, lo: bytes([0xC0 | hi, lo]), st.integers(0, 0x3F), st.integers(0, 255)),
    st.builds(lambda lo: bytes([0xC0, lo]), st.integers(0, 80)),  # pointers into the message
    st.builds(lambda n: bytes([n]) + b"x" * n, st.integers(40, 63)),  # long labels
    st.sampled_from([b"\x00", b"\x03cam\x00", b"\x02\xc3\xa9", b"\x01\xff", b"\x40", b"\xc0"]),
)
_BUFFERS = st.lists(_TOKEN, max_size=24).map(b"".join)


_HEADERS = st.builds(
    lambda txid, flags, qd, an: struct.pack(">HHHHHH", txid, flags, qd, an, 0, 0),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 3),
    st.integers(0, 8),
)
_RECORD_TAILS = st.builds(
    lambda rtype, rclass, ttl, rdata: struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata,
    st.sampled_from([1, 5, 28, 12, 16, 33, 65]),
    st.sampled_from([1, 0x8001, 3]),
    st.integers(0, 2**32 - 1),
    st.one_of(st.binary(max_size=20), _BUFFERS),
)


@settings(max_examples=examples(3000), deadline=None)
@given(_HEADERS, st.lists(st.one_of(_TOKEN, _RECORD_TAILS), max_size=16).map(b"".join))
def test_generated_messages_parse_as_before(header: bytes, body: bytes) -> None:
    payload = header + body
    _same(payload)
    framed = struct.pack(">H", len(payload)) + payload
    assert parse_dns_tcp(framed) == [m for m in [reference.parse_dns(payload)] if m is not None]


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=12))
def test_bit_flipped_cname_chains_parse_as_before(noise: bytes) -> None:
    payload = mutate(_cname_chain_response(), noise)
    _same(payload)


# ---- mDNS: the same walk with dpkt's decoder -----------------------------------------------


def _dpkt_name(payload: bytes, off: int) -> tuple[str, int]:
    """The previous decoding: dpkt's (its errors ended the walk, as ValueError does now)."""
    try:
        name, end = dpkt.dns.unpack_name(payload, off)
    except reference.NAME_ERRORS as exc:
        raise ValueError(str(exc)) from exc
    return str(name), int(end)


def test_mdns_announcements_parse_as_with_dpkts_decoder(
    captured: list[tuple[bool, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [payload for is_dns, payload in captured if is_dns]
    mutated = [mutate(p, struct.pack(">HHH", i, i * 7, i * 13)) for i, p in enumerate(messages)]
    mine = [mdns.parse_mdns(p) for p in messages + mutated]
    monkeypatch.setattr(mdns, "_name", _dpkt_name)  # the walk as it was, names through dpkt
    assert mine == [mdns.parse_mdns(p) for p in messages + mutated]
    assert sum(found is not None and bool(found.names) for found in mine) > 100


# ---- the compiled walk against the Python one --------------------------------------------

_needs_c = pytest.mark.skipif(dns.C_SCAN is None, reason="netwatch._deep not built or not used")


def _both(payload: bytes) -> None:
    """The compiled walk and the Python one give the same fields."""
    assert dns.C_SCAN is not None
    compiled = dns._parse(payload)
    assert compiled == dns._parse_py(payload), payload.hex()


def _name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


_LABELS = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=63),
        st.sampled_from([b"Cam", b"EXAMPLE", b"x" * 63, b"\xc3\xa9", b"\xff", b"a.b", b"\x07"]),
        st.builds(lambda n: b"y" * n, st.integers(1, 63)),
    ),
    max_size=8,
)


@_needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(
    _HEADERS,
    _LABELS,
    st.lists(
        st.tuples(
            st.one_of(st.just(b"\xc0\x0c"), _LABELS.map(_name), _BUFFERS),
            st.sampled_from([1, 5, 28, 12]),
            st.sampled_from([1, 0x8001, 3]),
            st.one_of(
                st.binary(min_size=4, max_size=4),
                st.binary(min_size=16, max_size=16),
                st.just(b"\xc0\x0c"),
                _LABELS.map(_name),
                st.binary(max_size=20),
            ),
        ),
        max_size=6,
    ),
    st.integers(0, 12),
)
def test_messages_walk_alike_in_c(
    header: bytes,
    question: list[bytes],
    records: list[tuple[bytes, int, int, bytes]],
    cut: int,
) -> None:
    """Questions and answers of every kept type and others, owners as pointers, names up to
    and past 255 bytes, upper case, not UTF-8, with dots and control bytes in labels; each
    message whole and cut."""
    body = _name(question) + b"\x00\x01\x00\x01"
    for owner, rtype, rclass, rdata in records:
        body += owner + struct.pack(">HHIH", rtype, rclass, 3600 + rtype, len(rdata)) + rdata
    payload = header + body
    _both(payload)
    _both(payload[: max(0, len(payload) - cut)])


@_needs_c
def test_edge_messages_walk_alike_in_c() -> None:
    """The 255-byte name bound, a pointer to itself and forwards, a cut pointer and label,
    more questions than MAX_QUESTIONS, a CNAME whose target runs past its rdata."""
    head = struct.pack(">HHHHHH", 7, 0x8180, 1, 2, 0, 0)
    for total in range(250, 260):
        labels, left = [], total
        while left > 0:
            n = min(63, left - 1) if left > 1 else 1
            labels.append(b"a" * max(n, 1))
            left -= len(labels[-1]) + 1
        question = _name(labels) + b"\x00\x01\x00\x01"
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"
        for payload in (head + question + answer * 2, head + question[:-5]):
            for cut in range(len(payload) + 1):
                _both(payload[:cut])
    odd = [
        head + b"\xc0\x0c\x00\x01\x00\x01",  # a pointer to itself
        head + b"\xc0\x20\x00\x01\x00\x01",  # forwards
        head + b"\x03cam\xc0",  # a cut pointer
        head + b"\x05ca",  # a cut label
        head + b"\x41abc\x00\x00\x01\x00\x01",  # a label length of 65
        struct.pack(">HHHHHH", 1, 0x8180, 65, 1, 0, 0) + b"\x00\x00\x01\x00\x01" * 65,
        head
        + _name([b"q"])
        + b"\x00\x05\x00\x01"
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 5, 1, 60, 2)
        + _name([b"t", b"example"]),
        head
        + _name([b"Q", b"EXAMPLE"])
        + b"\x00\x1c\x00\x01"
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 28, 1, 60, 16)
        + bytes(range(16))
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 28, 1, 60, 15)
        + bytes(15),
    ]
    target = _name([b"t", b"example"])
    for delta in (-2, -1, 0, 1, 2):  # the CNAME target ends before, at or past its rdata
        rdata = struct.pack(">HHIH", 5, 1, 60, len(target) + delta) + target + bytes(4)
        odd.append(head + _name([b"q"]) + b"\x00\x05\x00\x01" + b"\xc0\x0c" + rdata)
    for payload in odd:
        for cut in range(len(payload) + 1):
            _both(payload[:cut])
