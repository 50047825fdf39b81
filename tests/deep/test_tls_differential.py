"""The one-pass ClientHello parser against its previous version (``tests/deep/tls_reference.py``):
identical answers on every TCP payload of the real captures (whole, cut and bit-flipped), on
generated hellos (GREASE and repeated cipher suites, odd and repeated extensions, cut vectors)
split over records at random places, and on random bytes behind a handshake record header.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep import tls
from netwatch.deep.tls import parse_client_hello, parse_handshake
from tests.conftest import PCAP_CORPUS
from tests.deep import tls_reference as reference
from tests.deep.test_dns import l4_payloads, mutate
from tests.deep.test_tls import _client_hello, _ext, _records, _vec
from tests.profile import examples

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tcp_payloads() -> list[bytes]:
    """Every TCP payload of the real corpus and of the repository's captures."""
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent: the real-capture tests need ../shared/corpus")
    found: list[bytes] = []
    for root in (PCAP_CORPUS, REPO / "pcaps"):
        for path in sorted(p for p in root.rglob("*.pcap*") if p.is_file()):
            try:
                found.extend(s.payload for s in l4_payloads(path) if s.proto == "tcp")
            except dpkt.NeedData:
                continue
    return found


def _same(data: bytes) -> None:
    """The reference's answer, from the compiled body reader (when built) and from the
    Python one."""
    expected = reference.parse_client_hello(data)
    assert parse_client_hello(data) == expected, data.hex()
    if tls.C_BODY is not None:
        compiled, tls.C_BODY = tls.C_BODY, None
        try:
            assert parse_client_hello(data) == expected, data.hex()
        finally:
            tls.C_BODY = compiled


def _same_body(body: bytes) -> None:
    """The compiled body reader answers as the Python one (IndexError alike when short)."""
    assert tls.C_BODY is not None
    try:
        expected = tls._parse_body_py(body)
    except IndexError:
        with pytest.raises(IndexError):
            tls._parse_body(body)
        return
    assert tls._parse_body(body) == expected, body.hex()


_needs_c = pytest.mark.skipif(tls.C_BODY is None, reason="netwatch._deep not built or not used")


@_needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(st.binary(min_size=30, max_size=600), st.integers(0, 40), st.integers(0, 7))
def test_random_bodies_read_alike_in_c(raw: bytes, session: int, grease: int) -> None:
    """Random bytes shaped like a body: version 3.x, a session id length up to 40, a cipher
    vector with GREASE values, then random (often cut or overrunning) extensions."""
    suites = b"".join(bytes([0x0A + 0x10 * i] * 2) + b"\x13\x01" for i in range(grease))
    head = b"\x03\x03" + raw[:32].ljust(32, b"\x00") + bytes([session]) + bytes(session)
    body = head + _vec(suites, 2) + raw[32:]
    for cut in (len(body), len(body) - 1, 34, 35, 37, 38, len(head) + 1):
        _same_body(body[:cut])
    _same_body(raw)


@_needs_c
def test_edge_bodies_read_alike_in_c() -> None:
    """Hand-built bodies around each bound: empty and cut vectors, an odd cipher vector,
    extensions of each kind repeated, empty, cut inside, GREASE-only versions."""
    base = b"\x03\x03" + bytes(32) + b"\x00"
    hellos = [base + _vec(b"\x13\x01\x0a\x0a", 2) + b"\x01\x00"]
    exts = [
        _ext(0, _vec(b"\x00" + _vec(b"a.example", 2), 2)),
        _ext(0, _vec(b"\x01" + _vec(b"x", 2) + b"\x00" + _vec(b"B.Example.", 2), 2)),
        _ext(0, b""),
        _ext(0, b"\x00"),
        _ext(0, _vec(b"\x00\x00\x05ab", 2)),
        _ext(16, _vec(b"\x02h2\x08http/1.1\x03\xff\x80z", 2)),
        _ext(16, _vec(b"".join(b"\x01" + bytes([65 + i]) for i in range(20)), 2)),
        _ext(16, _vec(b"\x05h2", 2)),
        _ext(16, b""),
        _ext(43, b"\x04\x0a\x0a\x03\x04"),
        _ext(43, b"\x02\x1a\x1a"),
        _ext(43, b"\x05\x03\x04\x03\x03\x7f"),
        _ext(43, b"\x09\x03\x04"),
        _ext(43, b""),
        _ext(7, b"zz"),
    ]
    for i in range(len(exts)):
        for j in range(len(exts)):
            block = exts[i] + exts[j]
            hellos.append(base + _vec(b"\x13\x01", 2) + b"\x01\x00" + _vec(block, 2))
            hellos.append(base + _vec(b"\x13\x01", 2) + b"\x01\x00" + _vec(block, 2)[:-1])
            hellos.append(base + _vec(b"\x13\x01", 2) + b"\x01\x00" + _vec(block, 2) + b"\x00")
    hellos.append(base + b"\x00\x03\x13\x01\x00\x01\x00")  # odd cipher vector
    hellos.append(base + _vec(b"\x13\x01", 2))  # no compression methods
    hellos.append(base + _vec(b"\x13\x01", 2) + b"\x02\x00")  # cut compression methods
    hellos.append(b"\x02\x03" + bytes(33) + _vec(b"\x13\x01", 2) + b"\x01\x00")
    hellos.append(b"\x03\x03" + bytes(32) + b"\x21" + bytes(40))  # session id > 32
    for body in hellos:
        for cut in range(30, len(body) + 1):
            _same_body(body[:cut])


