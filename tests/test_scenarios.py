"""Replay every capture of pcaps/scenarios/ with the zero-config defaults and compare the
notifications, as an exact multiset of (rule, device), against the table below (a rule
written ``a+b`` is a notification of rule ``a`` with ``b``'s finding about the same flow
folded into it: one flow, one notification); and check that the
committed captures still match their generator, byte for byte."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from netwatch.alerts.grouping import members
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay

REPO = Path(__file__).resolve().parents[1]
SCENARIO_DIR = REPO / "pcaps" / "scenarios"
GENERATOR = SCENARIO_DIR / "gen_scenarios.py"

HIK, DAHUA, HIK6 = "10.20.0.11", "10.20.0.13", "fd00:20::11"

EXPECTED: dict[str, list[tuple[str, str]]] = {
    "benign-site.pcap": [],
    "hik-connect-registration.pcap": [("cloud_registration+unexpected_egress", HIK)],
    "hik-ehome-isup.pcap": [("cloud_registration+unexpected_egress", HIK)],
    "dahua-easy4ip.pcap": [
        ("rogue_dns", DAHUA),
        ("cloud_registration+unexpected_egress", DAHUA),
    ],
    "dahua-erspan-vlan.pcap": [
        ("rogue_dns", DAHUA),
        ("cloud_registration+unexpected_egress", DAHUA),
    ],
    "hik-ipv6-cloud.pcap": [("cloud_registration+unexpected_egress", HIK6)],
    "camera-exposed.pcap": [("inbound_access", HIK)],
    "camera-upload.pcap": [("outbound_stream+unexpected_egress", DAHUA)],
}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_scenarios", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_capture_has_an_expectation() -> None:
    assert {p.name for p in SCENARIO_DIR.glob("*.pcap")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_raises_exactly_the_expected_alerts(name: str, tmp_path: Path) -> None:
    path = SCENARIO_DIR / name
    assert path.exists(), "run python pcaps/scenarios/gen_scenarios.py"
    assert path.stat().st_size < 200_000
    out = tmp_path / "a.jsonl"
    summary = run_replay([path], Config.default(), alerts_out=out, geo=NullGeo(), uid_seed=1)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.alerts == len(alerts) and not summary.rule_errors
    got = Counter(  # every report, whether alone or grouped into its camera's notification
        ("+".join([a["rule"], *(f["rule"] for f in a["evidence"].get("folded", ()))]), a["device"])
        for notification in alerts
        for a in members(notification)
    )
    assert got == Counter(EXPECTED[name])


def test_committed_captures_match_their_generator(tmp_path: Path) -> None:
    gen = load_generator()
    gen.write_all(tmp_path)
    for name in EXPECTED:
        fresh = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        committed = hashlib.sha256((SCENARIO_DIR / name).read_bytes()).hexdigest()
        assert fresh == committed, (
            f"{name}: regenerate with python pcaps/scenarios/gen_scenarios.py"
        )


def test_generation_is_deterministic_and_seeded(tmp_path: Path) -> None:
    gen = load_generator()
    gen.write_all(tmp_path / "a")
    gen.write_all(tmp_path / "b")
    gen.write_all(tmp_path / "c", seed=12)
    for name in EXPECTED:
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes()
        assert first != (tmp_path / "c" / name).read_bytes()
