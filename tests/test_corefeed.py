"""The loop fed by the compiled core must be invisible too: flow records, alerts and kept
evidence equal the general path's, on generated traffic, pcaps/, the corpus and Zeek's
traces (the same captures as tests/test_fastloop.py)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.evidence import EvidenceStore
from netwatch.config import Config
from netwatch.corefeed import BATCH, run_core
from netwatch.enrich.geo import NullGeo
from netwatch.fastloop import run_mapped
from netwatch.flow.ids import UidSource
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as g
from tests.test_core import _needs_core
from tests.test_fastloop import (
    endian_and_tick_files,
    evidence_run,
    real_captures,
    run_one_way,
    site_capture,
    zeek_traces,
)

__all__ = ["_needs_core", "site_capture"]  # the fixtures this module uses

REPO = Path(__file__).resolve().parent.parent


def both_ways(path: Path, cfg: Config | None = None) -> tuple[list[Any], list[Any]]:
    """(C-fed loop, general path): records, packets counted, decoder failures."""
    out: list[list[Any]] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        pipe.run_mapped = run_core
        cap = run_one_way(pipe, path, fused)
        assert cap.stats.records == pipe.stats.packets
        out.append([recs, pipe.stats.packets, pipe.decoder.failures])
    return out[0], out[1]


def test_selected_by_netwatch_core_c_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETWATCH_CORE", raising=False)
    assert Pipeline(Config.default(), print).run_mapped is run_mapped
    monkeypatch.setenv("NETWATCH_CORE", "c")
    assert Pipeline(Config.default(), print).run_mapped is run_core


def test_site_capture(site_capture: Path) -> None:
    fused, general = both_ways(site_capture)
    assert fused == general
    assert len(fused[0]) > 100 and fused[1] > BATCH  # more than one batch


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


def test_evidence_and_alerts(site_capture: Path, tmp_path: Path) -> None:
    out = []
    for fused in (True, False):
        store = EvidenceStore(tmp_path / str(fused))
        store.open()
        out.append(_evidence(site_capture, store, fused))
    assert out[0] == out[1]
    assert out[0][3] > 1000


def _evidence(path: Path, store: EvidenceStore, fused: bool) -> list[Any]:
    """tests.test_fastloop.evidence_run with the C-fed loop selected."""
    original = Pipeline.__init__

    def init(self: Pipeline, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.run_mapped = run_core

    Pipeline.__init__ = init  # type: ignore[method-assign]
    try:
        return evidence_run(path, store, fused)
    finally:
        Pipeline.__init__ = original  # type: ignore[method-assign]


def test_bundled_captures() -> None:
    paths = sorted(p for p in (REPO / "pcaps").rglob("*.pcap") if p.is_file())
    assert paths
    for path in paths:
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_odd_records_empty_records_and_truncated_tail(tmp_path: Path) -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9", (7,))
    s = g.TcpSession(route, 1000, 80)
    frames = [*s.handshake(), *s.send(True, b"x" * 3000), *s.send(False, b"y" * 100)]
    frames += s.close(True)
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1)]
    for i, frame in enumerate(frames):
        cut = frame[:64]
        parts.append(struct.pack("<IIII", 1, i * 1000, len(cut), len(frame)) + cut)
        if i == 3:
            parts.append(struct.pack("<IIII", 1, i * 1000, 0, 0))  # an empty record
    path = tmp_path / "t.pcap"
    path.write_bytes(b"".join(parts)[:-10])  # cut inside the last record
    fused, general = both_ways(path)
    assert fused == general


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


def test_every_zeek_trace() -> None:
    for path in zeek_traces():
        fused, general = both_ways(path)
        assert fused == general, path.name
