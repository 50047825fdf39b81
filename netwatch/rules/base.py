"""The rule interface and registry: one detection per module, registered by class name.

A rule subclasses :class:`Rule`; ``__init_subclass__`` derives its id from the class name
(``CloudRegistration`` -> ``cloud_registration``), refuses duplicates loudly, and records
it in :data:`REGISTRY`. Rules are sans-I/O: they look at what the pipeline hands them and
*yield* :class:`~netwatch.alerts.model.Alert` values (flow rules: ``facts.finding``, an
alert built only when the router reports it, not for a repeat it only counts); the router
decides who is told and when. A rule that raises is isolated by :func:`run_rule` (logged
once, counted), never taking the pipeline down.

Options: every flow rule has :class:`RuleOptions` (``enabled``, ``severity``); a rule with
thresholds a site tunes declares, in its own module, a subclass with more fields, each a
config key (``key(converter, default)``, validated by the config loader with file:line
errors), and names it in its ``options_type``. The config schema is composed from them: a
rule's options are set under the top-level ``rules.<id>`` (the whole site) and
``groups.<name>.rules.<id>`` (one group), merged per group by :meth:`RuleOptions.merged`
(rule defaults < ``rules`` < the group's) when the detector compiles its policies. A rule
reads its group's options with ``facts.options(self.id, Options)``; ``enabled`` and
``severity`` are applied for it (the detector skips a disabled rule, ``FlowFacts.alert``
puts the severity on every alert the rule builds).

Two kinds of rule: a flow rule (:class:`Rule`) is run by the detector on each camera end of
an ended flow (``on_flow_end``); a sensor rule (:class:`SensorRule`) watches the sensor
itself and is fed the capture counters by the daemon (``on_capture``), through
:class:`SensorRules`. Reads no configuration itself (a sensor rule reads its settings in
``from_config``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from netwatch.alerts.model import Alert, Direction, RuleAlert, Severity
from netwatch.config import values as v
from netwatch.config.loader import Ctx, optional
from netwatch.config.schema import SEVERITIES, key
from netwatch.detect.baseline import DestinationBaseline
from netwatch.detect.facts import FlowFacts
from netwatch.detect.resolvers import DNS_PORT, SiteResolvers
from netwatch.registry import register, snake_name

if TYPE_CHECKING:
    from yaml.nodes import Node

    from netwatch.capture.source import CaptureCounts
    from netwatch.config import Config
    from netwatch.detect.policy import Policy

log = logging.getLogger(__name__)
#: The peer port the ``dns_peer`` precondition is about (the site resolvers' port).
DNS_PEER_PORT = DNS_PORT

REGISTRY: dict[str, type[Rule]] = {}


def rule_id(class_name: str) -> str:
    """``CloudRegistration`` -> ``cloud_registration``."""
    return snake_name(class_name)


def severity(node: Node, ctx: Ctx, path: str) -> Severity:
    """A config value naming a severity (critical, high, medium, low, info)."""
    return Severity(v.choice(*SEVERITIES)(node, ctx, path))


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleOptions:
    """The options every flow rule has; a rule with more subclasses this in its module.

    Each field is a config key: ``key(converter, default)``, the default being the rule's
    own. ``severity`` None keeps the severity the rule chooses for each alert."""

    #: Options a group could set at its top level before rules had options (deprecated
    #: ``groups.<name>.<option>``, still read with a warning).
    LEGACY_GROUP_KEYS: ClassVar[tuple[str, ...]] = ()

    enabled: bool = key(v.boolean, True)
    severity: Severity | None = key(optional(severity), None)  # noqa: RUF009 (a field)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names (config keys) of this class."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def merged(cls, *levels: Mapping[str, Any] | None) -> Self:
        """The options with each level's values over the defaults, later levels winning
        (a level holds only the keys the config set; None or empty: nothing)."""
        values: dict[str, Any] = {}
        for level in levels:
            if level:
                values.update(level)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What stateful rules are given at construction (injected by the detector)."""

    baseline: DestinationBaseline | None = None
    resolvers: SiteResolvers | None = None  # the site's resolvers, for rogue_dns


