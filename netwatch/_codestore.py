"""The methods ``@dataclass`` writes for netwatch's classes, and the regular expressions a
start compiles, compiled ahead of time, so that a start does not compile them again (building
the store: :mod:`netwatch.codestore`).

For each class, :mod:`dataclasses` writes the source of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` and, for a frozen class, ``__setattr__`` and ``__delattr__``, and
runs it with ``exec``. Compiling those ~560 small sources is about 40 ms of the CPU of a
start (a replay of one packet costs ~0.26 CPU-s), for sources that only change with
netwatch's code. ``codestore.marshal`` (next to this module, shipped in the wheel) maps each
source text that importing netwatch's modules makes ``dataclasses`` run to its code object,
compiled as ``exec`` compiles it (:func:`compile_text`).

:func:`install` (run by ``netwatch/__init__.py``, before any netwatch module defines a
dataclass) gives the :mod:`dataclasses` module an ``exec`` of its own: a name in its globals,
found before the builtin. A text found in the store runs as its stored code object, with the
same globals and namespace; any other text is compiled, as before. The classes and their
methods are the same either way: a stored code object equals what compiling its text gives
(``tests/test_codestore.py`` compares every entry), and an entry answers only for exactly its
text. The store is used only when it was written by a Python with the same bytecode
(``importlib.util.MAGIC_NUMBER``) and optimisation level; otherwise, or when it is missing or
cannot be read, nothing is installed and ``dataclasses`` is left untouched. Only the
package's own store is read (it is as trusted as the package's code).

The texts are kept in two parts: those a replay runs (the build replays the demo capture
first; ~550 of ~810) are unmarshalled when the store is read, the others (the daemon's
sinks, metrics, inventory, report...) stay marshalled until the first text missing from the
first part (~5 M instructions less per replay; the daemon's preload unpacks them before its
privilege drop, as it imports every module).

A store made before a dataclass changed is never wrong, only slower: the texts it lacks are
compiled. With the environment variable ``NETWATCH_CODESTORE=build`` no store is read and
every text compiled is recorded (:func:`recorded`): that is how the command builds it.

Regular expressions, the same way: a start compiles ~60 patterns (the standard library's
modules at import: ``platform``, ``textwrap``, ``argparse``, ``json``, ``logging``...; the
seeds' patterns, the parsers', the seed-file headers at first use): ~30 M instructions of
parsing and code generation in Python (``re._parser``, ``re._compiler``), for an output that
depends only on the pattern, its flags and the Python release. The store also maps each
pattern (text or bytes) and flags that the build compiled (importing every module and
replaying the demo capture) to what ``re._compiler.compile`` hands ``_sre.compile``: the
flags with the inline ones, the code, the groups and their names (:func:`regex_entry`
computes them by the compiler's own steps). :func:`install` makes ``re._compiler.compile``
(what ``re.compile``, ``re.match``... call on a miss of ``re``'s cache) look there first: a
stored pattern is made by ``_sre.compile`` from its entry (the engine checks the code; an
entry it refuses is compiled instead), anything else is compiled as before. The patterns are
the same objects either way (``tests/test_codestore.py`` compares every entry's pattern with
the compiler's), and they are used only from a store made by exactly this Python release
and regular-expression engine (:func:`regex_header`), else compiled (the dataclass texts
may still be used). A pattern the store lacks is compiled; one it has is right for its key
whatever changed since, so a store is never wrong here either.

:mod:`dataclasses` imports :mod:`inspect` (and with it ``ast``, ``dis``, ``_ast``'s ~120
node classes: ~20 M instructions of a start) for one use: the text signature it gives a class
without a docstring. Imported from here first (``netwatch/__init__.py``), it finds a stand-in
module under that name while its own imports run (taken out of ``sys.modules`` right after,
so that any other ``import inspect`` gets the real one); the stand-in's first attribute read
imports the real :mod:`inspect` and puts it in ``dataclasses``' globals in its place. So a
class without a docstring still gets its signature, at the cost of the import then
(``tests/test_cli.py`` checks that a replay imports no ``inspect``: netwatch's dataclasses
have docstrings). When ``dataclasses`` or ``inspect`` is imported already, nothing of this.

Counters: :data:`stats` (``hits``, ``misses``: texts run from the store, texts compiled).
Reads no config.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import marshal
import mmap
import os
import sys
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any


def _import_dataclasses() -> ModuleType:
    """:mod:`dataclasses`, imported without :mod:`inspect` (module docstring)."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        import dataclasses  # noqa: PLC0415 - see the docstring

        return dataclasses
    stand_in = ModuleType("inspect", "netwatch._codestore's stand-in: the real one at first use")

    def first_use(name: str) -> Any:
        import inspect  # noqa: PLC0415 - the real module (the stand-in is out of sys.modules)

        vars(dataclasses)["inspect"] = inspect
        return getattr(inspect, name)

    vars(stand_in)["__getattr__"] = first_use
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: PLC0415 - see the docstring
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
    return dataclasses


