"""check_config_main: `netwatch check-config FILE` output and exit codes.

The full check (the default) runs every check of `netwatch run` short of opening sockets, so
a valid file here is a runnable one: a capture source, a writable state_dir. Errors are the
line `run` prints: `netwatch: FILE:LINE: KEY: message` for the file itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netwatch.config import check_config_main
from tests.config.conftest import WriteConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "netwatch.yaml"
DEMO_PCAP = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"


def runnable(tmp_path: Path, extra: str = "") -> str:
    """A config `run` accepts (a capture file, state under tmp_path, no GeoIP data)."""
    return (
        f"capture: {{files: ['{DEMO_PCAP}'], user: null}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "geoip: {builtin: false}\n" + extra
    )


def test_valid_file_prints_ok_and_returns_0(
    tmp_path: Path, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config(runnable(tmp_path, "site: {name: lab}\n")))
    assert check_config_main(path) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}\n"
    assert "ERROR" not in err and not (tmp_path / "state").exists()  # nothing created


def test_example_file_checks_ok_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(str(EXAMPLE), schema_only=True) == 0
    assert capsys.readouterr().out == f"OK: {EXAMPLE}\n"


def test_example_file_is_not_runnable_here(capsys: pytest.CaptureFixture[str]) -> None:
    """The example names eth1 and secrets in the environment: `run` would refuse it."""
    assert check_config_main(str(EXAMPLE), environ={}) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("netwatch: ")


def test_invalid_file_prints_one_line_and_returns_2(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site:\n  local_nets:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n"))
    assert check_config_main(path) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = f"netwatch: {path}:4: site.local_nets[1]: '10.0.0.0/33' is not a valid IP network\n"
    assert err == line


def test_missing_file_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "absent.yaml")
    assert check_config_main(path) == 2
    err = capsys.readouterr().err
    assert err == f"netwatch: {path}:1: <top>: cannot read: No such file or directory\n"


def test_directory_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(str(tmp_path)) == 2
    assert (
        capsys.readouterr().err == f"netwatch: {tmp_path}:1: <top>: cannot read: Is a directory\n"
    )


def test_syntax_error_returns_2(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site:\n  name: [x\n"))
    assert check_config_main(path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"netwatch: {path}:3: <top>: YAML syntax error: ")
    assert err.count("\n") == 1


def test_no_capture_source_is_refused_unless_schema_only(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config("site: {name: lab}\n"))
    assert check_config_main(path) == 2
    err = capsys.readouterr().err
    assert err == "netwatch: capture: nothing to read (set capture.interfaces or capture.files)\n"
    assert check_config_main(path, schema_only=True) == 0


def test_warnings_go_to_stderr_and_still_ok(
    tmp_path: Path, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "real-url"
    secret.write_text("http://127.0.0.1:9/hook\n")
    secret.chmod(0o600)
    (tmp_path / "url").symlink_to(secret)
    sink = "sinks: [{name: hook, type: webhook, url_file: url}]\n"
    path = str(write_config(runnable(tmp_path, sink)))
    assert check_config_main(path) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}\n"
    assert f"netwatch: WARNING: {path}:4: sinks[0].url_file: secret file" in err
    assert f"is a symlink to {secret}" in err
