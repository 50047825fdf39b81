"""Value converters: addresses, MACs, names, ports, URLs, numbers and durations."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netwatch.config import values as v
from netwatch.config.values import HostPort, PortRule
from tests.config.conftest import ConfigFailure, LoadConfig

GOOD = [
    (v.parse_ip, "10.0.0.1", ipaddress.ip_address("10.0.0.1")),
    (v.parse_ip, "2001:db8::1", ipaddress.ip_address("2001:db8::1")),
    (v.parse_cidr, "10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")),
    (v.parse_cidr, "fe80::/10", ipaddress.ip_network("fe80::/10")),
    (v.parse_cidr, "192.0.2.7", ipaddress.ip_network("192.0.2.7/32")),
    (v.parse_mac, "AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"),
    (v.parse_mac, "aa-bb-cc-dd-ee-0f", "aa:bb:cc:dd:ee:0f"),
    (v.parse_mac, "aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"),
    (v.parse_mac, "001B2C3D4E5F", "00:1b:2c:3d:4e:5f"),
    (v.parse_country, "DE", "DE"),
    (v.parse_name_pattern, "*.Example.COM.", "*.example.com"),
    (v.parse_name_pattern, "_ntp._udp.example.org", "_ntp._udp.example.org"),
    (v.parse_name_pattern, "cam*.vendor.cn", "cam*.vendor.cn"),
    (v.parse_port_rule, "443", PortRule(443)),
    (v.parse_port_rule, "UDP/123", PortRule(123, "udp")),
    (v.parse_port_rule, "tcp/65535", PortRule(65535, "tcp")),
    (v.parse_host_port, "127.0.0.1:9847", HostPort("127.0.0.1", 9847)),
    (v.parse_host_port, "[::1]:9847", HostPort("::1", 9847)),
    (v.parse_host_port, "metrics.example.org:80", HostPort("metrics.example.org", 80)),
    (v.parse_host_port, "localhost:1", HostPort("localhost", 1)),
    (v.parse_url, "https://am.example.org:9093/", "https://am.example.org:9093/"),
    (v.parse_url, "http://[::1]:9093", "http://[::1]:9093"),
    (v.parse_syslog_address, "/dev/log", Path("/dev/log")),
    (v.parse_syslog_address, "siem:6514", HostPort("siem", 6514)),
]


@pytest.mark.parametrize(("parse", "raw", "expected"), GOOD)
def test_parsers_accept_and_normalise(parse: Callable[[str], Any], raw: str, expected: Any) -> None:
    assert parse(raw) == expected


BAD = [
    (v.parse_ip, "10.0.0.256", "'10.0.0.256' is not a valid IP address"),
    (v.parse_ip, "", "is not a valid IP address"),
    (v.parse_cidr, "10.0.0.0/33", "'10.0.0.0/33' is not a valid IP network"),
    (v.parse_cidr, "10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"),
    (v.parse_cidr, "lan", "'lan' is not a valid IP network"),
    (v.parse_mac, "00:11:22:33:44", "is not a valid MAC address"),
    (v.parse_mac, "00:11-22:33:44:55", "is not a valid MAC address"),
    (v.parse_mac, "gg:11:22:33:44:55", "is not a valid MAC address"),
    (v.parse_country, "de", "upper-case ISO 3166 alpha-2"),
    (v.parse_country, "DEU", "upper-case ISO 3166 alpha-2"),
    (v.parse_name_pattern, "bad name.com", "not a DNS name or wildcard pattern"),
    (v.parse_name_pattern, "a..b", "not a DNS name or wildcard pattern"),
    (v.parse_name_pattern, "-a.com", "not a DNS name or wildcard pattern"),
    (v.parse_port_rule, "0", "is not a port (1-65535)"),
    (v.parse_port_rule, "70000", "is not a port (1-65535)"),
    (v.parse_port_rule, "icmp/1", "proto/port such as udp/123"),
    (v.parse_host_port, "::1:9847", "write IPv6 addresses in brackets"),
    (v.parse_host_port, "localhost", "is not host:port"),
    (v.parse_host_port, "host:0", "port 0 in 'host:0' is not in 1-65535"),
    (v.parse_host_port, "host:65536", "not in 1-65535"),
    (v.parse_host_port, "999.1.1.1:80", "not a valid IP address or host name"),
    (v.parse_host_port, "bad_host:80", "not a valid IP address or host name"),
    (v.parse_host_port, "[10.0.0.1]:80", "not a valid IPv6 address"),
    (v.parse_host_port, ":80", "not a valid IP address or host name"),
    (v.parse_url, "ftp://example.org/", "is not an http:// or https:// URL"),
    (v.parse_url, "example.org:9093", "is not an http:// or https:// URL"),
    (v.parse_url, "http://u:secret@am:9093", "inline credentials"),
    (v.parse_url, "http://am:99999", "invalid port"),
]


@pytest.mark.parametrize(("parse", "raw", "fragment"), BAD)
def test_parsers_reject_with_a_clear_message(
    parse: Callable[[str], Any], raw: str, fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse(raw)
    assert fragment in str(info.value)


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-", ""]))
def test_mac_normalisation_round_trips(raw: bytes, sep: str) -> None:
    text = sep.join(f"{b:02X}" for b in raw)
    assert v.parse_mac(text) == ":".join(f"{b:02x}" for b in raw)


def test_port_rule_matching() -> None:
    assert PortRule(443).matches("tcp", 443)
    assert PortRule(443).matches("udp", 443)
    assert PortRule(123, "udp").matches("UDP", 123)
    assert not PortRule(123, "udp").matches("tcp", 123)
    assert not PortRule(123, "udp").matches("udp", 124)
    assert [str(PortRule(1)), str(PortRule(2, "tcp"))] == ["1", "tcp/2"]


def test_host_port_str_brackets_ipv6() -> None:
    assert str(HostPort("::1", 9847)) == "[::1]:9847"
    assert str(HostPort("127.0.0.1", 9847)) == "127.0.0.1:9847"


SCALAR_CASES = [
    # (yaml, line, key path, message fragment)
    ("flows:\n  max_flows: many\n", 2, "flows.max_flows", "expected an integer, got a string"),
    ("flows:\n  max_flows: true\n", 2, "flows.max_flows", "expected an integer, got a boolean"),
    ("flows:\n  max_flows: 1.5\n", 2, "flows.max_flows", "expected an integer, got a number"),
    ("flows:\n  max_flows: 0\n", 2, "flows.max_flows", "must be at least 1, got 0"),
    ("capture:\n  snaplen: 300000\n", 2, "capture.snaplen", "between 1 and 262144"),
    ("dns:\n  min_ttl_s: yes\n", 2, "dns.min_ttl_s", "expected a number of seconds, got a boolean"),
    ("flows:\n  tcp_idle_s: -1\n", 2, "flows.tcp_idle_s", "positive number of seconds, got -1"),
    ("flows:\n  udp_idle_s: 0\n", 2, "flows.udp_idle_s", "positive number of seconds"),
    ("flows:\n  udp_idle_s: .inf\n", 2, "flows.udp_idle_s", "positive number of seconds"),
    ("flows:\n  udp_idle_s: .nan\n", 2, "flows.udp_idle_s", "positive number of seconds"),
    ("learning:\n  period_s: 7d\n", 2, "learning.period_s", "got a string"),
    ("alerts:\n  suppress_s: null\n", 2, "alerts.suppress_s", "got null"),
    ("geoip:\n  builtin: 1\n", 2, "geoip.builtin", "expected true or false, got an integer"),
    ("capture:\n  loop: 'yes'\n", 2, "capture.loop", "expected true or false, got a string"),
    ("site:\n  name: ''\n", 2, "site.name", "must not be empty"),
    ("site:\n  name: 2024-01-01\n", 2, "site.name", "expected a string, got a date/time"),
    ("logging:\n  level: verbose\n", 2, "logging.level", "'verbose' is not one of: debug, info"),
    ("logging:\n  format: [json]\n", 2, "logging.format", "expected a string, got a list"),
    ("metrics:\n  listen: '::1:9847'\n", 2, "metrics.listen", "brackets"),
    ("metrics:\n  listen: 9847\n", 2, "metrics.listen", "'9847' is not host:port"),
    ("groups:\n  g:\n    allow_asns: [AS1]\n", 3, "groups.g.allow_asns[0]", "expected an integer"),
    ("groups:\n  g:\n    allow_asns: [0]\n", 3, "groups.g.allow_asns[0]", "between 1 and"),
    ("groups:\n  g:\n    stream_bytes: false\n", 3, "groups.g.stream_bytes", "got a boolean"),
    ("groups:\n  g:\n    deny_countries: [de]\n", 3, "groups.g.deny_countries[0]", "'de'"),
    ("groups:\n  g:\n    dns_servers: [8.8.8]\n", 3, "groups.g.dns_servers[0]", "valid IP address"),
    ("groups:\n  g:\n    allow_ports: [udp/0]\n", 3, "groups.g.allow_ports[0]", "not a port"),
    ("groups:\n  g:\n    allow_ports: [0]\n", 3, "groups.g.allow_ports[0]", "between 1 and 65535"),
    ("groups:\n  g:\n    allow_ports: [true]\n", 3, "groups.g.allow_ports[0]", "'true' is not"),
    ("groups:\n  g:\n    allow_names: ['a b']\n", 3, "groups.g.allow_names[0]", "not a DNS name"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), SCALAR_CASES)
def test_scalar_errors(
    config_error: ConfigFailure, text: str, line: int, key: str, fragment: str
) -> None:
    err = config_error(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert fragment in err.message


def test_yaml_11_surprises_are_read_as_written(load_config: LoadConfig) -> None:
    cfg = load_config(
        """\
        groups:
          nordic: {allow_countries: [NO, SE], allow_ports: [0x1bb]}
        cameras:
          - {name: sexagesimal, mac: 10:22:33:44:55:56, group: nordic}
          - {name: octal, mac: 001122334455}
        """
    )
    assert cfg.groups["nordic"].allow_countries == ("NO", "SE")
    assert [c.mac for c in cfg.cameras] == ["10:22:33:44:55:56", "00:11:22:33:44:55"]
    assert cfg.groups["nordic"].allow_ports == (PortRule(0x1BB),)


def test_durations_accept_int_and_float(load_config: LoadConfig) -> None:
    cfg = load_config("flows: {tcp_idle_s: 2.5, udp_idle_s: 30}\nlearning: {period_s: 1.0e+3}\n")
    assert (cfg.flows.tcp_idle_s, cfg.flows.udp_idle_s) == (2.5, 30.0)
    assert isinstance(cfg.flows.udp_idle_s, float)
    assert cfg.learning.period_s == 1000.0
