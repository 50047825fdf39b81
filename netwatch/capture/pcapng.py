"""pcapng format: a block walker that yields the packets of a pcapng file.

Reads no configuration. Used by :mod:`netwatch.capture.files`; follows the walker protocol of
:mod:`netwatch.capture.pcap` (yield records, return the stop offset, :data:`STOP`).

Blocks handled:

- Section Header Block: starts a section with its own byte order (either) and interfaces;
- Interface Description Block: link type, snaplen, ``if_tsresol`` (power of 10 or of 2,
  default microseconds) and ``if_tsoffset`` (seconds added to every timestamp);
- Enhanced Packet Block, obsolete Packet Block (type 2): timestamped packets;
- Simple Packet Block: no timestamp, so it reuses the last timestamp seen (0.0 before any),
  interface 0, captured length ``min(original length, snaplen, block body)``;
- every other block (name resolution, statistics, decryption secrets, custom...) is skipped.

Error policy (never raises on file data): a block whose length is impossible (under 12, not a
multiple of 4, over :data:`MAX_BLOCK_LEN`) or whose trailing length copy differs, and a section
header with an unknown byte-order magic, end the walk (``bad_blocks`` += 1: the framing is
lost). A packet block naming an unknown interface, too short for its fields, or whose captured
length runs past the block, is skipped (``bad_blocks`` += 1). Captured length 0 is skipped
(``empty_records``), above MAX_CAPLEN skipped (``caplen_exceeds``). A block cut by the end of
the file ends the walk and sets ``truncated_tail``.

Timestamp ranges: an interface whose ``if_tsresol`` asks for more units per second than a
64-bit count can hold (above 10^19 or 2^63, as Wireshark's reader rules) or whose
``if_tsoffset`` lies outside :data:`MAX_TS_S` either way is a bad interface: its description
block counts one ``bad_blocks`` and every packet block on it is skipped and counted the same
way. A packet whose timestamp falls outside ``[0, MAX_TS_S)`` (1970 to 2106, the range of
classic pcap's 32-bit seconds) is skipped and counted in ``bad_blocks``: no timestamp the
rest of the daemon cannot format or compare ever leaves the reader.

Known limits: for speed, the Enhanced Packet Block fast path trusts a leading block length
that is consistent (multiple of 4, covers the captured bytes, inside the file) without reading
the trailing copy (that check costs a few % per packet); a corrupt length is then normally caught
on the following block, whose framing no longer checks out.
Timestamps are floats: nanosecond (or finer) resolution is kept to about 0.25 µs (one unit
in the last place of a float near the current epoch).
Options other than the two above (comments, hashes, flags, drop counts) are ignored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from netwatch.capture.linktypes import linktype_from_file
from netwatch.capture.pcap import MAX_CAPLEN, STOP, Buffer, ReadStats, Record, Walk

PCAPNG_MAGIC = b"\n\r\r\n"  # block type of a Section Header Block (same in both byte orders)
MAX_BLOCK_LEN = 16 * 1024 * 1024  # longer blocks are treated as corrupt (bounds stream buffers)

_NEED_MORE = -2  # internal: the block continues past the end of the buffer
_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_OPT_END, _OPT_TSRESOL, _OPT_TSOFFSET = 0, 9, 14
_EPB_HEAD = 28  # type, length, interface, ts high, ts low, caplen, orig len
_MIN_LEN = {_SHB: 28, _IDB: 20, _PB: 32, _SPB: 16, _EPB: 32}
_TS_HIGH = 1 << 32
#: Timestamps at or past this (2106-02-07, the end of classic pcap's unsigned 32-bit seconds),
#: or before 0, are out of range: the packet is skipped and counted in ``bad_blocks``.
MAX_TS_S = float(1 << 32)
#: Largest if_tsresol exponents whose units per second fit in 64 bits (10^19, 2^63).
MAX_TSRESOL_POW10, MAX_TSRESOL_POW2 = 19, 63
_DEFAULT_UNITS = 1_000_000  # if_tsresol absent: microseconds


@dataclass(frozen=True, slots=True)
class _Codec:
    """Precompiled structs for one byte order."""

    head: struct.Struct  # block type, block length
    epb: struct.Struct  # the 28-byte head of an Enhanced Packet Block
    u32: struct.Struct
    i64: struct.Struct
    idb: struct.Struct  # link type, reserved, snaplen
    opt: struct.Struct  # option code, option length
    pb: struct.Struct  # interface, drops, ts high, ts low, caplen, orig len

    @classmethod
    def of(cls, order: str) -> _Codec:
        """Compile the structs for byte order ``order`` ("<" or ">")."""
        return cls(*(struct.Struct(order + f) for f in ("II", "7I", "I", "q", "HHI", "HH", "HH4I")))


_CODECS = {b"\x4d\x3c\x2b\x1a": _Codec.of("<"), b"\x1a\x2b\x3c\x4d": _Codec.of(">")}
_ANY_EPB = _CODECS[b"\x4d\x3c\x2b\x1a"].epb.unpack_from  # used before the first section


class _Interface(NamedTuple):
    """One interface of a section. The floats make a packet's timestamp three float
    operations; a bad interface has NaN factors, so every timestamp on it is out of range."""

    linktype: int
    high_s: float  # seconds per unit of the high timestamp word
    low_s: float  # seconds per unit of the low timestamp word
    offset_s: float  # if_tsoffset, seconds
    snaplen: int

    @property
    def usable(self) -> bool:
        """False for an interface whose timestamp options were out of range."""
        return not math.isnan(self.high_s)


class _TsOptions(NamedTuple):
    """The timestamp options of an interface: units per second (None: if_tsresol out of
    range) and if_tsoffset in seconds."""

    units: int | None
    offset_s: int


def check_head(head: bytes) -> None:
    """Raise ``ValueError`` (one-line reason) unless ``head`` starts a pcapng file."""
    if head[:4] != PCAPNG_MAGIC:
        raise ValueError(f"not a pcapng file (magic 0x{head[:4].hex()})")
    if len(head) < 12:
        raise ValueError(f"truncated pcapng section header ({len(head)} of 12 bytes)")
    if head[8:12] not in _CODECS:
        raise ValueError(f"not a pcapng file (byte-order magic 0x{head[8:12].hex()})")


def _tsresol_units(value: int) -> int | None:
    """Timestamp units per second for an ``if_tsresol`` option value (None: out of range)."""
    exponent = value & 0x7F
    if value & 0x80:
        return 1 << exponent if exponent <= MAX_TSRESOL_POW2 else None
    return 10**exponent if exponent <= MAX_TSRESOL_POW10 else None


def _interface_options(buf: Buffer, off: int, stop: int, codec: _Codec) -> _TsOptions:
    """The timestamp options in ``buf[off:stop]``."""
    units: int | None = _DEFAULT_UNITS
    offset_s = 0
    while off + 4 <= stop:
        code, length = codec.opt.unpack_from(buf, off)
        off += 4
        if code == _OPT_END or off + length > stop:
            break
        if code == _OPT_TSRESOL and length >= 1:
            units = _tsresol_units(buf[off])
        elif code == _OPT_TSOFFSET and length == 8:
            offset_s = codec.i64.unpack_from(buf, off)[0]
        off += (length + 3) & ~3
    return _TsOptions(units, offset_s)


class PcapngWalker:
    """Walks the blocks of one pcapng file; keeps section state between calls (and chunks)."""

    __slots__ = ("_codec", "_interfaces", "_last_ts", "stats")

    def __init__(self, stats: ReadStats) -> None:
        self.stats = stats
        self._codec: _Codec | None = None
        self._interfaces: list[_Interface] = []
        self._last_ts = 0.0

    def walk(self, buf: Buffer, off: int, end: int, final: bool) -> Walk:
        """Yield the packets of the blocks in ``buf[off:end]`` (walker protocol)."""
        count, ts = 0, self._last_ts
        fast_last = end - _EPB_HEAD
        unpack_epb, ifaces = self._fast_state()
        nif = len(ifaces)
        try:
            while off < end:
                if off <= fast_last:  # fast path: a well-formed Enhanced Packet Block
                    btype, blen, ifid, high, low, caplen, wirelen = unpack_epb(buf, off)
                    nxt = off + blen
                    if (
                        btype == _EPB
                        and nxt <= end
                        and 0 < caplen <= MAX_CAPLEN
                        and caplen + 32 <= blen <= MAX_BLOCK_LEN
                        and ifid < nif
                        and not blen & 3
                    ):
                        linktype, high_s, low_s, offset_s, _ = ifaces[ifid]
                        stamp = high * high_s + low * low_s + offset_s
                        if 0.0 <= stamp < MAX_TS_S:  # False for NaN: a bad interface
                            ts = stamp
                            start = off + _EPB_HEAD
                            count += 1
                            yield (ts, linktype, wirelen, buf[start : start + caplen])
                            off = nxt
                            continue
                self._last_ts = ts
                nxt, record = self._block(buf, off, end, final)
                if nxt < 0:
                    return STOP if nxt == STOP else off
                ts = self._last_ts
                unpack_epb, ifaces = self._fast_state()
                nif = len(ifaces)
                off = nxt
                if record is not None:
                    count += 1
                    yield record
        finally:
            self.stats.records += count
            self._last_ts = ts
        return off

    def _fast_state(self) -> tuple[Callable[[Buffer, int], tuple[int, ...]], list[_Interface]]:
        codec = self._codec
        return (_ANY_EPB if codec is None else codec.epb.unpack_from), self._interfaces

    def _block(self, buf: Buffer, off: int, end: int, final: bool) -> tuple[int, Record | None]:
        """Handle the block at ``off``: (offset of the next block or STOP/_NEED_MORE, record)."""
        if end - off < 12:
            return self._incomplete(final), None
        codec = self._codec
        is_section = buf[off : off + 4] == PCAPNG_MAGIC
        if is_section:
            codec = _CODECS.get(buf[off + 8 : off + 12])
        if codec is None:  # unknown byte order, or data before the first section header
            self.stats.bad_blocks += 1
            return STOP, None
        btype, blen = codec.head.unpack_from(buf, off)
        nxt = off + blen
        if blen < 12 or blen & 3 or blen > MAX_BLOCK_LEN:
            self.stats.bad_blocks += 1
            return STOP, None
        if nxt > end:
            return self._incomplete(final), None
        if codec.u32.unpack_from(buf, nxt - 4)[0] != blen:
            self.stats.bad_blocks += 1
            return STOP, None
        if blen < _MIN_LEN.get(btype, 12):
            self.stats.bad_blocks += 1
            return nxt, None
        if is_section:
            self._codec, self._interfaces = codec, []
            return nxt, None
        return nxt, self._body(buf, off, nxt, btype, codec)

    def _incomplete(self, final: bool) -> int:
        if not final:
            return _NEED_MORE
        self.stats.truncated_tail = True
        return STOP

    def _body(self, buf: Buffer, off: int, nxt: int, btype: int, codec: _Codec) -> Record | None:
        """Dispatch a complete, well-framed, non-section block by type."""
        if btype == _EPB:
            fields = codec.epb.unpack_from(buf, off)[2:]
            return self._timestamped(buf, off + 28, nxt - 4, fields)
        if btype == _IDB:
            self._add_interface(buf, off, nxt, codec)
        elif btype == _SPB:
            return self._simple(buf, off, nxt, codec)
        elif btype == _PB:
            head = codec.pb.unpack_from(buf, off + 8)  # 16-bit interface, 16-bit drop count
            return self._timestamped(buf, off + 28, nxt - 4, (head[0], *head[2:]))
        return None

    def _add_interface(self, buf: Buffer, off: int, nxt: int, codec: _Codec) -> None:
        raw_linktype, _, snaplen = codec.idb.unpack_from(buf, off + 8)
        units, offset_s = _interface_options(buf, off + 16, nxt - 4, codec)
        linktype = linktype_from_file(raw_linktype)
        if units is None or not -MAX_TS_S < offset_s < MAX_TS_S:
            self.stats.bad_blocks += 1  # kept, so later interface numbers stay right
            self._interfaces.append(_Interface(linktype, math.nan, math.nan, math.nan, snaplen))
            return
        iface = _Interface(linktype, _TS_HIGH / units, 1 / units, float(offset_s), snaplen)
        self._interfaces.append(iface)

    def _timestamped(
        self, buf: Buffer, start: int, stop: int, fields: tuple[int, ...]
    ) -> Record | None:
        """A packet block with data at ``start``; fields: interface, ts high, ts low, caplen,
        original length."""
        ifid, high, low, caplen, wirelen = fields
        if ifid >= len(self._interfaces) or start + caplen > stop:
            self.stats.bad_blocks += 1
            return None
        if not self._caplen_ok(caplen):
            return None
        linktype, high_s, low_s, offset_s, _ = self._interfaces[ifid]
        ts = high * high_s + low * low_s + offset_s
        if not 0.0 <= ts < MAX_TS_S:  # also NaN: a bad interface
            self.stats.bad_blocks += 1
            return None
        self._last_ts = ts
        return (ts, linktype, wirelen, buf[start : start + caplen])

    def _simple(self, buf: Buffer, off: int, nxt: int, codec: _Codec) -> Record | None:
        if not self._interfaces or not self._interfaces[0].usable:
            self.stats.bad_blocks += 1
            return None
        linktype, _, _, _, snaplen = self._interfaces[0]
        wirelen = codec.u32.unpack_from(buf, off + 8)[0]
        caplen = min(wirelen, nxt - off - 16, snaplen or wirelen)
        if not self._caplen_ok(caplen):
            return None
        return (self._last_ts, linktype, wirelen, buf[off + 12 : off + 12 + caplen])

    def _caplen_ok(self, caplen: int) -> bool:
        if caplen == 0:
            self.stats.empty_records += 1
            return False
        if caplen > MAX_CAPLEN:
            self.stats.caplen_exceeds += 1
            return False
        return True
