"""Tests for the camera inventory: aggregation, its JSON form, the state file, the replay."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.model import Alert, EndReason, IncidentEnd, Severity
from netwatch.config import Config
from netwatch.enrich.geo import BUILTIN_ATTRIBUTION, GeoInfo, GeoSourceInfo, NullGeo
from netwatch.inventory import (
    INVENTORY_FILE,
    LOCAL,
    MAX_EVIDENCE_CHARS,
    MAX_EVIDENCE_KEYS,
    MAX_LISTED,
    CameraInventory,
    InventoryError,
    build_from_captures,
    load,
    platform_matcher,
    restored,
    save,
    table_lines,
)
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.conftest import REPO, corpus_file

T0 = 1_767_225_600.0
CAM_MAC, GW_MAC = "bc:ad:28:1a:2b:01", "02:00:5e:10:00:01"
SOURCE = {"captures": ["x.pcap"]}


def flow(uid: str, peer: str, out: int, **kw: Any) -> dict[str, Any]:
    """A flow record of camera ``cam-1`` (10.0.0.5) to ``peer``."""
    rec: dict[str, Any] = {
        "ts": T0,
        "uid": uid,
        "duration": 2.0,
        "id.orig_h": "10.0.0.5",
        "id.resp_h": peer,
        "orig_l2_addr": CAM_MAC,
        "resp_l2_addr": GW_MAC,
        "orig_ip_bytes": out,
        "resp_ip_bytes": out // 10,
        "local_orig": True,
        "local_resp": False,
        "resp_cc": "SE",
        "resp_asn": 29518,
        "resp_org": "Bredband2 AB",
        "resp_name": None,
        "orig_device": "cam-1",
        "resp_device": None,
    }
    rec.update(kw)
    return rec


def alert(rule: str, reached: str, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "ts": T0 + 1,
        "rule": rule,
        "severity": Severity.HIGH,
        "device": "cam-1",
        "device_ip": "10.0.0.5",
        "summary": f"{rule} happened",
        "subject": reached,
    }
    fields.update(kw)
    return Alert(**fields)


def one(doc: dict[str, Any]) -> dict[str, Any]:
    (cam,) = doc["cameras"]
    assert isinstance(cam, dict)
    return cam


def test_flows_add_peers_by_country_as_and_name_and_bytes_sent_outside() -> None:
    inv = CameraInventory(platform_matcher())
    inv.record(flow("C1", "89.160.20.112", 1000, resp_name="litedev.hik-connect.com"))
    inv.record(flow("C2", "10.0.0.53", 500, local_resp=True, resp_cc=None, resp_asn=None))
    inv.record(flow("C3", "81.2.69.142", 300, resp_cc=None, resp_asn=None, resp_org="A&A"))
    inv.record(flow("C4", "81.2.69.143", 5, resp_cc=None, resp_asn=None, resp_org=None))
    inv.record({**flow("C5", "10.0.0.9", 0), "orig_device": None})  # no camera end
    cam = one(inv.as_json(SOURCE, generated=datetime(2026, 1, 1, tzinfo=UTC)))
    assert (cam["id"], cam["macs"], cam["ipv4"], cam["ipv6"]) == (
        "cam-1", [CAM_MAC], ["10.0.0.5"], [])  # fmt: skip
    peers = cam["peers"]
    countries = [(c["country"], c["bytes_out"], c["bytes_in"], c["flows"])
                 for c in peers["countries"]]  # fmt: skip
    assert countries == [("SE", 1000, 100, 1), ("local", 500, 50, 1), ("unknown", 305, 30, 2)]
    assert [(a["asn"], a["org"], a["bytes_out"]) for a in peers["asns"]] == [
        (29518, "Bredband2 AB", 1000), (None, "A&A", 300), (None, None, 5)]  # fmt: skip
    assert peers["names"] == [
        {"name": "litedev.hik-connect.com", "bytes_out": 1000, "bytes_in": 100, "flows": 1}
    ]
    assert cam["bytes_out_external"] == 1305  # not the 500 bytes to the site's resolver
    assert [p["name"] for p in cam["platforms"]] == ["Hikvision cloud"]
    assert (cam["first_seen"], cam["last_seen"]) == (T0, T0 + 2.0)


def test_lists_are_bounded_with_one_others_entry() -> None:
    inv = CameraInventory()
    for i in range(MAX_LISTED + 10):
        inv.record(flow(f"C{i}", "89.160.20.112", 1000 + i, resp_name=f"n{i}.example"))
    names = one(inv.as_json(SOURCE))["peers"]["names"]
    assert len(names) == MAX_LISTED + 1
    assert names[0]["name"] == f"n{MAX_LISTED + 9}.example"  # the most bytes first
    rest = range(10)  # the ten smallest
    assert names[-1] == {"name": "others", "bytes_out": sum(1000 + i for i in rest),
                         "bytes_in": sum((1000 + i) // 10 for i in rest), "flows": 10}  # fmt: skip


def test_incidents_from_notifications_and_their_ends() -> None:
    inv = CameraInventory()
    folded = {"rule": "unexpected_egress", "severity": "medium", "summary": "out", "evidence": {}}
    lead = alert("cloud_registration", "Hikvision cloud", platform="Hikvision cloud",
                 evidence={"folded": [folded]})  # fmt: skip
    inv.alert(lead, 1)
    inv.alert(alert("rogue_dns", "8.8.8.8", severity=Severity.MEDIUM), 2)
    incidents = one(inv.as_json(SOURCE))["incidents"]
    got = {(i["rule"], i["reached"], i["count"], i["open"], tuple(i["folded"])) for i in incidents}
    assert got == {
        ("cloud_registration", "Hikvision cloud", 1, True, ("unexpected_egress",)),
        ("rogue_dns", "8.8.8.8", 2, True, ()),
    }
    inv.ended(IncidentEnd(alert=lead, ts=T0 + 99, first_seen=T0 + 1, last_seen=T0 + 50,
                          sightings=3, severity=Severity.CRITICAL,
                          reason=EndReason.QUIET))  # fmt: skip
    cam = one(inv.as_json(SOURCE))
    state = {i["rule"]: (i["open"], i["severity"], i["last"]) for i in cam["incidents"]}
    assert state["cloud_registration"] == (False, "critical", T0 + 50)
    assert state["rogue_dns"][0] is True
    assert cam["incidents"][0]["rule"] == "rogue_dns"  # open incidents first
    assert [(p["name"], p["last_seen"]) for p in cam["platforms"]] == [
        ("Hikvision cloud", T0 + 50)]  # fmt: skip
    inv.alert(alert("nat_traversal", "Hikvision", platform="Hikvision"), 1)  # the vendor alone
    cam = one(inv.as_json(SOURCE))
    assert [p["name"] for p in cam["platforms"]] == ["Hikvision cloud"]  # one name
    nat = {i["rule"]: i for i in cam["incidents"]}["nat_traversal"]
    assert nat["platform"] == "Hikvision cloud"
    inv.alert(alert("nat_traversal", "CS2", platform="CS2 Network PPPP"), 1)  # a P2P network
    platforms = [p["name"] for p in one(inv.as_json(SOURCE))["platforms"]]
    assert sorted(platforms) == ["CS2 Network PPPP", "Hikvision cloud"]


def test_the_state_file_round_trips_and_a_bad_one_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inv = CameraInventory()
    inv.record(flow("C1", "89.160.20.112", 1000, resp_name="a.example"))
    inv.alert(alert("rogue_dns", "8.8.8.8"), 1)
    doc = inv.as_json({"state_dir": str(tmp_path)}, site="lab")
    path = tmp_path / INVENTORY_FILE
    save(doc, path)
    assert load(path) == json.loads(json.dumps(doc))
    again = restored(path)
    again.record(flow("C2", "89.160.20.112", 10, resp_name="a.example"))
    names = one(again.as_json(SOURCE))["peers"]["names"]
    assert names == [{"name": "a.example", "bytes_out": 1010, "bytes_in": 101, "flows": 2}]
    for bad, why in (
        ("{not json", "unreadable"),
        ('{"version": 2, "cameras": []}', "not a version-1"),
        ('{"version": 1, "cameras": [{"no_id": 1}]}', "malformed"),
    ):
        path.write_text(bad)
        with pytest.raises(InventoryError, match=why):
            load(path)
        with caplog.at_level(logging.ERROR, "netwatch.inventory"):
            assert restored(path).cameras == {}
        assert "starting afresh" in caplog.text
        assert not path.exists() and path.with_name(INVENTORY_FILE + ".corrupt").exists()
    assert again.ids() == [(CAM_MAC, "cam-1")]  # what the detector takes after a restart
    with pytest.raises(InventoryError, match="no inventory"):
        load(tmp_path / "absent.json")


def test_table_lines_name_each_camera() -> None:
    inv = CameraInventory()
    inv.record(flow("C1", "89.160.20.112", 2_500_000))
    lines = table_lines(inv.as_json(SOURCE))
    assert lines[0].startswith("camera") and "cam-1 *" in lines[1] and "SE 2.5 MB" in lines[1]
    assert lines[-1].startswith("1 camera (1 not in the inventory")
    inv.geoip = {"name": "DBIP", "built": None, "licence": "CC", "attribution": "By DB-IP"}
    assert table_lines(inv.as_json(SOURCE))[-1] == "countries and ASes from DBIP; By DB-IP"


class TableGeo:
    """GeoIP for the generated capture's peers."""

    def lookup(self, ip_text: str) -> GeoInfo:
        return {"89.160.20.112": GeoInfo("SE", 29518, "Bredband2 AB")}.get(
            ip_text, GeoInfo(None, None, None)
        )

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("table", "builtin", None, "test table", ())


