"""Reading a MaxMind DB file's metadata and the records of its data section.

The compiled search-tree walk (``netwatch._mmdb.Tree``) gives the data-section offset of an
address's record; this module decodes the record found there, and the metadata that says
how the tree is laid out, following the MaxMind DB format specification (version 2): a
control byte (type in the top 3 bits, or 0 and an extended-type byte; size in the low 5
bits, or 29-31 and 1-3 more size bytes), pointers into the data section, UTF-8 strings,
doubles, floats, bytes, unsigned integers of up to 128 bits, signed 32-bit integers,
booleans, maps and arrays. Values come out as ``maxminddb`` gives them (str, float, bytes,
int, bool, dict, list), and the tests compare the two on MaxMind's test databases and on
the built-in data: with the compiled walk, ``netwatch.enrich.geo`` reads the files with
this module, so a start never imports ``maxminddb`` and the ``importlib.metadata`` it
loads (~20 ms); ``maxminddb`` stays the reader of the pure path and of text lookups.

A section keeps the strings pointers lead to (map keys, names shared by records; at most
``STRING_TARGETS``), so a record's first decode does not decode them again; a kept string
is charged to a decode's budget as if it were.

Error policy: bad data (a value running past the end of the buffer, an unknown type, a
pointer to a pointer, a double or float of the wrong size, an integer wider than its type,
invalid UTF-8, a map key that is not a string) raises ``MmdbDataError`` (a ValueError);
so do decodes that exceed the specification's suggested budgets (values, nesting depth and
string bytes per decode), which keeps a hostile file from making a decode costly.

Configuration read: none.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
METADATA_TAIL = 128 << 10  # the metadata starts in the file's last 128 KiB
SEPARATOR = 16  # zero bytes between the search tree and the data section
MAX_VALUES = 1 << 16  # values decoded per record
MAX_DEPTH = 512  # maps, arrays and pointers nested
MAX_PAYLOAD = 1 << 21  # string and bytes payload per record
STRING_TARGETS = 4096  # strings kept per section (a data section's keys are a few dozen)
_POINTER_ADD = (0, 2048, 526336, 0)  # added to a pointer, by its size field
_SIZE_ADD = (29, 285, 65821)  # for size fields 29, 30 and 31
_UINT_WIDTH = {5: 2, 6: 4, 9: 8, 10: 16}
_DOUBLE = struct.Struct(">d")
_FLOAT = struct.Struct(">f")


class MmdbDataError(ValueError):
    """The data or metadata section of a MaxMind DB file holds bad data."""


class Metadata(NamedTuple):
    """What a reader needs of a MaxMind DB file's metadata."""

    node_count: int
    record_size: int
    ip_version: int
    database_type: str
    build_epoch: int

    @property
    def tree_size(self) -> int:
        """Bytes of the search tree (the data section starts ``SEPARATOR`` bytes later)."""
        return self.node_count * self.record_size // 4


class _Budget:
    """What one decode may still spend."""

    __slots__ = ("payload", "values")

    def __init__(self) -> None:
        self.values = MAX_VALUES - 1
        self.payload = MAX_PAYLOAD


