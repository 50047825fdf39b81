"""Real third-party captures through the rules, against reviewed golden alert baselines.

No corpus capture holds a Hikvision/Dahua-class MAC, so zero-config recognises no camera
there; the cameras the corpus MANIFEST names are put in an inventory instead (default
group: no egress beyond the site), which is how a site would run netwatch for them.
GeoIP is off (its data changes with the package). ``pytest --regen-golden`` rewrites the
baselines after review; ``ts`` and ``flow_uid`` are masked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from tests.conftest import PCAP_CORPUS, corpus_file

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "corpus"

#: capture -> camera addresses named in the corpus MANIFEST
CAMERAS = {
    "camera-iot/sentinel_dlink-dcs935l_setup.pcap": ["10.10.10.37"],
    "camera-iot/shf_xiaomi-cam_wan_snaplen150.pcap": ["192.168.1.161"],
    "camera-iot/rtpreplay_h264-rtp-stream.pcap": ["192.168.0.101"],
    "camera-iot/neolink_reolink-baichuan_login.pcapng": ["192.168.1.101"],
    "camera-iot/shf_dlink-dcs8000lh_lan.pcap": ["192.168.1.115"],
    "camera-iot/sentinel_ednet-cam1_setup.pcap": ["10.10.10.186"],
    "camera-iot/sentinel_dlink-daycam_setup.pcap": ["10.10.10.58"],
}


def _config(tmp_path: Path, cameras: list[str]) -> Config:
    lines = ["geoip: {builtin: false}", "cameras:"]
    lines += [f"  - {{name: cam-{i}, ip: {ip}}}" for i, ip in enumerate(cameras)]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Config.load(path)


@pytest.mark.parametrize("rel", sorted(CAMERAS))
def test_corpus_alerts_match_baseline(rel: str, tmp_path: Path, regen_golden: bool) -> None:
    capture = corpus_file("pcaps", *rel.split("/"))
    out = tmp_path / "alerts.jsonl"
    run_replay(
        [capture], _config(tmp_path, CAMERAS[rel]), alerts_out=out, geo=NullGeo(), uid_seed=1
    )
    got = []
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        rec["ts"] = rec["flow_uid"] = "*"
        got.append(json.dumps(rec, sort_keys=True))
    baseline = GOLDEN / f"{Path(rel).name}.alerts.jsonl"
    if regen_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        baseline.write_text("".join(line + "\n" for line in sorted(got)))
        return
    assert baseline.exists(), f"no baseline {baseline.name}: run pytest --regen-golden, review"
    assert sorted(got) == baseline.read_text().splitlines()


def test_every_listed_capture_exists() -> None:
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent")
    assert all((PCAP_CORPUS / rel).is_file() for rel in CAMERAS)
