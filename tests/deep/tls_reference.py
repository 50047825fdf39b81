"""The ClientHello parser as it was before its single-pass rewrite: the reference for
``tests/deep/test_tls_differential.py``.

A verbatim copy of ``netwatch.deep.tls``'s ``parse_client_hello`` and its helpers at the
commit before ``_parse_body`` was rewritten as one pass; kept only to prove the faster
parser gives identical results; not used by netwatch.
"""

from __future__ import annotations

import struct

from netwatch.deep.dns import normalize_name
from netwatch.deep.tls import (
    MAX_ALPN,
    MAX_HANDSHAKE_BYTES,
    MAX_RECORD_BYTES,
    NeedMore,
    ParseResult,
    TlsClientHello,
)

_CONTENT_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_SNI_HOST_NAME = 0
_WANTED_EXTENSIONS = frozenset({_EXT_SERVER_NAME, _EXT_ALPN, _EXT_SUPPORTED_VERSIONS})
_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))  # RFC 8701
_RECORD_HEADER = struct.Struct(">BBBH")
_U16 = struct.Struct(">H")
_EXT_HEADER = struct.Struct(">HH")


def parse_client_hello(data: bytes) -> ParseResult:
    """The previous ``netwatch.deep.tls.parse_client_hello``.

    Returns the hello, ``NeedMore`` while ``data`` is a valid but unfinished beginning of one
    (split across TCP segments and/or TLS records; also for empty ``data``), or None when the
    bytes are not a TLS ClientHello or are malformed.
    """
    handshake = bytearray()
    off = 0
    while off < len(data):
        if len(data) - off < _RECORD_HEADER.size:
            return NeedMore if _valid_header_prefix(data[off:]) else None
        ctype, major, minor, length = _RECORD_HEADER.unpack_from(data, off)
        if ctype != _CONTENT_HANDSHAKE or major != 3 or minor > 4:
            return None
        if length == 0 or length > MAX_RECORD_BYTES:
            return None
        start = off + _RECORD_HEADER.size
        handshake += data[start : start + length]
        off = start + length
        verdict = _handshake_verdict(handshake)
        if verdict is not NeedMore:
            return verdict
    return NeedMore


def _valid_header_prefix(head: bytes) -> bool:
    """Whether 1..4 bytes can start a handshake record header (type 22, version 3.0-3.4)."""
    return b"\x16\x03".startswith(head[:2]) and (len(head) < 3 or head[2] <= 4)


def _handshake_verdict(handshake: bytearray) -> ParseResult:
    """Judge the handshake bytes gathered so far."""
    if not handshake:
        return NeedMore
    if handshake[0] != _HANDSHAKE_CLIENT_HELLO:
        return None
    if len(handshake) < 4:
        return NeedMore
    length = (handshake[1] << 16) | (handshake[2] << 8) | handshake[3]
    if length > MAX_HANDSHAKE_BYTES or length < 38:
        return None
    if len(handshake) < 4 + length:
        return None if len(handshake) >= 5 and handshake[4] != 3 else NeedMore
    return _parse_body(bytes(handshake[4 : 4 + length]))


def _parse_body(body: bytes) -> TlsClientHello | None:
    """Parse a complete ClientHello body (legacy_version onwards; at least 38 bytes)."""
    session_len = body[34]
    if body[0] != 3 or session_len > 32:
        return None
    ciphers = _vector(body, 35 + session_len, 2)
    if ciphers is None or len(ciphers) % 2:
        return None
    off = 35 + session_len + 2 + len(ciphers)
    if off >= len(body) or off + 1 + body[off] > len(body):
        return None  # compression methods missing or cut
    extensions = _extensions(body, off + 1 + body[off])
    if extensions is None:
        return None
    suites = struct.unpack(f">{len(ciphers) // 2}H", ciphers)
    offered = _supported_versions(extensions.get(_EXT_SUPPORTED_VERSIONS))
    return TlsClientHello(
        sni=_server_name(extensions.get(_EXT_SERVER_NAME)),
        versions=offered or (_U16.unpack_from(body)[0],),
        alpn=_alpn(extensions.get(_EXT_ALPN)),
        cipher_count=len(suites) - sum(map(_GREASE.__contains__, suites)),
    )


def _vector(buf: bytes, off: int, width: int) -> bytes | None:
    """The variable-length vector at ``off`` with a 1- or 2-byte length, or None if cut."""
    if off + width > len(buf):
        return None
    size = buf[off] if width == 1 else _U16.unpack_from(buf, off)[0]
    end = off + width + size
    return buf[off + width : end] if end <= len(buf) else None


def _extensions(body: bytes, off: int) -> dict[int, bytes] | None:
    """The extensions netwatch reads (first occurrence); {} when there is no extension block."""
    if off == len(body):
        return {}
    if off + 2 > len(body):
        return None
    end = off + 2 + _U16.unpack_from(body, off)[0]
    if end > len(body):
        return None
    found: dict[int, bytes] = {}
    pos = off + 2
    while pos + 4 <= end:
        ext_type, size = _EXT_HEADER.unpack_from(body, pos)
        pos += 4 + size
        if pos > end:
            return None
        if ext_type in _WANTED_EXTENSIONS and ext_type not in found:
            found[ext_type] = body[pos - size : pos]
    return found if pos == end else None


def _server_name(ext: bytes | None) -> str | None:
    entries = _vector(ext, 0, 2) if ext else None
    pos = 0
    while entries is not None and pos + 3 <= len(entries):
        name = _vector(entries, pos + 1, 2)
        if name is None:
            return None
        if entries[pos] == _SNI_HOST_NAME:
            return _decode_host(name)
        pos += 3 + len(name)
    return None


def _decode_host(raw: bytes) -> str | None:
    try:
        return normalize_name(raw.decode("ascii"))
    except UnicodeDecodeError:
        return None


def _alpn(ext: bytes | None) -> tuple[str, ...]:
    entries = _vector(ext, 0, 2) if ext else None
    protocols: list[str] = []
    pos = 0
    while entries is not None and pos < len(entries) and len(protocols) < MAX_ALPN:
        proto = _vector(entries, pos, 1)
        if proto is None:
            break
        protocols.append(proto.decode("ascii", "backslashreplace"))
        pos += 1 + len(proto)
    return tuple(protocols)


def _supported_versions(ext: bytes | None) -> tuple[int, ...]:
    listed = _vector(ext, 0, 1) if ext else None
    if not listed:
        return ()
    count = len(listed) // 2
    versions = struct.unpack(f">{count}H", listed[: count * 2])
    return tuple(version for version in versions if version not in _GREASE)
