"""A tunnel's outer UDP flow: what the pipeline does with each ``Decoder.outer`` hop.

The decoder queues the outer datagram of every UDP tunnel it decapsulates
(:class:`~netwatch.decode.tunnels.OuterHop`); the pipeline accounts it as a packet of its own
flow (Zeek logs the outer connection beside the inner ones) and then calls
:func:`outer_flow` on that flow, which

- keeps the flow away from the deep parsers and from the fused loop (both budgets -1: the
  flow table inspects only a positive budget, :mod:`netwatch.fastloop` fuses only a zero
  one), so every later datagram of the tunnel is decoded and its inner packet accounted;
- gives the flow its tunnel as ``service`` under Zeek's confirmation rule: at once, or for
  Teredo once both directions carried a valid tunnel header (the directions seen are kept in
  ``flow.app["tunnel_sides"]``, two bits).

Config read: none.
"""

from __future__ import annotations

from netwatch.decode.tunnels import Confirm, OuterHop
from netwatch.deep.base import service
from netwatch.flow.table import Flow

SIDES_KEY = "tunnel_sides"
_BOTH = 0b11


def outer_flow(f: Flow, hop: OuterHop) -> None:
    """Mark ``f`` (the flow ``hop.d`` was accounted to) as a tunnel's outer flow."""
    f.deep_o = f.deep_r = -1
    tunnel = hop.tunnel
    if tunnel.service is None or tunnel.confirm is Confirm.NEVER:
        return
    if tunnel.confirm is Confirm.BOTH_SIDES:
        d = hop.d
        side = 1 if d[0] == f.orig_h and d[3] == f.orig_p else 2
        app = f.app
        if app is None:
            app = f.app = {}
        sides = app.get(SIDES_KEY, 0) | side
        app[SIDES_KEY] = sides
        if sides != _BOTH:
            return
    service(f, tunnel.service)
