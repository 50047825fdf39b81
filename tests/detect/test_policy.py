"""Tests for compiled group policies."""

from __future__ import annotations

import ipaddress
import socket
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.config import Config, GroupPolicy
from netwatch.detect.policy import Destination, Policies, Policy
from tests.profile import examples


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


def policies(tmp_path: Path, text: str) -> Policies:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return Policies(Config.load(path))


def test_default_group_allows_only_the_site(tmp_path: Path) -> None:
    pol = policies(tmp_path, "").of("default")
    assert pol.allows(Destination(ip("10.1.2.3"), 443, "tcp"))
    assert not pol.allows(Destination(ip("89.160.20.112"), 443, "tcp", "x.example", "SE", 1))
    assert pol.approved_resolver(ip("10.0.0.53"), site_local=True)
    assert not pol.approved_resolver(ip("8.8.8.8"), site_local=False)


def test_each_allow_list(tmp_path: Path) -> None:
    pol = policies(
        tmp_path,
        """
groups:
  g:
    allow_nets: [192.0.2.0/24]
    allow_names: ["*.vendor.example", exact.example]
    allow_countries: [DE]
    allow_asns: [64500]
    allow_ports: [udp/123]
    dns_servers: [10.0.0.53]
    deny_countries: [KP]
    deny_asns: [64511]
""",
    ).of("g")
    pub = ip("89.160.20.112")
    assert pol.allows(Destination(ip("192.0.2.9"), 1, "tcp"))
    assert pol.allows(Destination(pub, 1, "tcp", name="fw.vendor.example"))
    assert not pol.allows(Destination(pub, 1, "tcp", name="vendor.example"))  # *. is below
    assert pol.allows(Destination(pub, 1, "tcp", name="exact.example"))
    assert pol.allows(Destination(pub, 1, "tcp", country="DE"))
    assert pol.allows(Destination(pub, 1, "tcp", asn=64500))
    assert pol.allows(Destination(pub, 123, "udp")) and not pol.allows(Destination(pub, 123, "tcp"))
    assert pol.denies(Destination(pub, 1, "tcp", country="KP")) == "country KP"
    assert pol.denies(Destination(pub, 1, "tcp", asn=64511)) == "AS64511"
    assert pol.approved_resolver(ip("10.0.0.53"), True)
    assert not pol.approved_resolver(ip("10.0.0.54"), True)  # an explicit list is exclusive


def test_unknown_group_falls_back_to_default(tmp_path: Path) -> None:
    assert policies(tmp_path, "").of("nope").group == "default"


# ----------------------------------- issue 13: network tests on integers, as ipaddress does

v4_nets = st.builds(
    lambda addr, plen: ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{plen}", False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_nets = st.builds(
    lambda addr, plen: ipaddress.ip_network(f"{ipaddress.IPv6Address(addr)}/{plen}", False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
addresses = st.one_of(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=4, max_size=4).map(lambda a: bytes(10) + b"\xff\xff" + a),  # mapped
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.one_of(v4_nets, v6_nets), max_size=5), addresses, st.integers(0, 4))
def test_in_nets_answers_as_ipaddress_membership(
    nets: list[IPv4Network | IPv6Network], addr: bytes, inside: int
) -> None:
    if nets and inside < len(nets) and len(addr) * 8 == nets[inside].max_prefixlen:
        net = nets[inside]  # often an address inside one of the networks
        host = int.from_bytes(addr, "big") & ~int(net.netmask) & (2 ** (len(addr) * 8) - 1)
        addr = (int(net.network_address) | host).to_bytes(len(addr), "big")
    pol = Policy("g", GroupPolicy(allow_nets=tuple(nets[:2])), nets[2:])
    expected = any(
        ipaddress.ip_address(addr).version == net.version and ipaddress.ip_address(addr) in net
        for net in nets
    )
    assert pol.in_nets(addr) is expected


def test_in_nets_refuses_a_malformed_address() -> None:
    pol = Policy("g", GroupPolicy(), [ipaddress.ip_network("10.0.0.0/8")])
    with pytest.raises(ValueError):
        pol.in_nets(b"\x0a\x00\x00")


def test_in_nets_builds_no_address_object(monkeypatch: pytest.MonkeyPatch) -> None:
    pol = Policy("g", GroupPolicy(allow_nets=(ipaddress.ip_network("2001:db8::/32"),)), [])

    def refuse(_: object) -> None:
        raise AssertionError("an ipaddress object per peer")

    monkeypatch.setattr(ipaddress, "ip_address", refuse)
    assert pol.in_nets(socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
    assert not pol.in_nets(ip("192.0.2.1"))


def test_in_nets_at_every_network_edge_as_the_loop_answers() -> None:
    """The compiled membership (pieces of the address space, when built) answers as the
    loop over the networks at each network's first and last address and either side of
    them, for nested, adjacent and overlapping IPv4 and IPv6 networks, the whole space and
    a single host; and it is the lookup ``in_nets`` and ``allows`` use."""
    nets = [
        ipaddress.ip_network(text)
        for text in (
            "10.0.0.0/8",
            "10.1.0.0/16",
            "11.0.0.0/8",
            "192.168.1.0/24",
            "192.168.0.0/23",
            "203.0.113.7/32",
            "255.255.255.0/24",
            "fd00::/8",
            "fd12::/16",
            "2001:db8::/32",
            "ffff:ffff::/32",
        )
    ]
    for local, allowed in (
        (nets, []),
        (nets[:3], nets[3:]),
        ([ipaddress.ip_network("0.0.0.0/0")], []),
    ):
        pol = Policy("g", GroupPolicy(allow_nets=tuple(allowed)), local)
        edges: list[bytes] = []
        for net in [*local, *allowed]:
            size, top = net.max_prefixlen // 8, 1 << net.max_prefixlen
            first, last = int(net.network_address), int(net.broadcast_address)
            for value in (first - 1, first, first + 1, last - 1, last, last + 1):
                if 0 <= value < top:
                    edges.append(value.to_bytes(size, "big"))
        edges += [bytes(4), b"\xff" * 4, bytes(16), b"\xff" * 16]
        for addr in edges:
            assert pol.in_nets(addr) is pol._in_nets(addr), addr.hex()
            assert pol.allows(Destination(addr, 1, "tcp")) is pol._in_nets(addr), addr.hex()
        inside = [pol._in_nets(a) for a in edges]
        assert all(inside[:-2]) if len(local) == 1 else any(inside) and not all(inside)
