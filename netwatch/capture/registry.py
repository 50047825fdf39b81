"""Which capture source the config asks for, built through the source registry.

:data:`BUILTIN_SOURCES` names each built-in kind and the module that defines it; a module is
imported only when its kind is asked for, so pyshark is loaded for ``capture.method:
tshark`` alone. :func:`build_source` takes the kind from the config (:func:`source_kind`:
``file`` when ``capture.files`` is set, else ``capture.method``), imports its module, and
lets the class registered under that kind (:data:`~netwatch.capture.source.SOURCES`) build
itself from the config. Nothing is opened: :meth:`~netwatch.capture.source.Source.open`
does that, before the privilege drop.

Config read: ``capture.files``, ``capture.method`` here; the rest by each source.
Known limit: the kind is chosen by config keys, not by asking each class (that would import
every source module, pyshark included).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.capture.source import SOURCES, Source

if TYPE_CHECKING:
    from netwatch.config import Config


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A built-in capture source: its kind and the module whose class registers it."""

    kind: str
    module: str


BUILTIN_SOURCES: tuple[SourceEntry, ...] = (
    SourceEntry("file", "netwatch.capture.source"),
    SourceEntry("afpacket", "netwatch.capture.live"),
    SourceEntry("tshark", "netwatch.capture.tshark"),
)

#: Modules of :mod:`netwatch.capture` that define no source (the walk test allows these).
HELPER_MODULES = frozenset(
    {"", "afpacket", "bpf", "files", "linktypes", "pcap", "pcapng", "registry"}
)

_BY_KIND = {entry.kind: entry for entry in BUILTIN_SOURCES}


class UnknownSourceError(ValueError):
    """The config names a capture source kind that is not built in."""


def source_kind(cfg: Config) -> str:
    """``file`` when the config lists capture files (they win), else ``capture.method``."""
    return "file" if cfg.capture.files else cfg.capture.method


def source_class(kind: str) -> type[Source]:
    """The class registered for a built-in ``kind`` (its module imported on first use)."""
    entry = _BY_KIND.get(kind)
    if entry is None:
        raise UnknownSourceError(f"capture: unknown source {kind!r}")
    importlib.import_module(entry.module)
    cls = SOURCES.get(kind)
    if cls is None or cls.__module__ != entry.module:
        raise UnknownSourceError(f"capture: {entry.module} does not define the {kind!r} source")
    return cls


def build_source(cfg: Config) -> Source:
    """The capture source the config asks for, not yet opened.

    Raises BpfError (the filter does not compile) or RingError (an interface does not
    exist) for ``afpacket``, ValueError for an invalid tshark interface or filter: all
    config errors (exit 2).
    """
    return source_class(source_kind(cfg)).from_config(cfg)
