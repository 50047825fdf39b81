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

from netwatch.deep import mdns
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


@pytest.fixture(scope="module")
def captured() -> list[tuple[bool, bytes]]:
    """Every payload of the real corpus and of the repository's captures."""
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent: the real-capture tests need ../shared/corpus")
    return [*_payloads(PCAP_CORPUS), *_payloads(REPO / "pcaps")]


def test_every_captured_payload_parses_as_before(captured: list[tuple[bool, bytes]]) -> None:
    dns = 0
    for is_dns, payload in captured:
        assert parse_dns(payload) == reference.parse_dns(payload), payload.hex()
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
            assert parse_dns(mutated) == reference.parse_dns(mutated), mutated.hex()


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
    assert parse_dns(payload) == reference.parse_dns(payload)
    framed = struct.pack(">H", len(payload)) + payload
    assert parse_dns_tcp(framed) == [m for m in [reference.parse_dns(payload)] if m is not None]


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=12))
def test_bit_flipped_cname_chains_parse_as_before(noise: bytes) -> None:
    payload = mutate(_cname_chain_response(), noise)
    assert parse_dns(payload) == reference.parse_dns(payload)


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
