"""rogue_dns without configured dns_servers: the site's resolvers are learnt, public ones named.

Generated captures replayed end to end (the rule with the detector's SiteResolvers), the
seed file, the SiteResolvers bounds, and the real Xiaomi captures (the camera's hard-coded
114.114.114.114 stays rogue, the router the phone also uses does not).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.incidents import findings
from netwatch.config import Config
from netwatch.config.errors import ConfigError
from netwatch.detect.resolvers import (
    MAX_CLIENTS_KEPT,
    SiteResolvers,
    Why,
    load_public_resolvers,
    public_resolver_table,
)
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.conftest import corpus_file
from tests.rules.test_rules import CAM, GW_MAC, dns_exchange, replay

CAMPUS_DNS = "130.104.1.1"  # a campus resolver at a public address (not a public service)
PEERS = [("10.20.0.50", "02:4e:56:00:00:50"), ("10.20.0.51", "02:4e:56:00:00:51")]
PEERS += [("10.20.0.52", "02:4e:56:00:00:52"), ("10.20.0.53", "02:4e:56:00:00:53")]
ZERO_INVENTORY = "cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n"
LATER_US = 200_000_000  # after every earlier UDP flow has gone idle (udp_idle_s 60)


def peer_query(t: g.Trace, resolver: str, ip: str, mac: str, ts: int) -> None:
    """A non-camera site device asks ``resolver`` and gets an answer."""
    r = g.Route.of(mac, ip, GW_MAC, resolver)
    name = "www.example.org"
    t.add(ts, g.udp_frame(r, 33000, 53, g.dns_query(7, name)))
    rr = [g.DnsRecord(name, g.DnsType.A, "93.184.216.34", 300)]
    t.add(ts + 400, g.udp_frame(r.reverse(), 53, 33000, g.dns_response(7, name, g.DnsType.A, rr)))


def rogue(tmp_path: Path, t: g.Trace, config: str = ZERO_INVENTORY) -> list[dict[str, Any]]:
    return [a for a in replay(tmp_path, t, config) if a["rule"] == "rogue_dns"]


def test_campus_resolver_other_devices_use_is_approved(tmp_path: Path) -> None:
    """The false positive of the issue: the lab's resolver has a public address."""
    t = g.Trace()
    ip, mac = PEERS[0]
    peer_query(t, CAMPUS_DNS, ip, mac, 1_000_000)
    dns_exchange(t, CAMPUS_DNS, "time.vendor.example", "192.0.2.10", LATER_US)
    assert rogue(tmp_path, t) == []


def test_off_site_resolver_no_other_device_uses_is_rogue(tmp_path: Path) -> None:
    t = g.Trace()
    ip, mac = PEERS[0]
    peer_query(t, "10.20.0.1", ip, mac, 1_000_000)  # the site's own resolver
    dns_exchange(t, CAMPUS_DNS, "time.vendor.example", "192.0.2.10", LATER_US)
    (alert,) = rogue(tmp_path, t)
    assert alert["peer_ip"] == CAMPUS_DNS and alert["severity"] == "medium"
    ev = alert["evidence"]
    assert ev["reason"] == Why.UNUSED_BY_OTHERS.value and ev["provider"] is None
    assert ev["query"] == "time.vendor.example" and ev["other_clients"] == 0


def test_public_resolver_is_rogue_even_when_one_other_device_uses_it(tmp_path: Path) -> None:
    t = g.Trace()
    ip, mac = PEERS[0]
    peer_query(t, "8.8.8.8", ip, mac, 1_000_000)  # a Chromecast-like device
    dns_exchange(t, "8.8.8.8", "p2p.vendor.example", "192.0.2.10", LATER_US)
    (alert,) = rogue(tmp_path, t)
    assert alert["evidence"]["provider"] == "Google Public DNS"
    assert alert["evidence"]["reason"] == Why.PUBLIC.value
    assert alert["evidence"]["other_clients"] == 1
    assert "through Google Public DNS resolver 8.8.8.8" in alert["summary"]


def test_public_resolver_the_whole_site_uses_is_approved(tmp_path: Path) -> None:
    t = g.Trace()
    for i, (ip, mac) in enumerate(PEERS[:3]):
        peer_query(t, "1.1.1.1", ip, mac, 1_000_000 + i * 10_000)
    dns_exchange(t, "1.1.1.1", "p2p.vendor.example", "192.0.2.10", LATER_US)
    assert rogue(tmp_path, t) == []


