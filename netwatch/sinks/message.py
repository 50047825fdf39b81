"""What a person reads about one alert record, shared by the chat and e-mail sinks.

:func:`fields_of` gives the (title, value) rows: severity, rule, the status of an ended
incident, the sensor (``site``), the camera (name, address, MAC, vendor and model from the
evidence when known), group, platform, the traffic with its arrow the way it went
(``camera -> peer`` outbound, ``peer -> camera`` inbound; no row without a peer, so never
``-> -``), country and AS, bytes up and down (from the evidence), first and last seen, how
often, and the peers of an ended incident. :func:`folded_of` lists the findings folded into
the alert and the reports grouped with it. :func:`dashboard_link` fills the
``alerts.dashboard_url`` template. Values are plain text, not escaped: each sink escapes
them for its own markup (Slack mrkdwn, Adaptive Card Markdown, one-line e-mail values).

Config read: ``alerts.dashboard_url`` (passed in by the sinks). Known limits: times are
shown in UTC; bytes are the alert's flow's (not the incident's total).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from netwatch.alerts.model import Direction, Status, status_of
from netwatch.config.schema import DASHBOARD_FIELDS

#: The dashboard's time range reaches this far before the first and after the last sighting.
DASHBOARD_MARGIN_S: Final = 900.0
_UNITS: Final = ("B", "kB", "MB", "GB", "TB")
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REASONS: Final = {"quiet": "not seen for alerts.resolve_s", "end_of_input": "end of input"}


def seconds_of(stamp: object) -> float | None:
    """An RFC 3339 record time as epoch seconds; None when absent or malformed."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_time(stamp: object) -> str:
    """A record time for a person: ``2026-01-01 00:00:00 UTC`` (as given when malformed)."""
    text = str(stamp or "")
    if len(text) >= 19 and text[10] == "T":
        return f"{text[:10]} {text[11:19]} UTC"
    return text


def human_bytes(value: object) -> str | None:
    """A byte count for a person (``766 B``, ``1.2 MB``); None when not a count."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    size, unit = float(value), 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size, unit = size / 1000, unit + 1
    return f"{int(size)} B" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


def first_last(record: Mapping[str, Any]) -> tuple[str, str]:
    """The record's first and last sighting (RFC 3339): an ended incident's span; for a
    firing alert, since when its incident runs (evidence) and the alert's own time."""
    if status_of(record) is Status.ENDED:
        return str(record.get("first_seen") or ""), str(record.get("last_seen") or "")
    evidence = record.get("evidence") or {}
    incident = evidence.get("incident") if isinstance(evidence, Mapping) else None
    first = incident.get("first_seen") if isinstance(incident, Mapping) else None
    ts = str(record.get("ts") or "")
    return str(first or ts), ts


def _evidence(record: Mapping[str, Any]) -> Mapping[str, Any]:
    evidence = record.get("evidence")
    return evidence if isinstance(evidence, Mapping) else {}


def _model(record: Mapping[str, Any]) -> str | None:
    """The camera's model from the evidence (the alert's or a folded finding's)."""
    evidence = _evidence(record)
    candidates = [evidence, *(f.get("evidence") or {} for f in evidence.get("folded") or ())]
    for found in candidates:
        if isinstance(found, Mapping) and found.get("device_model"):
            return str(found["device_model"])
    return None


def camera_of(record: Mapping[str, Any]) -> str:
    """``name (IP, MAC, vendor model)``, each part when known."""
    name = str(record.get("device") or record.get("device_ip") or "-")
    parts = [str(record["device_ip"])] if record.get("device_ip") not in (None, "", name) else []
    if record.get("device_mac"):
        parts.append(str(record["device_mac"]))
    maker = " ".join(str(x) for x in (record.get("vendor"), _model(record)) if x)
    if maker:
        parts.append(maker)
    return f"{name} ({', '.join(parts)})" if parts else name


def peer_of(record: Mapping[str, Any]) -> str | None:
    """The peer as ``name (ip:port/proto)``; None without a peer."""
    name, ip, port = record.get("peer_name"), record.get("peer_ip"), record.get("peer_port")
    if not name and not ip:
        return None
    where = f"{ip}:{port}" if ip and port else str(ip or "")
    if where and record.get("proto"):
        where += f"/{record['proto']}"
    if name and where:
        return f"{name} ({where})"
    return str(name or where)


def traffic_of(record: Mapping[str, Any]) -> str | None:
    """Camera and peer with the arrow the way the traffic went; None without a peer."""
    peer = peer_of(record)
    if peer is None:
        return None
    device = str(record.get("device") or record.get("device_ip") or "?")
    if record.get("direction") == Direction.INBOUND.value:
        return f"{peer} -> {device}"
    return f"{device} -> {peer}"


def origin_of(record: Mapping[str, Any]) -> str | None:
    """``CC, AS64500 Org`` (each part when known); None when nothing is known."""
    parts = [str(record["peer_country"])] if record.get("peer_country") else []
    org = str(record["peer_org"]) if record.get("peer_org") else ""
    if record.get("peer_asn"):
        parts.append(f"AS{record['peer_asn']}{' ' + org if org else ''}")
    elif org:
        parts.append(org)
    return ", ".join(parts) or None


