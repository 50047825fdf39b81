"""``nat_traversal``: a camera runs NAT traversal (STUN, vendor STUN variants, NAT-PMP/PCP).

Fires when a camera's flow carries a payload signature of ``seeds/payload_signatures.yaml``
tied to NAT traversal: RFC 5389 STUN (magic cookie), Dahua's bit-inverted STUN, EZVIZ's
XML "STUN", NAT-PMP/PCP requests. NAT traversal is how a P2P camera makes itself
reachable from outside without port forwarding. Evidence: the signature ids, vendor,
direction, peer. Known false positives: WebRTC-capable cameras or apps on the same host;
allow the peer in the group's policy if the site accepts it.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class NatTraversal(Rule):
    """A camera's traffic carries NAT-traversal messages."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        sigs = facts.payload_signatures(self.id)
        if not sigs or not facts.device_is_orig:
            return
        yield facts.alert(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} runs NAT traversal ({sigs[0].vendor}: {sigs[0].id}) with "
            f"{facts.peer.name or facts.record['id.resp_h']}",
            {"signatures": [s.id for s in sigs], "vendors": sorted({s.vendor for s in sigs})},
        )
