"""Tests for compiled group policies."""

from __future__ import annotations

import socket
from pathlib import Path

from netwatch.config import Config
from netwatch.detect.policy import Destination, Policies


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
