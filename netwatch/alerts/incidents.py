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
from typing import Any

from netwatch.alerts.grouping import members
from netwatch.alerts.model import RuleAlert


def fold(alerts: Sequence[RuleAlert], precedence: Sequence[str]) -> list[RuleAlert]:
    """The alerts to submit for one camera end of one flow (see the module docstring).
    Alerts not built yet (:class:`~netwatch.alerts.model.PendingAlert`) are built only
    when folded; the others are passed on as they are."""
    if len(alerts) < 2:
        return list(alerts)
    rank = {rule: i for i, rule in enumerate(precedence)}
    if sum(a.rule in rank for a in alerts) < 2:
        return list(alerts)
    foldable = [a.built() for a in alerts if a.rule in rank]
    foldable.sort(key=lambda a: rank[a.rule])
    primary, others = foldable[0], foldable[1:]
    worst = min((a.severity for a in foldable), key=lambda s: s.rank)
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
    merged = replace(
        primary,
        severity=worst,
        summary=summary,
        platform=platform,
        evidence={**primary.evidence, "folded": folded},
    )
    return [merged, *(a for a in alerts if a.rule not in rank)]


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
