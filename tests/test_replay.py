"""End-to-end replay tests: a generated camera scenario through the whole pipeline."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netwatch import progress
from netwatch.alerts.grouping import members
from netwatch.capture.files import CaptureError
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.capture import builders as b

CAM_MAC = "bc:ad:28:00:00:01"  # Hikvision OUI
GW_MAC = "00:11:22:33:44:55"
CAM = "10.20.0.11"
RESOLVER = "10.20.0.2"
CLOUD = "175.16.199.1"  # CN in MaxMind's GeoIP2-Country test database
SWEDEN = "89.160.20.112"  # SE and AS29518 in MaxMind's test databases


def scenario(path: Path, snaplen: int = 262_144) -> None:
    """DNS lookup, TLS with a split ClientHello, HTTP, and a second flow known only by DNS."""
    t = g.Trace()
    dns = g.Route.of(CAM_MAC, CAM, GW_MAC, RESOLVER)
    name = "dev.hik-connect.example"
    t.add(1_000_000, g.udp_frame(dns, 40000, 53, g.dns_query(7, name)))
    answer = g.dns_response(
        7,
        name,
        g.DnsType.A,
        [
            g.DnsRecord(name, g.DnsType.CNAME, "edge.cloud.example", 300),
            g.DnsRecord("edge.cloud.example", g.DnsType.A, CLOUD, 300),
            g.DnsRecord("edge.cloud.example", g.DnsType.A, SWEDEN, 300),
        ],
    )
    t.add(1_010_000, g.udp_frame(dns.reverse(), 53, 40000, answer))
    tls = g.TcpSession(g.Route.of(CAM_MAC, CAM, GW_MAC, CLOUD), 50000, 443)
    ts = t.add_burst(2_000_000, tls.handshake(), 1000)
    hello = g.tls_client_hello("sni.hik-connect.example", client_random=bytes(32))
    ts = t.add_burst(
        ts, [tls.segment(True, 0x18, hello[:50]), tls.segment(True, 0x18, hello[50:])], 1000
    )
    ts = t.add_burst(ts, tls.send(False, b"\x17\x03\x03" + bytes(3000)), 1000)
    t.add_burst(ts, tls.close(True), 1000)
    http = g.TcpSession(g.Route.of(CAM_MAC, CAM, GW_MAC, SWEDEN), 50001, 80)
    ts = t.add_burst(3_000_000, http.handshake(), 1000)
    req = g.http_request("GET", "/", [("Host", "edge.cloud.example:80"), ("User-Agent", "cam/1")])
    ts = t.add_burst(ts, http.send(True, req), 1000)
    resp = g.http_response(200, "OK", [("Server", "App-webs/")], b"hello")
    ts = t.add_burst(ts, http.send(False, resp), 1000)
    t.add_burst(ts, http.close(False), 1000)
    t.write(path, snaplen=snaplen)


def replay(tmp_path: Path, pcaps: list[Path], cfg: Config | None = None) -> list[dict[str, Any]]:
    out = tmp_path / f"flows-{len(list(tmp_path.glob('flows-*')))}.jsonl"
    summary = run_replay(
        pcaps,
        cfg or Config.default(),
        flows_out=out,
        uid_seed=1,
        geo=NullGeo() if cfg is None else None,
    )
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.flows == len(recs)
    return recs


def by_port(recs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["id.resp_p"]: r for r in recs}


def test_scenario_flow_records(tmp_path: Path) -> None:
    pcap = tmp_path / "s.pcap"
    scenario(pcap)
    recs = by_port(replay(tmp_path, [pcap]))
    dns, tls, http = recs[53], recs[443], recs[80]
    assert dns["service"] == "dns" and dns["conn_state"] == "SF" and dns["history"] == "Dd"
    assert dns["dns_query"] == "dev.hik-connect.example"
    assert tls["service"] == "ssl" and tls["server_name"] == "sni.hik-connect.example"
    assert tls["resp_name"] == "sni.hik-connect.example"  # SNI beats the DNS name
    assert tls["conn_state"] == "SF" and tls["history"].startswith("ShAD")
    hello = g.tls_client_hello("sni.hik-connect.example", client_random=bytes(32))
    assert tls["orig_bytes"] == len(hello)  # sequence space: SYN and FIN excluded
    assert tls["resp_bytes"] == 3003
    assert http["http_host"] == "edge.cloud.example" and http["server"] == "App-webs/"
    assert http["user_agent"] == "cam/1" and http["service"] == "http"
    for rec in (dns, tls, http):
        assert rec["local_orig"] is True
        assert rec["id.orig_h"] == CAM and rec["orig_l2_addr"] == CAM_MAC
        assert "Hikvision" in rec["vendor"]
        assert rec["community_id"].startswith("1:")
    assert tls["local_resp"] is False and dns["local_resp"] is True


def test_passive_dns_names_a_flow_without_sni(tmp_path: Path) -> None:
    pcap = tmp_path / "s.pcap"
    scenario(pcap)
    http = by_port(replay(tmp_path, [pcap]))[80]
    # the HTTP Host is the name the camera asked for; it also matches the DNS chain
    assert http["resp_name"] == "edge.cloud.example"


def test_geo_from_maxmind_test_databases(tmp_path: Path, maxmind_dir: Path) -> None:
    pcap = tmp_path / "s.pcap"
    scenario(pcap)
    cfg_file = tmp_path / "nw.yaml"
    cfg_file.write_text(
        f"geoip:\n  country_db: {maxmind_dir / 'GeoIP2-Country-Test.mmdb'}\n"
        f"  asn_db: {maxmind_dir / 'GeoLite2-ASN-Test.mmdb'}\n"
        "cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n"
    )
    recs = by_port(replay(tmp_path, [pcap], Config.load(cfg_file)))
    assert (recs[443]["resp_cc"], recs[443]["resp_asn"]) == ("CN", None)
    assert (recs[80]["resp_cc"], recs[80]["resp_asn"], recs[80]["resp_org"]) == (
        "SE",
        29518,
        "Bredband2 AB",
    )
    assert recs[53]["resp_cc"] is None  # local resolver: never looked up
    assert {r["orig_device"] for r in recs.values()} == {"lobby-1"}


def test_snaplen_capture_counts_wire_bytes(tmp_path: Path) -> None:
    full, cut = tmp_path / "full.pcap", tmp_path / "cut.pcap"
    scenario(full)
    scenario(cut, snaplen=80)
    a = by_port(replay(tmp_path, [full]))
    b = by_port(replay(tmp_path, [cut]))
    for port in (53, 443, 80):
        for field in (
            "orig_pkts",
            "resp_pkts",
            "orig_ip_bytes",
            "resp_ip_bytes",
            "orig_bytes",
            "resp_bytes",
            "conn_state",
        ):
            assert a[port][field] == b[port][field], (port, field)


def test_several_files_in_order_and_gzip(tmp_path: Path) -> None:
    pcap = tmp_path / "s.pcap"
    scenario(pcap)
    gz = tmp_path / "s.pcap.gz"
    with pcap.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    one = replay(tmp_path, [pcap])
    two = replay(tmp_path, [gz, pcap])
    assert len(two) >= len(one)
    assert sum(r["orig_pkts"] + r["resp_pkts"] for r in two) == 2 * sum(
        r["orig_pkts"] + r["resp_pkts"] for r in one
    )


def test_unreadable_input_fails_before_any_output(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    with pytest.raises(CaptureError, match=r"notes\.txt"):
        run_replay([bad], Config.default(), flows_out=tmp_path / "f.jsonl")
    assert not (tmp_path / "f.jsonl").exists()


def test_pcapng_timestamp_options_out_of_range_are_counted_not_fatal(tmp_path: Path) -> None:
    """The way it failed: `netwatch replay` on crafted pcapng files ended with an
    OverflowError traceback or `netwatch: : Value too large`; now every such packet is a
    counted capture problem and the replay finishes."""
    frame = g.udp_frame(g.Route.of(CAM_MAC, CAM, GW_MAC, SWEDEN), 40000, 3478, b"s" * 20)
    crafted = {
        "tsoffset-max": b.idb(1, tsoffset=(1 << 63) - 1),
        "tsoffset-min": b.idb(1, tsoffset=-(1 << 63)),
        "tsresol-seconds": b.idb(1, tsresol=0),  # 2^64 - 1 seconds below
        "tsresol-pow10-127": b.idb(1, tsresol=127),
    }
    paths = []
    for name, interface in crafted.items():
        path = tmp_path / f"{name}.pcapng"
        path.write_bytes(b.shb() + interface + b.epb(0, (1 << 64) - 1, frame))
        paths.append(path)
    fine = tmp_path / "fine.pcapng"
    fine.write_bytes(b.shb() + b.idb(1) + b.epb(0, 1_700_000_000_000_000, frame))
    flows, alerts = tmp_path / "flows.jsonl", tmp_path / "alerts.jsonl"
    argv = ["replay", "--flows", str(flows), "--alerts", str(alerts), *map(str, paths), str(fine)]
    done = subprocess.run(
        [sys.executable, "-m", "netwatch", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "netwatch: :" not in done.stderr
    # three bad interfaces count their IDB and their packet; the seconds file its packet
    assert "capture file problems: bad_blocks=7" in done.stdout
    assert "packets: 1 " in done.stdout
    [record] = [json.loads(line) for line in flows.read_text().splitlines()]
    assert record["ts"] == pytest.approx(1_700_000_000.0)


DEMO = Path(__file__).resolve().parent.parent / "pcaps" / "demo" / "camera-site-demo.pcap"


def _demo(tmp_path: Path, cfg: Config, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    alerts_out = tmp_path / "alerts.jsonl"
    summary = run_replay([DEMO], cfg, alerts_out=alerts_out, geo=NullGeo(), uid_seed=1, **kw)
    return summary, [json.loads(line) for line in alerts_out.read_text().splitlines()]


def test_end_of_input_ends_every_incident_listing_its_peers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="netwatch.alert")
    summary, records = _demo(tmp_path, Config.default())
    reports = [report for r in records for report in members(r)]
    identities = {(r["rule"], r["device"], r["reached"]) for r in reports}
    assert summary.incidents_ended == len(identities) == 8
    assert all("status" not in r for r in records)  # the alert file: one line per alert
    ended = [m for m in caplog.messages if " ENDED " in m]
    assert len(ended) == 8
    assert any("cloud_registration ENDED 10.20.0.13 -> " in m and "peers " in m for m in ended)
    assert "incidents ended: 8;" in "\n".join(summary.lines())


def test_ends_in_the_alert_file_on_request_carry_span_and_peers(tmp_path: Path) -> None:
    _, records = _demo(tmp_path, Config.default(), ended_to_alerts=True)
    ends = [r for r in records if r.get("status") == "ended"]
    firing = [r for r in records if r.get("status") != "ended"]
    assert len(ends) == 8 == sum(len(list(members(r))) for r in firing)
    for end in ends:
        assert end["ended_reason"] == "end_of_input"
        assert end["first_seen"] <= end["last_seen"] <= end["ts"]
        assert end["peers"] and end["sightings"] >= 1


def test_an_incident_quiet_for_resolve_s_ends_during_the_replay(tmp_path: Path) -> None:
    # the demo spans minutes of packet time: with resolve_s 1 s, incidents end on the
    # flow-table sweep long before the input does
    cfg = Config.from_yaml("alerts: {resolve_s: 1}")
    summary, records = _demo(tmp_path, cfg, ended_to_alerts=True)
    reasons = [r["ended_reason"] for r in records if r.get("status") == "ended"]
    assert "quiet" in reasons and len(reasons) == summary.incidents_ended


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "netwatch", "replay", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_standard_input_gives_the_same_records_as_the_file(tmp_path: Path) -> None:
    from_file = tmp_path / "file.jsonl"
    from_pipe = tmp_path / "pipe.jsonl"
    done = _cli(str(DEMO), "--flows", str(from_file), "--uid-seed", "1", "-q")
    assert done.returncode == 0, done.stderr
    data = DEMO.read_bytes()
    for name, payload in (("plain", data), ("gzip", gzip.compress(data))):
        piped = _cli("-", "--flows", str(from_pipe), "--uid-seed", "1", "-q", stdin=payload)
        assert piped.returncode == 0, (name, piped.stderr)
        assert from_pipe.read_bytes() == from_file.read_bytes(), name
        assert b"packets: 5221 " in piped.stdout
    # the alert lines go with -q; the summary stays; -qq prints nothing on stdout
    assert b"cloud_registration" not in done.stderr
    quieter = _cli(str(DEMO), "-qq")
    assert quieter.returncode == 0 and quieter.stdout == b""
    loud = _cli(str(DEMO))
    assert b"[high] cloud_registration" in loud.stderr and b"cameras: 4" in loud.stdout


def test_standard_input_errors_are_one_clear_line() -> None:
    done = _cli("-", stdin=b"hello, not a capture")
    assert done.returncode == 2
    assert b"-: standard input: not a pcap or pcapng file" in done.stderr
    twice = _cli("-", "-", stdin=b"")
    assert twice.returncode == 2 and b"standard input (-) can be given once" in twice.stderr


def test_a_progress_line_on_a_terminal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "AFTER_S", 0.0)
    monkeypatch.setattr(progress, "INTERVAL_S", 0.001)
    seen: list[str] = []

    class Terminal(io.StringIO):
        def write(self, text: str) -> int:
            seen.append(text)
            return len(text)

    # a replay long enough for several redraws: the demo, ten times
    captures = [DEMO] * 10
    summary = run_replay(captures, Config.default(), geo=NullGeo(), progress=Terminal())
    assert summary.packets == 52210
    drawn = [s for s in seen if s.startswith("\r\x1b[K[00:0")]
    assert drawn, seen[:5]
    assert any("/10 camera-site-demo.pcap: packet time 2026-01-15 09:0" in s for s in drawn)
    assert all(" flows ended, " in s and " alerts" in s for s in drawn)
    assert seen[-1] == "\r\x1b[K"  # the line is wiped at the end


def test_ready_is_called_once_when_the_pipeline_is_warmed_up_before_any_packet(
    tmp_path: Path,
) -> None:
    """``ready`` (``netwatch replay`` freezes start-up's objects then) runs once, after the
    pipeline's seeds are loaded and before any flow is logged."""
    from netwatch import seedstore  # noqa: PLC0415 - only this test looks at it

    pcap = tmp_path / "s.pcap"
    scenario(pcap)
    flows = tmp_path / "f.jsonl"
    seen: list[tuple[int, int]] = []

    def ready() -> None:
        seen.append((len(seedstore._values), flows.stat().st_size))

    summary = run_replay(
        [pcap], Config.default(), flows_out=flows, geo=NullGeo(), uid_seed=1, ready=ready
    )
    assert seen == [(seen[0][0], 0)] and seen[0][0] >= 5
    assert summary.packets > 0 and flows.stat().st_size > 0
    with pytest.raises(CaptureError):
        run_replay([tmp_path / "missing.pcap"], Config.default(), ready=ready)
    assert len(seen) == 1  # not called when the replay fails before its pipeline
