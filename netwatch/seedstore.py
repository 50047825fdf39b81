"""The seed files parsed ahead of time, so that a start does not parse their YAML and TSV.

Parsing and validating ``seeds/`` (:mod:`netwatch.signatures.loader`: YAML composed into
nodes with line numbers, every value checked, frozen dataclasses built) costs about 40 ms of
CPU at every start, for files that only change with a netwatch release. ``seedstore.pickle``
(next to this module, shipped in the wheel) holds what the seed loaders returned for the
package's seed files. A loader decorated with :func:`stored` looks there first:

- an entry is keyed by the loader, its arguments and the BLAKE2b-256 digest of the file's
  bytes (BLAKE2b is built into CPython; SHA-256 would load OpenSSL, ~4 ms of a start), so it
  answers only for exactly the bytes it was made from, wherever the file lies; a seed file
  edited since (or any other file) is parsed and validated as before;
- each entry records the field names of every class in it; when a class has different fields
  now (the code changed, the store was not rebuilt) the entry is not used, nor is a store of
  another format or one that cannot be read or unpickled: the seeds are then parsed, which is
  always right;
- each entry is unpickled when its loader first asks for it (the classes in it are then
  imported already) and kept for the process: the next load of the same file is the same
  (immutable) value. A slotted dataclass instance is stored as its class and its field
  values, and rebuilt by setting its slots (:func:`_rebuild`): the ``__setstate__`` that
  ``dataclasses`` gives frozen slotted classes walks ``fields()`` for every object, and the
  seeds hold ~2,500 of them. A tuple of many instances of one such class (the OUI table's
  2,115, the endpoints, the fingerprints) is stored as its class and its field values column
  by column, and rebuilt with the loops in C (:func:`_rebuild_rows`: ~20 M instructions
  less per start than a ``_rebuild`` call per instance).

Only this package's own store is read (it is as trusted as the package's code); a seeds
folder passed by a caller is read as text. Rebuild the store after changing a seed file or
a seed class: ``python -m netwatch.seedstore`` (``--check`` exits 1 when it is stale;
``tests/test_seedstore.py`` fails then too). What it holds is what :data:`START_UP` loads:
``Signatures.load()`` and the public resolvers, from the default seeds folder.

Counters: :data:`stats` (``hits``, ``misses``: loads answered from the store or parsed).
Reads no config.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import pickle
import sys
from _blake2 import blake2b
from collections import deque
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from types import MemberDescriptorType
from typing import Any, Concatenate, ParamSpec, TypeVar

STORE = Path(__file__).with_name("seedstore.pickle")
FORMAT = 3  # the pickled mapping below (2: BLAKE2b keys, _rebuild; 3: _rebuild_rows tuples)
#: A tuple of at least this many instances of one slotted dataclass (the OUI table's 2,115,
#: the endpoints, the fingerprints) is stored column by column (:func:`_rebuild_rows`).
ROWS_MIN = 16

P = ParamSpec("P")
T = TypeVar("T")
Key = tuple[str, str, str]  # loader, its arguments (repr), BLAKE2b-256 of the file
Fields = dict[str, tuple[str, ...]]  # "module:class" -> its dataclass fields
Entry = tuple[Fields, bytes]  # the classes in a value, and the value pickled

#: Loads answered from the store, and loads parsed.
stats = {"hits": 0, "misses": 0}
_entries: dict[Key, Entry] | None = None  # the store, read on first use
_values: dict[Key, Any] = {}  # entries unpickled so far
_recorded: dict[Key, Any] | None = None  # what loads return while ``build`` runs


def stored(
    kind: str,
) -> Callable[[Callable[Concatenate[Path, P], T]], Callable[Concatenate[Path, P], T]]:
    """Decorate a seed loader ``load(path, *args)``: answer from the store when it holds
    this loader (``kind``), these arguments and these file bytes; else parse."""

    def decorate(load: Callable[Concatenate[Path, P], T]) -> Callable[Concatenate[Path, P], T]:
        @functools.wraps(load)
        def stored_load(path: Path, /, *args: P.args, **kwargs: P.kwargs) -> T:
            key = _key(kind, path, args, kwargs)
            if key is not None and _recorded is None:
                found, hit = _lookup(key)
                if found:
                    stats["hits"] += 1
                    value: T = hit
                    return value
            stats["misses"] += 1
            parsed = load(path, *args, **kwargs)
            if key is not None and _recorded is not None:
                _recorded[key] = parsed
            return parsed

        return stored_load

    return decorate


def _key(kind: str, path: Path, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Key | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None  # the loader reports it
    named = [_arg(a) for a in args] + [f"{k}={_arg(v)}" for k, v in sorted(kwargs.items())]
    return kind, ", ".join(named), digest(data)


def digest(data: bytes) -> str:
    """The key of a file's bytes: their BLAKE2b digest of 32 bytes, as hex."""
    return blake2b(data, digest_size=32).hexdigest()


