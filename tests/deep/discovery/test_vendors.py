"""Tests for the seed-driven vendor discovery protocols: D-Link 62976, TP-Link 20002, miIO."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.discovery import DISCOVERY_PORTS, parse_discovery
from netwatch.deep.discovery.base import DiscoveryProtocol
from netwatch.deep.discovery.seeded import Fields, seeded
from netwatch.deep.discovery.vendors import (
    DlinkSetupDiscovery,
    MiioDiscovery,
    TplinkTdpDiscovery,
)
from netwatch.signatures.lan import discovery_seed
from tests.profile import examples

# the first 60 bytes of a DCS-935L broadcast (sentinel_dlink-dcs935l_setup-A2.pcap)
DLINK_935L = bytes.fromhex(
    "ffff0600a000b0c554255b0e0a0a0a25000002002701576972656c65737320496e7465726e65742043616d657261"
) + bytes(16)
# a DCS-930L(B) broadcast (sentinel_dlink-dcs930l-daycam_setup-A2.pcap)
DLINK_930L = bytes.fromhex("fdfd6500d100ffffffffffff000000000000010000000000")
MIIO_HELLO = bytes.fromhex("21310020") + b"\xff" * 28
MIIO_REPLY = bytes.fromhex("21310020000000001601c88100000070") + b"\xff" * 16


def tdp_reply(device_type: str, model: str) -> bytes:
    body = {"error_code": 0, "result": {"device_type": device_type, "device_model": model,
            "mac": "AA-BB-CC-DD-EE-FF", "ip": "192.168.0.50", "device_id": "x"}}  # fmt: skip
    return bytes([2, 0, 0, 1]) + bytes(12) + json.dumps(body).encode()


@pytest.mark.parametrize(
    ("cls", "seed_id"),
    [
        (DlinkSetupDiscovery, "dlink-setup-discovery"),
        (TplinkTdpDiscovery, "tplink-tdp"),
        (MiioDiscovery, "xiaomi-miio"),
    ],
)
def test_ports_come_from_the_seed(cls: type[DiscoveryProtocol], seed_id: str) -> None:
    assert cls.port == discovery_seed(seed_id).ports[0]
    assert DISCOVERY_PORTS[cls.port] == cls.parse


def test_dlink_camera_announce() -> None:
    ident = parse_discovery("udp", 62976, 62976, DLINK_935L)
    assert ident is not None
    assert (ident.protocol, ident.vendor, ident.is_camera, ident.is_reply) == (
        "dlink_setup", "D-Link", True, True)  # fmt: skip
    assert (ident.mac, ident.ip) == ("b0:c5:54:25:5b:0e", "10.10.10.37")
    assert ident.device_type == "Wireless Internet Camera"
    other = parse_discovery("udp", 62976, 12345, DLINK_930L)
    assert other is not None and other.is_camera and other.mac is None


def test_tplink_camera_reply_and_plug_reply() -> None:
    cam = parse_discovery("udp", 20002, 40000, tdp_reply("SMART.IPCAMERA", "C200(EU)"))
    assert cam is not None and (cam.is_camera, cam.model, cam.mac) == (
        True, "C200(EU)", "aa:bb:cc:dd:ee:ff")  # fmt: skip
    plug = parse_discovery("udp", 20002, 40000, tdp_reply("SMART.TAPOPLUG", "P100"))
    assert plug is not None and (plug.is_camera, plug.is_reply, plug.model) == (False, True, "P100")
    search = parse_discovery("udp", 40000, 20002, bytes([2, 0, 0, 1]) + bytes(12))
    assert search is not None and not search.is_reply and search.vendor is None


def test_miio_hello_and_reply_are_never_cameras() -> None:
    hello = parse_discovery("udp", 50000, 54321, MIIO_HELLO)
    assert hello is not None and not hello.is_reply
    reply = parse_discovery("udp", 54321, 50000, MIIO_REPLY)
    assert reply is not None and (reply.is_reply, reply.is_camera, reply.serial) == (
        True, False, "1601c881")  # fmt: skip


def test_the_seed_markers_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed without the camera marker gives no camera: the markers are read from the seed."""
    proto = discovery_seed("dlink-setup-discovery")
    trimmed = type(proto).__new__(type(proto))
    for slot in type(proto).__slots__:
        object.__setattr__(trimmed, slot, getattr(proto, slot))
    object.__setattr__(trimmed, "markers", proto.markers[1:])  # drop camera-announce
    monkeypatch.setattr("netwatch.deep.discovery.seeded.discovery_seed", lambda _id: trimmed)
    parse = seeded("dlink-setup-discovery", "dlink_setup", lambda _p, _m: Fields())
    assert parse(DLINK_935L) is None and parse(DLINK_930L) is not None


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400), st.sampled_from([62976, 20002, 54321]))
def test_hostile_payloads_never_raise(payload: bytes, port: int) -> None:
    for prefix in (b"", b"\xff\xff\x00\x00\xa0\x00", b"\x02", b"\x21\x31\x00\x20\x00\x00\x00\x00"):
        parse_discovery("udp", port, port, prefix + payload)