class Section:
    """Values of a buffer whose pointers count from ``base`` (the data section's start, or
    the metadata's start for the metadata)."""

    def __init__(self, buffer: Any, base: int) -> None:
        #: Anything indexable and sliceable as bytes (``bytes``, ``mmap``).
        self.buffer = buffer
        self.base = base
        #: Strings pointers lead to (map keys, names shared by records), by position, with
        #: their size in bytes: at most ``STRING_TARGETS``, then cleared.
        self._strings: dict[int, tuple[str, int]] = {}

    def record(self, offset: int) -> Any:
        """The value at ``offset`` from ``base`` (a data offset from the tree walk)."""
        return self.value_at(self.base + offset)

    def value_at(self, position: int) -> Any:
        """The value at ``position`` in the buffer."""
        if position < 0:
            raise MmdbDataError(f"a value at {position}, outside the file")
        return self._value(position, _Budget(), 0, False)[0]

    def _take(self, position: int, size: int) -> bytes:
        part: bytes = self.buffer[position : position + size]
        if len(part) != size:
            raise MmdbDataError(f"a value at {position} runs past the end of the file")
        return part

    def _value(self, at: int, budget: _Budget, depth: int, target: bool) -> tuple[Any, int]:
        """The value whose control byte is at ``at`` and where the next value starts;
        ``target``: this value is a pointer's (which may not be a pointer again)."""
        start = at
        try:
            ctrl = self.buffer[at]
        except IndexError:
            raise MmdbDataError(f"a value at {at} runs past the end of the file") from None
        at += 1
        kind = ctrl >> 5
        size = ctrl & 0x1F
        if kind == 1:
            if target:
                raise MmdbDataError(f"a pointer to a pointer at {at - 1}")
            if depth >= MAX_DEPTH:
                raise MmdbDataError("values nested too deep")
            width = (size >> 3) + 1
            pointer = int.from_bytes(self._take(at, width), "big")
            if width < 4:
                pointer |= (size & 7) << (8 * width)
            pointer += _POINTER_ADD[width - 1] + self.base
            known = self._strings.get(pointer)
            if known is not None:  # charged as if it were decoded again
                budget.payload -= known[1]
                if budget.payload < 0:
                    raise MmdbDataError("too many string bytes in one record")
                return known[0], at + width
            return self._value(pointer, budget, depth + 1, True)[0], at + width
        if kind == 0:
            kind = 7 + self._take(at, 1)[0]
            at += 1
            if kind < 8:
                raise MmdbDataError(f"extended type {kind} at {at - 2}")
        if size >= 29:
            width = size - 28
            size = _SIZE_ADD[width - 1] + int.from_bytes(self._take(at, width), "big")
            at += width
        if kind == 2:  # UTF-8 string (the commonest)
            budget.payload -= size
            if budget.payload < 0:
                raise MmdbDataError("too many string bytes in one record")
            end = at + size
            raw = self.buffer[at:end]
            if len(raw) != size:
                raise MmdbDataError(f"a value at {at} runs past the end of the file")
            text = raw.decode("utf-8")
            if target:  # a pointer's: map keys and shared names, kept
                if len(self._strings) >= STRING_TARGETS:
                    self._strings.clear()
                self._strings[start] = (text, size)
            return text, end
        if kind in {7, 11}:  # map, array
            budget.values -= size * 2 if kind == 7 else size
            if budget.values < 0:
                raise MmdbDataError("too many values in one record")
            if depth >= MAX_DEPTH:
                raise MmdbDataError("values nested too deep")
            if kind == 11:
                items = []
                for _ in range(size):
                    item, at = self._value(at, budget, depth + 1, False)
                    items.append(item)
                return items, at
            mapping: dict[str, Any] = {}
            for _ in range(size):
                key, at = self._value(at, budget, depth + 1, False)
                if not isinstance(key, str):
                    raise MmdbDataError(f"a map key is a {type(key).__name__}")
                mapping[key], at = self._value(at, budget, depth + 1, False)
            return mapping, at
        if kind == 4:  # bytes
            budget.payload -= size
            if budget.payload < 0:
                raise MmdbDataError("too many string bytes in one record")
            return self._take(at, size), at + size
        if kind in _UINT_WIDTH:
            if size > _UINT_WIDTH[kind]:
                raise MmdbDataError(f"a {size}-byte integer of type {kind} at {at}")
            return int.from_bytes(self._take(at, size), "big"), at + size
        if kind == 8:  # int32: fewer than 4 bytes are a positive number
            if size > 4:
                raise MmdbDataError(f"a {size}-byte int32 at {at}")
            raw = self._take(at, size).rjust(4, b"\0")
            return int.from_bytes(raw, "big", signed=True), at + size
        if kind in {3, 15}:  # double, float
            packer = _DOUBLE if kind == 3 else _FLOAT
            if size != packer.size:
                raise MmdbDataError(f"a {size}-byte {'double' if kind == 3 else 'float'} at {at}")
            return packer.unpack(self._take(at, size))[0], at + size
        if kind == 14:
            return size != 0, at
        raise MmdbDataError(f"unknown data type {kind} at {at}")


def read_metadata(buffer: Any) -> Metadata:
    """The metadata of the MaxMind DB file in ``buffer`` (found after the last marker in
    its last 128 KiB), checked against the buffer's size; MmdbDataError when it is missing,
    bad or does not fit."""
    size = len(buffer)
    start = buffer.rfind(METADATA_MARKER, max(0, size - METADATA_TAIL))
    if start < 0:
        raise MmdbDataError("no MaxMind DB metadata marker: not a MaxMind DB file")
    start += len(METADATA_MARKER)
    fields = Section(buffer, start).value_at(start)
    if not isinstance(fields, dict):
        raise MmdbDataError(f"the metadata is a {type(fields).__name__}, not a map")
    for name, kind in (
        ("node_count", int),
        ("record_size", int),
        ("ip_version", int),
        ("database_type", str),
        ("build_epoch", int),
    ):
        value = fields.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MmdbDataError(f"the metadata's {name} is missing or not a {kind.__name__}")
    metadata = Metadata(
        fields["node_count"],
        fields["record_size"],
        fields["ip_version"],
        fields["database_type"],
        fields["build_epoch"],
    )
    if metadata.record_size not in (24, 28, 32):
        raise MmdbDataError(f"unknown record size {metadata.record_size}")
    if metadata.ip_version not in (4, 6):
        raise MmdbDataError(f"unknown IP version {metadata.ip_version}")
    if metadata.tree_size + SEPARATOR > size:
        raise MmdbDataError("the search tree runs past the end of the file")
    return metadata