dataclasses = _import_dataclasses()
# The regular-expression compiler's parts (private modules of the standard library: no
# type stubs).
_sre: Any = importlib.import_module("_sre")
_re_compiler: Any = importlib.import_module("re._compiler")
_re_parser: Any = importlib.import_module("re._parser")

STORE = Path(__file__).with_name("codestore.marshal")
FORMAT = 2  # the layout of the marshalled mapping (netwatch.codestore.dump)
BUILD_ENV = "NETWATCH_CODESTORE"  # "build": record every text, read no store

#: A regular expression's key: its pattern (text or bytes) and the flags given.
RegexKey = tuple[str | bytes, int]
#: What ``_sre.compile`` takes after the pattern: the flags (with the inline ones), the
#: compiled code, the number of groups, the group index and the groups' names.
RegexEntry = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]

#: Texts run from the store, and texts compiled; regular expressions made from the store,
#: and compiled.
stats = {"hits": 0, "misses": 0, "regex_hits": 0, "regex_misses": 0}
_code: dict[str, CodeType] = {}  # the store's entries (those unpacked)
#: The entries a replay does not run, still marshalled (until a text misses): a view of the
#: mapped store.
_later: bytes | memoryview = b""
_regex: dict[RegexKey, RegexEntry] = {}  # the store's regular expressions
_recording: dict[str, CodeType] | None = None  # every text compiled, while building
_recording_regex: dict[RegexKey, RegexEntry] | None = None  # every pattern, while building
_compile_regex = _re_compiler.compile  # what ``re`` calls to compile a pattern


def install() -> bool:
    """Give :mod:`dataclasses` the stored code and ``re`` the stored regular expressions
    (the module docstring); True when the store is in use, or when recording
    (``NETWATCH_CODESTORE=build``)."""
    global _recording, _recording_regex, _later  # noqa: PLW0603 - set once per process
    if os.environ.get(BUILD_ENV) == "build":
        _recording = {}
        _recording_regex = {}
    else:
        entries, later, regexes = read_parts(STORE)
        if not entries:
            return False
        _code.update(entries)
        _later = later
        _regex.update(regexes)
    vars(dataclasses)["exec"] = _exec
    if _regex or _recording_regex is not None:
        _re_compiler.compile = _stored_regex
    return True


def uninstall() -> None:
    """Leave :mod:`dataclasses` compiling every text again, and ``re`` every pattern."""
    vars(dataclasses).pop("exec", None)
    _re_compiler.compile = _compile_regex


def recorded() -> dict[str, CodeType]:
    """The texts compiled so far while recording (empty when not recording)."""
    return dict(_recording or {})


def recorded_regexes() -> dict[RegexKey, RegexEntry]:
    """The patterns compiled so far while recording (empty when not recording)."""
    return dict(_recording_regex or {})


def _stored_regex(p: Any, flags: int = 0) -> Any:
    """``re._compiler.compile`` as ``re`` calls it (a pattern and its flags): a stored
    pattern made from its stored compiled code; anything else compiled as before."""
    if type(p) in (str, bytes) and type(flags) is int:
        key = (p, flags)
        entry = _regex.get(key)
        if entry is not None:
            try:
                made = _sre.compile(p, *entry)
            except Exception:  # a damaged entry: compiled, as without a store
                pass
            else:
                stats["regex_hits"] += 1
                return made
        stats["regex_misses"] += 1
        if _recording_regex is not None and not flags & _re_compiler.SRE_FLAG_DEBUG:
            entry = regex_entry(p, flags)
            _recording_regex[key] = entry
            return _sre.compile(p, *entry)
    return _compile_regex(p, flags)


def regex_entry(pattern: str | bytes, flags: int) -> RegexEntry:
    """What ``re._compiler.compile(pattern, flags)`` hands ``_sre.compile`` after the pattern
    (the same steps: parse, generate the code, index the named groups)."""
    parsed = _re_parser.parse(pattern, flags)
    code = [int(op) for op in _re_compiler._code(parsed, flags)]
    state = parsed.state
    groupindex = dict(state.groupdict)
    indexgroup: list[str | None] = [None] * state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return int(flags | state.flags), code, state.groups - 1, groupindex, tuple(indexgroup)


