"""``inbound_access``: a host outside the site reaches a camera's service.

Fires when a flow starts outside the site and the camera answers it (a TCP connection the
camera accepted, or UDP it replied to): the camera is exposed to the internet, by port
forwarding, UPnP or a DMZ. Unanswered probes (S0, REJ) are not reported, since scanners
knock on every address. Evidence: the port, the connection state, the server banner the
camera answered with, bytes each way. Known false positives: a VPN concentrator or
remote-viewing service whose public addresses are not in ``site.local_nets``.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

UNANSWERED = frozenset({"S0", "REJ", "OTH", "RSTOS0", "SH"})


class InboundAccess(Rule):
    """A camera answers a connection from outside the site."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        rec = facts.record
        if facts.direction is not Direction.INBOUND or rec["resp_pkts"] == 0:
            return
        if rec["conn_state"] in UNANSWERED:
            return
        where = f" ({facts.peer.country})" if facts.peer.country else ""
        yield facts.alert(
            self.id,
            Severity.HIGH,
            f"{rec['id.orig_h']}{where} reached {facts.device.name} on "
            f"{rec['proto']}/{rec['id.resp_p']} and the camera answered",
            {
                "service_port": rec["id.resp_p"],
                "conn_state": rec["conn_state"],
                "server": facts.app.get("server"),
                "bytes_to_camera": facts.bytes_down,
                "bytes_from_camera": facts.bytes_up,
            },
        )
