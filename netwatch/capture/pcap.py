"""Classic pcap format (microsecond and nanosecond variants, either byte order), and the
per-record definitions every capture-file walker shares (:data:`Record`, :class:`ReadStats`).

Reads no configuration. Used by :mod:`netwatch.capture.files`, which detects the format and
feeds a walker with the file's bytes (a memory map, or decompressed chunks).

A walker is a generator ``walk(buf, off, end, final)`` that yields every complete record of
``buf[off:end]`` and returns the offset where it stopped, or :data:`STOP` when the rest of the
input cannot be read. With ``final=False`` it stops before an incomplete record so the caller
can append more bytes; with ``final=True`` an incomplete record is a truncated file.

Error policy (never raises on record data): a record cut short by the end of the file stops the
walk and sets ``truncated_tail``; a record with no captured bytes is skipped and counted
(``empty_records``); a captured length above :data:`MAX_CAPLEN` means the record framing is
lost, so the walk stops and counts it (``caplen_exceeds``).

Known limits: the header's ``thiszone`` field is ignored (as libpcap does); the rarely seen
"modified" pcap variants (magic a1b2cd34 and friends) are not recognised; the major/minor
version is not checked.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Generator
from dataclasses import dataclass

from netwatch.capture.linktypes import linktype_from_file

# (ts_seconds, linktype, wirelen, frame): what every capture reader yields per packet.
Record = tuple[float, int, int, bytes]
# What a walker reads: the whole file mapped in memory, or a chunk of decompressed bytes.
Buffer = bytes | mmap.mmap
# A walker generator: yields records, returns the offset where it stopped (or STOP).
Walk = Generator[Record, None, int]

# Largest captured length accepted for one record (libpcap's maximum snapshot length).
MAX_CAPLEN = 256 * 1024
# Returned by a walker when nothing more can be read from the input.
STOP = -1

PCAP_HEADER_LEN = 24
_RECORD_HEADER_LEN = 16

# First four bytes of a classic pcap file -> (format name, byte order, seconds per tick).
_MAGICS: dict[bytes, tuple[str, str, float]] = {
    bytes.fromhex("d4c3b2a1"): ("pcap", "<", 1e-6),
    bytes.fromhex("a1b2c3d4"): ("pcap", ">", 1e-6),
    bytes.fromhex("4d3cb2a1"): ("pcap-ns", "<", 1e-9),
    bytes.fromhex("a1b23c4d"): ("pcap-ns", ">", 1e-9),
}


@dataclass(slots=True)
class ReadStats:
    """What happened while reading one capture file (mutable: the walkers update it)."""

    records: int = 0  # records yielded
    truncated_tail: bool = False  # the file ends in the middle of a record or block
    bad_blocks: int = 0  # pcapng blocks that could not be used (bad length, unknown interface...)
    caplen_exceeds: int = 0  # records whose captured length is above MAX_CAPLEN
    empty_records: int = 0  # records with no captured bytes (skipped)
    read_error: str = ""  # I/O or decompression error that ended a streamed read early


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """The 24-byte global header of a classic pcap file."""

    format: str  # "pcap" (microsecond timestamps) or "pcap-ns" (nanosecond)
    byteorder: str  # struct prefix: "<" or ">"
    tick_s: float  # seconds per unit of the record's fractional timestamp
    snaplen: int
    linktype: int  # normalised by linktype_from_file

    @classmethod
    def is_magic(cls, head: bytes) -> bool:
        """True when ``head`` starts with one of the four classic pcap magic numbers."""
        return head[:4] in _MAGICS

    @classmethod
    def parse(cls, head: bytes) -> PcapHeader:
        """Parse the global header; ``ValueError`` (one-line reason) if it is not one."""
        magic = _MAGICS.get(head[:4])
        if magic is None:
            raise ValueError(f"not a pcap file (magic 0x{head[:4].hex()})")
        if len(head) < PCAP_HEADER_LEN:
            raise ValueError(f"truncated pcap header ({len(head)} of {PCAP_HEADER_LEN} bytes)")
        fmt, order, tick = magic
        snaplen, network = struct.unpack_from(order + "II", head, 16)
        return cls(fmt, order, tick, snaplen, linktype_from_file(network))


def walk_pcap(
    buf: Buffer, off: int, end: int, final: bool, *, header: PcapHeader, stats: ReadStats
) -> Walk:
    """Yield the records of ``buf[off:end]`` (see the module notes for the walker protocol)."""
    unpack = struct.Struct(header.byteorder + "IIII").unpack_from
    tick = header.tick_s
    linktype = header.linktype
    last = end - _RECORD_HEADER_LEN
    count = 0
    try:
        while off <= last:
            sec, frac, caplen, wirelen = unpack(buf, off)
            start = off + _RECORD_HEADER_LEN
            nxt = start + caplen
            if nxt <= end and 0 < caplen <= MAX_CAPLEN:
                count += 1
                yield (sec + frac * tick, linktype, wirelen, buf[start:nxt])
                off = nxt
            elif caplen > MAX_CAPLEN:
                stats.caplen_exceeds += 1
                return STOP
            elif caplen == 0:
                stats.empty_records += 1
                off = start
            else:
                break  # the record continues past the end of the buffer
    finally:
        stats.records += count
    if final and off < end:
        stats.truncated_tail = True
    return off
