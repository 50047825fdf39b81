"""``unexpected_egress``: a camera talks to a destination outside its group's allow-list.

Fires for flows a camera opens to a host outside the site that its group does not allow
(by network, name seen on the wire, country, AS number or port; the default group allows
nothing outside ``site.local_nets``). DNS lookups (port 53) are left to ``rogue_dns``, and
ICMP error messages the camera sends back (destination/port unreachable for a late DNS
answer, time exceeded) are skipped: they react to the peer's traffic, they are not egress.
Evidence: destination, name, country/AS, port, bytes each way, connection state, group.
Known false positives: NTP, firmware or licence checks the site accepts; allow them per
group (``allow_names``, ``allow_ports: [udp/123]``, ``allow_nets``).

Options (``rules.unexpected_egress``, ``groups.<name>.rules.unexpected_egress``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

DNS_PORT = 53


class UnexpectedEgress(Rule):
    """A camera reaches a destination its group does not allow."""

    directions = frozenset({Direction.OUTBOUND})  # its first check
    dns_peer = False  # its first check too

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if facts.direction is not Direction.OUTBOUND or facts.peer.port == DNS_PORT:
            return
        if facts.icmp_error:
            return
        if facts.policy.allows(facts.peer):
            return
        peer = facts.peer.name or facts.record["id.resp_h"]
        where = f" ({facts.peer.country})" if facts.peer.country else ""
        yield facts.finding(
            self.id,
            Severity.MEDIUM,
            f"{facts.device.name} talked to {peer}{where} on {facts.peer.proto}/"
            f"{facts.peer.port}, outside what group {facts.policy.group!r} allows",
            {
                "group": facts.policy.group,
                "conn_state": facts.record["conn_state"],
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
                "duration_s": facts.record["duration"],
                "server_name": facts.app.get("sni"),
                "http_host": facts.app.get("http_host"),
            },
        )
