"""Zero-config camera recognition over the camera-real captures (issue 10).

Every camera the corpus MANIFEST names (by MAC) must be recognised from what it says on the
LAN, and no control device (``*_control-*``: an Edimax plug with the Edimax cameras' OUI, a
D-Link plug with HNAP/_dhnap, a TP-Link plug, a Tuya sensor, a Baidu plug) may be, nor
raise any alert. The Xiaomi camera says nothing readable on the LAN (snaplen-150 DHCP) and
is recognised by its CS2/PPPP traffic: checked only when a ``pppp`` parser is registered.
Skips when the corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netwatch.alerts.model import Alert
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.deep import PARSERS
from netwatch.detect.devices import CameraSummary
from netwatch.pipeline import Pipeline
from tests.conftest import corpus_file

DCS935L, DCS930L, DCS8000LH = "b0:c5:54:25:5b:0e", "b0:c5:54:1c:71:85", "b0:c5:54:43:54:83"
EDIMAX1, EDIMAX2 = "74:da:38:80:7a:08", "74:da:38:80:79:fc"
EDNET1, EDNET2 = "3c:49:37:03:17:db", "3c:49:37:03:17:f0"
XIAOMI = "78:8b:2a:b2:20:ea"

#: capture -> (the camera MACs it must yield, the model expected for each, or None)
CAPTURES: dict[str, dict[str, str | None]] = {
    "sentinel_dlink-dcs935l_setup-A2.pcap": {DCS935L: "DCS-935L"},
    "sentinel_dlink-dcs935l_setup-C2.pcap": {DCS935L: "DCS-935L"},
    "sentinel_dlink-dcs930l-daycam_setup-A2.pcap": {DCS930L: "DCS-930LB"},
    "sentinel_dlink-dcs930l-daycam_setup-C2.pcap": {DCS930L: "DCS-930LB"},
    "sentinel_edimax-cam1_setup-A2.pcap": {EDIMAX1: None},
    "sentinel_edimax-cam1_setup-C1.pcap": {EDIMAX1: None},
    "sentinel_edimax-cam2_setup-A2.pcap": {EDIMAX2: None},
    "sentinel_edimax-cam2_setup-C1.pcap": {EDIMAX2: None},
    "sentinel_ednet-cam1_setup-C1.pcap": {EDNET1: None},
    "sentinel_ednet-cam1_setup-C5.pcap": {EDNET1: None},
    "sentinel_ednet-cam2_setup-C1.pcap": {EDNET2: None},
    "sentinel_ednet-cam2_setup-C3.pcap": {EDNET2: None},
    "shf_dlink-dcs8000lh_myfw_wlan24.pcap": {DCS8000LH: "DCS-8000LH"},
    "shf_dlink-dcs8000lh_basefw_wan.pcap": {DCS8000LH: "DCS-8000LH"},
    "shfpf_dlink-dcs8000lh_dhcp.pcap": {DCS8000LH: "DCS-8000LH"},
    # no LAN signal in these: nothing is recognised, and nothing else either
    "shfpf_dlink-dcs8000lh_udp-p2p-stream.pcap": {},
    "shfpf_xiaomi-cam_dns.pcap": {},
    "shfpf_xiaomi-cam_http-gslb-cloud.pcap": {},
}
XIAOMI_CAPTURES = (
    "shf_xiaomi-cam_nofw_wan_snaplen150.pcapng",
    "shf_xiaomi-cam_myfw_wlan24_snaplen150.pcap",
    "shf_xiaomi-cam_basefw_wan_snaplen150.pcap",
)
CONTROLS = (
    "sentinel_control-edimax-plug1101w_setup-A1.pcap",
    "sentinel_control-dlink-switch-dspw215_setup-A1.pcap",
    "shf_control-tplink-plug_nofw_wlan24.pcapng",
    "shf_control-tuya-motion_nofw_wlan24.pcap",
    "lifecycle_control-xiaodu-plug_setup.pcap",
)


def replay(name: str, tmp_path: Path) -> tuple[list[CameraSummary], list[Alert]]:
    """Zero-config replay (no inventory; GeoIP off for speed) of one camera-real capture."""
    path = corpus_file("pcaps", "camera-real", name)
    conf = tmp_path / "c.yaml"
    conf.write_text("geoip: {builtin: false}\n")
    alerts: list[Alert] = []
    pipe = Pipeline(Config.load(conf), lambda _r: None, on_alert=lambda a, _c: alerts.append(a))
    cap = open_capture(path)
    try:
        pipe.run_capture(cap)
        pipe.finish()
    finally:
        cap.close()
    assert pipe.detector is not None
    return pipe.detector.devices.cameras(), alerts


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_every_camera_is_recognised_and_nothing_else(name: str, tmp_path: Path) -> None:
    cameras, _ = replay(name, tmp_path)
    expected = CAPTURES[name]
    assert {c.mac for c in cameras} == set(expected), cameras
    for cam in cameras:
        assert cam.signals and cam.signals[0].camera  # a camera signal, not a weak one
        assert cam.confidence in ("med", "high")
        if expected[cam.mac or ""] is not None:
            assert cam.model == expected[cam.mac or ""]


@pytest.mark.parametrize("name", CONTROLS)
def test_no_control_device_is_a_camera_and_none_alerts(name: str, tmp_path: Path) -> None:
    cameras, alerts = replay(name, tmp_path)
    assert cameras == []
    assert alerts == []


@pytest.mark.parametrize("name", XIAOMI_CAPTURES)
def test_the_xiaomi_camera_is_recognised_by_its_p2p_traffic(name: str, tmp_path: Path) -> None:
    if "pppp" not in PARSERS:
        pytest.skip("the Xiaomi camera is recognised by the CS2/PPPP parser (not registered)")
    cameras, _ = replay(name, tmp_path)
    assert XIAOMI in {c.mac for c in cameras}
    assert "3c:cd:5d:a2:a9:d7" not in {c.mac for c in cameras}  # the phone is no camera
