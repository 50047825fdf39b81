"""YAML composing and the generic section engine: line numbers, key paths, structure errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from yaml.nodes import Node, ScalarNode

from netwatch.config import Config, ConfigError, loader
from netwatch.config.loader import compose
from tests.config.conftest import ConfigFailure, LoadConfig

SYNTAX_CASES = [
    # (yaml, line of the YAML problem mark, message fragment)
    ("site:\n  name: x\n  local_nets: [10.0.0.0/8\nflows: {}\n", 4, "expected ',' or ']'"),
    ("site:\n  name: x\n\tbad: 1\n", 3, "found character '\\t'"),
    ("site:\n  name: 'unterminated\n", 3, "unexpected end of stream"),
    ("a: b: c\n", 1, "mapping values are not allowed here"),
    ("site: {}\nflows: *nope\n", 2, "found undefined alias 'nope'"),
    ("---\na: 1\n---\nb: 2\n", 3, "expected a single document"),
    ("site:\n  name: \x07\n", 2, "special characters are not allowed"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), SYNTAX_CASES)
def test_yaml_syntax_errors_carry_the_mark_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text, file="x.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("x.yaml", line, "<top>")
    assert "YAML syntax error" in err.message
    assert fragment in err.message
    assert "\n" not in str(err)


def test_non_utf8_bytes_report_their_line() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(b"site:\n  name: \xff\n", file="x.yaml")
    assert (info.value.line, info.value.key) == (2, "<top>")
    assert "UTF-8" in info.value.message


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "~\n", "---\n", "{}\n"])
def test_empty_documents_give_all_defaults(text: str) -> None:
    assert Config.from_yaml(text) == Config.default()


def test_utf8_bom_is_accepted() -> None:
    cfg = Config.from_yaml("\ufeffsite: {name: bom}\n".encode())
    assert cfg.site.name == "bom"


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("# comment\n\n42\n", "an integer"), ("just text\n", "a string")],
)
def test_non_mapping_top_level_is_an_error_at_line_1(text: str, got: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text, file="top.yaml")
    assert str(info.value) == f"top.yaml:1: <top>: expected a mapping of keys, got {got}"


STRUCTURE_CASES = [
    # (yaml, line, key path, message fragment)
    ("sitee: {}\n", 1, "sitee", "unknown key (did you mean 'site'?)"),
    ("zzz: 1\n", 1, "zzz", "valid keys: site, cameras, groups"),
    (
        "site:\n  name: x\n  local_net: [10.0.0.0/8]\n",
        3,
        "site.local_net",
        "unknown key (did you mean 'local_nets'?)",
    ),
    (
        "groups:\n  lobby:\n    allow_ports: [443]\n\n    alow_nets: []\n",
        5,
        "groups.lobby.alow_nets",
        "did you mean 'allow_nets'?",
    ),
    (
        "cameras:\n  - name: a\n    ip: 10.0.0.1\n    colour: red\n",
        4,
        "cameras[0].colour",
        "unknown key",
    ),
    ("site:\n  name: a\n  name: b\n", 3, "site.name", "duplicate key (first defined on line 2)"),
    (
        "groups:\n  lobby: {}\n  other: {}\n  lobby: {}\n",
        4,
        "groups.lobby",
        "duplicate key (first defined on line 2)",
    ),
    ("site: {}\nflows: {}\nsite: {}\n", 3, "site", "duplicate key (first defined on line 1)"),
    ("base: &b {name: x}\n<<: *b\n", 2, "<top>", "merge keys (<<) are not supported"),
    ("site: [1]\n", 1, "site", "expected a mapping, got a list"),
    ("flows: 5\n", 1, "flows", "expected a mapping, got an integer"),
    ("site:\n  local_nets: 10.0.0.0/8\n", 2, "site.local_nets", "expected a list, got a string"),
    ("site:\n  local_nets:\n    - [10.0.0.0/8]\n", 3, "site.local_nets[0]", "got a list"),
    ("site:\n  [a]: 1\n", 2, "site", "expected a text key, got a list"),
    ("cameras:\n  - ip: 10.0.0.1\n", 2, "cameras[0].name", "required key is missing"),
    ("cameras:\n  - ~\n", 2, "cameras[0].name", "required key is missing"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), STRUCTURE_CASES)
def test_structure_errors_name_line_and_key(
    config_error: ConfigFailure, text: str, line: int, key: str, fragment: str
) -> None:
    err = config_error(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert fragment in err.message


def test_null_sections_and_lists_mean_defaults(load_config: LoadConfig) -> None:
    cfg = load_config("site:\ncameras:\ngroups:\nflows:\nsinks:\n")
    assert cfg == Config.default()


def test_aliases_are_followed(load_config: LoadConfig) -> None:
    cfg = load_config(
        """\
        groups:
          a: &policy {allow_ports: [443]}
          b: *policy
        """
    )
    assert cfg.groups["a"] == cfg.groups["b"]
    assert cfg.groups["b"].allow_ports[0].port == 443


def test_error_path_uses_the_file_name_as_given(config_error: ConfigFailure) -> None:
    err = config_error("flows:\n  max_flows: 0\n")
    assert err.file.endswith("netwatch.yaml")
    assert str(err) == f"{err.file}:2: flows.max_flows: must be at least 1, got 0"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("flows: {max_flows: !!int abc}", "flows.max_flows", "'abc' is not an integer"),
        ("flows: {tcp_idle_s: !!float abc}", "flows.tcp_idle_s", "'abc' is not a number"),
        ("geoip: {builtin: !!bool maybe}", "geoip.builtin", "'maybe' is not a boolean"),
        ("flows: {max_flows: !!int ''}", "flows.max_flows", "'' is not an integer"),
        ("flows: {tcp_idle_s: 1" + "0" * 400 + "}", "flows.tcp_idle_s", "positive number"),
        ("site: {name: !custom x}", "site.name", "got a value tagged !custom"),
        ("site: !!python/object:os.system {}", "site", "expected a mapping, got a value tagged"),
    ],
)
def test_explicit_tags_and_huge_numbers_are_config_errors(
    text: str, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text)
    assert (info.value.line, info.value.key) == (1, key)
    assert fragment in info.value.message


def _tree(node: Node | None) -> list[tuple[object, ...]]:
    """A node tree as comparable rows: kind, tag, marks, value (plain scalar style ''/None
    is the one thing libyaml and the pure loader spell differently; nothing reads it)."""
    if node is None:
        return []
    row = (type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column)
    if isinstance(node, ScalarNode):
        return [(*row, node.end_mark.line, node.value)]
    rows: list[tuple[object, ...]] = [(*row, node.end_mark.line, getattr(node, "flow_style", None))]
    for item in node.value:
        for child in item if isinstance(item, tuple) else (item,):
            rows += _tree(child)
    return rows


SEEDS = Path(__file__).resolve().parents[2] / "seeds"


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.yaml")), ids=lambda p: p.name)
def test_fast_compose_builds_the_same_tree(path: Path) -> None:
    text = path.read_text(encoding="utf-8-sig")
    fast, pure = compose(text, path.name, fast=True), compose(text, path.name)
    assert _tree(fast) == _tree(pure)
    assert len(_tree(pure)) > 50


def test_fast_compose_uses_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []

    class Spy(yaml.CSafeLoader):
        def __init__(self, stream: str) -> None:
            used.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(loader, "_C_LOADER", Spy)
    compose("a: 1\n", "x.yaml", fast=True)
    compose("b: 1\n", "x.yaml")
    assert used == ["a: 1\n"]


@pytest.mark.parametrize(("text", "line", "fragment"), SYNTAX_CASES)
def test_fast_compose_errors_read_as_the_pure_loaders(text: str, line: int, fragment: str) -> None:
    errors = []
    for fast in (True, False):
        with pytest.raises(ConfigError) as info:
            compose(text, "x.yaml", fast=fast)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert f"x.yaml:{line}: " in errors[0] and fragment in errors[0]
