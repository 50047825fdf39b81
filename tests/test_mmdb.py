"""The compiled MaxMind DB search-tree walk (netwatch/_mmdb.c) against maxminddb.

``netwatch._mmdb.Tree`` walks a packed address down a MaxMind DB file's search tree to its
record's data offset and prefix length. For every network of MaxMind's real test databases
(record sizes 24, 28 and 32; IPv4 trees, IPv6 trees holding IPv4, an IPv6 tree without an
IPv4 subtree) and of the built-in DB-IP data, at its first and last address, just outside
it and at random addresses (IPv4, IPv6, IPv4-mapped; also Hypothesis-drawn), the record
decoded at the offset and the prefix length equal what ``maxminddb``'s reader gives, and a
corrupt tree fails where the reader's does. Corrupt or hostile files (truncated, records
pointing past the end or into the separator, pointer loops, random bytes) give a clean
ValueError, never a read outside the buffer (run under ``./dev sanitize`` for ASan/UBSan).

Skips where the extension cannot be there (NETWATCH_PURE=1, no C compiler); fails when a
compiler is here and the extension was not built. The real-database tests skip when
``../shared/corpus`` is absent.
"""

from __future__ import annotations

import ipaddress
import mmap
import os
import random
import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import maxminddb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from maxminddb.decoder import Decoder

from netwatch.enrich import geo as geo_module
from tests.profile import examples

if TYPE_CHECKING:  # the module may be absent at run time
    from netwatch._mmdb import Tree


def _compiled() -> type[Tree] | None:
    try:
        from netwatch._mmdb import Tree  # noqa: PLC0415 (optional)
    except ImportError:
        return None
    return Tree


_C = _compiled()
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@pytest.fixture(scope="module")
def tree_type() -> type[Tree]:
    if _C is not None:
        return _C
    if os.environ.get("NETWATCH_PURE") == "1":
        pytest.skip("NETWATCH_PURE=1 forces the pure-Python path")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: netwatch._mmdb is not built")
    pytest.fail("a C compiler is here but netwatch._mmdb is not built (pip install -e .)")


