"""Golden baselines: every capture in ``pcaps/`` replays to the same flow records.

Like Zeek's btest baselines: volatile fields (``ts``, ``uid``) are masked, GeoIP is off (its
data changes with the package; it has its own tests), and ``pytest --regen-golden``
rewrites the baselines after a reviewed, intended change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from tests.conftest import list_captures

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CAPTURES = [REPO / "pcaps" / rel for rel in list_captures(REPO / "pcaps")]
MASKED = ("ts", "uid")


def _normalised(path: Path, masked: tuple[str, ...] = MASKED) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        for key in masked:
            rec[key] = "*"
        lines.append(json.dumps(rec, sort_keys=True))
    return sorted(lines)


def test_there_are_captures_to_check() -> None:
    assert CAPTURES, "pcaps/ holds no capture"


@pytest.mark.parametrize("capture", CAPTURES, ids=[p.name for p in CAPTURES])
def test_flow_records_match_baseline(capture: Path, tmp_path: Path, regen_golden: bool) -> None:
    out, alerts_out = tmp_path / "flows.jsonl", tmp_path / "alerts.jsonl"
    summary = run_replay(
        [capture],
        Config.default(),
        flows_out=out,
        alerts_out=alerts_out,
        geo=NullGeo(),
        uid_seed=1,
    )
    got = _normalised(out)
    got_alerts = _normalised(alerts_out, ("ts", "flow_uid"))
    alerts_file = GOLDEN / f"{capture.stem}.alerts.jsonl"
    baseline = GOLDEN / f"{capture.stem}.flows.jsonl"
    summary_file = GOLDEN / f"{capture.stem}.summary.json"
    counts = {
        "packets": summary.packets,
        "flows": summary.flows,
        "decode_failures": summary.decode_failures,
        "non_ip": summary.non_ip,
    }
    if regen_golden or not baseline.exists():
        if not regen_golden:
            pytest.fail(f"no baseline {baseline.name}: run pytest --regen-golden and review it")
        baseline.write_text("".join(line + "\n" for line in got))
        alerts_file.write_text("".join(line + "\n" for line in got_alerts))
        summary_file.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
        return
    assert got == baseline.read_text().splitlines()
    assert got_alerts == alerts_file.read_text().splitlines()
    assert counts == json.loads(summary_file.read_text())
