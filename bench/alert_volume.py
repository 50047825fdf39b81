"""Notifications per camera on the corpus's real camera captures, as a hospital would run it.

Each capture of ``../shared/corpus/pcaps/camera-real/`` that holds one of the known cameras
is replayed with an inventory naming that camera (group ``wards``) and
``deny_countries: [CN]``; the script prints, per capture, how many notifications the
camera got, the reports they carried by rule, and the total. Run it on two commits to
compare (the README quotes the result of the incidents and notification-group changes:
159 -> 20).

    .venv/bin/python bench/alert_volume.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from netwatch.alerts.grouping import members
from netwatch.config import Config
from netwatch.replay import run_replay

#: Capture name prefix -> the camera's MAC (from the corpus MANIFEST).
CAMERAS = {
    "shf_xiaomi": "78:8b:2a:b2:20:ea",
    "shfpf_xiaomi": "78:8b:2a:b2:20:ea",
    "shf_dlink": "b0:c5:54:43:54:83",
    "shfpf_dlink": "b0:c5:54:43:54:83",
    "sentinel_dlink-dcs935l": "b0:c5:54:25:5b:0e",
}
CONFIG = (
    "cameras:\n  - {{name: cam, mac: '{mac}', group: wards}}\n"
    "groups:\n  wards:\n    deny_countries: [CN]\n"
)
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def notifications(capture: Path, mac: str) -> tuple[int, collections.Counter[str]]:
    """The camera's notifications for one capture, and the reports they carried by rule."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg, out = Path(tmp) / "c.yaml", Path(tmp) / "a.jsonl"
        cfg.write_text(CONFIG.format(mac=mac), encoding="utf-8")
        run_replay([capture], Config.load(cfg), alerts_out=out, uid_seed=1)
        records = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [r for r in records if r["device"] == "cam"]
    return len(mine), collections.Counter(m["rule"] for r in mine for m in members(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    root = args.corpus / "pcaps" / "camera-real"
    total = 0
    for capture in sorted(root.glob("*.pcap*")):
        mac = next((m for prefix, m in CAMERAS.items() if capture.name.startswith(prefix)), None)
        if mac is None:
            continue
        sent, found = notifications(capture, mac)
        total += sent
        print(f"{capture.name:52s} {sent:4d}  reports: {dict(found)}")
    print(f"{'total':52s} {total:4d}")


if __name__ == "__main__":
    main()
