"""Cameras recognised, and how: the replay summary line and camera ends in flow records.

"No alerts" and "saw no cameras" must look different: the demo capture (zero-config) names
its four cameras and how each was recognised; a real D-Link capture that zero-config does
not recognise says so, and with the camera in an inventory it is counted and marked. With
capture workers, each reports what changed in its tally and the parent counts the union.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netwatch.config import Config
from netwatch.detect.devices import Device
from netwatch.detect.recognised import (
    HOW_PRECEDENCE,
    RecognisedCameras,
    how_of,
    stronger,
    summary_line,
    union_by_how,
)
from netwatch.enrich.geo import NullGeo
from netwatch.replay import ReplaySummary, run_replay
from tests.conftest import corpus_file
from tests.detect.test_devices import HIK_MAC, OTHER_MAC, THIRD_MAC, devices
from tests.detect.test_devices import ip as packed

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
#: The demo's camera addresses -> the camera (one device: 10.20.0.12 is dual-stack).
DEMO_CAMERAS = {
    "10.20.0.11": "10.20.0.11",
    "10.20.0.12": "10.20.0.12",
    "fd00:20::12": "10.20.0.12",
    "10.20.0.13": "10.20.0.13",
    "10.30.0.14": "10.30.0.14",
}


def replayed(capture: Path, tmp_path: Path, config: str = "{}") -> tuple[ReplaySummary, list[Any]]:
    cfg, flows = tmp_path / "c.yaml", tmp_path / "f.jsonl"
    cfg.write_text(config)
    summary = run_replay([capture], Config.load(cfg), flows_out=flows, geo=NullGeo(), uid_seed=1)
    return summary, [json.loads(line) for line in flows.read_text().splitlines()]


def test_demo_zero_config_counts_cameras_by_how_and_marks_their_ends(tmp_path: Path) -> None:
    summary, records = replayed(DEMO, tmp_path)
    # 10.20.0.11's RTSP 401 names the Hikvision realm: a banner, stronger than its MAC prefix;
    # 10.20.0.12's web server answers the inbound request with its banner, and its DNS flows
    # end before that (Zeek's 10 s DNS timeout), so the banner is what its last record says
    assert summary.cameras == {"banner": 2, "discovery": 2}
    assert "cameras: 4 (banner 2, discovery 2)" in summary.lines()
    marked: set[str] = set()
    for rec in records:
        for end in ("orig", "resp"):
            ip, device = rec[f"id.{end}_h"], rec[f"{end}_device"]
            assert device == DEMO_CAMERAS.get(ip), rec["uid"]
            if device:
                marked.add(device)
    assert marked == set(DEMO_CAMERAS.values())  # four cameras, one of them dual-stack


def test_no_camera_recognised_is_said(tmp_path: Path) -> None:
    plug = corpus_file("pcaps", "camera-real", "sentinel_control-edimax-plug1101w_setup-A1.pcap")
    summary, records = replayed(plug, tmp_path)  # the Edimax cameras' OUI, but a plug
    assert summary.cameras == {} and summary.alerts == 0
    assert summary_line(summary.cameras) in summary.lines()
    assert summary_line({}).startswith("cameras: 0 (none recognised")
    assert all(r["orig_device"] is None and r["resp_device"] is None for r in records)
    capture = corpus_file("pcaps", "camera-real", "sentinel_edimax-cam1_setup-A2.pcap")
    summary, records = replayed(capture, tmp_path)  # zero-config: its SSDP description
    assert summary.cameras == {"discovery": 1}
    inventory = "cameras:\n  - {name: edimax-1, mac: '74:da:38:80:7a:08'}\n"
    summary, records = replayed(capture, tmp_path, inventory)
    assert summary.cameras == {"inventory": 1}
    assert "cameras: 1 (inventory 1)" in summary.lines()
    assert {r["orig_device"] for r in records if r["id.orig_h"] == "10.10.10.51"} == {"edimax-1"}


def _device(
    how: str, managed: bool = False, mac: str | None = None, ip: str = "10.0.0.1"
) -> Device:
    return Device(ip, ip, mac, None, "default", managed, how)


class _Devices:
    """Answers camera() from a table, as Devices does."""

    def __init__(self, table: dict[bytes, Device]) -> None:
        self.table = table
        self.answers: dict[tuple[bytes, bytes | None], Device | None] = {}  # none cached
        self.gateways: dict[bytes, None] = {}  # no router known

    def camera(self, ip: bytes, mac: bytes | None, site_local: bool | None = None) -> Device | None:
        return self.table.get(ip)


def test_how_of_groups_the_identity_sources() -> None:
    assert how_of(_device("inventory", managed=True)) == "inventory"
    assert how_of(_device("vendor_oui")) == "mac_prefix"
    assert how_of(_device("banner:http_server")) == "banner"
    assert how_of(_device("sadp")) == how_of(_device("onvif")) == "discovery"


def test_tally_is_bounded_keyed_by_mac_and_keeps_the_latest_how() -> None:
    rec = RecognisedCameras(max_cameras=2)
    assert rec.name(b"\x0a\x00\x00\x01", None) is None  # no detector: nothing recognised
    a, b, c = (bytes([10, 0, 0, n]) for n in (1, 2, 3))
    table = {
        a: _device("vendor_oui", mac="aa:aa:aa:00:00:01", ip="10.0.0.1"),
        b: _device("vendor_oui", mac="aa:aa:aa:00:00:01", ip="10.0.0.2"),  # same camera
        c: _device("sadp", ip="10.0.0.3"),
    }
    rec.devices = _Devices(table)  # type: ignore[assignment]
    assert rec.name(a, None) == "10.0.0.1" and rec.name(b, None) == "10.0.0.2"
    assert len(rec) == 1 and rec.by_how() == {"mac_prefix": 1}
    rec.name(c, None)
    table[a] = _device("sadp", mac="aa:aa:aa:00:00:01")
    rec.name(a, None)
    assert rec.by_how() == {"discovery": 2}
    table[bytes([10, 0, 0, 4])] = _device("sadp", ip="10.0.0.4")
    assert rec.name(bytes([10, 0, 0, 4]), None) == "10.0.0.4"  # still marked ...
    assert len(rec) == 2 and rec.overflow == 1  # ... but not tallied past the bound


def test_changes_give_everything_once_then_only_what_changed() -> None:
    rec = RecognisedCameras(max_cameras=2)
    a, b, c = (bytes([10, 0, 0, n]) for n in (1, 2, 3))
    table = {a: _device("vendor_oui", mac="aa:aa:aa:00:00:01"), b: _device("sadp", ip="10.0.0.2")}
    rec.devices = _Devices(table)  # type: ignore[assignment]
    rec.name(a, None)
    assert rec.changes() == {"aa:aa:aa:00:00:01": "mac_prefix"}  # the first call: all
    assert rec.changes() == {}
    rec.name(a, None)  # the same camera, the same how: no change
    rec.name(b, None)
    assert rec.changes() == {"10.0.0.2": "discovery"}
    table[a] = _device("sadp", mac="aa:aa:aa:00:00:01")  # a discovery reply confirms it
    rec.name(a, None)
    table[c] = _device("sadp", ip="10.0.0.3")
    rec.name(c, None)  # past the bound: neither tallied nor reported
    assert rec.changes() == {"aa:aa:aa:00:00:01": "discovery"}
    assert rec.by_how() == {"discovery": 2} and rec.overflow == 1


def test_union_counts_each_camera_once_the_strongest_how_winning() -> None:
    assert HOW_PRECEDENCE == ("inventory", "discovery", "banner", "mac_prefix")
    assert stronger("mac_prefix", "banner") == stronger("banner", "mac_prefix") == "banner"
    assert stronger("inventory", "discovery") == "inventory"
    assert stronger("discovery", "something_new") == "discovery"
    worker_1 = {"cam-a": "mac_prefix", "cam-b": "inventory", "cam-c": "banner"}
    worker_2 = {"cam-a": "discovery", "cam-b": "inventory"}
    worker_3 = {"cam-a": "banner", "cam-d": "mac_prefix"}
    assert union_by_how([worker_1, worker_2, worker_3]) == {
        "discovery": 1,  # cam-a: seen three ways, counted once
        "inventory": 1,
        "banner": 1,
        "mac_prefix": 1,
    }
    assert union_by_how([]) == {}


def test_an_end_is_answered_as_devices_camera_answers_it_without_a_needless_call(
    tmp_path: Path,
) -> None:
    """Outside ends behind a known router (or without a MAC) and site ends answered before
    are answered without calling Devices.camera; every answer, and what the devices learnt
    (routers' MACs, cached answers), is what calling Devices.camera gives."""
    mine, reference = devices(tmp_path), devices(tmp_path)
    asked: list[tuple[bytes, bytes | None, bool | None]] = []
    camera = mine.camera

    def counted(ip: bytes, mac: bytes | None, site_local: bool | None = None) -> Device | None:
        asked.append((ip, mac, site_local))
        return camera(ip, mac, site_local)

    mine.camera = counted  # type: ignore[method-assign]
    recognised = RecognisedCameras()
    recognised.devices = mine
    router, public, camera_ip, host = (
        OTHER_MAC,
        packed("8.8.8.8"),
        packed("10.1.0.9"),
        packed("10.1.0.5"),
    )
    ends: list[tuple[bytes, bytes | None, bool | None]] = [
        (public, router, False),  # a router's MAC, learnt here
        (packed("9.9.9.9"), router, False),  # known now: not asked
        (public, None, False),  # no MAC: not asked
        (packed("169.254.0.1"), THIRD_MAC, False),  # local, not the site's: asked, not learnt
        (packed("169.254.0.1"), THIRD_MAC, False),
        (camera_ip, HIK_MAC, True),  # a camera
        (camera_ip, HIK_MAC, True),  # answered before: not asked
        (host, THIRD_MAC, True),  # a site host, no camera
        (host, THIRD_MAC, True),
        (host, router, True),  # a site end with a router's MAC: asked
        (camera_ip, HIK_MAC, None),  # the caller has no site-locality: asked
        (public, THIRD_MAC, None),
    ]
    for addr, mac, site_local in ends:
        expected = reference.camera(addr, mac, site_local)
        assert recognised.device(addr, mac, site_local) == expected, (addr, mac, site_local)
    assert mine.gateways == reference.gateways == {router: None, THIRD_MAC: None}
    assert mine.answers == reference.answers
    assert asked == [ends[i] for i in (0, 3, 4, 5, 7, 9, 10, 11)]
    assert recognised.by_how() == {"mac_prefix": 1}


def test_both_ends_in_one_call_answer_as_two_device_calls(tmp_path: Path) -> None:
    """``ends`` (the flow record's one call per flow) gives, for every pair of ends, what
    ``device`` gives for the originator then the responder: the same cameras, the same
    tally, and the same routers learnt (one learnt at the originator counts for the
    responder of the same flow)."""
    router = OTHER_MAC
    end_list: list[tuple[bytes, bytes | None, bool]] = [
        (packed("8.8.8.8"), router, False),
        (packed("9.9.9.9"), router, False),
        (packed("8.8.4.4"), None, False),
        (packed("169.254.0.1"), THIRD_MAC, False),
        (packed("10.1.0.9"), HIK_MAC, True),
        (packed("10.1.0.5"), THIRD_MAC, True),
        (packed("10.1.0.5"), router, True),
    ]
    pairs = [(a, b) for a in end_list for b in end_list]
    mine, reference = RecognisedCameras(), RecognisedCameras()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine.devices, reference.devices = devices(tmp_path / "a"), devices(tmp_path / "b")
    for o, r in pairs:
        expected = (reference.device(*o), reference.device(*r))
        assert mine.ends(*o, *r) == expected, (o, r)
    assert mine.by_how() == reference.by_how() == {"mac_prefix": 1}
    assert mine.devices.gateways == reference.devices.gateways
    assert mine.devices.answers == reference.devices.answers
    assert RecognisedCameras().ends(*end_list[4], *end_list[0]) == (None, None)  # no detector
