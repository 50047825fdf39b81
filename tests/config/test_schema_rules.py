"""The `rules:` sections of the schema: composed from the rule modules, validated with
file:line:key errors, merged per group, and the deprecated outbound_stream group keys."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.model import Severity
from netwatch.config import Config
from netwatch.detect.policy import Policies
from netwatch.rules import BUILTIN_RULES
from netwatch.rules.base import RuleOptions
from netwatch.rules.outbound_stream import Options as StreamOptions
from netwatch.rules.outbound_stream import OutboundStream
from tests.config.conftest import ConfigFailure, LoadConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "netwatch.yaml"


def yaml_value(value: Any) -> str:
    """A default option value as YAML text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Severity):
        return value.value
    return repr(value)


# ---------------------------------------------------------------- composed from the rules


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r.id)
def test_every_rules_options_are_keys_of_the_schema(rule: Any, load_config: LoadConfig) -> None:
    kind = rule.options_type
    assert issubclass(kind, RuleOptions) and {"enabled", "severity"} <= set(kind.names())
    body = ", ".join(f"{f.name}: {yaml_value(f.default)}" for f in dataclasses.fields(kind))
    cfg = load_config(
        f"rules:\n  {rule.id}: {{{body}}}\ngroups:\n  g:\n    rules:\n      {rule.id}: {{{body}}}\n"
    )
    assert set(cfg.rules[rule.id]) == set(kind.names())
    assert set(cfg.groups["g"].rules[rule.id]) == set(kind.names())
    assert kind.merged(cfg.rules[rule.id]) == kind()  # the defaults, written out


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r.id)
def test_the_example_documents_every_rule_and_option_at_its_default(rule: Any) -> None:
    cfg = Config.load(EXAMPLE)
    kind = rule.options_type
    assert set(cfg.rules[rule.id]) == set(kind.names()), f"rules.{rule.id} in the example"
    assert kind.merged(cfg.rules[rule.id]) == kind(), "the example shows the defaults"


def test_the_example_loads_without_warnings() -> None:
    cfg = Config.load(EXAMPLE)
    assert cfg.warnings == ()
    assert dict(cfg.groups["lobby"].rules["audio_stream"]) == {"enabled": False}


def test_importing_the_config_does_not_import_the_rules() -> None:
    code = "import sys, netwatch.config; print('netwatch.rules' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- forms and merging


@pytest.mark.parametrize(
    ("text", "enabled"),
    [("off", False), ("on", True), ("'off'", False), ('"on"', True), ("false", False)],
)
def test_off_and_on_switch_a_rule(text: str, enabled: bool, load_config: LoadConfig) -> None:
    cfg = load_config(f"rules: {{audio_stream: {text}}}\n")
    assert dict(cfg.rules["audio_stream"]) == {"enabled": enabled}


def test_only_the_keys_written_are_kept(load_config: LoadConfig) -> None:
    cfg = load_config(
        """
        rules:
          outbound_stream: {stream_bytes: 800000, severity: high}
          audio_stream:
        """
    )
    assert dict(cfg.rules["outbound_stream"]) == {"stream_bytes": 800_000, "severity": "high"}
    assert cfg.rules["outbound_stream"]["severity"] is Severity.HIGH
    assert dict(cfg.rules["audio_stream"]) == {}


def test_merge_order_is_defaults_then_site_then_group(load_config: LoadConfig) -> None:
    cfg = load_config(
        """
        rules:
          outbound_stream: {stream_bytes: 800000, clip_ratio: 20, severity: high}
        groups:
          car-park:
            rules:
              outbound_stream: {stream_bytes: 2000000, enabled: false}
        """
    )
    policies = Policies(cfg, [OutboundStream])
    site = policies.of("default").options["outbound_stream"]
    group = policies.of("car-park").options["outbound_stream"]
    assert site == StreamOptions(stream_bytes=800_000, clip_ratio=20, severity=Severity.HIGH)
    assert group == dataclasses.replace(site, stream_bytes=2_000_000, enabled=False)
    assert policies.of("default").enabled("outbound_stream")
    assert not policies.of("car-park").enabled("outbound_stream")


