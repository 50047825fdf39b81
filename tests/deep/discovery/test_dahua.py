"""Tests for netwatch.deep.discovery.dahua: DHIP (37810) and legacy (5050) discovery."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.discovery.dahua import parse_dahua_5050, parse_dhip
from netwatch.deep.discovery.identity import DeviceIdentity
from tests.deep.discovery.builders import (
    DHIP_SEARCH,
    dahua_5050_probe,
    dahua_5050_reply,
    dhip,
    dhip_notify,
)
from tests.deep.test_dns import mutate
from tests.profile import examples


def test_notify_dev_info_gives_the_device_identity() -> None:
    identity = parse_dhip(dhip(dhip_notify()))
    assert identity is not None
    assert (identity.protocol, identity.vendor) == ("dhip", "Dahua")
    assert (identity.model, identity.device_type) == ("IPC-HDW1230S", "IPC")
    assert (identity.firmware, identity.serial) == ("2.800.0000000.28.R", "4J01234PAZ12345")
    assert (identity.mac, identity.ip) == ("b4:4c:3b:f4:e3:01", "192.168.1.108")
    assert (identity.cloud_enabled, identity.is_camera, identity.is_reply) == (None, True, True)
    evidence = dict(identity.raw_fields)
    assert evidence["method"] == "client.notifyDevInfo"
    assert evidence["params.deviceInfo.IPv4Address.DhcpEnable"] == "true"
    assert evidence["params.deviceInfo.Vendor"] == "Dahua"


def test_oem_reply_keeps_the_announced_brand_as_evidence() -> None:
    body = dhip_notify(DeviceClass="BSC", DeviceType="SS 3530 MF FACE W", Vendor="Intelbras")
    identity = parse_dhip(dhip(body))
    assert identity is not None
    assert (identity.vendor, identity.model, identity.device_type) == (
        "Dahua",
        "SS 3530 MF FACE W",
        "BSC",
    )
    assert ("params.deviceInfo.Vendor", "Intelbras") in identity.raw_fields


def test_search_is_a_client_probe() -> None:
    identity = parse_dhip(dhip(DHIP_SEARCH))
    assert identity is not None
    assert (identity.is_reply, identity.is_camera, identity.vendor) == (False, False, None)
    assert ("method", "DHDiscover.search") in identity.raw_fields
    assert ("params.uni", "1") in identity.raw_fields


def test_missing_fields_and_mac_fallbacks() -> None:
    body: dict[str, object] = {"method": "client.notifyDevInfo", "params": {"deviceInfo": {}}}
    bare = parse_dhip(dhip(body))
    assert bare is not None
    assert bare.is_camera
    assert (bare.model, bare.serial, bare.mac, bare.ip, bare.firmware) == (None,) * 5
    body = dhip_notify(MAC="3C-EF-8C-00-11-22", IPv4Address="10.0.0.1")
    body["mac"] = 12
    fallback = parse_dhip(dhip(body))
    assert fallback is not None
    assert (fallback.mac, fallback.ip) == ("3c:ef:8c:00:11:22", None)


def test_unicode_values() -> None:
    identity = parse_dhip(dhip(dhip_notify(DeviceType="大华 IPC\u0000", SerialNo="序列号")))
    assert identity is not None
    assert (identity.model, identity.serial) == ("大华 IPC", "序列号")


def test_declared_length_longer_than_the_capture_uses_what_is_there() -> None:
    assert parse_dhip(dhip(dhip_notify(), declared=5000)) == parse_dhip(dhip(dhip_notify()))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        dhip(dhip_notify())[:40],  # body cut
        dhip(dhip_notify()).replace(b"DHIP", b"DHIQ", 1),
        dhip({"method": "client.notifyDevInfo", "params": []}),
        dhip({"method": "configManager.getConfig", "params": {"deviceInfo": {}}}),
        dhip(b"[1, 2, 3]"),
        dhip(b"{" * 20000 + b"}" * 20000),  # nesting deeper than the recursion limit
        dhip(b'{"method": 1e99999, "x": ' + b"9" * 5000 + b"}"),
    ],
)
def test_not_a_dhip_discovery_message_is_none(payload: bytes) -> None:
    assert parse_dhip(payload) is None


# ---- legacy UDP 5050 ---------------------------------------------------------------------


@pytest.mark.parametrize("last", [0, 1])
def test_legacy_search_in_both_documented_forms(last: int) -> None:
    identity = parse_dahua_5050(dahua_5050_probe(last))
    assert identity is not None
    assert (identity.protocol, identity.is_reply, identity.is_camera) == (
        "dahua_5050",
        False,
        False,
    )
    assert identity.raw_fields == (("header", f"a301000{last}"),)


def test_legacy_reply_gives_the_device_identity() -> None:
    identity = parse_dahua_5050(dahua_5050_reply())
    assert identity == DeviceIdentity(
        protocol="dahua_5050", vendor="Dahua", model="IPC-HFW4300SP", firmware=None,
        serial=None, mac="3c:ef:8c:01:02:03", ip="192.168.1.108", device_type="IPC-HFW4300S",
        cloud_enabled=None, is_camera=True, is_reply=True,
        raw_fields=(
            ("DeviceType", "IPC-HFW4300S"), ("IPAddress", "192.168.1.108"),
            ("MAC", "3c:ef:8c:01:02:03"), ("Model", "IPC-HFW4300SP"),
        ),
    )  # fmt: skip


def test_legacy_reply_without_section_two() -> None:
    reply = bytearray(dahua_5050_reply()[:120])
    reply[2] = 0
    identity = parse_dahua_5050(bytes(reply))
    assert identity is not None
    assert (identity.mac, identity.model, identity.ip) == (None, None, "192.168.1.108")


@pytest.mark.parametrize(
    "payload", [b"", b"\xa3\x01", dahua_5050_reply()[:59], b"\xb3\x01" + bytes(200), b"\xff" * 64]
)
def test_legacy_short_or_foreign_is_none(payload: bytes) -> None:
    assert parse_dahua_5050(payload) is None


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    framed = struct.pack("<I4sIIIIII", 32, b"DHIP", 0, 0, len(data), 0, len(data), 0) + data
    for result in (parse_dhip(data), parse_dhip(framed), parse_dahua_5050(data),
                   parse_dahua_5050(b"\xb3\x00" + data)):  # fmt: skip
        assert result is None or isinstance(result, DeviceIdentity)


MESSAGES = [dhip(dhip_notify()), dhip(DHIP_SEARCH), dahua_5050_reply(), dahua_5050_probe()]


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=12), st.sampled_from(MESSAGES))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes, message: bytes) -> None:
    payload = mutate(message, noise)
    for result in (parse_dhip(payload), parse_dahua_5050(payload)):
        assert result is None or isinstance(result, DeviceIdentity)
