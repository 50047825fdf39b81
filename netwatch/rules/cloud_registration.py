"""``cloud_registration``: a camera registers with, or keeps a session to, a vendor cloud.

Fires for a camera's outbound flow when the name it asked for (TLS SNI, HTTP Host, or the
passive-DNS name of the address, remembered across flows, so a hard-coded resolver or an
address learned earlier in the capture does not hide it) is a vendor cloud/P2P endpoint
of ``seeds/cloud_endpoints.yaml``, or when its payload carries a registration signature of
``seeds/payload_signatures.yaml`` (ISUP/EHome ``PPVSPMessage``, Dahua ``DHGET``/``DHPOST``,
EZVIZ CAS, Xiongmai JSON, ...). A port-only match (a vendor's registration port, nothing
else, from an endpoint whose confidence is high or med) is reported at lower severity.
A camera that sends CS2 Network PPPP server messages (hello, device login, ...; recognised by
:mod:`netwatch.deep.pppp` whatever the port) registers with a PPPP P2P server: the alert
names the platform (``platform``), the messages, the device ID and the public address the
server reported, and the endpoint of the server's name when it is known (Xiaomi's
``p2psy*.io.mi.com``, ...). ThroughTek Kalay master and rendezvous exchanges
(:mod:`netwatch.deep.kalay`) are reported the same way, with the Kalay messages and UID.
Evidence: the endpoint/signature ids, their vendor, source confidence, the name and how it
was seen; ``platform`` is ``<vendor> cloud`` (the incident: one per camera and vendor cloud,
whichever of its hosts and addresses it reaches). Known false positives: sites that use
the vendor cloud on purpose (allow the names in the group's ``allow_names``: the rule then
stays quiet), and port-only matches on shared ports.

Options (``rules.cloud_registration``, ``groups.<name>.rules.cloud_registration``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.deep.kalay import P2pFlow, p2p_of, platform_of
from netwatch.deep.pppp import Kind
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

#: A vendor port alone is evidence only when its source is solid (not low or guess).
PORT_ONLY_CONFIDENCE = frozenset({"high", "med"})


class CloudRegistration(Rule):
    """A camera talks to a vendor cloud / P2P service."""

    directions = frozenset({Direction.OUTBOUND})  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if facts.direction is not Direction.OUTBOUND:
            return
        app = facts.app  # empty for most flows (nothing a deep parser spoke about)
        p2p = p2p_of(app) if app else None
        if p2p is not None and Kind.REGISTER in p2p.sent(facts.device_is_orig)[1]:
            yield from self._p2p(facts, p2p)
            return
        if facts.signatures is None:
            return
        sigs = facts.signatures
        seen = (
            (app.get("sni"), app.get("http_host"), facts.peer.name) if app else (facts.peer.name,)
        )
        names = [n for n in seen if n]
        endpoint = next((e for e in map(sigs.match_name, names) if e is not None), None)
        payloads = facts.payload_signatures(self.id) if app else []
        by_port = [
            e
            for e in sigs.endpoints_for_port(facts.peer.proto, facts.peer.port)
            if e.confidence in PORT_ONLY_CONFIDENCE
        ]
        if endpoint is None and not payloads and not by_port:
            return
        if facts.policy.allows(facts.peer) and (facts.peer.name or not by_port):
            return  # the group allows this cloud by name, network, country or AS
        strong = endpoint is not None or bool(payloads)
        service = endpoint or (by_port[0] if by_port else None)
        vendor = service.vendor if service is not None else payloads[0].vendor
        if service is None:
            label = f"{payloads[0].vendor} ({payloads[0].id})"
        elif service.vendor.lower() in service.service.lower():
            label = service.service
        else:
            label = f"{service.vendor} {service.service}"
        yield facts.finding(
            self.id,
            Severity.HIGH if strong else Severity.MEDIUM,
            f"{facts.device.name} talks to {label}"
            f" ({facts.peer.name or facts.record['id.resp_h']})",
            {
                "endpoint": endpoint.id if endpoint else None,
                "endpoint_confidence": endpoint.confidence if endpoint else None,
                "payload_signatures": [p.id for p in payloads],
                "port_match": [e.id for e in by_port],
                "names_seen": names,
                "platform": f"{vendor} cloud",
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
            },
        )

    def _p2p(self, facts: FlowFacts, p2p: P2pFlow) -> Iterator[RuleAlert]:
        """The camera logs in to (or says hello to) a CS2 PPPP or Kalay P2P server."""
        if facts.policy.allows(facts.peer):
            return  # the group allows this cloud by name, network, country or AS
        name = facts.peer.name
        endpoint = facts.signatures.match_name(name) if facts.signatures and name else None
        operator = f", {endpoint.vendor}" if endpoint is not None else ""
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} registers with a {platform_of(p2p)} P2P server"
            f" ({name or facts.record['id.resp_h']}{operator})",
            {
                **p2p.evidence(),
                "endpoint": endpoint.id if endpoint else None,
                "endpoint_confidence": endpoint.confidence if endpoint else None,
                "names_seen": [name] if name else [],
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
            },
        )
