"""Tests of netwatch.enrich.mmdbdata: records and metadata as maxminddb reads them (MaxMind's
test databases, the built-in DB-IP data, generated values), and bad data refused."""

from __future__ import annotations

import ipaddress
import random
import struct
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from maxminddb.decoder import Decoder

from netwatch.enrich import geo
from netwatch.enrich.mmdbdata import (
    MAX_DEPTH,
    METADATA_MARKER,
    MmdbDataError,
    Section,
    read_metadata,
)

BROKEN_METADATA = "GeoIP2-City-Test-Invalid-Node-Count.mmdb"


def same(mine: Any, theirs: Any) -> bool:
    """Equal values of the same types all the way down (True == 1 is not enough; maxminddb's
    C reader gives bytes values as bytearray, its Python reader as bytes)."""
    if isinstance(theirs, bytearray):
        theirs = bytes(theirs)
    if type(mine) is not type(theirs):
        return False
    if isinstance(mine, dict):
        return mine.keys() == theirs.keys() and all(same(mine[k], theirs[k]) for k in mine)
    if isinstance(mine, list):
        return len(mine) == len(theirs) and all(map(same, mine, theirs))
    return bool(mine == theirs)


def test_same_tells_types_apart() -> None:
    assert same({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same(True, 1)
    assert not same({"a": 1.0}, {"a": 1})
    assert not same([1], [1, 2])


def maxmind_files(maxmind_dir: Path) -> list[Path]:
    return sorted(maxmind_dir.glob("*.mmdb"))


def test_metadata_as_maxminddb_reads_it(maxmind_dir: Path) -> None:
    checked = 0
    for path in maxmind_files(maxmind_dir):
        data = path.read_bytes()
        try:
            reader = maxminddb.open_database(str(path))
        except maxminddb.InvalidDatabaseError:
            assert path.name == BROKEN_METADATA
            with pytest.raises(MmdbDataError, match="search tree runs past the end"):
                read_metadata(data)
            continue
        theirs = reader.metadata()
        mine = read_metadata(data)
        assert mine == (
            theirs.node_count,
            theirs.record_size,
            theirs.ip_version,
            theirs.database_type,
            theirs.build_epoch,
        ), path.name
        assert mine.tree_size == theirs.node_count * theirs.record_size // 4
        reader.close()
        checked += 1
    assert checked >= 39


def test_every_record_as_maxminddb_decodes_it(maxmind_dir: Path) -> None:
    """Each network of each test database: the record at the offset the compiled walk
    gives equals maxminddb's; where maxminddb finds bad data, so does this reader."""
    tree_type = geo.WALK
    if tree_type is None:
        pytest.skip("needs the compiled walk for the offsets (tests/test_mmdb.py says)")
    records = 0
    for path in maxmind_files(maxmind_dir):
        if path.name == BROKEN_METADATA:
            continue
        data = path.read_bytes()
        meta = read_metadata(data)
        section = Section(data, meta.tree_size + 16)
        tree = tree_type(data, meta.node_count, meta.record_size, meta.ip_version)
        reader = maxminddb.open_database(str(path))
        networks = reader_networks(reader)
        for network in networks:
            offset = tree.offset(network.network_address.packed)
            try:
                theirs = reader.get(network.network_address)
            except maxminddb.InvalidDatabaseError:
                with pytest.raises(MmdbDataError):
                    section.record(offset)
                continue
            assert same(section.record(offset), theirs), (path.name, network)
            records += 1
        reader.close()
    assert records > 7000


def reader_networks(
    reader: maxminddb.Reader,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of a database as far as maxminddb's iteration gets (it stops at bad
    data; the broken files' bad records are in the next test)."""
    networks = []
    try:
        for network, _record in reader:
            networks.append(network)
    except (maxminddb.InvalidDatabaseError, ValueError):
        pass
    return networks


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("GeoIP2-City-Test-Broken-Double-Format.mmdb", ["81.2.69.160", "2001:220::1"]),
        ("MaxMind-DB-test-broken-pointers-24.mmdb", ["1.1.1.16", "1.1.1.20", "1.1.1.28"]),
    ],
)
def test_broken_files_fail_where_maxminddb_fails(
    maxmind_dir: Path, name: str, addresses: list[str]
) -> None:
    """The bad records of MaxMind's broken test files (a double of the wrong size, pointers
    past the data): an MmdbDataError here where maxminddb raises."""
    if geo.WALK is None:
        pytest.skip("needs the compiled walk for the offsets (tests/test_mmdb.py says)")
    data = (maxmind_dir / name).read_bytes()
    meta = read_metadata(data)
    section = Section(data, meta.tree_size + 16)
    tree = geo.WALK(data, meta.node_count, meta.record_size, meta.ip_version)
    with maxminddb.open_database(str(maxmind_dir / name)) as reader:
        for address in addresses:
            with pytest.raises(maxminddb.InvalidDatabaseError):
                reader.get(address)
            offset = tree.offset(ipaddress.ip_address(address).packed)
            assert offset >= 0
            with pytest.raises(MmdbDataError):
                section.record(offset)


def test_builtin_records_as_maxminddb_decodes_them(tmp_path: Path) -> None:
    """The DB-IP country and ASN records reached by 4,000 seeded addresses (IPv4 and IPv6)."""
    if geo.WALK is None:
        pytest.skip("needs the compiled walk for the offsets (tests/test_mmdb.py says)")
    folder = geo._builtin_data_dir()
    rng = random.Random(13)
    addresses = [rng.getrandbits(32).to_bytes(4, "big") for _ in range(3000)]
    addresses += [(0x2000 << 112 | rng.getrandbits(116)).to_bytes(16, "big") for _ in range(1000)]
    for name in (geo.BUILTIN_COUNTRY_FILE, geo.BUILTIN_ASN_FILE):
        path = tmp_path / name
        path.write_bytes(geo.unpack_container(folder / name))
        data = path.read_bytes()
        meta = read_metadata(data)
        section = Section(data, meta.tree_size + 16)
        tree = geo.WALK(data, meta.node_count, meta.record_size, meta.ip_version)
        reader = maxminddb.open_database(str(path))
        decoded = set()
        for addr in addresses:
            offset = tree.offset(addr)
            if offset < 0 or offset in decoded:
                continue
            decoded.add(offset)
            assert same(section.record(offset), reader.get(ipaddress.ip_address(addr))), addr
        reader.close()
        assert len(decoded) > 90, name


# ---- generated values, encoded here, decoded by both readers ----


def control(kind: int, size: int) -> bytes:
    """A control byte (and extended-type and size bytes) for ``kind`` and ``size``."""
    if size < 29:
        code, extra = size, b""
    elif size < 285:
        code, extra = 29, bytes([size - 29])
    elif size < 65821:
        code, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        code, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind < 8:
        return bytes([kind << 5 | code]) + extra
    return bytes([code, kind - 7]) + extra


def encode(value: Any) -> bytes:
    """``value`` in the MaxMind DB data format (no pointers)."""
    if isinstance(value, bool):
        return control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return control(2, len(raw)) + raw
    if isinstance(value, bytes):
        return control(4, len(value)) + value
    if isinstance(value, float):
        return control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if value < 0:
            return control(8, 4) + struct.pack(">i", value)
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        kind = 5 if len(raw) <= 2 else 6 if len(raw) <= 4 else 9 if len(raw) <= 8 else 10
        return control(kind, len(raw)) + raw
    if isinstance(value, list):
        return control(11, len(value)) + b"".join(map(encode, value))
    assert isinstance(value, dict)
    return control(7, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())


scalars = (
    st.booleans()
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.floats(allow_nan=False)
    | st.integers(min_value=-(2**31), max_value=2**128 - 1)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(values, st.binary(max_size=5))
def test_generated_values_as_maxminddb_decodes_them(value: Any, prefix: bytes) -> None:
    data = prefix + encode(value)
    assert same(Section(data, 0).value_at(len(prefix)), value)
    assert same(Section(data, 0).value_at(len(prefix)), Decoder(data, 0).decode(len(prefix))[0])


@pytest.mark.parametrize("size", [0, 28, 29, 284, 285, 65820, 65821, 70000])
def test_every_size_form(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    data = encode(text)
    assert Section(data, 0).value_at(0) == text == Decoder(data, 0).decode(0)[0]


@pytest.mark.parametrize("target", [5, 2047, 2048, 2048 + 5, 526335, 526336, 600000])
def test_pointers_of_each_size(target: int) -> None:
    """A map whose value is a pointer (each size that can reach ``target``) to a string
    placed at ``target`` from the pointer base."""
    forms = 0
    for width, low in ((1, 0), (2, 2048), (3, 526336), (4, 0)):
        value = target - low
        if width < 4:
            if not 0 <= value < 1 << (8 * width + 3):
                continue
            ctrl = 0x20 | (width - 1) << 3 | value >> (8 * width)
            pointer = bytes([ctrl]) + (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        else:
            pointer = bytes([0x38]) + value.to_bytes(4, "big")
        forms += 1
        head = control(7, 1) + encode("k") + pointer
        base = 3
        buffer = bytearray(base + target + 10)
        buffer[0 : len(head)] = head
        buffer[base + target : base + target + 4] = encode("hit")
        data = bytes(buffer)
        assert Section(data, base).value_at(0) == {"k": "hit"} == Decoder(data, base).decode(0)[0]
    assert forms >= 2


def pointer_to(target: int) -> bytes:
    return bytes([0x38]) + target.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "runs past the end"),
        (control(2, 10) + b"short", "runs past the end"),
        (pointer_to(0), "pointer to a pointer"),
        (bytes([0x00, 0x00]), "extended type 7"),
        (control(3, 4) + b"\0" * 4, "4-byte double"),
        (control(15, 8) + b"\0" * 8, "8-byte float"),
        (control(5, 3) + b"\0" * 3, "3-byte integer"),
        (control(8, 5) + b"\0" * 5, "5-byte int32"),
        (control(12, 0), "unknown data type 12"),
        (control(13, 0), "unknown data type 13"),
        (control(7, 1) + encode(5) + encode("v"), "map key is a int"),
        (control(11, 40000) + control(11, 40000), "too many values"),
    ],
)
def test_bad_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(MmdbDataError, match=message):
        Section(data, 0).value_at(0)


def test_bad_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        Section(control(2, 2) + b"\xff\xfe", 0).value_at(0)


def test_nesting_and_fan_out_are_bounded() -> None:
    # an array holding itself through a pointer: nesting stops at MAX_DEPTH
    loop = control(11, 1) + pointer_to(0)
    with pytest.raises(MmdbDataError, match="nested too deep"):
        Section(loop, 0).value_at(0)
    # nested arrays of two pointers to the next level: 2**30 values without a budget
    levels = 30
    data = bytearray()
    for level in range(levels):
        step = len(control(11, 2)) + 10  # an array of two 5-byte pointers
        data += control(11, 2) + pointer_to(step * (level + 1)) * 2
    data += encode("leaf")
    with pytest.raises(MmdbDataError, match="too many values"):
        Section(bytes(data), 0).value_at(0)
    # one big string reached through many pointers: the payload budget
    big = encode("x" * 70000)
    many = control(11, 40) + pointer_to(len(control(11, 40)) + 40 * 5) * 40
    with pytest.raises(MmdbDataError, match="string bytes"):
        Section(many + big, 0).value_at(0)
    assert MAX_DEPTH == 512


def test_negative_position_is_refused() -> None:
    with pytest.raises(MmdbDataError, match="outside the file"):
        Section(b"\x40", 5).record(-10)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"node_count": 1, "record_size": 24, "ip_version": 4, "database_type": "x"},
            "build_epoch",
        ),
        (
            {
                "node_count": 1,
                "record_size": 20,
                "ip_version": 4,
                "database_type": "x",
                "build_epoch": 1,
            },
            "record size 20",
        ),
        (
            {
                "node_count": 1,
                "record_size": 24,
                "ip_version": 5,
                "database_type": "x",
                "build_epoch": 1,
            },
            "IP version 5",
        ),
        (
            {
                "node_count": True,
                "record_size": 24,
                "ip_version": 4,
                "database_type": "x",
                "build_epoch": 1,
            },
            "node_count",
        ),
        (
            {
                "node_count": 99,
                "record_size": 24,
                "ip_version": 4,
                "database_type": "x",
                "build_epoch": 1,
            },
            "past the end",
        ),
        (["not", "a", "map"], "is a list, not a map"),
    ],
)
def test_bad_metadata_is_refused(fields: Any, message: str) -> None:
    data = b"\0" * 22 + METADATA_MARKER + encode(fields)
    with pytest.raises(MmdbDataError, match=message):
        read_metadata(data)


def test_metadata_without_marker_is_refused() -> None:
    with pytest.raises(MmdbDataError, match="no MaxMind DB metadata marker"):
        read_metadata(b"\0" * 1000)
    good = {
        "node_count": 1,
        "record_size": 24,
        "ip_version": 4,
        "database_type": "x",
        "build_epoch": 1,
    }
    far = METADATA_MARKER + encode(good) + b"\0" * (128 << 10)  # outside the last 128 KiB
    with pytest.raises(MmdbDataError, match="no MaxMind DB metadata marker"):
        read_metadata(far)
    assert read_metadata(b"\0" * 22 + METADATA_MARKER + encode(good)).database_type == "x"
