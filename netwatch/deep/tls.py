"""TLS ClientHello parser: SNI, offered versions, ALPN and cipher count from a client's first bytes.

Runs only on the first payload bytes of a TCP flow that ``looks_like_tls``; never per packet.
Reads no configuration. :class:`TlsParser` is the registered deep parser: it claims a TCP
client's first bytes when they start a TLS handshake record (``TLS_MAGIC``).

Hand-written rather than ``dpkt.ssl`` (checked with dpkt 1.9.8): dpkt decodes one TLS record
at a time with no handshake reassembly, so a ClientHello spanning two records raises
``NeedData`` on the first fragment and is misread from the second ("handshake type 67"), and
a cut record is silently dropped.  The fast path needs a clear three-way answer, so
``parse_client_hello`` returns ``NeedMore`` while ``data`` is a valid beginning of a
ClientHello (the caller keeps buffering), the hello once complete, and ``None`` once the bytes
cannot be one.

Known limits:
- An SSLv2-format ClientHello counts as ``ssl`` on Zeek's SSL ports only (no SNI in it).
- QUIC carries the ClientHello without records: :mod:`netwatch.deep.quic` decrypts it and
  calls :func:`parse_handshake`.
- With Encrypted Client Hello only the outer (public) SNI is visible, e.g. the provider's
  ``cloudflare-ech.com``, never the real destination.
- GREASE values (RFC 8701) are left out of ``versions`` and ``cipher_count``.
- A ClientHello larger than ``MAX_HANDSHAKE_BYTES`` is rejected (None) to bound buffering.

With the compiled part built (``netwatch._deep``, unless ``NETWATCH_PURE=1`` or
``NETWATCH_CORE=python``) a complete hello's body is read in C, by the same checks in the
same order (``tests/deep/test_tls_differential.py``); the SNI's decoding stays here.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from netwatch.compiled import optional
from netwatch.deep.base import Context, DeepParser, Verdict, drop_service, service, tcp_partial
from netwatch.deep.dns import normalize_name

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAX_HANDSHAKE_BYTES = 1 << 16
MAX_RECORD_BYTES = (1 << 14) + 2048
MAX_ALPN = 16

_CONTENT_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_SNI_HOST_NAME = 0
_WANTED_EXTENSIONS = frozenset({_EXT_SERVER_NAME, _EXT_ALPN, _EXT_SUPPORTED_VERSIONS})
#: RFC 8701; both bytes of each are equal, so a value is GREASE in either byte order (the
#: cipher suites are read in the machine's order: they are only counted, never shown)
_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
_RECORD_HEADER = struct.Struct(">BBBH")
_U16 = struct.Struct(">H")
_EXT_HEADER = struct.Struct(">HH")


class Incomplete(enum.Enum):
    """Sentinel kind: the bytes so far are a valid but unfinished ClientHello."""

    NEED_MORE = "need_more"


NeedMore: Final = Incomplete.NEED_MORE


@dataclass(frozen=True, slots=True)
class TlsClientHello:
    """What netwatch takes from a ClientHello (GREASE left out)."""

    sni: str | None
    versions: tuple[int, ...]
    alpn: tuple[str, ...]
    cipher_count: int


ParseResult = TlsClientHello | None | Literal[Incomplete.NEED_MORE]
#: A hello's fields in :class:`TlsClientHello`'s order (sni, versions, alpn, cipher_count):
#: what the readers below return, the object made only for the public API (a frozen slotted
#: dataclass sets each field through ``object.__setattr__``, ~1.7k instructions a field: the
#: deep parser's own path takes the tuple).
_Fields = tuple[str | None, tuple[int, ...], tuple[str, ...], int]
#: :data:`ParseResult` with the fields as a tuple.
_Read = _Fields | None | Literal[Incomplete.NEED_MORE]


def looks_like_record(data: bytes) -> bool:
    """Whether ``data`` starts like a TLS record of any content type (20 to 24, version 3.x)."""
    return bool(data) and data[0] in _RECORD_TYPES and (len(data) < 2 or data[1] == 3)


_RECORD_TYPES = frozenset(range(20, 25))


def looks_like_tls(data: bytes) -> bool:
    """Cheap check: a handshake record (type 22) with version 0x0300..0x0304."""
    return len(data) >= 3 and data[0] == _CONTENT_HANDSHAKE and data[1] == 3 and data[2] <= 4


def parse_client_hello(data: bytes) -> ParseResult:
    """Parse a ClientHello from the client's first payload bytes (concatenated in order).

    Returns the hello, ``NeedMore`` while ``data`` is a valid beginning of one
    (split across TCP segments and/or TLS records; also for empty ``data``), or None when the
    bytes are not a TLS ClientHello or are malformed.
    """
    return _hello(_read_client_hello(data))


def _hello(read: _Read) -> ParseResult:
    """The public answer for a reader's: the fields as a :class:`TlsClientHello`."""
    return TlsClientHello(*read) if isinstance(read, tuple) else read


