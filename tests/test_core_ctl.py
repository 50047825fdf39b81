"""netwatch/_core.c's control letters (first_fin, reset): an endpoint whose last_ctl is still
None (a connection seen from the middle: no SYN made it) gets a new [-1, -1, -1] with the
FIN's sequence number in its slot, so a RST the general path takes afterwards still reads
"no RST before"; records equal to the general path's."""

from __future__ import annotations

from netwatch.corefeed import fast_loop
from netwatch.testing import pcapgen as g
from tests.test_core import _needs_core
from tests.test_corefeed import _general_too

__all__ = ["_needs_core"]  # the fixture this module uses

ROUTE = g.Route.of("bc:ad:28:00:00:08", "10.0.7.5", "00:11:22:33:44:58", "10.0.7.9")


def test_a_mid_stream_fin_in_c_then_the_senders_rst() -> None:
    s = g.TcpSession(ROUTE, 40100, 8554, client_isn=5_000, server_isn=9_000)
    frames: list[bytes] = []
    for _ in range(3):
        frames += s.send(True, b"c" * 200)
        frames += s.send(False, b"s" * 300)
    frames.append(s.segment(True, g.TcpFlag.FIN | g.TcpFlag.ACK))
    frames.append(s.ack(False))
    frames.append(s.reset(True))
    timed = [(300.0 + i * 0.001, frame) for i, frame in enumerate(frames)]
    fins = fast_loop().first_fins
    fused, general = _general_too(timed)
    assert fused == general
    assert fast_loop().first_fins > fins  # the FIN was C's, with last_ctl None before it
    assert len(fused) == 1 and fused[0]["history"].count("R") == 1