def dual_stack_capture(path: Path) -> None:
    """A Hikvision-prefix camera that talks from fd00::5, then from 10.0.0.5."""
    t = g.Trace()
    v6 = g.Route.of(CAM_MAC, "fd00::5", GW_MAC, "fd00::53")
    t.add(1_000_000, g.udp_frame(v6, 9000, 53, b"z" * 20))
    s = g.TcpSession(g.Route.of(CAM_MAC, "10.0.0.5", GW_MAC, "89.160.20.112"), 40000, 443)
    ts = t.add_burst(2_000_000, s.handshake(), 1000)
    ts = t.add_burst(ts, s.send(True, b"x" * 400), 1000)
    t.add_burst(ts, s.close(True), 1000)
    t.write(path)


def test_replay_of_a_dual_stack_camera_is_one_camera(tmp_path: Path) -> None:
    pcap, cfg_path = tmp_path / "dual.pcap", tmp_path / "c.yaml"
    dual_stack_capture(pcap)
    cfg_path.write_text("site:\n  local_nets: [10.0.0.0/8, 'fd00::/8']\n")
    cfg = Config.load(cfg_path)
    doc = build_from_captures([pcap], cfg, geo=TableGeo())
    cam = one(doc)
    assert (cam["id"], cam["ipv4"], cam["ipv6"], cam["vendor"]) == (
        "fd00::5", ["10.0.0.5"], ["fd00::5"], "Hikvision")  # fmt: skip
    assert cam["recognised_by"] == ["vendor_oui"] and cam["managed"] is False
    assert doc["source"] == {"captures": [str(pcap)]}
    assert {c["country"] for c in cam["peers"]["countries"]} == {"SE", "local"}
    state = tmp_path / "state"  # replay --state-dir writes the same inventory
    run_replay([pcap], cfg, geo=TableGeo(), state_dir=state)
    saved = load(state / INVENTORY_FILE)
    assert [c["id"] for c in saved["cameras"]] == ["fd00::5"]
    assert saved["cameras"][0]["peers"] == cam["peers"]