def test_every_captured_tcp_payload_parses_as_before(tcp_payloads: list[bytes]) -> None:
    hellos = 0
    for payload in tcp_payloads:
        _same(payload)
        hellos += payload[:1] == b"\x16"
    assert hellos > 500


def test_captured_hellos_cut_and_bit_flipped_parse_as_before(tcp_payloads: list[bytes]) -> None:
    hellos = [p for p in tcp_payloads if p[:3] in (b"\x16\x03\x01", b"\x16\x03\x03")]
    for index, payload in enumerate(hellos):
        for cut in range(1, len(payload), max(1, len(payload) // 40)):
            _same(payload[:cut])
        for salt in range(6):
            noise = struct.pack(">HHH", index * 31 + salt * 977, salt * 7919 + index, salt)
            _same(mutate(payload, noise[2:] if salt % 2 else noise))


# ---- generated hellos --------------------------------------------------------------------

_U16S = st.integers(0, 0xFFFF)
_GREASY = st.one_of(st.sampled_from([0x0A0A, 0x1A1A, 0xFAFA, 0x1301, 0xC02B]), _U16S)


@st.composite
def _extension(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["sni", "alpn", "versions", "other", "raw", "inner"]))
    if kind == "sni":
        name = draw(st.sampled_from([b"cam.example", b"A.B.", b"\xc3\xa9.example", b"x\x01y", b""]))
        entry = bytes([draw(st.sampled_from([0, 0, 1]))]) + _vec(name, 2)
        return _ext(0, _vec(entry * draw(st.integers(1, 2)), 2))
    if kind == "alpn":
        protos = draw(st.lists(st.binary(max_size=6), max_size=20))
        return _ext(16, _vec(b"".join(_vec(p, 1) for p in protos), 2))
    if kind == "versions":
        versions = draw(st.lists(_GREASY, max_size=5))
        return _ext(43, _vec(struct.pack(f">{len(versions)}H", *versions), 1))
    if kind == "other":
        return _ext(draw(st.sampled_from([0x0A0A, 21, 51, 65281])), draw(st.binary(max_size=12)))
    if kind == "inner":  # a well-framed SNI or ALPN extension with anything inside
        return _ext(draw(st.sampled_from([0, 16])), _vec(draw(st.binary(max_size=12)), 2))
    return draw(st.binary(max_size=8))  # a broken extension


@st.composite
def _hello(draw: st.DrawFn) -> bytes:
    """A ClientHello handshake message, now and then with a length or vector off."""
    suites = draw(st.lists(_GREASY, max_size=12))
    ciphers = struct.pack(f">{len(suites)}H", *suites) + draw(st.sampled_from([b"", b"", b"\x01"]))
    extensions = b"".join(draw(st.lists(_extension(), max_size=6)))
    body = (
        bytes([3, draw(st.sampled_from([1, 3, 4]))])
        + bytes(32)
        + _vec(bytes(draw(st.sampled_from([0, 32, 33]))), 1)
        + _vec(ciphers, 2)
        + _vec(b"\x00", 1)
        + draw(st.sampled_from([_vec(extensions, 2), b"", _vec(extensions, 2)[:-1]]))
        + draw(st.sampled_from([b"", b"", b"\x00\x00"]))
    )
    size = len(body) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    return b"\x01" + max(size, 0).to_bytes(3, "big") + body


@settings(max_examples=examples(3000), deadline=None)
@given(_hello(), st.lists(st.integers(1, 400), max_size=3), st.integers(0, 3))
def test_generated_hellos_parse_as_before(hello: bytes, cuts: list[int], drop: int) -> None:
    cuts = sorted({c for c in cuts if c < len(hello)})
    data = _records(hello, *cuts)
    _same(data)
    _same(data[: len(data) - drop])
    assert parse_handshake(hello) == reference._handshake_verdict(bytearray(hello))


@settings(max_examples=examples(2000), deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from([b"\x16\x03\x01", b"\x16\x03\x01\x01\x00\x01", b"\x16\x03\x03\x00\x30\x01"]),
)
def test_random_bytes_behind_a_record_header_parse_as_before(data: bytes, prefix: bytes) -> None:
    _same(prefix + data)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=12))
def test_bit_flipped_hellos_parse_as_before(noise: bytes) -> None:
    _same(mutate(_records(_client_hello(), 60), noise))
    _same(mutate(_records(_client_hello(None)), noise))