class Oracle:
    """One database file read both ways: maxminddb's reader (its C extension when built,
    as GeoIP lookups use it without the walk), and the C walk over the file's bytes with
    the record at the offset decoded by maxminddb's decoder (memoised per offset)."""

    def __init__(self, tree_type: type[Tree], path: Path) -> None:
        data = path.read_bytes()
        self.path = path
        self.reader = maxminddb.open_database(str(path))
        meta = self.reader.metadata()
        self.ip_version = meta.ip_version
        self.tree = tree_type(data, meta.node_count, meta.record_size, meta.ip_version)
        self.data_start = meta.node_count * meta.record_size // 4 + 16
        self._decoder = Decoder(data, self.data_start)
        self._records: dict[int, Any] = {}

    def expected(self, ip: IPAddress) -> tuple[str, Any]:
        """maxminddb's (record, prefix length), or the error it raises, as comparable text."""
        try:
            return "ok", self.reader.get_with_prefix_len(ip)
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            return "error", type(exc).__name__

    def walked(self, ip: IPAddress) -> tuple[str, Any]:
        """The C walk's answer in the same shape."""
        try:
            offset, prefix = self.tree.find(ip.packed)
        except ValueError:
            return "error", "InvalidDatabaseError"
        if offset is None:
            return "ok", (None, prefix)
        record = self._records.get(offset)
        if record is None:
            try:
                record = self._decoder.decode(self.data_start + offset)[0]
            except maxminddb.InvalidDatabaseError:  # a bad record (the tree is fine)
                return "error", "InvalidDatabaseError"
            self._records[offset] = record
        return "ok", (record, prefix)

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Every network of the file, as maxminddb lists them (its pure-Python reader for a
        tree that loops, which the C one refuses to list); none when a record is bad (the
        listing decodes every record)."""
        try:
            return [network for network, _record in self.reader]
        except maxminddb.InvalidDatabaseError:
            pass
        with maxminddb.open_database(str(self.path), maxminddb.MODE_MEMORY) as reader:
            try:
                return [network for network, _record in reader]
            except maxminddb.InvalidDatabaseError:
                return []

    def check(self, ip: IPAddress) -> None:
        if ip.version == 6 and self.ip_version == 4:
            return  # maxminddb refuses it; the caller never asks (geo.py answers None)
        assert self.walked(ip) == self.expected(ip), ip
        offset, _prefix = self.tree.find(ip.packed)
        assert self.tree.offset(ip.packed) == (-1 if offset is None else offset), ip


def around(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[IPAddress]:
    """The first and last address of a network and the addresses just outside it."""
    first, last = network.network_address, network.broadcast_address
    out: list[IPAddress] = [first, last]
    if int(first) > 0:
        out.append(first - 1)
    if int(last) < (1 << network.max_prefixlen) - 1:
        out.append(last + 1)
    return out


def random_addresses(rng: random.Random, count: int, ipv6: bool) -> list[IPAddress]:
    """Random IPv4 addresses, and with ``ipv6`` random global, IPv4-mapped and any IPv6."""
    out: list[IPAddress] = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(count)]
    if ipv6:
        for _ in range(count):
            out.append(ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125)))  # 2000::/3
            out.append(ipaddress.IPv6Address((0xFFFF << 32) | rng.getrandbits(32)))  # ::ffff:/96
            out.append(ipaddress.IPv6Address(rng.getrandbits(128)))
    return out


# ------------------------------------------------------------------ real databases


BROKEN = {
    "GeoIP2-City-Test-Broken-Double-Format.mmdb",  # a bad record: the tree is fine
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",  # refused by maxminddb at open
    "MaxMind-DB-test-broken-pointers-24.mmdb",  # bad records: the tree is fine
    "MaxMind-DB-test-broken-search-tree-24.mmdb",  # 128.0.0.0/1 loops back to the root
}
RECORD_SIZES = {
    "MaxMind-DB-test-ipv4-24.mmdb": (24, 4),
    "MaxMind-DB-test-ipv4-28.mmdb": (28, 4),
    "MaxMind-DB-test-ipv4-32.mmdb": (32, 4),
    "MaxMind-DB-test-ipv6-24.mmdb": (24, 6),
    "MaxMind-DB-test-ipv6-28.mmdb": (28, 6),
    "MaxMind-DB-test-ipv6-32.mmdb": (32, 6),
    "MaxMind-DB-test-mixed-24.mmdb": (24, 6),
    "MaxMind-DB-test-mixed-28.mmdb": (28, 6),
    "MaxMind-DB-test-mixed-32.mmdb": (32, 6),
}


def _real_databases() -> list[str]:
    from tests.conftest import MAXMIND  # noqa: PLC0415 (the maxmind_dir fixture's folder)

    if not MAXMIND.is_dir():
        return ["(corpus absent)"]
    names = sorted(p.name for p in MAXMIND.glob("*.mmdb"))
    return [n for n in names if n != "GeoIP2-City-Test-Invalid-Node-Count.mmdb"]


@pytest.mark.parametrize("name", _real_databases())
def test_every_network_of_maxminds_test_databases(
    tree_type: type[Tree], maxmind_dir: Path, name: str
) -> None:
    oracle = Oracle(tree_type, maxmind_dir / name)
    meta = oracle.reader.metadata()
    if name in RECORD_SIZES:
        assert (meta.record_size, meta.ip_version) == RECORD_SIZES[name]
    addresses: list[IPAddress] = []
    if name == "MaxMind-DB-no-ipv4-search-tree.mmdb":
        # maxminddb cannot list this file's networks: the IPv4 space is one record at ::/64
        assert oracle.tree.ipv4_depth == 64
        assert oracle.tree.find(bytes(4)) == (oracle.tree.find(bytes(16))[0], 0)
    else:
        networks = oracle.networks()
        assert networks or name in BROKEN
        for network in networks:
            addresses += around(network)
    if name == "MaxMind-DB-test-broken-search-tree-24.mmdb":
        looping = ipaddress.IPv4Address("255.255.255.255")  # node 0's right record is node 0
        assert oracle.expected(looping) == ("error", "InvalidDatabaseError")
        assert oracle.walked(looping) == ("error", "InvalidDatabaseError")
    addresses += random_addresses(random.Random(name), 500, meta.ip_version == 6)
    for ip in addresses:
        oracle.check(ip)
    if name not in BROKEN:
        assert any(oracle.tree.offset(ip.packed) >= 0 for ip in addresses), name


def test_record_sizes_cover_24_28_32(maxmind_dir: Path) -> None:
    for name, (size, version) in RECORD_SIZES.items():
        meta = maxminddb.open_database(str(maxmind_dir / name)).metadata()
        assert (meta.record_size, meta.ip_version) == (size, version), name


@pytest.fixture(scope="module")
def builtin_oracles(
    tree_type: type[Tree], tmp_path_factory: pytest.TempPathFactory
) -> list[Oracle]:
    """The built-in DB-IP country and ASN data (unpacked as BuiltinGeo does)."""
    data_dir = geo_module._builtin_data_dir()
    folder = tmp_path_factory.mktemp("builtin")
    oracles = []
    for name in (geo_module.BUILTIN_COUNTRY_FILE, geo_module.BUILTIN_ASN_FILE):
        path = folder / name.removesuffix(".bz")
        path.write_bytes(geo_module.unpack_container(data_dir / name))
        oracles.append(Oracle(tree_type, path))
    return oracles


def test_builtin_data_random_and_boundary_addresses(builtin_oracles: list[Oracle]) -> None:
    rng = random.Random(13)
    for oracle in builtin_oracles:
        assert oracle.ip_version == 6
        assert oracle.tree.ipv4_depth == 96
        for ip in random_addresses(rng, 1500, ipv6=True):
            oracle.check(ip)
            _record, prefix = oracle.reader.get_with_prefix_len(ip)
            network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
            for edge in around(network):
                oracle.check(edge)


def test_builtin_data_known_answers(builtin_oracles: list[Oracle]) -> None:
    country, asn = builtin_oracles
    google = ipaddress.IPv4Address("8.8.8.8")
    assert country.walked(google)[1][0]["country"]["iso_code"] == "US"
    assert asn.walked(google)[1][0]["autonomous_system_number"] == 15169
    mapped = ipaddress.IPv6Address("::ffff:8.8.8.8")
    assert asn.walked(mapped)[1][0] == asn.walked(google)[1][0]
    assert country.tree.find(ipaddress.IPv4Address("10.0.0.1").packed)[0] is None


@settings(max_examples=examples(300), deadline=None)
@given(address=st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16))
def test_hypothesis_addresses_agree(builtin_oracles: list[Oracle], address: bytes) -> None:
    ip = ipaddress.ip_address(address)
    for oracle in builtin_oracles:
        oracle.check(ip)


@pytest.fixture(scope="module")
def record_size_oracles(tree_type: type[Tree]) -> dict[str, Oracle]:
    """MaxMind's test databases of each record size (IPv4, IPv6 and mixed trees)."""
    from tests.conftest import MAXMIND  # noqa: PLC0415 (the maxmind_dir fixture's folder)

    if not MAXMIND.is_dir():
        pytest.skip(f"{MAXMIND} is absent: the GeoIP format tests need ../shared/corpus/maxmind")
    return {name: Oracle(tree_type, MAXMIND / name) for name in RECORD_SIZES}