def _read_client_hello(data: bytes) -> _Read:
    """:func:`parse_client_hello` with the hello's fields as a tuple."""
    size = len(data)
    if size > 9 and data[0] == _CONTENT_HANDSHAKE and data[1] == 3 and data[2] <= 4:
        # the usual case, decided as the loop below decides it: one whole record that
        # holds the whole hello (bytes after it are not looked at, as there)
        record = (data[3] << 8) | data[4]
        length = (data[6] << 16) | (data[7] << 8) | data[8]
        if (
            0 < record <= MAX_RECORD_BYTES
            and 5 + record <= size
            and data[5] == _HANDSHAKE_CLIENT_HELLO
            and 38 <= length <= MAX_HANDSHAKE_BYTES
            and 4 + length <= record
        ):
            return _parse_body(bytes(data[9 : 9 + length]))
    handshake: bytes | bytearray = b""  # the first record's bytes as they are (the usual case)
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
        if not handshake:
            handshake = data[start : start + length]
        else:  # a hello over several records: gathered in place (linear in their count)
            if isinstance(handshake, bytes):
                handshake = bytearray(handshake)
            handshake += data[start : start + length]
        off = start + length
        verdict = _handshake_verdict(handshake)
        if verdict is not NeedMore:
            return verdict
    return NeedMore


def parse_handshake(handshake: bytes) -> ParseResult:
    """Parse a ClientHello from bare handshake bytes (no TLS records around them: QUIC's
    CRYPTO stream). Same answers as :func:`parse_client_hello`."""
    return _hello(_handshake_verdict(bytearray(handshake)))


def _valid_header_prefix(head: bytes) -> bool:
    """Whether 1..4 bytes can start a handshake record header (type 22, version 3.0-3.4)."""
    return b"\x16\x03".startswith(head[:2]) and (len(head) < 3 or head[2] <= 4)


def _handshake_verdict(handshake: bytes | bytearray) -> _Read:
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


def _load_body_reader() -> Callable[[bytes], _CBody | None] | None:
    """The compiled body reader (``netwatch._deep``), or None when it is not built or the
    compiled code is switched off (``NETWATCH_PURE=1``, ``NETWATCH_CORE=python``)."""
    reader: Callable[[bytes], _CBody | None] | None = optional(
        "_deep", "client_hello_body", loop=True
    )
    return reader


#: (raw host_name bytes or None, versions, ALPN names, cipher count) from the compiled reader
_CBody = tuple[bytes | None, tuple[int, ...], tuple[str, ...], int]
#: The compiled ClientHello body reader in use (None: :func:`_parse_body_py` only).
C_BODY = _load_body_reader()


