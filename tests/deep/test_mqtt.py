"""Tests for netwatch.deep.mqtt: CONNECT packets of MQTT 3.1, 3.1.1 and 5."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.mqtt import MqttConnect, parse_connect
from netwatch.testing import pcapgen as g
from tests.flow.test_inspect import NVR, run
from tests.profile import examples


def connect(name: bytes, level: int, client_id: bytes, properties: bytes | None = None) -> bytes:
    variable = len(name).to_bytes(2, "big") + name + bytes((level, 0x02)) + b"\x00\x3c"
    if properties is not None:
        variable += bytes((len(properties),)) + properties
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    return b"\x10" + bytes((len(body),)) + body


def test_connect_versions() -> None:
    assert parse_connect(connect(b"MQTT", 4, b"cam-01")) == MqttConnect(4, "cam-01")
    assert parse_connect(connect(b"MQIsdp", 3, b"doorbell")) == MqttConnect(3, "doorbell")
    assert parse_connect(connect(b"MQTT", 5, b"nvr", b"\x11\x00\x00\x00\x0a")) == MqttConnect(
        5, "nvr"
    )


def test_not_a_connect() -> None:
    assert parse_connect(connect(b"MQTT", 9, b"x")) is None  # unknown level
    assert parse_connect(connect(b"HTTP", 4, b"x")) is None
    assert parse_connect(b"\x20\x02\x00\x00") is None  # CONNACK
    assert parse_connect(b"\x10\xff\xff\xff\xff\x7f") is None  # a varint of five bytes


def test_flow_on_1883_is_mqtt() -> None:
    s = g.TcpSession(NVR, 40300, 1883)
    (flow,), _ = run([*s.handshake(), *s.send(True, connect(b"MQTT", 4, b"cam-01"))])
    assert flow.app is not None
    assert (flow.app["service"], flow.app["mqtt_client_id"]) == (["mqtt"], "cam-01")


@settings(max_examples=examples(1000), deadline=None)
@given(st.binary(max_size=80))
def test_hostile_bytes_never_raise(data: bytes) -> None:
    parse_connect(b"\x10" + data)