@settings(max_examples=examples(300), deadline=None)
@given(
    name=st.sampled_from(sorted(RECORD_SIZES)),
    address=st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16),
)
def test_hypothesis_addresses_agree_every_record_size(
    record_size_oracles: dict[str, Oracle], name: str, address: bytes
) -> None:
    record_size_oracles[name].check(ipaddress.ip_address(address))


# ------------------------------------------------------------------ synthetic trees


def encode_tree(nodes: list[tuple[int, int]], record_size: int) -> bytes:
    """A search tree laid out as the spec says, from (left, right) record values."""
    out = bytearray()
    for left, right in nodes:
        if record_size == 24:
            out += left.to_bytes(3, "big") + right.to_bytes(3, "big")
        elif record_size == 28:
            middle = (left >> 24) << 4 | (right >> 24)
            out += (left & 0xFFFFFF).to_bytes(3, "big") + bytes((middle,))
            out += (right & 0xFFFFFF).to_bytes(3, "big")
        else:
            out += left.to_bytes(4, "big") + right.to_bytes(4, "big")
    return bytes(out)


def small_db(record_size: int, tail: bytes = b"\x00" * 16 + b"\x44record") -> tuple[bytes, int]:
    """An IPv4 tree of three nodes: 0.0.0.0/1 -> node 1, 128.0.0.0/1 -> node 2; node 1:
    0.0.0.0/2 empty, 64.0.0.0/2 -> data offset 0; node 2: both halves -> data offset 1."""
    count = 3
    nodes = [(1, 2), (count, count + 16), (count + 17, count + 17)]
    return encode_tree(nodes, record_size) + tail, count


@pytest.mark.parametrize("record_size", [24, 28, 32])
def test_synthetic_tree_every_record_size(tree_type: type[Tree], record_size: int) -> None:
    data, count = small_db(record_size)
    tree = tree_type(data, count, record_size, 4)
    assert (tree.node_count, tree.record_size, tree.ip_version) == (count, record_size, 4)
    assert tree.find(bytes((1, 2, 3, 4))) == (None, 2)
    assert tree.find(bytes((64, 0, 0, 0))) == (0, 2)
    assert tree.find(bytes((200, 1, 1, 1))) == (1, 2)
    assert tree.offset(bytes((1, 2, 3, 4))) == -1
    assert tree.offset(bytes((127, 255, 255, 255))) == 0


