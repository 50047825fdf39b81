"""Link-type registry values and the normalisation applied to file headers."""

from __future__ import annotations

import pytest

from netwatch.capture.linktypes import LinkType, linktype_from_file


def test_registry_values() -> None:
    expected = {
        "NULL": 0,
        "ETHERNET": 1,
        "RAW": 101,
        "LOOP": 108,
        "LINUX_SLL": 113,
        "IPV4": 228,
        "IPV6": 229,
        "LINUX_SLL2": 276,
    }
    assert {name: int(LinkType[name]) for name in expected} == expected


@pytest.mark.parametrize("dlt_raw", [12, 14])
def test_platform_raw_values_read_as_raw(dlt_raw: int) -> None:
    assert linktype_from_file(dlt_raw) == LinkType.RAW
    assert int(LinkType.RAW) == 101
    assert int(LinkType(dlt_raw)) == dlt_raw  # named, though never yielded


def test_fcs_bits_of_the_pcap_header_are_masked() -> None:
    # FCS length 4 (bits 28-31) and the F bit (26) set around LINKTYPE_ETHERNET.
    assert linktype_from_file(0x4000_0000 | 0x0400_0000 | 1) == 1


@pytest.mark.parametrize("value", [0, 1, 101, 113, 276, 147, 65535])
def test_other_values_pass_through(value: int) -> None:
    assert linktype_from_file(value) == value


def test_yielded_value_is_a_plain_int() -> None:
    assert type(linktype_from_file(12)) is int
