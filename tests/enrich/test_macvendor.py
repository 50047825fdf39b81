"""Tests for netwatch.enrich.macvendor against the IEEE registry bundled in netaddr."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from netwatch.enrich.macvendor import MacVendors, Registry, _index, mac_text, registry_info


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


def test_iab_index_is_split_at_the_first_iab_lookup() -> None:
    """Both registries are mapped when opened (before a privilege drop); an index is split
    into its lines at its registry's first lookup, so a start whose MACs are outside the two
    IAB OUIs never splits the IAB index."""
    registry = Registry()
    assert registry._oui._lines is None and registry._iab._lines is None
    assert registry.org(bytes.fromhex("001132")) == "Synology Incorporated"
    assert registry._oui._lines is not None and registry._iab._lines is None
    assert registry.org(bytes.fromhex("0050c20010")) == "JMBS Developpements"
    assert registry._iab._lines is not None
