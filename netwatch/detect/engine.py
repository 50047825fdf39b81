"""The detection stage: at each flow end, run every rule on each camera end of the flow.

Sans-I/O: rules yield alerts, the findings about one camera end of one flow are folded into
one (:mod:`netwatch.alerts.incidents`), the :class:`~netwatch.alerts.router.AlertRouter`
decides what is emitted (de-duplicated per ``alerts.suppress_s``), and the injected ``emit``
callback (the edge) writes them. A failing rule is isolated and counted
(:attr:`Detector.errors`). Runs once per flow, never per packet.

Rule options: a rule switched off for a group (``rules.<id>: off`` or
``groups.<name>.rules.<id>: off``) is not run for that group's cameras; the rules each group
runs are chosen once, when the detector is built (a reload builds a new one). A severity
override is put on the alert as the rule builds it (:meth:`FlowFacts.alert`), before the
findings are folded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from netwatch.alerts.incidents import fold
from netwatch.alerts.model import Direction
from netwatch.alerts.router import AlertRouter, Emit
from netwatch.config import Config
from netwatch.deep.discovery import DeviceIdentity, parse_sadp_l2
from netwatch.detect.baseline import DestinationBaseline
from netwatch.detect.devices import CameraVendor, Devices
from netwatch.detect.facts import flow_facts
from netwatch.detect.policy import Policies
from netwatch.detect.resolvers import SiteResolvers
from netwatch.enrich.inventory import Inventory
from netwatch.flow.record import Enrichers, FlowEnds
from netwatch.flow.table import Flow
from netwatch.rules import BUILTIN_RULES
from netwatch.rules.base import DNS_PEER_PORT, Rule, RuleContext, RuleErrors, run_flow_rules
from netwatch.signatures.match import SignatureMatcher


class Detector:
    """Runs the rules on ended flows and routes their alerts."""

    def __init__(
        self,
        cfg: Config,
        enrichers: Enrichers,
        camera_vendor: CameraVendor,
        emit: Emit,
        signatures: SignatureMatcher | None = None,
        rules: Iterable[type[Rule]] = BUILTIN_RULES,
        baseline: DestinationBaseline | None = None,
    ) -> None:
        self.enrichers = enrichers
        self.devices = Devices(Inventory(cfg.cameras), enrichers.classifier, camera_vendor)
        #: Fixed with the config (a reload builds a new detector); the facts carry it.
        self._inventory_size = self.devices.inventory_size
        self.signatures = signatures
        rules = tuple(rules)
        self.policies = Policies(cfg, rules)
        self.baseline = baseline
        #: The site's resolvers (rogue_dns); DHCP option 6 plugs in as ``dhcp_resolvers``.
        self.resolvers = SiteResolvers(dhcp_resolvers=lambda: self.devices.dhcp_resolvers)
        #: What every ended flow tells the detector, camera end or not (the site's
        #: resolvers' use): ``observe(flow, record)``, raising no alert; :meth:`flow_ended`
        #: does it first. A partial, not a method: it runs for every flow.
        self.observe: Callable[[Flow, Mapping[str, Any]], None] = partial(
            self.resolvers.observe, camera=self.devices.camera
        )
        #: :attr:`observe` looks only at flows to this responder port (any other returns
        #: at once): a caller may skip the call for the others.
        self.observed_port = self.resolvers.observed_port
        context = RuleContext(baseline=baseline, resolvers=self.resolvers)
        #: Every rule (one instance each, shared by the groups that run it).
        self.rules = [cls(context) for cls in rules]
        #: The rules each group runs (those its options leave enabled), by group name.
        self.rules_of = {
            group: [r for r in self.rules if self.policies.of(group).enabled(r.id)]
            for group in cfg.groups
        }
        #: (group, direction, has application data, peer on the DNS port) -> the group's
        #: rules whose preconditions (``Rule.can_fire``) such a camera end meets, in the
        #: same order; filled as met (at most twelve per group).
        self._runnable: dict[tuple[str, Direction, bool, bool], list[Rule]] = {}
        self.router = AlertRouter.of(emit, cfg.alerts)
        #: One flow, one notification: the order findings fold in (alerts.precedence).
        self.precedence = cfg.alerts.precedence
        self.errors = RuleErrors()

    def close(self) -> None:
        """Store the baseline's pending changes (a worker's baseline has none)."""
        if self.baseline is not None:
            self.baseline.close()

    def camera_seen(
        self, ip: bytes, vendor: str | None, how: str, ident: DeviceIdentity | None
    ) -> None:
        """A discovery reply or camera banner: from now on this host is a camera."""
        details = (ident.model, ident.firmware, ident.serial) if ident is not None else None
        self.devices.learn(ip, vendor, how, details)

    def l2_frame(self, ethertype: int, frame: bytes, off: int, mac_off: int) -> None:
        """A layer-2 SADP frame: a device's response makes its sender MAC a camera."""
        ident = parse_sadp_l2(frame[off:])
        if ident is not None and ident.is_camera and mac_off >= 0:
            self.devices.learn_mac(frame[mac_off + 6 : mac_off + 12], ident.vendor, "sadp_l2")

    def runnable_rules(
        self, group: str, direction: Direction, has_app: bool, dns_peer: bool | None = None
    ) -> list[Rule]:
        """The rules ``group`` runs that can alert for a camera end with this direction,
        (``has_app``) application data or none, and (``dns_peer``) a peer on the DNS port or
        not (None: either), in the group's order: their preconditions (``Rule.can_fire``,
        and ``Rule.runs_for`` the group's policy and the inventory)."""
        rules = self.rules_of.get(group, self.rules)
        policy, size = self.policies.of(group), self._inventory_size
        return [
            rule
            for rule in rules
            if rule.can_fire(direction, has_app, dns_peer) and rule.runs_for(policy, size)
        ]

    def flow_ended(self, flow: Flow, record: Mapping[str, Any], ends: FlowEnds) -> None:
        """Evaluate every rule on every camera end of this flow (``ends``: what the record
        building found out about its ends, through these devices)."""
        if flow.resp_p == self.observed_port:
            self.observe(flow, record)
        facts_of = flow_facts(
            flow, record, ends, self.enrichers, self._inventory_size, self.policies, self.signatures
        )
        runnable, submit = self._runnable, self.router.submit
        for facts in facts_of:
            key = (
                facts.policy.group,
                facts.direction,
                bool(facts.app),
                facts.peer.port == DNS_PEER_PORT,
            )
            rules = runnable.get(key)
            if rules is None:
                rules = runnable[key] = self.runnable_rules(*key)
            if not rules:
                continue  # nothing can alert for this camera end
            found = run_flow_rules(rules, self.errors, facts)
            if len(found) > 1:  # fold passes fewer on as they are
                found = fold(found, self.precedence)
            for alert in found:
                submit(alert)
