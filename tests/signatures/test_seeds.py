"""The shipped seed files: they load, every entry is sourced, and the OUI table is current."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from netwatch.signatures import Signatures, model
from netwatch.signatures import loader as seedio

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared"
COVERED = SHARED / "research" / "covered_vendor_oui.tsv"
DESIGN = SHARED / "DESIGN.md"
SIGS = Signatures.load(SEEDS)
YAML_FILES = (
    model.ENDPOINTS_FILE,
    model.PAYLOADS_FILE,
    model.FINGERPRINTS_FILE,
    model.DISCOVERY_FILE,
)
ALL_FILES = (*YAML_FILES, model.OUI_FILE)
VENDORS = frozenset(
    {"Hikvision", "Dahua", "Xiongmai", "Uniview", "Tuya", "TP-Link", "Huawei", "ZTE", "Hytera"}
    | {"HiSilicon OEM", "any"}
    # consumer camera clouds and P2P platforms (issue 10)
    | {"CS2 Network", "ThroughTek", "Xiaomi", "Yi", "D-Link", "Amazon", "Arlo", "Eufy", "Wyze"}
    | {"Reolink", "Amcrest", "Zmodo", "Yoosee", "V380"}
    # consumer-camera vendors of issue 10 (LAN fingerprints, discovery protocols)
    | {"Edimax", "Ednet", "Cellvision"}
    # consumer-camera LAN fingerprints from Home Assistant discovery matchers (lanfp)
    | {"Axis", "Nest", "Netatmo", "Ubiquiti"}
    # camera-only makers of the MAC prefix table (IEEE registrants; seeds/gen_camera_vendor_oui.py)
    | {"DoorBird", "Canary", "SkyBell", "Lorex", "Swann", "Hanwha"}
)
YamlEntry = (
    model.CloudEndpoint | model.PayloadSignature | model.Fingerprint | model.DiscoveryProtocol
)
Entry = YamlEntry | model.VendorOui


def yaml_entries() -> list[YamlEntry]:
    return [*SIGS.endpoints, *SIGS.payloads, *SIGS.fingerprints, *SIGS.discovery]


def test_every_seed_file_loads() -> None:
    counts = {
        "endpoints": len(SIGS.endpoints),
        "payloads": len(SIGS.payloads),
        "fingerprints": len(SIGS.fingerprints),
        "discovery": len(SIGS.discovery),
        "ouis": len(SIGS.ouis),
    }
    assert all(n > 0 for n in counts.values()), counts
    assert set(SIGS.snapshots) == set(ALL_FILES)


def test_every_entry_has_source_and_confidence() -> None:
    entries: list[Entry] = [*yaml_entries(), *SIGS.ouis]
    for entry in entries:
        assert entry.source.strip(), entry
        assert entry.confidence in seedio.CONFIDENCES, entry
        assert entry.vendor in VENDORS, entry


def test_guesses_say_so() -> None:
    """signatures.md marks guesses as such; so does every `guess` entry here, in its note."""
    for entry in yaml_entries():
        if entry.confidence == "guess":
            assert "GUESS" in entry.note, entry.id


@pytest.mark.parametrize("name", ALL_FILES)
def test_header_sources_are_all_cited(name: str) -> None:
    text = (SEEDS / name).read_text(encoding="utf-8")
    header = seedio.read_header(text, name)
    assert header.source_keys, "the header names no [KEY] sources"
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert header.source_keys <= set(seedio.regex(seedio.CITE_RE).findall(body))
    assert "signatures.md" in text.split("\n\n", 1)[0] or name == model.OUI_FILE


def test_rule_ids_are_the_design_contract() -> None:
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} is absent (the rule-id table lives there)")
    table = DESIGN.read_text(encoding="utf-8").split("**Rule ids**", 1)[1].split("\n\n", 1)[0]
    assert tuple(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)) == seedio.RULE_IDS


# ---------------------------------------------------------------- the OUI table


def _covered_rows() -> list[list[str]]:
    if not COVERED.is_file():
        pytest.skip(f"{COVERED} is absent (the research OUI table lives in ../shared)")
    lines = COVERED.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


CAMERA_GROUPS = ("Hikvision", "EZVIZ", "Hikrobot", "Dahua", "Huacheng", "Uniview")


def test_every_covered_camera_vendor_oui_is_present() -> None:
    ours = {o.oui: o for o in SIGS.ouis}
    camera = [r for r in _covered_rows() if r[0].startswith(CAMERA_GROUPS)]
    assert len(camera) == 109
    for vendor, oui, registrant, *_ in camera:
        assert oui in ours, (vendor, oui)
        assert ours[oui].camera_vendor, oui
        assert ours[oui].registrant == registrant
        assert ours[oui].vendor in ("Hikvision", "Dahua", "Uniview")


#: Camera-only makers added beyond research/covered_vendor_oui.tsv (issue 10).
CONSUMER_CAMERA_MAKERS = frozenset(
    {"Reolink", "Amcrest", "DoorBird", "Canary", "SkyBell", "Zmodo", "Lorex", "Swann", "Yi"}
    | {"Hanwha"}
)


def test_consumer_camera_makers_are_camera_vendors() -> None:
    consumer = [o for o in SIGS.ouis if o.vendor in CONSUMER_CAMERA_MAKERS]
    assert {o.vendor for o in consumer} == CONSUMER_CAMERA_MAKERS
    assert all(o.camera_vendor and o.confidence == "med" for o in consumer)
    assert {o.oui for o in consumer} >= {"EC:71:DB", "9C:8E:CD", "04:5C:06", "58:70:C6"}


def test_other_covered_vendors_are_present_and_not_camera_makers() -> None:
    ours = {o.oui: o for o in SIGS.ouis if o.vendor not in CONSUMER_CAMERA_MAKERS}
    rows = _covered_rows()
    assert {r[1] for r in rows} == set(ours)
    for vendor, oui, *_ in rows:
        if not vendor.startswith(CAMERA_GROUPS):
            assert (ours[oui].vendor, ours[oui].camera_vendor) == (vendor, False)


def test_xiongmai_has_no_prefix_and_the_header_says_so() -> None:
    assert not [o for o in SIGS.ouis if o.vendor == "Xiongmai"]
    assert "Xiongmai has no MA-L" in (SEEDS / model.OUI_FILE).read_text(encoding="utf-8")


def test_oui_table_is_what_the_generator_makes_from_the_installed_netaddr() -> None:
    text = (SEEDS / model.OUI_FILE).read_text(encoding="utf-8")
    shipped = re.search(r"PyPI netaddr (\S+),", text)
    assert shipped is not None
    if shipped.group(1) != metadata.version("netaddr"):
        pytest.skip(f"table made from netaddr {shipped.group(1)}; regenerate for the installed one")
    snapshot = SIGS.snapshots[model.OUI_FILE].isoformat()
    script = SEEDS / "gen_camera_vendor_oui.py"
    out = subprocess.run(
        [sys.executable, str(script), "--date", snapshot],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == text
