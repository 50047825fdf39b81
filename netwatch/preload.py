"""Import, before the privilege drop, every module the daemon may import afterwards.

Public API: :func:`preload`, :data:`RUNTIME_MODULES`, :data:`CODECS`.

Started as root, the daemon drops to ``capture.user`` (default ``nobody``) once its sockets
and files are open (:mod:`netwatch.privileges`). From then on every import reads files as
that user, and a Python installed under /root (pyenv) or a virtualenv in an admin's home is
not readable by it: an import that happens only after the drop fails with
``ModuleNotFoundError`` (``No module named 'importlib.readers'`` when the GeoIP package of
the day loaded its data after the drop). So the daemon calls :func:`preload`, then warms up
its lazily loaded data (``Pipeline.warm_up``: the built-in GeoIP data set, unpacked once per
process with ``zstandard``, and netaddr's IEEE index), and only then
drops privileges. A module already in ``sys.modules`` is never read again, and a codec once
looked up stays in the codec registry's cache.

What is loaded:

* every module of the ``netwatch`` package (:func:`pkgutil.walk_packages`), except
  ``netwatch.__main__`` (it runs the command line), ``netwatch.testing`` (test helpers) and,
  unless ``optional=True`` (``capture.method: tshark``), the modules in
  :data:`OPTIONAL_MODULES`, which need an optional dependency (pyshark);
* :data:`RUNTIME_MODULES`: standard-library and third-party modules that libraries import
  lazily, on first use, not when they are themselves imported. Found empirically: the real
  daemon was run (replay with alerts, webhook / Alertmanager / Slack / syslog sinks against
  local receivers answering 429 with an HTTP-date ``Retry-After`` and 503, metrics scrapes
  with gzip and OpenMetrics, SIGHUP, SIGTERM) and ``sys.modules`` was compared with what
  importing the ``netwatch`` package alone loads. Each entry says why it is there:

  - ``importlib.readers``, ``importlib.resources.readers``, ``importlib.resources._itertools``:
    ``importlib.resources.files()`` imports them the first time a package's data is opened
    (netaddr's ``oui.txt`` / ``iab.txt`` which netaddr re-opens on
    every registry lookup, netwatch's seeds on reload);
  - ``_strptime``: ``datetime.strptime`` imports it on first use (the build date of the
    GeoIP data set and of the IEEE registry);
  - ``netaddr.eui.ieee``: netaddr imports its IEEE registry index on the first OUI lookup;
  - ``maxminddb`` (with the ``importlib.metadata`` its ``__init__`` imports): with the
    compiled GeoIP walk, :mod:`netwatch.enrich.geo` imports it only to probe a configured
    MaxMind file or to look up a text form ``ipaddress`` refuses (a reload, or later);
  - ``hmac`` and the ``cryptography`` modules of :data:`QUIC_CRYPTO`: the QUIC parser
    imports them for the first client Initial it decrypts (not at start-up);
  - ``sqlite3``: the destination baseline's store imports it when one is made (a replay
    without a state directory makes none);
  - ``hashlib`` (OpenSSL's ``_hashlib`` behind it, ~4 ms that a replay need not pay): the
    evidence store imports it to hash its first file, the pure-Python flow record for its
    first Community ID;
  - ``bcrypt`` (only when installed): the metrics server's basic auth imports it by name;
* :data:`CODECS`, looked up once so their ``encodings`` modules are loaded: ``idna`` (with
  ``stringprep`` and ``unicodedata``; the socket module and http.client encode host names
  with it), ``utf-8-sig`` (the config loader and seeds decode with it on reload),
  ``latin-1`` and ``ascii`` (HTTP header decoding, wire formats) and ``utf-8``.

Config read: none (the caller passes ``optional``).

Known limits: this covers imports, not data files. Data read after the drop must be readable
by the user, or loaded before it: the built-in GeoIP data and netaddr's index are loaded by
``Pipeline.warm_up``; netaddr itself re-opens ``oui.txt`` for each new vendor lookup (the
registry must be held in memory by :mod:`netwatch.enrich.macvendor` for that); a SIGHUP
reload re-reads the config, secret files, seeds and MaxMind files as the user (a failing
reload is logged and the running config kept; the built-in GeoIP data is kept open across
reloads). ``zstandard`` is imported by the warm-up, not here. A library that imports
something new on a path the empirical run did not take (a rare error path) can still fail
after the drop; the privilege drop warns when the standard library or netwatch is
unreadable by the user.
"""

