"""Alert evidence: the keeper's bounds, the store's files and bounds, and a replayed alert's
pcap read back by a real tshark."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import dpkt
import pytest

from netwatch.alerts.evidence import (
    EvidenceStore,
    FlowEvidence,
    KeepLimits,
    KeptPacket,
    PacketKeeper,
    evidence_name,
    name_re,
    pcap_bytes,
)
from netwatch.alerts.model import Alert, Severity
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.flow.table import Flow
from netwatch.pipeline import Pipeline
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "pcaps" / "scenarios"
TSHARK = shutil.which("tshark")
ETHERNET = 1
DAY = 86_400.0


def alert(**over: Any) -> Alert:
    fields: dict[str, Any] = {
        "ts": 1_768_467_600.25,
        "rule": "outbound_stream",
        "severity": Severity.HIGH,
        "device": "cam-1",
        "device_ip": "10.20.0.13",
        "summary": "s",
        "flow_uid": "Cabc123",
    }
    fields.update(over)
    return Alert(**fields)


def evidence(*frames: bytes, linktype: int = ETHERNET) -> FlowEvidence:
    ev = FlowEvidence()
    ev.linktype = linktype
    for i, frame in enumerate(frames):
        ev.packets.append(KeptPacket(100.0 + i / 1000, len(frame) + 10, frame))
        ev.nbytes += len(frame)
    return ev


def flow() -> Flow:
    return Flow((b"a", b"b", 1, 2, 17), "Cflow", 1.0, 17)


# -- file names -----------------------------------------------------------------------------


def test_name_is_sanitised_and_stays_in_the_directory(tmp_path: Path) -> None:
    hostile = alert(rule="x/../../etc", device="../cam\n\x00\x1b[31m", flow_uid="a/b\\c")
    name = evidence_name(hostile)
    assert name_re().fullmatch(name), name
    assert "/" not in name and "\\" not in name
    assert all(ch.isprintable() for ch in name)
    assert name.startswith("20260115T090000.250000Z-x_.._.._etc-.._cam_31m-a_b_c")
    store = EvidenceStore(tmp_path)
    saved = store.write(hostile, evidence(b"\x00" * 60))
    assert saved is not None and saved.path.parent == tmp_path
    assert os.listdir(tmp_path) == [name]


def test_name_parts_are_bounded_and_bad_timestamps_do_not_raise() -> None:
    name = evidence_name(alert(ts=1e20, device="d" * 500, flow_uid=None))
    assert name.startswith("00000000T000000.000000Z-outbound_stream-" + "d" * 64 + "-noflow")
    assert name_re().fullmatch(name)


# -- the pcap bytes -------------------------------------------------------------------------


def test_pcap_bytes_keep_time_wire_length_and_link_type() -> None:
    packets = [KeptPacket(1_768_467_600.123456, 1242, b"a" * 128), KeptPacket(5.5, 60, b"b" * 60)]
    data = pcap_bytes(113, 1600, packets)
    reader = dpkt.pcap.Reader(__import__("io").BytesIO(data))
    assert reader.datalink() == 113
    assert reader.snaplen == 1600
    got = [(round(ts, 6), buf) for ts, buf in reader]
    assert got == [(1_768_467_600.123456, b"a" * 128), (5.5, b"b" * 60)]
    # the record header keeps the wire length of a cut frame (dpkt does not expose it)
    assert int.from_bytes(data[24 + 12 : 24 + 16], "little") == 1242


# -- the keeper -----------------------------------------------------------------------------


def test_keeper_keeps_the_first_packets_cut_at_snaplen() -> None:
    keeper = PacketKeeper(KeepLimits(packets=3, flow_bytes=10_000, snaplen=100))
    f = flow()
    keeper.start(f)
    for i in range(5):
        if f.keep:
            keeper.keep(f, float(i), ETHERNET, bytes([i]) * 150, 150 + i)
    assert f.ev is not None
    assert [(p.ts, p.wirelen, p.frame) for p in f.ev.packets] == [
        (float(i), 150 + i, bytes([i]) * 100) for i in range(3)
    ]
    assert f.keep == 0 and keeper.kept_bytes == 300 and keeper.packets == 3
    keeper.release(f)
    assert f.ev is None and keeper.kept_bytes == 0


def test_keeper_copies_frames_out_of_capture_buffers() -> None:
    keeper = PacketKeeper(KeepLimits())
    f = flow()
    keeper.start(f)
    buf = bytearray(b"x" * 64)
    keeper.keep(f, 1.0, ETHERNET, memoryview(buf), 64)  # type: ignore[arg-type]
    buf[:] = b"y" * 64
    assert f.ev is not None and f.ev.packets[0].frame == b"x" * 64


def test_keeper_stops_a_flow_at_its_byte_bound() -> None:
    keeper = PacketKeeper(KeepLimits(packets=10, flow_bytes=250, snaplen=100))
    f = flow()
    keeper.start(f)
    for i in range(4):
        if f.keep:
            keeper.keep(f, float(i), ETHERNET, b"z" * 100, 100)
    assert f.ev is not None and len(f.ev.packets) == 2 and f.keep == 0
    assert keeper.stopped["flow_bytes"] == 1


def test_keeper_memory_cap_across_flows_is_counted_and_freed() -> None:
    keeper = PacketKeeper(KeepLimits(packets=10, flow_bytes=10_000, memory_bytes=500))
    a, b = flow(), flow()
    keeper.start(a)
    keeper.start(b)
    for _ in range(4):
        keeper.keep(a, 1.0, ETHERNET, b"a" * 100, 100)
    for _ in range(3):
        if b.keep:
            keeper.keep(b, 1.0, ETHERNET, b"b" * 100, 100)
    assert b.ev is not None and len(b.ev.packets) == 1 and b.keep == 0
    assert keeper.stopped["memory"] == 1 and keeper.kept_bytes == 500
    keeper.release(a)
    assert keeper.kept_bytes == 100


def test_keeper_keeps_one_link_type_per_flow() -> None:
    keeper = PacketKeeper(KeepLimits())
    f = flow()
    keeper.start(f)
    keeper.keep(f, 1.0, ETHERNET, b"e" * 60, 60)
    keeper.keep(f, 2.0, 113, b"s" * 60, 60)
    assert f.ev is not None and len(f.ev.packets) == 1 and f.keep == 0
    assert keeper.stopped["linktype"] == 1


# -- the store ------------------------------------------------------------------------------


def test_write_gives_a_0640_file_and_its_sha256(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    store.open()
    assert stat.S_IMODE((tmp_path / "evidence").stat().st_mode) == 0o750
    old = os.umask(0o077)
    try:
        out = store.attach(alert(), evidence(b"f" * 70, b"g" * 80))
    finally:
        os.umask(old)
    assert out.evidence_pcap is not None and out.evidence_sha256 is not None
    path = Path(out.evidence_pcap)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert hashlib.sha256(path.read_bytes()).hexdigest() == out.evidence_sha256
    rec = out.record()
    assert rec["evidence_pcap"] == str(path) and rec["evidence_sha256"] == out.evidence_sha256
    assert "evidence_pcap" not in alert().record()
    assert store.counters.written == 1 and store.total_bytes == path.stat().st_size


def test_a_second_file_for_the_same_name_gets_a_suffix(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    first = store.write(alert(), evidence(b"1" * 60))
    second = store.write(alert(), evidence(b"2" * 60))
    assert first is not None and second is not None
    assert second.path.name == first.path.name.removesuffix(".pcap") + "-2.pcap"
    assert name_re().fullmatch(second.path.name)


def test_nothing_kept_writes_nothing(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    a = alert()
    assert store.attach(a, FlowEvidence()) is a
    assert os.listdir(tmp_path) == []


def test_size_bound_deletes_oldest_first_and_never_the_new_file(tmp_path: Path) -> None:
    clock = [1000.0]
    store = EvidenceStore(tmp_path, max_total_bytes=3200, clock=lambda: clock[0])
    store.open()
    names = []
    for i in range(6):
        clock[0] += 1
        saved = store.write(alert(ts=1e9 + i), evidence(b"p" * 1000))
        assert saved is not None
        names.append(saved.path.name)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(names[-3:])  # each file is 1,040 bytes: three fit in 3,200
    assert store.counters.deleted == {"age": 0, "size": 3}
    assert store.total_bytes == sum((tmp_path / n).stat().st_size for n in left) <= 3200
    tiny = EvidenceStore(tmp_path / "t", max_total_bytes=10)
    tiny.open()
    saved = tiny.write(alert(), evidence(b"q" * 100))
    assert saved is not None and saved.path.exists()  # over the bound alone, but kept


def test_age_bound_deletes_only_our_old_files(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, max_age_s=30 * DAY)
    old = store.write(alert(ts=1e9), evidence(b"o" * 60))
    new = store.write(alert(ts=2e9), evidence(b"n" * 60))
    assert old is not None and new is not None
    foreign = [tmp_path / "notes.txt", tmp_path / "capture.pcap", tmp_path / "x-evil.pcap"]
    for path in foreign:
        path.write_bytes(b"keep me")
    link = tmp_path / "20200101T000000.000000Z-r-d-u.pcap"
    link.symlink_to(tmp_path / "notes.txt")
    month_ago = time.time() - 31 * DAY
    for path in (old.path, *foreign):
        os.utime(path, (month_ago, month_ago))
    store.prune()
    assert not old.path.exists() and new.path.exists()
    assert all(p.exists() for p in foreign) and link.is_symlink()
    assert store.counters.deleted == {"age": 1, "size": 0}
    assert store.total_bytes == new.size


def test_open_counts_what_is_already_there(tmp_path: Path) -> None:
    EvidenceStore(tmp_path).write(alert(), evidence(b"a" * 100))
    again = EvidenceStore(tmp_path)
    again.open()
    assert again.total_bytes == 24 + 16 + 100


def test_write_failure_is_counted_logged_once_and_the_alert_goes_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EvidenceStore(tmp_path / "gone")
    store.open()
    (tmp_path / "gone").rmdir()
    a = alert()
    with caplog.at_level(logging.ERROR, logger="netwatch.alerts.evidence"):
        assert store.attach(a, evidence(b"x" * 60)) is a
        assert store.attach(a, evidence(b"x" * 60)) is a
    assert store.counters.dropped == {"write_error": 2}
    assert len([r for r in caplog.records if "ENOENT" in str(r.__dict__.get("fields"))]) == 1


def test_disk_full_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EvidenceStore(tmp_path)

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    a = alert()
    assert store.attach(a, evidence(b"x" * 60)) is a
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
    assert store.counters.dropped["write_error"] == 1 and store.counters.written == 0


# -- in the pipeline ------------------------------------------------------------------------


def test_only_flows_with_a_site_local_end_keep(tmp_path: Path) -> None:
    alerts: list[Alert] = []
    store = EvidenceStore(tmp_path)
    pipe = Pipeline(
        Config.default(),
        lambda r: None,
        geo=NullGeo(),
        on_alert=lambda a, c: alerts.append(a),
        evidence=store,
    )
    cam, gw = "bc:ad:28:1a:2b:01", "02:00:5e:10:00:01"
    local = g.Route.of(cam, "10.20.0.11", gw, "89.160.20.112")
    outside = g.Route.of(cam, "81.2.69.142", gw, "89.160.20.112")
    for i in range(20):
        for route in (local, outside):
            frame = g.udp_frame(route, 40000, 9000, b"v" * 100)
            pipe.account(1.0 + i / 100, ETHERNET, frame, len(frame))
    kept = {f.orig_h: f.ev for f in pipe.table.flows.values()}
    local_ev = kept[g.ip_bytes("10.20.0.11")]
    assert local_ev is not None and len(local_ev.packets) == 16  # evidence.packets default
    assert kept[g.ip_bytes("81.2.69.142")] is None
    pipe.finish()
    assert pipe.keeper.kept_bytes == 0  # released when the flows ended


def test_without_a_store_nothing_is_kept() -> None:
    pipe = Pipeline(Config.default(), lambda r: None, geo=NullGeo(), on_alert=lambda a, c: None)
    route = g.Route.of("bc:ad:28:1a:2b:01", "10.20.0.11", "02:00:5e:10:00:01", "89.160.20.112")
    frame = g.udp_frame(route, 40000, 9000, b"v" * 100)
    pipe.account(1.0, ETHERNET, frame, len(frame))
    assert all(f.ev is None and f.keep == 0 for f in pipe.table.flows.values())


# -- end to end: replay, then tshark --------------------------------------------------------


def tshark_rows(path: Path) -> list[list[str]]:
    assert TSHARK is not None
    fields = ["frame.number", "ip.src", "ip.dst", "ip.proto", "tcp.srcport", "tcp.dstport"]
    fields += ["udp.srcport", "udp.dstport", "ipv6.src", "ipv6.dst"]
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


def five_tuple(row: list[str]) -> tuple[frozenset[tuple[str, str]], str]:
    _n, src4, dst4, _proto, tsp, tdp, usp, udp_, src6, dst6 = row
    src, dst = src4 or src6, dst4 or dst6
    sport, dport = tsp or usp, tdp or udp_
    return frozenset({(src, sport), (dst, dport)}), "tcp" if tsp else "udp"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt install tshark)")
@pytest.mark.parametrize("name", ["camera-upload.pcap", "hik-connect-registration.pcap"])
def test_replayed_alert_evidence_opens_in_tshark(name: str, tmp_path: Path) -> None:
    flows_out, alerts_out, state = tmp_path / "f.jsonl", tmp_path / "a.jsonl", tmp_path / "st"
    summary = run_replay(
        [SCENARIOS / name],
        Config.default(),
        flows_out=flows_out,
        alerts_out=alerts_out,
        geo=NullGeo(),
        uid_seed=1,
        state_dir=state,
    )
    flows = {r["uid"]: r for r in map(json.loads, flows_out.read_text().splitlines())}
    records = [json.loads(line) for line in alerts_out.read_text().splitlines()]
    with_flow = [r for r in records if r["flow_uid"] in flows]
    assert with_flow and summary.evidence == {"written": len(with_flow), "write_error": 0}
    for rec in with_flow:
        path = Path(rec["evidence_pcap"])
        assert path.parent == state / "evidence"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["evidence_sha256"]
        flow_rec = flows[rec["flow_uid"]]
        want = (
            frozenset(
                {
                    (flow_rec["id.orig_h"], str(flow_rec["id.orig_p"])),
                    (flow_rec["id.resp_h"], str(flow_rec["id.resp_p"])),
                }
            ),
            flow_rec["proto"],
        )
        rows = tshark_rows(path)
        packets = flow_rec["orig_pkts"] + flow_rec["resp_pkts"]
        assert len(rows) == min(16, packets)
        assert [r[0] for r in rows] == [str(i) for i in range(1, len(rows) + 1)]
        assert {five_tuple(r) for r in rows} == {want}
        assert rec["peer_ip"] in {a for a, _ in want[0]}


def test_replay_without_a_state_dir_keeps_no_evidence(tmp_path: Path) -> None:
    alerts_out = tmp_path / "a.jsonl"
    summary = run_replay(
        [SCENARIOS / "camera-upload.pcap"], Config.default(), alerts_out=alerts_out, geo=NullGeo()
    )
    assert summary.evidence is None and summary.alerts == 1  # one flow, one notification
    assert all("evidence_pcap" not in json.loads(x) for x in alerts_out.read_text().splitlines())


def test_replay_with_evidence_disabled(tmp_path: Path) -> None:
    cfg = Config.from_yaml("evidence: {enabled: false}\n")
    summary = run_replay(
        [SCENARIOS / "camera-upload.pcap"], cfg, geo=NullGeo(), state_dir=tmp_path / "st"
    )
    assert summary.evidence is None and summary.alerts == 1
    assert not (tmp_path / "st" / "evidence").exists()
