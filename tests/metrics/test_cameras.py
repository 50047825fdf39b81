"""Per-camera traffic: active flows count once, label caps, ASN and country families."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from netwatch.metrics.cameras import CameraTraffic, camera_families


def resolve(ip: str, mac: str | None) -> tuple[str, str] | None:
    return (ip, "lobby") if ip.startswith("10.0.0.") else None


def rec(
    uid: str, cam: str, peer: str, sent: int, *, cc: str | None = "SE", asn: int | None = 1
) -> dict[str, Any]:
    return {
        "uid": uid,
        "id.orig_h": cam,
        "id.resp_h": peer,
        "orig_ip_bytes": sent,
        "resp_ip_bytes": sent // 10,
        "orig_pkts": sent // 100,
        "resp_pkts": 1,
        "resp_cc": cc,
        "resp_asn": asn,
        "resp_org": f"Org {asn}" if asn else None,
    }


class _Families(Collector):
    def __init__(self, traffic: CameraTraffic) -> None:
        self.traffic = traffic

    def collect(self) -> Any:
        return camera_families(self.traffic)


def registry_of(traffic: CameraTraffic) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Families(traffic))
    return registry


def test_an_active_flow_counts_its_progress_once() -> None:
    traffic = CameraTraffic(resolve)
    reg = registry_of(traffic)
    labels = {"camera": "10.0.0.1", "group": "lobby"}
    traffic.progress(rec("C1", "10.0.0.1", "8.8.8.8", 1000))
    assert reg.get_sample_value("netwatch_camera_sent_bytes_total", labels) == 1000
    traffic.progress(rec("C1", "10.0.0.1", "8.8.8.8", 2500))
    assert reg.get_sample_value("netwatch_camera_sent_bytes_total", labels) == 2500
    traffic.record(rec("C1", "10.0.0.1", "8.8.8.8", 4000))
    assert reg.get_sample_value("netwatch_camera_sent_bytes_total", labels) == 4000
    assert reg.get_sample_value("netwatch_camera_received_bytes_total", labels) == 400
    assert reg.get_sample_value("netwatch_camera_sent_packets_total", labels) == 40
    flows = {"camera": "10.0.0.1", "country": "SE"}
    assert reg.get_sample_value("netwatch_camera_peer_country_flows_total", flows) == 1
    assert reg.get_sample_value("netwatch_camera_peer_country_sent_bytes_total", flows) == 4000
    asn = {"camera": "10.0.0.1", "asn": "1", "org": "Org 1"}
    assert reg.get_sample_value("netwatch_camera_peer_asn_flows_total", asn) == 1
    assert reg.get_sample_value("netwatch_cameras", {"group": "lobby"}) == 1
    traffic.record(rec("C2", "10.0.0.1", "8.8.8.8", 100))  # a new flow starts from zero
    assert reg.get_sample_value("netwatch_camera_sent_bytes_total", labels) == 4100
    assert reg.get_sample_value("netwatch_camera_peer_country_flows_total", flows) == 2


def test_caps_put_the_rest_under_other() -> None:
    traffic = CameraTraffic(resolve, max_cameras=2, max_countries=2, max_asns=1)
    reg = registry_of(traffic)
    n = 0
    for i in range(5):
        for cc in ("SE", "CN", "US", None):
            n += 1
            traffic.record(rec(f"C{n}", f"10.0.0.{i}", "9.9.9.9", 10, cc=cc, asn=n % 3 or None))
    sent = {
        s.labels["camera"]: s.value
        for fam in reg.collect()
        if fam.name == "netwatch_camera_sent_bytes"
        for s in fam.samples
    }
    assert sent == {"10.0.0.0": 40, "10.0.0.1": 40, "other": 120}
    flows = "netwatch_camera_peer_country_flows_total"
    got = {
        (s.labels["camera"], s.labels["country"]): s.value
        for fam in reg.collect()
        if fam.name == "netwatch_camera_peer_country_flows"
        for s in fam.samples
    }
    assert got[("10.0.0.0", "SE")] == 1 and got[("10.0.0.0", "other")] == 2
    assert got[("other", "SE")] == 3 and got[("other", "other")] == 6 and len(got) == 9
    overflow = "netwatch_label_overflow_total"
    assert reg.get_sample_value(overflow, {"metric": flows}) == 2 * 2 + 6
    assert reg.get_sample_value(overflow, {"metric": "netwatch_camera_sent_bytes_total"}) == 12
    asns = {
        (s.labels["camera"], s.labels["asn"])
        for fam in reg.collect()
        if fam.name == "netwatch_camera_peer_asn_flows"
        for s in fam.samples
    }
    assert ("10.0.0.0", "1") in asns and ("10.0.0.0", "other") in asns
    assert {a for c, a in asns if c == "10.0.0.0"} <= {"1", "unknown", "other"}


def test_without_a_resolver_nothing_is_counted() -> None:
    traffic = CameraTraffic(None)
    traffic.record(rec("C1", "10.0.0.1", "8.8.8.8", 1000))
    assert traffic.snapshot().traffic == {}


def test_alerts_are_counted_per_camera_and_rule_under_the_camera_cap() -> None:
    traffic = CameraTraffic(resolve, max_cameras=1)
    reg = registry_of(traffic)
    traffic.alert("lobby-1", "cloud_registration")
    traffic.alert("lobby-1", "cloud_registration")
    traffic.alert("yard-2", "rogue_dns")  # over the cap
    name = "netwatch_camera_alerts_total"
    assert reg.get_sample_value(name, {"camera": "lobby-1", "rule": "cloud_registration"}) == 2
    assert reg.get_sample_value(name, {"camera": "other", "rule": "rogue_dns"}) == 1


def test_site_peers_are_local_organisations_stay_and_external_bytes_count() -> None:
    traffic = CameraTraffic(resolve)
    inside = rec("L1", "10.0.0.1", "10.0.0.53", 100, cc=None, asn=None)
    inside["local_resp"] = True
    traffic.record(inside)
    no_number = rec("U1", "10.0.0.1", "9.9.9.9", 300, cc=None, asn=None)
    no_number["resp_org"] = "Example Org"  # the organisation is known, the number is not
    traffic.record(no_number)
    traffic.record(rec("U2", "10.0.0.1", "9.9.9.10", 50, cc=None, asn=None))
    reg = registry_of(traffic)
    country = "netwatch_camera_peer_country_flows_total"
    assert reg.get_sample_value(country, {"camera": "10.0.0.1", "country": "local"}) == 1
    assert reg.get_sample_value(country, {"camera": "10.0.0.1", "country": "unknown"}) == 2
    asn = "netwatch_camera_peer_asn_flows_total"
    assert reg.get_sample_value(asn, {"camera": "10.0.0.1", "asn": "local", "org": ""}) == 1
    org = {"camera": "10.0.0.1", "asn": "unknown", "org": "Example Org"}
    assert reg.get_sample_value(asn, org) == 1
    external = "netwatch_camera_external_sent_bytes_total"
    assert reg.get_sample_value(external, {"camera": "10.0.0.1"}) == 350  # not the 100 inside
