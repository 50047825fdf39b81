"""The config schema: defaults, the example file, cross-field rules, files and sinks."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netwatch.config import (
    DEFAULT_GROUP,
    SINK_TYPES,
    AlertsConfig,
    CameraConfig,
    CaptureConfig,
    Config,
    ConfigError,
    DeepConfig,
    DnsConfig,
    FlowsConfig,
    GeoipConfig,
    GroupPolicy,
    HostPort,
    LearningConfig,
    LoggingConfig,
    MetricsConfig,
    SinkConfig,
    SiteConfig,
)
from netwatch.config.schema import EvidenceConfig
from tests.config.conftest import ConfigFailure, LoadConfig, WriteConfig
from tests.profile import examples

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "netwatch.yaml"
SECTIONS = (
    Config,
    EvidenceConfig,
    SiteConfig,
    CameraConfig,
    GroupPolicy,
    CaptureConfig,
    MetricsConfig,
    SinkConfig,
    GeoipConfig,
    FlowsConfig,
    DnsConfig,
    DeepConfig,
    LearningConfig,
    AlertsConfig,
    LoggingConfig,
)


# ---------------------------------------------------------------- defaults and the example


def test_defaults() -> None:
    cfg = Config.default()
    nets = {str(n) for n in cfg.site.local_nets}
    assert nets == {
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "169.254.0.0/16",
        "fe80::/10",
    }
    assert cfg.site.name == "netwatch"
    assert list(cfg.groups) == [DEFAULT_GROUP]
    assert cfg.group(DEFAULT_GROUP) == GroupPolicy()
    assert dict(cfg.rules) == {} and dict(cfg.groups["default"].rules) == {}
    assert cfg.metrics.listen == HostPort("127.0.0.1", 9847)
    assert cfg.state_dir == Path("/var/lib/netwatch")
    assert (cfg.flow_log, cfg.alert_log, cfg.geoip.country_db) == (None, None, None)
    assert (cfg.capture.interfaces, cfg.capture.files, cfg.capture.snaplen) == ((), (), 65535)
    assert cfg.flows == FlowsConfig(
        max_flows=1_000_000,
        tcp_idle_s=300,
        udp_idle_s=60,
        icmp_idle_s=60,
        other_idle_s=60,
        tcp_closed_s=5,
        tcp_attempt_s=5,
        tcp_partial_close_s=3,
        dns_idle_s=10,
        active_timeout_s=3600,
        max_fragments=4096,
        fragment_timeout_s=30,
    )
    assert (cfg.dns.cache_size, cfg.dns.min_ttl_s, cfg.dns.max_ttl_s) == (100_000, 60, 86_400)
    assert (cfg.deep.max_payload_packets, cfg.deep.max_hello_bytes) == (8, 16_384)
    assert (cfg.learning.period_s, cfg.alerts.suppress_s) == (604_800, 3600)
    assert (cfg.logging.format, cfg.logging.level) == ("logfmt", "info")
    assert (cfg.geoip.max_age_days, cfg.geoip.builtin) == (180, True)
    assert (cfg.geoip.cache, cfg.geoip.cache_dir) == (True, None)


def test_local_nets_are_network_objects() -> None:
    assert all(
        isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
        for n in Config.default().site.local_nets
    )


def test_config_is_frozen_slotted_and_hashable() -> None:
    cfg = Config.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.state_dir = Path("/tmp")  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.groups["x"] = GroupPolicy()  # type: ignore[index]
    for cls in SECTIONS:
        assert dataclasses.is_dataclass(cls)
        assert "__slots__" in vars(cls), cls
    assert hash(cfg) == hash(Config.default())


def test_example_file_loads() -> None:
    cfg = Config.load(EXAMPLE)
    assert [c.name for c in cfg.cameras] == ["lobby-1", "parking", "stairwell"]
    assert set(cfg.groups) == {"default", "lobby"}
    assert {s.type for s in cfg.sinks} == {
        "jsonl",
        "alertmanager",
        "webhook",
        "pagerduty",
        "syslog",
    }
    assert cfg.capture.interfaces == ("eth1",)


@pytest.mark.parametrize("cls", SECTIONS)
def test_example_file_documents_every_key(cls: type[Any]) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for fld in (f for f in dataclasses.fields(cls) if "conv" in f.metadata):  # keys only
        assert re.search(rf"\b{fld.name}:", text), f"{cls.__name__}.{fld.name} not in example"


def test_example_file_names_every_sink_type() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert all(f"type: {kind}" in text for kind in SINK_TYPES)


# ---------------------------------------------------------------- paths and files


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "geo").mkdir(parents=True)
    (conf_dir / "geo" / "asn.mmdb").write_bytes(b"x")
    (conf_dir / "demo.pcap").write_bytes(b"x")
    (conf_dir / "netwatch.yaml").write_text(
        "geoip: {asn_db: geo/asn.mmdb}\ncapture: {files: [demo.pcap]}\n"
        "state_dir: state\nflow_log: logs/flows.jsonl\nalert_log: /abs/alerts.jsonl\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    cfg = Config.load("etc/netwatch.yaml")
    assert cfg.geoip.asn_db == conf_dir / "geo" / "asn.mmdb"
    assert cfg.capture.files == (conf_dir / "demo.pcap",)
    assert cfg.state_dir == conf_dir / "state"
    assert cfg.flow_log == conf_dir / "logs" / "flows.jsonl"
    assert cfg.alert_log == Path("/abs/alerts.jsonl")


MISSING_FILES = [
    ("capture:\n  files: [nope.pcap]\n", 2, "capture.files[0]"),
    ("geoip:\n  country_db: nope.mmdb\n", 2, "geoip.country_db"),
    ("geoip:\n  city_db: /nonexistent/city.mmdb\n", 2, "geoip.city_db"),
    ("metrics:\n  web_config: web.yml\n", 2, "metrics.web_config"),
    ("sinks:\n  - {name: w, type: webhook, url_file: url.txt}\n", 2, "sinks[0].url_file"),
    (
        "sinks:\n  - name: p\n    type: pagerduty\n    routing_key_file: key\n",
        4,
        "sinks[0].routing_key_file",
    ),
]


@pytest.mark.parametrize(("text", "line", "key"), MISSING_FILES)
def test_missing_files_are_rejected(
    config_error: ConfigFailure, text: str, line: int, key: str
) -> None:
    err = config_error(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert "does not exist" in err.message


def test_missing_file_message_names_the_resolved_path(
    config_error: ConfigFailure, tmp_path: Path
) -> None:
    err = config_error("geoip:\n  asn_db: geo/asn.mmdb\n")
    resolved = tmp_path / "geo" / "asn.mmdb"
    assert err.message == f"file 'geo/asn.mmdb' does not exist (resolved to {resolved})"


def test_a_directory_is_not_a_file(config_error: ConfigFailure, tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    err = config_error("geoip: {country_db: db}\n")
    assert (err.key, err.message) == (
        "geoip.country_db",
        f"'db' is not a regular file (resolved to {tmp_path / 'db'})",
    )


def test_existing_secret_files_are_accepted(load_config: LoadConfig, tmp_path: Path) -> None:
    (tmp_path / "url").write_text("https://hooks.example.org/x\n", encoding="utf-8")
    (tmp_path / "url").chmod(0o640)  # group-readable (root:netwatch) is fine
    cfg = load_config("sinks:\n  - {name: chat, type: slack, url_file: url}\n")
    assert cfg.sinks[0].url_file == tmp_path / "url"
    assert cfg.sinks[0].url_env is None


# ---------------------------------------------------------------- cross-field rules

CROSS_CASES = [
    # (yaml, line, key path, message fragment)
    (
        "cameras:\n  - {name: a, ip: 10.0.0.1}\n  - {name: b, ip: 10.0.0.2}\n"
        "  - {name: a, mac: 'aa:bb:cc:dd:ee:ff'}\n",
        4,
        "cameras[2].name",
        "duplicate name 'a' (first on line 2)",
    ),
    (
        "cameras:\n  - name: a\n    ip: 10.0.0.1\n    group: lobby\n",
        4,
        "cameras[0].group",
        "unknown group 'lobby'",
    ),
    (
        "cameras:\n  - name: a\n    group: default\n",
        2,
        "cameras[0]",
        "exactly one of ip, cidr, mac",
    ),
    (
        "cameras:\n  - name: a\n    ip: 10.0.0.1\n    mac: aa:bb:cc:dd:ee:ff\n",
        4,
        "cameras[0].mac",
        "cannot be combined with 'ip'",
    ),
    ("cameras:\n  - {name: a, ip: 10.0.0.256}\n", 2, "cameras[0].ip", "not a valid IP address"),
    (
        "cameras:\n  - {name: a, cidr: 10.0.0.0/33}\n",
        2,
        "cameras[0].cidr",
        "not a valid IP network",
    ),
    ("cameras:\n  - {name: a, mac: '00:11:22:33:44'}\n", 2, "cameras[0].mac", "not a valid MAC"),
    ("groups:\n  bad name: {}\n", 2, "groups.bad name", "not a valid group name"),
    ("groups:\n  lobby: []\n", 2, "groups.lobby", "expected a mapping, got a list"),
    ("dns:\n  min_ttl_s: 100\n  max_ttl_s: 10\n", 2, "dns.min_ttl_s", "must not exceed max_ttl_s"),
    ("dns:\n  min_ttl_s: 100000\n", 2, "dns.min_ttl_s", "must not exceed max_ttl_s (86400)"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), CROSS_CASES)
def test_cross_field_errors(
    config_error: ConfigFailure, text: str, line: int, key: str, fragment: str
) -> None:
    err = config_error(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert fragment in err.message


def test_group_defined_after_its_camera_is_found(load_config: LoadConfig) -> None:
    cfg = load_config(
        "cameras:\n  - {name: a, ip: 10.0.0.1, group: lobby}\n"
        "groups:\n  lobby: {allow_ports: [443]}\n"
    )
    assert cfg.group(cfg.cameras[0].group).allow_ports[0].port == 443
    assert DEFAULT_GROUP in cfg.groups


def test_default_group_can_be_redefined(load_config: LoadConfig) -> None:
    cfg = load_config("groups:\n  default: {allow_nets: [192.0.2.0/24]}\n")
    assert cfg.groups["default"].allow_nets == (ipaddress.ip_network("192.0.2.0/24"),)


def test_interfaces_and_files_are_mutually_exclusive(
    config_error: ConfigFailure, tmp_path: Path
) -> None:
    (tmp_path / "a.pcap").write_bytes(b"")
    err = config_error("capture:\n  interfaces: [eth1]\n  files: [a.pcap]\n")
    assert (err.line, err.key) == (3, "capture.files")
    assert err.message == "cannot be combined with 'interfaces' (use only one)"


def test_capture_keys(load_config: LoadConfig) -> None:
    cfg = load_config("capture: {interfaces: [eth1, eth2], bpf: 'not port 22', loop: true}\n")
    assert cfg.capture.interfaces == ("eth1", "eth2")
    assert (cfg.capture.bpf, cfg.capture.loop, cfg.capture.realtime) == ("not port 22", True, False)


# ---------------------------------------------------------------- sinks

AM = "name: a, type: alertmanager, urls: ['https://am:9093']"
SMTP = "name: m, type: smtp, smarthost: 'mail:587', mail_from: a@b.c, mail_to: [d@e.f]"
SINK_CASES = [
    # (sink mapping in flow style, key path, message fragment)
    ("{name: w, type: webhook, url: 'https://x'}", "sinks[0].url", "use url_file or url_env"),
    ("{name: p, type: pagerduty, routing_key: abc}", "sinks[0].routing_key", "routing_key_env"),
    ("{name: w, type: webhook}", "sinks[0]", "exactly one of url_file, url_env is required"),
    (
        "{name: w, type: webhook, url_env: A, url_file: netwatch.yaml}",
        "sinks[0].url_file",
        "cannot be combined",
    ),
    ("{name: w, type: webhook, url_env: 'A-B'}", "sinks[0].url_env", "environment variable name"),
    ("{name: j, type: jsonl}", "sinks[0].path", "required key is missing"),
    (
        "{name: j, type: jsonl, path: a, urls: []}",
        "sinks[0].urls",
        "not valid when type is 'jsonl'",
    ),
    ("{name: j, path: a}", "sinks[0].type", "required key is missing"),
    ("{type: jsonl, path: a}", "sinks[0].name", "required key is missing"),
    ("{name: j, type: email}", "sinks[0].type", "'email' is not one of: jsonl, alertmanager"),
    ("{name: a, type: alertmanager, urls: []}", "sinks[0].urls", "must not be empty"),
    ("{name: a, type: alertmanager, urls: ['ftp://x']}", "sinks[0].urls[0]", "http://"),
    ("{name: a, type: alertmanager, urls: ['http://u:p@x']}", "sinks[0].urls[0]", "credentials"),
    (
        "{name: s, type: syslog, address: /dev/log, transport: udp}",
        "sinks[0].transport",
        "host:port",
    ),
    (
        "{name: s, type: syslog, address: 'h:514', transport: unix}",
        "sinks[0].transport",
        "/dev/log",
    ),
    ("{name: s, type: syslog, address: 'h'}", "sinks[0].address", "is not host:port"),
    ("{name: s, type: syslog, address: /dev/log, format: json}", "sinks[0].format", "rfc5424, cef"),
    ("{name: j, type: jsonl, path: a, min_severity: urgent}", "sinks[0].min_severity", "critical"),
    ("{name: j, type: jsonl, path: a, groups: [lobby]}", "sinks[0].groups[0]", "unknown group"),
    ("{name: j, type: jsonl, path: a, rules: [Cloud-Reg]}", "sinks[0].rules[0]", "not a rule id"),
    # HTTP client options (alertmanager, webhook)
    (f"{{{AM}, password: hunter2}}", "sinks[0].password", "use password_file or password_env"),
    (f"{{{AM}, token: abc}}", "sinks[0].token", "use token_file or token_env"),
    (f"{{{AM}, bearer_token: abc}}", "sinks[0].bearer_token", "use token_file or token_env"),
    (f"{{{AM}, basic_auth: {{username: u}}}}", "sinks[0].basic_auth", "write username with"),
    (f"{{{AM}, tls_config: {{ca_file: x}}}}", "sinks[0].tls_config", "ca_file, cert_file"),
    (f"{{{AM}, username: u}}", "sinks[0].username", "needs password_file or password_env"),
    (f"{{{AM}, password_env: P}}", "sinks[0].password_env", "needs username as well"),
    (f"{{{AM}, username: 'a:b', password_env: P}}", "sinks[0].username", "without ':'"),
    (
        f"{{{AM}, username: u, password_env: P, token_env: T}}",
        "sinks[0].token_env",
        "cannot be combined with basic auth",
    ),
    (f"{{{AM}, token_env: T, token_file: netwatch.yaml}}", "sinks[0].token_file", "only one"),
    (f"{{{AM}, cert_file: netwatch.yaml}}", "sinks[0].cert_file", "needs key_file"),
    (f"{{{AM}, ca_file: missing.crt}}", "sinks[0].ca_file", "does not exist"),
    (
        "{name: a, type: alertmanager, urls: ['http://x:9093'], ca_file: netwatch.yaml}",
        "sinks[0].ca_file",
        "need an https:// URL",
    ),
    (f"{{{AM}, server_name: 'a b'}}", "sinks[0].server_name", "is not a host name"),
    ("{name: s, type: slack, url_env: U, username: u}", "sinks[0].username", "type is 'slack'"),
    # teams
    ("{name: t, type: teams}", "sinks[0]", "exactly one of url_file, url_env is required"),
    ("{name: t, type: teams, url: 'https://x'}", "sinks[0].url", "use url_file or url_env"),
    # smtp
    ("{name: m, type: smtp, mail_from: a@b.c, mail_to: [d@e.f]}", "sinks[0].smarthost", "missing"),
    (f"{{{SMTP}, mail_to: []}}".replace("mail_to: [d@e.f], ", ""), "sinks[0].mail_to", "empty"),
    (
        "{name: m, type: smtp, smarthost: mail, mail_from: a@b.c, mail_to: [d@e.f]}",
        "sinks[0].smarthost",
        "is not host:port",
    ),
    (
        "{name: m, type: smtp, smarthost: 'm:25', mail_from: \"x@y\\r\\nBcc: z@w\","
        " mail_to: [d@e.f]}",
        "sinks[0].mail_from",
        "e-mail address",
    ),
    (
        "{name: m, type: smtp, smarthost: 'm:25', mail_from: a@b.c, mail_to: ['Eve <e@f.g>']}",
        "sinks[0].mail_to[0]",
        "e-mail address",
    ),
    (f"{{{SMTP}, tls: ssl}}", "sinks[0].tls", "starttls, implicit, none"),
    (f"{{{SMTP}, tls: none, username: u, password_env: P}}", "sinks[0].tls", "in the clear"),
    (f"{{{SMTP}, password: x}}", "sinks[0].password", "use password_file or password_env"),
    (f"{{{SMTP}, subject: '{{rule}} {{evidence}}'}}", "sinks[0].subject", "unknown field"),
    (f"{{{SMTP}, subject: '{{rule'}}", "sinks[0].subject", "not a valid template"),
    (f"{{{SMTP}, subject: '{{rule.__class__}}'}}", "sinks[0].subject", "unknown field"),
    (f"{{{SMTP}, token_env: T}}", "sinks[0].token_env", "type is 'smtp'"),
]


@pytest.mark.parametrize(("sink", "key", "fragment"), SINK_CASES)
def test_sink_errors(config_error: ConfigFailure, sink: str, key: str, fragment: str) -> None:
    err = config_error(f"sinks:\n  - {sink}\n")
    assert (err.line, err.key) == (2, key), str(err)
    assert fragment in err.message


def test_inline_url_message_names_the_alternatives(config_error: ConfigFailure) -> None:
    err = config_error("sinks:\n  - name: hook\n    type: slack\n    url: https://hooks.x/y\n")
    assert err.line == 4
    assert err.message == "secrets never go inline in the config: use url_file or url_env"


def test_duplicate_sink_names(config_error: ConfigFailure) -> None:
    err = config_error(
        "sinks:\n  - {name: a, type: jsonl, path: x}\n  - {name: a, type: jsonl, path: y}\n"
    )
    assert (err.line, err.key, err.message) == (
        3,
        "sinks[1].name",
        "duplicate name 'a' (first on line 2)",
    )


def test_sinks_load(load_config: LoadConfig, tmp_path: Path) -> None:
    cfg = load_config(
        """\
        groups: {lobby: {}}
        sinks:
          - {name: log, type: jsonl, path: out/alerts.jsonl, rules: [audio_stream], groups: [lobby]}
          - {name: am, type: alertmanager, urls: ['http://a:9093', 'https://b:9093']}
          - {name: pd, type: pagerduty, routing_key_env: PD_KEY, min_severity: critical}
          - {name: local, type: syslog, address: /dev/log}
          - {name: siem, type: syslog, address: '[2001:db8::1]:6514', format: cef}
        """
    )
    log, am, pd, local, siem = cfg.sinks
    assert (log.path, log.rules, log.groups) == (
        tmp_path / "out/alerts.jsonl",
        ("audio_stream",),
        ("lobby",),
    )
    assert am.urls == ("http://a:9093", "https://b:9093")
    assert (pd.routing_key_env, pd.min_severity) == ("PD_KEY", "critical")
    assert (local.address, local.transport, local.format) == (Path("/dev/log"), "unix", "rfc5424")
    assert (siem.address, siem.transport, siem.format) == (
        HostPort("2001:db8::1", 6514),
        "udp",
        "cef",
    )


# ---------------------------------------------------------------- robustness

KEYS = [f.name for cls in SECTIONS for f in dataclasses.fields(cls)] + ["type", "jsonl", "x"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70_000),
    st.floats(allow_nan=True),
    st.sampled_from(["10.0.0.0/8", "eth1", "aa:bb:cc:dd:ee:ff", "127.0.0.1:1", "default", "udp/1"]),
    st.text(max_size=8),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), DOCS, max_size=5))
def test_any_structured_input_loads_or_raises_config_error(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc)
    try:
        cfg = Config.from_yaml(text, file="fuzz.yaml", base_dir=Path("/nonexistent"))
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml:")
        assert "\n" not in str(err)
        assert err.line >= 1
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=60))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    try:
        Config.from_yaml(text, file="fuzz.yaml")
    except ConfigError as err:
        assert "\n" not in str(err)
        assert 1 <= err.line <= text.count("\n") + 2


def test_write_config_fixture_round_trip(write_config: WriteConfig) -> None:
    path = write_config("site: {name: here}\n")
    assert Config.load(path).site.name == "here"


def test_http_client_teams_and_smtp_sinks_load(load_config: LoadConfig, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    secret.chmod(0o600)
    cfg = load_config(
        """\
        sinks:
          - name: am
            type: alertmanager
            urls: ['https://am.example:9093']
            username: netwatch
            password_file: secret
            ca_file: secret
            cert_file: secret
            key_file: secret
            server_name: am.internal
          - {name: hook, type: webhook, url_env: HOOK, token_env: HOOK_TOKEN}
          - {name: ward, type: teams, url_file: secret}
          - name: mail
            type: smtp
            smarthost: 'mail.example:465'
            tls: implicit
            mail_from: netwatch@example.org
            mail_to: [a@example.org, b.c+alerts@example.org]
            username: netwatch
            password_env: SMTP_PW
            subject: '{site}: {severity} {rule} on {device} to {peer} ({country})'
          - {name: relay, type: smtp, smarthost: '127.0.0.1:25', tls: none, mail_from: a@b.c,
             mail_to: [d@e.f]}
        """
    )
    am, hook, ward, mail, relay = cfg.sinks
    assert (am.username, am.password_file, am.server_name) == ("netwatch", secret, "am.internal")
    assert (am.ca_file, am.cert_file, am.key_file) == (secret, secret, secret)
    assert (hook.token_env, hook.username) == ("HOOK_TOKEN", None)
    assert ward.url_file == secret
    assert (mail.smarthost, mail.tls, mail.password_env) == (
        HostPort("mail.example", 465),
        "implicit",
        "SMTP_PW",
    )
    assert mail.mail_to == ("a@example.org", "b.c+alerts@example.org")
    assert (relay.tls, relay.subject) == ("none", "[netwatch] {severity} {rule} {device}")


def test_evidence_defaults_and_bounds(config_error: ConfigFailure) -> None:
    ev = Config.default().evidence
    assert (ev.enabled, ev.packets, ev.bytes, ev.snaplen) == (True, 16, 65_536, 1_600)
    assert (ev.max_memory_mb, ev.max_total_mb, ev.max_age_days) == (64, 256, 30)
    err = config_error("site: {name: x}\nevidence:\n  enabled: true\n  packets: 0\n")
    assert (err.line, err.key) == (4, "evidence.packets"), str(err)
    assert "between 1 and 10000" in err.message
    err = config_error("evidence:\n  max_total_mb: lots\n")
    assert (err.line, err.key) == (2, "evidence.max_total_mb"), str(err)
    err = config_error("evidence: {enabled: yes please}\n")
    assert err.key == "evidence.enabled", str(err)
    assert config_error("evidence: {snaplen: 10}\n").key == "evidence.snaplen"
    assert config_error("evidence: {keep: 3}\n").key == "evidence.keep"
