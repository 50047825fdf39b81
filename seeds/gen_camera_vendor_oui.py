"""Generate seeds/camera_vendor_oui.tsv from the IEEE MA-L registry that netaddr ships.

Selects the registrants of camera/NVR makers (Hikvision group, Dahua group, Uniview, and
consumer camera makers that make nothing else: Reolink, Amcrest, DoorBird, Canary, SkyBell,
Zmodo, Lorex, Swann, Yi, Hanwha/Samsung Techwin) and of
the other covered vendors (Huawei, ZTE, Hytera) named in research/signatures.md §3 and
research/covered_vendor_oui.tsv, and writes one row per prefix.

    .venv/bin/python seeds/gen_camera_vendor_oui.py > seeds/camera_vendor_oui.tsv

Options: `--registry PATH` (default: `netaddr/eui/oui.txt` of the installed netaddr),
`--date YYYY-MM-DD` (the snapshot date written in the header; default today).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import date
from importlib import metadata, resources
from pathlib import Path

SOURCE_KEY = "IEEE-MAL"
REGISTRY_LINE = re.compile(r"^([0-9A-F]{6})\s+\(base 16\)\s+(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Group:
    """Registrants (full-match regex, case-insensitive) that form one vendor grouping."""

    pattern: str
    vendor: str
    camera_vendor: bool
    confidence: str  # of the grouping; the prefix itself is the registry's (high)


GROUPS = (
    Group(r"Hangzhou Hikvision Digital Technology Co\.,Ltd\.", "Hikvision", True, "high"),
    Group(r"Prama Hikvision India Private Limited", "Hikvision", True, "high"),
    Group(r"Hangzhou Ezviz Software Co\.,Ltd\.", "Hikvision", True, "high"),
    Group(r"Hangzhou Hikrobot Technology Co\., Ltd\.", "Hikvision", True, "high"),
    Group(r"Zhejiang Dahua Technology Co\., Ltd\.", "Dahua", True, "high"),
    Group(r"ZHEJIANG DAHUA TECHNOLOGYCO\.,LTD", "Dahua", True, "high"),
    # signatures.md §3: Huacheng (Imou/LeChange) in the Dahua group is a Guess, not verified.
    Group(r"Hangzhou Huacheng Network Technology Co\.,? ?Ltd", "Dahua", True, "guess"),
    Group(r"Zhejiang Uniview Technologies Co\., ?Ltd\.", "Uniview", True, "high"),
    # consumer and small-business camera makers whose registrants make cameras, video
    # doorbells and recorders only (checked per registrant; mixed makers such as Axis, with
    # speakers and door controllers, or Ring, with alarms and chimes, stay out: their MAC
    # prefixes are weak hints in device_fingerprints.yaml)
    Group(r"Reolink Innovation Limited", "Reolink", True, "med"),
    Group(r"Amcrest Technologies", "Amcrest", True, "med"),
    Group(r"Bird Home Automation GmbH", "DoorBird", True, "med"),
    Group(r"Canary Connect, Inc\.", "Canary", True, "med"),
    Group(r"SKYBELL, INC|SkyBell Technologies Inc\.", "SkyBell", True, "med"),
    Group(r"Zmodo Technology Corporation", "Zmodo", True, "med"),
    Group(r"Lorex Technology Inc\.", "Lorex", True, "med"),
    Group(r"Swann communications Pty Ltd", "Swann", True, "med"),
    Group(r"Shanghai Xiaoyi Technology Co\., Ltd\.", "Yi", True, "med"),
    Group(r"Hanwha Techwin.*|SAMSUNG TECHWIN CO\.,LTD", "Hanwha", True, "med"),
    Group(r"Hytera Communications .*", "Hytera", False, "high"),
    Group(r"Huawei .*", "Huawei", False, "high"),
    Group(r"zte corporation", "ZTE", False, "high"),
)
COLUMNS = ("oui", "vendor", "registrant", "camera_vendor", "source", "confidence")


@dataclass(frozen=True, slots=True)
class Row:
    oui: str
    vendor: str
    registrant: str
    camera_vendor: bool
    confidence: str

    def tsv(self) -> str:
        flag = "yes" if self.camera_vendor else "no"
        cells = (self.oui, self.vendor, self.registrant, flag, f"[{SOURCE_KEY}]", self.confidence)
        return "\t".join(cells)


def default_registry() -> Path:
    return Path(str(resources.files("netaddr.eui").joinpath("oui.txt")))


def read_registry(path: Path) -> list[tuple[str, str]]:
    """(AA:BB:CC, registrant) for every MA-L entry of an IEEE `oui.txt`."""
    out: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = REGISTRY_LINE.match(line)
        if m:
            hexa = m.group(1)
            out.append((f"{hexa[0:2]}:{hexa[2:4]}:{hexa[4:6]}", m.group(2)))
    return out


def select(entries: list[tuple[str, str]]) -> list[Row]:
    """The rows of covered vendors, camera makers first, then by vendor and prefix."""
    compiled = [(re.compile(g.pattern, re.IGNORECASE), g) for g in GROUPS]
    rows = [
        Row(oui, g.vendor, registrant, g.camera_vendor, g.confidence)
        for oui, registrant in entries
        for rx, g in compiled
        if rx.fullmatch(registrant)
    ]
    return sorted(rows, key=lambda r: (not r.camera_vendor, r.vendor, r.oui))


def render(rows: list[Row], total: int, version: str, snapshot: date) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.vendor] = counts.get(r.vendor, 0) + 1
    summary = ", ".join(f"{v} {n}" for v, n in counts.items())
    header = f"""\
# camera_vendor_oui.tsv: IEEE MA-L (24-bit OUI) prefixes of camera/NVR makers and of the
# other covered vendors. GENERATED by seeds/gen_camera_vendor_oui.py: do not edit by hand.
# Regenerate: .venv/bin/python seeds/gen_camera_vendor_oui.py > seeds/camera_vendor_oui.tsv
# snapshot: {snapshot.isoformat()} (generation date; the registry copy itself carries no date)
# sources:
#   [{SOURCE_KEY}] IEEE MA-L registry as shipped in PyPI netaddr {version}, netaddr/eui/oui.txt
#       ({total} MA-L entries); vendor groupings from ../shared/research/signatures.md §3
#       and ../shared/research/covered_vendor_oui.tsv.
# Columns: oui (AA:BB:CC); vendor (our grouping: the Hikvision group includes Prama Hikvision,
# EZVIZ and Hikrobot); registrant (verbatim from the IEEE registry); camera_vendor (yes = a
# camera/NVR maker, no = another covered vendor: Huawei, ZTE, Hytera); source; confidence
# (of the vendor grouping: Hangzhou Huacheng (Imou) in the Dahua group is a Guess there).
# Not covered: Xiongmai has no MA-L, MA-M or MA-S assignment at all (signatures.md §3), so
# MAC prefixes cannot find Xiongmai/XMEye OEM cameras. MA-M/MA-S blocks are not in netaddr
# (e.g. Hikrobot's MA-M B0:B3:53:6). OEM relabels (Amcrest, LTS, ...) are not verified.
# Rows: {len(rows)} ({summary}).
"""
    return header + "\t".join(COLUMNS) + "\n" + "".join(r.tsv() + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=None, help="an IEEE oui.txt")
    parser.add_argument("--date", type=date.fromisoformat, default=date.today())
    args = parser.parse_args(argv)
    registry: Path = args.registry or default_registry()
    entries = read_registry(registry)
    version = metadata.version("netaddr")
    sys.stdout.write(render(select(entries), len(entries), version, args.date))
    return 0


if __name__ == "__main__":
    sys.exit(main())
