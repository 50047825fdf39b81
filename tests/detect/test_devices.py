"""Tests for camera identification: inventory, vendor prefix, discovery, banners."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from netwatch.config import Config
from netwatch.detect.devices import MAX_ADDRESSES, MAX_IPV4, MAX_RESOLVERS, Devices
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.inventory import Inventory
from netwatch.signatures.lan import RESOLVER_HOW

HIK_MAC = bytes.fromhex("bcad281a2b01")
OTHER_MAC = bytes.fromhex("02aabbccdd01")
THIRD_MAC = bytes.fromhex("02aabbccdd02")


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


class _CountingClassifier(AddressClassifier):
    """The real classifier, counting how often it is asked whether an address is local."""

    asked = 0

    def is_site_local(self, addr: bytes) -> bool:
        self.asked += 1
        return super().is_site_local(addr)


def test_the_callers_site_local_answer_is_used_not_asked_again(tmp_path: Path) -> None:
    """Issue 13: the flow record knows each end's site-locality; camera() takes it."""
    vendor = {HIK_MAC[:3]: "Hikvision"}
    classifier = _CountingClassifier(Config.default().site.local_nets)
    d = Devices(Inventory(()), classifier, lambda mac: vendor.get(mac[:3]))
    outside = socket.inet_aton("89.160.20.112")
    assert d.camera(outside, HIK_MAC, False) is None
    assert classifier.asked == 0
    cam = d.camera(ip("10.0.0.5"), HIK_MAC, True)
    assert cam is not None and cam.how == "vendor_oui"
    assert d.camera(ip("10.0.0.5"), HIK_MAC, True) is cam  # cached: not asked at all
    asked = classifier.asked
    assert d.camera(ip("10.0.0.5"), HIK_MAC) is cam  # no answer given: the classifier's
    assert classifier.asked == asked + 1


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
    assert other.camera(ip("10.0.0.9"), THIRD_MAC) is None
    origin.on_learn = other.share  # the parent relays what one worker learnt to the others
    origin.learn(ip("10.0.0.7"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    origin.learn_mac(THIRD_MAC, "Dahua", "dhdiscover_l2")
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
    by_mac = other.camera(ip("10.0.0.9"), THIRD_MAC)
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


# --- combined signals, evidence and confidence (issue 10) ------------------------------------

EDIMAX_MAC = bytes.fromhex("74da38807a08")  # Edimax: cameras AND plugs (a weak prefix)


def test_a_weak_signal_alone_is_no_camera(tmp_path: Path) -> None:
    d = devices(tmp_path)
    d.learn(ip("10.0.0.20"), "D-Link", "hint:mdns_service:dlink-hnap-mdns-service")
    assert d.camera(ip("10.0.0.20"), EDIMAX_MAC) is None  # hint + weak MAC prefix: still none
    assert d.cameras() == []


def test_a_payload_signature_of_a_mixed_vendor_is_only_a_hint(tmp_path: Path) -> None:
    """The TP-Link Smart Home protocol of the HS110 plug named TP-Link, not a camera."""
    d = devices(tmp_path)
    d.learn(ip("10.0.0.21"), "TP-Link", "payload:tplink-shp-tcp")
    assert d.camera(ip("10.0.0.21"), OTHER_MAC) is None
    d.learn(ip("10.0.0.22"), "Hikvision", "payload:hik-sdk")
    assert d.camera(ip("10.0.0.22"), OTHER_MAC) is not None


def test_a_camera_signal_makes_a_camera_with_its_evidence(tmp_path: Path) -> None:
    d = devices(tmp_path)
    d.learn(EDIMAX_MAC, "Edimax", "ssdp_location:ipcam-ssdp-location")  # a 6-byte key: a MAC
    cam = d.camera(ip("10.0.0.23"), EDIMAX_MAC)
    assert cam is not None and (cam.vendor, cam.how, cam.confidence) == (
        "Edimax", "ssdp_location:ipcam-ssdp-location", "med")  # fmt: skip
    assert [(s.how, s.camera) for s in cam.signals] == [
        ("ssdp_location:ipcam-ssdp-location", True),
        ("hint:mac_prefix", False),  # the weak prefix, kept as evidence
    ]


def test_two_kinds_of_camera_signal_give_high_confidence_and_the_model(tmp_path: Path) -> None:
    d = devices(tmp_path)
    mac = bytes.fromhex("b0c554255b0e")
    d.learn(mac, "D-Link", "dhcp_hostname:dlink-dcs-dhcp-hostname", ("DCS-935L", None, None))
    d.learn(
        ip("10.0.0.24"), "D-Link", "ssdp_server:dlink-dcs-ssdp-server", ("DCS-935L", None, None)
    )
    cam = d.camera(ip("10.0.0.24"), mac)
    assert cam is not None and (cam.confidence, cam.model) == ("high", "DCS-935L")
    d.learn(ip("10.0.0.25"), "D-Link", "dhcp_hostname:x")
    d.learn(ip("10.0.0.25"), "D-Link", "dhcp_fingerprint:y")
    one_kind = d.camera(ip("10.0.0.25"), None)
    assert one_kind is not None and one_kind.confidence == "med"  # both DHCP: one kind


def test_cameras_lists_each_device_once_with_how(tmp_path: Path) -> None:
    d = devices(tmp_path)
    mac = bytes.fromhex("b0c554435483")
    d.learn(mac, "D-Link", "dhcp_hostname:dlink-dcs-dhcp-hostname", ("DCS-8000LH", None, None))
    d.learn(ip("10.0.0.26"), "D-Link", "dhcp_hostname:dlink-dcs-dhcp-hostname",
            ("DCS-8000LH", None, None))  # fmt: skip
    # no flow has linked the MAC to the address yet: listed under each
    assert sorted((c.address, c.model) for c in d.cameras()) == [
        ("10.0.0.26", "DCS-8000LH"), ("b0:c5:54:43:54:83", "DCS-8000LH")]  # fmt: skip
    d.camera(ip("10.0.0.26"), mac)
    d.camera(ip("fe80::b2c5:54ff:fe43:5483"), mac)  # the same camera, IPv6 link-local
    (cam,) = d.cameras()
    assert (cam.address, cam.mac, cam.vendor, cam.confidence) == (
        "10.0.0.26", "b0:c5:54:43:54:83", "D-Link", "med")  # fmt: skip
    assert cam.signals[0].as_dict() == {
        "how": "dhcp_hostname:dlink-dcs-dhcp-hostname",
        "vendor": "D-Link",
        "model": "DCS-8000LH",
    }
    d.camera(ip("10.0.0.5"), HIK_MAC)
    assert {c.address: c.signals[0].how for c in d.cameras()}["10.0.0.5"] == "vendor_oui"


def test_dhcp_resolvers_are_kept_bounded_and_are_no_device(tmp_path: Path) -> None:
    d, calls = hooked(tmp_path)
    d.learn(ip("10.0.0.1"), None, RESOLVER_HOW)
    d.learn(ip("10.0.0.1"), None, RESOLVER_HOW)
    assert d.dhcp_resolvers == {ip("10.0.0.1")} and len(calls) == 1
    assert d.camera(ip("10.0.0.1"), None) is None
    for i in range(MAX_RESOLVERS + 5):
        d.learn(ip(f"10.1.0.{i}"), None, RESOLVER_HOW)
    assert len(d.dhcp_resolvers) == MAX_RESOLVERS and d.resolver_evictions == 6
    other = devices(tmp_path)
    other.share(*calls[0])  # a worker's resolver reaches the others
    assert other.dhcp_resolvers == {ip("10.0.0.1")}


def test_an_inventory_camera_stays_managed_at_another_address(tmp_path: Path) -> None:
    d = devices(tmp_path, "cameras:\n  - {name: lobby, ip: 10.0.0.6, group: default}\n")
    assert d.camera(ip("10.0.0.6"), OTHER_MAC) is not None
    moved = d.camera(ip("fe80::1"), OTHER_MAC)
    assert moved is not None and (moved.name, moved.managed) == ("lobby", True)


# --- one device across IPv4, IPv6 and MAC --------------------------------------------------


def test_a_dual_stack_camera_is_one_device_named_by_its_first_address(tmp_path: Path) -> None:
    d = devices(tmp_path)
    v4 = d.camera(ip("10.0.0.5"), HIK_MAC)
    v6 = d.camera(ip("fe80::bead:28ff:fe1a:2b01"), HIK_MAC)
    glob = d.camera(ip("fd00::5"), HIK_MAC)
    assert v4 is not None and v6 is not None and glob is not None
    assert {v4.name, v6.name, glob.name} == {"10.0.0.5"}
    assert (v6.ip, glob.ip) == ("fe80::bead:28ff:fe1a:2b01", "fd00::5")
    (cam,) = d.cameras()
    assert (cam.name, cam.address) == ("10.0.0.5", "10.0.0.5")
    assert cam.addresses == ("10.0.0.5", "fe80::bead:28ff:fe1a:2b01", "fd00::5")
    assert d.linked == 1


def test_signals_learnt_at_one_address_count_at_the_others(tmp_path: Path) -> None:
    d = devices(tmp_path)
    v6 = ip("fd00::8")
    assert d.camera(v6, OTHER_MAC) is None  # cached: nothing known of it yet
    d.learn(ip("10.0.0.8"), "Hikvision", "sadp", ("DS-2CD", "V5.6", "SN1"))
    cam = d.camera(ip("10.0.0.8"), OTHER_MAC)
    assert cam is not None and cam.how == "sadp"
    same = d.camera(v6, OTHER_MAC)
    assert same is not None and (same.name, same.how, same.serial) == ("10.0.0.8", "sadp", "SN1")
    d.learn(ip("10.0.0.8"), "Hikvision", "banner:http_server")  # later evidence reaches v6
    again = d.camera(v6, OTHER_MAC)
    assert again is not None and "banner:http_server" in [s.how for s in again.signals]


def test_an_inventory_camera_bound_at_flow_start_is_managed_at_its_ipv6_address(
    tmp_path: Path,
) -> None:
    d = devices(tmp_path, "cameras:\n  - {name: lobby, ip: 10.0.0.6, group: default}\n")
    v6 = ip("fe80::bead:28ff:fe1a:2b01")
    first = d.camera(v6, HIK_MAC)  # the IPv6 flow ends before the IPv4 one started
    assert first is not None and (first.name, first.managed) == ("fe80::bead:28ff:fe1a:2b01", False)
    assert d.binds
    d.bind(ip("10.0.0.6"), HIK_MAC)  # a flow of the listed address starts
    later = d.camera(v6, HIK_MAC)
    assert later is not None and (later.name, later.managed) == ("lobby", True)
    d.bind(ip("10.0.0.9"), OTHER_MAC)  # not listed: nothing learnt
    assert d.camera(ip("10.0.0.9"), OTHER_MAC) is None
    assert not devices(tmp_path).binds  # zero-config: pipelines skip the call


def test_addresses_per_device_and_devices_are_bounded_and_counted(tmp_path: Path) -> None:
    d = devices(tmp_path)
    for i in range(MAX_ADDRESSES + 3):
        assert d.camera(ip(f"fd00::{i + 1:x}"), HIK_MAC) is not None
    assert d.address_evictions == 3
    (cam,) = d.cameras()
    assert len(cam.addresses) == MAX_ADDRESSES and cam.name == "fd00::1"
    path = tmp_path / "c.yaml"
    small = Devices(
        Inventory(Config.load(path).cameras),
        AddressClassifier(Config.load(path).site.local_nets),
        lambda mac: "Hikvision",
        max_entries=2,
    )
    for i in range(4):
        small.camera(ip(f"10.0.1.{i + 1}"), bytes([2, 0, 0, 0, 0, i]))
    assert (small.linked, small.device_evictions) == (2, 2)


def test_a_router_mac_joins_no_addresses(tmp_path: Path) -> None:
    d = devices(tmp_path)
    for i in range(MAX_IPV4):  # a setup address, then leases: one camera
        cam = d.camera(ip(f"10.0.0.{30 + i}"), HIK_MAC)
        assert cam is not None and cam.name == "10.0.0.30"
    more = d.camera(ip("10.0.0.99"), HIK_MAC)  # one more: the hosts behind a router
    assert more is not None and more.name == "10.0.0.99"
    assert d.camera(ip("10.0.0.31"), HIK_MAC) is not None
    assert len(d.cameras()) == MAX_IPV4 + 1
    d.learn(ip("10.0.1.1"), "Hikvision", "sadp")
    assert d.camera(ip("10.0.1.1"), OTHER_MAC) is not None
    assert d.camera(socket.inet_aton("89.160.20.112"), OTHER_MAC) is None  # a router's MAC
    d.learn(ip("10.0.1.2"), "Dahua", "dhdiscover")
    other = d.camera(ip("10.0.1.2"), OTHER_MAC)
    assert other is not None and (other.name, other.vendor) == ("10.0.1.2", "Dahua")


def test_two_cameras_first_seen_at_one_setup_address_keep_apart(tmp_path: Path) -> None:
    d = devices(tmp_path)
    d.learn_mac(OTHER_MAC, "D-Link", "dlink_setup")
    first = d.camera(ip("192.168.0.20"), HIK_MAC)  # the factory's default address
    second = d.camera(ip("192.168.0.20"), OTHER_MAC)  # later, another camera of one make
    assert first is not None and second is not None
    assert (first.name, second.name) == ("192.168.0.20", "02:aa:bb:cc:dd:01")
    later = d.camera(ip("10.0.0.37"), OTHER_MAC)  # its DHCP lease
    assert later is not None and later.name == "02:aa:bb:cc:dd:01"
    assert sorted(c.name for c in d.cameras()) == ["02:aa:bb:cc:dd:01", "192.168.0.20"]


def test_ids_restored_from_a_previous_run_name_the_camera_at_any_address(
    tmp_path: Path,
) -> None:
    d = devices(tmp_path)
    taken = d.restore_ids(
        [("bc:ad:28:1a:2b:01", "10.0.0.5"), ("nonsense", "x"), ("02:aa:bb:cc:dd:01", "10.0.0.5")]
    )
    assert taken == 1  # a bad MAC, and an id already taken, are left alone
    cam = d.camera(ip("fd00::5"), HIK_MAC)  # seen at its IPv6 address first this time
    assert cam is not None and cam.name == "10.0.0.5"
    assert [c.name for c in d.cameras()] == ["10.0.0.5"]


def test_a_reload_keeps_unlisted_ids_and_routers(tmp_path: Path) -> None:
    old = devices(tmp_path)
    old.camera(ip("fd00::5"), HIK_MAC)  # named by its IPv6 address
    old.camera(socket.inet_aton("89.160.20.112"), OTHER_MAC)  # a router's MAC
    new = devices(tmp_path)
    new.adopt(old)
    cam = new.camera(ip("10.0.0.5"), HIK_MAC)
    assert cam is not None and cam.name == "fd00::5"
    new.learn(ip("10.0.1.1"), "Hikvision", "sadp")
    new.learn(ip("10.0.1.2"), "Dahua", "dhdiscover")
    a, b = new.camera(ip("10.0.1.1"), OTHER_MAC), new.camera(ip("10.0.1.2"), OTHER_MAC)
    assert a is not None and b is not None and (a.name, b.name) == ("10.0.1.1", "10.0.1.2")