class Rule:
    """Base class of every detection rule."""

    #: The stable rule id (alerts, metrics labels, config); set from the class name.
    id: ClassVar[str] = ""
    #: True (in the class body) for a base of rules that is not itself a rule.
    abstract: ClassVar[bool] = False
    #: The rule's options (config ``rules.<id>``); a rule with thresholds names its own.
    options_type: ClassVar[type[RuleOptions]] = RuleOptions
    #: Preconditions, for a rule that keeps no state between flows or changes it only past
    #: the checks these stand for (new_destination's baseline): True when it can only
    #: alert on a flow some deep parser spoke about (``facts.app`` not empty); the
    #: directions it can alert for (None: any). The detector does not run it on a camera
    #: end that fails them (issue 13: most flows of a flood have no application data), so
    #: a rule declares only what its own first checks already return on.
    needs_app: ClassVar[bool] = False
    directions: ClassVar[frozenset[Direction] | None] = None
    #: A third precondition, on the peer's port: True when the rule can only alert for a
    #: camera end whose peer port is DNS's (:data:`DNS_PEER_PORT`), False when never for one
    #: (None: either).
    dns_peer: ClassVar[bool | None] = None

    def __init__(self, context: RuleContext | None = None) -> None:
        self.context = context

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return  # a kind of rule (SensorRule), not a rule: no id, not registered
        cls.id = rule_id(cls.__name__)
        register(REGISTRY, cls.id, cls, "rule id")

    def on_flow_end(self, facts: FlowFacts) -> Iterable[RuleAlert]:
        """Alerts for one camera end of a flow that ended (default: none): built ones, or
        (``facts.finding``) ones built only when the router needs more than a repeat's
        count."""
        return ()

    @classmethod
    def can_fire(cls, direction: Direction, has_app: bool, dns_peer: bool | None = None) -> bool:
        """False when the rule's preconditions say it cannot alert for a camera end with
        this direction, (``has_app``) application data or none, and (``dns_peer``) a peer
        port that is DNS's or not (None: not known, that precondition is not asked)."""
        if cls.needs_app and not has_app:
            return False
        if dns_peer is not None and cls.dns_peer is not None and dns_peer is not cls.dns_peer:
            return False
        return cls.directions is None or direction in cls.directions

    @classmethod
    def runs_for(cls, policy: Policy, inventory_size: int) -> bool:
        """False when a group's compiled policy, or the size of the inventory (0:
        zero-config), means the rule can never alert for the group's cameras: its own
        checks return on what these fix (a precondition, as :meth:`can_fire`; the
        detector does not run it for the group). Default: True."""
        return True


class SensorRule(Rule):
    """A rule about the sensor itself, fed the capture counters rather than flows.

    The daemon builds every built-in sensor rule with :meth:`from_config` (through
    :class:`SensorRules`) and hands them the source's per-interface counters at each
    housekeeping turn; the detector never runs them on flows.
    """

    abstract = True

    @classmethod
    def from_config(cls, cfg: Config) -> Self:
        """The rule with its settings read from ``cfg`` (default: none)."""
        return cls()

    def on_capture(self, now: float, counts: Mapping[str, CaptureCounts]) -> Iterable[Alert]:
        """Alerts about the capture, given its counters since start (default: none)."""
        return ()


class RuleErrors:
    """Counts rule failures per rule id; logs the first failure of each rule."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def record(self, rule: Rule, exc: BaseException) -> None:
        """Count one failure (and log it the first time for this rule)."""
        first = rule.id not in self.counts
        self.counts[rule.id] = self.counts.get(rule.id, 0) + 1
        if first:
            log.error("rule %s failed (isolated, counted): %r", rule.id, exc)


T = TypeVar("T")
A = TypeVar("A")


def run_rule(
    rule: Rule, errors: RuleErrors, hook: Callable[[A], Iterable[T]], arg: A
) -> Iterator[T]:
    """Run one rule hook on ``arg``, isolating any failure: what it yielded before is kept."""
    try:
        yield from hook(arg)
    except Exception as exc:  # a failing rule must not stop the pipeline
        errors.record(rule, exc)


def run_flow_rules(rules: Iterable[Rule], errors: RuleErrors, facts: FlowFacts) -> list[RuleAlert]:
    """Every rule's alerts for one camera end of a flow, each rule's failure isolated as by
    :func:`run_rule` (what a rule yielded before it raised is kept), without a generator
    around each rule (this runs for every rule on every camera end of every flow)."""
    found: list[RuleAlert] = []
    for rule in rules:
        try:
            found.extend(rule.on_flow_end(facts))  # appends as it iterates: kept on a raise
        except Exception as exc:  # a failing rule must not stop the pipeline
            errors.record(rule, exc)
    return found


class SensorRules:
    """The sensor rules of a daemon: each fed the capture counters, failures isolated."""

    def __init__(self, rules: Iterable[SensorRule]) -> None:
        self.rules = list(rules)
        self.errors = RuleErrors()

    @classmethod
    def from_config(cls, cfg: Config, kinds: Iterable[type[SensorRule]]) -> SensorRules:
        """One instance of each class in ``kinds``, configured from ``cfg``."""
        return cls(kind.from_config(cfg) for kind in kinds)

    def on_capture(self, now: float, counts: Mapping[str, CaptureCounts]) -> list[Alert]:
        """Every sensor rule's alerts for these counters (``now``: wall-clock seconds)."""
        alerts: list[Alert] = []
        for rule in self.rules:
            alerts.extend(run_rule(rule, self.errors, partial(rule.on_capture, now), counts))
        return alerts
