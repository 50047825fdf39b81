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
import hashlib
import random
import struct

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
_sha1 = hashlib.sha1
_base64 = binascii.b2a_base64


class UidSource:
    """Generates Zeek-style connection uids from an injected random generator."""

    __slots__ = ("_bits", "_rng")

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        #: ``getrandbits``: ``randbytes(17)`` is ``getrandbits(136).to_bytes(17, "little")``
        #: (``random.Random.randbytes``), one Python call less per uid.
        self._bits = self._rng.getrandbits

    def next(self) -> str:
        """A new uid: 'C' followed by 17 base62 characters (about 101 random bits)."""
        raw = self._bits(136).to_bytes(17, "little")  # self._rng.randbytes(17)
        return "C" + raw.translate(_BYTE_TO_BASE62).decode("ascii")


def icmp_counterpart(proto: int, icmp_type: int) -> int | None:
    """The paired ICMP type (echo request <-> reply, ...) or None for one-way types."""
    return _ICMP_PAIRS.get(proto, {}).get(icmp_type)


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
    return "1:" + _base64(_sha1(data).digest(), newline=False).decode("ascii")
