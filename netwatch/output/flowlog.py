"""The flow log: one JSON object per line, Zeek conn.log field names plus enrichment.

Shaped for log shippers (Vector, Fluent Bit, Filebeat): UTF-8, compact separators, one
record per ``\\n``-terminated line, keys in a stable order. ``reopen()`` supports
logrotate-style rotation. The daemon appends; ``replay`` starts the file afresh
(``truncate=True``).

Buffering policy (explicit): ``line_buffered=True`` writes every record as one whole line to
the file at once (the alert log: after a kill -9, every line logged is on disk);
otherwise records are buffered (the flow log) and the owner calls the cheap :meth:`flush`
periodically (the daemon: once a second). ``close()`` flushes, and closes the file even when
that flush fails (a full disk), then raises the flush's OSError.

Encoder: orjson where it writes exactly the standard library's text (``json.JSONEncoder``
with ``ensure_ascii=False``, compact separators, ``allow_nan=False``), else the standard
library's C encoder, built once. Per record:

- a record whose values are all plain ``str``, ``int``, ``float``, ``bool`` or None (a flow
  record) goes to orjson (about 2 µs a flow record, checks included, against 6 µs). orjson
  refuses lone surrogates, integers beyond 64 bits and non-string keys: those records take
  the standard encoder, which answers as before (text, or its own error);
- orjson writes floats as Python's ``repr`` does, except those under 1e-4 (``0.00001`` and
  ``1e-7`` for ``1e-05`` and ``1e-07``; a short flow's duration can be one), and NaN and
  infinities as ``null`` where the standard encoder raises. So the record's floats are
  looked at (where they are is remembered per record shape: the tuple of its value types,
  at most ``MAX_SHAPES`` shapes, the table cleared when full): zero, or from 1e-4 to the
  largest finite float, and orjson writes the record as is (with the compiled core loaded,
  ``_core.json_plain`` makes this check of a dict's values in one C call, the same answer
  without the shape table); otherwise the record is written
  with each float given as its ``repr`` (``orjson.Fragment``), and a NaN or infinity goes to
  the standard encoder (which raises ``ValueError``);
- any other record (nested containers, as in alerts; enums, subclasses, other objects) takes
  the standard encoder: orjson would write dataclasses, enums and datetimes where the
  standard encoder raises, and floats inside containers are not checked.

tests/output/test_flowlog.py compares the text with the standard encoder's (errors too) on
generated records (hypothesis), with edge floats, control characters, surrogates and big
integers. Files the writer opens itself are binary (orjson's UTF-8 is written as is); a
given text stream is written text.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from netwatch.core import plain_record_check

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# The C encoder ``JSONEncoder.encode`` builds afresh on every call, built once (about 1 µs a
# record less; the same bytes). No circular-reference check: records are trees.
_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_chunks: Any = (
    _C_ENCODER(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _C_ENCODER is not None
    else None
)
#: Value types orjson writes as the standard encoder does (floats checked apart).
_PLAIN = frozenset({str, int, float, bool, type(None)})
_LINE = orjson.OPT_APPEND_NEWLINE
#: Smallest float magnitude (other than zero) orjson writes as ``repr`` does.
_REPR_FROM = 1e-4
_MAX_FLOAT = sys.float_info.max
#: Record shapes (value types in order) -> positions of the floats, None: not plain.
_shapes: dict[tuple[type, ...], tuple[int, ...] | None] = {}
MAX_SHAPES = 256
shape_clears = 0  # how often the shape table was full and cleared
#: The compiled core's form of :func:`_kind` (``_core.json_plain``; None for anything but a
#: dict), or None without the core.
_plain = plain_record_check()


def _float_positions(types: tuple[type, ...]) -> tuple[int, ...] | None:
    """Where the floats of a record of these value types are; None when not all plain."""
    global shape_clears  # noqa: PLW0603 (a module-wide bounded table and its counter)
    if not set(types) <= _PLAIN:
        found = None
    else:
        found = tuple(i for i, t in enumerate(types) if t is float)
    if len(_shapes) >= MAX_SHAPES:
        _shapes.clear()
        shape_clears += 1
    _shapes[types] = found
    return found


def _dumps(record: Mapping[str, Any]) -> str:
    """One record as compact JSON text (``_ENCODER``'s text), the standard encoder's way."""
    if _chunks is None:  # an interpreter without the C accelerator
        return _ENCODER.encode(record)
    return "".join(_chunks(record, 0))


def _floats_as_repr(record: Mapping[str, Any]) -> bytes | str:
    """A plain record with floats written as ``repr`` writes them (orjson), or the standard
    encoder's line where a float is NaN or infinite (it raises), or orjson refuses it."""
    fixed: dict[str, Any] = {}
    for k, v in record.items():
        if type(v) is float:
            if not math.isfinite(v):
                return _dumps(record) + "\n"
            v = orjson.Fragment(repr(v))
        fixed[k] = v
    try:
        return orjson.dumps(fixed, option=_LINE)
    except orjson.JSONEncodeError:  # lone surrogates, big integers, non-string keys
        return _dumps(record) + "\n"


def _kind(record: Mapping[str, Any]) -> int:
    """How a record is written (``_core.json_plain`` answers the same for a dict, in C): 0
    by orjson as is, 1 with a float written as its ``repr`` (:func:`_floats_as_repr`), 2 by
    the standard encoder (a value that is not plain)."""
    values = record.values()
    types = tuple(map(type, values))
    floats = _shapes.get(types, ())
    if floats == () and types not in _shapes:
        floats = _float_positions(types)
    if floats is None:
        return 2
    if floats:
        listed = list(values)
        for i in floats:
            x = listed[i]
            if x and not _REPR_FROM <= abs(x) <= _MAX_FLOAT:  # NaN fails this test too
                return 1
    return 0


def encode_line(record: Mapping[str, Any]) -> bytes | str:
    """One record as one JSON line (``\\n``-terminated) with exactly the standard encoder's
    text: UTF-8 bytes from orjson, or text from the standard encoder."""
    kind = None if _plain is None else _plain(record)
    if kind is None:  # no compiled core, or not a dict
        kind = _kind(record)
    if kind == 0:
        try:
            return orjson.dumps(record, option=_LINE)
        except orjson.JSONEncodeError:  # lone surrogates, big integers, non-string keys
            return _dumps(record) + "\n"
    if kind == 1:
        return _floats_as_repr(record)
    return _dumps(record) + "\n"


class JsonLinesWriter:
    """Appends JSON records to a file (or a given text stream), one per line.

    ``atomic_lines``: for several processes appending to one file (capture workers): lines
    are collected and written with one ``os.write`` of whole lines on an ``O_APPEND``
    descriptor (at most ``ATOMIC_CHUNK`` bytes), which Linux does not interleave with the
    other writers' on a local file system.
    """

    ATOMIC_CHUNK = 1 << 16

    def __init__(
        self,
        path: Path | None = None,
        stream: IO[str] | None = None,
        *,
        truncate: bool = False,
        atomic_lines: bool = False,
        line_buffered: bool = False,
    ) -> None:
        if (path is None) == (stream is None):
            raise ValueError("give exactly one of path or stream")
        if atomic_lines and path is None:
            raise ValueError("atomic_lines needs a path")
        self.path = path
        self._mode = "w" if truncate else "a"
        self._atomic = atomic_lines
        self.line_buffered = line_buffered
        self._lines: list[bytes] = []
        self._pending = 0
        self._fd = -1
        #: A file the writer opened is binary; a given stream is text.
        self._binary = stream is None
        self._stream: IO[Any] = stream if stream is not None else self._open()
        self.records = 0
        #: A binary file written through its buffer (the flow log): :meth:`write` takes a
        #: plain record (``_core.json_plain`` answers 0) straight to orjson and the file.
        self._plain_fast = self._binary and not atomic_lines and not line_buffered

    def _open(self) -> IO[bytes]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._atomic:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o644)
        stream = self.path.open(self._mode + "b", buffering=1 << 16)
        self._mode = "a"  # a reopen after rotation appends to the new file
        return stream

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record."""
        if self._plain_fast and _plain is not None and _plain(record) == 0:
            # a flow record into a buffered file: encode_line's first case, inlined (one
            # Python frame less per record; the same bytes)
            try:
                data = orjson.dumps(record, option=_LINE)
            except orjson.JSONEncodeError:  # lone surrogates, big integers
                data = (_dumps(record) + "\n").encode()
            self._stream.write(data)
            self.records += 1
            return
        line = encode_line(record)
        if self._binary:
            data = line if isinstance(line, bytes) else line.encode()
            if self._atomic:
                if self._pending + len(data) > self.ATOMIC_CHUNK:
                    self.flush()
                self._lines.append(data)
                self._pending += len(data)
            else:
                self._stream.write(data)
        else:
            self._stream.write(line if isinstance(line, str) else line.decode())
        self.records += 1
        if self.line_buffered:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (atomic mode: one write of whole lines)."""
        if self._atomic and self._lines:
            data = b"".join(self._lines)
            self._lines.clear()
            self._pending = 0
            view = memoryview(data)
            while view:  # a short write only happens on a full disk
                view = view[os.write(self._fd, view) :]
        else:
            self._stream.flush()

    def reopen(self) -> None:
        """Close and reopen the file (after logrotate moved it)."""
        if self.path is not None:
            self._close_file()
            self._stream = self._open()

    def _close_file(self) -> None:
        try:
            self.flush()
        finally:
            try:
                self._stream.close()
            finally:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1

    def close(self) -> None:
        """Flush and close (a given stream is only flushed)."""
        if self.path is not None:
            self._close_file()
        else:
            self._stream.flush()
