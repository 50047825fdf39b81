"""Fixtures for the config tests: write a YAML file into tmp_path and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from netwatch.config import Config, ConfigError

WriteConfig = Callable[[str], Path]
LoadConfig = Callable[[str], Config]
ConfigFailure = Callable[[str], ConfigError]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write dedented YAML to tmp_path/netwatch.yaml (mode 0600, so that it may also serve
    as a secret file) and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "netwatch.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        path.chmod(0o600)
        return path

    return write


@pytest.fixture
def load_config(write_config: WriteConfig) -> LoadConfig:
    """Write YAML and load it (errors propagate)."""
    return lambda text: Config.load(write_config(text))


@pytest.fixture
def config_error(write_config: WriteConfig) -> ConfigFailure:
    """Write YAML, load it, and return the ConfigError it must raise."""

    def fail(text: str) -> ConfigError:
        with pytest.raises(ConfigError) as info:
            Config.load(write_config(text))
        return info.value

    return fail
