"""Tests for the ``netwatch`` command line: exit codes, one-line errors, the summary."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from netwatch import cli
from netwatch.cli import main
from netwatch.testing import pcapgen as g
from tests.conftest import corpus_file

REPO = Path(__file__).resolve().parent.parent


def small_capture(path: Path) -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9")
    t = g.Trace()
    t.add(1_000_000, g.udp_frame(route, 1000, 2000, b"a"))
    t.add(1_500_000, g.udp_frame(route.reverse(), 2000, 1000, b"b"))
    t.write(path)


def test_replay_prints_summary_and_writes_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    flows, alerts = tmp_path / "f.jsonl", tmp_path / "a.jsonl"
    assert main(["replay", str(pcap), "--flows", str(flows), "--alerts", str(alerts)]) == 0
    out = capsys.readouterr().out
    assert "packets: 2" in out and "flows: 1" in out and "packets/s" in out
    assert "decode failures: 0" in out
    assert len(flows.read_text().splitlines()) == 1
    assert alerts.exists()


def test_cameras_prints_what_replay_state_dir_saw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap, state = tmp_path / "x.pcap", tmp_path / "state"
    small_capture(pcap)
    assert main(["replay", str(pcap), "--state-dir", str(state)]) == 0
    capsys.readouterr()
    assert main(["cameras", "--state-dir", str(state)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("camera") and table[1].startswith("10.0.0.5 *")
    assert table[-2].startswith("1 camera")
    assert table[-1].endswith("IP Geolocation by DB-IP (https://db-ip.com)")  # its licence
    assert main(["cameras", "--state-dir", str(state), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and [c["id"] for c in doc["cameras"]] == ["10.0.0.5"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {state}\n")
    assert main(["cameras", "-c", str(cfg), "--json"]) == 0  # a sensor's config: its state
    assert json.loads(capsys.readouterr().out) == doc


def test_cameras_without_an_inventory_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cameras", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inventory.json: no inventory" in err


def test_bad_config_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("site:\n  local_nets: [10.0.0.0/33]\n")
    assert main(["replay", str(pcap), "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{cfg}:2:" in err and "site.local_nets[0]" in err


@pytest.mark.parametrize("content", [b"", b"hello, not a capture\n"])
def test_unreadable_capture_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.pcap" in err


def test_missing_capture_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.pcap")]) == 2
    assert "nope.pcap" in capsys.readouterr().err


def test_check_config_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = str(REPO / "config" / "netwatch.yaml")
    assert main(["check-config", "--schema-only", example]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  max_flowz: 3\n")
    assert main(["check-config", str(bad)]) == 2
    assert f"netwatch: {bad}:2: flows.max_flowz" in capsys.readouterr().err


def test_check_config_takes_the_file_positionally_or_with_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    good = tmp_path / "good.yaml"
    good.write_text(
        "capture: {files: [x.pcap], user: null}\nstate_dir: state\ngeoip: {builtin: false}\n"
    )
    assert main(["check-config", str(good)]) == 0
    assert main(["check-config", "-c", str(good)]) == 0
    assert capsys.readouterr().out == f"OK: {good}\n" * 2


@pytest.mark.parametrize(
    "args", [["check-config"], ["check-config", "a.yaml", "-c", "b.yaml"]], ids=["none", "two"]
)
def test_check_config_needs_exactly_one_file(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay"])
    assert exc.value.code == 2


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    proc = subprocess.run(
        [sys.executable, "-m", "netwatch", "replay", str(pcap)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "flows: 1" in proc.stdout


@pytest.mark.parametrize("pure", ["1", "0"])
def test_version_names_the_core_in_use(pure: str) -> None:
    built = importlib.util.find_spec("netwatch._core") is not None
    ring = importlib.util.find_spec("netwatch._ring") is not None and pure == "0"
    walk = importlib.util.find_spec("netwatch._mmdb") is not None and pure == "0"
    deep = importlib.util.find_spec("netwatch._deep") is not None and pure == "0"
    want = (
        (
            "core: python (NETWATCH_PURE=1)"
            if pure == "1"
            else ("core: c" if built else "core: python (extension not built)")
        )
        + (", ring: c" if ring else ", ring: python")
        + (", geoip: c" if walk else ", geoip: python")
        + (", deep: c" if deep else ", deep: python")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "netwatch", "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NETWATCH_PURE": pure, "NETWATCH_CORE": "c"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"netwatch 0.1.0 ({want})"


def test_report_of_captures_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)  # a Hikvision MAC prefix: one camera
    out, js = tmp_path / "report.html", tmp_path / "inventory.json"
    assert main(["report", str(pcap), "-o", str(out), "--json", str(js)]) == 0
    assert "1 cameras" in capsys.readouterr().out
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "bc:ad:28:00:00:01" in page
    (camera,) = json.loads(js.read_text())["cameras"]
    assert camera["macs"] == ["bc:ad:28:00:00:01"] and camera["vendor"] == "Hikvision"


def test_report_of_a_saved_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    out = tmp_path / "report.html"
    assert main(["report", "--state-dir", str(state), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inventory.json: no inventory" in err
    (state / "inventory.json").write_text(
        '{"version": 1, "cameras": [{"id": "cam-1", "vendor": "Axis", "macs": []}]}'
    )
    assert main(["report", "--state-dir", str(state), "-o", str(out)]) == 0
    assert "Axis" in out.read_text()
    conf = tmp_path / "c.yaml"
    conf.write_text(f"state_dir: {state}\n")
    out.unlink()
    assert main(["report", "-c", str(conf), "-o", str(out)]) == 0  # the config's state_dir
    assert "Axis" in out.read_text()


@pytest.mark.parametrize(
    "args", [["report", "-o", "x.html"], ["report", "a.pcap", "--state-dir", "d", "-o", "x.html"]]
)
def test_report_needs_one_source(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_report_unwritable_output_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    assert main(["report", str(pcap), "-o", str(tmp_path / "no" / "r.html")]) == 2
    assert "cannot write" in capsys.readouterr().err


#: Modules a replay (without --state-dir) must not import: the daemon, its sinks and
#: metrics server, the report, install and inventory commands' modules, (no QUIC in the
#: capture) the QUIC parser's crypto, (built-in config, seeds from the seed store) PyYAML,
#: what the config loader uses only to word an error (difflib, shlex), and (no state
#: directory, so no destination baseline store) SQLite.
NOT_FOR_REPLAY = (
    "cryptography",
    "sqlite3",
    "yaml",
    "difflib",
    "shlex",
    "netwatch.daemon",
    "netwatch.preflight",
    "netwatch.sinks",
    "netwatch.metrics.server",
    "netwatch.alerttest",
    "netwatch.report",
    "netwatch.report.html",
    "netwatch.install",
    "netwatch.inventory",
)
REPLAY_IMPORTS = """
import sys
from netwatch.cli import main
code = main(["replay", sys.argv[1]])
print(sorted(m for m in sys.argv[2:] if m in sys.modules))
raise SystemExit(code)
"""


def test_replay_does_not_load_the_daemon(tmp_path: Path) -> None:
    """Start-up: a replay imports neither the daemon nor its sinks and metrics server, nor
    what only ``report``, ``install`` and ``cameras`` use."""
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    proc = subprocess.run(
        [sys.executable, "-c", REPLAY_IMPORTS, str(pcap), *NOT_FOR_REPLAY],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


#: Modules a replay must not import when the compiled GeoIP walk answers: maxminddb (its
#: ``__init__`` imports importlib.metadata and calls it), importlib.metadata and what it
#: loads (email, zipfile, csv), importlib.resources (tempfile, lzma, random...), and
#: multiprocessing (maxminddb's file reader): ~25 ms of a start.
NOT_WITH_THE_WALK = (
    "maxminddb",
    "importlib.metadata",
    "email",
    "zipfile",
    "csv",
    "importlib.resources",
    "tempfile",
    "multiprocessing",
)
REPLAY_GEO_IMPORTS = """
import json, sys
from netwatch.cli import main
code = main(["replay", "-qq", sys.argv[1], "--flows", sys.argv[2]])
print(sorted(m for m in sys.argv[3:] if m in sys.modules))
raise SystemExit(code)
"""


def replay_imports(
    pcap: Path, flows: Path, pure: str, names: Sequence[str]
) -> tuple[list[dict[str, Any]], str]:
    """Replay ``pcap`` in a fresh interpreter (``NETWATCH_PURE=pure``) writing ``flows``: its
    flow records and the line naming which of ``names`` the replay imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETWATCH_PURE": pure}
    proc = subprocess.run(
        [sys.executable, "-c", REPLAY_GEO_IMPORTS, str(pcap), str(flows), *names],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    return records, proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("pure", ["", "1"])
def test_replay_with_public_peers_leaves_maxminddb_unloaded(tmp_path: Path, pure: str) -> None:
    """Start-up: with the compiled walk (``netwatch._mmdb``), the built-in GeoIP data is read
    by ``enrich.mmdbdata``: a replay that looks up public IPv4 and IPv6 peers gives their
    country and AS and imports none of ``NOT_WITH_THE_WALK``; under ``NETWATCH_PURE=1``
    maxminddb answers (and is imported)."""
    trace = g.Trace()
    for i, peer in enumerate(("8.8.8.8", "2001:4860:4860::8888")):
        local = "10.0.0.5" if ":" not in peer else "fd00::5"
        route = g.Route.of("bc:ad:28:00:00:01", local, "00:11:22:33:44:55", peer)
        trace.add(1_000_000 + i, g.udp_frame(route, 1000, 53, b"a"))
        trace.add(1_500_000 + i, g.udp_frame(route.reverse(), 53, 1000, b"b"))
    pcap = tmp_path / "x.pcap"
    trace.write(pcap)
    records, loaded = replay_imports(pcap, tmp_path / "flows.jsonl", pure, NOT_WITH_THE_WALK)
    assert [(r["resp_cc"], r["resp_asn"]) for r in records] == [("US", 15169), ("CA", 15169)]
    if pure or importlib.util.find_spec("netwatch._mmdb") is None:
        assert "maxminddb" in loaded
    else:
        assert loaded == "[]"


#: Modules a replay does not import: ``socket`` (its enums and ``selectors``: netwatch
#: takes ``inet_ntop``/``inet_pton`` from ``_socket``) and, with the compiled core, hashlib
#: and OpenSSL's ``_hashlib`` (the seed store is keyed by BLAKE2b; evidence files, Community
#: IDs built in Python and QUIC's key derivation import hashlib at their first use): ~7 ms.
NOT_AT_START = ("socket", "selectors", "hashlib", "_hashlib", "hmac")


@pytest.mark.parametrize("pure", ["", "1"])
def test_replay_loads_neither_socket_py_nor_openssl(tmp_path: Path, pure: str) -> None:
    """Start-up: a replay writing a flow log imports none of ``NOT_AT_START``; under
    ``NETWATCH_PURE=1`` the Python record's Community ID imports hashlib."""
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    records, loaded = replay_imports(pcap, tmp_path / "flows.jsonl", pure, NOT_AT_START)
    assert [r["community_id"][:2] for r in records] == ["1:"]
    if not pure and importlib.util.find_spec("netwatch._core") is not None:
        assert loaded == "[]"
    else:  # the Python record's Community ID (and maxminddb's email imports socket)
        assert "'hashlib'" in loaded


#: What ``dataclasses`` imports for the signature it gives a class without a docstring
#: (``netwatch._codestore`` imports it without them): ~17 M instructions of a start.
NOT_FOR_DATACLASSES = ("inspect", "ast", "_ast", "dis", "opcode")


@pytest.mark.parametrize("pure", ["", "1"])
def test_replay_loads_no_inspect(tmp_path: Path, pure: str) -> None:
    """Start-up: a replay writing a flow log imports none of ``NOT_FOR_DATACLASSES``, with
    the compiled core or in pure Python (every dataclass it defines has a docstring)."""
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    records, loaded = replay_imports(pcap, tmp_path / "flows.jsonl", pure, NOT_FOR_DATACLASSES)
    assert len(records) == 1
    assert loaded == "[]"


#: What ``argparse``'s help formatter imports for the terminal's width (``shutil``, which
#: imports ``bz2`` and ``lzma``; netwatch's formatter asks ``os``: ``cli._columns``), and
#: ``pkgutil`` (``registry.package_modules``, the tests' package audit, imports it).
NOT_FOR_ARGPARSE = ("shutil", "bz2", "lzma", "_bz2", "_lzma", "pkgutil")


def test_replay_loads_no_shutil_nor_pkgutil(tmp_path: Path) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    _records, loaded = replay_imports(pcap, tmp_path / "flows.jsonl", "", NOT_FOR_ARGPARSE)
    assert loaded == "[]"


@pytest.mark.parametrize("columns", [None, "40", "100", "132", "0", "-3", "wide"])
def test_the_terminal_width_is_shutils(
    monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    """``_columns`` is ``shutil.get_terminal_size().columns`` (``COLUMNS`` when a positive
    number, else the terminal's, else 80), and every help text is what ``argparse``'s own
    formatter writes at that width."""
    import shutil  # noqa: PLC0415 - the reference

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._columns() == shutil.get_terminal_size().columns
    ours = cli._parser()
    helps = [ours.format_help(), ours.format_usage()]
    helps += [p.format_help() for p in _subparsers(ours).values()]
    assert isinstance(ours._get_formatter(), cli._HelpFormatter)
    monkeypatch.setattr(cli, "_HelpFormatter", argparse.HelpFormatter)
    theirs = cli._parser()
    expected = [theirs.format_help(), theirs.format_usage()]
    expected += [p.format_help() for p in _subparsers(theirs).values()]
    assert type(theirs._get_formatter()) is argparse.HelpFormatter
    assert helps == expected


REPLAY_FREEZES = """
import gc, sys
from netwatch import seedstore
from netwatch.cli import main
before = gc.get_freeze_count()
code = main(["replay", "-qq", sys.argv[1]])
walked = {id(o) for o in gc.get_objects()}
seeds = [v for v in seedstore._values.values() if gc.is_tracked(v)]
print(before, gc.get_freeze_count(), gc.isenabled(), len(seeds),
      sum(id(v) in walked for v in seeds))
raise SystemExit(code)
"""


def test_replay_freezes_what_start_up_made(tmp_path: Path) -> None:
    """The modules, classes, config, GeoIP data and the pipeline's seeds are out of the
    collector's walks (frozen once the pipeline is warmed up), and the collector is on
    again after the replay."""
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    proc = subprocess.run(
        [sys.executable, "-c", REPLAY_FREEZES, str(pcap)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    before, after, enabled, seeds, walked = proc.stdout.split()
    assert int(before) == 0 and int(after) > 10_000
    assert enabled == "True"
    assert int(seeds) >= 5 and int(walked) == 0


def _comparable(doc: dict[str, object]) -> dict[str, object]:
    """An inventory without what differs between two runs over the same input: when and
    from what it was made, and per incident its flow's random uid and the evidence file
    only a replay into a state directory writes."""
    out = {k: v for k, v in doc.items() if k not in ("generated", "source")}
    cameras = json.loads(json.dumps(out["cameras"]))
    for cam in cameras:
        for inc in cam["incidents"]:
            inc.pop("flow_uid")
            inc["evidence"].pop("evidence_pcap", None)
    return {**out, "cameras": cameras}


@pytest.mark.parametrize(
    "capture",
    [
        ("pcaps", "demo", "camera-site-demo.pcap"),
        ("corpus", "camera-real", "shf_dlink-dcs8000lh_basefw_wan.pcap"),
    ],
)
def test_cameras_and_report_give_the_same_inventory(
    capture: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: `netwatch cameras` after `replay --state-dir` agrees with `netwatch report`."""
    if capture[0] == "corpus":
        path, conf = corpus_file("pcaps", *capture[1:]), []
    else:
        path, conf = REPO.joinpath(*capture), ["-c", str(REPO / "config" / "demo.yaml")]
    state, page, js = tmp_path / "state", tmp_path / "x.html", tmp_path / "y.json"
    assert main(["replay", "-q", "-q", *conf, "--state-dir", str(state), str(path)]) == 0
    capsys.readouterr()
    assert main(["cameras", "--json", "--state-dir", str(state)]) == 0
    seen = json.loads(capsys.readouterr().out)
    assert main(["report", *conf, str(path), "-o", str(page), "--json", str(js)]) == 0
    reported = json.loads(js.read_text())
    assert seen["cameras"] and _comparable(seen) == _comparable(reported)
    countries = [
        (c["id"], r["country"], r["bytes_out"], r["bytes_in"])
        for c in reported["cameras"]
        for r in c["peers"]["countries"]
    ]
    assert any(country not in ("local", "unknown") for _, country, _, _ in countries)


def test_quiet_commands_leave_the_alert_logger_as_they_found_it(tmp_path: Path) -> None:
    pcap = tmp_path / "x.pcap"
    small_capture(pcap)
    logger = logging.getLogger("netwatch.alert")
    before = logger.level
    assert main(["replay", "-qq", str(pcap)]) == 0
    assert main(["report", str(pcap), "-o", str(tmp_path / "r.html")]) == 0
    assert logger.level == before  # a later command in this process still logs its alerts


def test_report_help_names_the_inventory_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser is built without importing the inventory module: its file name is
    written out in the help, and must stay the module's."""
    from netwatch.inventory import INVENTORY_FILE  # noqa: PLC0415 - what the help names

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert f"({INVENTORY_FILE})" in " ".join(capsys.readouterr().out.split())


def test_install_without_prefix_names_this_installation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--prefix`` left out: the unit runs this installation's netwatch (install's
    DEFAULT_PREFIX, worked out when the install command runs)."""
    from netwatch.install import DEFAULT_PREFIX  # noqa: PLC0415 - as the command does

    assert main(["install", "--root", str(tmp_path), "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["install", "--root", str(tmp_path)]) == 0
    unit = (tmp_path / "etc/systemd/system/netwatch.service").read_text()
    assert f"ExecStart={DEFAULT_PREFIX / 'bin' / 'netwatch'} " in unit


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_a_commands_parser_parses_as_the_whole_one(command: str) -> None:
    """``main`` builds only the arguments of the command it runs: the top-level help and
    usage, the command's own help, and the other commands' names and help are the whole
    parser's; the other commands get no arguments (which is what it saves)."""
    whole, one = cli._parser(), cli._parser(command)
    assert one.format_help() == whole.format_help()
    assert list(_subparsers(one)) == list(_subparsers(whole)) == list(cli.COMMANDS)
    for name, parser in _subparsers(one).items():
        if name == command:
            assert parser.format_help() == _subparsers(whole)[name].format_help()
        else:
            assert [a.dest for a in parser._actions] == ["help"]
