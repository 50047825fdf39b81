"""QUIC deep parser: Zeek's ``quic`` service, and the SNI/ALPN of the client's Initial packets.

A QUIC client's first datagrams carry Initial packets protected with keys anyone can derive
from the packet itself (RFC 9001 section 5.2): HKDF-SHA256 with the version's initial salt over
the client's first Destination Connection ID gives the client's initial secret, then the
AEAD key, IV and header-protection key (labels ``quic key``/``quic iv``/``quic hp``; QUIC v2,
RFC 9369, uses ``quicv2 ...`` and its own salt). Header protection is removed with AES-ECB over
a 16-byte sample of the ciphertext, the payload decrypted with AES-128-GCM, and the CRYPTO
frames reassembled by offset into the TLS ClientHello, which
:func:`netwatch.deep.tls.parse_handshake` reads (SNI and ALPN land on ``flow.app`` as for TLS
over TCP, so names and rules use them alike).

Zeek's semantics (its QUIC analyzer, read for behaviour): the service ``quic`` is confirmed once
an Initial packet decrypts; ``ssl`` is added when the ClientHello inside parses. The analyzer
is attached to UDP 443, 853 and 784, and elsewhere when a datagram starts like a v1 or v2
Initial (Zeek's DPD signature); :class:`QuicParser` looks at unclaimed UDP the same way.

AES (header protection) and AES-GCM come from the ``cryptography`` package rather than
hand-written code: a constant-time, audited implementation of the primitives is not something
to re-derive here. The key schedule is two HKDF steps of at most one SHA-256 block each, so
it is plain HMAC-SHA256 (RFC 2104) over the stdlib's ``hashlib.sha256``: the SHA-256 states
after a key's inner and outer pad blocks are made once per key (once per version for the
salt) and copied for each message, five HMACs for the price of about three (OpenSSL 3's
one-shot HMAC, ``hmac.digest``, sets up its MAC and digest anew on every call, ~26k
instructions each); the keys of the last DCIDs are cached, and so are the AES-ECB and
AES-GCM objects made from them.

Bounded work per flow: only the client's direction, at most the inspector's payload budget of
datagrams (``deep.max_payload_packets``; ``MAX_UNDECRYPTED`` while none decrypts: a UDP 443
flow that is not QUIC is soon left alone), ``MAX_PACKETS_PER_DATAGRAM`` coalesced packets per
datagram, ``MAX_FRAMES`` frames per packet and ``MAX_CRYPTO_BYTES`` of CRYPTO data per flow;
state lives in ``flow.app`` under ``_quic`` and is dropped once the ClientHello is read.
Never raises on hostile bytes. Reads no configuration.

Known limits: versions other than v1, v2 and drafts 29 to 34 are not decrypted (the draft
salts come from the drafts, not from a test vector); a server Retry is followed by trying the
new DCID of the client's next Initial; the server's Initials are not decrypted (the service
does not depend on them).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

from netwatch.deep.base import Context, DeepParser, Verdict, service
from netwatch.deep.tls import NeedMore, ParseResult, TlsClientHello, parse_handshake

if TYPE_CHECKING:
    from hashlib import _Hash

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from netwatch.flow.table import Flow

#: UDP ports Zeek attaches its QUIC analyzer to (HTTP/3, DNS over QUIC and its early port).
QUIC_PORTS: Final = frozenset({443, 853, 784})
MAX_PACKETS_PER_DATAGRAM: Final = 4
MAX_FRAMES: Final = 64
MAX_CRYPTO_BYTES: Final = 16384
MAX_CID_LEN: Final = 20
MAX_UNDECRYPTED: Final = 2  # datagrams without a decryptable Initial before giving up
_SAMPLE_LEN: Final = 16
_TAG_LEN: Final = 16
#: The ``flow.app`` key of the per-flow reassembly state (the inspector drops it at the end).
QUIC_STATE: Final = "_quic"

VERSION_1: Final = 0x00000001
VERSION_2: Final = 0x6B3343CF


class VersionKeys(NamedTuple):
    """What differs between QUIC versions for Initial protection."""

    salt: bytes
    label_prefix: bytes  # b"quic " or b"quicv2 "
    initial_type: int  # the long-header packet type bits of an Initial


_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")  # RFC 9001 5.2
_V1_KEYS = VersionKeys(_V1_SALT, b"quic ", 0)
_DRAFT29_KEYS = VersionKeys(bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899"), b"quic ", 0)
#: Initial-protection parameters by version (drafts 29-32 share a salt; 33/34 use v1's).
VERSIONS: Final[dict[int, VersionKeys]] = {
    VERSION_1: _V1_KEYS,
    VERSION_2: VersionKeys(  # RFC 9369 3.3.1, 3.3.2, 3.2
        bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), b"quicv2 ", 1
    ),
    **{0xFF000000 + draft: _DRAFT29_KEYS for draft in range(29, 33)},
    **{0xFF000000 + draft: _V1_KEYS for draft in (33, 34)},
}


class InitialKeys(NamedTuple):
    """The client's Initial packet protection keys for one DCID."""

    key: bytes
    iv: bytes
    hp: bytes


