"""Group policy, compiled once: what a camera group may reach, and which resolvers it may use.

Config read: ``groups.<name>`` (allow_nets, allow_names with ``*.`` wildcards,
allow_countries, allow_asns, allow_ports, dns_servers, ntp_servers, deny_countries,
deny_asns, rules), the top-level ``rules`` and ``site.local_nets``.

Rule options are resolved here, once per group and rule when the policies are compiled
(never per flow): the rule's defaults, then the top-level ``rules.<id>``, then the group's
``rules.<id>`` (:meth:`~netwatch.rules.base.RuleOptions.merged`). :meth:`Policy.enabled`
tells the detector which rules run for the group; :meth:`Policy.severity_of` gives the
severity an alert of a rule gets (the override, or the rule's own).

Semantics: a destination is *allowed* when it is inside the site, or matches any allow
list: its network, the name seen on the wire (exact, or under a ``*.suffix`` wildcard), its
country, its AS number, or its destination port (``443`` for TCP or UDP, ``udp/123``). The
default group allows nothing outside the site. A resolver is *approved* when it is in
``dns_servers``, or, with no ``dns_servers`` given, when it is inside the site (the
``rogue_dns`` rule then asks :mod:`netwatch.detect.resolvers` instead, when it has one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from netwatch.alerts.model import Severity
from netwatch.config import Config, GroupPolicy, IPNetwork
from netwatch.enrich.addrclass import PIECES

if TYPE_CHECKING:
    from netwatch.rules.base import Rule, RuleOptions


class Destination(NamedTuple):
    """The facts a policy decision needs about the other end of a flow (a named tuple: one
    is built for every camera end of every flow)."""

    ip: bytes
    port: int
    proto: str
    name: str | None = None
    country: str | None = None
    asn: int | None = None


def name_allowed(name: str | None, exact: frozenset[str], suffixes: tuple[str, ...]) -> bool:
    """True when ``name`` equals an allowed name or lies under a ``*.suffix`` pattern."""
    if not name:
        return False
    return name in exact or name.endswith(suffixes)


def _nets_lookup(
    int_nets: Mapping[int, tuple[tuple[int, int], ...]],
) -> Callable[[bytes], bool] | None:
    """Membership in these (network, mask) integers per address size (4 and 16 bytes) as
    compiled pieces: the address space cut where any network starts or ends, so that every
    address of a piece has its first address's answer. None without the compiled pieces."""
    if PIECES is None:
        return None
    starts: dict[int, bytes] = {}
    answers: dict[int, tuple[bool, ...]] = {}
    for size, nets in int_nets.items():
        top = 1 << (8 * size)
        cuts = {0}
        for net, mask in nets:
            cuts.update((net, net + (~mask & (top - 1)) + 1))
        kept: list[int] = []
        values: list[bool] = []
        for cut in sorted(c for c in cuts if c < top):
            inside = any(cut & mask == net for net, mask in nets)
            if not values or values[-1] is not inside:  # runs of one answer made one piece
                kept.append(cut)
                values.append(inside)
        starts[size] = b"".join(cut.to_bytes(size, "big") for cut in kept)
        answers[size] = tuple(values)
    lookup: Callable[[bytes], bool] = PIECES(starts[4], answers[4], starts[16], answers[16]).get
    return lookup


