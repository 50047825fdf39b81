"""Deep parsers and discovery protocols register themselves; a module not listed fails.

Two walks: :mod:`netwatch.deep` against ``BUILTIN_PARSERS`` and
:mod:`netwatch.deep.discovery` against ``BUILTIN_DISCOVERY``. Each fails on a module that
defines a registered class missing from its tuple (it would never see a payload), or that
defines none and is not a declared helper; the extra-module tests show both walks do fail.
The dispatch tables are checked too: who claims which port and which first bytes, and that
two parsers claiming one port is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep import BUILTIN_PARSERS, HELPER_MODULES, PARSERS
from netwatch.deep.base import DeepParser, Dispatch, Magic, _by_first_byte
from netwatch.deep.discovery import BUILTIN_DISCOVERY, DISCOVERY_PORTS, PROTOCOLS
from netwatch.deep.discovery import HELPER_MODULES as DISCOVERY_HELPERS
from netwatch.registry import PackageAudit, audit_package
from tests.profile import examples
from tests.registry_support import extra_module


def audit_deep() -> PackageAudit:
    return audit_package("netwatch.deep", PARSERS, BUILTIN_PARSERS, HELPER_MODULES)


def audit_discovery() -> PackageAudit:
    return audit_package("netwatch.deep.discovery", PROTOCOLS, BUILTIN_DISCOVERY, DISCOVERY_HELPERS)


def test_every_parser_module_is_in_the_builtin_set() -> None:
    result = audit_deep()
    assert result.ok, result
    assert [p.name for p in BUILTIN_PARSERS] == [
        "dns",
        "discovery",
        "tls",
        "http",
        "rtsp",
        "rtp",
        "dhcp",
        "ssdp",
        "pppp",
        "kalay",
        "quic",
        "starttls",
        "ssh",
        "ntp",
        "netbios",
        "gtp",
        "stun",
        "mqtt",
        "sip",
        "snmp",
        "dtls",
        "smb",
    ]


def test_every_discovery_module_is_in_the_builtin_set() -> None:
    result = audit_discovery()
    assert result.ok, result
    assert {p.port: p.parse for p in BUILTIN_DISCOVERY} == DISCOVERY_PORTS


def test_a_parser_module_missing_from_the_builtin_set_fails_the_walk(tmp_path: Path) -> None:
    source = """
        from netwatch.deep.base import DeepParser

        class CoapParser(DeepParser):
            udp_ports = frozenset({5683})
    """
    with extra_module(tmp_path, "netwatch.deep", "coap", source, PARSERS):
        result = audit_deep()
        assert PARSERS["coap"].udp_ports == {5683}
    assert result.unlisted == {"coap"} and not result.ok
    assert audit_deep().ok


def test_a_discovery_module_missing_from_the_builtin_set_fails_the_walk(tmp_path: Path) -> None:
    source = """
        from netwatch.deep.discovery.base import DiscoveryProtocol

        class ReolinkDiscovery(DiscoveryProtocol):
            port = 2000
    """
    package = "netwatch.deep.discovery"
    with extra_module(tmp_path, package, "reolink", source, PROTOCOLS):
        result = audit_discovery()
        deep = audit_deep()
    assert result.unlisted == {"reolink"} and not result.ok
    assert deep.ok  # a sub-package's modules are its own walk's business


def test_a_module_defining_no_parser_fails_unless_declared_a_helper(tmp_path: Path) -> None:
    with extra_module(tmp_path, "netwatch.deep", "sniff", "X = 1\n", PARSERS):
        result = audit_deep()
    assert result.stray == {"sniff"} and not result.ok


def test_the_dispatch_tables_follow_the_claims() -> None:
    d = Dispatch(BUILTIN_PARSERS)
    assert {port: p.name for port, p in d.udp_ports.items()} == {
        53: "dns", 5353: "dns", 5355: "dns",
        3702: "discovery", 5050: "discovery", 34569: "discovery", 37020: "discovery",
        37810: "discovery", 20002: "discovery", 54321: "discovery", 62976: "discovery",
        67: "dhcp", 68: "dhcp", 1900: "ssdp", 32100: "pppp", 32108: "pppp",
        10240: "kalay", 32761: "kalay", 123: "ntp", 137: "netbios",
        2152: "gtp", 2123: "gtp", 5060: "sip", 161: "snmp", 162: "snmp",
    }  # fmt: skip
    assert {port: p.name for port, p in d.tcp_ports.items()} == {
        53: "dns",
        22: "ssh",
        1883: "mqtt",
        445: "smb",
        **{port: "starttls" for port in (21, 2811, 25, 587, 110, 143, 3306, 5432)},
        **{port: "starttls" for port in (6666, 6667, 6668, 6669)},
    }
    assert [p.name for p in d.udp_other] == ["quic", "dtls", "stun", "rtp", "pppp", "kalay"]
    assert [p.name for _, p in d.client_magic[0x16]] == ["tls"]
    assert [p.name for _, p in d.client_magic[ord("O")]] == ["http", "rtsp"]  # OPTIONS: http
    assert [p.name for _, p in d.server_magic[ord("H")]] == ["http"]
    assert [p.name for _, p in d.server_magic[ord("R")]] == ["rtsp"]
    assert ord("x") not in d.client_magic  # a request method starts with a capital


def _by_first_byte_reference(claims: list[Magic]) -> dict[int, tuple[Magic, ...]]:
    """``_by_first_byte`` as it was first written (every claim's prefixes scanned once per
    first byte): the reference for the one-pass version."""
    table: dict[int, list[Magic]] = {}
    for prefixes, parser in claims:
        for first in dict.fromkeys(prefix[0] for prefix in prefixes if prefix):
            table.setdefault(first, []).append(
                (tuple(p for p in prefixes if p and p[0] == first), parser)
            )
    return {first: tuple(pairs) for first, pairs in table.items()}


_PARSERS = sorted((cls() for cls in BUILTIN_PARSERS), key=lambda p: p.rank)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.binary(max_size=3), max_size=6).map(tuple),
            st.sampled_from(_PARSERS),
        ),
        max_size=5,
    )
)
def test_the_magic_table_equals_the_reference(claims: list[Magic]) -> None:
    """Empty prefixes, repeated ones, several first bytes per claim in any order, and the
    built-in parsers' own claims (SSLv2's 128 one-byte prefixes among them)."""
    assert _by_first_byte(claims) == _by_first_byte_reference(claims)
    for side in ("client_magic", "server_magic"):
        builtin = [(getattr(p, side), p) for p in _PARSERS]
        assert _by_first_byte(builtin) == _by_first_byte_reference(builtin)


def test_two_parsers_claiming_one_port_are_refused() -> None:
    class SyslogExampleParser(DeepParser):
        udp_ports = frozenset({514})

    class OtherSyslogExampleParser(DeepParser):
        udp_ports = frozenset({514})

    try:
        with pytest.raises(ValueError, match="udp_ports 514 claimed by"):
            Dispatch((SyslogExampleParser, OtherSyslogExampleParser))
        with pytest.raises(TypeError, match="defined twice"):
            type("SyslogExampleParser", (DeepParser,), {})
    finally:
        PARSERS.pop("syslog_example", None)
        PARSERS.pop("other_syslog_example", None)
