"""``upnp_port_mapping``: a camera asks the router to open a port to itself.

Fires when a camera sends a UPnP IGD ``AddPortMapping`` request (SOAP over HTTP) or a
NAT-PMP/PCP mapping request (payload signatures of ``seeds/payload_signatures.yaml``): the
camera is trying to become reachable from the internet, as some vendors' guides ask for.
Evidence: the signature ids, the router it asked. An SSDP search for an internet gateway
(multicast) only finds the router and is not reported. Known false positives: none for a
camera; disable UPnP on the camera (and the router).

Options (``rules.upnp_port_mapping``, ``groups.<name>.rules.upnp_port_mapping``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netwatch.alerts.model import RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class UpnpPortMapping(Rule):
    """A camera requests a port mapping from the router."""

    needs_app = True  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        sigs = facts.payload_signatures(self.id)
        if not sigs or not facts.device_is_orig:
            return
        if ipaddress.ip_address(facts.peer.ip).is_multicast:
            return  # an SSDP search for a gateway finds the router; asking it is unicast
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} asked {facts.record['id.resp_h']} to open a port ({sigs[0].id})",
            {"signatures": [s.id for s in sigs], "router": facts.record["id.resp_h"]},
        )