def test_public_min_clients_is_the_groups_option(tmp_path: Path) -> None:
    t = g.Trace()
    ip, mac = PEERS[0]
    peer_query(t, "8.8.8.8", ip, mac, 1_000_000)  # one other device uses it
    dns_exchange(t, "8.8.8.8", "p2p.vendor.example", "192.0.2.10", LATER_US)
    config = ZERO_INVENTORY.replace("10.20.0.11}", "10.20.0.11, group: g}")
    one = config + "groups:\n  g:\n    rules:\n      rogue_dns: {public_min_clients: 1}\n"
    assert rogue(tmp_path, t, one) == []
    two = config + "groups:\n  g: {}\nrules:\n  rogue_dns: {public_min_clients: 2}\n"
    (alert,) = rogue(tmp_path, t, two)
    assert alert["evidence"]["other_clients"] == 1


def test_a_raised_public_min_clients_keeps_a_public_resolver_rogue(tmp_path: Path) -> None:
    t = g.Trace()
    for i, (ip, mac) in enumerate(PEERS[:3]):
        peer_query(t, "1.1.1.1", ip, mac, 1_000_000 + i * 10_000)
    dns_exchange(t, "1.1.1.1", "p2p.vendor.example", "192.0.2.10", LATER_US)
    config = ZERO_INVENTORY + "rules:\n  rogue_dns: {public_min_clients: 4}\n"
    (alert,) = rogue(tmp_path, t, config)
    assert alert["evidence"]["reason"] == Why.PUBLIC.value


def test_configured_dns_servers_stay_authoritative(tmp_path: Path) -> None:
    config = ZERO_INVENTORY.replace("10.20.0.11}", "10.20.0.11, group: g}") + (
        "groups:\n  g: {dns_servers: [10.20.0.53]}\n"
    )
    t = g.Trace()
    for i, (ip, mac) in enumerate(PEERS[:3]):  # the whole site uses 130.104.1.1 ...
        peer_query(t, CAMPUS_DNS, ip, mac, 1_000_000 + i * 10_000)
    dns_exchange(t, CAMPUS_DNS, "a.vendor.example", "192.0.2.10", LATER_US)  # ... not listed
    dns_exchange(t, "10.20.0.53", "b.vendor.example", "192.0.2.11", LATER_US + 1_000_000)
    (alert,) = rogue(tmp_path, t, config)
    assert alert["peer_ip"] == CAMPUS_DNS
    assert alert["evidence"]["reason"] == Why.NOT_LISTED.value


def test_a_camera_does_not_teach_its_own_resolver(tmp_path: Path) -> None:
    """The camera's earlier answered query to the same resolver is no approval."""
    t = g.Trace()
    dns_exchange(t, CAMPUS_DNS, "a.vendor.example", "192.0.2.10", 1_000_000)
    dns_exchange(t, CAMPUS_DNS, "b.vendor.example", "192.0.2.11", LATER_US)
    alerts = rogue(tmp_path, t)
    assert alerts and all(a["evidence"]["other_clients"] == 0 for a in alerts)


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_dhcp_offered_resolver_is_approved_even_if_public() -> None:
    offered = {packed(CAMPUS_DNS), packed("8.8.8.8")}
    site = SiteResolvers(dhcp_resolvers=lambda: offered)
    for resolver in (CAMPUS_DNS, "8.8.8.8"):
        verdict = site.verdict(packed(resolver), False, packed(CAM))
        assert verdict.approved and verdict.why is Why.DHCP
    assert not site.verdict(packed("9.9.9.9"), False, packed(CAM)).approved
    assert SiteResolvers().verdict(packed(CAMPUS_DNS), False, packed(CAM)).approved is False


class _Flow:
    """The few Flow fields SiteResolvers.observe reads."""

    def __init__(self, client: str, resolver: str, port: int = 53, answered: bool = True):
        self.orig_h, self.resp_h, self.resp_p = packed(client), packed(resolver), port
        self.orig_mac, self.r_pkts = None, 1 if answered else 0


def _observe(site: SiteResolvers, flow: _Flow, camera: bool = False) -> None:
    site.observe(flow, {"local_orig": True}, lambda ip, mac: camera)  # type: ignore[arg-type]


def test_learning_is_bounded_and_counts_only_answered_non_camera_dns() -> None:
    site = SiteResolvers(public={}, max_resolvers=2)
    _observe(site, _Flow("10.0.0.5", "203.0.113.1", answered=False))
    _observe(site, _Flow("10.0.0.5", "203.0.113.1", port=5353))
    _observe(site, _Flow(CAM, "203.0.113.1"), camera=True)
    assert site.learnt() == {}
    for i in range(MAX_CLIENTS_KEPT + 5):
        _observe(site, _Flow(f"10.0.1.{i}", "203.0.113.1"))
    _observe(site, _Flow("10.0.0.5", "203.0.113.2"))
    _observe(site, _Flow("10.0.0.5", "203.0.113.3"))  # a third resolver: over the bound
    assert site.learnt() == {"203.0.113.1": MAX_CLIENTS_KEPT, "203.0.113.2": 1}
    assert site.dropped == 1 and site.clients(packed("203.0.113.3")) == 0


