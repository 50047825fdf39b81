"""Tests for netwatch.deep.discovery.xiongmai: XMEye search (1530) and reply (1531) on UDP 34569."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.deep.discovery.xiongmai import host_ip, parse_xiongmai
from tests.deep.discovery.builders import xiongmai, xiongmai_reply
from tests.deep.test_dns import mutate
from tests.profile import examples


def test_search_reply_gives_the_device_identity() -> None:
    identity = parse_xiongmai(xiongmai_reply())
    assert identity is not None
    assert (identity.protocol, identity.vendor, identity.model) == ("xiongmai", "Xiongmai", None)
    assert (identity.serial, identity.mac) == ("41e6853ada5e9323", "00:12:31:08:bb:97")
    assert (identity.ip, identity.device_type, identity.firmware) == ("192.168.1.100", "1", None)
    assert (identity.cloud_enabled, identity.is_camera, identity.is_reply) == (None, True, True)
    evidence = dict(identity.raw_fields)
    assert (evidence["msg"], evidence["version"]) == ("1531", "1")
    assert evidence["NetWork.NetCommon.HostName"] == "LocalHost"
    assert evidence["Ret"] == "100"


def test_version_unicode_and_dotted_address() -> None:
    identity = parse_xiongmai(
        xiongmai_reply(Version="V4.02.R11.34500140.12001", HostIP="10.1.2.3", SN="雄迈")
    )
    assert identity is not None
    assert (identity.firmware, identity.ip, identity.serial) == (
        "V4.02.R11.34500140.12001",
        "10.1.2.3",
        "雄迈",
    )


def test_search_is_a_client_probe() -> None:
    identity = parse_xiongmai(xiongmai(1530))
    assert identity is not None
    assert (identity.is_reply, identity.is_camera, identity.vendor) == (False, False, None)
    assert identity.raw_fields == (("msg", "1530"), ("version", "0"))


def test_missing_fields_are_none() -> None:
    identity = parse_xiongmai(xiongmai(1531, b'{"NetWork.NetCommon": {}}'))
    assert identity is not None
    assert identity.is_camera
    assert (identity.serial, identity.mac, identity.ip, identity.device_type) == (None,) * 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0x6401A8C0", "192.168.1.100"),
        ("0x0", None),
        ("0x-1", None),
        ("0x123456789", None),
        ("0xZZ", None),
        ("fe80::1", "fe80::1"),
        (17, None),
        (None, None),
    ],
)
def test_host_ip_encodings(value: object, expected: str | None) -> None:
    assert host_ip(value) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        xiongmai(1531)[:19],
        xiongmai(1532, b'{"NetWork.NetCommon": {}}'),  # a settings write, not discovery
        b"\xfe" + xiongmai_reply()[1:],
        xiongmai(1531, json.dumps({"Ret": 100}).encode()),
        xiongmai(1531, b'{"NetWork.NetCommon": []}'),
        xiongmai_reply()[:60],  # body cut
    ],
)
def test_not_a_discovery_message_is_none(payload: bytes) -> None:
    assert parse_xiongmai(payload) is None


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    for result in (parse_xiongmai(data), parse_xiongmai(xiongmai(1531, data))):
        assert result is None or isinstance(result, DeviceIdentity)


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=12), st.sampled_from([xiongmai_reply(), xiongmai(1530)]))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes, message: bytes) -> None:
    result = parse_xiongmai(mutate(message, noise))
    assert result is None or isinstance(result, DeviceIdentity)
