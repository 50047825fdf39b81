"""Capture files: open a pcap / pcapng file (optionally gzip-compressed) and iterate its packets.

Public API: :func:`open_capture`, :class:`CaptureFile`, :func:`iter_captures`,
:class:`CaptureError`, :class:`ReadStats`. Every packet is the tuple
``(ts_seconds, linktype, wirelen, frame)``: wirelen is the original length on the wire
(``orig_len``), frame the captured bytes, linktype a plain int (see ``linktypes``).

Reads no configuration (``capture.files`` of the config is a list of paths handed to
:func:`iter_captures`). The format is detected by magic number, never by file name: classic
pcap with micro- or nanosecond timestamps in either byte order, pcapng, and gzip (1f 8b)
wrapping any of them.

Reading strategy: an uncompressed file is memory-mapped and walked in place (the only copy is
each frame's bytes; the kernel pages the file in, advised sequential). A gzip file is
decompressed as a stream, 1 MiB at a time, so memory stays bounded whatever the file size (a
block or record is at most 16 MiB); a file that cannot be mapped is streamed the same way.

Error policy: :func:`open_capture` raises :class:`CaptureError` for a missing or unreadable
file, an empty file, an unknown magic number, or a file too short for its header.
:meth:`CaptureFile.packets` never raises on file contents: damage ends or skips records and is
counted in :attr:`CaptureFile.stats` (see ``pcap`` and ``pcapng`` for the details); an I/O or
decompression error met while streaming ends the iteration, is logged and kept in
``stats.read_error``. A gzip stream cut short sets ``stats.truncated_tail``.

Standard input: the path ``-`` reads the capture from stdin (``tcpdump -w - | netwatch replay
-``), streamed like a compressed file; its first bytes are read once to detect the format and
served again to the walker. A pipe is read once: a second pass (``capture.loop``) finds it
spent (``stats.read_error``). Named pipes and other non-seekable paths are not supported:
the header is read at open time and every pass reads the file again from its start.

Known limits: a file truncated by another process while it is mapped kills the process with
SIGBUS (replay files that are still being written only by appending). Stats describe the
latest :meth:`CaptureFile.packets` pass and are complete once that iterator is exhausted or
closed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import sys
import weakref
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from netwatch.capture.pcap import (
    PCAP_HEADER_LEN,
    STOP,
    Buffer,
    PcapHeader,
    ReadStats,
    Record,
    Walk,
    walk_pcap,
)
from netwatch.capture.pcapng import PCAPNG_MAGIC, PcapngWalker, check_head

__all__ = [
    "CaptureError",
    "CaptureFile",
    "ReadStats",
    "Record",
    "add_problems",
    "iter_captures",
    "open_capture",
]

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around a deflate stream
_CHUNK = 1 << 20  # decompressed bytes per streamed chunk
_RAW_CHUNK = 1 << 18  # compressed bytes read at a time
_HEAD_LEN = 64  # bytes needed to detect the format
STDIN = "-"  # the path that names standard input

Walker = Callable[[Buffer, int, int, bool], Walk]


class _Readable(Protocol):
    """What the streaming reader needs of a file."""

    def read(self, size: int = -1, /) -> bytes: ...


class CaptureError(Exception):
    """A file that cannot be read as a capture; ``str()`` is ``"FILE: what is wrong"``."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = " ".join(reason.split())  # always one line
        super().__init__(f"{path}: {self.reason}")


@dataclass(slots=True)
class _Chunks:
    """The bytes of an open file in chunks, gunzipped when ``gzipped``; never raises."""

    file: _Readable
    gzipped: bool
    truncated: bool = False  # the gzip stream ended before its end marker
    error: str = ""  # I/O or decompression error that ended the stream early

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self.gzipped:
                yield from self._gunzip()
            else:
                yield from iter(partial(self.file.read, _CHUNK), b"")
        except OSError as exc:
            self.error = f"read error: {exc}"

    def _gunzip(self) -> Iterator[bytes]:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        data = b""
        while True:
            if not data:
                data = self.file.read(_RAW_CHUNK)
                if not data:
                    yield from self._finish(inflater)
                    return
            try:
                out = inflater.decompress(data, _CHUNK)
            except zlib.error as exc:
                self.error = f"corrupt gzip data ({exc})"
                return
            data = inflater.unconsumed_tail
            if out:
                yield out
            if inflater.eof:  # end of one gzip member: another may follow
                data = self._at_least(inflater.unused_data, len(_GZIP_MAGIC))
                if data[:2] != _GZIP_MAGIC:
                    if data:
                        log.debug("ignoring data after the end of the gzip stream")
                    return
                inflater = zlib.decompressobj(_GZIP_WBITS)

    def _at_least(self, data: bytes, size: int) -> bytes:
        """``data`` extended with raw bytes of the file until it is ``size`` long (or EOF)."""
        while len(data) < size:
            more = self.file.read(_RAW_CHUNK)
            if not more:
                break
            data += more
        return data

    def _finish(self, inflater: zlib._Decompress) -> Iterator[bytes]:
        try:
            tail = inflater.flush()
        except zlib.error as exc:
            self.error = f"corrupt gzip data ({exc})"
            return
        if tail:
            yield tail
        self.truncated = not inflater.eof


