"""netwatch/install.py: ``netwatch install`` and the wheel that carries what it installs.

The fast tests install from this checkout (``netwatch/share/*`` link to the repository's
folders) into a temporary root. The end-to-end test builds the wheel (``pip wheel .
--no-deps``, build isolation: it needs PyPI or pip's cache for setuptools, and skips with
the reason when neither answers), installs it into a fresh virtualenv whose dependencies
come from this virtualenv (a ``.pth`` line, so nothing is downloaded; the editable
netwatch of this virtualenv is not seen, its ``.pth`` files are not processed), runs that
installation's ``netwatch install --root``, and starts the daemon with the command the
installed unit names, over the installed demo capture: it must serve metrics and write
alerts.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import yaml

from netwatch import install as ins
from netwatch.cli import main
from netwatch.config.schema import Config
from tests.deploy.test_systemd import parse_unit

REPO = Path(__file__).resolve().parents[1]
PREFIX = Path("/opt/netwatch")
COMMAND = "/opt/netwatch/bin/netwatch"
#: Repository file -> where a sensor gets it.
PLACED = {
    "config/netwatch.yaml": "etc/netwatch/netwatch.yaml",
    "logrotate/netwatch": "etc/logrotate.d/netwatch",
    "systemd/netwatch-geoipupdate.service": "etc/systemd/system/netwatch-geoipupdate.service",
    "systemd/netwatch-geoipupdate.timer": "etc/systemd/system/netwatch-geoipupdate.timer",
    "grafana/dashboards/netwatch-overview.json": (
        "usr/share/netwatch/grafana/dashboards/netwatch-overview.json"
    ),
    "grafana/provisioning/dashboards/netwatch.yaml": (
        "usr/share/netwatch/grafana/provisioning/dashboards/netwatch.yaml"
    ),
    "prometheus/netwatch-rules.yml": "usr/share/netwatch/prometheus/netwatch-rules.yml",
    "prometheus/alertmanager.yml": "usr/share/netwatch/prometheus/alertmanager.yml",
    "pcaps/demo/camera-site-demo.pcap": "usr/share/netwatch/demo/camera-site-demo.pcap",
}
CONF = PurePosixPath("/etc/netwatch/netwatch.yaml")
DASHBOARD = PurePosixPath("/usr/share/netwatch/grafana/dashboards/netwatch-camera.json")


def run(root: Path, *, force: bool = False, dry_run: bool = False) -> list[ins.Done]:
    return ins.install(ins.Options(root, PREFIX, dry_run=dry_run, force=force))


def actions(done: list[ins.Done]) -> dict[str, ins.Action]:
    return {str(d.target): d.action for d in done}


def test_every_file_lands_where_a_sensor_expects_it(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert set(actions(done).values()) == {ins.Action.CREATED}
    for source, target in PLACED.items():
        assert (tmp_path / target).read_bytes() == (REPO / source).read_bytes(), target
    for target in ("etc/netwatch/netwatch.yaml", "etc/systemd/system/netwatch.service"):
        assert (tmp_path / target).stat().st_mode & 0o777 == 0o644
    # everything the wheel carries is installed (share/ holds nothing else)
    installed = {str(d.target) for d in done}
    assert len(installed) == len(done)
    assert "/usr/share/netwatch/grafana/dashboards/netwatch-health.json" in installed
    assert "/usr/share/netwatch/systemd/README.md" in installed


def test_the_unit_runs_the_installed_command_and_is_otherwise_the_repositorys(
    tmp_path: Path,
) -> None:
    run(tmp_path)
    text = (tmp_path / "etc/systemd/system/netwatch.service").read_text()
    service = parse_unit(text)["Service"]
    assert service["ExecStart"] == [f"{COMMAND} run -c {CONF}"]
    repo = (REPO / "systemd/netwatch.service").read_text()
    assert text == repo.replace("ExecStart=/usr/bin/netwatch", f"ExecStart={COMMAND}")


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    run(tmp_path)
    manifest = tmp_path / "usr/share/netwatch/installed.json"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p != manifest}
    time.sleep(0.01)
    again = run(tmp_path)
    assert set(actions(again).values()) == {ins.Action.UNCHANGED}
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p != manifest} == before


def test_an_edited_config_is_kept_and_the_new_one_written_beside_it(tmp_path: Path) -> None:
    run(tmp_path)
    conf = tmp_path / "etc/netwatch/netwatch.yaml"
    edited = conf.read_text().replace("interfaces: [eth1]", "interfaces: [ens5]")
    conf.write_text(edited)
    done = actions(run(tmp_path))
    assert done[str(CONF)] is ins.Action.KEPT
    assert conf.read_text() == edited
    assert (tmp_path / "etc/netwatch/netwatch.yaml.new").read_bytes() == (
        REPO / "config/netwatch.yaml"
    ).read_bytes()
    # still the administrator's on the next run (which writes nothing), and --force replaces it
    side = tmp_path / "etc/netwatch/netwatch.yaml.new"
    mtime = side.stat().st_mtime_ns
    time.sleep(0.01)
    assert actions(run(tmp_path))[str(CONF)] is ins.Action.KEPT
    assert side.stat().st_mtime_ns == mtime
    assert actions(run(tmp_path, force=True))[str(CONF)] is ins.Action.REPLACED
    assert conf.read_bytes() == (REPO / "config/netwatch.yaml").read_bytes()


def test_an_unedited_file_of_an_older_install_is_updated(tmp_path: Path) -> None:
    """The manifest says the file is what the last install wrote: not the admin's."""
    run(tmp_path)
    conf = tmp_path / "etc/netwatch/netwatch.yaml"
    old = b"# the example config of an older release\n"
    conf.write_bytes(old)
    manifest = tmp_path / "usr/share/netwatch/installed.json"
    data = json.loads(manifest.read_text())
    data["files"][str(CONF)] = ins.digest(old)
    manifest.write_text(json.dumps(data))
    assert actions(run(tmp_path))[str(CONF)] is ins.Action.UPDATED
    assert conf.read_bytes() == (REPO / "config/netwatch.yaml").read_bytes()
    assert not (tmp_path / "etc/netwatch/netwatch.yaml.new").exists()


