"""GeoIP enrichment: country, AS number and AS organisation of a public peer address.

Backends (``GeoBackend``), chosen by ``geo_from_settings``:
- ``MmdbGeo``: MaxMind DB files read with ``geoip2`` (GeoIP2/GeoLite2 Country, City or
  Enterprise for the country; GeoLite2-ASN or GeoIP2-ISP for the AS). Reports the
  geolocated ``country`` (where the address is used), falling back to ``registered_country``
  (where the block is registered) when there is none, except for anycast networks, which
  get no country.
- ``BuiltinGeo``: the GeoLite2 Country+ASN snapshot bundled in the ``geoip2fast`` package
  (no download). It has no AS numbers, so ``asn`` is always None. Loaded on first use.
- ``NullGeo``: no data at all.

``CachedGeo`` sits in front of a backend: it never looks up an address the
``AddressClassifier`` calls non-public and caches answers per packed address.

Configuration read (through ``geo_from_settings``): the country/ASN/city database paths and
whether the built-in data may be used; ``age_warning`` takes the configured maximum age.

Error policy: opening a missing, corrupt or wrong-type database raises ``GeoDatabaseError``
(one line naming the file). A lookup never raises: corrupt data found later is logged once
per file, counted in ``errors`` and answered with None fields for that file.

Known limits: the open-time integrity probe reads only a sample of the file (the first
records of the tree and one address per IPv4 /8), so corruption elsewhere is only found at
lookup time. GeoIP data is wrong for some ranges and goes stale; see ``age_warning``.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import socket
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Protocol

import geoip2.database
import geoip2.errors
import maxminddb

from netwatch.enrich.addrclass import AddressClassifier, embedded_ipv4, ip_text

log = logging.getLogger(__name__)

DEFAULT_CACHE_ENTRIES = 65_536
PROBE_RECORDS = 64  # records of the tree decoded when a database is opened
BUILTIN_DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"
BUILTIN_LICENCE = "GeoLite2 data by MaxMind (CC BY-SA 4.0) via geoip2fast (MIT)"
MMDB_LICENCE = "as licensed by the database publisher (MaxMind GeoIP2 licence or GeoLite EULA)"
_COUNTRY_KINDS = ("Enterprise", "City", "Country")
_ASN_KINDS = ("GeoLite2-ASN", "GeoIP2-ISP")
_SOURCE_DATE = re.compile(r"(\d{8})$")

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


def _open_reader(
    path: Path, kinds: tuple[str, ...], role: str, verify: bool
) -> geoip2.database.Reader:
    try:
        if verify:
            _probe(path)
        reader = geoip2.database.Reader(str(path))
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
    """One open database file and the geoip2 method that reads it."""

    def __init__(self, path: Path, kinds: tuple[str, ...], role: str, verify: bool) -> None:
        self.path = path
        self.reader = _open_reader(path, kinds, role, verify)
        metadata = self.reader.metadata()
        self.db_type: str = metadata.database_type
        self.ipv6 = metadata.ip_version == 6
        self.build_date = datetime.fromtimestamp(metadata.build_epoch, UTC).date()
        kind = next(k for k in kinds if k in self.db_type)
        method_names = {
            "Enterprise": "enterprise",
            "City": "city",
            "Country": "country",
            "GeoLite2-ASN": "asn",
            "GeoIP2-ISP": "isp",
        }
        self.method = getattr(self.reader, method_names[kind])
        self.failed_once = False

    def get(self, ip: str) -> Any:
        """The geoip2 model for ``ip``, or None when absent (raises on corrupt data)."""
        if not self.ipv6 and ":" in ip:
            return None
        try:
            return self.method(ip)
        except geoip2.errors.AddressNotFoundError:
            return None


def _country_of(model: Any) -> str | None:
    code: str | None = model.country.iso_code
    if code:
        return code
    if model.traits.is_anycast:
        return None
    registered: str | None = model.registered_country.iso_code
    return registered or None


def _asn_of(model: Any) -> tuple[int | None, str | None]:
    number: int | None = model.autonomous_system_number
    org: str | None = model.autonomous_system_organization or getattr(model, "isp", None)
    return number, org or None


class MmdbGeo:
    """GeoIP from MaxMind DB files (geoip2 5.x); at least one path should be given.

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
            model = self._safe_get(source, ip_text)
            if model is not None:
                cc = _country_of(model)
                break
        asn, org = None, None
        if self._asn is not None:
            model = self._safe_get(self._asn, ip_text)
            if model is not None:
                asn, org = _asn_of(model)
        if cc is None and asn is None and org is None:
            return GEO_NONE
        return GeoInfo(cc, asn, org)

    def _safe_get(self, source: _MmdbSource, ip: str) -> Any:
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