class Policy:
    """One group's compiled policy."""

    def __init__(
        self,
        group: str,
        policy: GroupPolicy,
        local_nets: Iterable[IPNetwork],
        options: Mapping[str, RuleOptions] | None = None,
    ):
        self.group = group
        #: Each rule's resolved options for this group (by rule id).
        self.options: Mapping[str, RuleOptions] = MappingProxyType(dict(options or {}))
        self._disabled = frozenset(rule for rule, o in self.options.items() if not o.enabled)
        self._severity = {
            rule: o.severity for rule, o in self.options.items() if o.severity is not None
        }
        self.raw = policy
        self._nets = tuple(policy.allow_nets) + tuple(local_nets)
        # (network, mask) integers per address size: a peer is tested without an
        # ipaddress object (a flood of camera flows brings a new peer each time)
        self._int_nets: dict[int, tuple[tuple[int, int], ...]] = {
            size: tuple(
                (int(net.network_address), int(net.netmask))
                for net in self._nets
                if net.max_prefixlen == size * 8
            )
            for size in (4, 16)
        }
        #: :meth:`in_nets`' answer as one lookup: the compiled pieces of the address space
        #: these networks cut (``_mmdb.Pieces``, a binary search in C; ValueError for an
        #: address of another length), else the loop over ``_int_nets``
        #: (``NETWATCH_PURE=1``, or no compiler). A flood of camera flows asks it per flow.
        self._member: Callable[[bytes], bool] = _nets_lookup(self._int_nets) or self._in_nets
        self._exact = frozenset(n for n in policy.allow_names if not n.startswith("*."))
        self._suffixes = tuple(n[1:] for n in policy.allow_names if n.startswith("*."))
        self._countries = frozenset(policy.allow_countries)
        self._asns = frozenset(policy.allow_asns)
        self._ports = tuple(policy.allow_ports)
        self._dns = frozenset(ip.packed for ip in policy.dns_servers)
        self._ntp = frozenset(ip.packed for ip in policy.ntp_servers)
        self._deny_countries = frozenset(policy.deny_countries)
        self._deny_asns = frozenset(policy.deny_asns)

    def enabled(self, rule: str) -> bool:
        """False when the config switches ``rule`` off for this group."""
        return rule not in self._disabled

    def severity_of(self, rule: str, chosen: Severity) -> Severity:
        """The severity of an alert of ``rule`` the rule ``chosen``: the override, if any."""
        return self._severity.get(rule, chosen)

    def in_nets(self, ip: bytes) -> bool:
        """Inside the site or an allowed network (``ip``: packed, 4 or 16 bytes)."""
        return self._member(ip)

    def _in_nets(self, ip: bytes) -> bool:
        """:meth:`in_nets` by testing each network (the reference of the compiled pieces)."""
        nets = self._int_nets.get(len(ip))
        if nets is None:
            ipaddress.ip_address(ip)  # raises ValueError, as for any other length
            return False
        value = int.from_bytes(ip, "big")
        for net, mask in nets:  # noqa: SIM110 (no generator: runs for most camera flow ends)
            if value & mask == net:
                return True
        return False

    def allows(self, dest: Destination) -> bool:
        """True when the group may talk to this destination."""
        return (
            self._member(dest.ip)
            or name_allowed(dest.name, self._exact, self._suffixes)
            or (dest.country is not None and dest.country in self._countries)
            or (dest.asn is not None and dest.asn in self._asns)
            or (bool(self._ports) and any(r.matches(dest.proto, dest.port) for r in self._ports))
        )

    def denies(self, dest: Destination) -> str | None:
        """Why the destination is denied (``country XX`` / ``AS n``), or None."""
        if dest.country is not None and dest.country in self._deny_countries:
            return f"country {dest.country}"
        if dest.asn is not None and dest.asn in self._deny_asns:
            return f"AS{dest.asn}"
        return None

    def approved_resolver(self, ip: bytes, site_local: bool) -> bool:
        """True when the group may resolve names through this server."""
        return ip in self._dns if self._dns else site_local

    @property
    def denies_any(self) -> bool:
        """True when the group denies some country or AS (else :meth:`denies` is None)."""
        return bool(self._deny_countries or self._deny_asns)

    @property
    def resolvers_configured(self) -> bool:
        """True when the group lists its ``dns_servers`` (then they alone are approved)."""
        return bool(self._dns)

    def approved_ntp(self, ip: bytes, site_local: bool) -> bool:
        """True when the group may take time from this server."""
        return ip in self._ntp if self._ntp else site_local


class Policies:
    """All groups' policies, with the options of ``rules`` resolved for each group; unknown
    groups fall back to ``default``."""

    def __init__(self, cfg: Config, rules: Iterable[type[Rule]] = ()) -> None:
        local = tuple(cfg.site.local_nets)
        kinds = tuple(rules)
        self._by_group = {
            name: Policy(name, pol, local, resolve_options(kinds, cfg, pol))
            for name, pol in cfg.groups.items()
        }

    def of(self, group: str) -> Policy:
        """The policy of ``group`` (the default group's when it is not defined)."""
        return self._by_group.get(group) or self._by_group["default"]


def resolve_options(
    rules: Iterable[type[Rule]], cfg: Config, group: GroupPolicy
) -> dict[str, RuleOptions]:
    """Each rule's options for one group: its defaults < ``rules`` < the group's ``rules``."""
    return {
        kind.id: kind.options_type.merged(cfg.rules.get(kind.id), group.rules.get(kind.id))
        for kind in rules
    }
