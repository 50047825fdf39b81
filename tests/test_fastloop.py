"""The fused loop must be invisible: flow records equal the general path's, packet for packet.

These tests run the pure-Python fused loop (``NETWATCH_CORE=python``), whatever the default;
tests/test_corefeed.py runs the same captures through the loop with its fast branch in C."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.evidence import EvidenceStore
from netwatch.capture.files import CaptureFile, open_capture
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.flow.ids import UidSource
from netwatch.flow.table import Flow
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as g
from tests.conftest import corpus_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _python_fused_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipelines below run netwatch.fastloop.run_mapped, not the C-fed loop."""
    monkeypatch.setenv("NETWATCH_CORE", "python")


def run_one_way(pipe: Pipeline, path: Path, fused: bool) -> CaptureFile:
    """Replay ``path`` through the fused loop or the general path only, then finish."""
    cap = open_capture(path)
    if fused:
        pipe.run_capture(cap)
    else:
        pipe.run(cap.packets())
    pipe.finish()
    return cap


def both_ways(path: Path, cfg: Config | None = None) -> tuple[list[Any], list[Any]]:
    out: list[list[Any]] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        cap = run_one_way(pipe, path, fused)
        assert cap.stats.records == pipe.stats.packets
        out.append([recs, pipe.stats.packets, pipe.decoder.failures])
    return out[0], out[1]


@pytest.fixture(scope="module")
def site_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("site") / "site.pcap"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "gen_site_pcap.py"),
            str(path),
            "--packets",
            "30000",
            "--seed",
            "5",
        ],
        check=True,
        capture_output=True,
    )
    return path


def test_site_capture(site_capture: Path) -> None:
    fused, general = both_ways(site_capture)
    assert fused == general
    assert len(fused[0]) > 100


def test_site_capture_with_short_timeouts_and_small_table(
    site_capture: Path, tmp_path: Path
) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "flows: {max_flows: 50, udp_idle_s: 0.5, tcp_idle_s: 1, "
        "tcp_closed_s: 0.2, active_timeout_s: 2}\ndeep: {max_payload_packets: 1}\n"
    )
    fused, general = both_ways(site_capture, Config.load(cfg_file))
    assert fused == general


def evidence_run(path: Path, store: EvidenceStore, fused: bool) -> list[Any]:
    """One run with evidence on: records, alerts, every flow's kept frames, keeper totals."""
    recs: list[dict[str, Any]] = []
    alerts: list[tuple[str, str | None, str | None]] = []
    kept: dict[str, list[tuple[float, int, bytes]]] = {}
    pipe = Pipeline(
        Config.default(),
        recs.append,
        geo=NullGeo(),
        uids=UidSource(3),
        on_alert=lambda a, c: alerts.append((a.rule, a.flow_uid, a.evidence_sha256)),
        evidence=store,
    )
    release = pipe.keeper.release

    def snapshot(f: Flow) -> None:
        if f.ev is not None:
            kept[f.uid] = [(p.ts, p.wirelen, p.frame) for p in f.ev.packets]
        release(f)

    pipe.keeper.release = snapshot  # type: ignore[method-assign]
    run_one_way(pipe, path, fused)
    return [recs, alerts, kept, pipe.keeper.packets, pipe.keeper.kept_bytes]


def evidence_both_ways(path: Path, tmp_path: Path) -> list[Any]:
    """Fused and general runs with evidence on."""
    out = []
    for fused in (True, False):
        store = EvidenceStore(tmp_path / str(fused))
        store.open()
        out.append(evidence_run(path, store, fused))
    return out


def test_site_capture_with_evidence_kept(site_capture: Path, tmp_path: Path) -> None:
    fused, general = evidence_both_ways(site_capture, tmp_path)
    assert fused == general
    recs, _alerts, kept, packets, held = fused
    assert packets > 1000 and held == 0
    assert sum(map(len, kept.values())) == packets
    assert len(kept) == len(recs)  # every flow of the site capture has a site-local end


def test_scenario_alert_evidence_is_the_same_both_ways(tmp_path: Path) -> None:
    fused, general = evidence_both_ways(
        REPO / "pcaps" / "scenarios" / "camera-upload.pcap", tmp_path
    )
    assert fused == general
    assert fused[1] and all(sha is not None for _rule, _uid, sha in fused[1])


def test_demo_capture() -> None:
    fused, general = both_ways(REPO / "pcaps" / "demo" / "camera-site-demo.pcap")
    assert fused == general