def test_real_camera_captures_give_a_sensible_inventory() -> None:
    dcs = corpus_file("pcaps", "camera-real", "sentinel_dlink-dcs935l_setup-C2.pcap")
    edimax = corpus_file("pcaps", "camera-real", "sentinel_edimax-cam1_setup-A2.pcap")
    doc = build_from_captures([dcs, edimax], Config.default(), geo=NullGeo())
    by_mac = {mac: c for c in doc["cameras"] for mac in c["macs"]}
    assert set(by_mac) == {"b0:c5:54:25:5b:0e", "74:da:38:80:7a:08"}  # one camera each
    dlink = by_mac["b0:c5:54:25:5b:0e"]
    assert (dlink["vendor"], dlink["model"]) == ("D-Link", "DCS-935L")
    assert dlink["ipv4"] == ["192.168.0.20", "10.10.10.37"]  # a setup address, then DHCP
    assert "D-Link cloud" in {p["name"] for p in dlink["platforms"]}
    assert dlink["bytes_out_external"] > 0 and dlink["peers"]["names"]
    assert by_mac["74:da:38:80:7a:08"]["vendor"] == "Edimax"


# -- the demo capture and real captures (ported from the report's former stand-in builder) --

DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
HIK1, HIK2, DAHUA, XM = (
    "bc:ad:28:1a:2b:01",
    "bc:ad:28:1a:2b:02",
    "b4:4c:3b:5e:6f:03",
    "02:12:34:56:78:14",
)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    """The inventory of the demo capture (zero-config, built-in GeoIP data)."""
    return build_from_captures([DEMO], Config.default())