class _Rewound:
    """A stream read once whose first bytes are served twice: read while the format is
    detected (kept), then again from the start after :meth:`rewind` (a pipe cannot seek)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._kept = bytearray()
        self._pos = 0
        self._keeping = True
        self.name = "<stdin>"

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for a negative size)."""
        if self._pos < len(self._kept):
            end = len(self._kept) if size < 0 else min(len(self._kept), self._pos + size)
            out = bytes(self._kept[self._pos : end])
            self._pos = end
            if not self._keeping and self._pos == len(self._kept):
                self._kept = bytearray()  # served: release it
                self._pos = 0
            return out
        data = self._stream.read(size)
        if self._keeping:
            self._kept += data
            self._pos += len(data)
        return data

    def rewind(self, *, keep: bool = False) -> None:
        """Serve the kept bytes again, then the rest of the stream; keep what is read next
        only with ``keep`` (detection has more to read)."""
        self._pos = 0
        self._keeping = keep


def _read_head(file: _Readable) -> bytes:
    """The first ``_HEAD_LEN`` bytes (fewer only at end of file; a pipe delivers in pieces)."""
    head = b""
    while len(head) < _HEAD_LEN:
        more = file.read(_HEAD_LEN - len(head))
        if not more:
            break
        head += more
    return head


def _gunzip_head(file: _Readable) -> bytes:
    """The first decompressed bytes of a gzip file, enough to detect the format."""
    head = b""
    chunks = _Chunks(file, gzipped=True)
    for chunk in chunks:
        head += chunk
        if len(head) >= _HEAD_LEN:
            break
    if not head and chunks.error:
        raise ValueError(chunks.error)
    return head[:_HEAD_LEN]


def _detect(head: bytes) -> tuple[str, PcapHeader | None]:
    """(format name, pcap header or None for pcapng); ``ValueError`` if not a capture."""
    if not head:
        raise ValueError("empty file")
    if PcapHeader.is_magic(head):
        header = PcapHeader.parse(head)
        return header.format, header
    if head[:4] == PCAPNG_MAGIC:
        check_head(head)
        return "pcapng", None
    raise ValueError(f"not a pcap or pcapng file (magic 0x{head[:4].hex()})")


def _map(file: BinaryIO) -> mmap.mmap | None:
    """Map the file read-only, or None when it cannot be mapped (then it is streamed)."""
    try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        log.debug("cannot map %s (%s): streaming it", file.name, exc)
        return None
    if hasattr(mmap, "MADV_SEQUENTIAL"):
        with contextlib.suppress(OSError):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


class CaptureFile:
    """An open capture file; iterate :meth:`packets`, then read :attr:`stats`."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        compressed: bool,
        *,
        header: PcapHeader | None,
        mapped: Buffer | None,
        stream: _Rewound | None = None,
    ) -> None:
        self.path = path
        self.format = fmt  # "pcap" | "pcap-ns" | "pcapng"
        self.compressed = compressed
        self.stats = ReadStats()
        self._header = header
        self._mapped = mapped
        self._live: weakref.WeakSet[Generator[Record, None, object]] = weakref.WeakSet()
        self._closed = False
        self._stdin = stream  # standard input: read once, by the first pass

    def __repr__(self) -> str:
        gz = "+gzip" if self.compressed else ""
        return f"<CaptureFile {str(self.path)!r} {self.format}{gz} {self.stats}>"

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def packets(self) -> Iterator[Record]:
        """Iterate ``(ts_seconds, linktype, wirelen, frame)`` from the first record on.

        Each call starts a new pass and a new :attr:`stats`. Never raises on file contents;
        ``ValueError`` if the file was closed.
        """
        if self._closed:
            raise ValueError(f"{self.path}: capture file is closed")
        self.stats = stats = ReadStats()
        walker = self._walker(stats)
        start = PCAP_HEADER_LEN if self._header is not None else 0
        packets: Generator[Record, None, object]
        if self._mapped is not None:
            packets = walker(self._mapped, start, len(self._mapped), True)
        else:
            packets = self._stream(walker, start, stats)
        self._live.add(packets)
        return packets

    def mapped_pcap(self) -> MappedPcap | None:
        """The memory-mapped records of an uncompressed classic pcap, for the fused loop.

        Starts a new pass (fresh :attr:`stats`) like :meth:`packets`; None for pcapng,
        compressed or unmappable files, which go through :meth:`packets`.
        """
        if self._closed:
            raise ValueError(f"{self.path}: capture file is closed")
        if self._header is None or self._mapped is None:
            return None
        self.stats = ReadStats()
        end = len(self._mapped)
        return MappedPcap(self._mapped, PCAP_HEADER_LEN, end, self._header, self.stats)

    def close(self) -> None:
        """End any iteration in progress (its stats are kept) and release the file."""
        for packets in list(self._live):
            packets.close()
        if isinstance(self._mapped, mmap.mmap):
            self._mapped.close()
        self._mapped = None
        self._closed = True

    def _walker(self, stats: ReadStats) -> Walker:
        if self._header is None:
            return PcapngWalker(stats).walk
        return partial(walk_pcap, header=self._header, stats=stats)

    def _stream(self, walker: Walker, skip: int, stats: ReadStats) -> Generator[Record, None, None]:
        """Walk the file chunk by chunk, carrying an incomplete record over to the next one."""
        file: BinaryIO | _Rewound
        if self.path == Path(STDIN):
            if self._stdin is None:
                self._read_failed(stats, "standard input was read already (a pipe is read once)")
                return
            file, self._stdin = self._stdin, None
            file.rewind()
        else:
            try:
                file = self.path.open("rb")
            except OSError as exc:
                self._read_failed(stats, f"cannot open: {exc}")
                return
        with contextlib.nullcontext() if isinstance(file, _Rewound) else file:
            chunks = _Chunks(file, self.compressed)
            pending = b""
            for chunk in chunks:
                pending += chunk
                if len(pending) < skip:
                    continue
                off = yield from walker(pending, skip, len(pending), False)
                if off == STOP:
                    return
                pending, skip = pending[off:], 0
            yield from walker(pending, skip, len(pending), True)
            stats.truncated_tail |= chunks.truncated
            if chunks.error:
                self._read_failed(stats, chunks.error)

    def _read_failed(self, stats: ReadStats, reason: str) -> None:
        stats.read_error = reason
        log.warning("%s: %s; stopped reading", self.path, reason)


@dataclass(frozen=True, slots=True)
class MappedPcap:
    """A classic pcap's record area in memory: ``buf[start:end]``, with its header."""

    buf: Buffer
    start: int
    end: int
    header: PcapHeader
    stats: ReadStats

    def rest(self, off: int) -> Iterator[Record]:
        """The records from ``off`` on, through the general walker (odd records included)."""
        return walk_pcap(self.buf, off, self.end, True, header=self.header, stats=self.stats)


