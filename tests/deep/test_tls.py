"""Tests for netwatch.deep.tls: ClientHello reassembly, real captures, never-raise properties."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.tls import (
    Incomplete,
    NeedMore,
    TlsClientHello,
    looks_like_tls,
    parse_client_hello,
)
from tests.conftest import corpus_file
from tests.deep.test_dns import l4_payloads, mutate
from tests.profile import examples

GREASE = 0x1A1A


def _vec(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def _ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack(">H", ext_type) + _vec(data, 2)


def _client_hello(sni: str | None = "Cam.Vendor-Cloud.example.") -> bytes:
    """A TLS 1.3-style ClientHello handshake message (type, length, body)."""
    ciphers = struct.pack(">5H", GREASE, 0x1301, 0x1302, 0xC02B, 0xC02F)
    extensions = _ext(0x0A0A, b"")  # GREASE extension
    if sni is not None:
        entry = b"\x00" + _vec(sni.encode(), 2)
        extensions += _ext(0, _vec(entry, 2))
    extensions += _ext(16, _vec(_vec(b"h2", 1) + _vec(b"http/1.1", 1), 2))
    extensions += _ext(43, _vec(struct.pack(">3H", GREASE, 0x0304, 0x0303), 1))
    extensions += _ext(21, b"\x00" * 40)  # padding
    body = (
        b"\x03\x03"
        + bytes(range(32))
        + _vec(bytes(32), 1)
        + _vec(ciphers, 2)
        + _vec(b"\x00", 1)
        + _vec(extensions, 2)
    )
    return b"\x01" + len(body).to_bytes(3, "big") + body


def _records(handshake: bytes, *cuts: int) -> bytes:
    """Wrap ``handshake`` in handshake records split at the given offsets."""
    bounds = [0, *cuts, len(handshake)]
    return b"".join(
        b"\x16\x03\x01" + _vec(handshake[start:end], 2) for start, end in itertools.pairwise(bounds)
    )


EXPECTED = TlsClientHello(
    sni="cam.vendor-cloud.example",
    versions=(0x0304, 0x0303),
    alpn=("h2", "http/1.1"),
    cipher_count=4,
)


def test_single_record_hello() -> None:
    assert parse_client_hello(_records(_client_hello())) == EXPECTED


def test_hello_split_at_every_byte_boundary() -> None:
    data = _records(_client_hello())
    for cut in range(1, len(data)):
        first, second = data[:cut], data[cut:]
        assert parse_client_hello(first) is NeedMore, cut
        assert parse_client_hello(first + second) == EXPECTED


def test_hello_spanning_two_and_three_records() -> None:
    handshake = _client_hello()
    two = _records(handshake, 100)
    assert parse_client_hello(two) == EXPECTED
    for cut in range(1, len(two)):
        assert parse_client_hello(two[:cut]) is NeedMore, cut
    three = _records(handshake, 2, 3)  # even the handshake header is split across records
    assert parse_client_hello(three) == EXPECTED
    assert parse_client_hello(three[:14]) is NeedMore


def test_bytes_after_the_hello_are_ignored() -> None:
    data = _records(_client_hello()) + b"\x17\x03\x03\x00\x05hello"
    assert parse_client_hello(data) == EXPECTED


def test_hello_without_sni_or_extensions() -> None:
    hello = parse_client_hello(_records(_client_hello(sni=None)))
    assert isinstance(hello, TlsClientHello)
    assert hello.sni is None
    body = b"\x03\x01" + bytes(32) + b"\x00" + _vec(b"\x00\x2f\x00\x35", 2) + b"\x01\x00"
    old = parse_client_hello(_records(b"\x01" + len(body).to_bytes(3, "big") + body))
    assert old == TlsClientHello(sni=None, versions=(0x0301,), alpn=(), cipher_count=2)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP"),
        (b"\x17\x03\x03\x00\x10" + bytes(16), "application data record"),
        (b"\x16\x03\x03\x00\x04\x02\x00\x00\x46", "ServerHello"),
        (b"\x16\x03\x09\x00\x04\x01\x00\x00\x46", "record version 3.9"),
        (b"\x16\x03\x01\x00\x00", "empty handshake record"),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", "declared hello too large"),
        (b"\x16\x03\x01\x00\x05\x01\x00\x01\x00\x09", "legacy_version major 9"),
        (_records(_client_hello(), 50)[:55] + b"\x17\x03\x03\x00\x05", "app data mid-hello"),
        (b"\x16\x02", "record version major 2"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_not_a_client_hello_is_none(data: bytes, why: str) -> None:
    assert parse_client_hello(data) is None, why


def test_inconsistent_lengths_are_none() -> None:
    handshake = bytearray(_client_hello())
    handshake[4 + 34 + 1 + 32 + 1] += 1  # odd cipher-suite vector length
    assert parse_client_hello(_records(bytes(handshake))) is None


def test_need_more_sentinel_and_sniffing() -> None:
    assert parse_client_hello(b"") is NeedMore
    assert NeedMore is Incomplete.NEED_MORE
    assert looks_like_tls(b"\x16\x03\x01\x02\x00")
    assert not looks_like_tls(b"\x16\x03")
    assert not looks_like_tls(b"\x17\x03\x03\x00\x10")
    assert not looks_like_tls(b"\x16\x03\x05\x00\x10")


def test_non_ascii_or_control_sni_is_none() -> None:
    hello = parse_client_hello(_records(_client_hello(sni="bad\x01name.example")))
    assert isinstance(hello, TlsClientHello)
    assert hello.sni is None
    assert hello.alpn == ("h2", "http/1.1")


# ---- real captures -----------------------------------------------------------------------


def _client_hellos(*parts: str) -> list[TlsClientHello]:
    """Feed each client->443 flow segment by segment, as the fast path would."""
    buffered: dict[tuple[str, int], bytes] = {}
    decided: set[tuple[str, int]] = set()
    hellos: list[TlsClientHello] = []
    for seg in l4_payloads(corpus_file(*parts)):
        key = (seg.src, seg.sport)
        if seg.dport != 443 or seg.proto != "tcp" or key in decided:
            continue
        buffered[key] = buffered.get(key, b"") + seg.payload
        result = parse_client_hello(buffered[key])
        if result is not NeedMore:
            decided.add(key)
        if isinstance(result, TlsClientHello):
            hellos.append(result)
    return hellos


def test_curl_capture_sni_and_every_split() -> None:
    hellos = _client_hellos("pcaps", "protocols", "ndpi_tls_443-curl.pcap")
    assert [h.sni for h in hellos] == ["www.ntop.org"]
    assert hellos[0].alpn == ("h2", "http/1.1")
    first = next(
        seg.payload
        for seg in l4_payloads(corpus_file("pcaps", "protocols", "ndpi_tls_443-curl.pcap"))
        if seg.dport == 443
    )
    for cut in range(1, len(first)):
        assert parse_client_hello(first[:cut]) is NeedMore
        assert parse_client_hello(first[:cut] + first[cut:]) == hellos[0]


def test_esni_and_sni_capture() -> None:
    hellos = _client_hellos("pcaps", "protocols", "ndpi_tls_esni_sni_both.pcap")
    assert {h.sni for h in hellos} == {
        "these-are-not-the-droids-youre-looking-for.com",
        "you-think-thats-normal-tls-traffic-youre-seeing.com",
    }


def test_ech_capture_shows_the_outer_sni() -> None:
    hellos = _client_hellos("pcaps", "protocols", "zeek_tls13-ech.pcap")
    assert hellos
    assert {h.sni for h in hellos} == {"cloudflare-ech.com"}
    assert all(0x0304 in h.versions for h in hellos)


# ---- properties --------------------------------------------------------------------------

_RESULT_TYPES = (TlsClientHello, type(None), Incomplete)


@settings(max_examples=examples(2000), deadline=None)
@given(
    st.binary(max_size=400),
    st.sampled_from([b"", b"\x16\x03\x01", b"\x16\x03\x01\x01\x00\x01"]),
)
def test_random_bytes_never_raise(data: bytes, prefix: bytes) -> None:
    assert isinstance(parse_client_hello(prefix + data), _RESULT_TYPES)
    assert isinstance(looks_like_tls(prefix + data), bool)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=10))
def test_truncated_or_bit_flipped_hellos_never_raise(noise: bytes) -> None:
    payload = mutate(_records(_client_hello(), 60), noise)
    assert isinstance(parse_client_hello(payload), _RESULT_TYPES)
