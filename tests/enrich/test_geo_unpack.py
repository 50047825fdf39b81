"""The built-in GeoIP data unpacked block by block into its in-memory file (start-up cost)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netwatch.enrich import geo
from netwatch.enrich.geo import (
    BUILTIN_ASN_FILE,
    BUILTIN_COUNTRY_FILE,
    GeoDatabaseError,
    GeoInfo,
    unpack_container,
)
from tests.enrich.test_geo import pack_container


def _packed(maxmind_dir: Path, where: Path, block_size: int) -> Path:
    for source, name in (
        ("GeoIP2-Country-Test.mmdb", BUILTIN_COUNTRY_FILE),
        ("GeoLite2-ASN-Test.mmdb", BUILTIN_ASN_FILE),
    ):
        raw = (maxmind_dir / source).read_bytes()
        (where / name).write_bytes(pack_container(raw, block_size))
    return where


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("block_size", [512, 4096, 1 << 20])
def test_the_in_memory_file_holds_exactly_the_unpacked_bytes(
    maxmind_dir: Path, tmp_path: Path, block_size: int
) -> None:
    data_dir = _packed(maxmind_dir, tmp_path, block_size)
    raw = (maxmind_dir / "GeoLite2-ASN-Test.mmdb").read_bytes()
    blocks = geo._unpacked_blocks(data_dir / BUILTIN_ASN_FILE, geo.MAX_UNPACKED_BYTES)
    fd, path = geo._anonymous_file("asn", blocks)
    try:
        assert path.read_bytes() == raw == unpack_container(data_dir / BUILTIN_ASN_FILE)
    finally:
        os.close(fd)
    before = _open_fds()
    opened = geo._open_builtin(data_dir)
    try:
        assert opened.lookup("1.0.0.1") == GeoInfo(None, 15169, "Google Inc.")
    finally:
        opened.close()
    assert _open_fds() == before  # the in-memory files' descriptors are not left open


def test_a_block_damaged_midway_fails_in_one_line_and_leaks_no_descriptor(
    maxmind_dir: Path, tmp_path: Path
) -> None:
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    asn = data_dir / BUILTIN_ASN_FILE
    packed = bytearray(asn.read_bytes())
    packed[len(packed) // 2 : len(packed) // 2 + 64] = bytes(64)  # inside a middle frame
    asn.write_bytes(bytes(packed))
    before = _open_fds()
    with pytest.raises(GeoDatabaseError, match=r"dbip-asn-lite\.mmdb\.bz: cannot unpack: "):
        geo._open_builtin(data_dir)
    assert _open_fds() == before