def bytes_of(record: Mapping[str, Any]) -> str | None:
    """``766 B up, 168 B down`` (up: from the camera) from the evidence; None without."""
    evidence = _evidence(record)
    up = human_bytes(evidence.get("bytes_up", evidence.get("bytes_from_camera")))
    down = human_bytes(evidence.get("bytes_down", evidence.get("bytes_to_camera")))
    parts = [f"{up} up" if up else "", f"{down} down" if down else ""]
    return ", ".join(p for p in parts if p) or None


def peers_of(record: Mapping[str, Any]) -> str | None:
    """An ended incident's peers (``a, b +3 more``); None when it lists none."""
    peers = [str(p) for p in record.get("peers") or ()]
    if not peers:
        return None
    more = record.get("more_peers") or 0
    return ", ".join(peers) + (f" +{more} more" if more else "")


def fields_of(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (title, value) rows about one alert record (module docstring); unescaped."""
    rows = [("Severity", str(record.get("severity", ""))), ("Rule", str(record.get("rule", "")))]
    if status_of(record) is Status.ENDED:
        reason = _REASONS.get(str(record.get("ended_reason")), str(record.get("ended_reason")))
        rows.append(("Status", f"ended ({reason})"))
    if record.get("site"):
        rows.append(("Sensor", str(record["site"])))
    rows.append(("Camera", camera_of(record)))
    for title, key in (("Group", "group"), ("Platform", "platform")):
        if record.get(key):
            rows.append((title, str(record[key])))
    optional = (
        ("Traffic", traffic_of(record)),
        ("Country / AS", origin_of(record)),
        ("Bytes", bytes_of(record)),
    )
    rows += [(title, value) for title, value in optional if value]
    first, last = first_last(record)
    rows += [("First seen", human_time(first)), ("Last seen", human_time(last))]
    count = record.get("sightings") or record.get("count")
    if count:
        rows.append(("Seen", f"{count} time{'' if count == 1 else 's'}"))
    peers = peers_of(record)
    if peers:
        rows.append(("Peers", peers))
    return rows


def _folded(record: Mapping[str, Any]) -> list[str]:
    folded = _evidence(record).get("folded") or ()
    return [
        f"[{f.get('severity')}] {f.get('rule')}: {f.get('summary', '')}"
        for f in folded
        if isinstance(f, Mapping)
    ]


def folded_of(record: Mapping[str, Any]) -> list[str]:
    """Everything else the notification carries, one line each: the findings folded into
    its alert (``[severity] rule: summary``), then each report grouped with it
    (``[severity] rule (what it reached): summary``, :mod:`netwatch.alerts.grouping`)
    followed by the findings folded into that one."""
    lines = _folded(record)
    for item in _evidence(record).get("grouped") or ():
        if not isinstance(item, Mapping):
            continue
        reached = f" ({item['reached']})" if item.get("reached") else ""
        lines.append(
            f"[{item.get('severity')}] {item.get('rule')}{reached}: {item.get('summary', '')}"
        )
        lines += _folded(item)
    return lines


def dashboard_values(record: Mapping[str, Any]) -> dict[str, str]:
    """The values a dashboard template may use (config ``DASHBOARD_FIELDS``), URL-quoted;
    ``from_ms``/``to_ms`` span the sightings with :data:`DASHBOARD_MARGIN_S` around them."""
    keys = DASHBOARD_FIELDS[:-2]  # the record's fields; from_ms and to_ms are computed
    values = {
        k: urllib.parse.quote(str(record.get(k) or ""), safe="")
        for k in keys  # every value from the wire is quoted: it cannot leave its parameter
    }
    first, last = (seconds_of(t) for t in first_last(record))
    start = first if first is not None else last
    end = last if last is not None else first
    values["from_ms"] = "" if start is None else str(int((start - DASHBOARD_MARGIN_S) * 1000))
    values["to_ms"] = "" if end is None else str(int((end + DASHBOARD_MARGIN_S) * 1000))
    return values


def dashboard_link(template: str | None, record: Mapping[str, Any]) -> str | None:
    """The dashboard URL for ``record`` from the ``alerts.dashboard_url`` template (checked
    at config load); None without a template, or when it does not fill in."""
    if not template:
        return None
    try:
        return template.format_map(dashboard_values(record))
    except (KeyError, ValueError, IndexError, AttributeError):
        return None


def one_line(value: object) -> str:
    """``value`` as text on one line: control characters (CR, LF among them) become spaces,
    so a name from the wire cannot forge a line of its own."""
    return _CONTROL.sub(" ", str(value))


def plain_text(record: Mapping[str, Any], link: str | None) -> str:
    """The alert as plain text lines: heading, summary, fields, folded findings, link; each
    value on its own line (:func:`one_line`)."""
    ended = status_of(record) is Status.ENDED
    head = f"[{record.get('severity')}] {record.get('rule')}{' ENDED' if ended else ''}"
    lines = [one_line(head), one_line(record.get("summary", ""))]
    lines += [f"{title}: {one_line(value)}" for title, value in fields_of(record)[2:]]
    lines += [f"Also: {one_line(f)}" for f in folded_of(record)]
    if link:
        lines.append(f"Dashboard: {link}")
    return "\n".join(lines)