def test_the_second_resolver_of_a_pair_is_approved() -> None:
    site = SiteResolvers(public={})
    _observe(site, _Flow("10.0.0.5", "130.104.1.1"))
    verdict = site.verdict(packed("130.104.1.2"), False, packed(CAM))
    assert verdict.approved and verdict.why is Why.SAME_NETWORK
    assert not site.verdict(packed("130.104.2.1"), False, packed(CAM)).approved
    _observe(site, _Flow("fd00::5", "2001:db8:1:1::53"))
    assert site.verdict(packed("2001:db8:1:2::53"), False, packed("fd00::11")).approved
    assert not site.verdict(packed("2001:db8:2::53"), False, packed("fd00::11")).approved


def test_a_reload_keeps_what_was_learnt() -> None:
    old, new = SiteResolvers(public={}), SiteResolvers(public={})
    _observe(old, _Flow("10.0.0.5", CAMPUS_DNS))
    new.adopt(old)
    assert new.verdict(packed(CAMPUS_DNS), False, packed(CAM)).approved


def test_seed_names_the_resolvers_the_issue_lists() -> None:
    table = public_resolver_table()
    wanted = ["8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "114.114.114.114"]
    wanted += ["223.5.5.5", "119.29.29.29", "180.76.76.76", "208.67.222.222"]
    wanted += ["2001:4860:4860::8888", "2606:4700:4700::1111", "2620:fe::fe"]
    assert all(packed(ip) in table for ip in wanted)
    assert all(r.source.startswith("[") and r.confidence for r in load_public_resolvers())


def test_seed_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "# snapshot: 2026-12-02\n# sources:\n#   [X] somewhere\nresolvers:\n"
        "  - {id: a, provider: A, addresses: [8.8.8.8], source: '[X]', confidence: high}\n"
        "  - {id: b, provider: B, addresses: [8.8.8.8], source: '[X]', confidence: high}\n"
    )
    with pytest.raises(ConfigError, match=r"r.yaml:6: .*duplicate '8.8.8.8'"):
        load_public_resolvers(path)


@pytest.mark.parametrize(
    "rel",
    [
        "camera-iot/shf_xiaomi-cam_wan_snaplen150.pcap",
        "camera-real/shf_xiaomi-cam_myfw_wlan24_snaplen150.pcap",
        "camera-real/shf_xiaomi-cam_basefw_wan_snaplen150.pcap",
    ],
)
def test_xiaomi_hard_coded_114dns_stays_rogue(rel: str, tmp_path: Path) -> None:
    """Real captures: the camera asks 114.114.114.114 besides the router 192.168.1.1."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("geoip: {builtin: false}\ncameras:\n  - {name: mi, mac: '78:8b:2a:b2:20:ea'}\n")
    out = tmp_path / "a.jsonl"
    capture = corpus_file("pcaps", *rel.split("/"))
    run_replay([capture], Config.load(cfg), alerts_out=out, geo=NullGeo(), uid_seed=1)
    alerts = [r for line in out.read_text().splitlines() for r in findings(json.loads(line))]
    found = [(a["peer_ip"], a["evidence"]["provider"]) for a in alerts if a["rule"] == "rogue_dns"]
    assert found == [("114.114.114.114", "114DNS")]


def test_a_resolver_dhcp_handed_out_is_approved_end_to_end(tmp_path: Path) -> None:
    """The DHCP parser's option 6 reaches rogue_dns: the campus resolver at a public address,
    which no other device was seen using, is approved because the DHCP server offered it."""
    from tests.deep.test_dhcp import dhcp  # noqa: PLC0415 (the BOOTP builder of the parser tests)

    ack = dhcp(
        2,
        b"\x02\x4e\x56\x00\x00\x11",
        [(53, b"\x05"), (6, ipaddress.ip_address(CAMPUS_DNS).packed)],
    )
    server = g.Route.of(GW_MAC, "10.20.0.1", "02:4e:56:00:00:11", "10.20.0.11")
    with_dhcp = g.Trace()
    with_dhcp.add(1_000_000, g.udp_frame(server, 67, 68, ack))
    dns_exchange(with_dhcp, CAMPUS_DNS, "time.vendor.example", "192.0.2.10", LATER_US)
    assert rogue(tmp_path, with_dhcp) == []
    without = g.Trace()  # the same camera query, no DHCP seen: no other device uses it
    dns_exchange(without, CAMPUS_DNS, "time.vendor.example", "192.0.2.10", LATER_US)
    assert [a["peer_ip"] for a in rogue(tmp_path, without)] == [CAMPUS_DNS]