from __future__ import annotations

import codecs
import importlib
import pkgutil
import sys
from collections.abc import Iterable, Iterator

import netwatch

__all__ = [
    "CODECS",
    "OPTIONAL_MODULES",
    "QUIC_CRYPTO",
    "RUNTIME_MODULES",
    "SKIPPED_PREFIXES",
    "preload",
]

#: Lazily imported modules that must be loaded before the drop (see the module docstring).
RUNTIME_MODULES: tuple[str, ...] = (
    "importlib.readers",
    "importlib.resources.readers",
    "importlib.resources._itertools",
    "_strptime",
    "netaddr.eui.ieee",
    "maxminddb",
    "sqlite3",
    "hashlib",
)
#: What :mod:`netwatch.deep.quic` imports when it first decrypts an Initial (the module
#: docstring): part of :data:`RUNTIME_MODULES`.
QUIC_CRYPTO: tuple[str, ...] = (
    "hmac",  # with hashlib and OpenSSL's _hashlib: the Initial keys' HKDF
    "cryptography.exceptions",
    "cryptography.hazmat.primitives.ciphers",
    "cryptography.hazmat.primitives.ciphers.aead",
)
RUNTIME_MODULES += QUIC_CRYPTO
#: Loaded when installed; skipped without a word otherwise (nothing can use them then).
IF_INSTALLED: tuple[str, ...] = ("bcrypt",)
#: Codecs looked up once, so no ``encodings`` module is imported after the drop.
CODECS: tuple[str, ...] = ("idna", "utf-8-sig", "utf-8", "latin-1", "ascii")
#: netwatch modules that need an optional dependency: loaded only with ``optional=True``.
OPTIONAL_MODULES: frozenset[str] = frozenset({"netwatch.capture.tshark"})
#: netwatch modules never loaded by the daemon.
SKIPPED_PREFIXES: tuple[str, ...] = ("netwatch.__main__", "netwatch.testing")


def netwatch_modules(*, optional: bool = False) -> Iterator[str]:
    """The names of the ``netwatch`` modules the daemon may import, each package first.

    Packages are imported to find their modules; a skipped package is not imported.
    """
    yield from _walk(netwatch.__path__, "netwatch.", optional)


def _walk(path: Iterable[str], prefix: str, optional: bool) -> Iterator[str]:
    for info in pkgutil.iter_modules(path, prefix):
        name = info.name
        if _skipped(name) or (name in OPTIONAL_MODULES and not optional):
            continue
        yield name
        if info.ispkg:
            package = importlib.import_module(name)
            yield from _walk(package.__path__, name + ".", optional)


def _skipped(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in SKIPPED_PREFIXES)


def preload(*, optional: bool = False) -> int:
    """Import everything the daemon may import after the privilege drop.

    ``optional``: also the netwatch modules that need optional dependencies (set it when
    ``capture.method`` is ``tshark``). Returns how many modules this call loaded (0 when
    called again). An ImportError of a netwatch module or of :data:`RUNTIME_MODULES`
    propagates: the installation is broken, and it is better found as root than later.
    """
    before = len(sys.modules)
    for name in netwatch_modules(optional=optional):
        importlib.import_module(name)
    for name in RUNTIME_MODULES:
        importlib.import_module(name)
    for name in IF_INSTALLED:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    for codec in CODECS:
        codecs.lookup(codec)
    return len(sys.modules) - before
