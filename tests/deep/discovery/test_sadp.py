"""Tests for netwatch.deep.discovery.sadp: SADP XML probes and replies, layer 2, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.discovery.identity import MAX_PAYLOAD_BYTES, REDACTED, DeviceIdentity
from netwatch.deep.discovery.sadp import parse_sadp, parse_sadp_l2
from tests.deep.discovery.builders import SADP_PROBE, sadp_probe_match
from tests.deep.test_dns import mutate
from tests.profile import examples


def test_probe_match_gives_the_device_identity() -> None:
    identity = parse_sadp(sadp_probe_match())
    assert identity is not None
    assert identity.protocol == "sadp"
    assert (identity.vendor, identity.model, identity.device_type) == (
        "Hikvision",
        "DS-2CD2043G0-I",
        "139960",
    )
    assert identity.firmware == "V5.6.3build 190923"
    assert identity.serial == "DS-2CD2043G0-I20190101AAWRC12345678"
    assert (identity.mac, identity.ip) == ("44:19:b6:12:34:56", "192.168.1.64")
    assert (identity.cloud_enabled, identity.is_camera, identity.is_reply) == (True, True, True)
    assert ("OEMInfo", "N/A") in identity.raw_fields
    assert identity.raw_fields[0] == ("Uuid", "11223344-5566-7788-9900-112233445566")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("false", False), ("flase", False), ("", None), ("x", None)],
)
def test_hc_platform_enable_including_the_flase_spelling(value: str, expected: bool | None) -> None:
    identity = parse_sadp(sadp_probe_match(HCPlatformEnable=value))
    assert identity is not None
    assert identity.cloud_enabled is expected


def test_client_probe_is_neither_reply_nor_camera() -> None:
    identity = parse_sadp(SADP_PROBE)
    assert identity == DeviceIdentity(
        protocol="sadp", vendor=None, model=None, firmware=None, serial=None, mac=None, ip=None,
        device_type=None, cloud_enabled=None, is_camera=False, is_reply=False,
        raw_fields=(("Uuid", "7A1C2B3D-0000-4E5F-8000-112233445566"), ("Types", "inquiry")),
    )  # fmt: skip


def test_set_hc_platform_request_keeps_evidence_and_redacts_the_password() -> None:
    payload = (
        b"<Probe><Uuid>1</Uuid><Types>SetHCPlatform</Types><HCPlatformEnable>true"
        b"</HCPlatformEnable><Password>c2VjcmV0</Password></Probe>"
    )
    identity = parse_sadp(payload)
    assert identity is not None
    assert (identity.is_reply, identity.cloud_enabled) == (False, None)
    assert identity.raw_fields == (
        ("Uuid", "1"),
        ("Types", "SetHCPlatform"),
        ("HCPlatformEnable", "true"),
        ("Password", REDACTED),
    )


def test_missing_fields_are_none_and_ipv6_is_the_fallback() -> None:
    bare = parse_sadp(b"<ProbeMatch><Types>inquiry</Types></ProbeMatch>")
    assert bare is not None
    assert bare.is_camera
    assert (bare.model, bare.serial, bare.mac, bare.ip, bare.cloud_enabled) == (None,) * 5
    v6 = parse_sadp(
        sadp_probe_match(IPv4Address="0.0.0.0", IPv6Address="fe80::4619:b6ff:fe12:3456")
    )
    assert v6 is not None
    assert v6.ip == "fe80::4619:b6ff:fe12:3456"
    odd = parse_sadp(sadp_probe_match(MAC="not-a-mac", IPv4Address="192.168.001.064"))
    assert odd is not None
    assert (odd.mac, odd.ip) == (None, None)
    assert ("MAC", "not-a-mac") in odd.raw_fields


def test_unicode_entities_and_control_characters() -> None:
    payload = sadp_probe_match(
        DeviceDescription="网络摄像机 &amp; DS&#x2D;2CD", DeviceSN="SN\x01\x7f42", OEMInfo="&evil;"
    )
    identity = parse_sadp(payload)
    assert identity is not None
    assert identity.model == "网络摄像机 & DS-2CD"
    assert identity.serial == "SN42"
    assert ("OEMInfo", "&evil;") in identity.raw_fields  # never expanded
    latin = parse_sadp(
        b"<ProbeMatch><DeviceDescription>\xff\xfeCam</DeviceDescription></ProbeMatch>"
    )
    assert latin is not None
    assert latin.model == "\ufffd\ufffdCam"


def test_documents_with_a_dtd_are_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<ProbeMatch><DeviceDescription>&lol2;</DeviceDescription></ProbeMatch>"
    )
    assert parse_sadp(laughs) is None
    external = (
        b'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><Probe><Types>inquiry</Types></Probe>'
    )
    assert parse_sadp(external) is None


def test_oversized_input_is_read_up_to_64_kib() -> None:
    head = sadp_probe_match(DeviceSN="")[: -len(b"</ProbeMatch>\n")]
    padding = b"<Pad>" + b"x" * MAX_PAYLOAD_BYTES + b"</Pad>"
    payload = head + padding + b"<DeviceSN>LATE</DeviceSN></ProbeMatch>" + b" " * 1_000_000
    identity = parse_sadp(payload)
    assert identity is not None
    assert identity.model == "DS-2CD2043G0-I"
    assert identity.serial is None  # beyond the cap


def test_many_elements_keep_bounded_evidence() -> None:
    body = b"".join(b"<F%d>%d</F%d>" % (i, i, i) for i in range(5000))
    identity = parse_sadp(b"<ProbeMatch>" + body + b"</ProbeMatch>")
    assert identity is not None
    assert len(identity.raw_fields) == 32


@pytest.mark.parametrize(
    "payload",
    [b"", b"<Foo><Types>inquiry</Types></Foo>", b"<ProbeMatches/>", b"Probe", b"\x00" * 40],
)
def test_not_sadp_is_none(payload: bytes) -> None:
    assert parse_sadp(payload) is None


# ---- layer 2 (EtherType 0x8033) ---------------------------------------------------------

L2_HEADER = bytes([0x21, 0x02, 0x01, 0x42]) + bytes(range(4, 38))


def test_l2_frame_is_recognised_and_kept_as_evidence() -> None:
    identity = parse_sadp_l2(L2_HEADER + b"\x00" * 16)
    assert identity is not None
    assert identity.protocol == "sadp_l2"
    assert (identity.vendor, identity.mac, identity.ip) == (None, None, None)
    assert (identity.is_reply, identity.is_camera) == (False, False)  # type 2: a request
    assert dict(identity.raw_fields) == {
        "marker": "0x21",
        "version": "0x02",
        "header": L2_HEADER.hex(),
        "payload_bytes": "16",
    }


def test_l2_response_is_a_hikvision_device() -> None:
    identity = parse_sadp_l2(bytes([0x21, 0x01]) + L2_HEADER[2:])
    assert identity is not None
    assert (identity.is_reply, identity.is_camera, identity.vendor) == (True, True, "Hikvision")


@pytest.mark.parametrize("payload", [b"", L2_HEADER[:37], b"\x22" + L2_HEADER[1:]])
def test_l2_short_or_wrong_marker_is_none(payload: bytes) -> None:
    assert parse_sadp_l2(payload) is None


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    for result in (parse_sadp(data), parse_sadp_l2(data), parse_sadp(b"<ProbeMatch>" + data)):
        assert result is None or isinstance(result, DeviceIdentity)


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=12), st.sampled_from([sadp_probe_match(), SADP_PROBE, L2_HEADER]))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes, message: bytes) -> None:
    payload = mutate(message, noise)
    for result in (parse_sadp(payload), parse_sadp_l2(payload)):
        assert result is None or isinstance(result, DeviceIdentity)
