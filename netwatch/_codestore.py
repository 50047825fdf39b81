"""The methods ``@dataclass`` writes for netwatch's classes, compiled ahead of time, so that a
start does not compile them again (building the store: :mod:`netwatch.codestore`).

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

A store made before a dataclass changed is never wrong, only slower: the texts it lacks are
compiled. With the environment variable ``NETWATCH_CODESTORE=build`` no store is read and
every text compiled is recorded (:func:`recorded`): that is how the command builds it.

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
import importlib.util
import marshal
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

STORE = Path(__file__).with_name("codestore.marshal")
FORMAT = 1  # the layout of the marshalled mapping (netwatch.codestore.dump)
BUILD_ENV = "NETWATCH_CODESTORE"  # "build": record every text, read no store

#: Texts run from the store, and texts compiled.
stats = {"hits": 0, "misses": 0}
_code: dict[str, CodeType] = {}  # the store's entries
_recording: dict[str, CodeType] | None = None  # every text compiled, while building


def install() -> bool:
    """Give :mod:`dataclasses` the stored code (the module docstring); True when the store is
    in use, or when recording (``NETWATCH_CODESTORE=build``)."""
    global _recording  # noqa: PLW0603 - set once per process
    if os.environ.get(BUILD_ENV) == "build":
        _recording = {}
    else:
        entries = read_store()
        if not entries:
            return False
        _code.update(entries)
    vars(dataclasses)["exec"] = _exec
    return True


def uninstall() -> None:
    """Leave :mod:`dataclasses` compiling every text again."""
    vars(dataclasses).pop("exec", None)


def recorded() -> dict[str, CodeType]:
    """The texts compiled so far while recording (empty when not recording)."""
    return dict(_recording or {})


def _exec(source: Any, /, *args: Any, **kwargs: Any) -> None:
    """``exec`` as :mod:`dataclasses` calls it (``exec(text, globals, namespace)``), a stored
    text run as its code object; the other arguments go to ``exec`` as they came."""
    if isinstance(source, str):
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


def read_store(path: Path = STORE) -> dict[str, CodeType]:
    """The store's entries; none when it is missing, unreadable, of another format, or made
    by another Python or at another optimisation level."""
    try:
        doc = marshal.loads(path.read_bytes())
        magic, optimize = header()
        if (doc["format"], doc["magic"], doc["optimize"]) != (FORMAT, magic, optimize):
            return {}
        entries: dict[str, CodeType] = doc["code"]
        if not all(isinstance(k, str) and isinstance(v, CodeType) for k, v in entries.items()):
            return {}
    except Exception:  # any failure: dataclasses compiles, as without a store
        return {}
    return entries
