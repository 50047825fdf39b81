"""Tests for the consumer-camera LAN fingerprints of seeds/device_fingerprints.yaml.

What Home Assistant's discovery matchers and python-miio's naming say about Reolink, Xiaomi
(miIO), Axis/DoorBird, Ring, Blink, Wyze, Arlo, Nest, Netatmo and UniFi devices, read
through :class:`netwatch.signatures.lan.LanMatcher`: a camera name makes a camera, a brand
name or prefix shared with hubs, chimes, plugs or bulbs stays a hint, and the host names of
phones, PCs, plugs, speakers and hubs make no camera.
"""

from __future__ import annotations

import netaddr
import pytest

from netwatch.signatures.lan import lan_matcher
from netwatch.signatures.model import Signatures

MATCHER = lan_matcher()
SIGS = Signatures.load()
XIAOMI_CAM_HOST = "xiaomi-miio-camera-dhcp-hostname"
MIIO_NAME = "xiaomi-miio-mdns-name"


@pytest.mark.parametrize(
    ("field", "value", "fid", "vendor", "model"),
    [
        ("dhcp_hostname", "Reolink", "reolink-dhcp-hostname", "Reolink", None),
        ("dhcp_hostname", "reolink-e1-zoom", "reolink-dhcp-hostname", "Reolink", None),
        (
            "mdns_name",
            "chuangmi-camera-ipc019_miio123456789._miio._udp.local",
            "xiaomi-miio-camera-mdns-name",
            "Xiaomi",
            "chuangmi-camera-ipc019",
        ),
        (
            "mdns_name",
            "isa-camera-hlc7_miio98765432.local",
            "xiaomi-miio-camera-mdns-name",
            "Xiaomi",
            "isa-camera-hlc7",
        ),
        (
            "dhcp_hostname",
            "chuangmi-camera-ipc019_miio123456789",
            XIAOMI_CAM_HOST,
            "Xiaomi",
            "chuangmi-camera-ipc019",
        ),
        ("dhcp_hostname", "yunyi-camera-v1", XIAOMI_CAM_HOST, "Xiaomi", "yunyi-camera-v1"),
        ("mdns_service", "_axis-video._tcp.local", "axis-video-mdns-service", None, None),
    ],
)  # fmt: skip
def test_camera_names_make_a_camera(
    field: str, value: str, fid: str, vendor: str | None, model: str | None
) -> None:
    hit = MATCHER.match(field, value)
    assert hit is not None and hit.camera, (field, value)
    assert (hit.fingerprint.id, hit.vendor, hit.model) == (fid, vendor, model)


@pytest.mark.parametrize(
    ("field", "value", "fid", "vendor"),
    [
        ("dhcp_hostname", "Ring-Doorbell-4a2f", "ring-dhcp-hostname", "Amazon"),
        ("dhcp_hostname", "ring-chime", "ring-dhcp-hostname", "Amazon"),  # a chime, no camera
        ("dhcp_hostname", "blink-sync-module", "blink-dhcp-hostname", "Amazon"),  # a hub
        ("dhcp_hostname", "axis-accc8e123456", "axis-dhcp-hostname", "Axis"),
        ("upnp_manufacturer", "AXIS", "axis-upnp-manufacturer", "Axis"),
        ("mdns_service", "_miio._udp.local", "xiaomi-miio-mdns-service", "Xiaomi"),
        ("mdns_name", "lumi-gateway-v3_miio12345678._miio._udp.local.", MIIO_NAME, "Xiaomi"),
        ("mdns_name", "chuangmi-plug-m1_miio1234567.local", MIIO_NAME, "Xiaomi"),
        ("mac_prefix", "2C:AA:8E", "wyze-mac-2caa8e", "Wyze"),
        ("mac_prefix", "9C:76:13", "amazon-mac-9c7613", "Amazon"),
        ("mac_prefix", "70:EE:50", "netatmo-mac-70ee50", "Netatmo"),
    ],
)  # fmt: skip
def test_brand_names_stay_hints(field: str, value: str, fid: str, vendor: str) -> None:
    hit = MATCHER.match(field, value)
    assert hit is not None, (field, value)
    assert (hit.fingerprint.id, hit.vendor, hit.camera) == (fid, vendor, False)
    assert hit.how.startswith("hint:")


#: Host names of phones, PCs, plugs, speakers, hubs and Mi Home non-cameras.
NOT_CAMERAS = (
    "android-3f2a9c1d0b7e6a54",
    "iPhone",
    "Johns-iPhone",
    "Galaxy-S21",
    "DESKTOP-ABC1234",
    "MacBook-Pro",
    "HS110",
    "KP115",
    "Tapo_Plug",
    "P100",
    "amazon-4c1d2e3f",
    "Echo",
    "echo-dot",
    "Chromecast",
    "Google-Home",
    "Google-Nest-Mini",
    "espressif",
    "ESP_3A4B5C",
    "wlan0",
    "yeelink-light-color1_miio12345678",
    "chuangmi-plug-m1_miio1234567",
    "zhimi-airpurifier-m1_miio7654321",
    "roborock-vacuum-s5_miio11112222",
    "lumi-gateway-v3_miio12345678",
    "ring-chime",
    "blink-sync-module",
    "DSP-W215",
)


@pytest.mark.parametrize("name", NOT_CAMERAS)
@pytest.mark.parametrize("field", ["dhcp_hostname", "mdns_name"])
def test_phones_pcs_plugs_and_hubs_make_no_camera(field: str, name: str) -> None:
    for value in (name, f"{name}.local"):
        hit = MATCHER.match(field, value)
        assert hit is None or not hit.camera, (field, value, hit)


@pytest.mark.parametrize("name", NOT_CAMERAS[:19])
def test_phones_and_pcs_leave_no_hint_either(name: str) -> None:
    assert MATCHER.match("dhcp_hostname", name) is None


def _lan_mac_prefixes() -> list[tuple[str, str, str]]:
    fps = (fp for fp in SIGS.fingerprints if fp.field == "mac_prefix")
    return [(fp.id, fp.value, fp.note) for fp in fps]


def test_weak_mac_prefixes_do_not_contradict_the_camera_maker_table() -> None:
    """A camera maker's prefix belongs to camera_vendor_oui.tsv, never to a weak hint."""
    camera_makers = {o.oui for o in SIGS.ouis if o.camera_vendor}
    clashes = [(fid, oui) for fid, oui, _ in _lan_mac_prefixes() if oui in camera_makers]
    assert not clashes
    assert all(fp.strength == "weak" for fp in SIGS.fingerprints if fp.field == "mac_prefix")


@pytest.mark.parametrize(("fid", "oui", "note"), _lan_mac_prefixes())
def test_every_mac_prefix_names_its_ieee_registrant(fid: str, oui: str, note: str) -> None:
    """The note names the registrant (its first word) that netaddr's IEEE MA-L copy gives."""
    org = netaddr.EUI(f"{oui}:00:00:00").oui.registration().org
    assert org.split()[0].strip(",.").lower() in note.lower(), (fid, oui, org)
