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