def test_a_config_written_before_any_install_counts_as_edited(tmp_path: Path) -> None:
    conf = tmp_path / "etc/netwatch/netwatch.yaml"
    conf.parent.mkdir(parents=True)
    conf.write_text("capture: {interfaces: [eth2]}\n")
    assert actions(run(tmp_path))[str(CONF)] is ins.Action.KEPT
    assert conf.read_text() == "capture: {interfaces: [eth2]}\n"


def test_files_under_usr_share_are_always_replaced(tmp_path: Path) -> None:
    run(tmp_path)
    dashboard = tmp_path / str(DASHBOARD).lstrip("/")
    dashboard.write_text("{}")
    assert actions(run(tmp_path))[str(DASHBOARD)] is ins.Action.UPDATED
    assert dashboard.read_bytes() == (REPO / "grafana/dashboards/netwatch-camera.json").read_bytes()


def test_dry_run_writes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    out = io.StringIO()
    options = ins.Options(tmp_path / "root", PREFIX, dry_run=True)
    assert ins.run_install(options, out) == 0
    assert not (tmp_path / "root").exists()
    assert f"would create {CONF}\n" in out.getvalue()


def test_the_command_line_installs_and_prints_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "--root", str(tmp_path), "--prefix", str(PREFIX)]) == 0
    printed = capsys.readouterr().out
    assert f"created {CONF}\n" in printed
    assert f"{COMMAND} check-config -c {CONF}" in printed
    assert main(["install", "--root", str(tmp_path), "--prefix", str(PREFIX)]) == 0
    assert f"unchanged {CONF}\n" in capsys.readouterr().out


