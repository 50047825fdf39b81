"""``inbound_access``: a host outside the site opens a connection to a camera's service.

Fires only on evidence that the outside host opened the connection and the camera
accepted it (the camera is exposed to the internet, by port forwarding, UPnP or a DMZ):

- TCP: the outside host's SYN answered by the camera's SYN-ACK (history ``S...h...``).
  An RST is never an answer (REJ), and unanswered probes (S0) are not reported: scanners
  knock on every address.
- UDP: the outside host sent first and the camera replied, where the camera's port is a
  likely server port (Zeek's set, :mod:`netwatch.flow.ports`) or the camera had not sent
  from that address and port before (a port the camera used itself, e.g. for a P2P punch
  or a cloud session whose flow timed out, is not a listening service). An outside host
  sending from a server port (Zeek's set, or a camera cloud's such as PPPP 32100 and STUN
  3478) is a server answering a session the camera opened before the sensor saw it.
- A flow picked up mid-stream (history ``^`` or TCP without a SYN) never raises it: who
  opened it is a guess.

Evidence: the port, the connection state and history, the server banner the camera
answered with, bytes each way. State: the camera UDP endpoints that sent, at most
``MAX_ENDPOINTS`` (oldest forgotten first). Known false positives: a VPN concentrator or
remote-viewing service whose public addresses are not in ``site.local_nets``; a UDP reply
from a camera endpoint whose earlier flow ended after this one (flows end out of order).

Options (``rules.inbound_access``, ``groups.<name>.rules.inbound_access``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Final

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.flow.ports import CAMERA_CLOUD_UDP, LIKELY_SERVER_UDP
from netwatch.rules.base import Rule, RuleContext

UNANSWERED = frozenset({"S0", "REJ", "OTH", "RSTOS0", "SH"})
MAX_ENDPOINTS: Final = 65_536


class InboundAccess(Rule):
    """A camera accepts a connection opened from outside the site."""

    def __init__(self, context: RuleContext | None = None) -> None:
        super().__init__(context)
        #: (camera ip, udp port) the camera has sent from, in the order last seen.
        self._udp_senders: OrderedDict[tuple[str, int], None] = OrderedDict()

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        rec = facts.record
        udp_sender_before = False
        if rec["proto"] == "udp":
            udp_sender_before = self._note_udp_sender(facts)
        if facts.direction is not Direction.INBOUND or rec["resp_pkts"] == 0:
            return
        if rec["conn_state"] in UNANSWERED or not _opened_from_outside(facts, udp_sender_before):
            return
        where = f" ({facts.peer.country})" if facts.peer.country else ""
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{rec['id.orig_h']}{where} reached {facts.device.name} on "
            f"{rec['proto']}/{rec['id.resp_p']} and the camera answered",
            {
                "service_port": rec["id.resp_p"],
                "conn_state": rec["conn_state"],
                "history": rec["history"],
                "server": facts.app.get("server"),
                "bytes_to_camera": facts.bytes_down,
                "bytes_from_camera": facts.bytes_up,
            },
        )

    def _note_udp_sender(self, facts: FlowFacts) -> bool:
        """Remember the camera's UDP endpoint if it sent; True if it had sent before."""
        rec = facts.record
        port = int(rec["id.orig_p" if facts.device_is_orig else "id.resp_p"])
        key = (facts.device.ip, port)
        before = key in self._udp_senders
        if rec["orig_pkts" if facts.device_is_orig else "resp_pkts"]:
            self._udp_senders[key] = None
            self._udp_senders.move_to_end(key)
            if len(self._udp_senders) > MAX_ENDPOINTS:
                self._udp_senders.popitem(last=False)
        return before


def _opened_from_outside(facts: FlowFacts, udp_sender_before: bool) -> bool:
    """Evidence that the outside host (the originator) opened this flow."""
    if facts.mid_stream:
        return False
    rec = facts.record
    if rec["proto"] == "tcp":
        history = str(rec["history"])
        return history.startswith("S") and "h" in history  # its SYN, the camera's SYN-ACK
    if rec["proto"] == "udp":
        outside_port = int(rec["id.orig_p"])
        if outside_port in LIKELY_SERVER_UDP or outside_port in CAMERA_CLOUD_UDP:
            return False  # a server's datagram first: the camera's session, joined late
        return int(rec["id.resp_p"]) in LIKELY_SERVER_UDP or not udp_sender_before
    return False
