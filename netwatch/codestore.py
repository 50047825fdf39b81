"""``python -m netwatch.codestore [--check]``: build (or check) ``codestore.marshal``, the
methods ``@dataclass`` writes for netwatch's classes, compiled ahead of time.

What the store is, and how a start uses it: :mod:`netwatch._codestore` (imported by
``netwatch/__init__.py``; the command is a module of its own so that running it does not
re-run the module the package imported already). The build imports every module of the
package (as :func:`netwatch.preload.preload` does), and the libraries in :data:`LAZY` that
netwatch imports only on some paths, in a fresh interpreter with the environment variable
``NETWATCH_CODESTORE=build``: every text ``dataclasses`` runs is then compiled and
recorded, none read from the store. Rebuild after changing a dataclass (a field,
its type or default, the decorator's arguments); ``--check`` exits 1 when the store is stale
(``tests/test_codestore.py`` fails then too). A stale store is never wrong, only slower.
Reads no config.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path
from types import CodeType

from netwatch._codestore import BUILD_ENV, FORMAT, STORE, header, read_store

#: Libraries with dataclasses that netwatch imports lazily, on paths a start may take:
#: maxminddb (``netwatch.enrich.geo``: the pure path, a configured file's probe).
LAZY = ("maxminddb",)
CHILD = f"""
import importlib, marshal, sys
from netwatch import _codestore
from netwatch.preload import netwatch_modules
for name in [*netwatch_modules(optional=False), *{LAZY!r}]:
    importlib.import_module(name)
sys.stdout.buffer.write(marshal.dumps(_codestore.recorded()))
"""


def build() -> dict[str, CodeType]:
    """Every text an import of each netwatch module makes ``dataclasses`` run, compiled
    (in a fresh interpreter, so that nothing is imported already)."""
    env = {**os.environ, BUILD_ENV: "build"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        check=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    recorded: dict[str, CodeType] = marshal.loads(done.stdout)
    return dict(sorted(recorded.items()))


def dump(entries: dict[str, CodeType]) -> bytes:
    """The store's bytes for ``entries``."""
    magic, optimize = header()
    return marshal.dumps({"format": FORMAT, "magic": magic, "optimize": optimize, "code": entries})


def stale() -> list[str]:
    """What in the store differs from building it now (empty: up to date)."""
    fresh = build()
    have = read_store()
    if not have:
        return [f"{STORE}: missing, unreadable, or made by another Python or format"]
    out = [f"missing: {_first_line(t)}" for t in fresh if t not in have]
    out += [f"not made by an import: {_first_line(t)}" for t in have if t not in fresh]
    out += [f"changed: {_first_line(t)}" for t in fresh if t in have and have[t] != fresh[t]]
    return out


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[1].strip() if len(lines) > 1 else text[:80]


def main(argv: list[str] | None = None) -> int:
    """``python -m netwatch.codestore [--check]``: rebuild the store (or check it)."""
    from netwatch.storecmd import store_command  # noqa: PLC0415 - the command only

    def rebuild() -> str:
        entries = build()
        data = dump(entries)
        STORE.write_bytes(data)
        return f"wrote {STORE} ({len(entries)} texts, {len(data)} bytes)"

    args = sys.argv[1:] if argv is None else argv
    return store_command("netwatch.codestore", args, stale, rebuild)


if __name__ == "__main__":
    raise SystemExit(main())
