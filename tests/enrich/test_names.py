"""Tests for netwatch.enrich.names: passive DNS cache at packet time, and best_name."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from netwatch.deep.dns import DnsMessage, DnsRecord, resolve_chain
from netwatch.enrich.names import PassiveDns, best_name

CAM = socket.inet_pton(socket.AF_INET, "10.0.0.11")
NVR = socket.inet_pton(socket.AF_INET, "10.0.0.12")
CDN = socket.inet_pton(socket.AF_INET, "203.0.113.10")
CDN6 = socket.inet_pton(socket.AF_INET6, "2001:db8::10")


def answer(qname: str, *records: DnsRecord) -> DnsMessage:
    return DnsMessage(txid=1, is_response=True, qname=qname, qtype=1, rcode=0, answers=records)


def test_cname_chain_maps_address_to_the_asked_name() -> None:
    message = answer(
        "dev.hik-connect.com",
        DnsRecord("dev.hik-connect.com", "CNAME", "dev-eu.hik-connect.com", 600),
        DnsRecord("dev-eu.hik-connect.com", "CNAME", "elb-123.eu-west-1.elb.example", 300),
        DnsRecord("elb-123.eu-west-1.elb.example", "A", "203.0.113.10", 120),
        DnsRecord("elb-123.eu-west-1.elb.example", "AAAA", "2001:db8::10", 120),
    )
    dns = PassiveDns()
    dns.observe(CAM, resolve_chain(message), ts=1000.0)
    assert dns.lookup(CDN, ts=1001.0, client=CAM) == "dev.hik-connect.com"
    assert dns.lookup(CDN6, ts=1001.0) == "dev.hik-connect.com"
    # the chain's smallest TTL (120 s) governs
    assert dns.lookup(CDN, ts=1119.9, client=CAM) == "dev.hik-connect.com"
    assert dns.lookup(CDN, ts=1120.0, client=CAM) is None


def test_ttl_expiry_is_packet_time() -> None:
    dns = PassiveDns(min_ttl_s=0)
    dns.observe(CAM, [(CDN, "a.example", 300)], ts=50_000.0)
    assert dns.lookup(CDN, ts=50_299.0) == "a.example"
    assert dns.lookup(CDN, ts=50_300.0) is None  # expired at packet time, whatever the clock
    assert dns.expired == 1
    assert len(dns) == 1  # the per-client entry is still there until looked up
    assert dns.lookup(CDN, ts=50_300.0, client=CAM) is None
    assert len(dns) == 0


def test_per_client_name_is_preferred() -> None:
    dns = PassiveDns()
    dns.observe(CAM, [(CDN, "camera-cloud.example", 600)], ts=10.0)
    dns.observe(NVR, [(CDN, "shop.example", 600)], ts=20.0)
    assert dns.lookup(CDN, ts=30.0, client=CAM) == "camera-cloud.example"
    assert dns.lookup(CDN, ts=30.0, client=NVR) == "shop.example"
    assert dns.lookup(CDN, ts=30.0) == "shop.example"  # most recent name for the address
    other = socket.inet_pton(socket.AF_INET, "10.0.0.99")
    assert dns.lookup(CDN, ts=30.0, client=other) == "shop.example"


def test_expired_client_entry_falls_back_to_any_client() -> None:
    dns = PassiveDns(min_ttl_s=0)
    dns.observe(CAM, [(CDN, "short.example", 10)], ts=0.0)
    dns.observe(NVR, [(CDN, "long.example", 1000)], ts=5.0)
    assert dns.lookup(CDN, ts=20.0, client=CAM) == "long.example"  # falls back to any client


def test_ttl_clamp() -> None:
    dns = PassiveDns(min_ttl_s=60, max_ttl_s=3600)
    dns.observe(None, [(CDN, "zero-ttl.example", 0)], ts=0.0)
    assert dns.lookup(CDN, ts=59.0) == "zero-ttl.example"  # kept for the minimum
    assert dns.lookup(CDN, ts=60.0) is None
    dns.observe(None, [(CDN6, "week.example", 7 * 86400)], ts=0.0)
    assert dns.lookup(CDN6, ts=3599.0) == "week.example"
    assert dns.lookup(CDN6, ts=3600.0) is None  # capped at the maximum


def test_resolve_chain_dict_form_and_invalid_entries() -> None:
    dns = PassiveDns()
    dns.observe(CAM, {"203.0.113.10": ("A.Example.", 300), "not-an-ip": ("x.example", 300)}, 0.0)
    assert dns.lookup(CDN, ts=1.0) == "a.example"
    assert dns.invalid == 1


def test_refresh_moves_entry_to_newest() -> None:
    dns = PassiveDns(max_entries=2)
    dns.observe(None, [(CDN, "a.example", 300)], ts=0.0)
    dns.observe(None, [(CDN6, "b.example", 300)], ts=1.0)
    dns.observe(None, [(CDN, "a.example", 300)], ts=2.0)  # refresh: CDN is now newest
    dns.observe(None, [(NVR, "c.example", 300)], ts=3.0)  # evicts CDN6, the oldest
    assert dns.lookup(CDN, ts=4.0) == "a.example"
    assert dns.lookup(CDN6, ts=4.0) is None
    assert dns.evictions == 1


def test_eviction_bound() -> None:
    dns = PassiveDns(max_entries=100)
    for i in range(1000):
        addr = (0xCB007100 + i).to_bytes(4, "big")
        dns.observe(CAM, [(addr, f"h{i}.example", 300)], ts=float(i))
        assert len(dns) <= 100
    assert dns.evictions == 2000 - 100
    newest = (0xCB007100 + 999).to_bytes(4, "big")
    assert dns.lookup(newest, ts=1000.0, client=CAM) == "h999.example"
    assert dns.lookup((0xCB007100).to_bytes(4, "big"), ts=1000.0) is None


@given(
    st.lists(
        st.tuples(st.binary(min_size=4, max_size=4), st.integers(0, 100_000)),
        max_size=200,
    ),
    st.integers(1, 20),
)
def test_size_never_exceeds_max(answers: list[tuple[bytes, int]], max_entries: int) -> None:
    dns = PassiveDns(max_entries=max_entries)
    for step, (addr, ttl) in enumerate(answers):
        dns.observe(addr[:1] * 4, [(addr, "n.example", ttl)], ts=float(step))
        assert len(dns) <= max_entries


def test_purge_expired() -> None:
    dns = PassiveDns(min_ttl_s=0)
    dns.observe(None, [(CDN, "a.example", 10), (CDN6, "b.example", 1000)], ts=0.0)
    assert dns.purge_expired(ts=100.0) == 1
    assert len(dns) == 1
    assert dns.lookup(CDN6, ts=100.0) == "b.example"


def test_best_name_priority() -> None:
    assert best_name("sni.example", "host.example", "dns.example") == "sni.example"
    assert best_name(None, "host.example", "dns.example") == "host.example"
    assert best_name("", "Host.Example:8080", "dns.example") == "host.example"
    assert best_name(None, None, "dns.example") == "dns.example"
    assert best_name(None, None, None) is None
    assert best_name("SNI.Example.", None, None) == "sni.example"


def test_best_name_skips_ip_literal_hosts() -> None:
    assert best_name(None, "203.0.113.10", "dns.example") == "dns.example"
    assert best_name(None, "203.0.113.10:554", None) is None
    assert best_name(None, "[2001:db8::1]:8080", "dns.example") == "dns.example"
    assert best_name(None, "2001:db8::1", None) is None


# --- sharing names between capture workers ------------------------------------------------


def test_on_learn_is_called_for_each_name_observed() -> None:
    dns = PassiveDns(min_ttl_s=60, max_ttl_s=3600)
    learnt: list[tuple[bytes | None, bytes, str, float]] = []
    dns.on_learn = lambda client, addr, name, expiry: learnt.append((client, addr, name, expiry))
    dns.observe(CAM, [(CDN, "Cloud.Example.", 10), (CDN6, "v6.example", 99_999)], ts=100.0)
    dns.observe(None, {"203.0.113.10": ("other.example", 120)}, ts=200.0)
    dns.observe(CAM, [(b"\x01\x02", "bad.example", 300), (CDN, "", 300)], ts=300.0)
    assert learnt == [
        (CAM, CDN, "cloud.example", 160.0),  # normalised; TTL raised to min_ttl_s
        (CAM, CDN6, "v6.example", 3700.0),  # TTL cut to max_ttl_s
        (None, CDN, "other.example", 320.0),
    ]
    assert dns.invalid == 2  # invalid answers are not passed on


def test_share_does_not_call_on_learn() -> None:
    dns = PassiveDns()
    learnt: list[str] = []
    dns.on_learn = lambda client, addr, name, expiry: learnt.append(name)
    dns.share(CAM, CDN, "cloud.example", 500.0)
    assert learnt == []
    assert dns.lookup(CDN, ts=100.0, client=CAM) == "cloud.example"


def test_a_name_shared_into_another_cache_is_found() -> None:
    origin, other = PassiveDns(), PassiveDns()
    echoed: list[str] = []
    other.on_learn = lambda client, addr, name, expiry: echoed.append(name)
    origin.on_learn = other.share  # the parent relays what one worker learnt to the others
    origin.observe(CAM, [(CDN, "cloud.example", 300)], ts=1_000.0)
    origin.observe(None, [(CDN6, "v6.example", 300)], ts=1_000.0)
    assert other.lookup(CDN, ts=1_100.0, client=CAM) == "cloud.example"
    assert other.lookup(CDN, ts=1_100.0, client=NVR) == "cloud.example"  # any client
    assert other.lookup(CDN, ts=1_100.0) == "cloud.example"
    assert other.lookup(CDN6, ts=1_100.0) == "v6.example"
    assert len(other) == len(origin) == 3  # (CAM, CDN), (any, CDN), (any, CDN6)
    assert other.lookup(CDN, ts=1_300.0) is None  # the shared expiry holds
    assert echoed == []  # no echo back to the parent


def test_a_name_shared_without_client_is_for_any_client() -> None:
    dns = PassiveDns()
    dns.share(None, CDN, "cloud.example", 500.0)
    assert len(dns) == 1
    assert dns.lookup(CDN, ts=0.0, client=CAM) == "cloud.example"


# --- learn: observe's answers in one loop ---------------------------------------------------

_ADDRS = st.sampled_from([CDN, CDN6, NVR, b"\x01\x02", b"", CDN[:3] + b"\x0b"])
_ANSWER = st.tuples(
    _ADDRS,
    st.sampled_from(["cloud.example", "Cloud.Example.", "", ".", "x..", "İ.example"]),
    st.integers(0, 100_000),
)


@given(
    st.lists(
        st.tuples(st.sampled_from([CAM, NVR, None, b""]), st.lists(_ANSWER, max_size=4)),
        max_size=30,
    ),
    st.integers(1, 6),
)
def test_learn_does_what_observe_one_answer_at_a_time_does(
    messages: list[tuple[bytes | None, list[tuple[bytes, str, int]]]], max_entries: int
) -> None:
    """The table (order included), the counters and the ``on_learn`` calls after
    :meth:`PassiveDns.learn` are those after ``_observe_one`` per answer, bound hit or not."""
    fast, slow = PassiveDns(max_entries, 60, 3600), PassiveDns(max_entries, 60, 3600)
    heard: dict[str, list[tuple[bytes | None, bytes, str, float]]] = {"fast": [], "slow": []}
    fast.on_learn = lambda client, addr, name, expiry: heard["fast"].append(
        (client, addr, name, expiry)
    )
    slow.on_learn = lambda client, addr, name, expiry: heard["slow"].append(
        (client, addr, name, expiry)
    )
    for step, (client, answers) in enumerate(messages):
        fast.learn(client, answers, float(step))
        for addr, name, ttl in answers:
            slow._observe_one(client, addr, name, ttl, float(step))
        assert list(fast._table.items()) == list(slow._table.items())
    assert heard["fast"] == heard["slow"]
    assert (fast.evictions, fast.invalid) == (slow.evictions, slow.invalid)