def _exec(source: Any, /, *args: Any, **kwargs: Any) -> None:
    """``exec`` as :mod:`dataclasses` calls it (``exec(text, globals, namespace)``), a stored
    text run as its code object; the other arguments go to ``exec`` as they came."""
    if isinstance(source, str):
        code = _code.get(source)
        if code is None and _later:
            _unpack_later()
            code = _code.get(source)
        if code is None:
            stats["misses"] += 1
            code = compile_text(source)
            if _recording is not None:
                _recording[source] = code
        else:
            stats["hits"] += 1
        source = code
    builtins.exec(source, *args, **kwargs)


def compile_text(source: str) -> CodeType:
    """What ``exec(source)`` in :mod:`dataclasses` compiles (that module has no
    ``__future__`` imports, so none is inherited here either)."""
    code: CodeType = compile(source, "<string>", "exec", dont_inherit=True)
    return code


def header() -> tuple[bytes, int]:
    """What a store must have been made with: this Python's bytecode magic number and its
    optimisation level (``-O``)."""
    return importlib.util.MAGIC_NUMBER, sys.flags.optimize


def regex_header() -> tuple[int, int, int]:
    """What the store's regular expressions must have been made with: this exact Python
    (``sys.hexversion``: the compiler's output may change in any release) and the
    regular-expression engine's code format (``_sre.MAGIC``, ``_sre.CODESIZE``)."""
    return sys.hexversion, _sre.MAGIC, _sre.CODESIZE


def _unpack_later() -> None:
    """The entries a replay does not run, unpacked (at the first text that misses)."""
    global _later
    later, _later = _later, b""
    _code.update(_entries(later))


def read_store(path: Path = STORE) -> dict[str, CodeType]:
    """The store's entries; none when it is missing, unreadable, of another format, or made
    by another Python or at another optimisation level."""
    return read_stores(path)[0]


def read_stores(
    path: Path = STORE,
) -> tuple[dict[str, CodeType], dict[RegexKey, RegexEntry]]:
    """The store's entries (both parts) and its regular expressions; none when it is
    missing, unreadable, of another format, or made by another Python or at another
    optimisation level; no regular expressions when they were made by another Python
    release."""
    entries, later, regexes = read_parts(path)
    return ({**entries, **_entries(later)} if entries else {}), regexes


def join_store(doc: bytes, later: bytes) -> bytes:
    """A store file: the marshalled document (header, the entries a replay runs, the
    regular expressions) after its length (8 bytes, little-endian), then the marshalled
    entries a replay does not run (:func:`netwatch.codestore.dump`)."""
    return len(doc).to_bytes(8, "little") + doc + later


def read_parts(
    path: Path,
) -> tuple[dict[str, CodeType], bytes | memoryview, dict[RegexKey, RegexEntry]]:
    """The entries a replay runs, the others still marshalled, and the regular
    expressions (:func:`read_stores`). The file is memory-mapped, not read: its pages come
    from the page cache (the part not unmarshalled is never touched), where reading it
    copied ~1 MB into fresh memory (~300 page faults of a start)."""
    try:
        with open(path, "rb") as file:
            view = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        size = int.from_bytes(view[:8], "little")
        doc = marshal.loads(view[8 : 8 + size])
        later = view[8 + size :]
        magic, optimize = header()
        if (doc["format"], doc["magic"], doc["optimize"]) != (FORMAT, magic, optimize):
            return {}, b"", {}
        entries: dict[str, CodeType] = doc["code"]
        if not _valid(entries):
            return {}, b"", {}
        regexes: dict[RegexKey, RegexEntry] = doc["regex"]
        if tuple(doc["regex_header"]) != regex_header() or not isinstance(regexes, dict):
            regexes = {}
    except Exception:  # any failure: dataclasses and re compile, as without a store
        return {}, b"", {}
    return entries, later, regexes


def _entries(later: bytes | memoryview) -> dict[str, CodeType]:
    """The marshalled entries a replay does not run; none when they cannot be read."""
    try:
        entries: dict[str, CodeType] = marshal.loads(later) if later else {}
    except Exception:  # as a missing entry: compiled
        return {}
    return entries if _valid(entries) else {}


def _valid(entries: object) -> bool:
    """A mapping of texts to code objects."""
    return isinstance(entries, dict) and all(
        isinstance(k, str) and isinstance(v, CodeType) for k, v in entries.items()
    )
