"""systemd/netwatch.service: what the daemon relies on, its sandbox, and systemd's own checks.

The pure-Python tests read the unit with a small parser (systemd semantics: repeated keys
accumulate, an empty assignment resets). The others run ``systemd-analyze security
--offline=true`` (exposure must stay <= 2.0, "OK") and ``systemd-analyze verify`` on a copy
whose missing executables (``/usr/bin/netwatch`` on a build host) point at ``true``; they
skip when systemd-analyze is absent or too old for ``--offline`` (before systemd 250).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from netwatch.config.schema import Config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "netwatch.service"
EXAMPLE_CONFIG = REPO / "config" / "netwatch.yaml"
MAX_EXPOSURE = 2.0
CAPTURE_CAPS = {"CAP_NET_RAW", "CAP_NET_ADMIN"}

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> values, in order; ``Key=`` (empty) resets the key like systemd."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        while line.endswith("\\"):
            line = line[:-1].rstrip() + " " + next(lines, "").strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        key, value = key.strip(), value.strip()
        if value:
            section.setdefault(key, []).append(value)
        else:
            section[key] = []
    return unit


def seconds(span: str) -> float:
    """A systemd time span such as ``30s``, ``1min 30s`` or ``500ms`` in seconds."""
    units = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "": 1.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key, [])
    assert len(values) == 1, f"{key}= should be set once, got {values}"
    return values[0]


def words(service: dict[str, list[str]], key: str) -> set[str]:
    return {w for value in service.get(key, []) for w in value.split()}


def test_parser_follows_systemd_semantics() -> None:
    unit = parse_unit("[S]\n# c\nA=1\nA=2 \\\n  3\nB=x\nB=\n; c\nC=a=b\n")
    assert unit == {"S": {"A": ["1", "2 3"], "B": [], "C": ["a=b"]}}
    assert seconds("30s") == 30
    assert seconds("1min 30s") == 90
    assert seconds("45") == 45


def test_notify_watchdog_reload_and_stop(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"  # not notify-reload: that needs systemd 253
    assert one(service, "NotifyAccess") == "main"
    assert seconds(one(service, "WatchdogSec")) == 30
    assert one(service, "ExecStart") == "/usr/bin/netwatch run -c /etc/netwatch/netwatch.yaml"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "Restart") == "on-failure"
    assert seconds(one(service, "RestartSec")) == 5
    # the daemon drains alerts for up to 10 s, then flushes flows
    assert seconds(one(service, "TimeoutStopSec")) >= 20


def test_unprivileged_user_with_capture_capabilities_only(service: dict[str, list[str]]) -> None:
    assert one(service, "DynamicUser") == "yes"
    assert "User" not in service
    assert words(service, "AmbientCapabilities") == CAPTURE_CAPS
    assert words(service, "CapabilityBoundingSet") == CAPTURE_CAPS
    assert one(service, "NoNewPrivileges") == "yes"
    families = words(service, "RestrictAddressFamilies")
    assert {"AF_PACKET", "AF_INET", "AF_INET6", "AF_UNIX"} <= families
    assert not any(f.startswith("~") for f in families)


def test_sandbox_keeps_what_capture_needs(service: dict[str, list[str]]) -> None:
    # The host's network namespace: mirror interfaces to capture, sinks to reach.
    assert service.get("PrivateNetwork", ["no"]) == ["no"]
    # A user namespace would make CAP_NET_RAW useless on the host network namespace.
    assert service.get("PrivateUsers", ["no"]) == ["no"]
    assert "IPAddressDeny" not in service
    # /proc/stat (boot time) feeds the process_* metrics of the health dashboard.
    assert "ProcSubset" not in service
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "MemoryDenyWriteExecute") == "yes"
    assert one(service, "SystemCallArchitectures") == "native"
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_directories_match_the_config(service: dict[str, list[str]]) -> None:
    state = PurePosixPath("/var/lib") / one(service, "StateDirectory")
    logs = PurePosixPath("/var/log") / one(service, "LogsDirectory")
    conf = PurePosixPath("/etc") / one(service, "ConfigurationDirectory")
    assert PurePosixPath(Config.default().state_dir) == state
    assert PurePosixPath(one(service, "ExecStart").split(" -c ", 1)[1]).parent == conf

    # ProtectSystem=strict: every file the example config writes must be in those dirs.
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    written = [example["state_dir"], example.get("flow_log"), example.get("alert_log")]
    written += [s["path"] for s in example.get("sinks") or [] if s.get("type") == "jsonl"]
    for path in filter(None, written):
        p = PurePosixPath(path)
        assert p == state or p.is_relative_to(state) or p.is_relative_to(logs), path


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (systemd unit checks need systemd >= 250)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_security_exposure_is_ok() -> None:
    exe = _systemd_analyze()
    if "--offline" not in _run(exe, "--help").stdout:
        pytest.skip("systemd-analyze has no --offline (needs systemd >= 250)")
    threshold = round(MAX_EXPOSURE * 10)  # --threshold counts tenths
    proc = _run(
        exe, "security", "--offline=true", f"--threshold={threshold}", "--no-pager", str(UNIT)
    )
    report = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\S+)", report)
    assert match, report
    exposure = float(match.group(1))
    failing = "\n".join(line for line in report.splitlines() if line.startswith("✗"))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{failing}"
    assert match.group(2) == "OK"
    assert proc.returncode == 0, report


def test_verify(tmp_path: Path) -> None:
    exe = _systemd_analyze()
    true = shutil.which("true") or "/bin/true"
    lines = []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec") and not Path(value.split()[0].lstrip("-@:+!")).exists():
            line = f"{key}={true} {value.split(' ', 1)[1] if ' ' in value else ''}".rstrip()
        lines.append(line)
    copy = tmp_path / UNIT.name
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = _run(exe, "verify", "--man=no", str(copy))
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert UNIT.name not in report, report