def by_mac(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cameras by MAC (each has one here)."""
    out: dict[str, dict[str, Any]] = {}
    for cam in doc["cameras"]:
        (mac,) = cam["macs"]
        out[mac] = cam
    return out


def test_demo_cameras_are_the_four_cameras_one_each(demo: dict[str, Any]) -> None:
    cams = by_mac(demo)
    assert len(demo["cameras"]) == 4  # not the NVR, resolver or time server
    assert {k: c["vendor"] for k, c in cams.items()} == {
        HIK1: "Hikvision",
        HIK2: "Hikvision",
        DAHUA: "Dahua",
        XM: "Xiongmai",  # its MAC is no camera maker's: the vendor its traffic named
    }
    dual = cams[HIK2]
    assert dual["ipv4"] == ["10.20.0.12"] and dual["ipv6"] == ["fd00:20::12"]
    assert cams[HIK1]["mac_vendor"] and cams[XM]["mac_vendor"] is None  # locally administered
    assert demo["source"] == {"captures": [str(DEMO)]}
    assert demo["geoip"]["attribution"] == BUILTIN_ATTRIBUTION  # the built-in DB-IP data
    assert "CC BY 4.0" in demo["geoip"]["licence"] and demo["geoip"]["built"]
    json.dumps(demo)  # JSON all the way down


def test_demo_peers_local_and_outside(demo: dict[str, Any]) -> None:
    dahua = by_mac(demo)[DAHUA]
    countries = {r["country"]: r for r in dahua["peers"]["countries"]}
    assert LOCAL in countries  # RTSP to the NVR, NTP, DNS
    outside = [r for k, r in countries.items() if k != LOCAL]
    assert dahua["bytes_out_external"] == sum(r["bytes_out"] for r in outside)
    assert dahua["bytes_out_external"] > 250_000  # the P2P upload to 216.160.83.56
    assert "www.easy4ipcloud.com" in {r["name"] for r in dahua["peers"]["names"]}
    assert [p["name"] for p in dahua["platforms"]] == ["Dahua cloud"]  # one name per platform
    inbound = {a["asn"]: a for a in by_mac(demo)[HIK2]["peers"]["asns"]}[20712]
    assert (inbound["org"], inbound["bytes_out"]) == ("Andrews & Arnold Ltd", 326)  # looked up
    hik1 = by_mac(demo)[HIK1]
    # ntp.cctv.internal is the site's own server: a name inside the site is not listed
    assert {r["name"] for r in hik1["peers"]["names"]} == {"dev.ys7.com", "litedev.hik-connect.com"}


def test_demo_incidents_with_evidence(demo: dict[str, Any]) -> None:
    cams = by_mac(demo)
    dual = {i["rule"]: i for i in cams[HIK2]["incidents"]}
    assert {"inbound_access", "audio_stream", "cloud_registration"} <= set(dual)
    inbound = dual["inbound_access"]
    assert (inbound["direction"], inbound["peer"], inbound["peer_country"]) == (
        "inbound", "81.2.69.142", "GB")  # fmt: skip
    assert inbound["evidence"]["service_port"] == 80
    assert inbound["peers"] == ["81.2.69.142"] and inbound["flow_uid"]
    assert inbound["open"] is True  # still going when the capture ended
    assert "grouped" not in inbound["evidence"]  # other reports are not this one's evidence
    cloud = {i["rule"]: i for i in cams[HIK1]["incidents"]}["cloud_registration"]
    assert cloud["count"] == 2 and cloud["peers"] == ["dev.ys7.com", "litedev.hik-connect.com"]
    for cam in cams.values():
        for inc in cam["incidents"]:
            assert inc["first"] <= inc["last"]


def test_a_config_camera_keeps_its_name_and_group(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "site: {name: hq}\n"
        "cameras:\n  - {name: lobby-2, mac: 'bc:ad:28:1a:2b:02', group: lobby}\n"
        "  - {name: generic, ip: 10.30.0.14}\n"
        "groups:\n  lobby: {}\n"
    )
    doc = build_from_captures([DEMO], Config.load(conf))
    assert doc["site"] == "hq"
    cams = by_mac(doc)
    lobby = cams[HIK2]
    assert (lobby["id"], lobby["name"], lobby["group"], lobby["managed"]) == (
        "lobby-2", "lobby-2", "lobby", True)  # fmt: skip
    assert lobby["recognised_by"][0] == "inventory"
    assert lobby["ipv4"] == ["10.20.0.12"] and lobby["ipv6"] == ["fd00:20::12"]
    assert cams[HIK1]["managed"] is False and cams[HIK1]["name"] is None
    assert (cams[XM]["vendor"], cams[XM]["name"]) == ("Xiongmai", "generic")
    unmanaged = {i["rule"]: i for i in cams[DAHUA]["incidents"]}["unmanaged_device"]
    assert unmanaged["reached"] is None and unmanaged["count"] > 1  # the router's sightings


@pytest.mark.parametrize(
    "peer", ["239.255.255.250", "255.255.255.255", "169.254.1.1", "ff02::fb", "fe80::1"]
)
def test_peers_on_the_link_are_never_outside(peer: str) -> None:
    inv = CameraInventory()
    inv.record(flow("C1", peer, 100, resp_cc="ZZ", resp_name="x.example"))
    cam = one(inv.as_json(SOURCE))
    assert [c["country"] for c in cam["peers"]["countries"]] == [LOCAL]
    assert cam["bytes_out_external"] == 0 and cam["peers"]["names"] == []


def test_incident_evidence_is_bounded() -> None:
    inv = CameraInventory()
    evidence: dict[str, Any] = {f"k{i:02}": i for i in range(MAX_EVIDENCE_KEYS + 5)}
    evidence["banner"] = "x" * (MAX_EVIDENCE_CHARS * 10)
    evidence["incident"] = {"id": "the router's state"}
    inv.alert(alert("inbound_access", "AS1", evidence=dict(sorted(evidence.items()))), 1)
    (inc,) = one(inv.as_json(SOURCE))["incidents"]
    kept = inc["evidence"]
    assert len(kept) == MAX_EVIDENCE_KEYS and "incident" not in kept
    assert len(kept["banner"]) == MAX_EVIDENCE_CHARS + 3 and kept["banner"].endswith("...")
    again = CameraInventory()  # a saved file is bounded again when read back
    again.restore({"cameras": [{**one(inv.as_json(SOURCE)), "incidents": [
        {**inc, "evidence": evidence, "peers": [str(i) for i in range(1000)]}]}]})  # fmt: skip
    (back,) = one(again.as_json(SOURCE))["incidents"]
    assert len(back["evidence"]) == MAX_EVIDENCE_KEYS and len(back["peers"]) <= 17


#: Real captures (one site each) -> (camera MAC, vendor) they must name.
REAL: dict[str, tuple[str, str | None]] = {
    "sentinel_dlink-dcs935l_setup-A2.pcap": ("b0:c5:54:25:5b:0e", "D-Link"),
    "sentinel_edimax-cam1_setup-A2.pcap": ("74:da:38:80:7a:08", "Edimax"),
    "sentinel_ednet-cam2_setup-C3.pcap": ("3c:49:37:03:17:f0", "Ednet"),
    "shf_dlink-dcs8000lh_basefw_wan.pcap": ("b0:c5:54:43:54:83", "D-Link"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_capture_names_its_camera(name: str) -> None:
    path = corpus_file("pcaps", "camera-real", name)
    cams = by_mac(build_from_captures([path], Config.default()))
    mac, vendor = REAL[name]
    assert set(cams) == {mac}
    assert cams[mac]["vendor"] == vendor and cams[mac]["recognised_by"]
    assert cams[mac]["mac_vendor"]  # every camera MAC here is a registered one


def test_real_dlink_stream_leaves_the_site() -> None:
    path = corpus_file("pcaps", "camera-real", "shf_dlink-dcs8000lh_basefw_wan.pcap")
    cam = one(build_from_captures([path], Config.default()))
    assert cam["model"] == "DCS-8000LH" and cam["bytes_out_external"] > 1_000_000
    assert {r["country"] for r in cam["peers"]["countries"]} - {LOCAL, "unknown"}
    assert any(r["asn"] is not None or r["org"] for r in cam["peers"]["asns"])
    stream = {i["rule"]: i for i in cam["incidents"]}["outbound_stream"]
    assert stream["direction"] == "outbound" and stream["peer"] and stream["evidence"]
