"""Which deep parser a payload reaches: the registry's port claims, ranks and magic.

Real frames through the real decoder, flow table and inspector (the harness of
``test_inspect``). The last test adds a parser class to the inspector's set and shows a
payload reaches it with no change to the inspector: dispatch goes through the registry.
"""

from __future__ import annotations

from typing import ClassVar

from netwatch.decode.frames import Decoder
from netwatch.deep import BUILTIN_PARSERS, PARSERS
from netwatch.deep.base import Context, DeepParser
from netwatch.enrich.names import PassiveDns
from netwatch.flow.ids import UidSource
from netwatch.flow.inspect import Inspector
from netwatch.flow.table import PROTO_UDP, EndReason, Flow, FlowSettings, FlowTable
from netwatch.testing import pcapgen as g
from tests.deep.discovery.builders import sadp_probe_match
from tests.flow.test_inspect import run

CAM = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "02:4e:56:00:00:0a", "10.20.0.10")


def test_a_dns_port_wins_over_a_discovery_port_on_the_other_end() -> None:
    frames = [
        g.udp_frame(CAM, 5353, 37020, g.dns_query(1, "cam.local")),
        g.udp_frame(CAM, 5354, 37020, sadp_probe_match()),
    ]
    flows, inspector = run(frames)
    by_port = {min(f.orig_p, f.resp_p): f for f in flows}
    assert inspector.parsed == {"dns": 1, "discovery_sadp": 1}
    assert by_port[5353].orig_p == 37020  # 5353/udp is a likely server port: flipped
    assert by_port[5353].app is not None and by_port[5353].app["service"] == ["dns"]
    assert by_port[5354].app is not None and by_port[5354].app["service"] == ["sadp"]


def test_unclaimed_udp_gets_one_look_per_direction_unless_a_parser_wants_more() -> None:
    """RTP audio: the codec from the first packet; a second one of the same stream (the RTP
    parser asks for it) names the flow ``rtp``; then the direction's inspection ends."""

    def rtp(seq: int) -> bytes:  # version 2, payload type 8 (PCMA), SSRC 7
        return bytes([0x80, 8]) + seq.to_bytes(2, "big") + bytes(4) + b"\0\0\0\x07" + bytes(160)

    frames = [
        g.udp_frame(CAM, 40000, 6000, rtp(1)),
        g.udp_frame(CAM.reverse(), 6000, 40000, rtp(1)),
        g.udp_frame(CAM, 40000, 6000, rtp(2)),
        g.udp_frame(CAM.reverse(), 6000, 40000, rtp(2)),
    ]
    (flow,), _ = run(frames)
    assert flow.app == {"rtp_audio_o": "PCMA", "rtp_audio_r": "PCMA", "service": ["rtp"]}
    assert (flow.deep_o, flow.deep_r) == (0, 0)
    other = b"\x00\x01 no parser knows this"
    (flow,), _ = run([g.udp_frame(CAM, 40000, 6001, other)])
    assert flow.app is None and flow.deep_o == 0


def test_magic_decides_on_any_port_and_unknown_bytes_end_the_direction() -> None:
    tls = g.TcpSession(CAM, 40001, 8443)
    hello = g.tls_client_hello("cam.example", client_random=bytes(32))
    other = g.TcpSession(CAM, 40002, 8000)
    frames = [
        *tls.handshake(),
        tls.segment(True, 0x18, hello),
        *other.handshake(),
        other.segment(True, 0x18, b"\x00\x01binary SDK login"),
    ]
    flows, inspector = run(frames)
    by_port = {f.resp_p: f for f in flows}
    assert inspector.parsed == {"tls_client_hello": 1}
    assert by_port[8443].app is not None and by_port[8443].app["sni"] == "cam.example"
    assert by_port[8000].app is None and by_port[8000].deep_o == 0


def test_a_parser_added_to_the_set_is_dispatched_to_without_touching_the_inspector() -> None:
    class ExampleBeaconParser(DeepParser):
        """A parser only this test knows: UDP 47808, records the first byte."""

        udp_ports: ClassVar[frozenset[int]] = frozenset({47808})

        def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
            ctx.count("example_beacon")
            flow.app_set("beacon", data[0])

    try:
        inspector = Inspector(PassiveDns(), parsers=(*BUILTIN_PARSERS, ExampleBeaconParser))
        ended: list[Flow] = []

        def on_end(f: Flow, reason: EndReason) -> None:
            ended.append(f)

        table = FlowTable(
            FlowSettings(max_payload_packets=8),
            on_end,
            inspect=inspector.payload,
            uids=UidSource(1),
        )
        frame = g.udp_frame(CAM, 40000, 47808, b"\x81beacon")
        decoded = Decoder().decode(1, frame, len(frame), 1.0)
        assert decoded is not None
        table.packet(1.0, decoded)
        table.flush()
        (flow,) = ended
        assert flow.app == {"beacon": 0x81} and inspector.parsed == {"example_beacon": 1}
        assert run([frame])[1].parsed == {}  # the built-in set alone does not know it
    finally:
        PARSERS.pop("example_beacon", None)


def test_payload_signatures_on_udp_run_when_no_server_port_is_claimed() -> None:
    """A UDP payload claimed by the sender's port alone (miIO's 54321 to a cloud's UDP 80)
    still gets a signature lookup on the server port; one whose server port is claimed,
    alone or with the sender's, does not (the parser there decides)."""
    looked: list[tuple[str, int, str]] = []

    def payloads(proto: str, port: int, data: bytes, way: str) -> None:
        looked.append((proto, port, way))

    inspector = Inspector(PassiveDns(), payloads=payloads)
    data = bytes.fromhex("2131002000000000") + bytes(24)
    for (orig_p, resp_p), want in {
        (54321, 80): [("udp", 80, "client"), ("udp", 80, "server")],
        (40000, 54321): [],
        (37020, 5353): [],  # both claimed: DNS's rank wins, no lookup either
        (5353, 37020): [],
    }.items():
        looked.clear()
        flow = Flow((orig_p, resp_p), "C", 0.0, PROTO_UDP)
        flow.orig_h, flow.resp_h = b"\x0a\x14\x00\x0b", b"\x0a\x14\x00\x0a"
        flow.orig_p, flow.resp_p = orig_p, resp_p
        for is_orig in (True, False):
            inspector.payload(flow, is_orig, data, 0, len(data), 0.0)
        assert looked == want, (orig_p, resp_p)
