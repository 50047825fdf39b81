"""Byte builders for synthetic pcap and pcapng files, shared by the capture-reader tests."""

from __future__ import annotations

import struct
from collections.abc import Iterable

# One classic pcap record: seconds, fraction (µs or ns), frame, original length on the wire.
PcapRecord = tuple[int, int, bytes, int]

PCAP_MAGIC = {False: 0xA1B2C3D4, True: 0xA1B23C4D}  # key: nanosecond timestamps


def pcap_header(*, order: str = "<", nanos: bool = False, linktype: int = 1) -> bytes:
    """The 24-byte global header of a classic pcap file."""
    return struct.pack(order + "IHHiIII", PCAP_MAGIC[nanos], 2, 4, 0, 0, 262144, linktype)


def pcap_record(sec: int, frac: int, frame: bytes, wirelen: int, *, order: str = "<") -> bytes:
    """One record: 16-byte header followed by the captured bytes."""
    return struct.pack(order + "IIII", sec, frac, len(frame), wirelen) + frame


def pcap_file(
    records: Iterable[PcapRecord], *, order: str = "<", nanos: bool = False, linktype: int = 1
) -> bytes:
    """A complete classic pcap file."""
    body = b"".join(pcap_record(s, f, fr, wl, order=order) for s, f, fr, wl in records)
    return pcap_header(order=order, nanos=nanos, linktype=linktype) + body


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(btype: int, body: bytes, *, order: str = "<") -> bytes:
    """A pcapng block: type, length, padded body, trailing length."""
    body = _pad(body)
    length = len(body) + 12
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(code: int, value: bytes, *, order: str = "<") -> bytes:
    """One pcapng option (code, length, padded value)."""
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def shb(*, order: str = "<") -> bytes:
    """A Section Header Block (version 1.0, unknown section length)."""
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order=order)


def idb(
    linktype: int,
    *,
    order: str = "<",
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    """An Interface Description Block, with optional if_tsresol / if_tsoffset options."""
    options = b""
    if tsresol is not None:
        options += option(9, bytes([tsresol]), order=order)
    if tsoffset is not None:
        options += option(14, struct.pack(order + "q", tsoffset), order=order)
    if options:
        options += option(0, b"", order=order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order=order)


def epb(
    ifid: int, ts_units: int, frame: bytes, wirelen: int | None = None, *, order: str = "<"
) -> bytes:
    """An Enhanced Packet Block; ``ts_units`` counts the interface's timestamp units."""
    head = struct.pack(
        order + "5I",
        ifid,
        ts_units >> 32,
        ts_units & 0xFFFFFFFF,
        len(frame),
        len(frame) if wirelen is None else wirelen,
    )
    return block(6, head + frame, order=order)


def obsolete_pb(ifid: int, ts_units: int, frame: bytes, *, order: str = "<") -> bytes:
    """An obsolete Packet Block (type 2)."""
    head = struct.pack(
        order + "HH4I", ifid, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(frame), len(frame)
    )
    return block(2, head + frame, order=order)


def spb(frame: bytes, wirelen: int | None = None, *, order: str = "<") -> bytes:
    """A Simple Packet Block (original length, then the data)."""
    head = struct.pack(order + "I", len(frame) if wirelen is None else wirelen)
    return block(3, head + frame, order=order)


def frame_of(index: int, size: int = 60) -> bytes:
    """A recognisable frame: its index in the first 4 bytes, then filler."""
    return struct.pack(">I", index) + bytes((index + i) & 0xFF for i in range(size - 4))
