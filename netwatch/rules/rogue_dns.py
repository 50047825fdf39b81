"""``rogue_dns``: a camera resolves names through a resolver that is not approved.

Fires when a camera sends DNS (port 53, UDP or TCP) to a server that is not in its group's
``dns_servers`` (or, with none configured, to a server outside the site): the signature of
a hard-coded public resolver, which also hides the camera's lookups from the site's own
DNS logs. Evidence: resolver, the name asked for, the answer state. Known false
positives: DNS forwarders outside ``site.local_nets``; list them in ``dns_servers``.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.enrich.addrclass import ip_text
from netwatch.rules.base import Rule

DNS_PORT = 53


class RogueDns(Rule):
    """A camera uses a resolver its group does not approve."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        if not facts.device_is_orig or facts.peer.port != DNS_PORT:
            return
        if facts.policy.approved_resolver(facts.peer.ip, facts.peer_local):
            return
        resolver = ip_text(facts.peer.ip)
        query = facts.app.get("dns_query")
        yield facts.alert(
            self.id,
            Severity.MEDIUM,
            f"{facts.device.name} resolved {query or 'names'} through unapproved "
            f"resolver {resolver}",
            {
                "resolver": resolver,
                "query": query,
                "group": facts.policy.group,
                "conn_state": facts.record["conn_state"],
            },
        )
