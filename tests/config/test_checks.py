"""Load-time checks that used to pass silently: rule ids that do not exist, a camera listed
twice, secret files that others may read, and secret files that are symlinks."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import netwatch
import netwatch.rules
from netwatch.config import Config
from netwatch.config.values import known_rule_ids
from netwatch.rules.base import REGISTRY
from netwatch.signatures.loader import RULE_IDS as DESIGN_RULE_IDS
from tests.config.conftest import ConfigFailure, LoadConfig

PACKAGE = Path(netwatch.__file__).parent
NOT_FILTERABLE = {"alert_test"}  # `netwatch alert-test` bypasses every sink filter


# ---------------------------------------------------------------- rule ids


def sink_with_rules(*rules: str) -> str:
    head = "sinks:\n  - name: log\n    type: jsonl\n    path: a.jsonl\n"
    return head + f"    rules: [{', '.join(rules)}]\n"


def test_a_misspelt_rule_is_refused_with_a_hint(config_error: ConfigFailure) -> None:
    err = config_error(sink_with_rules("unexpected_egress", "cloud_registraton"))
    assert (err.line, err.key) == (5, "sinks[0].rules[1]")
    assert err.message == "unknown rule 'cloud_registraton' (did you mean 'cloud_registration'?)"


def test_an_unknown_rule_lists_the_known_ones(config_error: ConfigFailure) -> None:
    err = config_error(sink_with_rules("zzz"))
    assert err.message.startswith("unknown rule 'zzz' (known rules: cloud_registration, ")
    assert "capture_loss" in err.message


def registered_rule_ids() -> set[str]:
    """Every rule class the rules package defines (each module imported, listed or not)."""
    for info in pkgutil.walk_packages(netwatch.rules.__path__, "netwatch.rules."):
        importlib.import_module(info.name)
    return set(REGISTRY)


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    out[target.id] = node.value.value
    return out


def emitted_rule_ids() -> set[str]:
    """Rule ids written in the source as `rule=` arguments (a literal or a module constant):
    the alerts the sensor raises outside the rules registry (alert_flood, ...)."""
    found: set[str] = set()
    for file in PACKAGE.rglob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg != "rule":
                    continue
                if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    found.add(kw.value.value)
                elif isinstance(kw.value, ast.Name) and kw.value.id in constants:
                    found.add(constants[kw.value.id])
    return found - NOT_FILTERABLE


def test_the_source_scan_finds_the_sensor_rules() -> None:
    assert "alert_flood" in emitted_rule_ids()  # the scan itself works (the router's summary)


@pytest.mark.parametrize(
    "source", [registered_rule_ids, emitted_rule_ids, lambda: set(DESIGN_RULE_IDS)]
)
def test_every_rule_id_netwatch_has_is_accepted(load_config: LoadConfig, source: object) -> None:
    """Fails when a rule exists (registered, raised in the source, or in the DESIGN.md
    table) that a sink's `rules:` would refuse."""
    assert callable(source)
    ids = sorted(source())
    assert ids
    assert set(ids) <= set(known_rule_ids()), set(ids) - set(known_rule_ids())
    cfg = load_config(sink_with_rules(*ids))
    assert cfg.sinks[0].rules == tuple(ids)


# ---------------------------------------------------------------- cameras listed once

CAMERA_DUPLICATES = [
    # (cameras, the key of the second entry, the first line named)
    ("- {name: a, ip: 10.0.0.1}\n- {name: b, ip: 10.0.0.2}\n- {name: c, ip: 10.0.0.1}\n", "ip", 2),
    ("- {name: a, ip: 'fe80::1'}\n- {name: b, ip: 'fe80:0::1'}\n", "ip", 2),
    ("- {name: a, mac: 'aa:bb:cc:dd:ee:ff'}\n- {name: b, mac: AABB.CCDD.EEFF}\n", "mac", 2),
    ("- {name: a, cidr: 10.0.8.0/29}\n- {name: b, cidr: 10.0.8.0/29}\n", "cidr", 2),
]


@pytest.mark.parametrize(("cameras", "key", "first"), CAMERA_DUPLICATES)
def test_a_camera_listed_twice_names_both_lines(
    config_error: ConfigFailure, cameras: str, key: str, first: int
) -> None:
    err = config_error("cameras:\n" + cameras)
    second = cameras.count("\n") + 1
    assert err.line == second, str(err)
    assert err.key == f"cameras[{second - 2}].{key}"
    assert f"is also camera 'a' on line {first}" in err.message
    assert "the later entry would silently win" in err.message


