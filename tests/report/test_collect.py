"""The inventory JSON built from a replay, and the saved inventory a report reads.

The demo capture (pcaps/demo, see its README) pins the shape and the joins: the dual-stack
camera cam-hik-2 is one camera with both addresses, the NVR is no camera, peers inside the
site are ``local`` and do not count as bytes sent outside, incidents carry their evidence.
The host tally is checked on hand-made flow records for its bounds and its joins (a
router's MAC joins nothing, an address DHCP gave to another device stays that device's).
Real camera captures (skipped when ../shared/corpus is absent) name their cameras.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from netwatch.config import Config
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.geo import CachedGeo, geo_from_settings
from netwatch.report import collect
from netwatch.report.collect import (
    INVENTORY_VERSION,
    LOCAL,
    MAX_ADDRESSES_PER_MAC,
    MAX_LISTED,
    MAX_TALLY_KEYS,
    OTHERS,
    HostTally,
    InventoryError,
    inventory_from_captures,
    load_inventory,
)
from tests.conftest import REPO, corpus_file

DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
HIK1, HIK2, DAHUA, XM = (
    "bc:ad:28:1a:2b:01",
    "bc:ad:28:1a:2b:02",
    "b4:4c:3b:5e:6f:03",
    "02:12:34:56:78:14",
)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    """The inventory of the demo capture (built-in GeoIP data)."""
    return inventory_from_captures([DEMO], Config.default(), generated="2026-01-15T10:00:00Z")


def by_id(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in inventory["cameras"]}


def test_demo_cameras_are_the_four_cameras_one_each(demo: dict[str, Any]) -> None:
    cams = by_id(demo)
    assert set(cams) == {HIK1, HIK2, DAHUA, XM}  # not the NVR, resolver or time server
    assert {k: c["vendor"] for k, c in cams.items()} == {
        HIK1: "Hikvision",
        HIK2: "Hikvision",
        DAHUA: "Dahua",
        XM: "Xiongmai",
    }
    dual = cams[HIK2]
    assert dual["ipv4"] == ["10.20.0.12"] and dual["ipv6"] == ["fd00:20::12"]
    assert dual["macs"] == [HIK2]
    assert demo["version"] == INVENTORY_VERSION
    assert demo["source"] == {"captures": [str(DEMO)]}
    assert demo["generated"] == "2026-01-15T10:00:00Z"
    json.dumps(demo)  # JSON all the way down


def test_demo_peers_local_and_outside(demo: dict[str, Any]) -> None:
    dahua = by_id(demo)[DAHUA]
    countries = {r["country"]: r for r in dahua["peers"]["countries"]}
    assert LOCAL in countries  # RTSP to the NVR, NTP, DNS
    outside = [r for k, r in countries.items() if k != LOCAL]
    assert dahua["bytes_out_external"] == sum(r["bytes_out"] for r in outside)
    assert dahua["bytes_out_external"] > 250_000  # the P2P upload to 216.160.83.56
    rows = dahua["peers"]["countries"]
    assert [r["bytes_out"] for r in rows] == sorted((r["bytes_out"] for r in rows), reverse=True)
    names = {r["name"] for r in dahua["peers"]["names"]}
    assert "www.easy4ipcloud.com" in names
    hik1 = by_id(demo)[HIK1]
    # ntp.cctv.internal is the site's own server: a name inside the site is not listed
    assert {r["name"] for r in hik1["peers"]["names"]} == {"dev.ys7.com", "litedev.hik-connect.com"}


def test_demo_incidents_with_evidence(demo: dict[str, Any]) -> None:
    cams = by_id(demo)
    dual = {i["rule"]: i for i in cams[HIK2]["incidents"]}
    assert {"inbound_access", "audio_stream", "cloud_registration"} <= set(dual)
    inbound = dual["inbound_access"]
    assert inbound["direction"] == "inbound"
    assert inbound["evidence"]["service_port"] == 80
    assert inbound["peer"] == "81.2.69.142"
    assert inbound["open"] is True  # still going when the capture ended
    assert "grouped" not in inbound["evidence"]  # other reports are not this one's evidence
    platforms = {p["name"] for p in cams[DAHUA]["platforms"]}
    assert "Dahua cloud" in platforms
    for cam in cams.values():
        for inc in cam["incidents"]:
            assert set(inc) >= {"rule", "severity", "reached", "first", "last", "count"}
            assert inc["first"] <= inc["last"]


def _tally() -> HostTally:
    classifier = AddressClassifier(Config.default().site.local_nets)
    return HostTally(classifier, CachedGeo(geo_from_settings(None, None, None, False), classifier))


def _record(orig: str, resp: str, mac: str | None, **extra: Any) -> dict[str, Any]:
    local = AddressClassifier(Config.default().site.local_nets).is_site_local
    rec = {
        "ts": 1000.0,
        "duration": 1.0,
        "id.orig_h": orig,
        "id.resp_h": resp,
        "orig_bytes": 100,
        "resp_bytes": 10,
        "local_orig": local(ipaddress.ip_address(orig).packed),
        "local_resp": local(ipaddress.ip_address(resp).packed),
        "orig_l2_addr": mac,
        "resp_l2_addr": None,
        "resp_cc": None,
        "resp_asn": None,
        "resp_org": None,
        "resp_name": None,
    }
    rec.update(extra)
    return rec


def test_tally_multicast_is_not_outside_and_public_is() -> None:
    tally = _tally()
    tally.add(_record("10.0.0.5", "239.255.255.250", "02:00:00:00:00:05"))
    tally.add(_record("10.0.0.5", "198.51.100.1", "02:00:00:00:00:05", resp_cc="ZZ", resp_name="x"))
    tally.add(_record("10.0.0.5", "192.0.0.9", "02:00:00:00:00:05", resp_cc="CH"))
    (host,) = tally.hosts.values()
    assert host.countries[LOCAL].bytes_out == 100
    # documentation addresses leave the site too (only link-bound classes stay local)
    assert host.countries["ZZ"].flows == 1 and host.countries["CH"].flows == 1
    assert host.bytes_out_external == 200
    assert set(host.names) == {"x"}


def test_tally_bounds_peers_per_host() -> None:
    tally = _tally()
    for i in range(MAX_TALLY_KEYS + 5):
        tally.add(_record("10.0.0.5", "192.0.0.9", None, resp_name=f"n{i}.example"))
    (host,) = tally.hosts.values()
    assert len(host.names) == MAX_TALLY_KEYS
    assert host.names[OTHERS].flows == 6  # the last place is kept for the rest


def test_tally_bounds_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "MAX_HOSTS", 3)
    tally = _tally()
    for i in range(5):
        tally.add(_record(f"10.0.0.{i + 1}", "192.0.0.9", None))
    assert len(tally.hosts) == 3
    assert tally.overflow == 2


def test_router_mac_joins_nothing_and_reused_address_stays_apart() -> None:
    tally = _tally()
    router = "02:00:00:00:00:01"
    for i in range(MAX_ADDRESSES_PER_MAC + 1):
        tally.add(_record(f"10.9.0.{i + 1}", "192.0.0.9", router))
    tally.add(_record("10.0.0.7", "192.0.0.9", "02:00:00:00:00:07"))
    tally.add(_record("10.0.0.7", "192.0.0.9", "02:00:00:00:00:08"))  # DHCP gave it away
    tally.add(_record("fe80::7", "ff02::1", "02:00:00:00:00:07"))
    groups = collect._group_hosts(list(tally.hosts.values()))
    sizes = sorted(len(g.hosts) for g in groups)
    assert sizes == [1] * (MAX_ADDRESSES_PER_MAC + 1) + [1, 2]
    joined = next(g for g in groups if len(g.hosts) == 2)
    assert joined.mac == bytes.fromhex("020000000007")
    assert all(g.mac is None for g in groups if g.hosts[0].ip[:2] == bytes([10, 9]))


def test_listed_keeps_the_top_and_sums_the_rest() -> None:
    rows = [{"name": f"n{i}", "bytes_out": i, "bytes_in": 1, "flows": 1} for i in range(100)]
    out = collect._listed(rows, {"name": OTHERS})
    assert len(out) == MAX_LISTED
    assert out[0]["name"] == "n99"
    assert out[-1] == {
        "name": OTHERS,
        "bytes_out": sum(range(100 - MAX_LISTED + 1)),
        "bytes_in": 100 - MAX_LISTED + 1,
        "flows": 100 - MAX_LISTED + 1,
    }


def test_load_inventory_roundtrip_and_errors(tmp_path: Path, demo: dict[str, Any]) -> None:
    good = tmp_path / "inventory.json"
    good.write_text(json.dumps(demo))
    assert load_inventory(good) == demo
    with pytest.raises(InventoryError, match="no saved inventory"):
        load_inventory(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InventoryError, match="not JSON"):
        load_inventory(bad)
    bad.write_text(json.dumps({"version": 1}))
    with pytest.raises(InventoryError, match="no list of cameras"):
        load_inventory(bad)
    bad.write_text(json.dumps({"version": 99, "cameras": []}))
    with pytest.raises(InventoryError, match="version 99"):
        load_inventory(bad)
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(bad)


#: Real captures (one site each) -> (camera MAC, vendor) they must name. The Xiaomi camera
#: is recognised by its PPPP traffic, which names no vendor: its MAC's registrant is given.
REAL: dict[str, tuple[str, str | None]] = {
    "sentinel_dlink-dcs935l_setup-A2.pcap": ("b0:c5:54:25:5b:0e", "D-Link"),
    "sentinel_edimax-cam1_setup-A2.pcap": ("74:da:38:80:7a:08", "Edimax"),
    "sentinel_ednet-cam2_setup-C3.pcap": ("3c:49:37:03:17:f0", "Ednet"),
    "shf_dlink-dcs8000lh_basefw_wan.pcap": ("b0:c5:54:43:54:83", "D-Link"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_capture_names_its_camera(name: str) -> None:
    path = corpus_file("pcaps", "camera-real", name)
    inv = inventory_from_captures([path], Config.default())
    mac, vendor = REAL[name]
    cams = by_id(inv)
    assert set(cams) == {mac}
    assert cams[mac]["vendor"] == vendor
    assert cams[mac]["recognised_by"]
    assert cams[mac]["mac_vendor"]  # every camera MAC here is a registered one


def test_real_dlink_stream_leaves_the_site() -> None:
    path = corpus_file("pcaps", "camera-real", "shf_dlink-dcs8000lh_basefw_wan.pcap")
    (cam,) = inventory_from_captures([path], Config.default())["cameras"]
    assert cam["model"] == "DCS-8000LH"
    assert cam["bytes_out_external"] > 1_000_000
    countries = {r["country"] for r in cam["peers"]["countries"]}
    assert countries - {LOCAL, "unknown"}  # the built-in GeoIP data places its peers
    assert any(r["asn"] is not None or r["org"] for r in cam["peers"]["asns"])
    rules = {i["rule"] for i in cam["incidents"]}
    assert "outbound_stream" in rules


#: The inventory interface (briefs: "Its JSON form"): key -> the types its value may have.
Keys = dict[str, tuple[type, ...]]
TOP_KEYS: Keys = {
    "version": (int,),
    "generated": (str,),
    "site": (str, type(None)),
    "source": (dict,),
    "cameras": (list,),
}
CAMERA_KEYS: Keys = {
    "id": (str,),
    "macs": (list,),
    "ipv4": (list,),
    "ipv6": (list,),
    "vendor": (str, type(None)),
    "model": (str, type(None)),
    "firmware": (str, type(None)),
    "serial": (str, type(None)),
    "recognised_by": (list,),
    "group": (str, type(None)),
    "managed": (bool,),
    "first_seen": (float,),
    "last_seen": (float,),
    "platforms": (list,),
    "peers": (dict,),
    "bytes_out_external": (int,),
    "incidents": (list,),
}
PLATFORM_KEYS: Keys = {
    "name": (str,),
    "first_seen": (float,),
    "last_seen": (float,),
    "flows": (int,),
}
TRAFFIC_KEYS: Keys = {"bytes_out": (int,), "bytes_in": (int,), "flows": (int,)}
PEER_KEYS: dict[str, Keys] = {
    "countries": {"country": (str,), **TRAFFIC_KEYS},
    "asns": {"asn": (int, type(None)), "org": (str, type(None)), **TRAFFIC_KEYS},
    "names": {"name": (str,), **TRAFFIC_KEYS},
}
INCIDENT_KEYS: Keys = {
    "rule": (str,),
    "severity": (str,),
    "reached": (str, type(None)),
    "first": (float,),
    "last": (float,),
    "count": (int,),
    "open": (bool,),
    "summary": (str,),
}


def _conforms(value: dict[str, Any], keys: Keys) -> None:
    for key, types in keys.items():
        assert key in value, key
        assert isinstance(value[key], types), (key, value[key])


def test_shape_is_the_inventory_interface(demo: dict[str, Any]) -> None:
    """Every key of the shared interface, with its type (extra keys are allowed)."""
    _conforms(demo, TOP_KEYS)
    for cam in demo["cameras"]:
        _conforms(cam, CAMERA_KEYS)
        for platform in cam["platforms"]:
            _conforms(platform, PLATFORM_KEYS)
        for kind, keys in PEER_KEYS.items():
            for row in cam["peers"][kind]:
                _conforms(row, keys)
        for inc in cam["incidents"]:
            _conforms(inc, INCIDENT_KEYS)


def test_an_inventory_camera_keeps_its_name_and_group(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "site: {name: hq}\n"
        "cameras:\n  - {name: lobby-2, mac: 'bc:ad:28:1a:2b:02', group: lobby}\n"
        "  - {name: generic, ip: 10.30.0.14}\n"
        "groups:\n  lobby: {}\n"
    )
    inv = inventory_from_captures([DEMO], Config.load(conf))
    assert inv["site"] == "hq"
    lobby = by_id(inv)[HIK2]
    assert (lobby["name"], lobby["group"], lobby["managed"]) == ("lobby-2", "lobby", True)
    assert lobby["recognised_by"][0] == "inventory"
    assert lobby["ipv4"] == ["10.20.0.12"] and lobby["ipv6"] == ["fd00:20::12"]
    assert by_id(inv)[HIK1]["managed"] is False
    # listed, with a MAC no camera maker registered: the vendor its traffic named
    assert by_id(inv)[XM]["vendor"] == "Xiongmai" and by_id(inv)[XM]["name"] == "generic"
