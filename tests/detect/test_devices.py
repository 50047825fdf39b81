"""Tests for camera identification: inventory, vendor prefix, discovery, banners."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from netwatch.config import Config
from netwatch.detect.devices import Devices
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.inventory import Inventory

HIK_MAC = bytes.fromhex("bcad281a2b01")
OTHER_MAC = bytes.fromhex("02aabbccdd01")


def devices(tmp_path: Path, cameras: str = "") -> Devices:
    path = tmp_path / "c.yaml"
    path.write_text(cameras)
    cfg = Config.load(path)
    vendor = {HIK_MAC[:3]: "Hikvision"}
    return Devices(
        Inventory(cfg.cameras),
        AddressClassifier(cfg.site.local_nets),
        lambda mac: vendor.get(mac[:3]),
    )


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_vendor_prefix_and_site_only(tmp_path: Path) -> None:
    d = devices(tmp_path)
    cam = d.camera(ip("10.0.0.5"), HIK_MAC)
    assert cam is not None and (cam.vendor, cam.how, cam.managed) == (
        "Hikvision",
        "vendor_oui",
        False,
    )
    assert d.camera(ip("10.0.0.6"), OTHER_MAC) is None
    assert d.camera(socket.inet_aton("89.160.20.112"), HIK_MAC) is None  # not in the site


def test_inventory_wins_and_names_the_device(tmp_path: Path) -> None:
    d = devices(tmp_path, "cameras:\n  - {name: lobby, ip: 10.0.0.6, group: default}\n")
    cam = d.camera(ip("10.0.0.6"), OTHER_MAC)
    assert cam is not None and (cam.name, cam.managed, cam.how) == ("lobby", True, "inventory")


def test_discovery_details_and_banner_does_not_override(tmp_path: Path) -> None:
    d = devices(tmp_path)
    d.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    d.learn(ip("10.0.0.7"), "Hikvision", "banner:http_server")
    cam = d.camera(ip("10.0.0.7"), OTHER_MAC)
    assert cam is not None and cam.how == "sadp"
    assert cam.details() == {
        "device_model": "DS-2CD",
        "device_firmware": "V5.6",
        "device_serial": "SN1",
    }


def test_layer2_learning_by_mac(tmp_path: Path) -> None:
    d = devices(tmp_path)
    assert d.camera(ip("10.0.0.8"), OTHER_MAC) is None
    d.learn_mac(OTHER_MAC, "Hikvision", "sadp_l2")
    cam = d.camera(ip("10.0.0.8"), OTHER_MAC)
    assert cam is not None and cam.how == "sadp_l2"


# --- sharing devices between capture workers ----------------------------------------------

Learnt = tuple[str, bytes, str | None, str, object]


def hooked(tmp_path: Path) -> tuple[Devices, list[Learnt]]:
    d = devices(tmp_path)
    calls: list[Learnt] = []
    d.on_learn = lambda kind, key, vendor, how, details: calls.append(
        (kind, key, vendor, how, details)
    )
    return d, calls


def test_on_learn_for_discovery_and_layer2(tmp_path: Path) -> None:
    d, calls = hooked(tmp_path)
    d.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    d.learn_mac(OTHER_MAC, "Dahua", "dhdiscover_l2")
    assert calls == [
        ("ip", ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1")),
        ("mac", OTHER_MAC, "Dahua", "dhdiscover_l2", None),
    ]


def test_on_learn_only_for_something_new(tmp_path: Path) -> None:
    d, calls = hooked(tmp_path)
    d.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    d.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))  # the same
    d.learn(ip("10.0.0.7"), "Hikvision", "banner:http_server")  # new evidence, shared
    d.learn(ip("10.0.0.7"), "Hikvision", "banner:http_server")  # the same
    d.learn_mac(OTHER_MAC, "Dahua", "dhdiscover_l2")
    d.learn_mac(OTHER_MAC, "Dahua", "dhdiscover_l2")
    assert [c[0] for c in calls] == ["ip", "ip", "mac"]
    cam = d.camera(ip("10.0.0.7"), None)
    assert cam is not None and cam.how == "sadp"  # the banner does not override
    assert [s.how for s in cam.signals] == ["sadp", "banner:http_server"]
    d.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.7", "SN1"))  # new firmware
    assert calls[-1] == ("ip", ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.7", "SN1"))


def test_share_does_not_call_on_learn_and_the_camera_is_found(tmp_path: Path) -> None:
    origin, _ = hooked(tmp_path)
    other, echoed = hooked(tmp_path)
    hook = other.on_learn
    assert other.camera(ip("10.0.0.7"), OTHER_MAC) is None  # cached as "not a camera"
    assert other.camera(ip("10.0.0.9"), OTHER_MAC) is None
    origin.on_learn = other.share  # the parent relays what one worker learnt to the others
    origin.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    origin.learn_mac(OTHER_MAC, "Dahua", "dhdiscover_l2")
    assert echoed == []
    assert other.on_learn is hook  # restored after each share
    cam = other.camera(ip("10.0.0.7"), OTHER_MAC)
    assert cam is not None
    assert (cam.vendor, cam.how, cam.managed) == ("Hikvision", "sadp", False)
    assert cam.details() == {
        "device_model": "DS-2CD",
        "device_firmware": "V5.6",
        "device_serial": "SN1",
    }
    by_mac = other.camera(ip("10.0.0.9"), OTHER_MAC)
    assert by_mac is not None and (by_mac.vendor, by_mac.how) == ("Dahua", "dhdiscover_l2")
    # what the other worker learns itself is still reported
    other.learn(ip("10.0.0.8"), None, "onvif")
    assert echoed == [("ip", ip("10.0.0.8"), None, "onvif", None)]


def test_share_accepts_details_as_a_list(tmp_path: Path) -> None:
    d, calls = hooked(tmp_path)
    d.share("ip", ip("10.0.0.7"), "Hikvision", "sadp", ["DS-2CD", None, "SN1"])
    cam = d.camera(ip("10.0.0.7"), None)
    assert cam is not None and cam.details() == {
        "device_model": "DS-2CD",
        "device_serial": "SN1",
    }
    assert calls == []