def test_overlapping_but_different_entries_are_fine(load_config: LoadConfig) -> None:
    """Exact IP, then MAC, then the most specific CIDR: no entry silently wins."""
    cfg = load_config(
        "cameras:\n"
        "  - {name: a, ip: 10.0.8.1}\n"
        "  - {name: b, cidr: 10.0.8.0/29}\n"
        "  - {name: c, cidr: 10.0.8.0/24}\n"
        "  - {name: d, cidr: 10.0.8.1/32}\n"
        "  - {name: e, mac: 'aa:bb:cc:dd:ee:ff'}\n"
    )
    assert [c.name for c in cfg.cameras] == ["a", "b", "c", "d", "e"]


# ---------------------------------------------------------------- secret files


def secret(tmp: Path, name: str, mode: int) -> Path:
    path = tmp / name
    path.write_text("https://hooks.example.org/T000/B000/XXXX\n", encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("mode", "how"),
    [(0o644, "readable"), (0o602, "writable"), (0o606, "readable and writable")],
)
def test_a_secret_others_may_read_or_write_is_refused(
    config_error: ConfigFailure, tmp_path: Path, mode: int, how: str
) -> None:
    file = secret(tmp_path, "url", mode)
    err = config_error("sinks:\n  - name: chat\n    type: slack\n    url_file: url\n")
    assert (err.line, err.key) == (4, "sinks[0].url_file")
    assert err.message == (
        f"secret file {file} is {how} by others (mode {mode:04o}); fix: chmod o-rwx {file}"
    )
    assert "hooks.example.org" not in str(err)  # the secret itself never shows


def test_a_routing_key_file_is_a_secret_too(config_error: ConfigFailure, tmp_path: Path) -> None:
    secret(tmp_path, "pd", 0o604)
    err = config_error("sinks: [{name: pd, type: pagerduty, routing_key_file: pd}]\n")
    assert err.key == "sinks[0].routing_key_file" and "readable by others" in err.message


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o660])
def test_owner_and_group_only_secrets_load(
    load_config: LoadConfig, tmp_path: Path, mode: int
) -> None:
    secret(tmp_path, "url", mode)
    cfg = load_config("sinks: [{name: chat, type: slack, url_file: url}]\n")
    assert cfg.sinks[0].url_file == tmp_path / "url"
    assert cfg.warnings == ()


def test_a_symlinked_secret_loads_with_a_warning_naming_its_target(
    load_config: LoadConfig, tmp_path: Path
) -> None:
    """Kubernetes mounts secrets as symlinks into ..data/: accepted, with a warning."""
    (tmp_path / "..data").mkdir()
    target = secret(tmp_path / "..data", "url", 0o640)
    (tmp_path / "url").symlink_to("..data/url")
    cfg = load_config("sinks:\n  - {name: chat, type: slack, url_file: url}\n")
    (warning,) = cfg.warnings
    assert (warning.line, warning.key) == (2, "sinks[0].url_file")
    assert warning.message == f"secret file {tmp_path}/url is a symlink to {target} (accepted)"


def test_a_symlink_to_a_readable_secret_names_the_target_to_fix(
    config_error: ConfigFailure, tmp_path: Path
) -> None:
    target = secret(tmp_path, "real", 0o644)
    (tmp_path / "url").symlink_to(target)
    err = config_error("sinks: [{name: chat, type: slack, url_file: url}]\n")
    assert f"secret file {target} is readable by others" in err.message
    assert f"({tmp_path}/url is a symlink to it)" in err.message
    assert err.message.endswith(f"fix: chmod o-rwx {target}")


def test_warnings_do_not_change_equality(load_config: LoadConfig, tmp_path: Path) -> None:
    """`Config.warnings` is not a key: reload compares configs without it."""
    target = secret(tmp_path, "real", 0o600)
    (tmp_path / "url").symlink_to(target)
    linked = load_config("sinks: [{name: chat, type: slack, url_file: url}]\n")
    assert linked.warnings
    assert Config.default().warnings == ()
    with pytest.raises(Exception, match="unknown key"):
        load_config("warnings: []\n")


def test_metrics_site_label_defaults_off(load_config: LoadConfig) -> None:
    assert Config.default().metrics.site_label is False
    assert load_config("metrics: {site_label: true}\n").metrics.site_label is True