def _arg(value: Any) -> str:
    """A loader argument as text: a class by its module and name, anything else by repr."""
    if isinstance(value, type):
        return f"{value.__module__}:{value.__qualname__}"
    return repr(value)


def _lookup(key: Key) -> tuple[bool, Any]:
    """(True, the stored value) when the store holds ``key`` for today's classes."""
    if key in _values:
        return True, _values[key]
    entries = _entries if _entries is not None else _read_store()
    entry = entries.get(key)
    if entry is None:
        return False, None
    try:
        classes, blob = entry
        if not _current(classes):
            return False, None
        value = _values[key] = pickle.loads(blob)
    except Exception:  # any failure: parse the file instead
        return False, None
    return True, value


def _read_store() -> dict[Key, Entry]:
    """The store's entries (still pickled); none when it is missing, unreadable or of
    another format."""
    global _entries  # noqa: PLW0603 - read once per process
    try:
        doc = pickle.loads(STORE.read_bytes())
        entries = doc["entries"] if doc.get("format") == FORMAT else {}
    except Exception:  # any failure: parse the seeds instead
        entries = {}
    _entries = entries
    return entries


def _current(classes: Fields) -> bool:
    """Each class has the fields it had when the store was made."""
    for name, fields in classes.items():
        module, _, qualname = name.partition(":")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if _fields(cls) != fields:
            return False
    return True


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _classes(value: Any, found: Fields) -> None:
    """The dataclasses in ``value`` (tuples of entries, nested), with their field names."""
    if isinstance(value, tuple | list):
        for item in value:
            _classes(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        found[_arg(cls)] = _fields(cls)
        for f in dataclasses.fields(value):
            _classes(getattr(value, f.name), found)


def _dumps(value: Any) -> bytes:
    """``value`` pickled, each slotted dataclass instance as ``_rebuild(class, values)``, and
    a tuple of :data:`ROWS_MIN` or more instances of one such class as
    ``_rebuild_rows(class, count, columns)``."""
    out = io.BytesIO()
    _Pickler(out, protocol=5).dump(_Rows.of(value) or value)
    return out.getvalue()


class _Rows:
    """A tuple of instances of one slotted dataclass, pickled as its class, its length and
    its field values column by column (unpickled by :func:`_rebuild_rows`)."""

    def __init__(self, cls: type, items: tuple[Any, ...]) -> None:
        self.cls = cls
        self.items = items

    @classmethod
    def of(cls, value: Any) -> _Rows | None:
        """``value`` as rows when it is a tuple of :data:`ROWS_MIN` or more instances of
        one slotted dataclass; else None."""
        if type(value) is not tuple or len(value) < ROWS_MIN:
            return None
        kind = type(value[0])
        if not dataclasses.is_dataclass(kind) or _slot_setters(kind) is None:
            return None
        if any(type(item) is not kind for item in value):
            return None
        return cls(kind, value)

    def __reduce__(self) -> tuple[Any, ...]:
        columns = tuple(
            _shared(tuple(getattr(item, name) for item in self.items)) for name in _fields(self.cls)
        )
        return _rebuild_rows, (self.cls, len(self.items), columns)


def _shared(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """``column`` with equal texts (and bytes) as one object each, which the pickle then
    writes once and refers to (the OUI table's vendor, registrant, source and confidence
    repeat: ~8,000 fewer strings made per start)."""
    seen: dict[Any, Any] = {}
    return tuple(
        seen.setdefault(value, value) if type(value) in (str, bytes) else value for value in column
    )


def _rebuild_rows(cls: type[T], count: int, columns: tuple[tuple[Any, ...], ...]) -> tuple[T, ...]:
    """``count`` instances of the slotted dataclass ``cls``, field values given column by
    column (in field order), made as :func:`_rebuild` makes one, with the loops in C (a
    Python call per instance was ~1 µs of the OUI table's 2,115)."""
    setters = _slot_setters(cls)
    if (
        setters is None
        or len(setters) != len(columns)
        or any(len(column) != count for column in columns)
    ):
        raise pickle.UnpicklingError(f"{cls.__qualname__}: not the class that was stored")
    made: list[T] = list(map(object.__new__, repeat(cls, count)))
    for setter, column in zip(setters, columns, strict=True):
        deque(map(setter, made, column), maxlen=0)  # setter(instance, value) for each
    return tuple(made)


class _Pickler(pickle.Pickler):
    """A pickler writing instances of slotted dataclasses as their class and field values."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if isinstance(obj, type) or not dataclasses.is_dataclass(obj):
            return NotImplemented
        names = _fields(cls)
        if _slot_setters(cls) is None:
            return NotImplemented  # not slotted: pickled as usual
        return _rebuild, (cls, tuple(getattr(obj, name) for name in names))


def _rebuild(cls: type[T], values: tuple[Any, ...]) -> T:
    """An instance of the slotted dataclass ``cls`` with these field values (in field
    order), made without ``__init__`` (the values were checked when the store was built)."""
    setters = _slot_setters(cls)
    if setters is None or len(setters) != len(values):
        raise pickle.UnpicklingError(f"{cls.__qualname__}: not the class that was stored")
    obj: T = object.__new__(cls)
    for setter, value in zip(setters, values, strict=True):
        setter(obj, value)
    return obj


Setters = tuple[Callable[[Any, Any], None], ...]
_setters: dict[type, Setters | None] = {}  # per class: its field slots' setters


def _slot_setters(cls: type) -> Setters | None:
    """The setters of ``cls``'s field slots, in field order; None unless every field is a
    slot and every slot a field."""
    if cls in _setters:
        return _setters[cls]
    names = _fields(cls)
    slots = [cls.__dict__.get(name) for name in names]
    setters: Setters | None = None
    if set(cls.__dict__.get("__slots__", ())) == set(names):
        descriptors = [s for s in slots if isinstance(s, MemberDescriptorType)]
        if len(descriptors) == len(names):
            setters = tuple(d.__set__ for d in descriptors)
    _setters[cls] = setters
    return setters


def _start_up_loads() -> None:
    """What a start loads from the default seeds folder (:data:`START_UP`)."""
    from netwatch.detect.resolvers import load_public_resolvers  # noqa: PLC0415
    from netwatch.signatures.model import Signatures  # noqa: PLC0415

    Signatures.load()
    load_public_resolvers()


#: Run by :func:`build` with every load recorded.
START_UP: Callable[[], None] = _start_up_loads


def build() -> bytes:
    """Parse the default seeds as a start does, and return the store of what was loaded."""
    global _recorded  # noqa: PLW0603 - the loaders record while this runs
    _recorded = {}
    try:
        START_UP()
        entries = _recorded
    finally:
        _recorded = None
    stored: dict[Key, Entry] = {}
    for key, value in entries.items():
        classes: Fields = {}
        _classes(value, classes)
        stored[key] = dict(sorted(classes.items())), _dumps(value)
    return pickle.dumps({"format": FORMAT, "entries": stored}, protocol=5)


def stale() -> list[str]:
    """What in the store differs from parsing the default seeds now (empty: up to date)."""
    fresh: dict[Key, Entry] = pickle.loads(build())["entries"]
    try:
        doc = pickle.loads(STORE.read_bytes())
    except (OSError, pickle.UnpicklingError) as exc:
        return [f"{STORE}: unreadable: {exc}"]
    if doc.get("format") != FORMAT:
        return [f"{STORE}: format {doc.get('format')}, not {FORMAT}"]
    have: dict[Key, Entry] = doc["entries"]
    out = [f"missing: {k[0]}({k[1]}) for digest {k[2][:12]}" for k in fresh if k not in have]
    for key, (classes, blob) in fresh.items():
        if key not in have:
            continue
        old_classes, old_blob = have[key]
        if old_classes != classes or pickle.loads(old_blob) != pickle.loads(blob):
            out.append(f"changed: {key[0]}({key[1]})")
    out += [f"not loaded at start: {k[0]}({k[1]})" for k in have if k not in fresh]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m netwatch.seedstore [--check]``: rebuild the store (or check it)."""
    from netwatch.storecmd import store_command  # noqa: PLC0415 - the command only

    def rebuild() -> str:
        data = build()
        STORE.write_bytes(data)
        return f"wrote {STORE} ({len(data)} bytes)"

    args = sys.argv[1:] if argv is None else argv
    return store_command("netwatch.seedstore", args, stale, rebuild)


if __name__ == "__main__":
    # the loaders record into the imported module, not into this __main__ copy
    import importlib as _importlib

    raise SystemExit(_importlib.import_module("netwatch.seedstore").main())
