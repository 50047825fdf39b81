"""netwatch.deep.quic's key schedule and Initial decryption against the previous code
(``tests/deep/quic_reference.py``: HKDF through ``cryptography``'s KDF objects) and against
the RFCs' test vectors (RFC 9001 Appendix A for v1, RFC 9369 Appendix A for v2)."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from netwatch.deep import quic
from netwatch.deep.quic import (
    VERSION_1,
    VERSION_2,
    VERSIONS,
    InitialKeys,
    client_initial_keys,
    decrypt_initial,
    parse_long_header,
)
from tests.deep import quic_reference as ref
from tests.deep.test_quic import PN_OFFSET, RFC_DCID, RFC_HEADER, RFC_KEYS, protect, rfc_packet

# RFC 9369 Appendix A.1: the client's v2 Initial keys for the RFC 9001 example DCID.
RFC9369_KEYS = InitialKeys(
    key=bytes.fromhex("8b1a0bc121284290a29e0971b5cd045d"),
    iv=bytes.fromhex("91f73e2351d8fa91660e909f"),
    hp=bytes.fromhex("45b95e15235d6f45a6b19cbcb0294ba9"),
)
UNKNOWN_VERSIONS = (0, 2, 0xFF00001C, 0xFF000023, 0x6B3343CE, 0xFFFFFFFF)


def test_rfc_vectors() -> None:
    assert client_initial_keys(RFC_DCID, VERSION_1) == RFC_KEYS
    assert client_initial_keys(RFC_DCID, VERSION_2) == RFC9369_KEYS
    assert ref.client_initial_keys(RFC_DCID, VERSION_2) == RFC9369_KEYS


def test_keys_equal_the_references_for_every_version_and_dcid_length() -> None:
    rng = random.Random(9001)
    for version in (*VERSIONS, *UNKNOWN_VERSIONS):
        for size in range(21):
            for _ in range(8):
                dcid = rng.randbytes(size)
                want = ref.client_initial_keys(dcid, version)
                assert client_initial_keys(dcid, version) == want, (version, dcid.hex())
                # again: from the cache, and for a bytearray or memoryview of the same bytes
                assert client_initial_keys(dcid, version) == want
                assert client_initial_keys(bytearray(dcid), version) == want  # type: ignore[arg-type]
                assert client_initial_keys(memoryview(dcid), version) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 12, 16, 31, 32])
def test_expand_label_is_hkdf_expand_label(size: int) -> None:
    secret = bytes(range(32))
    for label in (b"client in", b"quic key", b"quicv2 hp", b""):
        full = b"tls13 " + label
        info = size.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"
        want = HKDFExpand(algorithm=hashes.SHA256(), length=size, info=info).derive(secret)
        assert quic._expand_label(secret, label, size) == want


def test_the_cache_is_bounded() -> None:
    quic._initial_keys.cache_clear()
    for n in range(quic.KEY_CACHE + 50):
        client_initial_keys(n.to_bytes(8, "big"), VERSION_1)
    assert quic._initial_keys.cache_info().currsize == quic.KEY_CACHE


def _packets() -> list[bytes]:
    """The RFC packet with each packet-number length and value, v2 and unknown-key copies,
    and bit flips and cuts of them."""
    rng = random.Random(9369)
    payload = bytes(1162)
    out = [rfc_packet()]
    for pn_len in range(1, 5):
        for pn in (0, 1, 0x7F, 0xFFFFFFFF >> 8 * (4 - pn_len)):
            first = (RFC_HEADER[0] & 0xFC) | (pn_len - 1)
            header = bytes((first,)) + RFC_HEADER[1 : PN_OFFSET - 2]
            length = (pn_len + len(payload) + 16) | 0x4000
            header += length.to_bytes(2, "big") + pn.to_bytes(pn_len, "big")
            out.append(protect(header, payload, RFC_KEYS, PN_OFFSET))
    v2 = bytearray(RFC_HEADER)
    v2[0] = 0xD3  # v2's Initial type bits
    v2[1:5] = VERSION_2.to_bytes(4, "big")
    out.append(protect(bytes(v2), payload, RFC9369_KEYS, PN_OFFSET))
    out.append(protect(RFC_HEADER, payload, RFC9369_KEYS, PN_OFFSET))  # wrong keys for v1
    mutated = []
    for packet in out:
        for _ in range(6):
            flipped = bytearray(packet)
            flipped[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
            mutated.append(bytes(flipped))
        for cut in (0, 10, 18, 21, 22, 38, 40, 41, 60, 500, len(packet) - 1):
            mutated.append(packet[:cut])
    return out + mutated + [rng.randbytes(rng.randrange(20, 1300)) for _ in range(200)]


def test_decryption_equals_the_reference() -> None:
    decrypted = 0
    for packet in _packets():
        header = parse_long_header(packet)
        headers = [header] if header is not None else []
        # also a header made up for the bytes (cut or overlong lengths, other pn offsets)
        for pn_offset in (18, 30, len(packet) - 20, len(packet) - 19):
            if pn_offset >= 0:
                headers.append(quic.LongHeader(0, VERSION_1, 0, RFC_DCID, pn_offset, len(packet)))
        for one in headers:
            for keys in (RFC_KEYS, RFC9369_KEYS):
                got = decrypt_initial(packet, one, keys)
                assert got == ref.decrypt_initial(packet, one, keys)
                decrypted += got is not None
    assert decrypted >= 18  # the intact packets did decrypt (each under its own keys)


def test_the_cipher_objects_are_made_once_per_key_and_stay_correct() -> None:
    """The ECB encryptor and the AESGCM object of a key are reused: a failed decryption
    (tag mismatch) under them does not change what the next one gives."""
    packet = rfc_packet()
    header = parse_long_header(packet)
    assert header is not None
    want = ref.decrypt_initial(packet, header, RFC_KEYS)
    assert want is not None
    broken = bytearray(packet)
    broken[-1] ^= 1
    quic._mask_of.cache_clear()
    quic._aead.cache_clear()
    for _ in range(3):
        assert decrypt_initial(packet, header, RFC_KEYS) == want
        assert decrypt_initial(bytes(broken), header, RFC_KEYS) is None
    assert quic._mask_of.cache_info().misses == quic._aead.cache_info().misses == 1
