"""Tests for netwatch.signatures.lan: LAN fingerprints (strength, model capture) and seeds."""

from __future__ import annotations

import pytest

from netwatch.signatures.lan import LanMatcher, discovery_seed, lan_matcher
from netwatch.signatures.model import LAN_FIELDS, Fingerprint

MATCHER = lan_matcher()


@pytest.mark.parametrize(
    ("field", "value", "fid", "camera", "model"),
    [
        ("dhcp_hostname", "DCS-935L", "dlink-dcs-dhcp-hostname", True, "DCS-935L"),
        ("dhcp_hostname", "dcs-8000lh", "dlink-dcs-dhcp-hostname", True, "dcs-8000lh"),
        ("mdns_name", "DCS-930LB1_1C7185.local", "dlink-dcs-mdns-name", True, "DCS-930LB"),
        ("ssdp_server", "Linux, UPnP/1.0 DCS-935L/1.0", "dlink-dcs-ssdp-server", True, "DCS-935L"),
        ("ssdp_location", "http://10.10.10.51:80/IPCamDesc.xml", "ipcam-ssdp-location", True, None),
        ("mdns_service", "_psia._tcp", "psia-mdns-service", True, None),
        ("mdns_service", "_dhnap._tcp", "dlink-hnap-mdns-service", False, None),
    ],
)
def test_lan_fingerprints(
    field: str, value: str, fid: str, camera: bool, model: str | None
) -> None:
    hit = MATCHER.match(field, value)
    assert hit is not None and (hit.fingerprint.id, hit.camera, hit.model) == (fid, camera, model)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dhcp_hostname", "DSP-W215"),  # the D-Link plug of the controls
        ("dhcp_hostname", "HS110"),  # the TP-Link plug
        ("mdns_name", "dsp3D6F.local"),
        ("ssdp_server", "UPnP/1.0 DLNADOC/1.50 Platinum/1.0.5.13"),  # the Baidu plug
        ("http_server", "DCS-935L"),  # a LAN fingerprint is no banner
    ],
)
def test_controls_and_other_fields_miss(field: str, value: str) -> None:
    assert MATCHER.match(field, value) is None


def test_weak_mac_prefixes_name_mixed_vendors() -> None:
    hit = MATCHER.mac_vendor(bytes.fromhex("74da384a7649"))  # the Edimax plug
    assert hit is not None and (hit.vendor, hit.camera) == ("Edimax", False)
    assert {"D-Link", "Edimax", "TP-Link", "Tuya", "Xiaomi"} <= MATCHER.weak_vendors()
    assert MATCHER.mac_vendor(b"\x00") is None


def test_camera_entries_are_tried_before_weak_ones() -> None:
    weak = Fingerprint(id="w", vendor="V", field="mdns_name", match="contains", value="cam",
                       strength="weak", source="s", confidence="low")  # fmt: skip
    strong = Fingerprint(id="s", vendor="V", field="mdns_name", match="prefix", value="ipcam",
                         source="s", confidence="low")  # fmt: skip
    hit = LanMatcher([weak, strong]).match("mdns_name", "ipcam.local")
    assert hit is not None and hit.fingerprint.id == "s" and hit.how == "mdns_name:s"
    assert LanMatcher([weak]).match("mdns_name", "x-cam").how == "hint:mdns_name:w"  # type: ignore[union-attr]


def test_every_lan_field_is_known_and_seed_entries_exist() -> None:
    assert "mac_prefix" in LAN_FIELDS
    for seed_id in ("dlink-setup-discovery", "tplink-tdp", "xiaomi-miio"):
        assert discovery_seed(seed_id).ports
    with pytest.raises(KeyError):
        discovery_seed("no-such-protocol")


def test_a_fields_regexes_compile_at_its_first_value() -> None:
    # The matcher is built at start; a field's regexes are compiled when a value of that
    # field first arrives (an unusable one only fails then: seed files are checked at read).
    bad = Fingerprint(id="b", vendor="V", field="mdns_name", match="regex", value="(",
                      source="s", confidence="low")  # fmt: skip
    good = Fingerprint(id="g", vendor="V", field="dhcp_hostname", match="regex",
                       value="^(?P<model>cam-[0-9]+)", source="s", confidence="low")  # fmt: skip
    matcher = LanMatcher([bad, good])
    assert matcher.match("ssdp_server", "cam-1") is None
    hit = matcher.match("dhcp_hostname", "cam-12x")
    assert hit is not None and (hit.fingerprint.id, hit.model) == ("g", "cam-12")
    with pytest.raises(ValueError, match="bad regex"):
        matcher.match("mdns_name", "x")
