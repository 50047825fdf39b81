"""``nat_traversal``: a camera runs NAT traversal (STUN, vendor STUN variants, P2P hole punching).

Fires when a camera's flow carries a payload signature of ``seeds/payload_signatures.yaml``
tied to NAT traversal: RFC 5389 STUN (magic cookie), Dahua's bit-inverted STUN, EZVIZ's
XML "STUN", NAT-PMP/PCP requests. Also when the camera punches a hole to, or relays
through, a peer outside the site with CS2 Network PPPP (:mod:`netwatch.deep.pppp`:
PUNCH_PKT, P2P_RDY; high), relays through PPPP relay servers (RLY_*; high, one alert per
camera as it probes many relays: the alert names the first), or sends PPPP P2P session
messages (DRW data, keep-alives) to such a peer whose punch was not seen (medium): the
evidence names the platform (``platform``), the messages, the device ID and the punched
address. ThroughTek Kalay (:mod:`netwatch.deep.kalay`: KNOCK, P2P requests, relay
messages, session data) is read the same way. NAT
traversal is how a P2P camera makes itself reachable from outside without port
forwarding. PPPP between a camera and an app on the LAN (LAN search, punch, video) is not
NAT traversal and raises nothing. Known false positives: WebRTC-capable cameras or apps
on the same host; allow the peer in the group's policy if the site accepts it.

Options (``rules.nat_traversal``, ``groups.<name>.rules.nat_traversal``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Direction, RuleAlert, Severity
from netwatch.deep.kalay import P2pFlow, p2p_of, platform_of
from netwatch.deep.pppp import Kind
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class NatTraversal(Rule):
    """A camera's traffic carries NAT-traversal messages."""

    needs_app = True  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        p2p = p2p_of(facts.app)
        if p2p is not None and facts.direction is not Direction.LOCAL:
            alert = self._p2p(facts, p2p)
            if alert is not None:
                yield alert
                return
        sigs = facts.payload_signatures(self.id)
        if not sigs or not facts.device_is_orig:
            return
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} runs NAT traversal ({sigs[0].vendor}: {sigs[0].id}) with "
            f"{facts.peer.name or facts.record['id.resp_h']}",
            {
                "signatures": [s.id for s in sigs],
                "vendors": sorted({s.vendor for s in sigs}),
                "platform": next((s.vendor for s in sigs if s.vendor != "any"), None),
            },
        )

    def _p2p(self, facts: FlowFacts, p2p: P2pFlow) -> Alert | None:
        """Hole punching or relaying by the camera, or a P2P session, with an outside peer."""
        names, kinds = p2p.sent(facts.device_is_orig)
        relay_only = False
        if Kind.TRAVERSAL in kinds:
            severity, what = Severity.HIGH, "runs NAT traversal"
        elif Kind.RELAY in kinds:
            severity, what, relay_only = Severity.HIGH, "relays P2P traffic", True
        elif names and Kind.SESSION in p2p.kinds and Kind.REGISTER not in p2p.kinds:
            severity, what = Severity.MEDIUM, "keeps a P2P session"
        else:
            return None  # a server flow (cloud_registration's), or the camera said nothing
        if facts.policy.allows(facts.peer):
            return None
        sigs = facts.payload_signatures(self.id)
        peer = f"{facts.peer.name or facts.record['id.resp_h']}"
        where = f"relay servers (first: {peer}:{facts.peer.port})" if relay_only else peer
        platform = platform_of(p2p)
        return facts.alert(
            self.id,
            severity,
            f"{facts.device.name} {what} ({platform}: {', '.join(names[:3])}) with {where}",
            {
                **p2p.evidence(),
                "signatures": [s.id for s in sigs],
                "vendors": sorted({platform} | {s.vendor for s in sigs}),
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
                "relay": f"{facts.record['id.resp_h']}:{facts.peer.port}" if relay_only else None,
            },
            # a camera probes many relay servers: one alert per camera, not per relay
            peer=not relay_only,
        )
