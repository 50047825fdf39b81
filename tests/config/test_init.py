"""check_config_main: `netwatch check-config FILE` output and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from netwatch.config import check_config_main
from tests.config.conftest import WriteConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "netwatch.yaml"


def test_valid_file_prints_ok_and_returns_0(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site: {name: lab}\n"))
    assert check_config_main(path) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"OK: {path}\n", "")


def test_example_file_checks_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(str(EXAMPLE)) == 0
    assert capsys.readouterr().out == f"OK: {EXAMPLE}\n"


def test_invalid_file_prints_one_line_and_returns_2(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site:\n  local_nets:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n"))
    assert check_config_main(path) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}:4: site.local_nets[1]: '10.0.0.0/33' is not a valid IP network\n"


def test_missing_file_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "absent.yaml")
    assert check_config_main(path) == 2
    assert capsys.readouterr().err == f"{path}:1: <top>: cannot read: No such file or directory\n"


def test_directory_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(str(tmp_path)) == 2
    assert capsys.readouterr().err == f"{tmp_path}:1: <top>: cannot read: Is a directory\n"


def test_syntax_error_returns_2(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site:\n  name: [x\n"))
    assert check_config_main(path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:3: <top>: YAML syntax error: ")
    assert err.count("\n") == 1
