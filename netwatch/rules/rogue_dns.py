"""``rogue_dns``: a camera resolves names through a resolver that is not approved.

Fires when a camera sends DNS (port 53, UDP or TCP) to a server that is not approved: the
signature of a hard-coded public resolver, which also hides the camera's lookups from the
site's own DNS logs. Evidence: resolver, the name asked for, the answer state, and why the
resolver is rogue (``reason``; ``provider`` for a well-known public service).

Which resolvers are approved:

- ``groups.<name>.dns_servers``, when the camera's group lists any: those alone
  (authoritative, as configured).
- Otherwise, with the site's resolvers known to the rule (``RuleContext.resolvers``, see
  :mod:`netwatch.detect.resolvers`): those DHCP hands out; a well-known public resolver
  (``seeds/public_resolvers.yaml``: 8.8.8.8, 1.1.1.1, 114.114.114.114, ...) is rogue
  unless at least ``public_min_clients`` other devices of the site use it too; a
  site-local resolver is approved; an off-site resolver is approved when another
  (non-camera) device uses it or one in the same /24 (IPv6 /48), rogue when none does.
- Without that context: resolvers inside ``site.local_nets``.

Options (:class:`Options`; ``rules.rogue_dns``, ``groups.<name>.rules.rogue_dns``):
``public_min_clients`` (default 3, at most 8: the clients kept per resolver), besides
``enabled`` and ``severity``. Raise it where many devices (phones, TVs) hard-code a public
resolver the site does not want cameras to use; lower it on a small site where a couple
of devices use the public resolver the site has chosen.

Known false positives: a campus resolver at a public address, queried by a camera before
any other device's DNS flow has ended and without a DHCP exchange seen (right after
start-up, or a network where only cameras do DNS): list it in ``dns_servers``. Known false
negatives: a camera hard-coded to an off-site resolver other devices use as well; a rogue
resolver inside ``site.local_nets``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.config import values as v
from netwatch.config.schema import key
from netwatch.detect.facts import FlowFacts
from netwatch.detect.resolvers import DNS_PORT, MAX_CLIENTS_KEPT, MIN_CLIENTS_PUBLIC, Verdict, Why
from netwatch.enrich.addrclass import ip_text
from netwatch.rules.base import Rule, RuleOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class Options(RuleOptions):
    """``rules.rogue_dns``: how many other devices approve a public resolver."""

    public_min_clients: int = key(v.integer(1, MAX_CLIENTS_KEPT), MIN_CLIENTS_PUBLIC)


class RogueDns(Rule):
    """A camera uses a resolver its group does not approve."""

    options_type = Options
    #: Its first check: the camera opened the flow (never so for an inbound flow).
    directions = frozenset({Direction.OUTBOUND, Direction.LOCAL})
    dns_peer = True  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if not facts.device_is_orig or facts.peer.port != DNS_PORT:
            return
        verdict = self._verdict(facts)
        if verdict is None or verdict.approved:
            return
        resolver = ip_text(facts.peer.ip)
        query = facts.app.get("dns_query")
        what = f"{verdict.provider} resolver" if verdict.provider else "unapproved resolver"
        yield facts.finding(
            self.id,
            Severity.MEDIUM,
            f"{facts.device.name} resolved {query or 'names'} through {what} {resolver}",
            {
                "resolver": resolver,
                "query": query,
                "group": facts.policy.group,
                "conn_state": facts.record["conn_state"],
                "reason": verdict.why.value,
                "provider": verdict.provider,
                "other_clients": verdict.other_clients,
            },
        )

    def _verdict(self, facts: FlowFacts) -> Verdict | None:
        """The decision, or None when the resolver is approved by the policy or the site."""
        policy, ip = facts.policy, facts.peer.ip
        resolvers = self.context.resolvers if self.context is not None else None
        if policy.resolvers_configured or resolvers is None:
            if policy.approved_resolver(ip, facts.peer_local):
                return None
            why = Why.NOT_LISTED if policy.resolvers_configured else Why.OUTSIDE_SITE
            return Verdict(False, why, None, 0)
        camera = ipaddress.ip_address(facts.device.ip).packed
        minimum = facts.options(self.id, Options).public_min_clients
        return resolvers.verdict(ip, facts.peer_local, camera, minimum)