def _builtin_path() -> Path:
    return Path(str(resources.files("geoip2fast").joinpath(BUILTIN_DATA_FILE)))


def _import_geoip2fast() -> Any:
    """Import geoip2fast, undoing the environment variables it sets at import time."""
    saved = {key: os.environ.get(key) for key in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    try:
        import geoip2fast  # noqa: PLC0415 - lazy: the package is only needed for BuiltinGeo
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return geoip2fast


def parse_source_date(source_info: str) -> date | None:
    """The build date at the end of a geoip2fast ``source_info`` ('...-en-20240618')."""
    match = _SOURCE_DATE.search(source_info.strip())
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Tables:
    """geoip2fast's loaded tables (module globals of ``geoip2fast.geoip2fast``, version
    1.2): sorted first addresses of networks in chunks, with a per-chunk index, each
    network's prefix length and country index, and the same for AS organisations."""

    index: list[int]
    firsts: list[list[int]]
    netlens: list[list[int]]
    countries: list[list[int]]
    country_names: list[str]
    asn_index: list[int] | None  # None: no AS data
    asn_firsts: list[list[int]]
    asn_netlens: list[list[int]]
    asn_ids: list[list[int]]
    asn_names: list[str]
    sizes_v4: list[int]  # addresses in a network, by prefix length
    sizes_v6: list[int]
    asn_sizes: list[int]  # the sizes the library checks AS networks against
    max_v4: int

    @classmethod
    def of(cls, engine: Any) -> _Tables | None:
        """The tables behind ``engine``, or None when their shape is not the one known
        here (another geoip2fast version, a city database, changed error codes): every
        lookup then goes through the library."""
        g = sys.modules.get(type(engine).__module__)
        try:
            if (
                g is None
                or getattr(engine, "country", False) is not True
                or engine.error_code_network_not_found not in ("", "--")
            ):
                return None
            asn = getattr(engine, "asn", False) is True
            tables = cls(
                g.mainIndex,
                g.mainListFirstIP,
                g.mainListNetlength,
                g.mainListIDCountryCodes,
                g.mainListNamesCountry,
                g.mainIndexASN if asn else None,
                g.mainListFirstIPASN if asn else [],
                g.mainListNetlengthASN if asn else [],
                g.mainListIDASN if asn else [],
                g.mainListNamesASN if asn else [],
                g.numIPsv4,
                g.numIPsv6,
                g.numIPsv6 if engine.ipv6 else g.numIPsv4,
                g.MAX_IPv4,
            )
        except AttributeError:
            return None
        return tables if tables.index and tables.firsts else None

    def lookup(self, value: int) -> GeoInfo | None:
        """Country and AS organisation of an address (as an integer); None where the
        library's own path must answer (outside every network, or any surprise)."""
        root = bisect.bisect_right(self.index, value) - 1
        if root < 0:
            return None
        firsts = self.firsts[root]
        chunk = bisect.bisect_right(firsts, value) - 1
        if chunk < 0:
            return None
        netlen = self.netlens[root][chunk]
        sizes = self.sizes_v4 if value <= self.max_v4 else self.sizes_v6
        if value > firsts[chunk] + sizes[netlen] - 1:
            return GEO_NONE  # not found: the library's answer has no fields
        country = self.countries[root][chunk]
        if country < 16:  # the library's private and reserved networks
            return GEO_NONE
        try:
            cc, _name = self.country_names[country].split(":")
        except ValueError:
            return None
        org = self._org(value)
        if org is None:
            return None
        if cc in ("", "--"):
            return GEO_NONE if not org else GeoInfo(None, None, org)
        return GeoInfo(cc, None, org or None)

    def _org(self, value: int) -> str | None:
        """The AS organisation ('' when none); None: ask the library."""
        if self.asn_index is None:
            return ""
        root = bisect.bisect_right(self.asn_index, value) - 1
        if root < 0:
            return None
        firsts = self.asn_firsts[root]
        chunk = bisect.bisect_right(firsts, value) - 1
        if chunk < 0:
            return None
        if value > firsts[chunk] + self.asn_sizes[self.asn_netlens[root][chunk]] - 1:
            return ""
        name: str = self.asn_names[self.asn_ids[root][chunk]]
        return name


class BuiltinGeo:
    """GeoLite2 Country+ASN bundled with geoip2fast: no download, no AS numbers.

    The data (about 0.3 s and 100 MB of RSS) is loaded by the first ``lookup``,
    ``describe`` or ``load`` call. geoip2fast keeps its tables in module globals, so a
    process holds one copy however many instances exist.
    """

    def __init__(self, data_file: Path | None = None) -> None:
        self._data_file = data_file
        self._engine: Any = None
        self._load_failed = False
        self.errors = 0
        self._tables: _Tables | None = None

    def load(self) -> None:
        """Load the data now; raises ``GeoDatabaseError`` when it cannot be read."""
        if self._engine is not None:
            return
        try:
            module = _import_geoip2fast()  # first: resources.files() would import it unguarded
            path = self._data_file or _builtin_path()
            self._engine = module.GeoIP2Fast(verbose=False, geoip2fast_data_file=str(path))
            self._tables = _Tables.of(self._engine)
        except Exception as exc:  # geoip2fast raises its own GeoIPError and plain errors
            reason = _one_line(exc)
            where = self._data_file or BUILTIN_DATA_FILE
            raise GeoDatabaseError(f"{where}: cannot load geoip2fast data: {reason}") from exc

    def lookup(self, ip_text: str) -> GeoInfo:
        """Country and AS organisation; ``GEO_NONE`` for private, unknown or invalid input."""
        if not self._ready():
            return GEO_NONE
        if ip_text.startswith("::ffff:") and "." in ip_text:
            ip_text = ip_text[7:]  # geoip2fast answers IPv4-mapped text wrongly
        fast = self._direct(ip_text) if self._tables is not None else None
        if fast is not None:
            return fast
        try:
            result = self._engine.lookup(ip_text)
        except Exception as exc:  # never raise into the pipeline
            self.errors += 1
            log.debug("geoip2fast lookup of %s failed: %s", ip_text, _one_line(exc))
            return GEO_NONE
        if result.is_private:
            return GEO_NONE
        cc = result.country_code if result.country_code not in ("", "--") else None
        org = result.asn_name or None
        return GEO_NONE if cc is None and org is None else GeoInfo(cc, None, org)

    def _direct(self, text: str) -> GeoInfo | None:
        """The answer read straight from geoip2fast's tables for a well-formed address
        found in them (what ``GeoIP2Fast.lookup`` answers, without its result object,
        timing and CIDR text: a third of the cost); None: ask the library."""
        try:
            if ":" in text:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
            else:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except OSError:
            return None
        assert self._tables is not None
        return self._tables.lookup(value)

    def _ready(self) -> bool:
        if self._engine is not None:
            return True
        if self._load_failed:
            return False
        try:
            self.load()
        except GeoDatabaseError as exc:
            self._load_failed = True
            self.errors += 1
            log.error("built-in GeoIP data unavailable: %s", exc)
            return False
        return True

    def describe(self) -> GeoSourceInfo:
        """Source name and build date of the data file (loads it).

        Reads the same ``source_info`` that ``get_database_info()`` reports, from the
        loaded engine: ``get_database_info()`` itself decompresses the file again (~0.7 s).
        """
        self.load()
        source = str(getattr(self._engine, "source_info", "") or "")
        return GeoSourceInfo(
            name=source or "geoip2fast",
            kind="builtin",
            build_date=parse_source_date(source),
            licence=BUILTIN_LICENCE,
            paths=(str(self._engine.get_database_path()),),
        )


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
        "upgrade the geoip2fast package or configure MaxMind database files"
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
