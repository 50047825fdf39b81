"""SiteResolvers' relay API: what a capture worker learns is passed on, what it is told is kept.

``on_learn`` is called once per client new to a resolver (what the parent relays to the
other workers); :meth:`SiteResolvers.share` records a relayed fact, bounded like a flow,
without calling ``on_learn`` again (a relayed fact must not loop back). The rogue_dns
verdicts and the learning bounds themselves are tested in tests/rules/test_rogue_dns.py.
"""

from __future__ import annotations

import ipaddress

from netwatch.detect.resolvers import MAX_CLIENTS_KEPT, SiteResolvers, Why

CAMPUS_DNS = "130.104.1.1"  # a campus resolver at a public address (not a public service)
CAM = "10.20.0.11"


def packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


class _Flow:
    """The few Flow fields SiteResolvers.observe reads."""

    def __init__(self, client: str, resolver: str) -> None:
        self.orig_h, self.resp_h, self.resp_p = packed(client), packed(resolver), 53
        self.orig_mac, self.r_pkts = None, 1


def observe(site: SiteResolvers, client: str, resolver: str, camera: bool = False) -> None:
    flow = _Flow(client, resolver)
    site.observe(flow, {"local_orig": True}, lambda ip, mac: camera)  # type: ignore[arg-type]


def learning(site: SiteResolvers) -> list[tuple[str, str]]:
    """Hook ``site.on_learn``; the list fills with (resolver, client) texts."""
    calls: list[tuple[str, str]] = []

    def hook(resolver: bytes, client: bytes) -> None:
        calls.append((str(ipaddress.ip_address(resolver)), str(ipaddress.ip_address(client))))

    site.on_learn = hook
    return calls


def test_on_learn_is_told_each_new_client_once() -> None:
    site = SiteResolvers(public={})
    calls = learning(site)
    observe(site, "10.0.0.5", CAMPUS_DNS)
    observe(site, "10.0.0.5", CAMPUS_DNS)  # the same client again: nothing new
    observe(site, CAM, CAMPUS_DNS, camera=True)  # a camera's own DNS teaches nothing
    observe(site, "10.0.0.6", CAMPUS_DNS)
    assert calls == [(CAMPUS_DNS, "10.0.0.5"), (CAMPUS_DNS, "10.0.0.6")]


def test_on_learn_stops_at_the_clients_kept() -> None:
    site = SiteResolvers(public={})
    calls = learning(site)
    for i in range(MAX_CLIENTS_KEPT + 3):
        observe(site, f"10.0.1.{i}", CAMPUS_DNS)
    assert len(calls) == MAX_CLIENTS_KEPT  # at most this many relays per resolver


def test_a_shared_client_approves_the_resolver_and_is_not_passed_on() -> None:
    site = SiteResolvers(public={})
    calls = learning(site)
    assert not site.verdict(packed(CAMPUS_DNS), False, packed(CAM)).approved
    site.share(packed(CAMPUS_DNS), packed("10.0.0.5"))
    verdict = site.verdict(packed(CAMPUS_DNS), False, packed(CAM))
    assert verdict.approved and verdict.why is Why.USED_BY_OTHERS and verdict.other_clients == 1
    assert calls == []  # a relayed fact is never sent again
    observe(site, "10.0.0.5", CAMPUS_DNS)  # already known from the relay: nothing to send
    assert calls == [] and site.learnt() == {CAMPUS_DNS: 1}


def test_shared_public_resolver_clients_add_up_to_the_threshold() -> None:
    site = SiteResolvers(public={packed("8.8.8.8"): "Google"})
    site.share(packed("8.8.8.8"), packed("10.0.0.5"))
    site.share(packed("8.8.8.8"), packed("10.0.0.6"))
    observe(site, "10.0.0.7", "8.8.8.8")  # this worker's own flow
    verdict = site.verdict(packed("8.8.8.8"), False, packed(CAM))
    assert verdict.approved and verdict.why is Why.USED_BY_OTHERS and verdict.other_clients == 3


def test_shared_facts_are_bounded_and_counted() -> None:
    site = SiteResolvers(public={}, max_resolvers=1)
    for i in range(MAX_CLIENTS_KEPT + 2):
        site.share(packed(CAMPUS_DNS), packed(f"10.0.1.{i}"))
    site.share(packed("130.104.9.9"), packed("10.0.0.5"))  # a second resolver: over the bound
    assert site.learnt() == {CAMPUS_DNS: MAX_CLIENTS_KEPT}
    assert site.dropped == 1


def test_only_flows_to_the_observed_port_are_counted() -> None:
    """Callers skip ``observe`` for a flow to another responder port (the pipeline does, for
    every flow end with no camera): it counts nothing for those."""
    site = SiteResolvers(public={})
    calls = learning(site)
    for port in (0, 52, 54, 443, 5353, 53 + 65536):
        flow = _Flow(f"10.0.0.{port % 250 + 1}", CAMPUS_DNS)
        flow.resp_p = port
        site.observe(flow, {"local_orig": True}, lambda ip, mac: False)  # type: ignore[arg-type]
    assert calls == []
    assert site.observed_port == 53
    observe(site, "10.0.0.9", CAMPUS_DNS)
    assert calls == [(CAMPUS_DNS, "10.0.0.9")]
