"""Which DNS resolvers the site uses, for ``rogue_dns`` when no ``dns_servers`` are set.

Three sources, each bounded:

- the well-known public resolvers of ``seeds/public_resolvers.yaml`` (Google, Cloudflare,
  Quad9, OpenDNS, 114DNS, AliDNS, DNSPod, Baidu, ...), each address with its provider;
- the resolvers DHCP hands out (option 6), read through an injected callable
  (``dhcp_resolvers``; default: none): the DHCP parser owns that state;
- the resolvers the site's *other* devices use, learnt from ended DNS flows
  (:meth:`SiteResolvers.observe`, called by the detector on every ended flow): a
  site-local client that is not a camera sent DNS to port 53 and got an answer. Per
  resolver, distinct clients are kept up to ``MAX_CLIENTS_KEPT`` and flows are counted;
  at most ``max_resolvers`` resolvers are tracked (later ones are counted in ``dropped``).
  Each client new to a resolver is passed to ``on_learn``; with several capture workers
  the parent relays it to the other workers, which record it with :meth:`SiteResolvers.share`
  (never passed on again, so a relayed fact is not sent back).

:meth:`SiteResolvers.verdict` decides for one camera query: approved when DHCP handed the
resolver out; a public resolver is rogue unless at least ``MIN_CLIENTS_PUBLIC`` other
devices use it (a single Chromecast-like device with a hard-coded 8.8.8.8 does not make it
the site's resolver; ``rogue_dns``'s ``public_min_clients`` option asks for another
number); a site-local resolver is approved (as before); any other resolver is approved when
at least one other device uses it, or one in the same /24 (IPv6: /48) (campus networks
run their resolvers, often in pairs, on public addresses), and rogue when none does.

Config read: none (the rule reads ``groups.<name>.dns_servers``, which, when set, is
authoritative and this module is not asked). Known false positives: a camera's first
queries to a campus resolver at a public address before any other device's DNS flow has
ended (after start-up, or on a network where only cameras do DNS and no DHCP exchange was
seen): list the resolver in ``dns_servers``; with several capture workers, a camera's query
that ends on one worker just after another device's DNS flow ended on another, before the
relayed fact arrived (the parent passes it on as it reads it, the worker applies it
between capture batches), or one whose fact a full relay pipe missed (counted in the
pool's ``relay_dropped``; the next new client of that resolver is relayed again). Known
false negatives: a camera hard-coded to the same off-site resolver other devices use.
DHCP-offered resolvers reach the other workers as learnt devices
(:class:`netwatch.workers.LearntDevice`, ``how`` ``dhcp_resolver``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netwatch.config import IPAddress
from netwatch.config.loader import list_of
from netwatch.config.schema import key
from netwatch.config.values import ip as ip_value
from netwatch.signatures import loader

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

RESOLVERS_FILE = "public_resolvers.yaml"
DNS_PORT = 53
MIN_CLIENTS_PUBLIC = 3  # other devices that must use a public resolver to approve it
MIN_CLIENTS_OTHER = 1  # other devices that must use an off-site resolver to approve it
MAX_CLIENTS_KEPT = 8  # distinct clients remembered per resolver (only counts matter)
DEFAULT_MAX_RESOLVERS = 1024
SIBLING_PREFIX_BYTES = {4: 3, 16: 6}  # a resolver's siblings: same /24, IPv6 same /48

IsCamera = Callable[[bytes, bytes | None], object]
"""(packed IP, MAC or None) of a flow end -> a camera (truthy) or None."""

DhcpResolvers = Callable[[], Collection[bytes]]
"""Packed addresses of the resolvers DHCP offered on this site (option 6)."""

LearntResolver = Callable[[bytes, bytes], None]
"""(packed resolver, packed client): a site device that is not a camera uses this resolver."""


def _no_dhcp() -> Collection[bytes]:
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicResolver:
    """One public DNS service: its provider and every address it answers on."""

    id: str = key(loader.slug)
    provider: str = key(loader.nonempty)
    addresses: tuple[IPAddress, ...] = key(list_of(ip_value))
    note: str = key(loader.free_text, "")
    source: str = key(loader.nonempty)
    confidence: str = key(loader.confidence)


def load_public_resolvers(path: Path | None = None) -> tuple[PublicResolver, ...]:
    """The entries of ``seeds/public_resolvers.yaml`` (validated, with file:line errors)."""
    path = path or loader.default_seeds_dir() / RESOLVERS_FILE
    entries: tuple[PublicResolver, ...] = loader.load_yaml_entries(
        path, "resolvers", PublicResolver, ("addresses",)
    )
    return entries


@cache
def public_resolver_table() -> Mapping[bytes, str]:
    """Packed address -> provider name, from the seed file (loaded once)."""
    return {addr.packed: r.provider for r in load_public_resolvers() for addr in r.addresses}


class Why(Enum):
    """Why a resolver is approved or rogue."""

    DHCP = "offered by DHCP"
    SITE_LOCAL = "inside the site"
    USED_BY_OTHERS = "used by other devices of the site"
    PUBLIC = "well-known public resolver"
    UNUSED_BY_OTHERS = "no other device of the site uses it"
    SAME_NETWORK = "next to a resolver other devices of the site use"
    NOT_LISTED = "not in the group's dns_servers"
    OUTSIDE_SITE = "outside the site"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one resolver a camera used."""

    approved: bool
    why: Why
    provider: str | None  # the public service, when the address is a known one
    other_clients: int  # other devices seen using this resolver (capped)