def open_capture(path: str | Path) -> CaptureFile:
    """Open a capture file, detecting its format by magic number; raises :class:`CaptureError`."""
    if str(path) == STDIN:
        return _open_stdin()
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = _read_head(file)
            gzipped = head[:2] == _GZIP_MAGIC
            if gzipped:
                file.seek(0)
                head = _gunzip_head(file)
            fmt, header = _detect(head)
            mapped = None if gzipped else _map(file)
    except OSError as exc:
        raise CaptureError(path, f"cannot read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise CaptureError(path, str(exc)) from exc
    return CaptureFile(path, fmt, gzipped, header=header, mapped=mapped)


def _open_stdin() -> CaptureFile:
    """Standard input as a capture (streamed; its format detected from its first bytes)."""
    path = Path(STDIN)
    stream = _Rewound(sys.stdin.buffer)
    try:
        head = _read_head(stream)
        gzipped = head[:2] == _GZIP_MAGIC
        if gzipped:
            stream.rewind(keep=True)  # the gzip header again, for the decompressor
            head = _gunzip_head(stream)
        fmt, header = _detect(head)
    except OSError as exc:
        raise CaptureError(path, f"cannot read standard input ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise CaptureError(path, f"standard input: {exc}") from exc
    return CaptureFile(path, fmt, gzipped, header=header, mapped=None, stream=stream)


def add_problems(problems: dict[str, int], stats: ReadStats) -> None:
    """Add one pass's file problems to ``problems`` (by kind: ``truncated_tail`` files,
    ``bad_blocks``, ``caplen_exceeds`` records), the way the summaries print them."""
    if stats.truncated_tail:
        problems["truncated_tail"] = problems.get("truncated_tail", 0) + 1
    if stats.bad_blocks:
        problems["bad_blocks"] = problems.get("bad_blocks", 0) + stats.bad_blocks
    if stats.caplen_exceeds:
        problems["caplen_exceeds"] = problems.get("caplen_exceeds", 0) + stats.caplen_exceeds


def iter_captures(
    paths: Sequence[str | Path], opened: list[CaptureFile] | None = None
) -> Iterator[Record]:
    """Chain the packets of several capture files, in order.

    Each file is opened when the previous one is exhausted (a :class:`CaptureError` surfaces
    then; call :func:`open_capture` on each path first to fail fast) and closed after its last
    packet. When ``opened`` is given, every :class:`CaptureFile` is appended to it as it is
    opened, so that its ``stats`` can be read afterwards.
    """
    return chain.from_iterable(_each_file(paths, opened))


def _each_file(
    paths: Iterable[str | Path], opened: list[CaptureFile] | None
) -> Iterator[Iterator[Record]]:
    for path in paths:
        with open_capture(path) as capture:
            if opened is not None:
                opened.append(capture)
            yield capture.packets()
