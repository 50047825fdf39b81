"""Tests for the alert record: fields, identity, time format, severities."""

from __future__ import annotations

import ipaddress
import json
import random
import socket

import pytest

from netwatch.alerts.model import (
    Alert,
    Direction,
    EndReason,
    IncidentEnd,
    Severity,
    line_of,
    network_of,
    rank_of,
    rfc3339,
    status_of,
)

CONTRACT_FIELDS = (
    *("ts", "rule", "severity", "device", "device_ip", "device_mac", "vendor", "peer_ip"),
    *("peer_port", "proto", "direction", "peer_country", "peer_asn", "peer_org", "peer_name"),
    *("service", "summary", "flow_uid", "community_id", "evidence"),
)


def alert(**kw: object) -> Alert:
    base: dict[str, object] = {
        "ts": 1768467600.5,
        "rule": "cloud_registration",
        "severity": Severity.HIGH,
        "device": "lobby-1",
        "device_ip": "10.20.0.11",
        "summary": "registers with Hik-Connect",
        "peer_ip": "175.16.199.1",
        "peer_name": "litedev.hik-connect.com",
        "peer_port": 8666,
        "evidence": {"dns_name": "litedev.hik-connect.com"},
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_record_has_every_contract_field_and_is_json() -> None:
    rec = alert().record()
    assert all(k in rec for k in CONTRACT_FIELDS)
    assert rec["ts"] == "2026-01-15T09:00:00.500000Z"
    assert rec["severity"] == "high" and rec["direction"] == "outbound" and rec["count"] == 1
    assert json.loads(json.dumps(rec)) == rec


def test_identity_prefers_the_name_on_the_wire() -> None:
    a = alert(peer_ip="175.16.199.1")
    b = alert(peer_ip="111.235.160.1")
    assert a.identity == b.identity == ("cloud_registration", "lobby-1", "litedev.hik-connect.com")


def test_what_was_reached_is_platform_then_name_then_as_then_network() -> None:
    """The identity is the behaviour: rotating relays of one platform, or of one AS, or of
    one /24, are one incident; a peer inside the site is its own address."""
    assert alert(platform="CS2 Network PPPP").reached == "CS2 Network PPPP"
    assert alert(peer_name=None, peer_asn=4837, peer_org="CHINA UNICOM").reached == "AS4837"
    assert alert(peer_name=None, peer_org="TUEV Rheinland").reached == "TUEV Rheinland"
    assert alert(peer_name=None).reached == "175.16.199.0/24"
    assert alert(peer_name=None, peer_ip="2001:db8:1:2::5").reached == "2001:db8:1::/48"
    local = alert(peer_name=None, peer_ip="10.20.0.5", direction=Direction.LOCAL, peer_asn=1)
    assert local.reached == "10.20.0.5"
    assert alert(peer_name=None, peer_ip=None).reached == ""
    rec = alert(platform="Xiaomi cloud", group="wards").record()
    assert (rec["platform"], rec["group"], rec["reached"]) == (
        "Xiaomi cloud", "wards", "Xiaomi cloud",
    )  # fmt: skip


def test_severity_order() -> None:
    assert Severity.CRITICAL.at_least(Severity.HIGH)
    assert not Severity.LOW.at_least(Severity.MEDIUM)
    assert [s.rank for s in Severity] == [0, 1, 2, 3, 4]


def test_one_line_and_time() -> None:
    line = alert(peer_country="CN", direction=Direction.OUTBOUND).one_line()
    assert line == (
        "[high] cloud_registration lobby-1 -> litedev.hik-connect.com CN: "
        "registers with Hik-Connect"
    )
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_one_line_reads_right_in_both_directions_and_without_a_peer() -> None:
    inbound = alert(
        rule="inbound_access", peer_name=None, peer_ip="203.0.113.9", peer_country="US",
        direction=Direction.INBOUND, summary="reached from outside",
    )  # fmt: skip
    assert inbound.one_line() == (
        "[high] inbound_access 203.0.113.9 US -> lobby-1: reached from outside"
    )
    lone = alert(rule="unmanaged_device", peer_name=None, peer_ip=None, summary="unlisted")
    assert lone.one_line() == "[high] unmanaged_device lobby-1: unlisted"
    assert "->" not in lone.one_line()


def test_site_is_in_the_record_once_set() -> None:
    """`site` (the config's site.name) tells sensors apart; rules leave it None."""
    plain = alert()
    assert plain.site is None and "site" not in plain.record()  # replay records keep shape
    stamped = plain.at_site("hq-north")
    assert stamped.record()["site"] == "hq-north"
    assert stamped.record(3) == {**plain.record(3), "site": "hq-north"}
    assert stamped.identity == plain.identity  # de-duplication is per sensor anyway
    assert stamped.at_site("hq-north") is stamped
    assert alert(site="lab").record()["site"] == "lab"


def test_an_end_record_reads_as_one_and_firing_records_have_no_status() -> None:
    alert = Alert(
        ts=0.0, rule="nat_traversal", severity=Severity.HIGH, device="cam", device_ip="10.0.0.2",
        peer_ip="110.43.68.1", summary="relays", platform="CS2 Network PPPP",
    )  # fmt: skip
    assert "status" not in alert.record() and status_of(alert.record()).value == "firing"
    end = IncidentEnd(
        alert=alert, ts=900.0, first_seen=0.0, last_seen=60.0, sightings=3,
        severity=Severity.CRITICAL, peers=("110.43.68.1", "110.43.68.2"), more_peers=5,
        reason=EndReason.QUIET,
    )  # fmt: skip
    assert line_of(end.record()) == (
        "[critical] nat_traversal ENDED cam -> 110.43.68.1: relays (seen 3 times, "
        "1970-01-01T00:00:00.000000Z .. 1970-01-01T00:01:00.000000Z; "
        "peers 110.43.68.1, 110.43.68.2 +5 more)"
    )
    assert end.at_site("north").record()["site"] == "north"


def test_rank_of_a_severity_word() -> None:
    assert [rank_of(s.value) for s in Severity] == [s.rank for s in Severity] == [0, 1, 2, 3, 4]
    assert rank_of(Severity.HIGH) == 1
    for odd in (None, "", "HIGH", "severe", 3):
        assert rank_of(odd) == len(Severity)  # after every real one


def _network_by_ipaddress(address: str) -> str:
    """network_of as ipaddress computes it (the reference for its IPv4 shortcut)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@pytest.mark.parametrize("seed", range(3))
def test_network_of_matches_ipaddress(seed: int) -> None:
    rng = random.Random(seed)
    odd = [
        "",
        "x",
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4 ",
        "256.1.1.1",
        "0.0.0.0",
        "255.255.255.255",
        "::ffff:1.2.3.4",
        "2001:db8::1",
        "1.2.3.4/24",
    ]
    addresses = odd + [socket.inet_ntoa(rng.randbytes(4)) for _ in range(500)]
    for address in addresses:
        assert network_of(address) == _network_by_ipaddress(address), address
