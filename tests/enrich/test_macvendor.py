"""Tests for netwatch.enrich.macvendor against the IEEE registry bundled in netaddr."""

from __future__ import annotations

import random
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from netwatch.enrich.macvendor import (
    FINDS_BEFORE_SPLIT,
    MacVendors,
    Registry,
    _find_line,
    _index,
    _index_lines,
    mac_text,
    registry_info,
)


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@pytest.fixture(scope="module")
def vendors() -> MacVendors:
    return MacVendors()


def test_hikvision(vendors: MacVendors) -> None:
    assert (
        vendors.vendor(mac("bc:ad:28:12:34:56")) == "Hangzhou Hikvision Digital Technology Co.,Ltd."
    )


def test_dahua(vendors: MacVendors) -> None:
    assert vendors.vendor(mac("3c:ef:8c:00:11:22")) == "Zhejiang Dahua Technology Co., Ltd."


@pytest.mark.parametrize(
    "text",
    [
        "be:ad:28:12:34:56",  # Hikvision OUI with the locally administered bit set
        "02:00:00:00:00:01",
        "da:a1:19:00:00:01",  # a randomised (private) Wi-Fi MAC
        "01:00:5e:00:00:fb",  # IPv4 multicast
        "33:33:00:00:00:01",  # IPv6 multicast
        "ff:ff:ff:ff:ff:ff",
    ],
)
def test_local_and_group_macs_have_no_vendor(vendors: MacVendors, text: str) -> None:
    assert vendors.vendor(mac(text)) is None


def test_unregistered_and_placeholder_registrations(vendors: MacVendors) -> None:
    assert (
        vendors.vendor(mac("b0:b3:53:60:00:01")) is None
    )  # MA-M block: "IEEE Registration Authority"
    assert vendors.vendor(b"\x00\x01") is None  # not a MAC


def test_iab_blocks_are_resolved_per_36_bit_prefix(vendors: MacVendors) -> None:
    first = vendors.vendor(mac("00:50:c2:00:10:01"))
    second = vendors.vendor(mac("00:50:c2:00:20:01"))
    assert first == "JMBS Developpements"
    assert second is not None
    assert second != first


def test_cache_per_prefix() -> None:
    vendors = MacVendors(max_entries=2)
    assert vendors.vendor(mac("bc:ad:28:00:00:01")) is not None
    assert vendors.vendor(mac("bc:ad:28:ff:ff:ff")) is not None
    assert (vendors.hits, vendors.misses) == (1, 1)
    vendors.vendor(mac("3c:ef:8c:00:00:01"))
    vendors.vendor(mac("00:50:c2:00:10:01"))  # third key: cache cleared first
    assert vendors.misses == 3
    assert vendors.vendor(mac("00:50:c2:00:10:02")) == "JMBS Developpements"
    assert vendors.hits == 2


def test_mac_text() -> None:
    assert mac_text(bytes.fromhex("bcad28a1b2c3")) == "bc:ad:28:a1:b2:c3"
    assert mac_text(b"\x00" * 6) == "00:00:00:00:00:00"


def test_registry_info() -> None:
    info = registry_info()
    assert info.netaddr_version
    assert info.oui_entries > 30_000  # netaddr 1.3.0 ships 35,087 MA-L entries
    assert info.iab_entries > 4_000
    assert info.path.endswith("oui.txt")
    assert info.snapshot_date is None  # the bundled files carry no date


def _whole_registry() -> dict[bytes, str]:
    """Every record of netaddr's registry files, read front to back with the record
    patterns (the reference the indexed reader must agree with)."""
    oui = re.compile(
        r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*$", re.MULTILINE
    )
    iab = re.compile(
        r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*\n"
        r"([0-9A-F]{4})[0-9A-F]{2}-[0-9A-F]{6}[ \t]+\(base 16\)",
        re.MULTILINE,
    )
    base = resources.files("netaddr.eui")
    orgs: dict[bytes, str] = {}
    for pattern, name, extra in ((oui, "oui.txt", ()), (iab, "iab.txt", (5,))):
        text = base.joinpath(name).read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        for m in pattern.finditer(text):
            orgs.setdefault(bytes.fromhex("".join(m.group(1, 2, 3, *extra))), m[4])
    return orgs


def test_indexed_registry_agrees_with_reading_every_record() -> None:
    whole = _whole_registry()
    assert len(whole) > 35_000
    registry = Registry()
    assert {key: registry.org(key) for key in whole} == whole
    assert registry.org(b"\xff\xff\xfe") == ""  # not registered
    assert registry.org(bytes.fromhex("0050c20010")) == "JMBS Developpements"
    assert registry.org(bytes.fromhex("0050c20011")) == ""  # not a 36-bit block key
    assert registry.org(b"\x00") == ""


def test_index_keeps_each_keys_first_line(tmp_path: Path) -> None:
    """netaddr's .idx lines are ``key,offset,size``; a key listed twice keeps its first line
    (the record netaddr itself would read first)."""
    idx = tmp_path / "oui.idx"
    idx.write_bytes(b"00000A,10,5\n00000B,20,6\n00000A,30,7\n00000C,40,8\n")
    assert _index(idx) == {
        b"00000A": b"00000A,10,5",
        b"00000B": b"00000B,20,6",
        b"00000C": b"00000C,40,8",
    }


def test_index_is_searched_for_the_first_keys_then_split() -> None:
    """Both registries are mapped when opened (before a privilege drop); the first
    FINDS_BEFORE_SPLIT keys of a registry are searched for in its index, the next one splits
    the index into a dict: a start whose MACs are outside the two IAB OUIs never splits the
    IAB index."""
    registry = Registry()
    assert registry._oui._lines is None and registry._iab._lines is None
    assert registry.org(bytes.fromhex("001132")) == "Synology Incorporated"
    assert registry.org(bytes.fromhex("0050c20010")) == "JMBS Developpements"
    assert (registry._oui.finds, registry._iab.finds) == (1, 1)
    assert registry._oui._lines is None and registry._iab._lines is None
    whole = _whole_registry()
    ouis = [key for key in whole if len(key) == 3][: FINDS_BEFORE_SPLIT + 1]
    assert [registry.org(key) for key in ouis] == [whole[key] for key in ouis]
    assert registry._oui.finds == FINDS_BEFORE_SPLIT and registry._oui._lines is not None
    assert registry._iab._lines is None


@pytest.mark.parametrize("name", ["oui.idx", "iab.idx"])
def test_a_searched_line_is_the_split_index_line(name: str) -> None:
    """For netaddr's indexes: every duplicated key, the first and last lines, 1,500 keys at
    random and keys not in the index give the line the split index gives."""
    data = resources.files("netaddr.eui").joinpath(name).read_bytes()
    split = _index_lines(data)
    keys = [line.partition(b",")[0] for line in data.split()]
    dups = [key for key, n in Counter(keys).items() if n > 1]
    sample = random.Random(13).sample(keys, 1_500)
    for key in [*dups, keys[0], keys[-1], *sample, b"99999999999", b"1", b""]:
        assert _find_line(data, key) == split.get(key), key


def test_a_searched_line_is_a_keys_first_line() -> None:
    data = b"10,1,5\n100,10,5\n11,20,6\n10,30,7\n12,40,8"
    assert [_find_line(data, k) for k in (b"10", b"11", b"12", b"100", b"1", b"0")] == [
        b"10,1,5",
        b"11,20,6",
        b"12,40,8",
        b"100,10,5",
        None,
        None,
    ]
