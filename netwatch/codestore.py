"""``python -m netwatch.codestore [--check]``: build (or check) ``codestore.marshal``, the
methods ``@dataclass`` writes for netwatch's classes, compiled ahead of time, and the
regular expressions a start compiles (importing every module, replaying the demo capture).

What the store is, and how a start uses it: :mod:`netwatch._codestore` (imported by
``netwatch/__init__.py``; the command is a module of its own so that running it does not
re-run the module the package imported already). The build imports every module of the
package (as :func:`netwatch.preload.preload` does), and the libraries in :data:`LAZY` that
netwatch imports only on some paths, in a fresh interpreter with the environment variable
``NETWATCH_CODESTORE=build``: every text ``dataclasses`` runs is then compiled and
recorded, none read from the store. Rebuild after changing a dataclass (a field,
its type or default, the decorator's arguments) or a regular expression compiled at import
or in a replay's start; ``--check`` exits 1 when the store is stale
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
from typing import NamedTuple

from netwatch._codestore import (
    BUILD_ENV,
    FORMAT,
    STORE,
    RegexEntry,
    RegexKey,
    header,
    join_store,
    read_parts,
    read_stores,
    regex_header,
)

#: Libraries with dataclasses that netwatch imports lazily, on paths a start may take:
#: maxminddb (``netwatch.enrich.geo``: the pure path, a configured file's probe).
LAZY = ("maxminddb",)
#: The capture the build replays (shipped in the wheel): the regular expressions a replay
#: compiles at its start and at first use (the seeds', the parsers').
DEMO = Path(__file__).with_name("share") / "demo" / "camera-site-demo.pcap"
CHILD = f"""
import importlib, marshal, sys
from netwatch import _codestore
from netwatch.cli import main
main(["replay", "-qq", sys.argv[1]])
start = list(_codestore.recorded())
from netwatch.preload import netwatch_modules
for name in [*netwatch_modules(optional=False), *{LAZY!r}]:
    importlib.import_module(name)
found = (_codestore.recorded(), _codestore.recorded_regexes(), start)
sys.stdout.buffer.write(marshal.dumps(found))
"""

Regexes = dict[RegexKey, RegexEntry]


class Built(NamedTuple):
    """What :func:`build` found."""

    #: every text, compiled
    texts: dict[str, CodeType]
    #: every pattern compiled, by pattern and flags: what ``_sre.compile`` takes
    regexes: Regexes
    #: the texts a replay of :data:`DEMO` runs (imports included): unpacked at every start
    start: frozenset[str]


def build() -> Built:
    """Every text an import of each netwatch module makes ``dataclasses`` run, compiled
    (and which of them a replay of :data:`DEMO` runs), and every regular expression those
    imports and the replay compile (in a fresh interpreter, so that nothing is imported or
    compiled already)."""
    # PYTHONHASHSEED: a few library patterns are joined from sets (the email package's
    # header parser): one order, so that building again gives the same store
    # NETWATCH_PURE/NETWATCH_CORE: the store describes the default start (the compiled
    # core): the same store whatever the caller's environment
    env = {k: v for k, v in os.environ.items() if k not in ("NETWATCH_PURE", "NETWATCH_CORE")}
    env.update({BUILD_ENV: "build", "PYTHONHASHSEED": "0"})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(DEMO)],
        env=env,
        capture_output=True,
        check=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    recorded: tuple[dict[str, CodeType], Regexes, list[str]] = marshal.loads(done.stdout)
    texts, regexes, start = recorded
    return Built(
        dict(sorted(texts.items())),
        dict(sorted(regexes.items(), key=_regex_order)),
        frozenset(start),
    )


def _regex_order(item: tuple[RegexKey, RegexEntry]) -> tuple[bool, str | bytes, int]:
    (pattern, flags), _ = item
    return isinstance(pattern, bytes), pattern, flags


def dump(
    entries: dict[str, CodeType],
    regexes: Regexes | None = None,
    start: frozenset[str] | None = None,
) -> bytes:
    """The store's bytes for ``entries`` (those in ``start`` unpacked at every start, the
    others marshalled apart: all at every start when ``start`` is None) and ``regexes``."""
    first = {t: c for t, c in entries.items() if start is None or t in start}
    later = {t: c for t, c in entries.items() if t not in first}
    magic, optimize = header()
    doc = {
        "format": FORMAT,
        "magic": magic,
        "optimize": optimize,
        "code": first,
        "regex_header": regex_header(),
        "regex": regexes or {},
    }
    return join_store(marshal.dumps(doc), marshal.dumps(later) if later else b"")


def stale() -> list[str]:
    """What in the store differs from building it now (empty: up to date)."""
    fresh, fresh_regexes, start = build()
    have, have_regexes = read_stores()
    if not have:
        return [f"{STORE}: missing, unreadable, or made by another Python or format"]
    have_start = _codestore_first()
    out = [f"missing: {_first_line(t)}" for t in fresh if t not in have]
    out += [f"now run by a replay: {_first_line(t)}" for t in start - have_start if t in have]
    out += [f"no longer run by a replay: {_first_line(t)}" for t in have_start - start]
    out += [f"not made by an import: {_first_line(t)}" for t in have if t not in fresh]
    out += [f"changed: {_first_line(t)}" for t in fresh if t in have and have[t] != fresh[t]]
    if not have_regexes and fresh_regexes:
        return [*out, "regular expressions: none usable (made by another Python release?)"]
    out += [f"missing pattern: {k!r}" for k in fresh_regexes if k not in have_regexes]
    out += [f"pattern not compiled: {k!r}" for k in have_regexes if k not in fresh_regexes]
    out += [
        f"changed pattern: {k!r}"
        for k, v in fresh_regexes.items()
        if k in have_regexes and have_regexes[k] != v
    ]
    return out


def _codestore_first() -> frozenset[str]:
    """The texts the store unpacks at every start."""
    first, _later, _regexes = read_parts(STORE)
    return frozenset(first)


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[1].strip() if len(lines) > 1 else text[:80]


def main(argv: list[str] | None = None) -> int:
    """``python -m netwatch.codestore [--check]``: rebuild the store (or check it)."""
    from netwatch.storecmd import store_command  # noqa: PLC0415 - the command only

    def rebuild() -> str:
        entries, regexes, start = build()
        data = dump(entries, regexes, start)
        STORE.write_bytes(data)
        return (
            f"wrote {STORE} ({len(entries)} texts, {len(start)} of them run by a replay,"
            f" {len(regexes)} regular expressions, {len(data)} bytes)"
        )

    args = sys.argv[1:] if argv is None else argv
    return store_command("netwatch.codestore", args, stale, rebuild)


if __name__ == "__main__":
    raise SystemExit(main())