@dataclass(frozen=True, slots=True)
class LongHeader:
    """A long-header packet's parsed (still protected) header."""

    start: int  # offset of the packet's first byte in the datagram
    version: int
    packet_type: int
    dcid: bytes
    pn_offset: int  # where the protected packet number starts
    end: int  # end of this packet within the datagram


@dataclass(slots=True)
class QuicState:
    """Per-flow reassembly state (kept in ``flow.app['_quic']`` until the hello is read)."""

    dcid: bytes | None = None
    crypto: dict[int, bytes] = field(default_factory=dict)
    crypto_bytes: int = 0
    confirmed: bool = False
    failures: int = 0  # datagrams looked at before any Initial decrypted


def _varint(buf: bytes, off: int) -> tuple[int, int] | None:
    """A QUIC variable-length integer at ``off``: (value, next offset), or None if cut."""
    if off >= len(buf):
        return None
    size = 1 << (buf[off] >> 6)
    if off + size > len(buf):
        return None
    value = buf[off] & 0x3F
    for byte in buf[off + 1 : off + size]:
        value = (value << 8) | byte
    return value, off + size


def looks_like_initial(data: bytes) -> bool:
    """Zeek's DPD test: a long header with the fixed bit, a v1 or v2 version and its Initial
    packet type."""
    if len(data) < 5 or data[0] & 0xC0 != 0xC0:
        return False
    version = int.from_bytes(data[1:5], "big")
    keys = VERSIONS.get(version)
    return keys is not None and (data[0] >> 4) & 0x03 == keys.initial_type


def parse_long_header(data: bytes, off: int = 0) -> LongHeader | None:
    """The long header of the packet at ``off`` (an Initial's token and length read too)."""
    if len(data) < off + 7 or data[off] & 0xC0 != 0xC0:
        return None
    version = int.from_bytes(data[off + 1 : off + 5], "big")
    packet_type = (data[off] >> 4) & 0x03
    pos = off + 5
    dcid_len = data[pos]
    if dcid_len > MAX_CID_LEN or pos + 1 + dcid_len >= len(data):
        return None
    dcid = data[pos + 1 : pos + 1 + dcid_len]
    pos += 1 + dcid_len
    scid_len = data[pos]
    if scid_len > MAX_CID_LEN:
        return None
    pos += 1 + scid_len
    keys = VERSIONS.get(version)
    if keys is None or packet_type == (keys.initial_type + 3) % 4:  # a Retry has no length
        return None
    if packet_type == keys.initial_type:
        token = _varint(data, pos)
        if token is None:
            return None
        pos = token[1] + token[0]
    length = _varint(data, pos)
    if length is None:
        return None
    pn_offset = length[1]
    end = pn_offset + length[0]
    if end > len(data):
        return None
    return LongHeader(off, version, packet_type, dcid, pn_offset, end)


