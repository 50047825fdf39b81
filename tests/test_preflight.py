"""`netwatch check-config` refuses what `netwatch run` refuses, with the same line.

Each case is a config the daemon refuses; both commands run as real processes on the same
file, and their last stderr line must be equal (and the exit status 2). The in-process
tests check what preflight builds, that it creates nothing, and the checks `run` has only
once it is wired to preflight (state directory, log paths, web-config TLS key).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from netwatch.capture.afpacket import RingError
from netwatch.capture.bpf import BpfError
from netwatch.config import Config, ConfigError
from netwatch.preflight import UsageError, failure_line, preflight
from netwatch.privileges import PrivilegeError, TargetUser
from netwatch.sinks.base import SinkError

REPO = Path(__file__).resolve().parent.parent
DEMO_PCAP = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
UNSET_ENV = "NETWATCH_TEST_PREFLIGHT_UNSET"
RUN_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base(tmp: Path, capture: str = "", web: Path | None = None) -> str:
    """A runnable config but for what a case adds: no GeoIP data, state and metrics local."""
    capture = capture or f"capture: {{files: ['{DEMO_PCAP}'], user: null}}\n"
    web_key = f", web_config: {web}" if web is not None else ""
    return (
        capture + f"state_dir: {tmp / 'state'}\n"
        "geoip: {builtin: false}\n"
        f"metrics: {{listen: '127.0.0.1:{free_port()}'{web_key}}}\n"
    )


def write(tmp: Path, text: str, name: str = "netwatch.yaml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def secret(tmp: Path, name: str, text: str, mode: int = 0o600) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def no_source(tmp: Path) -> str:
    return f"state_dir: {tmp / 'state'}\ngeoip: {{builtin: false}}\n"


def unset_env(tmp: Path) -> str:
    return base(tmp) + f"sinks: [{{name: hook, type: webhook, url_env: {UNSET_ENV}}}]\n"


def empty_secret_file(tmp: Path) -> str:
    key = secret(tmp, "pd-key", "\n")
    return base(tmp) + f"sinks: [{{name: pd, type: pagerduty, routing_key_file: {key}}}]\n"


def missing_interface(tmp: Path) -> str:
    live = "capture: {interfaces: [nwtest-nope0], workers: 1, user: null}\n"
    return base(tmp, live)


def bad_bpf(tmp: Path) -> str:
    live = "capture: {interfaces: [lo], workers: 1, bpf: 'tcp port', user: null}\n"
    return base(tmp, live)


def bad_web_config(tmp: Path) -> str:
    return base(tmp, web=write(tmp, "http_server_config: {}\n", "web.yml"))


def bad_geoip(tmp: Path) -> str:
    db = write(tmp, "not a database\n", "country.mmdb")
    return base(tmp).replace("geoip: {builtin: false}", f"geoip: {{country_db: {db}}}")


def not_a_capture(tmp: Path) -> str:
    pcap = write(tmp, "not a capture\n", "bad.pcap")
    return base(tmp, f"capture: {{files: ['{pcap}'], user: null}}\n")


def unknown_user(tmp: Path) -> str:
    return base(tmp, f"capture: {{files: ['{DEMO_PCAP}'], user: nwtest-no-such-user}}\n")


REFUSED: dict[str, Callable[[Path], str]] = {
    "no capture source": no_source,
    "unset url_env": unset_env,
    "empty secret file": empty_secret_file,
    "missing interface": missing_interface,
    "bad BPF filter": bad_bpf,
    "bad web config": bad_web_config,
    "bad GeoIP database": bad_geoip,
    "not a capture file": not_a_capture,
    "unknown capture.user": unknown_user,
}


def netwatch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != UNSET_ENV}
    return subprocess.run(
        [sys.executable, "-m", "netwatch", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        check=False,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else ""


@pytest.mark.parametrize("case", list(REFUSED))
def test_check_config_refuses_what_run_refuses_with_the_same_line(
    tmp_path: Path, case: str
) -> None:
    if case == "unknown capture.user" and os.geteuid() != 0:
        pytest.skip("capture.user only matters when started as root")
    path = write(tmp_path, REFUSED[case](tmp_path))
    run = netwatch("run", "-c", str(path))
    check = netwatch("check-config", str(path))
    assert run.returncode == 2, run.stderr
    assert check.returncode == 2, check.stderr
    assert check.stdout == ""
    assert check.stderr.count("\n") == 1, check.stderr
    assert last_line(check.stderr) == last_line(run.stderr)
    assert last_line(check.stderr).startswith("netwatch: ")


def test_a_config_check_config_accepts_runs(tmp_path: Path) -> None:
    path = write(tmp_path, base(tmp_path))
    check = netwatch("check-config", "-c", str(path))
    assert (check.returncode, check.stdout) == (0, f"OK: {path}\n"), check.stderr
    assert not (tmp_path / "state").exists()  # checking created nothing
    run = netwatch("run", "-c", str(path))
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------- in process


def load(tmp: Path, text: str) -> Config:
    return Config.load(write(tmp, text))


def test_plan_holds_what_was_built_and_nothing_is_created(tmp_path: Path) -> None:
    hook = secret(tmp_path, "hook-url", "http://127.0.0.1:9/hook\n")
    live = "capture: {interfaces: [lo], bpf: 'udp port 53', user: nobody}\n"
    text = base(tmp_path, live) + (
        f"flow_log: {tmp_path / 'logs' / 'flows.jsonl'}\n"
        f"sinks:\n  - {{name: hook, type: webhook, url_file: {hook}}}\n"
        f"  - {{name: am, type: alertmanager, urls: ['http://127.0.0.1:9']}}\n"
        f"  - {{name: env, type: slack, url_env: NW_SLACK}}\n"
    )
    cfg = load(tmp_path, text)
    before = sorted(tmp_path.rglob("*"))
    plan = preflight(cfg, environ={"NW_SLACK": "http://127.0.0.1:9/slack"}, euid=0)
    assert [s.name for s in plan.sinks] == ["hook", "am", "env"]
    assert plan.ring is not None and plan.ring.bpf  # the filter was compiled
    assert plan.web is None
    assert isinstance(plan.user, TargetUser) and plan.user.name == "nobody"
    assert plan.user.uid != 0
    assert plan.geo_info is not None and plan.geo_info.kind == "none"
    assert sorted(tmp_path.rglob("*")) == before  # no state_dir, no log directory


def test_not_root_needs_no_user_and_null_user_warns(tmp_path: Path) -> None:
    cfg = load(tmp_path, base(tmp_path))
    assert preflight(cfg, euid=1000).user is None
    plan = preflight(cfg, euid=0)
    assert plan.user is None
    assert "capture.user is null: netwatch keeps running as root" in plan.warnings


def test_a_uid_0_user_is_refused(tmp_path: Path) -> None:
    cfg = load(tmp_path, base(tmp_path, f"capture: {{files: ['{DEMO_PCAP}'], user: root}}\n"))
    with pytest.raises(PrivilegeError, match="'root' has uid 0"):
        preflight(cfg, euid=0)


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    text = base(tmp_path).replace(str(tmp_path / "state"), str(tmp_path / "file" / "state"))
    with pytest.raises(UsageError) as info:
        preflight(load(tmp_path, text))
    line = failure_line(info.value)
    assert (
        line
        == f"state_dir: cannot create {tmp_path}/file/state: {tmp_path}/file is not a directory"
    )


def test_log_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "alerts.jsonl").mkdir()
    text = base(tmp_path) + f"sinks: [{{name: log, type: jsonl, path: {tmp_path}/alerts.jsonl}}]\n"
    with pytest.raises(UsageError, match=r"sinks\[0\]\.path: .*alerts\.jsonl is a directory"):
        preflight(load(tmp_path, text))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_state_dir(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    text = base(tmp_path).replace(str(tmp_path / "state"), str(locked / "state"))
    with pytest.raises(UsageError, match="is not writable"):
        preflight(load(tmp_path, text))


def test_sink_secrets_come_from_the_given_environment(tmp_path: Path) -> None:
    cfg = load(tmp_path, unset_env(tmp_path))
    with pytest.raises(SinkError, match=f"url_env {UNSET_ENV} is empty or unset"):
        preflight(cfg, environ={})
    plan = preflight(cfg, environ={UNSET_ENV: "http://127.0.0.1:9/x"})
    assert [s.name for s in plan.sinks] == ["hook"]


def test_reload_skips_what_needs_a_restart(tmp_path: Path) -> None:
    cfg = load(tmp_path, missing_interface(tmp_path))
    with pytest.raises(RingError):
        preflight(cfg)
    assert preflight(cfg, reload=True).ring is None


def test_bad_filter_is_a_bpf_error(tmp_path: Path) -> None:
    with pytest.raises(BpfError):
        preflight(load(tmp_path, bad_bpf(tmp_path)))


def web_config(tmp: Path, key_mode: int) -> Path:
    secret(tmp, "tls.key", "not really a key\n", key_mode)
    return write(tmp, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n", "web.yml")


def test_web_config_tls_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    web = web_config(tmp_path, 0o644)
    text = base(tmp_path, web=web)
    with pytest.raises(ConfigError) as info:
        preflight(load(tmp_path, text))
    assert (info.value.file, info.value.line) == (str(web), 3)
    assert info.value.key == "tls_server_config.key_file"
    assert f"fix: chmod o-rwx {tmp_path}/tls.key" in info.value.message


def test_web_config_private_tls_key_passes_to_loading(tmp_path: Path) -> None:
    web = web_config(tmp_path, 0o600)
    text = base(tmp_path, web=web)
    with pytest.raises(Exception, match="cert_file/key_file") as info:  # no such certificate
        preflight(load(tmp_path, text))
    assert not isinstance(info.value, ConfigError)


@pytest.mark.skipif(os.geteuid() != 0, reason="the drop to capture.user needs root")
def test_an_existing_state_dir_the_user_cannot_write_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # made by root for netwatch, not handed over: never chowned
    text = base(tmp_path).replace("user: null", "user: nobody")
    with pytest.raises(PrivilegeError, match=str(state)):
        preflight(load(tmp_path, text), euid=0)
    assert state.stat().st_uid == 0
