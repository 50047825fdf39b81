"""Cloud and P2P platforms named on the real camera captures (issue 10), camera in an inventory.

The Xiaomi captures carry CS2 Network PPPP (server login on UDP 32100, hole punching and
relays to the remote viewer, DRW video on ephemeral ports); the D-Link ones reach mydlink
over TLS without SNI (the name comes from passive DNS). Each camera is listed in an
inventory by MAC, as the corpus MANIFEST names it; the non-camera controls run zero-config.
GeoIP is off. Skips when the corpus is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.incidents import findings
from netwatch.config import Config
from netwatch.deep.pppp import PLATFORM
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from tests.conftest import corpus_file

XIAOMI_MAC = "78:8b:2a:b2:20:ea"
DCS8000_MAC = "b0:c5:54:43:54:83"
DCS935_MAC = "b0:c5:54:25:5b:0e"
XIAOMI_DEVICE_ID = "XMSYCNK-770841-GEDSS"  # in the camera's PUNCH_PKT / P2P_RDY
XIAOMI_WAN = (
    "camera-real/shf_xiaomi-cam_nofw_wan_snaplen150.pcapng",
    "camera-real/shf_xiaomi-cam_basefw_wan_snaplen150.pcap",
    "camera-real/shf_xiaomi-cam_myfw_wlan24_snaplen150.pcap",
    "camera-iot/shf_xiaomi-cam_wan_snaplen150.pcap",
)
CONTROLS = (
    "camera-real/shf_control-tplink-plug_nofw_wlan24.pcapng",
    "camera-real/shf_control-tuya-motion_nofw_wlan24.pcap",
    "camera-real/sentinel_control-dlink-switch-dspw215_setup-A1.pcap",
    "camera-real/sentinel_control-edimax-plug1101w_setup-A1.pcap",
    "camera-real/lifecycle_control-xiaodu-plug_setup.pcap",
)


#: Report every sighting (no incident suppression): what each flow's rules found.
EVERY_SIGHTING = (
    "alerts: {suppress_s: 0.000001, max_per_device: 100000, group_wait_s: 0, group_interval_s: 0}"
)


def _replay(
    tmp_path: Path, rel: str, mac: str | None, *, incidents: bool = False
) -> list[dict[str, Any]]:
    """The findings of a replay: every sighting, or (``incidents``) the notifications."""
    capture = corpus_file("pcaps", *rel.split("/"))
    lines = ["geoip: {builtin: false}"] + ([] if incidents else [EVERY_SIGHTING])
    if mac is not None:
        lines += ["cameras:", f'  - {{name: cam, mac: "{mac}"}}']
    cfg = tmp_path / "c.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    out = tmp_path / "alerts.jsonl"
    run_replay([capture], Config.load(cfg), alerts_out=out, geo=NullGeo(), uid_seed=1)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    return [finding for alert in alerts for finding in findings(alert)]


def _of(alerts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["rule"] == rule]


@pytest.mark.parametrize("rel", XIAOMI_WAN)
def test_xiaomi_pppp_server_login_is_a_named_cloud_registration(rel: str, tmp_path: Path) -> None:
    alerts = _of(_replay(tmp_path, rel, XIAOMI_MAC), "cloud_registration")
    pppp = [a for a in alerts if a["evidence"].get("platform") == PLATFORM]
    # the camera logs in to three PPPP servers on UDP 32100, two of them by name
    assert {(a["peer_ip"], a["peer_port"]) for a in pppp} == {
        ("42.157.165.251", 32100),
        ("110.43.39.53", 32100),
        ("110.43.68.154", 32100),
    }
    assert all(a["severity"] == "high" and a["direction"] == "outbound" for a in pppp)
    named = {a["peer_name"]: a["evidence"]["endpoint"] for a in pppp if a["peer_name"]}
    assert named == {
        "xiaomi5.p2psy2.io.mi.com": "xiaomi-pppp-servers",
        "xiaomi5.p2psy3.io.mi.com": "xiaomi-pppp-servers",
    }
    # the servers' HELLO_ACK tells the camera its public address (the testbed's NAT)
    public = {a["evidence"]["public_addr"] for a in pppp} - {None}
    assert {addr.split(":")[0] for addr in public} <= {"130.104.228.95"}


@pytest.mark.parametrize("rel", XIAOMI_WAN)
def test_xiaomi_pppp_punch_to_the_remote_viewer_is_a_named_nat_traversal(
    rel: str, tmp_path: Path
) -> None:
    alerts = _of(_replay(tmp_path, rel, XIAOMI_MAC), "nat_traversal")
    punches = [a for a in alerts if "PUNCH_PKT" in a["evidence"]["pppp_messages"]]
    assert punches, "the camera's PPPP punch to the remote viewer was not named"
    for alert in alerts:
        assert alert["evidence"]["platform"] == PLATFORM
        if alert["peer_ip"] is not None:  # (the relay alert is about the camera, peerless)
            assert alert["direction"] == "outbound"  # LAN P2P with the phone raises nothing
    assert {a["evidence"]["device_id"] for a in punches} == {XIAOMI_DEVICE_ID}
    viewers = {"130.104.214.55", "130.104.212.112"}  # the remote viewer of each run
    assert viewers & {a["peer_ip"] for a in punches}


@pytest.mark.parametrize("rel", ["camera-real/shf_xiaomi-cam_myfw_wlan24_snaplen150.pcap"])
def test_pppp_relay_probes_are_one_incident_that_escalates_when_video_flows(
    rel: str, tmp_path: Path
) -> None:
    """16 relay servers probed are one incident (the camera and CS2 PPPP); when video goes
    up through a relay, the same incident is reported again as critical, with the stream
    among its findings (here before the camera's first notification went out, so one
    report)."""
    notes = [a for a in _replay(tmp_path, rel, XIAOMI_MAC, incidents=True)]
    relays = [a for a in _of(notes, "nat_traversal") if "RLY_PKT" in a["evidence"]["pppp_messages"]]
    # the high report still waited for the camera's notification when the incident grew:
    # the critical report took its place, saying what it rose from
    assert [(a["severity"], a["peer_ip"], a["reached"]) for a in relays] == [
        ("critical", None, PLATFORM),
    ]
    assert relays[0]["evidence"]["relay"].startswith("110.43.68.240:")
    assert relays[0]["evidence"]["incident"]["escalated_from"] == "high"
    assert relays[0]["count"] >= 2
    assert "outbound_stream" in [f["rule"] for f in relays[0]["evidence"]["folded"]]
    assert not _of(notes, "alert_flood")
    every = _replay(tmp_path, rel, XIAOMI_MAC)
    assert len({a["flow_uid"] for a in _of(every, "outbound_stream")}) >= 2  # the uploads


@pytest.mark.parametrize(
    ("rel", "mac"),
    [
        ("camera-real/sentinel_dlink-dcs935l_setup-A2.pcap", DCS935_MAC),
        ("camera-real/sentinel_dlink-dcs935l_setup-C2.pcap", DCS935_MAC),
        ("camera-real/shf_dlink-dcs8000lh_myfw_wlan24.pcap", DCS8000_MAC),
        ("camera-real/shf_dlink-dcs8000lh_basefw_wan.pcap", DCS8000_MAC),
    ],
)
def test_mydlink_over_tls_without_sni_is_named_by_passive_dns(
    rel: str, mac: str, tmp_path: Path
) -> None:
    alerts = _of(_replay(tmp_path, rel, mac), "cloud_registration")
    mydlink = [a for a in alerts if a["evidence"]["endpoint"] == "dlink-mydlink-auto"]
    assert mydlink
    assert all(a["peer_name"].endswith("mydlink.com") for a in mydlink)
    assert any(a["peer_port"] == 443 for a in mydlink)


def test_the_xiaomi_gslb_lookup_is_named(tmp_path: Path) -> None:
    rel = "camera-real/shfpf_xiaomi-cam_http-gslb-cloud.pcap"
    alerts = _of(_replay(tmp_path, rel, XIAOMI_MAC), "cloud_registration")
    assert [a["evidence"]["endpoint"] for a in alerts] == ["xiaomi-gslb"]


#: endpoints added for issue 10 (the TP-Link plug control is already taken for a camera
#: zero-config by its TP-Link MAC and named by the older tplink-kasa-cloud entry)
NEW_ENDPOINTS = frozenset(
    {"cs2-pppp-server", "xiaomi-pppp-servers", "xiaomi-smartcamera-api", "xiaomi-gslb"}
    | {"xiaomi-miio-ot", "xiaomi-iot-domain", "yi-cloud", "dlink-mydlink-auto"}
    | {"dlink-mydlink-domain", "tplink-tapo-cloud", "tuya-mqtt-8886", "tutk-kalay-masters"}
)


@pytest.mark.parametrize("rel", CONTROLS)
def test_nothing_new_fires_on_the_non_camera_controls(rel: str, tmp_path: Path) -> None:
    alerts = _replay(tmp_path, rel, None)
    assert not _of(alerts, "nat_traversal")
    for alert in _of(alerts, "cloud_registration"):
        assert alert["evidence"].get("platform") is None
        assert alert["evidence"]["endpoint"] not in NEW_ENDPOINTS
        assert not set(alert["evidence"]["port_match"]) & NEW_ENDPOINTS


def test_zero_config_the_pppp_device_is_the_camera_and_the_phone_is_not(tmp_path: Path) -> None:
    """The camera's PPPP login / P2P_RDY make it a camera; the app's search and punches do not."""
    rel = "camera-real/shf_xiaomi-cam_myfw_wlan24_snaplen150.pcap"
    alerts = _replay(tmp_path, rel, None)
    assert {a["device_ip"] for a in alerts} == {"192.168.1.161"}  # never the phone .222
    pppp = [a for a in _of(alerts, "cloud_registration") if a["platform"] == PLATFORM]
    assert len({a["peer_ip"] for a in pppp}) == 3