def _label_info(label: bytes, size: int) -> bytes:
    """HKDF-Expand's input for one output block of a TLS 1.3 HKDF-Expand-Label with an
    empty context (RFC 8446 section 7.1; RFC 5869 section 2.3: T(1) = HMAC(PRK, info | 1))."""
    full = b"tls13 " + label
    return struct.pack(">HB", size, len(full)) + full + b"\x00\x01"


class _Labels(NamedTuple):
    """A version's Expand-Label inputs (built once per version)."""

    client_in: bytes
    key: bytes
    iv: bytes
    hp: bytes


_LABELS: Final = {
    prefix: _Labels(
        _label_info(b"client in", 32),
        _label_info(prefix + b"key", 16),
        _label_info(prefix + b"iv", 12),
        _label_info(prefix + b"hp", 16),
    )
    for prefix in {keys.label_prefix for keys in VERSIONS.values()}
}


def _expand_label(secret: bytes, label: bytes, size: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context, ``size`` <= 32 (one SHA-256 block)."""
    return _hmac(_hmac_key(secret), _label_info(label, size))[:size]


#: SHA-256 after an HMAC key's inner and outer pad blocks (RFC 2104), to be copied (a plain
#: tuple: a NamedTuple class costs a compile of its ``__new__`` at import).
_HmacKey: TypeAlias = "tuple[_Hash, _Hash]"


_IPAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OPAD: Final = bytes(byte ^ 0x5C for byte in range(256))


def _hmac_key(key: bytes) -> _HmacKey:
    """The pad states of ``key`` (hashed first when longer than SHA-256's 64-byte block)."""
    import hashlib  # noqa: PLC0415 - OpenSSL's _hashlib at the first Initial, not at start

    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


def _hmac(key: _HmacKey, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under the key whose pad states ``key`` holds."""
    inner = key[0].copy()
    inner.update(message)
    outer = key[1].copy()
    outer.update(inner.digest())
    return outer.digest()


@functools.cache
def _salt_key(salt: bytes) -> _HmacKey:
    """A version's initial salt as an HMAC key (a handful of versions: kept)."""
    return _hmac_key(salt)


def client_initial_keys(dcid: bytes, version: int) -> InitialKeys | None:
    """The client's Initial keys for ``dcid`` under ``version`` (None: unknown version).

    HKDF-Extract and Expand-Label as HMAC-SHA256 over ``hashlib`` (every output is at most
    one SHA-256 block: one HMAC each; the pad states of the salt and the client secret made
    once). Cached for the last ``KEY_CACHE`` DCIDs:
    a ClientHello spread over several Initial packets (or a retransmitted one) carries the
    same DCID."""
    return _initial_keys(bytes(dcid), version)


KEY_CACHE: Final = 256


@functools.lru_cache(maxsize=KEY_CACHE)
def _initial_keys(dcid: bytes, version: int) -> InitialKeys | None:
    params = VERSIONS.get(version)
    if params is None:
        return None
    initial = _hmac(_salt_key(params.salt), dcid)  # HKDF-Extract
    labels = _LABELS[params.label_prefix]
    secret = _hmac_key(_hmac(_hmac_key(initial), labels.client_in))
    return InitialKeys(
        _hmac(secret, labels.key)[:16],
        _hmac(secret, labels.iv)[:12],
        _hmac(secret, labels.hp)[:16],
    )


class _Crypto(NamedTuple):
    """The ``cryptography`` names :func:`decrypt_initial` uses."""

    cipher: type[Cipher[modes.ECB]]
    aes: type[algorithms.AES]
    ecb: modes.ECB
    aesgcm: type[AESGCM]
    invalid_tag: type[InvalidTag]


@functools.cache
def _crypto() -> _Crypto:
    """``cryptography`` is imported by the first QUIC Initial, not at start-up."""
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    return _Crypto(Cipher, algorithms.AES, modes.ECB(), AESGCM, InvalidTag)


def decrypt_initial(data: bytes, header: LongHeader, keys: InitialKeys) -> bytes | None:
    """The plaintext payload of the Initial packet ``header`` describes, or None."""
    pn_offset = header.pn_offset
    sample = data[pn_offset + 4 : pn_offset + 4 + _SAMPLE_LEN]
    if len(sample) < _SAMPLE_LEN or header.end - pn_offset < 4 + _TAG_LEN:
        return None
    mask = _mask_of(keys.hp)(sample)
    first = data[header.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_end = pn_offset + pn_len
    packet_number = (
        int.from_bytes(data[pn_offset:pn_end], "big") ^ int.from_bytes(mask[1 : 1 + pn_len], "big")
    ).to_bytes(pn_len, "big")
    aad = bytes((first,)) + data[header.start + 1 : pn_offset] + packet_number
    iv = keys.iv
    nonce = (int.from_bytes(iv, "big") ^ int.from_bytes(packet_number, "big")).to_bytes(
        len(iv), "big"
    )
    try:
        return _aead(keys.key)(nonce, data[pn_end : header.end], aad)
    except (_crypto().invalid_tag, ValueError):
        return None


# The ``cryptography`` objects are made once per key (for the last ``KEY_CACHE``, as the
# keys are): an ECB encryptor given whole blocks keeps no state between calls, and an
# ``AESGCM`` object none at all.


@functools.lru_cache(maxsize=KEY_CACHE)
def _mask_of(hp: bytes) -> Callable[[bytes], bytes]:
    """The header-protection mask of a 16-byte sample: AES-ECB under ``hp``."""
    crypto = _crypto()
    # one AES block in ECB mode: what update() gives is the whole mask (finalize adds nothing)
    return crypto.cipher(crypto.aes(hp), crypto.ecb).encryptor().update


@functools.lru_cache(maxsize=KEY_CACHE)
def _aead(key: bytes) -> Callable[[bytes, bytes, bytes], bytes]:
    """AES-GCM decryption under ``key``: (nonce, ciphertext and tag, associated data)."""
    return _crypto().aesgcm(key).decrypt


def crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """The CRYPTO frames (offset, data) of a decrypted Initial payload.

    Initial packets may carry only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE frames
    (RFC 9000 section 17.2.2); anything else, or a cut frame, ends the walk (the frames
    before it are kept).
    """
    frames: list[tuple[int, bytes]] = []
    pos = 0
    for _ in range(MAX_FRAMES):
        while pos < len(payload) and payload[pos] == _FRAME_PADDING:
            pos += 1
        if pos >= len(payload):
            break
        kind = payload[pos]
        pos += 1
        if kind == _FRAME_PING:
            continue
        if kind == _FRAME_CRYPTO:
            offset = _varint(payload, pos)
            length = _varint(payload, offset[1]) if offset else None
            if offset is None or length is None or length[1] + length[0] > len(payload):
                break
            frames.append((offset[0], payload[length[1] : length[1] + length[0]]))
            pos = length[1] + length[0]
            continue
        if kind not in _FRAME_ACK:
            break
        skipped = _skip_ack(payload, pos, with_ecn=kind == _FRAME_ACK[1])
        if skipped is None:
            break
        pos = skipped
    return frames


def _skip_ack(payload: bytes, pos: int, with_ecn: bool) -> int | None:
    """Offset after an ACK frame's fields (RFC 9000 section 19.3), or None if cut."""
    fields: list[int] = []
    for _ in range(4):  # largest acknowledged, delay, range count, first range
        value = _varint(payload, pos)
        if value is None:
            return None
        fields.append(value[0])
        pos = value[1]
    extra = 2 * fields[2] + (3 if with_ecn else 0)
    if extra > MAX_FRAMES * 2:
        return None
    for _ in range(extra):
        value = _varint(payload, pos)
        if value is None:
            return None
        pos = value[1]
    return pos


_FRAME_PADDING: Final = 0x00
_FRAME_PING: Final = 0x01
_FRAME_ACK: Final = (0x02, 0x03)
_FRAME_CRYPTO: Final = 0x06


def reassembled(crypto: dict[int, bytes]) -> bytes:
    """The contiguous CRYPTO stream from offset 0 (overlaps resolved by the first copy)."""
    out = bytearray()
    for offset in sorted(crypto):
        chunk = crypto[offset]
        if offset > len(out):
            break
        out += chunk[len(out) - offset :]
    return bytes(out)


class QuicParser(DeepParser):
    """The client's Initial packets: ``quic`` once one decrypts, then ``ssl``, SNI and ALPN
    from the ClientHello in their CRYPTO frames."""

    rank = 5
    #: Not a port claim: UDP 443 carries other things too (STUN/TURN), whose payload
    #: signatures run on unclaimed UDP before this look.
    udp_other = True

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        claimed = flow.resp_p in QUIC_PORTS or flow.orig_p in QUIC_PORTS
        app = flow.app
        state = app.get(QUIC_STATE) if app is not None else None
        if not is_orig or (state is None and not (claimed or looks_like_initial(data))):
            return Verdict.DONE
        if state is None:
            state = QuicState()
            flow.app_set(QUIC_STATE, state)
        return self._datagram(ctx, flow, state, data)

    def _datagram(self, ctx: Context, flow: Flow, state: QuicState, data: bytes) -> Verdict:
        off = 0
        for _ in range(MAX_PACKETS_PER_DATAGRAM):
            header = parse_long_header(data, off)
            if header is None:
                break
            off = header.end
            if header.packet_type != VERSIONS[header.version].initial_type:
                continue
            payload = self._decrypt(state, data, header)
            if payload is None:
                ctx.count("quic_undecrypted")
                continue
            if not state.confirmed:
                state.confirmed = True
                ctx.count("quic_initial")
                service(flow, "quic")
            hello = self._crypto(state, crypto_frames(payload))
            if hello is not NeedMore:
                return self._hello(ctx, flow, hello)
        if not state.confirmed:
            state.failures += 1
        if state.crypto_bytes >= MAX_CRYPTO_BYTES or state.failures >= MAX_UNDECRYPTED:
            # nothing decrypted: not QUIC (or a version or a capture we cannot read)
            return self._give_up(flow)
        return Verdict.MORE

    @staticmethod
    def _decrypt(state: QuicState, data: bytes, header: LongHeader) -> bytes | None:
        """Try the flow's first DCID, then this packet's own (a new one after a Retry)."""
        candidates = [header.dcid] if state.dcid is None else [state.dcid, header.dcid]
        for dcid in dict.fromkeys(candidates):
            keys = client_initial_keys(dcid, header.version)
            payload = decrypt_initial(data, header, keys) if keys is not None else None
            if payload is not None:
                if state.dcid != dcid:
                    state.dcid = dcid
                    state.crypto.clear()
                    state.crypto_bytes = 0
                return payload
        return None

    @staticmethod
    def _crypto(state: QuicState, frames: list[tuple[int, bytes]]) -> ParseResult:
        """Add CRYPTO frames; the ClientHello once complete (None: it cannot be one)."""
        for offset, chunk in frames:
            if offset + len(chunk) > MAX_CRYPTO_BYTES or offset in state.crypto:
                continue
            state.crypto[offset] = chunk
            state.crypto_bytes += len(chunk)
        stream = reassembled(state.crypto)
        return parse_handshake(stream) if stream else NeedMore

    @staticmethod
    def _hello(ctx: Context, flow: Flow, hello: TlsClientHello | None) -> Verdict:
        if flow.app is not None:
            flow.app.pop(QUIC_STATE, None)
        if hello is None:
            ctx.count("quic_crypto_unparsed")
            return Verdict.DONE
        ctx.count("quic_client_hello")
        service(flow, "ssl")
        if hello.sni:
            flow.app_set("sni", hello.sni)
        if hello.alpn:
            flow.app_set("alpn", hello.alpn)
        return Verdict.DONE

    @staticmethod
    def _give_up(flow: Flow) -> Verdict:
        if flow.app is not None:
            flow.app.pop(QUIC_STATE, None)
        return Verdict.DONE