@dataclass(slots=True)
class _Usage:
    """Who used a resolver, and in how many flows."""

    clients: set[bytes]
    flows: int = 0


class SiteResolvers:
    """The resolvers the site approves by use, learnt from flows; bounded."""

    def __init__(
        self,
        dhcp_resolvers: DhcpResolvers = _no_dhcp,
        public: Mapping[bytes, str] | None = None,
        max_resolvers: int = DEFAULT_MAX_RESOLVERS,
    ) -> None:
        self.dhcp_resolvers = dhcp_resolvers
        self._public = public if public is not None else public_resolver_table()
        self._usage: dict[bytes, _Usage] = {}
        self._max = max_resolvers
        self.dropped = 0  # DNS flows (or relayed facts) about resolvers not tracked (bound)
        #: Called with (resolver, client) each time a flow shows a client new to a resolver
        #: (at most ``MAX_CLIENTS_KEPT`` times per resolver): capture workers relay it.
        self.on_learn: LearntResolver | None = None

    #: The responder port of the only flows :meth:`observe` counts (DNS).
    observed_port = DNS_PORT

    def observe(self, flow: Flow, record: Mapping[str, Any], camera: IsCamera) -> None:
        """An ended flow: when it is an answered DNS query of a site device that is not a
        camera (``camera(ip, mac)`` is falsy for its originator), count it."""
        if flow.resp_p != self.observed_port or not flow.r_pkts or not record.get("local_orig"):
            return
        if camera(flow.orig_h, flow.orig_mac):
            return
        usage = self._usage_of(flow.resp_h)
        if usage is None:
            return
        usage.flows += 1
        if self._add_client(usage, flow.orig_h) and self.on_learn is not None:
            self.on_learn(flow.resp_h, flow.orig_h)

    def share(self, resolver: bytes, client: bytes) -> None:
        """Another capture worker saw ``client`` (not a camera) use ``resolver``: count the
        client (bounded like :meth:`observe`; never passed on to ``on_learn``)."""
        usage = self._usage_of(resolver)
        if usage is not None:
            self._add_client(usage, client)

    def _usage_of(self, resolver: bytes) -> _Usage | None:
        """The usage of ``resolver``, tracked from now on; None (counted in ``dropped``)
        when ``max_resolvers`` are tracked already."""
        usage = self._usage.get(resolver)
        if usage is None:
            if len(self._usage) >= self._max:
                self.dropped += 1
                return None
            usage = self._usage[resolver] = _Usage(set())
        return usage

    @staticmethod
    def _add_client(usage: _Usage, client: bytes) -> bool:
        """Remember ``client`` (up to ``MAX_CLIENTS_KEPT``); True when it is a new one."""
        if client in usage.clients or len(usage.clients) >= MAX_CLIENTS_KEPT:
            return False
        usage.clients.add(client)
        return True

    def adopt(self, other: SiteResolvers) -> None:
        """Take over what ``other`` learnt from flows (a config reload builds a new
        detector); the DHCP source stays this one's own."""
        self._usage.update(other._usage)
        self.dropped += other.dropped

    def clients(self, resolver: bytes) -> int:
        """Distinct other devices seen using ``resolver`` (at most ``MAX_CLIENTS_KEPT``)."""
        usage = self._usage.get(resolver)
        return len(usage.clients) if usage is not None else 0

    def learnt(self) -> dict[str, int]:
        """Resolver text -> distinct other clients, for evidence and tests."""
        return {_text(ip): len(u.clients) for ip, u in self._usage.items()}

    def verdict(
        self,
        resolver: bytes,
        site_local: bool,
        camera: bytes,
        min_clients_public: int = MIN_CLIENTS_PUBLIC,
    ) -> Verdict:
        """Approve or reject ``resolver`` for the camera at ``camera``; a public resolver
        needs ``min_clients_public`` other devices (at most ``MAX_CLIENTS_KEPT`` count)."""
        provider = self._public.get(resolver)
        usage = self._usage.get(resolver)
        others = len(usage.clients - {camera}) if usage is not None else 0
        if resolver in self.dhcp_resolvers():
            return Verdict(True, Why.DHCP, provider, others)
        if provider is not None:
            if others >= min_clients_public:
                return Verdict(True, Why.USED_BY_OTHERS, provider, others)
            return Verdict(False, Why.PUBLIC, provider, others)
        if site_local:
            return Verdict(True, Why.SITE_LOCAL, None, others)
        if others >= MIN_CLIENTS_OTHER:
            return Verdict(True, Why.USED_BY_OTHERS, None, others)
        if self._sibling_in_use(resolver, camera):
            return Verdict(True, Why.SAME_NETWORK, None, others)
        return Verdict(False, Why.UNUSED_BY_OTHERS, None, others)

    def _sibling_in_use(self, resolver: bytes, camera: bytes) -> bool:
        """A resolver other devices use sits in the same /24 (IPv6: /48) as ``resolver``:
        sites run their resolvers in pairs, and a device may only ever ask the first."""
        prefix = SIBLING_PREFIX_BYTES[len(resolver)]
        return any(
            ip[:prefix] == resolver[:prefix]
            and ip not in self._public
            and len(usage.clients - {camera}) >= MIN_CLIENTS_OTHER
            for ip, usage in list(self._usage.items())
            if len(ip) == len(resolver)
        )


def _text(ip: bytes) -> str:
    return str(ipaddress.ip_address(ip))
