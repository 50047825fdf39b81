"""Tests for the flow record's per-end facts: each worked out once and handed to the rules."""

from __future__ import annotations

from typing import Any

import pytest

import netwatch.pipeline
from netwatch.alerts.model import Alert
from netwatch.config import Config
from netwatch.enrich.geo import GEO_NONE, GeoInfo, GeoSourceInfo
from netwatch.flow.record import Enrichers, FlowEnds, flow_record_ends, transport_summary
from netwatch.flow.table import Flow
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as pg

CAMERA_MAC = pg.host_mac(pg.HIKVISION_OUIS[0], 1)
HOST_MAC = "02:4e:57:00:00:01"
ROUTER_MAC = "02:00:5e:00:00:01"
CAMERA, HOST, OTHER_HOST = "10.20.1.1", "10.30.0.5", "10.30.0.6"
OUTSIDE, FAR_CAMERA = "89.160.20.112", "89.160.20.113"
ANSWER = GeoInfo("SE", 64500, "Example AB")


class CountingGeo:
    """A GeoIP backend with one answer for every address, noting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def lookup(self, ip_text: str) -> GeoInfo:
        self.asked.append(ip_text)
        return ANSWER

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("counting", "none", None, "")


def frames() -> list[tuple[float, int, int, bytes]]:
    """Three UDP flows: camera -> outside, site host -> site host, outside -> site host."""
    routes = [
        pg.Route.of(CAMERA_MAC, CAMERA, ROUTER_MAC, OUTSIDE),
        pg.Route.of(HOST_MAC, HOST, ROUTER_MAC, OTHER_HOST),
        pg.Route.of(ROUTER_MAC, FAR_CAMERA, HOST_MAC, HOST),
    ]
    out = []
    for i, route in enumerate(routes):
        frame = pg.udp_frame(route, 40_000 + i, 9_000, b"x")
        out.append((1_767_261_600.0 + i, 1, len(frame), frame))
    return out


def replay(
    yaml: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Pipeline, CountingGeo, list[tuple[dict[str, Any], FlowEnds]]]:
    """The flows through a pipeline with detection on; every record with its ends."""
    seen: list[tuple[dict[str, Any], FlowEnds]] = []

    def kept(f: Flow, enr: Enrichers) -> tuple[dict[str, Any], FlowEnds]:
        record, ends = flow_record_ends(f, enr)
        seen.append((record, ends))
        return record, ends

    monkeypatch.setattr(netwatch.pipeline, "flow_record_ends", kept)
    geo = CountingGeo()
    alerts: list[tuple[Alert, int]] = []
    cfg = Config.from_yaml(yaml, file="test.yaml")
    pipe = Pipeline(cfg, lambda r: None, on_alert=lambda a, n: alerts.append((a, n)), geo=geo)
    pipe.run(frames())
    pipe.finish()
    return pipe, geo, seen


def test_each_end_is_worked_out_once_and_handed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, geo, seen = replay("{}", monkeypatch)
    by_orig = {record["id.orig_h"]: (record, ends) for record, ends in seen}
    assert set(by_orig) == {CAMERA, HOST, FAR_CAMERA}
    # GeoIP is asked for the public ends only, once each (site-local ends: never public)
    assert sorted(geo.asked) == [OUTSIDE, FAR_CAMERA]
    assert pipe.enrichers.geo.lookups == 2
    record, ends = by_orig[CAMERA]
    assert ends.orig_camera is not None and ends.orig_camera.name == record["orig_device"]
    assert ends.resp_camera is None
    assert (
        (ends.orig_local, ends.resp_local)
        == (True, False)
        == (
            record["local_orig"],
            record["local_resp"],
        )
    )
    assert (ends.orig_geo, ends.resp_geo) == (GEO_NONE, ANSWER)
    assert record["resp_cc"] == "SE" and record["resp_asn"] == 64500
    record, ends = by_orig[HOST]
    assert ends == FlowEnds(None, None, True, True, GEO_NONE, GEO_NONE)
    record, ends = by_orig[FAR_CAMERA]
    assert (ends.orig_geo, ends.resp_geo) == (ANSWER, GEO_NONE)
    assert record["orig_cc"] == "SE"
    assert record["orig_device"] is None and record["resp_device"] is None


def test_the_inventory_is_asked_only_when_it_lists_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe, _geo, _seen = replay("{}", monkeypatch)
    assert pipe.enrichers.listed is None  # zero-config: no inventory lookup per flow end
    listed = "cameras: [{name: far-cam, ip: " + FAR_CAMERA + ", group: default}]\n"
    pipe, _geo, seen = replay(listed, monkeypatch)
    assert pipe.enrichers.listed is not None
    by_orig = {record["id.orig_h"]: record for record, _ends in seen}
    # outside the site, so not a recognised camera end, but the inventory still names it
    assert by_orig[FAR_CAMERA]["orig_device"] == "far-cam"
    assert by_orig[CAMERA]["resp_device"] is None


def test_udp_fields_are_transport_summarys(monkeypatch: pytest.MonkeyPatch) -> None:
    # the record's UDP case is transport_summary's, inlined: one-way, answered, and flipped
    # (the first datagram from the service port: Zeek's ``^``) flows, both orders of reply
    out = pg.Route.of(HOST_MAC, HOST, ROUTER_MAC, OUTSIDE)
    back = out.reverse()
    datagrams = [
        (out, 40_000, 9_000),  # one-way
        (out, 40_001, 9_001),  # answered
        (back, 9_001, 40_001),
        (back, 53, 40_002),  # flipped, one-way
        (back, 53, 40_003),  # flipped, answered
        (out, 40_003, 53),
        (back, 9_004, 40_004),  # one-way, from the outside
    ]
    frames_ = []
    for i, (route, sport, dport) in enumerate(datagrams):
        frame = pg.udp_frame(route, sport, dport, b"xy")
        frames_.append((1_767_261_600.0 + i, 1, len(frame), frame))
    checked: list[tuple[Any, ...]] = []

    def kept(f: Flow, enr: Enrichers) -> tuple[dict[str, Any], FlowEnds]:
        record, ends = flow_record_ends(f, enr)
        fields = ("orig_bytes", "resp_bytes", "missed_bytes", "conn_state", "history")
        got = tuple(record[k] for k in fields)
        assert got == transport_summary(f)
        checked.append(got[3:])
        return record, ends

    monkeypatch.setattr(netwatch.pipeline, "flow_record_ends", kept)
    pipe = Pipeline(Config.from_yaml("{}", file="test.yaml"), lambda r: None, geo=CountingGeo())
    pipe.run(frames_)
    pipe.finish()
    assert sorted(checked) == sorted(
        [("S0", "D"), ("SF", "Dd"), ("SHR", "^d"), ("SF", "^dD"), ("S0", "D")]
    )
