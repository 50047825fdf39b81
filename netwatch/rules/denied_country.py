"""``denied_country``: a camera talks to a network in a country or AS its group denies.

Fires in either direction (a camera reaching out, or reached from) when the peer's GeoIP
country is in ``deny_countries`` or its AS in ``deny_asns`` of the camera's group, even if
the destination is otherwise allowed. Local and special addresses are never looked up, so
they never match. Evidence: the country/AS that matched, the data source's answer, bytes.
The incident is the camera and the denied country (or AS): the rotating addresses of
one country are one alert listing its peers. ICMP error messages the camera sends back
(port unreachable for a late answer) are skipped: the peer's own flow is reported.
Known false positives: GeoIP errors (anycast, CDNs registered abroad); check the peer name
in the alert and allow-list the network if the site accepts it.

Options (``rules.denied_country``, ``groups.<name>.rules.denied_country``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

if TYPE_CHECKING:
    from netwatch.detect.policy import Policy


class DeniedCountry(Rule):
    """A camera exchanges traffic with a denied country or AS."""

    directions = frozenset({Direction.OUTBOUND, Direction.INBOUND})  # its first check

    @classmethod
    def runs_for(cls, policy: Policy, inventory_size: int) -> bool:
        return policy.denies_any  # else its check (policy.denies) is always None

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if facts.direction is Direction.LOCAL or facts.icmp_error:
            return  # an ICMP error is a reaction: the peer's own flow is the one reported
        why = facts.policy.denies(facts.peer)
        if why is None:
            return
        peer = facts.peer.name or facts.record["id.resp_h" if facts.device_is_orig else "id.orig_h"]
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} exchanged traffic with {peer} in denied {why}",
            {
                "denied": why,
                "group": facts.policy.group,
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
                "conn_state": facts.record["conn_state"],
            },
            # one incident per camera and denied country (or AS), whichever of its networks
            subject=f"denied {why}",
        )