def test_28_bit_records_use_both_nibbles(tree_type: type[Tree], tmp_path: Path) -> None:
    # a node count above 2^24, so the records' top nibbles matter (left's differs from
    # right's); the file is sparse: only the three nodes read are written
    count = (1 << 24) + 100
    nodes = {
        0: ((1 << 24) + 1, 2),  # 0.0.0.0/1 -> node 0x1000001, 128.0.0.0/1 -> node 2
        (1 << 24) + 1: (count + 16 + 5, count),  # 0.0.0.0/2 -> data offset 5
        2: (count, count + 16 + 7),  # 192.0.0.0/2 -> data offset 7
    }
    path = tmp_path / "sparse.mmdb"
    with path.open("wb") as file:
        file.truncate(count * 7 + 16 + 64)
        for node, (left, right) in nodes.items():
            file.seek(node * 7)
            file.write(encode_tree([(left, right)], 28))
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    tree = tree_type(mapped, count, 28, 4)
    assert tree.find(bytes((0, 0, 0, 0))) == (5, 2)
    assert tree.find(bytes((64, 0, 0, 0))) == (None, 2)
    assert tree.find(bytes((128, 0, 0, 0))) == (None, 2)
    assert tree.find(bytes((192, 0, 0, 0))) == (7, 2)
    tree.close()
    mapped.close()


def test_ipv6_tree_finds_the_ipv4_subtree_once(tree_type: type[Tree]) -> None:
    # 96 left turns down a chain of nodes, then node 96 splits the IPv4 space
    count = 97
    nodes = [(i + 1, count) for i in range(96)] + [(count + 16, count + 17)]
    data = encode_tree(nodes, 24) + bytes(16) + b"\x44left\x44right"
    tree = tree_type(data, count, 24, 6)
    assert tree.ipv4_depth == 96
    assert tree.find(bytes((1, 0, 0, 0))) == (0, 1)
    assert tree.find(bytes((200, 0, 0, 0))) == (1, 1)
    assert tree.find(bytes(12) + bytes((200, 0, 0, 0))) == (1, 97)  # ::200.0.0.0 in IPv6
    assert tree.find(b"\x20" + bytes(15)) == (None, 3)


def test_ipv6_tree_without_an_ipv4_subtree(tree_type: type[Tree]) -> None:
    count = 2
    nodes = [(1, count), (count + 16, count)]  # ::/2 is one record
    tree = tree_type(encode_tree(nodes, 32) + bytes(16) + b"\x44data", count, 32, 6)
    assert tree.ipv4_depth == 2
    assert tree.find(bytes((9, 9, 9, 9))) == (0, 0)


def test_mmap_buffer_is_held_until_close(tree_type: type[Tree], tmp_path: Path) -> None:
    data, count = small_db(24)
    path = tmp_path / "t.mmdb"
    path.write_bytes(data)
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    tree = tree_type(mapped, count, 24, 4)
    with pytest.raises(BufferError):
        mapped.close()  # the Tree still reads it
    assert tree.find(bytes((64, 1, 1, 1))) == (0, 2)
    tree.close()
    tree.close()
    mapped.close()
    with pytest.raises(ValueError, match="closed"):
        tree.find(bytes(4))


