"""One flow, one notification: a flow's findings folded into its most specific one.

Several rules can fire on one camera end of one flow: a registration with a vendor cloud in
a denied country, outside the group's allow-list, is ``cloud_registration``,
``denied_country`` and ``unexpected_egress`` at once. :func:`fold` keeps the finding whose
rule comes first in ``alerts.precedence`` (default
:data:`~netwatch.config.schema.FOLD_PRECEDENCE`: cloud_registration, nat_traversal,
outbound_stream, audio_stream, inbound_access, upnp_port_mapping, rogue_dns, denied_country,
new_destination, unexpected_egress) as THE alert, raised to the most severe severity among
them (a registration that streams video is critical, and the summary then says so too), with
the platform any of them named, and lists the others in its evidence under ``folded`` (rule,
severity, summary and evidence each): nothing is hidden, one notification goes out.
:func:`findings` reads an alert record back as the findings it holds. Rules that are not in
the list (device-level findings such as ``unmanaged_device`` and ``cloud_enabled``) are
never folded.

Config read: ``alerts.precedence`` (through the detector). Runs once per flow end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from netwatch.alerts.grouping import members
from netwatch.alerts.model import Alert, PendingAlert, RuleAlert


def fold(alerts: Sequence[RuleAlert], precedence: Sequence[str]) -> list[RuleAlert]:
    """The alerts to submit for one camera end of one flow (see the module docstring).
    The folded alert is itself one not built yet (a
    :class:`~netwatch.alerts.model.PendingAlert`, built from the findings when the router
    needs it) when its identity is its primary finding's (that finding names a platform,
    or none of the others does); the others are passed on as they are."""
    if len(alerts) < 2:
        return list(alerts)
    rank = {rule: i for i, rule in enumerate(precedence)}
    if sum(a.rule in rank for a in alerts) < 2:
        return list(alerts)
    foldable = [a for a in alerts if a.rule in rank]
    foldable.sort(key=lambda a: rank[a.rule])
    first = foldable[0]
    rest = [a for a in alerts if a.rule not in rank]
    if first.platform or not any(a.platform for a in foldable[1:]):
        # the folded alert's platform (the primary's, or none): its identity is the
        # primary's; its time, device, flow and peer are the primary's, its severity the
        # worst (what the router reads of a repeat it only counts)
        worst = min((a.severity for a in foldable), key=lambda s: s.rank)
        pending = PendingAlert(
            first.ts,
            first.rule,
            worst,
            first.device,
            first.flow_uid,
            first.peer,
            first.identity[2],
            first.platform,
            partial(_folded, foldable),
        )
        return [pending, *rest]
    return [_folded(foldable), *rest]


def _folded(foldable: Sequence[RuleAlert]) -> Alert:
    """The alert of findings ``foldable`` (two or more), primary first (module docstring)."""
    built = [a.built() for a in foldable]
    primary, others = built[0], built[1:]
    worst = min((a.severity for a in built), key=lambda s: s.rank)
    platform = primary.platform or next((a.platform for a in others if a.platform), None)
    folded = [
        {
            "rule": a.rule,
            "severity": a.severity.value,
            "summary": a.summary,
            "evidence": dict(a.evidence),
        }
        for a in others
    ]
    # a finding more severe than the primary one is what a person must read first
    graver = [a.summary for a in others if a.severity.rank < primary.severity.rank]
    summary = "; ".join([primary.summary, *graver])
    return replace(
        primary,
        severity=worst,
        summary=summary,
        platform=platform,
        evidence={**primary.evidence, "folded": folded},
    )


def findings(record: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every finding a notification record holds: each report it carries (its alert, then
    the reports grouped with it, :func:`netwatch.alerts.grouping.members`), each followed by
    the findings folded into it as records of their own (the same camera, peer and flow;
    their rule, severity, summary and evidence)."""
    for report in members(record):
        evidence = report.get("evidence") or {}
        yield report
        for item in evidence.get("folded", ()):
            yield {**report, **item, "evidence": item.get("evidence", {})}
