"""netwatch/_core.c's flow-key handling in the fast loop: the raw key (addresses ordered and
copied at their length) and the key cache's comparison of it (all five 8-byte words), on
IPv6 flows whose keys differ only in their last word, and on IPv4 and IPv6 flows whose
addresses differ only in their last byte; records equal to the general path's."""

from __future__ import annotations

from netwatch.corefeed import fast_loop
from netwatch.testing import pcapgen as g
from tests.test_core import _needs_core
from tests.test_corefeed import _general_too

__all__ = ["_needs_core"]  # the fixture this module uses

CLIENT_MAC, SERVER_MAC = "bc:ad:28:00:00:07", "00:11:22:33:44:57"


def _run(routes: list[g.Route], rounds: int) -> list[dict[str, object]]:
    """UDP from each route's client, `rounds` times over, interleaved; the C loop's records,
    after checking them against the general path's."""
    frames = [
        g.udp_frame(route, 41000, 5683, b"q" * (1 + (i + r) % 40))
        for r in range(rounds)
        for i, route in enumerate(routes)
    ]
    timed = [(200.0 + i * 0.0001, frame) for i, frame in enumerate(frames)]
    hits = fast_loop().key_hits
    fused, general = _general_too(timed)
    assert fused == general
    assert fast_loop().key_hits > hits
    return fused


def test_ipv6_keys_differing_only_in_their_last_word_stay_apart() -> None:
    """The higher address's last six bytes are the raw key's last word: 3,000 servers that
    differ only there share the 4,096 cache entries (many land on an entry another key
    filled), and every packet still reaches its own flow."""
    routes = [
        g.Route.of(CLIENT_MAC, "2001:db8::1", SERVER_MAC, f"2001:db8:0:0:ff00::{i + 1:x}")
        for i in range(3000)
    ]
    fused = _run(routes, 3)
    assert len(fused) == 3000
    assert all(rec["orig_pkts"] == 3 for rec in fused)


def test_addresses_ordered_at_their_length() -> None:
    """Clients above and below their server in the last byte only (the key's direction), over
    IPv4 and IPv6: each flow keeps its originator and counts both ways' packets."""
    servers = {4: "10.9.0.128", 6: "fd00::80"}
    routes = []
    for version, server in servers.items():
        for low in (1, 127, 129, 254):
            client = f"10.9.0.{low}" if version == 4 else f"fd00::{low:x}"
            out = g.Route.of(CLIENT_MAC, client, SERVER_MAC, server)
            routes += [out, out.reverse()]
    fused = _run(routes, 3)
    assert len(fused) == 16
    assert all(rec["orig_pkts"] == 3 and rec["resp_pkts"] == 0 for rec in fused)