def _parse_body(body: bytes) -> _Fields | None:
    """Parse a complete ClientHello body (legacy_version onwards; at least 38 bytes): in C
    when ``netwatch._deep`` is loaded (the same reader: tests/deep/test_tls_differential.py),
    else :func:`_parse_body_py`."""
    if C_BODY is None:
        return _parse_body_py(body)
    read = C_BODY(body)
    if read is None:
        return None
    host, versions, alpn, cipher_count = read
    return None if host is None else _decode_host(host), versions, alpn, cipher_count


def _parse_body_py(body: bytes) -> _Fields | None:
    """Parse a complete ClientHello body (legacy_version onwards; at least 38 bytes).

    One pass with the vectors' bounds checked in line (the hot path of the deep parsers
    without the compiled reader).
    """
    size = len(body)
    session_len = body[34]
    if body[0] != 3 or session_len > 32:
        return None
    off = 35 + session_len  # cipher suites: 2-byte length, 2 bytes each
    if off + 2 > size:
        return None
    end = off + 2 + ((body[off] << 8) | body[off + 1])
    if end > size or (end - off) % 2:
        return None
    suites = memoryview(body[off + 2 : end]).cast("H").tolist()  # byte order: see _GREASE
    if end >= size or end + 1 + body[end] > size:
        return None  # compression methods missing or cut
    off = end + 1 + body[end]
    found: dict[int, bytes] = {}
    if off != size:  # the extension block (absent in an old hello)
        if off + 2 > size:
            return None
        end = off + 2 + ((body[off] << 8) | body[off + 1])
        if end > size:
            return None
        pos = off + 2
        unpack = _EXT_HEADER.unpack_from
        while pos + 4 <= end:
            ext_type, length = unpack(body, pos)
            pos += 4 + length
            if pos > end:
                return None
            if ext_type in _WANTED_EXTENSIONS and ext_type not in found:
                found[ext_type] = body[pos - length : pos]
        if pos != end:
            return None
    grease = _GREASE.intersection(suites)
    offered = _supported_versions(found.get(_EXT_SUPPORTED_VERSIONS)) if found else ()
    return (
        _server_name(found.get(_EXT_SERVER_NAME)) if found else None,  # sni
        offered or (_U16.unpack_from(body)[0],),  # versions
        _alpn(found.get(_EXT_ALPN)) if found else (),  # alpn
        len(suites) - sum(map(suites.count, grease)) if grease else len(suites),  # cipher_count
    )


def _server_name(ext: bytes | None) -> str | None:
    """The first host_name entry of a server_name extension (vectors checked in line)."""
    if not ext or len(ext) < 2:
        return None
    end = 2 + ((ext[0] << 8) | ext[1])
    if end > len(ext):
        return None
    pos = 2
    while pos + 3 <= end:
        start = pos + 3
        stop = start + ((ext[pos + 1] << 8) | ext[pos + 2])
        if stop > end:
            return None
        if ext[pos] == _SNI_HOST_NAME:
            return _decode_host(ext[start:stop])
        pos = stop
    return None


@functools.lru_cache(maxsize=4096)
def _decode_host(raw: bytes) -> str | None:
    """An SNI host_name as a normalised name (None: not ASCII, or not a name); the last few
    thousand remembered (devices ask for the same few names over and over)."""
    try:
        return normalize_name(raw.decode("ascii"))
    except UnicodeDecodeError:
        return None


def _alpn(ext: bytes | None) -> tuple[str, ...]:
    """The protocol names of an ALPN extension, up to a cut one (at most ``MAX_ALPN``)."""
    if not ext or len(ext) < 2:
        return ()
    end = 2 + ((ext[0] << 8) | ext[1])
    if end > len(ext):
        return ()
    protocols: list[str] = []
    pos = 2
    while pos < end and len(protocols) < MAX_ALPN:
        stop = pos + 1 + ext[pos]
        if stop > end:
            break
        protocols.append(ext[pos + 1 : stop].decode("ascii", "backslashreplace"))
        pos = stop
    return tuple(protocols)


