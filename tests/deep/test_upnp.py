"""Tests for netwatch.deep.upnp: manufacturer and modelName of a UPnP device description."""

from __future__ import annotations

import socket
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.config import Config
from netwatch.deep.upnp import observe_description, parse_description
from netwatch.enrich.geo import NullGeo
from netwatch.replay import run_replay
from netwatch.testing import pcapgen as g
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples

CAM = socket.inet_aton("10.10.10.58")
PHONE = socket.inet_aton("10.10.10.28")


def description(manufacturer: str, model: str) -> bytes:
    return (
        '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion><device>"
        "<deviceType>urn:schemas-upnp-org:device:Basic:1</deviceType>"
        f"<manufacturer>{manufacturer}</manufacturer><modelName>{model}</modelName>"
        "<modelNumber>B1</modelNumber></device></root>"
    ).encode()


def test_fields_are_read() -> None:
    found = parse_description(description("D-Link", "DCS-930LB"))
    assert found is not None
    assert (found.manufacturer, found.model_name, found.model_number) == (
        "D-Link",
        "DCS-930LB",
        "B1",
    )
    assert found.device_type == "urn:schemas-upnp-org:device:Basic:1"


def test_a_camera_model_names_the_server_end() -> None:
    ctx = Recorder()
    flow = udp_flow(PHONE, 50000, CAM, 8641)  # the viewer fetched rootdesc.xml
    observe_description(ctx, flow, description("D-Link", "DCS-930LB"))
    assert [(h, how) for h, _, how, _ in ctx.seen] == [(CAM, "upnp_model:upnp-ipcam-model")]
    ident = ctx.seen[0][3]
    assert ident is not None and (ident.model, ident.is_camera) == ("DCS-930LB", True)


def test_a_router_or_media_server_is_no_camera() -> None:
    ctx = Recorder()
    flow = udp_flow(PHONE, 50000, CAM, 80)
    observe_description(ctx, flow, description("TP-Link", "Archer C7 Wireless Router"))
    observe_description(ctx, flow, description("Baidu", "Xiaodu Smart Plug"))
    assert ctx.seen == []


def test_not_a_description_and_dtds_are_refused() -> None:
    assert parse_description(b"<html><body>DCS-930L</body></html>") is None
    evil = b'<!DOCTYPE x [<!ENTITY a "b">]>' + description("D-Link", "DCS-930L")
    assert parse_description(evil) is None


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_hostile_bodies_never_raise(manufacturer: str, model: str) -> None:
    observe_description(Recorder(), udp_flow(PHONE, 1, CAM, 2), description(manufacturer, model))
    observe_description(Recorder(), udp_flow(PHONE, 1, CAM, 2), model.encode("utf-8", "replace"))


def test_a_description_served_over_http_makes_the_server_a_camera(tmp_path: Path) -> None:
    """End to end: the HTTP parser hands an XML response body holding a UPnP description to
    the UPnP reader, so a camera that only serves its rootdesc.xml is recognised."""
    phone = g.Route.of("02:00:00:00:00:28", "10.10.10.28", "02:00:00:00:00:58", "10.10.10.58")
    session = g.TcpSession(phone, 50000, 8641)
    body = description("D-Link", "DCS-930LB")
    reply = g.http_response(200, "OK", [("Content-Type", 'text/xml; charset="utf-8"')], body)
    trace = g.Trace()
    ts = trace.add_burst(1_000_000, session.handshake(), 1000)
    ts = trace.add_burst(ts, session.send(True, g.http_request("GET", "/rootdesc.xml", [])), 1000)
    ts = trace.add_burst(ts, session.send(False, reply), 1000)
    trace.add_burst(ts, session.close(True), 1000)
    pcap = tmp_path / "desc.pcap"
    trace.write(pcap)
    summary = run_replay([pcap], Config.default(), geo=NullGeo())
    assert summary.cameras == {"discovery": 1}
    plain = g.TcpSession(phone, 50001, 8641)  # the same body served as text/html: ignored
    html = g.http_response(200, "OK", [("Content-Type", "text/html")], body)
    trace = g.Trace()
    ts = trace.add_burst(1_000_000, plain.handshake(), 1000)
    ts = trace.add_burst(ts, plain.send(True, g.http_request("GET", "/", [])), 1000)
    trace.add_burst(ts, plain.send(False, html), 1000)
    trace.write(pcap)
    assert run_replay([pcap], Config.default(), geo=NullGeo()).cameras == {}
