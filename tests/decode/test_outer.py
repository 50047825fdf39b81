"""A tunnel's outer UDP flow: recorded beside the inner flows, with Zeek's service rules,
kept away from the deep parsers and the fused loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.decode.outer import SIDES_KEY, outer_flow
from netwatch.decode.tunnels import AYIYA, GRE_UDP, TEREDO, OuterHop
from netwatch.enrich.geo import NullGeo
from netwatch.flow.ids import UidSource
from netwatch.flow.table import Flow
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as g

A, B = g.ip_bytes("192.0.2.1"), g.ip_bytes("192.0.2.2")
V6_SRC, V6_DST = g.ip_bytes("2001:0:4137:9e50::1"), g.ip_bytes("2001:4860::68")
ORIGIN = b"\x00\x00\x12\x34" + bytes(4)


def hop(src: bytes, dst: bytes, sport: int, dport: int, tunnel: Any) -> OuterHop:
    d = (src, dst, 17, sport, dport, 60, 0, 0, 0, 0, -1, 32, b"", -1, -1)
    return OuterHop(d, tunnel)


def flow() -> Flow:
    f = Flow((A, B, 3797, 3544, 17), "C1", 1.0, 17)
    f.orig_h, f.resp_h, f.orig_p, f.resp_p = A, B, 3797, 3544
    f.deep_o = f.deep_r = 8
    return f


def services(f: Flow) -> list[str]:
    return list((f.app or {}).get("service", []))


def test_confirmed_at_once_and_kept_from_parsers() -> None:
    f = flow()
    outer_flow(f, hop(A, B, 3797, 3544, AYIYA))
    assert services(f) == ["ayiya"] and (f.deep_o, f.deep_r) == (-1, -1)


def test_teredo_is_confirmed_once_both_sides_carried_it() -> None:
    f = flow()
    outer_flow(f, hop(A, B, 3797, 3544, TEREDO))
    outer_flow(f, hop(A, B, 3797, 3544, TEREDO))
    assert services(f) == [] and f.app is not None and f.app[SIDES_KEY] == 1
    outer_flow(f, hop(B, A, 3544, 3797, TEREDO))
    assert services(f) == ["teredo"]


def test_gre_in_udp_never_gets_a_service() -> None:
    f = flow()
    outer_flow(f, hop(A, B, 3797, 4754, GRE_UDP))
    assert services(f) == [] and f.deep_o == -1


def _udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    udp = g.udp_datagram(src, dst, sport, dport, payload)
    return g.ethernet(b"\x04" * 6, b"\x02" * 6, 0x0800, g.ipv4(src, dst, 17, udp))


def _teredo_capture(path: Path) -> None:
    """A Teredo client (port 3797) talking to a relay on port 32900, both ways, 30 times
    each: the relay's replies come from the relay's port, the inner flow is IPv6 UDP. The
    client's third datagram is malformed (a wrong IPv6 payload length): a plain packet of
    the outer flow, which must not open the flow to the fused loop."""
    trace = g.Trace()
    out6 = g.ipv6(V6_SRC, V6_DST, 17, g.udp_datagram(V6_SRC, V6_DST, 5000, 5001, b"q" * 30))
    back6 = g.ipv6(V6_DST, V6_SRC, 17, g.udp_datagram(V6_DST, V6_SRC, 5001, 5000, b"r" * 50))
    for i in range(30):
        trace.add(1_000_000 + i * 1000, _udp(A, B, 3797, 32900, out6))
        trace.add(1_000_500 + i * 1000, _udp(B, A, 32900, 3797, ORIGIN + back6))
    trace.add(1_002_100, _udp(A, B, 3797, 32900, out6 + b"junk"))
    trace.write(path)


def _records(path: Path, fused: bool, cfg: Config) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    pipe = Pipeline(cfg, recs.append, geo=NullGeo(), uids=UidSource(3))
    cap = open_capture(path)
    if fused:
        pipe.run_capture(cap)
    else:
        pipe.run(cap.packets())
    pipe.finish()
    return recs


@pytest.mark.parametrize("budget", [8, 1])
def test_outer_and_inner_flows_are_both_recorded_fused_or_not(tmp_path: Path, budget: int) -> None:
    """Also with deep inspection off (no payload budget): the fused loop must still leave
    the tunnel's datagrams to the decoder."""
    path = tmp_path / "teredo.pcap"
    _teredo_capture(path)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"deep: {{max_payload_packets: {budget}}}\n")
    cfg = Config.load(cfg_file)
    fused, general = _records(path, True, cfg), _records(path, False, cfg)
    assert fused == general
    by_port = {(r["id.orig_p"], r["id.resp_p"]): r for r in fused}
    outer, inner = by_port[(3797, 32900)], by_port[(5000, 5001)]
    assert outer["service"] == "teredo" and (outer["orig_pkts"], outer["resp_pkts"]) == (31, 30)
    assert outer["orig_bytes"] == 31 * (40 + 8 + 30) + 4 and outer["resp_bytes"] == 30 * (8 + 98)
    assert (inner["orig_pkts"], inner["resp_pkts"]) == (30, 30)
    assert (inner["orig_bytes"], inner["resp_bytes"]) == (30 * 30, 30 * 50)
    assert len(fused) == 2
