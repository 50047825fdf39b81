"""The built-in GeoIP data unpacked block by block into its in-memory file (start-up cost)."""

from __future__ import annotations

import ipaddress
import logging
import os
import random
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
from tests.enrich.test_geo import pack_container, packed


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
    maxmind_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpacked whole (without the compiled walk, which unpacks blocks as lookups reach
    them: see the lazy tests below), a damaged block fails the open."""
    monkeypatch.setattr(geo, "WALK", None)
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    asn = data_dir / BUILTIN_ASN_FILE
    packed = bytearray(asn.read_bytes())
    packed[len(packed) // 2 : len(packed) // 2 + 64] = bytes(64)  # inside a middle frame
    asn.write_bytes(bytes(packed))
    before = _open_fds()
    with pytest.raises(GeoDatabaseError, match=r"dbip-asn-lite\.mmdb\.bz: cannot unpack: "):
        geo._open_builtin(data_dir)
    assert _open_fds() == before


# ---- with the compiled walk: only the blocks a lookup reaches are unpacked ----


def _compiled_walk() -> None:
    if geo.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")


def _lookups(rng_seed: int, count: int) -> list[str]:
    rng = random.Random(rng_seed)
    out = ["1.0.0.1", "89.160.20.112", "2001:218::1", "81.2.69.160", "::ffff:1.0.0.1"]
    for _ in range(count):
        out.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
        out.append(str(ipaddress.IPv6Address(rng.getrandbits(128))))
    return out


def test_lazy_unpacking_answers_as_the_whole_file(
    maxmind_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At open, only the metadata, the data section and the path to the IPv4 subtree are
    unpacked; lookups unpack what they reach and answer as the file unpacked whole does
    (maxminddb alone), text forms maxminddb reads itself included."""
    _compiled_walk()
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    before = _open_fds()
    lazy = geo._open_builtin(data_dir)
    with monkeypatch.context() as patch:
        patch.setattr(geo, "WALK", None)
        whole = geo._open_builtin(data_dir)
    sources = lazy._sources()
    assert all(s.lazy is not None for s in sources)
    assert all(s.lazy is None for s in whole._sources())
    at_open = [sum(s.lazy.done) for s in sources if s.lazy is not None]
    assert all(0 < sum(s.lazy.done) < len(s.lazy.done) for s in sources if s.lazy is not None)
    for ip in _lookups(3, 300):
        assert lazy.packed(packed(ip)) == whole.lookup(ip), ip
        assert lazy.lookup(ip) == whole.lookup(ip), ip
    later = [sum(s.lazy.done) for s in sources if s.lazy is not None]
    assert later > at_open
    assert lazy.errors == whole.errors == 0
    assert lazy.lookup("01.0.0.1") == whole.lookup("01.0.0.1")  # maxminddb's own text forms
    assert all(all(s.lazy.done) for s in sources if s.lazy is not None)  # unpacked whole
    lazy.close()
    whole.close()
    assert _open_fds() == before  # the in-memory files are closed with the databases


def test_a_damaged_tree_block_is_a_lookup_error_logged_once(
    maxmind_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged block of the search tree that the open does not need: the open works,
    a lookup reaching the block is counted and logged once (naming the container), the
    others answer as before."""
    _compiled_walk()
    good = geo._open_builtin(_packed(maxmind_dir, tmp_path, 512))
    country = good._sources()[0]
    assert country.lazy is not None
    untouched = [i for i, done in enumerate(country.lazy.done) if not done]
    assert untouched
    damaged_dir = tmp_path / "damaged"
    damaged_dir.mkdir()
    _packed(maxmind_dir, damaged_dir, 512)
    container = damaged_dir / BUILTIN_COUNTRY_FILE
    blob = bytearray(container.read_bytes())
    _head, lengths, offset = geo._container_index(bytes(blob), geo.MAX_UNPACKED_BYTES)
    for index in untouched:  # every block not unpacked at open: garbage frames
        start = offset + sum(lengths[:index])
        blob[start : start + lengths[index]] = b"\x99" * lengths[index]
    container.write_bytes(bytes(blob))
    damaged = geo._open_builtin(damaged_dir)
    failures = 0
    with caplog.at_level(logging.WARNING, logger="netwatch.enrich.geo"):
        for ip in _lookups(4, 200):
            answer = damaged.packed(packed(ip))
            expected = good.lookup(ip)
            if answer != expected:
                failures += 1
                assert answer.asn == expected.asn and answer.cc is None, ip  # ASN still there
    assert failures > 0
    assert damaged.errors >= failures
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "dbip-country-lite.mmdb.bz: lookup failed" in messages[0]
    assert "cannot unpack" in messages[0]
    good.close()
    damaged.close()


def test_a_damaged_data_section_fails_at_open(maxmind_dir: Path, tmp_path: Path) -> None:
    _compiled_walk()
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    container = data_dir / BUILTIN_ASN_FILE
    blob = bytearray(container.read_bytes())
    _head, lengths, offset = geo._container_index(bytes(blob), geo.MAX_UNPACKED_BYTES)
    last = offset + sum(lengths[:-1])
    blob[last : last + 8] = bytes(8)  # the last frame holds the metadata
    container.write_bytes(bytes(blob))
    before = _open_fds()
    with pytest.raises(GeoDatabaseError, match=r"dbip-asn-lite\.mmdb\.bz: cannot unpack: "):
        geo._open_builtin(data_dir)
    assert _open_fds() == before


def test_a_closed_container_cannot_unpack(maxmind_dir: Path, tmp_path: Path) -> None:
    _compiled_walk()
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    lazy = geo._LazyContainer(data_dir / BUILTIN_ASN_FILE, geo.MAX_UNPACKED_BYTES)
    lazy.fill(0)
    lazy.close()
    lazy.fill(0)  # already there: nothing to do
    with pytest.raises(GeoDatabaseError, match="in-memory file is closed"):
        lazy.fill(1)
    lazy.close()  # twice is fine


def test_a_container_cut_short_after_open_is_a_clear_error(
    maxmind_dir: Path, tmp_path: Path
) -> None:
    """The container is read frame by frame as blocks are wanted: a file cut short since
    (an upgrade that rewrote it in place) gives one line, not a short block."""
    data_dir = _packed(maxmind_dir, tmp_path, 512)
    path = data_dir / BUILTIN_ASN_FILE
    lazy = geo._LazyContainer(path, geo.MAX_UNPACKED_BYTES)
    try:
        lazy.fill(0)
        os.truncate(path, path.stat().st_size - 10)
        with pytest.raises(GeoDatabaseError, match=r"cannot unpack: block \d+: the container is"):
            lazy.fill(len(lazy.done) - 1)
    finally:
        lazy.close()
