"""The QUIC Initial key schedule and decryption as they were before the ``hmac.digest``
rewrite: the reference for ``tests/deep/test_quic_differential.py``.

A verbatim copy of ``netwatch.deep.quic``'s ``_expand_label``, ``client_initial_keys`` and
``decrypt_initial`` at the commit before (HKDF through ``cryptography``'s KDF objects, the
crypto imported on each call); kept only to prove the faster code gives identical results;
not used by netwatch.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from netwatch.deep.quic import _SAMPLE_LEN, _TAG_LEN, VERSIONS, InitialKeys, LongHeader


def _expand_label(secret: bytes, label: bytes, size: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 section 7.1)."""
    # cryptography is imported by the first QUIC Initial, not at start-up
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand  # noqa: PLC0415

    full = b"tls13 " + label
    info = struct.pack(">HB", size, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm=hashes.SHA256(), length=size, info=info).derive(secret)


def client_initial_keys(dcid: bytes, version: int) -> InitialKeys | None:
    """The client's Initial keys for ``dcid`` under ``version`` (None: unknown version)."""
    params = VERSIONS.get(version)
    if params is None:
        return None
    initial = hmac.new(params.salt, dcid, hashlib.sha256).digest()  # HKDF-Extract
    secret = _expand_label(initial, b"client in", 32)
    prefix = params.label_prefix
    return InitialKeys(
        _expand_label(secret, prefix + b"key", 16),
        _expand_label(secret, prefix + b"iv", 12),
        _expand_label(secret, prefix + b"hp", 16),
    )


def decrypt_initial(data: bytes, header: LongHeader, keys: InitialKeys) -> bytes | None:
    """The plaintext payload of the Initial packet ``header`` describes, or None."""
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - as _expand_label
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    pn_offset = header.pn_offset
    sample = data[pn_offset + 4 : pn_offset + 4 + _SAMPLE_LEN]
    if len(sample) < _SAMPLE_LEN or header.end - pn_offset < 4 + _TAG_LEN:
        return None
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    first = data[header.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    protected = data[pn_offset : pn_offset + pn_len]
    packet_number = bytes(b ^ m for b, m in zip(protected, mask[1 : 1 + pn_len], strict=True))
    aad = bytes((first,)) + data[header.start + 1 : pn_offset] + packet_number
    nonce = bytearray(keys.iv)
    for i, byte in enumerate(reversed(packet_number)):
        nonce[-1 - i] ^= byte
    try:
        return AESGCM(keys.key).decrypt(bytes(nonce), data[pn_offset + pn_len : header.end], aad)
    except (InvalidTag, ValueError):
        return None