def _supported_versions(ext: bytes | None) -> tuple[int, ...]:
    """The versions a supported_versions extension lists, GREASE left out."""
    if not ext or 1 + ext[0] > len(ext):
        return ()
    count = ext[0] // 2
    versions = struct.unpack(f">{count}H", ext[1 : 1 + count * 2])
    return tuple(version for version in versions if version not in _GREASE)


#: The first bytes ``looks_like_tls`` accepts: a handshake record, version 3.0 to 3.4.
TLS_MAGIC = tuple(bytes((_CONTENT_HANDSHAKE, 3, minor)) for minor in range(5))
#: The first byte of an SSLv2-format record (two-byte header, top bit set).
SSLV2_MAGIC = tuple(bytes((first,)) for first in range(0x80, 0x100))
#: The TCP ports Zeek's SSL analyzer is attached to (``base/protocols/ssl/main.zeek``).
SSL_PORTS = frozenset({443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223})
_SSLV2_VERSIONS = frozenset({0x0002, 0x0300, 0x0301, 0x0302, 0x0303})
_SSLV2 = "_sslv2"


def is_sslv2_client_hello(data: bytes) -> bool:
    """An SSLv2-format CLIENT-HELLO (2-byte record header, message type 1) whose record
    length covers its cipher specs, session id and challenge."""
    if len(data) < 11 or not data[0] & 0x80 or data[2] != 1:
        return False
    if int.from_bytes(data[3:5], "big") not in _SSLV2_VERSIONS:
        return False
    record = ((data[0] & 0x7F) << 8) | data[1]
    specs, session, challenge = (int.from_bytes(data[i : i + 2], "big") for i in (5, 7, 9))
    return specs % 3 == 0 and 16 <= challenge <= 32 and record == 9 + specs + session + challenge


class TlsParser(DeepParser):
    """A client's ClientHello: SNI and ALPN on the flow (WAIT while it is split).

    ``ssl`` is confirmed by the ClientHello (on a connection whose SYN was seen: Zeek's SSL
    analyzer ignores partial connections), as Zeek's SSL analyzer does, and withdrawn when
    the server answers with bytes that are not a TLS record (Zeek's protocol violation: a
    TLS client talking to a plain HTTP server is logged without a service)."""

    rank = 10
    client_magic = TLS_MAGIC + SSLV2_MAGIC

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        if not is_orig:
            sslv2 = bool(buf) and buf[0] & 0x80 and flow.app is not None and _SSLV2 in flow.app
            if not looks_like_record(buf) and not sslv2:  # Zeek's SSL analyzer: a violation
                ctx.count("tls_server_not_tls")
                drop_service(flow, "ssl")
            return Verdict.DONE
        if buf[0] & 0x80:
            return self._sslv2(ctx, flow, buf)
        result = _read_client_hello(buf)  # the fields, no TlsClientHello made
        if result is NeedMore:
            return Verdict.WAIT
        if result is None:
            ctx.count("tls_unparsed")
            return Verdict.DONE
        ctx.count("tls_client_hello")
        if not tcp_partial(flow):  # Zeek's SSL analyzer ignores a connection seen mid-way
            service(flow, "ssl")
        sni, _versions, alpn, _ciphers = result
        if sni:
            flow.app_set("sni", sni)
        if alpn:
            flow.app_set("alpn", alpn)
        return Verdict.DONE

    @staticmethod
    def _sslv2(ctx: Context, flow: Flow, buf: bytes) -> Verdict:
        """An SSLv2-format ClientHello: ``ssl`` on Zeek's SSL ports (there its analyzer is
        attached by port; its DPD signature knows only TLS records)."""
        if flow.resp_p not in SSL_PORTS or not is_sslv2_client_hello(buf):
            return Verdict.PASS
        ctx.count("sslv2_client_hello")
        flow.app_set(_SSLV2, True)
        if not tcp_partial(flow):
            service(flow, "ssl")
        return Verdict.DONE