def test_odd_records_and_truncated_tail(tmp_path: Path) -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9", (7,))
    s = g.TcpSession(route, 1000, 80)
    frames = [
        *s.handshake(),
        *s.send(True, b"x" * 3000),
        *s.send(False, b"y" * 100),
        *s.close(True),
    ]
    path = tmp_path / "t.pcap"
    with path.open("wb") as fh, g.PcapWriter(fh, snaplen=64) as w:
        for i, frame in enumerate(frames):
            w.write(1_000_000 + i * 1000, frame)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # cut inside the last record
    fused, general = both_ways(path)
    assert fused == general


def endian_and_tick_files(tmp_path: Path) -> tuple[list[Path], int]:
    """A big-endian microsecond and a little-endian nanosecond capture of the same frames
    (UDP and a TCP session), and how many frames each holds."""
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9")
    frames = [g.udp_frame(route, 5000, 6000, b"z" * 100) for _ in range(50)]
    s = g.TcpSession(route, 1000, 80)
    frames += [*s.handshake(), *s.send(True, b"x" * 5000), *s.close(False)]
    paths = []
    for magic, order, tick in ((0xA1B2C3D4, ">", 1000), (0xA1B23C4D, "<", 1)):
        path = tmp_path / f"{order}{tick}.pcap"
        parts = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
        for i, frame in enumerate(frames):
            frac = i * 1000 * (1000 if tick == 1 else 1)
            parts.append(struct.pack(order + "IIII", 100, frac, len(frame), len(frame)) + frame)
        path.write_bytes(b"".join(parts))
        paths.append(path)
    return paths, len(frames)


def real_captures(pcap_corpus: Path) -> list[Path]:
    """Every capture of the corpus's pcaps/ (at least 60 of them)."""
    paths = sorted(pcap_corpus.rglob("*.pcap*"))
    assert len(paths) >= 60
    return paths


def zeek_traces() -> list[Path]:
    """Every trace of the corpus's Zeek test suite (at least 90 of them)."""
    root = corpus_file("zeek", "traces")
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz"))
    assert len(paths) >= 90
    return paths


def test_big_endian_and_nanosecond_files(tmp_path: Path) -> None:
    paths, frames = endian_and_tick_files(tmp_path)
    for path in paths:
        fused, general = both_ways(path)
        assert fused == general
        assert fused[1] == frames


def test_every_real_capture(pcap_corpus: Path) -> None:
    for path in real_captures(pcap_corpus):
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_flows_flipped_by_the_port_rule() -> None:
    """Zeek's traces where the first packet comes from the server ('^'): fused == general."""
    for trace in (
        "dhcp/dhcp.pcap",
        "tcp/http-on-irc-port-missing-syn.pcapng",
        "tunnels/ayiya3.pcap",
        "mpls-in-vlan.pcap",
    ):
        fused, general = both_ways(corpus_file("zeek", "traces", *trace.split("/")))
        assert fused == general, trace
        assert any(str(r["history"]).startswith("^") for r in fused[0]), trace


def test_every_zeek_trace() -> None:
    """Zeek's traces: snap-length-cut payloads, reordered segments, ACKs of data never seen,
    resets after a FIN exchange, reused 5-tuples; fused == general on each."""
    for path in zeek_traces():
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_payload_cut_by_the_snap_length_and_acked_is_a_gap_both_ways(tmp_path: Path) -> None:
    """Past the deep parsers' budget the fused loop takes in-order data; a segment whose
    payload the capture cut must still reach the general path (content gap once acked)."""
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9", ())
    s = g.TcpSession(route, 40000, 8554)
    frames = [*s.handshake()]
    for _ in range(12):
        frames += s.send(True, b"x" * 100)
    frames.append(s.ack(False))  # the server's first bare ACK: its 'a' is recorded
    cut = len(frames)
    frames += [*s.send(True, b"y" * 400), s.ack(False), *s.close(True)]
    path = tmp_path / "cut.pcap"
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            kept = frame[:64] if i == cut else frame
            fh.write(struct.pack("<IIII", 1_000_000, i * 1000, len(kept), len(frame)) + kept)
    fused, general = both_ways(path)
    assert fused == general
    (rec,) = fused[0]
    assert (rec["missed_bytes"], rec["orig_bytes"]) == (400, 1600)
    assert "G" in rec["history"]
