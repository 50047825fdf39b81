"""Flow identifiers: Zeek-style ``uid`` strings and Community ID v1 hashes.

``UidSource`` produces ``C`` + 17 base62 characters, shaped like Zeek's connection uids; its
random source is injected (seeded in tests, ``os.urandom``-seeded by default), so replays
can be made reproducible. :func:`community_id` implements the Community ID v1 spec
(corelight/community-id-spec): SHA-1 over seed, ordered addresses, protocol, a zero pad
byte and ordered ports, base64-encoded with a ``1:`` prefix; ICMP/ICMPv6 type/code are
mapped to port equivalents so that request and reply share an id.
"""

from __future__ import annotations

import binascii
import functools
import random
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import hashlib

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# byte -> base62 digit (byte mod 62: a slight bias that does not matter for unique ids)
_BYTE_TO_BASE62 = bytes(ord(_ALPHABET[i % 62]) for i in range(256))

# ICMP type -> counterpart type (Community ID spec, section on ICMP).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
_ICMP6_PAIRS = {
    128: 129,
    129: 128,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    130: 131,
    131: 130,
    144: 145,
    145: 144,
}
_ICMP_PAIRS = {1: _ICMP4_PAIRS, 58: _ICMP6_PAIRS}
_pack_seed = struct.Struct("!H").pack
_SEED_ZERO = _pack_seed(0)
_pack_tail = struct.Struct("!BBHH").pack  # protocol, pad byte, ports
# the whole hashed input in one call: seed, addresses, protocol, pad byte, ports
_PACK_ALL = {
    4: struct.Struct("!H4s4sBBHH").pack,
    16: struct.Struct("!H16s16sBBHH").pack,
}
_base64 = binascii.b2a_base64


#: uids made per draw from the generator (one ``getrandbits`` call and a few slice copies)
UID_BATCH = 512


def _uid_stream(bits: Callable[[int], int]) -> Iterator[str]:
    """Uids without end, made ``UID_BATCH`` at a time: the same strings, in the same order,
    as drawing ``bits(136).to_bytes(17, "little")`` (``randbytes(17)``) per uid.

    ``getrandbits(k)`` fills an int 32 bits at a time from the least significant end, one
    generator output per 32 bits, and a last partial word keeps that output's top bits:
    ``getrandbits(136)`` is five outputs w0..w4, its 17 little-endian bytes those of w0..w3
    and the top byte of w4. ``getrandbits(160 * n)`` draws the same outputs 5n at a time
    without dropping bits, so uid i's bytes are bytes 20i..20i+15 and 20i+19 of its
    little-endian bytes. Those are put in place by extended-slice copies (a column at a
    time), with "C" before and a space after each uid, so one ``split`` makes the strings.
    """
    n = UID_BATCH
    prefix = b"C" * n
    gaps = b" " * n
    out = bytearray(19 * n)
    while True:
        raw = bits(160 * n).to_bytes(20 * n, "little").translate(_BYTE_TO_BASE62)
        out[0::19] = prefix
        for j in range(16):
            out[j + 1 :: 19] = raw[j::20]
        out[17::19] = raw[19::20]
        out[18::19] = gaps
        yield from out.decode("ascii").split()


class UidSource:
    """Generates Zeek-style connection uids from an injected random generator."""

    __slots__ = ("_rng", "next")

    #: A new uid: 'C' followed by 17 base62 characters (about 101 random bits); the n-th
    #: is ``"C"`` and ``randbytes(17)`` of the n-th draw from ``random.Random(seed)``, as
    #: base62 digits (byte mod 62). Bound to a generator of batches (no Python frame per uid).
    next: Callable[[], str]

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self.next = _uid_stream(self._rng.getrandbits).__next__


def icmp_counterpart(proto: int, icmp_type: int) -> int | None:
    """The paired ICMP type (echo request <-> reply, ...) or None for one-way types."""
    return _ICMP_PAIRS.get(proto, {}).get(icmp_type)


@functools.cache
def _sha1() -> Callable[[bytes], hashlib._Hash]:
    """``hashlib.sha1``, imported at the first Python-built Community ID: hashlib loads
    OpenSSL (~4 ms of a start), and with the compiled core the record's id is made in C."""
    import hashlib  # noqa: PLC0415

    return hashlib.sha1


def community_id(
    saddr: bytes, daddr: bytes, proto: int, sport: int, dport: int, seed: int = 0
) -> str:
    """Community ID v1 of a flow given by its packed addresses, protocol and ports."""
    pairs = _ICMP_PAIRS.get(proto)
    if pairs is None:  # TCP, UDP, ...: the ends in order, (saddr, sport) first
        if saddr > daddr or (saddr == daddr and sport > dport):
            saddr, daddr, sport, dport = daddr, saddr, dport, sport
    else:
        # ICMP: the type stands for the source port, its counterpart (or, for a one-way
        # type, the code, and then the ends stay in the order seen) for the destination port
        peer = pairs.get(sport)
        if peer is not None:
            dport = peer
            if saddr > daddr or (saddr == daddr and sport > dport):
                saddr, daddr, sport, dport = daddr, saddr, dport, sport
    pack = _PACK_ALL.get(len(saddr)) if len(daddr) == len(saddr) else None
    if pack is not None:  # one struct call (two 4- or 16-byte addresses, the usual case)
        data = pack(seed, saddr, daddr, proto, 0, sport, dport)
    else:
        head = _SEED_ZERO if seed == 0 else _pack_seed(seed)
        data = head + saddr + daddr + _pack_tail(proto, 0, sport, dport)
    return "1:" + _base64(_sha1()(data).digest(), newline=False).decode("ascii")
