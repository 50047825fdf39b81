"""Seed-file validation: every bad file gives one exact line `FILE:LINE: key.path: message`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netwatch.config import ConfigError
from netwatch.signatures import Signatures, model
from netwatch.signatures import loader as seedio

HEADER = "# test seed\n# snapshot: 2026-11-27\n# sources:\n#   [SRC] a source\n"  # 4 lines
ENDPOINT = """\
endpoints:
  - id: a
    vendor: V
    service: s
    names: [a.example.com]
    source: "[SRC]"
    confidence: high
"""
PAYLOAD = """\
signatures:
  - id: a
    vendor: V
    rule: nat_traversal
    transport: udp
    match: {offset: 0, hex: "9E BA"}
    direction: any
    source: "[SRC]"
    confidence: high
"""
FINGERPRINT = """\
fingerprints:
  - id: a
    vendor: V
    field: http_server
    match: prefix
    value: App-webs/
    source: "[SRC]"
    confidence: high
"""
DISCOVERY = """\
protocols:
  - id: a
    vendor: V
    transport: udp
    ports: [37020]
    markers: {message: m, match: {contains: x}}
    source: "[SRC]"
    confidence: high
"""
TSV = "oui\tvendor\tregistrant\tcamera_vendor\tsource\tconfidence\n"
ROW = "BC:AD:28\tHikvision\tHangzhou Hikvision\tyes\t[SRC]\thigh\n"

Loader = Callable[[Path], tuple[object, ...]]


def error_of(tmp_path: Path, load: Loader, body: str, name: str = "seed.yaml") -> str:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    text = str(info.value)
    assert "\n" not in text
    prefix = f"{path}:"
    assert text.startswith(prefix)
    return text.removeprefix(prefix)


def test_minimal_files_load(tmp_path: Path) -> None:
    for name, body, load in (
        ("e.yaml", ENDPOINT, model.load_endpoints),
        ("p.yaml", PAYLOAD, model.load_payloads),
        ("f.yaml", FINGERPRINT, model.load_fingerprints),
        ("d.yaml", DISCOVERY, model.load_discovery),
        ("o.tsv", TSV + ROW, model.load_ouis),
    ):
        (tmp_path / name).write_text(HEADER + body, encoding="utf-8")
        assert len(load(tmp_path / name)) == 1


def _second(body: str, old: str, new: str) -> str:
    """`body` plus a copy of its one entry with `old` replaced by `new`."""
    return body + body.split("\n", 1)[1].replace(old, new)


ENDPOINT_CASES = [
    (
        ENDPOINT.replace("    source:", "    colour: red\n    source:"),
        "10: endpoints[0].colour: unknown key (valid keys: id, vendor, service, names, "
        "suffixes, ports, note, source, confidence)",
    ),
    (
        _second(ENDPOINT, "a.example", "b.example"),
        "12: endpoints[1].id: duplicate id 'a' (first on line 6)",
    ),
    (
        ENDPOINT.replace('    source: "[SRC]"\n', ""),
        "6: endpoints[0].source: required key is missing",
    ),
    (
        ENDPOINT.replace("    confidence: high\n", ""),
        "6: endpoints[0].confidence: required key is missing",
    ),
    (
        ENDPOINT.replace("    source:", "    ports: [{proto: tcp, port: 70000}]\n    source:"),
        "10: endpoints[0].ports[0].port: must be between 1 and 65535, got 70000",
    ),
    (
        ENDPOINT.replace("    source:", "    ports: [{proto: sctp, port: 1}]\n    source:"),
        "10: endpoints[0].ports[0].proto: 'sctp' is not one of: tcp, udp",
    ),
    (
        ENDPOINT.replace(
            "    source:", "    ports: [{proto: tcp, port: 1}, {proto: tcp, port: 1}]\n    source:"
        ),
        "10: endpoints[0].ports: duplicate port tcp/1",
    ),
    (
        _second(ENDPOINT, "id: a", "id: b"),
        "15: endpoints[1].names[0]: duplicate 'a.example.com' (first on line 9)",
    ),
    (
        ENDPOINT.replace("[SRC]", "[SRC]; [NOPE]"),
        "10: endpoints[0].source: cites [NOPE], which the file header does not name",
    ),
    (
        ENDPOINT.replace("    source:", "    suffixes: [.com]\n    source:"),
        "10: endpoints[0].suffixes[0]: '.com' is not a DNS suffix ('.' then 2 or more "
        "lower-case labels)",
    ),
    (
        ENDPOINT.replace("a.example.com", "A.example.com."),
        "9: endpoints[0].names[0]: 'A.example.com.' is not a lower-case DNS name (no trailing dot)",
    ),
    (
        ENDPOINT.replace("    names: [a.example.com]\n", ""),
        "6: endpoints[0]: needs at least one of names, suffixes, ports",
    ),
    (
        ENDPOINT.replace("high", "certain"),
        "11: endpoints[0].confidence: 'certain' is not one of: high, med, low, guess",
    ),
    ("", "1: <top>: expected a mapping with key 'endpoints', got nothing"),
    ("- a\n", "5: <top>: expected a mapping with key 'endpoints', got a list"),
    ("endpoints: []\n", "5: endpoints: must not be empty"),
    ("endpoints: {}\n", "5: endpoints: expected a list, got a mapping"),
    ("other: 1\n", "5: other: unknown key (the only key here is 'endpoints')"),
    (
        "endpoints:\n  - id: [x\n",
        "7: <top>: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)",
    ),
]


@pytest.mark.parametrize(("body", "expected"), ENDPOINT_CASES)
def test_bad_endpoint_files(tmp_path: Path, body: str, expected: str) -> None:
    assert error_of(tmp_path, model.load_endpoints, body) == expected


def _match(cond: str) -> str:
    return PAYLOAD.replace('{offset: 0, hex: "9E BA"}', cond)


PAYLOAD_CASES = [
    (
        PAYLOAD.replace('"9E BA"', '"9E BA A"'),
        "10: signatures[0].match.hex: '9E BA A' is not hex bytes (pairs of 0-9/A-F, one "
        "space between bytes)",
    ),
    (
        _match("{regex: '(unclosed'}"),
        "10: signatures[0].match.regex: bad regex: missing ), unterminated subpattern at "
        "position 0",
    ),
    (
        _match("{regex: 'a*'}"),
        "10: signatures[0].match.regex: regex matches empty input, so it would match everything",
    ),
    (
        _match("{contains: 'é'}"),
        "10: signatures[0].match.contains: 'é' is not non-empty printable ASCII (use hex for "
        "bytes)",
    ),
    (
        _match("{offset: 0, hex: '00', contains: x}"),
        "10: signatures[0].match.contains: cannot be combined with 'hex' (use only one)",
    ),
    (_match("{}"), "10: signatures[0].match: exactly one of hex, contains, regex is required"),
    (_match("{hex: '00'}"), "10: signatures[0].match.offset: required with 'hex'"),
    (
        _match("{offset: 0, hex: '00', mask: 'FF FF'}"),
        "10: signatures[0].match.mask: must be as many bytes as hex (1)",
    ),
    (
        _match("{offset: 0, hex: '0F', mask: 'F0'}"),
        "10: signatures[0].match.hex: has bits outside the mask, so it can never match",
    ),
    (
        _match("{offset: 3, contains: x}"),
        "10: signatures[0].match.offset: only valid together with 'hex'",
    ),
    (_match("[]"), "10: signatures[0].match: must not be empty"),
    (
        _match("[{contains: x}, {regex: '['}]"),
        "10: signatures[0].match[1].regex: bad regex: unterminated character set at position 0",
    ),
    (
        PAYLOAD.replace("    match", "    ports: [0]\n    match"),
        "10: signatures[0].ports[0]: must be between 1 and 65535, got 0",
    ),
    (
        PAYLOAD.replace("    match", "    ports: [8800, 8800]\n    match"),
        "10: signatures[0].ports: duplicate port 8800",
    ),
    (
        PAYLOAD.replace("direction: any", "direction: both"),
        "11: signatures[0].direction: 'both' is not one of: client, server, any",
    ),
    (
        PAYLOAD.replace("transport: udp", "transport: sctp"),
        "9: signatures[0].transport: 'sctp' is not one of: tcp, udp, any",
    ),
    (
        PAYLOAD.replace('    source: "[SRC]"\n', ""),
        "6: signatures[0].source: required key is missing",
    ),
    (
        _second(PAYLOAD, "9E BA", "9E BB"),
        "14: signatures[1].id: duplicate id 'a' (first on line 6)",
    ),
]


@pytest.mark.parametrize(("body", "expected"), PAYLOAD_CASES)
def test_bad_payload_files(tmp_path: Path, body: str, expected: str) -> None:
    assert error_of(tmp_path, model.load_payloads, body) == expected


def test_unknown_rule_id_lists_the_design_rule_ids(tmp_path: Path) -> None:
    got = error_of(tmp_path, model.load_payloads, PAYLOAD.replace("nat_traversal", "nat"))
    assert got == "8: signatures[0].rule: 'nat' is not one of: " + ", ".join(seedio.RULE_IDS)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            FINGERPRINT.replace("match: prefix", "match: regex").replace("App-webs/", "'(x'"),
            "10: fingerprints[0].value: bad regex: missing ), unterminated subpattern at "
            "position 0",
        ),
        (
            FINGERPRINT.replace("http_server", "server"),
            "8: fingerprints[0].field: 'server' is not one of: http_server, rtsp_server, "
            "www_authenticate, user_agent, dhcp_hostname, dhcp_vendor_class, dhcp_fingerprint, "
            "mdns_name, mdns_service, mdns_txt, ssdp_server, ssdp_location, ssdp_usn, "
            "upnp_manufacturer, upnp_model, mac_prefix",
        ),
        (
            FINGERPRINT.replace("match: prefix", "match: prefix\n    strength: weak"),
            "10: fingerprints[0].strength: weak is only for LAN fields (a banner match makes a "
            "camera)",
        ),
    ],
)
def test_bad_fingerprint_files(tmp_path: Path, body: str, expected: str) -> None:
    assert error_of(tmp_path, model.load_fingerprints, body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            DISCOVERY.replace(
                "    ports: [37020]\n", "    ports: [37020]\n    ethertype: 0x8033\n"
            ),
            "10: protocols[0].ethertype: not valid when transport is 'udp' (valid here: ports)",
        ),
        (
            DISCOVERY.replace("    ports: [37020]\n", ""),
            "6: protocols[0].ports: required key is missing",
        ),
        (
            DISCOVERY.replace("udp", "ethernet").replace("ports: [37020]", "ethertype: 0x0033"),
            "9: protocols[0].ethertype: must be between 1536 and 65535, got 51",
        ),
        (
            DISCOVERY.replace("    markers", "    multicast: 10.0.0.1\n    markers"),
            "10: protocols[0].multicast: '10.0.0.1' is not a multicast IP address",
        ),
    ],
)
def test_bad_discovery_files(tmp_path: Path, body: str, expected: str) -> None:
    assert error_of(tmp_path, model.load_discovery, body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            TSV + ROW.replace("BC:AD:28", "bc:ad:28"),
            "6: oui: 'bc:ad:28' is not an OUI written AA:BB:CC (upper-case hex)",
        ),
        (TSV + ROW.replace("yes", "y"), "6: camera_vendor: 'y' is not one of: yes, no"),
        (TSV + ROW + ROW, "7: oui: duplicate 'BC:AD:28' (first on line 6)"),
        (TSV + ROW.replace("\thigh", ""), "6: <top>: expected 6 tab-separated columns, got 5"),
        (
            TSV + ROW.replace("[SRC]", ""),
            "6: source: '' must be non-empty text without surrounding spaces",
        ),
        (
            TSV + ROW.replace("high", "sure"),
            "6: confidence: 'sure' is not one of: high, med, low, guess",
        ),
        (
            TSV.replace("oui", "OUI") + ROW,
            "5: <top>: expected the column header oui | vendor | registrant | camera_vendor | "
            "source | confidence",
        ),
        (
            TSV + ROW.replace("[SRC]", "[X]"),
            "6: source: cites [X], which the file header does not name",
        ),
        (TSV, "1: <top>: no data rows"),
    ],
)
def test_bad_oui_tables(tmp_path: Path, body: str, expected: str) -> None:
    assert error_of(tmp_path, model.load_ouis, body, "ouis.tsv") == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "1: <top>: the file must start with a '#' header naming its sources"),
        ("# t\n# sources:\n", "1: <top>: the header has no 'snapshot: YYYY-MM-DD' line"),
        ("# t\n# snapshot: 2026-02-30\n# sources:\n", "2: <top>: bad snapshot date '2026-02-30'"),
        ("# t\n# snapshot: 2026-11-27\n", "1: <top>: the header has no 'sources:' line"),
    ],
)
def test_header_is_required(tmp_path: Path, header: str, expected: str) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(header + ENDPOINT.replace("[SRC]", "x"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        model.load_endpoints(path)
    assert str(info.value) == f"{path}:{expected}"


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Signatures.load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / model.ENDPOINTS_FILE}:1: <top>: cannot read")
    path = tmp_path / "bad.yaml"
    path.write_bytes(HEADER.encode() + b"endpoints:\n  - id: \xff\n")
    with pytest.raises(ConfigError) as info:
        model.load_endpoints(path)
    assert str(info.value) == f"{path}:6: <top>: not UTF-8 text (byte 84)"


def test_default_seeds_dir_is_the_checkout_seeds() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert seedio.default_seeds_dir() == repo / "seeds"
    assert Signatures.load().seeds_dir == repo / "seeds"


def _leading_hash_lines(text: str) -> list[str]:
    """The reference: every line split, then the leading '#' lines."""
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


@given(
    text=st.lists(
        st.sampled_from(["#", "# a", "x", "", "\n", "\r", "\r\n", "\x0c", "\u2028", "#\r"]),
        max_size=30,
    ).map("".join),
    chunk=st.integers(1, 9),
)
def test_header_lines_are_the_leading_hash_lines_of_the_whole_text(text: str, chunk: int) -> None:
    """Only a chunk of the text is split at a time; the lines are those of splitting all."""
    assert seedio.header_lines(text, chunk) == _leading_hash_lines(text)


def test_header_lines_of_the_seed_files() -> None:
    root = seedio.default_seeds_dir()
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*.tsv")):
        text = path.read_text("utf-8-sig")
        lines = seedio.header_lines(text)
        assert lines == _leading_hash_lines(text) and len(lines) > 2, path
