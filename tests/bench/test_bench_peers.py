"""bench/bench_peers.py: the generated Suricata config, the parsing of what each tool wrote,
the cost read from an rusage, the pcap cutting and the report (no tool is run)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from netwatch.testing import pcapgen as pg

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "bench"))

import bench_peers as bp  # noqa: E402  (bench/ is not a package)


class FakeRusage(NamedTuple):
    ru_utime: float
    ru_stime: float
    ru_maxrss: int  # KiB


def _eve(event_type: str, toserver: int, toclient: int) -> str:
    flow = {"pkts_toserver": toserver, "pkts_toclient": toclient, "reason": "timeout"}
    return json.dumps({"event_type": event_type, "proto": "TCP", "flow": flow})


def _write_pcap(path: Path, frames: int) -> Path:
    route = pg.Route.of("02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2")
    with path.open("wb") as stream, pg.PcapWriter(stream) as writer:
        for i in range(frames):
            writer.write(i, pg.udp_frame(route, 1000 + i, 53, bytes(i)))
    return path


def test_suricata_yaml_logs_flow_records_only_with_app_layer_parsers_on(tmp_path: Path) -> None:
    conf = yaml.safe_load(bp.suricata_yaml(tmp_path))
    (eve,) = conf["outputs"]
    assert eve["eve-log"]["types"] == ["flow"]
    assert eve["eve-log"]["enabled"] is True
    assert conf["default-log-dir"] == str(tmp_path)
    assert conf["stats"]["enabled"] is False
    assert conf["flow"]["memcap"] == bp.FLOW_MEMCAP
    protocols = conf["app-layer"]["protocols"]
    assert {p for p, v in protocols.items() if v["enabled"]} == set(bp.SURICATA_PARSERS)
    assert {"tls", "dns", "http", "quic"} <= set(bp.SURICATA_PARSERS)
    assert not any(protocols[p]["enabled"] for p in bp.SURICATA_PARSERS_OFF)


def test_suricata_argv_one_packet_thread_and_an_empty_rule_file(tmp_path: Path) -> None:
    argv = bp.suricata_argv(Path("/data/x.pcap"), tmp_path)
    assert argv[0] == "suricata"
    assert argv[argv.index("-r") + 1] == "/data/x.pcap"
    assert argv[argv.index("--runmode") + 1] == "single"
    rules = Path(argv[argv.index("-S") + 1])
    assert rules.parent == tmp_path
    assert rules.read_text() == ""
    conf = Path(argv[argv.index("-c") + 1])
    assert yaml.safe_load(conf.read_text())["default-log-dir"] == str(tmp_path)


def test_eve_flows_counts_flow_records_and_their_packets_only() -> None:
    lines = [_eve("flow", 3, 4), "", _eve("stats", 100, 100), _eve("flow", 1, 0), "\n"]
    assert bp.eve_flows(lines) == bp.Output(flows=2, packets=8)


def test_read_suricata_reads_eve_json_of_the_work_directory(tmp_path: Path) -> None:
    (tmp_path / "eve.json").write_text(_eve("flow", 2, 2) + "\n" + _eve("alert", 9, 9) + "\n")
    assert bp.read_suricata(tmp_path, "") == bp.Output(1, 4)


def test_flow_log_counts_records_and_both_directions_packets(tmp_path: Path) -> None:
    recs = [{"orig_pkts": 5, "resp_pkts": 7}, {"orig_pkts": 1, "resp_pkts": 0}]
    (tmp_path / "flows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert bp.read_netwatch(tmp_path, "") == bp.Output(2, 13)


def test_read_last_json_takes_the_last_line_of_the_output() -> None:
    log = 'a warning\n{"flows": 9, "packets": 99}\n'
    assert bp.read_last_json(Path("."), log) == bp.Output(9, 99)


def test_cost_of_adds_user_and_system_time_and_converts_kib() -> None:
    cost = bp.cost_of(FakeRusage(ru_utime=1.25, ru_stime=0.5, ru_maxrss=2048))
    assert cost == bp.Cost(1.25, 0.5, 2.0)
    assert cost.cpu_s == pytest.approx(1.75)


def test_run_measured_counts_the_child_and_raises_on_failure(tmp_path: Path) -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass\n"
    cost, out = bp.run_measured([sys.executable, "-c", spin + "print('ok')"], os.environ, tmp_path)
    assert out.strip() == "ok"
    assert cost.cpu_s >= 0.2
    assert cost.peak_rss_mib > 1
    with pytest.raises(RuntimeError, match="exited 3"):
        bp.run_measured([sys.executable, "-c", "raise SystemExit(3)"], os.environ, tmp_path)


def test_child_env_clears_the_core_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETWATCH_PURE", "1")
    monkeypatch.setenv("NETWATCH_CORE", "c")
    env = bp.child_env({"NETWATCH_CORE": "c"})
    assert "NETWATCH_PURE" not in env
    assert env["NETWATCH_CORE"] == "c"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)


def test_count_records_and_first_packets(tmp_path: Path) -> None:
    src = _write_pcap(tmp_path / "five.pcap", 5)
    assert bp.count_records(src) == 5
    one = bp.first_packets(src, tmp_path / "one.pcap")
    assert bp.count_records(one) == 1
    assert src.read_bytes().startswith(one.read_bytes())
    assert bp.count_records(bp.first_packets(src, tmp_path / "all.pcap", 9)) == 5
    (tmp_path / "be.pcap").write_bytes(b"\xa1\xb2\xc3\xd4" + bytes(20))
    with pytest.raises(ValueError, match="little-endian"):
        bp.count_records(tmp_path / "be.pcap")


def _row(tool: str, cpu_s: float, startup_s: float, packets: int = 1000) -> bp.Row:
    return bp.Row(tool, cpu_s, startup_s, 50.0, bp.Output(10, packets), (cpu_s, cpu_s + 1))


def test_table_rates_and_ratios_to_suricata() -> None:
    cap = bp.Capture("site", Path("site.pcap"), 1000)
    rows = [_row("netwatch", 2.0, 1.0), _row("suricata", 1.0, 0.5)]
    netwatch, suricata = bp.table(cap, rows, "packets")[-2:]
    assert netwatch.split(" | ")[1:4] == ["500", "2000.00", "1,000"]
    assert netwatch.endswith("| 0.50 (0.50) | 2.00 / 3.00 |")
    assert suricata.split(" | ")[1:4] == ["1,000", "1000.00", "2,000"]
    assert suricata.endswith("| 1.00 (1.00) | 1.00 / 2.00 |")
    assert bp.table(cap, rows[:1], "packets")[-1].endswith("| - | 2.00 / 3.00 |")


def test_rows_take_medians_and_the_start_up_runs() -> None:
    def run(tool: str, capture: str, cpu: float) -> bp.Run:
        return bp.Run(tool, capture, bp.Cost(cpu, 0.0, 10.0), bp.Output(1, 1))

    results = [run("a", "site", c) for c in (3.0, 1.0, 2.0)]
    results += [run("a", "startup", c) for c in (0.2, 0.4, 0.3)] + [run("b", "flood", 1.0)]
    (row,) = bp.rows(results, "site", ["a", "b"])
    assert (row.tool, row.cpu_s, row.startup_s, row.each) == ("a", 2.0, 0.3, (3.0, 1.0, 2.0))


def test_plausibility_warns_when_flows_miss_the_capture() -> None:
    cap = bp.Capture("site", Path("site.pcap"), 1000)
    assert bp.plausibility(cap, [_row("ok", 1.0, 0.1, packets=990)]) == []
    (warning,) = bp.plausibility(cap, [_row("bad", 1.0, 0.1, packets=989)])
    assert "bad on site" in warning


_CACHE_PROBE = (
    "import os, pathlib, sys\n"
    "home = pathlib.Path(os.environ['XDG_CACHE_HOME'])\n"
    "print(sorted(p.name for p in home.rglob('*')))\n"
    "(home / 'netwatch').mkdir(exist_ok=True)\n"
    "(home / 'netwatch' / 'unpacked').write_bytes(b'x')\n"
    'print(\'{"flows": 1, "packets": 1}\')\n'
)


def _probe_argv(_capture: Path, _work: Path) -> list[str]:
    return [sys.executable, "-c", _CACHE_PROBE]


def test_cold_runs_get_an_empty_cache_and_warm_ones_share_the_bench_cache(tmp_path: Path) -> None:
    one = bp.Capture("startup", _write_pcap(tmp_path / "one.pcap", 1), 1)
    env = bp.child_env({})
    tools = [
        bp.Tool("netwatch", _probe_argv, bp.read_last_json, env),
        bp.Tool("netwatch-cold", _probe_argv, bp.read_last_json, env, cold_cache=True),
        bp.Tool("suricata", _probe_argv, bp.read_last_json, env),
    ]
    warm = bp.with_warm_cache(tools, tmp_path / "cache", one)
    # the warm-up ran once, in the bench's own folder
    assert (tmp_path / "cache" / "netwatch" / "unpacked").is_file()
    assert warm[0].env[bp.CACHE_HOME] == str(tmp_path / "cache")
    assert bp.CACHE_HOME not in warm[1].env  # cold: a folder per run instead
    assert bp.CACHE_HOME not in warm[2].env  # not netwatch: untouched
    with pytest.raises(KeyError):  # the child sees no cache home of the user's
        _ = bp.child_env({})[bp.CACHE_HOME]
    for _ in range(2):  # a cold run never sees what an earlier run wrote
        run = bp.run_tool(warm[1], one)
        assert run.output == bp.Output(1, 1)
    cold_log = _run_log(warm[1], one)
    assert cold_log.startswith("[]")
    assert _run_log(warm[0], one).startswith("['netwatch', 'unpacked']")


def _run_log(tool: bp.Tool, capture: bp.Capture) -> str:
    """The output of one run of ``tool`` (``run_tool`` keeps only what it read)."""
    seen: list[str] = []

    def read(work: Path, log: str) -> bp.Output:
        seen.append(log)
        return bp.read_last_json(work, log)

    bp.run_tool(bp.Tool(tool.name, tool.argv, read, tool.env, tool.cold_cache), capture)
    return seen[0]


def test_read_through_reads_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 5000)
    assert bp.read_through(path, chunk=4096) == 256 * 5000
    assert bp.read_through(tmp_path / "blob", chunk=1 << 20) == 256 * 5000