def test_a_group_can_switch_back_on_what_the_site_switched_off(load_config: LoadConfig) -> None:
    cfg = load_config("rules: {audio_stream: off}\ngroups: {lobby: {rules: {audio_stream: on}}}\n")
    policies = Policies(cfg, BUILTIN_RULES)
    assert not policies.of("default").enabled("audio_stream")
    assert policies.of("lobby").enabled("audio_stream")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("rules:\n  audio_strem: off\n", 2, "rules.audio_strem", "did you mean 'audio_stream'?"),
        (
            "groups:\n  g:\n    rules:\n      rogue_dsn: off\n",
            4,
            "groups.g.rules.rogue_dsn",
            "unknown rule 'rogue_dsn' (did you mean 'rogue_dns'?)",
        ),
        (
            "rules:\n  outbound_stream:\n    stream_byte: 9\n",
            3,
            "rules.outbound_stream.stream_byte",
            "did you mean 'stream_bytes'?",
        ),
        (
            "rules:\n  audio_stream: {threshold: 3}\n",
            2,
            "rules.audio_stream.threshold",
            "valid keys: enabled, severity",
        ),
        (
            "rules:\n  outbound_stream:\n    stream_bytes: 0\n",
            3,
            "rules.outbound_stream.stream_bytes",
            "must be at least 1, got 0",
        ),
        (
            "rules:\n  outbound_stream:\n    clip_window_s: yes\n",
            3,
            "rules.outbound_stream.clip_window_s",
            "got a boolean",
        ),
        (
            "rules:\n  rogue_dns: {public_min_clients: 9}\n",
            2,
            "rules.rogue_dns.public_min_clients",
            "between 1 and 8",
        ),
        (
            "groups:\n  g:\n    rules:\n      audio_stream: {severity: urgent}\n",
            4,
            "groups.g.rules.audio_stream.severity",
            "'urgent' is not one of: critical, high, medium, low, info",
        ),
        (
            "rules:\n  audio_stream: quiet\n",
            2,
            "rules.audio_stream",
            "expected off, on or a mapping of the rule's options (enabled, severity)",
        ),
        ("rules:\n  capture_loss: off\n", 2, "rules.capture_loss", "has no options"),
        ("rules:\n  alert_flood: off\n", 2, "rules.alert_flood", "has no options"),
        ("rules: [audio_stream]\n", 1, "rules", "expected a mapping, got a list"),
        (
            "rules:\n  audio_stream: off\n  audio_stream: on\n",
            3,
            "rules.audio_stream",
            "duplicate key (first defined on line 2)",
        ),
    ],
)
def test_errors_name_the_file_line_and_key(
    text: str, line: int, key: str, message: str, config_error: ConfigFailure
) -> None:
    err = config_error(text)
    assert err.file.endswith("netwatch.yaml")
    assert (err.line, err.key) == (line, key)
    assert message in err.message


# ---------------------------------------------------------------- deprecated group keys


def test_deprecated_group_keys_still_work_with_a_warning(load_config: LoadConfig) -> None:
    cfg = load_config(
        """
        groups:
          car-park:
            allow_ports: [443]
            stream_bytes: 900000
            clip_bytes: null
            clip_ratio: 4
        """
    )
    rules = cfg.groups["car-park"].rules
    assert dict(rules["outbound_stream"]) == {"stream_bytes": 900_000, "clip_ratio": 4.0}
    assert [(w.line, w.key) for w in cfg.warnings] == [
        (5, "groups.car-park.stream_bytes"),
        (6, "groups.car-park.clip_bytes"),
        (7, "groups.car-park.clip_ratio"),
    ]
    first = str(cfg.warnings[0])
    assert first.endswith(
        "netwatch.yaml:5: groups.car-park.stream_bytes: deprecated key: "
        "use groups.car-park.rules.outbound_stream.stream_bytes"
    )
    options = Policies(cfg, [OutboundStream]).of("car-park").options["outbound_stream"]
    assert options == StreamOptions(stream_bytes=900_000, clip_ratio=4.0)
    assert cfg.groups["car-park"].allow_ports[0].port == 443


def test_deprecated_keys_merge_with_the_groups_rules(load_config: LoadConfig) -> None:
    cfg = load_config(
        """
        groups:
          g:
            stream_window_s: 30
            rules:
              outbound_stream: {stream_bytes: 700000}
              audio_stream: off
        """
    )
    rules = cfg.groups["g"].rules
    assert dict(rules["outbound_stream"]) == {"stream_bytes": 700_000, "stream_window_s": 30.0}
    assert dict(rules["audio_stream"]) == {"enabled": False}


def test_a_deprecated_key_set_twice_is_an_error(config_error: ConfigFailure) -> None:
    err = config_error(
        """
        groups:
          g:
            rules:
              outbound_stream: {stream_bytes: 700000}
            stream_bytes: 800000
        """
    )
    assert (err.line, err.key) == (6, "groups.g.stream_bytes")
    assert "also set as groups.g.rules.outbound_stream.stream_bytes" in err.message


def test_a_deprecated_key_is_validated_like_the_option(config_error: ConfigFailure) -> None:
    err = config_error("groups:\n  g:\n    clip_ratio: -1\n")
    assert (err.line, err.key) == (3, "groups.g.clip_ratio")
    assert "positive number" in err.message