@pytest.mark.parametrize("prefix", ["/opt/net watch", "/opt/%n", "/opt/$HOME", "/opt/a\\b"])
def test_a_prefix_systemd_would_need_quoted_is_refused(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "--root", str(tmp_path), "--prefix", prefix]) == 2
    assert "ExecStart=" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_unwritable_target_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "etc").write_text("a file where a directory must be\n")
    assert main(["install", "--root", str(tmp_path), "--prefix", str(PREFIX)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netwatch: install: ") and err.count("\n") == 1


def test_a_unit_without_the_expected_exec_start_is_refused() -> None:
    with pytest.raises(ins.InstallError):
        ins.unit_text("[Service]\nExecStart=/usr/local/bin/other run\n", PurePosixPath(COMMAND))
    with pytest.raises(ins.InstallError):
        ins.unit_text("[Service]\nType=notify\n", PurePosixPath(COMMAND))


def test_the_installed_config_is_a_valid_config(tmp_path: Path) -> None:
    run(tmp_path)
    Config.load(tmp_path / "etc/netwatch/netwatch.yaml")


# ---------------------------------------------------------------- the wheel, end to end


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH (a checkout on it would pass for installed)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOTIFY_SOCKET")}


def build_wheel(out: Path) -> Path:
    """``pip wheel . --no-deps`` of this checkout (a copy: the build writes build/)."""
    src = out / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "var",
            "*.so",
            "__pycache__",
            ".*_cache",
            "tests",
            "bench",
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=clean_env(),
    )
    if proc.returncode != 0 and "No matching distribution found for setuptools" in proc.stderr:
        pytest.skip(f"no PyPI and no pip cache for the build requirements: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("netwatch_cameras-*.whl")
    return wheel


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new virtualenv with the wheel installed; its dependencies from this one."""
    env = clean_env()
    venv = [sys.executable, "-m", "venv", "--without-pip", str(where)]
    subprocess.run(venv, check=True, timeout=120, env=env)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    (Path(site) / "deps-from-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    pip += ["--no-index", str(wheel)]
    subprocess.run(pip, check=True, timeout=120, env=env)
    return where / "bin" / "netwatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sensor_config(root: Path, port: int) -> Path:
    """The installed example config, pointed at the installed demo capture and at ``root``."""
    cfg = yaml.safe_load((root / "etc/netwatch/netwatch.yaml").read_text())
    demo = root / "usr/share/netwatch/demo/camera-site-demo.pcap"
    logs = root / "var/log/netwatch"
    capture = {"files": [str(demo)], "loop": True, "realtime": True, "speed": 20, "user": None}
    cfg["capture"] = capture
    cfg["metrics"] = {"listen": f"127.0.0.1:{port}"}
    cfg["state_dir"] = str(root / "var/lib/netwatch")
    cfg["flow_log"] = str(logs / "flows.jsonl")
    cfg["sinks"] = [{"name": "log", "type": "jsonl", "path": str(logs / "alerts.jsonl")}]
    cfg["alerts"].update(evaluate_active_s=10, group_wait_s=10)
    path = root / "etc/netwatch/test.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body: bytes = r.read()
            return body.decode()
    except OSError:
        return ""


def test_the_wheel_installs_in_a_fresh_venv_and_its_daemon_runs(tmp_path: Path) -> None:
    daemon_env = clean_env()
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "netwatch/share/systemd/netwatch.service" in names
    assert "netwatch/share/demo/camera-site-demo.pcap" in names
    assert "netwatch/seedstore.pickle" in names
    venv = tmp_path / "opt" / "netwatch"
    netwatch = fresh_venv(venv, wheel)
    # the seeds parsed ahead of time came along: a start parses no seed file
    probe = "from netwatch import seedstore as s; s.START_UP(); print(s.stats)"
    seeds = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon_env,
        cwd=tmp_path,
        check=True,
    )
    assert "'misses': 0}" in seeds.stdout, seeds.stdout + seeds.stderr
    # and the dataclass methods and regular expressions compiled ahead of time: a start
    # compiles none
    assert "netwatch/codestore.marshal" in names
    probe = "import netwatch.pipeline; from netwatch import _codestore as c; print(c.stats)"
    code = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon_env,
        cwd=tmp_path,
        check=True,
    )
    assert "'misses': 0, " in code.stdout, code.stdout + code.stderr
    assert "'regex_misses': 0}" in code.stdout, code.stdout + code.stderr
    root = tmp_path / "root"
    proc = subprocess.run(
        [str(netwatch), "install", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon_env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # the installed package carried every file this checkout installs
    from_checkout = {str(d.target) for d in run(tmp_path / "checkout")}
    assert {f"created {t}" for t in from_checkout} <= set(proc.stdout.splitlines())
    service = parse_unit((root / "etc/systemd/system/netwatch.service").read_text())["Service"]
    command, *args = service["ExecStart"][0].split()
    assert command == str(netwatch) and args == ["run", "-c", str(CONF)]
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # systemd's own check of the unit as installed, paths and all
        unit = root / "etc/systemd/system/netwatch.service"
        check = [analyze, "verify", "--man=no", str(unit)]
        verify = subprocess.run(check, capture_output=True, text=True, timeout=120, check=False)
        assert verify.returncode == 0 and unit.name not in verify.stdout + verify.stderr, (
            verify.stdout + verify.stderr
        )
    # the daemon, started as the unit starts it, from the installed files
    port = free_port()
    config = sensor_config(root, port)
    daemon = subprocess.Popen(
        [command, "run", "-c", str(config)],
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    alerts = root / "var/log/netwatch/alerts.jsonl"
    try:
        deadline = time.monotonic() + 60
        metrics = ""
        while time.monotonic() < deadline and daemon.poll() is None:
            metrics = scrape(port)
            if "netwatch_packets_total" in metrics and alerts.exists() and alerts.stat().st_size:
                break
            time.sleep(0.5)
        assert daemon.poll() is None, daemon.communicate()[1]
        assert "netwatch_packets_total" in metrics
        records = [json.loads(line) for line in alerts.read_text().splitlines()]
        assert records and all(r["site"] == "netwatch" for r in records)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.communicate(timeout=30)
        finally:
            daemon.kill()
    assert daemon.returncode == 0