# ------------------------------------------------------------------ corrupt and hostile files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"", 1, 24, 4), "do not fit"),
        ((bytes(6 + 15), 1, 24, 4), "do not fit"),  # the separator cut short
        ((bytes(100), 0, 24, 4), "node count 0"),
        ((bytes(100), 1 << 24, 24, 4), "does not fit 24-bit"),
        ((bytes(100), 1 << 28, 28, 4), "does not fit 28-bit"),
        ((bytes(100), 1 << 32, 32, 4), "does not fit 32-bit"),
        ((bytes(100), 1, 25, 4), "record size 25"),
        ((bytes(100), 1, 24, 5), "IP version 5"),
    ],
)
def test_bad_metadata_is_refused(
    tree_type: type[Tree], args: tuple[bytes, int, int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tree_type(*args)


def test_bad_arguments(tree_type: type[Tree]) -> None:
    data, count = small_db(24)
    tree = tree_type(data, count, 24, 4)
    with pytest.raises(ValueError, match="in an IPv4 tree"):
        tree.find(bytes(16))
    with pytest.raises(ValueError, match="not 5"):
        tree.offset(bytes(5))
    with pytest.raises(TypeError, match="must be bytes"):
        tree.find(bytearray(4))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tree_type(data, count, 24, 4, buffer=data)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        tree_type("not a buffer", count, 24, 4)  # type: ignore[arg-type]


def test_truncated_data_section(tree_type: type[Tree]) -> None:
    data, count = small_db(24)
    cut = data[: count * 6 + 16 + 1]  # data offset 0 is the last byte; offset 1 is past the end
    tree = tree_type(cut, count, 24, 4)
    assert tree.find(bytes((64, 0, 0, 0))) == (0, 2)
    with pytest.raises(ValueError, match="outside the data section"):
        tree.find(bytes((200, 0, 0, 0)))


@pytest.mark.parametrize("record_size", [24, 28, 32])
def test_records_past_the_end_or_into_the_separator(
    tree_type: type[Tree], record_size: int
) -> None:
    count = 1
    size = len(encode_tree([(0, 0)], record_size)) + 16 + 4
    for bad in (count + 16 + 4, count + 16 + 1000, count + 1, count + 15):
        data = encode_tree([(bad, count + 16 + 3)], record_size) + bytes(16) + b"\x44abc"
        assert len(data) == size
        tree = tree_type(data, count, record_size, 4)
        with pytest.raises(ValueError, match="outside the data section"):
            tree.find(bytes(4))
        assert tree.find(bytes((255, 0, 0, 0))) == (3, 1)  # the good record still answers


@pytest.mark.parametrize("ip_version", [4, 6])
def test_pointer_loop_ends_with_the_address_bits(tree_type: type[Tree], ip_version: int) -> None:
    # node 0 -> node 1 -> node 0 ...: the walk stops after one read per address bit
    data = encode_tree([(1, 1), (0, 0)], 24) + bytes(16) + b"\x44x"
    tree = tree_type(data, 2, 24, ip_version)
    with pytest.raises(ValueError, match="ran out of address bits"):
        tree.find(bytes((10, 0, 0, 1)))
    if ip_version == 6:
        assert tree.ipv4_depth == 96
        with pytest.raises(ValueError, match="ran out of address bits"):
            tree.offset(bytes(16))


@settings(max_examples=examples(500), deadline=None)
@given(
    data=st.binary(max_size=400),
    node_count=st.integers(min_value=1, max_value=80),
    record_size=st.sampled_from([24, 28, 32]),
    ip_version=st.sampled_from([4, 6]),
    addresses=st.lists(
        st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16), max_size=8
    ),
)
def test_random_files_give_an_answer_or_a_clean_error(
    tree_type: type[Tree],
    data: bytes,
    node_count: int,
    record_size: int,
    ip_version: int,
    addresses: list[bytes],
) -> None:
    # a buffer exactly as long as the file: any read outside it is ASan's to report
    buffer = bytes(data)
    try:
        tree = tree_type(buffer, node_count, record_size, ip_version)
    except ValueError:
        assert node_count * record_size // 4 + 16 > len(buffer)
        return
    for address in addresses:
        if len(address) == 16 and ip_version == 4:
            continue
        try:
            offset, prefix = tree.find(address)
        except ValueError:
            continue
        assert 0 <= prefix <= len(address) * 8
        if offset is not None:
            assert node_count * record_size // 4 + 16 + offset < len(buffer)


def test_struct_layout_sanity() -> None:
    # the encoder above against the spec's 28-bit example layout (left: 0x0ABCDEF0 >> 4 ...)
    assert encode_tree([(0x0123456, 0x0789ABC)], 28) == struct.pack(
        ">3sB3s", (0x123456).to_bytes(3, "big"), 0x00, (0x789ABC).to_bytes(3, "big")
    )
    assert encode_tree([(0xF123456, 0x1789ABC)], 28)[3] == 0xF1


# ---- Pair: the two-file lookup over two Trees, answers kept per pair of offsets ----


def test_pair_answers_from_the_dict_and_calls_back_otherwise(tree_type: type[Tree]) -> None:
    from netwatch._mmdb import Pair  # noqa: PLC0415 (built with Tree)

    data, count = small_db(24)
    first, second = tree_type(data, count, 24, 4), tree_type(data, count, 24, 4)
    answers: dict[tuple[int, ...], str] = {(0, 0): "kept"}
    missing: list[tuple[tuple[int, ...], bytes]] = []
    failed: list[bytes] = []

    def on_missing(key: tuple[int, ...], address: bytes) -> str:
        missing.append((key, address))
        return "missing"

    def on_failed(address: bytes) -> str:
        failed.append(address)
        return "failed"

    pair = Pair(first, second, answers, on_missing, on_failed)
    assert pair.lookup(bytes((64, 0, 0, 0))) == "kept"
    assert pair.lookup(bytes((1, 2, 3, 4))) == "missing"  # no record in either: (-1, -1)
    assert pair.lookup(bytes((200, 0, 0, 0))) == "missing"
    assert missing == [((-1, -1), bytes((1, 2, 3, 4))), ((1, 1), bytes((200, 0, 0, 0)))]
    assert pair.lookup(bytes(16)) == "failed"  # 16 bytes in the IPv4 tree: the walk raised
    assert pair.lookup(bytes(5)) == "failed"
    assert pair.lookup("text") == "failed"  # type: ignore[arg-type]
    assert failed == [bytes(16), bytes(5), "text"]
    first.close()
    assert pair.lookup(bytes((64, 0, 0, 0))) == "failed"  # a closed tree raises in the walk
    answers.clear()


def test_pair_passes_on_errors_of_its_callbacks(tree_type: type[Tree]) -> None:
    from netwatch._mmdb import Pair  # noqa: PLC0415

    data, count = small_db(24)
    tree = tree_type(data, count, 24, 4)

    def boom(*_args: object) -> str:
        raise KeyError("from the callback")

    pair: Pair[str] = Pair(tree, tree, {}, boom, boom)
    with pytest.raises(KeyError, match="from the callback"):
        pair.lookup(bytes(4))
    with pytest.raises(KeyError, match="from the callback"):
        pair.lookup(bytes(3))


def test_pair_bad_arguments(tree_type: type[Tree]) -> None:
    from netwatch._mmdb import Pair  # noqa: PLC0415

    data, count = small_db(24)
    tree = tree_type(data, count, 24, 4)

    def ok(*_args: object) -> str:
        return ""

    with pytest.raises(TypeError):
        Pair(tree, "not a tree", {}, ok, ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pair(tree, tree, [], ok, ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        Pair(tree, tree, {}, ok, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pair(tree, tree, {}, ok, ok, answers={})  # type: ignore[call-arg]
    blank = Pair.__new__(Pair)
    with pytest.raises(ValueError, match="not initialised"):
        blank.lookup(bytes(4))


# ---- Pieces: the value of an address's piece of the address space ----


def _pieces() -> Any:
    """``netwatch._mmdb.Pieces`` (Any: the tests give it wrong arguments on purpose)."""
    from netwatch._mmdb import Pieces  # noqa: PLC0415

    return Pieces


def test_pieces_binary_search_at_every_edge(tree_type: type[Tree]) -> None:
    pieces_type = _pieces()
    rng = random.Random(5)
    starts4 = sorted({0, *(rng.getrandbits(32) for _ in range(40)), (1 << 32) - 1})
    starts16 = sorted({0, *(rng.getrandbits(128) for _ in range(40)), 1, (1 << 128) - 1})
    pieces = pieces_type(
        b"".join(s.to_bytes(4, "big") for s in starts4),
        tuple(range(len(starts4))),
        b"".join(s.to_bytes(16, "big") for s in starts16),
        tuple(-i for i in range(len(starts16))),
    )
    for starts, size, sign in ((starts4, 4, 1), (starts16, 16, -1)):
        for i, start in enumerate(starts):
            for value, want in ((start, i), (start - 1, i - 1), (start + 1, i)):
                if 0 <= value < 1 << (8 * size) and not (value == start + 1 and value in starts):
                    assert pieces.get(value.to_bytes(size, "big")) == sign * want, hex(value)
    # high halves equal, low halves deciding (the 128-bit compare in two parts)
    base = 0x2001 << 112
    pieces = pieces_type(bytes(4), ("v4",), bytes(16) + (base + 5).to_bytes(16, "big"), ("a", "b"))
    assert pieces.get((base + 4).to_bytes(16, "big")) == "a"
    assert pieces.get((base + 5).to_bytes(16, "big")) == "b"
    assert pieces.get((base - 1 + (1 << 64)).to_bytes(16, "big")) == "b"
    assert pieces.get(bytes((255,)) * 4) == "v4"


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((b"", (), bytes(16), (1,)), ValueError, "4 bytes each"),
        ((bytes(5), (1,), bytes(16), (1,)), ValueError, "4 bytes each"),
        ((bytes(8), (1,), bytes(16), (1,)), ValueError, "one per value"),
        ((b"\x00\x00\x00\x01", (1,), bytes(16), (1,)), ValueError, "ascend from 0"),
        ((bytes(8), (1, 2), bytes(16), (1,)), ValueError, "ascend from 0"),
        ((bytes(4), (1,), bytes(17), (1,)), ValueError, "16 bytes each"),
        ((bytes(4), (1,), bytes(32), (1, 2)), ValueError, "ascend from 0"),
        ((bytes(4), (1,), bytes(15) + b"\x01", (1,)), ValueError, "ascend from 0"),
        ((bytes(4), [1], bytes(16), (1,)), TypeError, "tuple"),
        ((bytearray(4), (1,), bytes(16), (1,)), TypeError, "bytes"),
    ],
)
def test_pieces_refuse_bad_starts(
    tree_type: type[Tree], args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _pieces()(*args)


def test_pieces_bad_addresses(tree_type: type[Tree]) -> None:
    pieces_type = _pieces()
    pieces = pieces_type(bytes(4), (1,), bytes(16), (2,))
    for size in (0, 3, 5, 15, 17):
        with pytest.raises(ValueError, match="4 or 16 bytes, got"):
            pieces.get(bytes(size))
    with pytest.raises(TypeError, match="must be bytes"):
        pieces.get(bytearray(4))
    with pytest.raises(ValueError, match="not initialised"):
        pieces_type.__new__(pieces_type).get(bytes(4))
    pieces.__init__(bytes(4) + b"\x80\x00\x00\x00", (3, 4), bytes(16), (5,))  # again
    assert pieces.get(b"\x90\x00\x00\x00") == 4


# ---- Tree over a buffer filled lazily, block by block ----


class Filler:
    """Writes blocks of ``data`` into ``buffer`` when asked (a lazily unpacked file)."""

    def __init__(self, data: bytes, block_size: int) -> None:
        self.data = data
        self.block_size = block_size
        self.buffer = bytearray(len(data))
        self.asked: list[int] = []

    def fill(self, block: int) -> None:
        self.asked.append(block)
        start = block * self.block_size
        self.buffer[start : start + self.block_size] = self.data[start : start + self.block_size]


@pytest.mark.parametrize("record_size", [24, 28, 32])
@pytest.mark.parametrize("block_size", [1, 3, 5, 64])
def test_lazy_tree_fills_each_block_it_reads_once(
    tree_type: type[Tree], record_size: int, block_size: int
) -> None:
    data, count = small_db(record_size)
    filler = Filler(data, block_size)
    tree = tree_type(filler.buffer, count, record_size, 4, filler.fill, block_size)
    assert filler.asked == []  # an IPv4 tree: nothing read at construction
    assert tree.find(bytes((64, 0, 0, 0))) == (0, 2)
    assert tree.find(bytes((200, 1, 1, 1))) == (1, 2)
    assert tree.offset(bytes((1, 2, 3, 4))) == -1
    assert len(filler.asked) == len(set(filler.asked))  # once each
    node_bytes = record_size // 4
    assert max(filler.asked) <= (count * node_bytes - 1) // block_size  # tree blocks only


def test_lazy_ipv6_tree_fills_the_path_to_ipv4_at_construction(tree_type: type[Tree]) -> None:
    # 96 nodes each leading left to the next, then an IPv4 subtree
    count = 97
    data = encode_tree([(i + 1, count) for i in range(96)] + [(count, count + 16)], 24)
    data += bytes(16) + b"\x44abcd"
    filler = Filler(data, 16)
    tree = tree_type(filler.buffer, count, 24, 6, filler.fill, 16)
    assert tree.ipv4_depth == 96
    assert sorted(filler.asked) == list(range(96 * 6 // 16))  # every node on the ::/96 path
    assert tree.find(bytes((200, 0, 0, 0))) == (0, 1)


def test_lazy_tree_errors(tree_type: type[Tree]) -> None:
    data, count = small_db(24)

    def broken(block: int) -> None:
        raise OSError(f"block {block} is damaged")

    tree = tree_type(bytearray(len(data)), count, 24, 4, broken, 4)
    with pytest.raises(OSError, match="block 0 is damaged"):
        tree.find(bytes(4))
    with pytest.raises(OSError, match="block 0 is damaged"):
        tree.offset(bytes(4))
    with pytest.raises(OSError, match="block 0 is damaged"):  # the ::/96 walk at construction
        tree_type(bytearray(len(data)), count, 24, 6, broken, 4)
    with pytest.raises(ValueError, match="callable"):
        tree_type(data, count, 24, 4, "not callable", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block size"):
        tree_type(data, count, 24, 4, print, 0)

    holder: list[Tree] = []

    def closing(block: int) -> None:
        holder[0].close()

    holder.append(tree_type(data, count, 24, 4, closing, 4))
    with pytest.raises(ValueError, match="closed while a block was filled"):
        holder[0].find(bytes(4))
    with pytest.raises(ValueError, match="closed"):
        holder[0].find(bytes(4))


def test_lazy_tree_in_a_reference_cycle_is_collected(tree_type: type[Tree]) -> None:
    import gc  # noqa: PLC0415
    import weakref  # noqa: PLC0415

    data, count = small_db(24)

    class Owner:
        def fill(self, block: int) -> None:
            pass

    owner = Owner()
    owner.tree = tree_type(data, count, 24, 4, owner.fill, 4)  # type: ignore[attr-defined]
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


def test_lazy_tree_with_one_block_bigger_than_the_buffer(tree_type: type[Tree]) -> None:
    data, count = small_db(24)
    for block_size in ((1 << 64) - 1, 1 << 63, len(data) + 1):
        filler = Filler(data, len(data))
        tree = tree_type(filler.buffer, count, 24, 4, filler.fill, block_size)
        assert tree.find(bytes((64, 0, 0, 0))) == (0, 2)
        assert tree.find(bytes((200, 0, 0, 0))) == (1, 2)
        assert filler.asked == [0]  # one block, filled once; then the fill is let go


# ---- AddressCache: the per-address answer cache (CachedGeo's, in C) ----


def test_address_cache_answers_counts_and_drops_the_oldest(tree_type: type[Tree]) -> None:
    """Against a Python model of the cache: the same answers, counters and addresses kept,
    over random 4- and 16-byte addresses (some non-public) with a small bound."""
    from netwatch._mmdb import AddressCache  # noqa: PLC0415 (built with Tree)

    asked: list[tuple[str, bytes]] = []

    def is_local(addr: bytes) -> bool:
        return addr[0] == 10

    def fetch4(addr: bytes) -> tuple[str, bytes]:
        asked.append(("4", addr))
        return ("4", addr)

    def fetch6(addr: bytes) -> tuple[str, bytes]:
        asked.append(("6", addr))
        return ("6", addr)

    cache = AddressCache(is_local, fetch4, fetch6, ("none", b""), 8)
    model: dict[bytes, tuple[str, bytes]] = {}
    counts = {"lookups": 0, "hits": 0, "misses": 0, "skipped": 0, "evictions": 0}
    expected_asked: list[tuple[str, bytes]] = []
    rng = random.Random(7)
    pool = [bytes((rng.choice((8, 10, 9)), rng.randrange(4), 0, 1)) for _ in range(20)]
    pool += [bytes((32, 1)) + bytes(13) + bytes((i,)) for i in range(6)]
    for _ in range(2000):
        addr = rng.choice(pool)
        counts["lookups"] += 1
        if addr in model:
            counts["hits"] += 1
            want = model[addr]
        elif is_local(addr):
            counts["skipped"] += 1
            want = ("none", b"")
        else:
            counts["misses"] += 1
            want = ("4" if len(addr) == 4 else "6", addr)
            expected_asked.append(want)
            if len(model) >= 8:
                del model[next(iter(model))]
                counts["evictions"] += 1
            model[addr] = want
        assert cache.lookup(addr) == want
    assert asked == expected_asked
    assert {k: getattr(cache, k) for k in counts} == counts
    assert len(cache) == len(model) == 8
    assert counts["evictions"] > 0 and counts["skipped"] > 0


def test_address_cache_errors_and_callbacks(tree_type: type[Tree]) -> None:
    """A callback that raises leaves nothing cached (the miss counted, as CachedGeo's
    Python form counts it); one that looks the same address up meanwhile does not make it
    kept twice; fetch4 can be replaced; bad arguments are refused."""
    from netwatch._mmdb import AddressCache  # noqa: PLC0415

    def boom(addr: bytes) -> str:
        raise RuntimeError("no answer")

    cache: AddressCache[str] = AddressCache(lambda a: False, boom, boom, "none", 2)
    with pytest.raises(RuntimeError):
        cache.lookup(bytes(4))
    assert (cache.lookups, cache.misses, len(cache)) == (1, 1, 0)
    cache.fetch4 = lambda a: "four"
    assert cache.lookup(bytes(4)) == "four"
    assert len(cache) == 1
    local_boom: AddressCache[str] = AddressCache(boom, boom, boom, "none", 2)
    with pytest.raises(RuntimeError):
        local_boom.lookup(bytes(4))
    assert (local_boom.lookups, local_boom.skipped, local_boom.misses) == (1, 0, 0)

    def again(addr: bytes) -> str:
        if len(inner) < 2:
            inner.append(addr)
            return reentrant.lookup(addr)  # the same address, looked up meanwhile
        return "inner"

    inner: list[bytes] = []
    reentrant: AddressCache[str] = AddressCache(lambda a: False, again, again, "none", 1)
    assert reentrant.lookup(bytes(4)) == "inner"
    assert len(reentrant) == 1
    assert reentrant.lookup(bytes((1, 2, 3, 4))) == "inner"  # drops the one kept, cleanly
    assert (len(reentrant), reentrant.evictions) == (1, 1)
    ok = boom
    bad: Any = AddressCache
    with pytest.raises(ValueError, match="at least 1"):
        bad(ok, ok, ok, None, 0)
    with pytest.raises(TypeError, match="callable"):
        bad(ok, None, ok, None, 4)
    with pytest.raises(TypeError):
        bad(ok, ok, ok, None, 4, extra=1)
    with pytest.raises(TypeError):  # an unhashable address
        AddressCache(ok, ok, ok, None, 4).lookup([1, 2])  # type: ignore[arg-type]
    blank = AddressCache.__new__(AddressCache)
    with pytest.raises(ValueError, match="not initialised"):
        blank.lookup(bytes(4))
    assert len(blank) == 0


def test_address_cache_in_a_reference_cycle_is_collected(tree_type: type[Tree]) -> None:
    import gc  # noqa: PLC0415
    import weakref  # noqa: PLC0415

    from netwatch._mmdb import AddressCache  # noqa: PLC0415

    class Holder:
        cache: AddressCache[str] | None = None

        def fetch(self, addr: bytes) -> str:
            return "x"

    holder = Holder()
    holder.cache = AddressCache(lambda a: False, holder.fetch, holder.fetch, "none", 4)
    holder.cache.lookup(bytes(4))
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    assert ref() is None
