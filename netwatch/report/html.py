"""The report as one self-contained HTML file: inline CSS, inline SVG, no script, no network.

:func:`render` turns a :class:`~netwatch.report.view.ReportView` into the page: a summary
(cameras by vendor, how many talk outside the site, to how many countries and ASes, bytes
up), a bar chart of bytes per country (an inline SVG: no map data to ship or license), the
top ASes and names, cloud/P2P registrations, exposure (reached from outside), audio, every
finding most severe first, then one section per camera (identity, how it was recognised,
where it talked with bytes each way, findings with their evidence fields), and the GeoIP
data's name, licence and required attribution in the header and footer. Printable:
``@media print`` starts each camera on a new page, keeps tables and findings whole, and
keeps the severity badges' colours.

Every string that reaches the page goes through :func:`esc` (``html.escape`` with quotes):
camera names, DNS names and banners come from the wire. The page loads nothing: no
``src``/``href`` to another resource, no font, no script, and a Content-Security-Policy
that forbids fetching anything should a later change add one by mistake.

Config read: none. Known limits: countries are ISO 3166 alpha-2 codes as the GeoIP data
gives them (no names); the bar charts show at most ``view.MAX_ROWS`` rows.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from netwatch.report.view import (
    LOCAL,
    CameraFinding,
    CameraView,
    Finding,
    PlatformUse,
    ReportView,
    TrafficRow,
    describe_how,
)
from netwatch.report.worldmap import world_map

#: Forbid every fetch: the page is complete in itself.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
BAR_WIDTH = 420
BAR_HEIGHT = 18
LABEL_WIDTH = 170
LABEL_CHARS = 24  # a longer label is cut in the chart (the table and the tooltip have it)
VALUE_WIDTH = 150
UNITS = ("B", "kB", "MB", "GB", "TB")
STEP = 1000

CSS = """
:root { --ink: #1d2733; --muted: #5b6675; --line: #d5dbe3; --up: #c2410c; --down: #2563eb;
  --critical: #7f1d1d; --high: #b91c1c; --medium: #b45309; --low: #4d7c0f; --info: #475569; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; border-bottom: 2px solid var(--ink); padding-bottom: 3px; margin-top: 32px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.meta, .muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; flex: 1 1 120px; }
.card .n { font-size: 26px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: break-word; }
th { background: #f1f4f8; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.findings { table-layout: fixed; }
table.findings th:nth-child(1) { width: 104px; } table.findings th:nth-child(2) { width: 150px; }
table.findings th:nth-child(3) { width: 24%; } table.findings th:nth-child(5) { width: 120px; }
table.traffic { table-layout: fixed; } table.traffic th:first-child { width: 52%; }
.sev { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff;
  font-size: 12px; font-weight: 600; text-transform: uppercase; white-space: nowrap;
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.sev.critical { background: var(--critical); } .sev.high { background: var(--high); }
.sev.medium { background: var(--medium); } .sev.low { background: var(--low); }
.sev.info, .sev.unknown { background: var(--info); }
.camera { margin-top: 40px; }
dl.id { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.id dt { color: var(--muted); } dl.id dd { margin: 0; overflow-wrap: anywhere; }
.finding { border-left: 4px solid var(--line); padding: 4px 10px; margin: 8px 0; }
.finding.critical, .finding.high { border-left-color: var(--high); }
.finding.medium { border-left-color: var(--medium); }
.finding dl { display: grid; grid-template-columns: max-content 1fr; gap: 0 12px; margin: 4px 0;
  font-size: 13px; }
.finding dt { color: var(--muted); } .finding dd { margin: 0; overflow-wrap: anywhere; }
svg.bars text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg.bars .up { fill: var(--up); } svg.bars .down { fill: var(--down); }
svg.map { width: 100%; height: auto; max-height: 400px; display: block; margin: 6px 0 10px; }
svg.map path { stroke: #fff; stroke-width: 0.3; } svg.map path.reached { stroke: #7f2704; }
.legend .up { color: var(--up); } .legend .down { color: var(--down); }
.none { color: var(--muted); font-style: italic; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  .camera { break-before: page; margin-top: 0; }
  h2, h3 { break-after: avoid; }
  table, .finding, svg { break-inside: avoid; }
  th { background: none; }
}
"""


def esc(value: object) -> str:
    """Text for the page: every string from the data is escaped, quotes included."""
    return html.escape(str(value), quote=True)


def human_bytes(n: int) -> str:
    """``1.6 MB``: bytes in decimal units (exact bytes go in the title attribute)."""
    size = float(n)
    for unit in UNITS:
        if size < STEP or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= STEP
    return f"{n} B"


def when(ts: float | None) -> str:
    """Packet time as ``2026-01-15 09:00:02 UTC`` ('' when unknown)."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _bytes_cell(n: int) -> str:
    return f'<td class="num" title="{n} bytes">{esc(human_bytes(n))}</td>'


def _table(head: Sequence[str], rows: Iterable[str], empty: str, cls: str = "") -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="none">{esc(empty)}</p>'
    cells = "".join(
        f'<th class="num">{esc(h[1:])}</th>' if h.startswith("#") else f"<th>{esc(h)}</th>"
        for h in head
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _traffic_rows(rows: Iterable[TrafficRow], cameras: bool) -> Iterable[str]:
    for r in rows:
        label = esc(r.label) + (f' <span class="muted">{esc(r.detail)}</span>' if r.detail else "")
        count = f'<td class="num">{r.cameras}</td>' if cameras else ""
        yield (
            f"<tr><td>{label}</td>{count}{_bytes_cell(r.bytes_out)}{_bytes_cell(r.bytes_in)}"
            f'<td class="num">{r.flows}</td></tr>'
        )


def traffic_table(
    rows: Sequence[TrafficRow], what: str, empty: str, *, cameras: bool = False
) -> str:
    """A table of traffic rows: label, (with ``cameras``: how many cameras), bytes up (sent
    by the camera), bytes down, flows."""
    head = (what, *(("#cameras",) if cameras else ()), "#sent (up)", "#received (down)", "#flows")
    return _table(head, _traffic_rows(rows, cameras), empty, "traffic")


def bar_chart(rows: Sequence[TrafficRow], title: str) -> str:
    """An inline SVG bar chart: per row, bytes sent (up) and received (down), scaled to the
    largest value; '' without rows."""
    if not rows:
        return ""
    top = max(max(r.bytes_out, r.bytes_in) for r in rows) or 1
    step = BAR_HEIGHT * 2 + 8
    height = step * len(rows) + 4
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg class="bars" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>{esc(title)}</title>"
    ]
    for i, r in enumerate(rows):
        y = i * step + 2
        up = max(1, round(BAR_WIDTH * r.bytes_out / top)) if r.bytes_out else 0
        down = max(1, round(BAR_WIDTH * r.bytes_in / top)) if r.bytes_in else 0
        mid = y + BAR_HEIGHT
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{mid + 4}" text-anchor="end">'
            f"{esc(_cut(r.label))}<title>{esc(r.label)}</title></text>"
            f'<rect class="up" x="{LABEL_WIDTH}" y="{y}" width="{up}" height="{BAR_HEIGHT - 2}">'
            f"<title>{esc(r.label)}: {r.bytes_out} bytes sent</title></rect>"
            f'<rect class="down" x="{LABEL_WIDTH}" y="{mid}" width="{down}" '
            f'height="{BAR_HEIGHT - 2}"><title>{esc(r.label)}: {r.bytes_in} bytes received'
            f"</title></rect>"
            f'<text x="{LABEL_WIDTH + up + 6}" y="{y + 13}">{esc(human_bytes(r.bytes_out))} up'
            f"</text>"
            f'<text x="{LABEL_WIDTH + down + 6}" y="{mid + 13}">'
            f"{esc(human_bytes(r.bytes_in))} down</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def _legend() -> str:
    return (
        '<p class="legend muted"><span class="up">&#9632; sent by the cameras (up)</span> '
        '&nbsp; <span class="down">&#9632; received (down)</span></p>'
    )


def _severity(sev: str) -> str:
    return f'<span class="sev {esc(sev)}">{esc(sev)}</span>'


def _summary(view: ReportView) -> str:
    s = view.summary
    cards = [
        (s.cameras, "cameras recognised"),
        (s.talking_outside, "talk outside the site"),
        (s.on_platforms, "registered with a cloud/P2P platform"),
        (len(s.countries), "countries reached"),
        (s.asns, "networks (AS) reached"),
        (human_bytes(s.bytes_up), "sent outside the site"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="n">{esc(n)}</div><div class="muted">{esc(t)}</div></div>'
        for n, t in cards
    )
    vendors = _table(
        ("vendor", "#cameras", "#talk outside the site"),
        (
            f'<tr><td>{esc(v.vendor)}</td><td class="num">{v.cameras}</td>'
            f'<td class="num">{v.outside}</td></tr>'
            for v in s.by_vendor
        ),
        "No camera was recognised.",
        "traffic",
    )
    countries = ", ".join(esc(c) for c in s.countries) or "none"
    findings = ", ".join(f"{_severity(sev)} {n}" for sev, n in s.findings_by_severity) or "none"
    return (
        '<section id="summary"><h2>Summary</h2>'
        f"<div class=cards>{card_html}</div>"
        f"<p>Countries reached: {countries}</p><p>Findings: {findings}</p>"
        f"<h3>Cameras by vendor</h3>{vendors}</section>"
    )


def _where(view: ReportView) -> str:
    chart = bar_chart(view.countries, "Bytes per country outside the site")
    return (
        '<section id="countries"><h2>Where the cameras talk: countries</h2>'
        '<p class="muted">Peers outside the site, all cameras together; "unknown" is a peer '
        "the GeoIP data has no country for. On the map, the darker a country, the more the "
        "cameras sent there.</p>"
        + (world_map(view.countries) if view.countries else "")
        + (_legend() + chart if chart else "")
        + traffic_table(
            view.countries, "country", "No camera talked outside the site.", cameras=True
        )
        + '</section><section id="asns"><h2>Top networks (AS)</h2>'
        + traffic_table(view.asns, "AS", "No network outside the site was reached.", cameras=True)
        + '</section><section id="names"><h2>Top names</h2>'
        '<p class="muted">The names the cameras asked for (TLS SNI, HTTP Host, DNS).</p>'
        + traffic_table(view.names, "name", "No name was seen.", cameras=True)
        + "</section>"
    )


def _platforms(uses: Sequence[PlatformUse], findings: Sequence[CameraFinding]) -> str:
    rows = (
        f"<tr><td>{esc(u.platform.name)}</td><td>{_camera_link(u.camera)}</td>"
        f"<td>{esc(when(u.platform.first_seen))}</td><td>{esc(when(u.platform.last_seen))}</td>"
        f'<td class="num">{u.platform.flows}</td></tr>'
        for u in uses
    )
    return (
        '<section id="platforms"><h2>Cloud and P2P registrations</h2>'
        + _table(
            ("platform", "camera", "first seen", "last seen", "#flows"),
            rows,
            "No camera registered with a cloud or P2P platform.",
        )
        + _finding_table(findings, "")
        + "</section>"
    )


def _finding_table(findings: Sequence[CameraFinding], empty: str) -> str:
    rows = (
        f"<tr><td>{_severity(cf.finding.severity)}</td><td>{esc(cf.finding.rule)}</td>"
        f"<td>{_camera_link(cf.camera)}</td><td>{esc(cf.finding.summary)}</td>"
        f"<td>{esc(when(cf.finding.first))}</td></tr>"
        for cf in findings
    )
    head = ("severity", "rule", "camera", "what", "first seen")
    return _table(head, rows, empty, "findings")


def _camera_link(cam: CameraView) -> str:
    return f'<a href="#{esc(_anchor(cam))}">{esc(cam.title)}</a>'


def _anchor(cam: CameraView) -> str:
    return "cam-" + "".join(ch if ch.isalnum() else "-" for ch in cam.id)


def _identity(cam: CameraView) -> str:
    fields = (
        ("inventory name", cam.name),
        ("vendor", cam.vendor or "not named by any camera signal"),
        ("MAC registered to", cam.mac_vendor),
        ("model", cam.model),
        ("firmware", cam.firmware),
        ("serial", cam.serial),
        ("MAC", ", ".join(cam.macs)),
        ("IPv4", ", ".join(cam.ipv4)),
        ("IPv6", ", ".join(cam.ipv6)),
        ("recognised by", "; ".join(describe_how(h) for h in cam.recognised_by)),
        ("group", cam.group),
        ("in the inventory", "yes" if cam.managed else "no"),
        ("first seen", when(cam.first_seen)),
        ("last seen", when(cam.last_seen)),
        ("sent outside the site", human_bytes(cam.bytes_out_external)),
    )
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in fields if v)
    return f'<dl class="id">{items}</dl>'


def finding_html(f: Finding) -> str:
    """One finding: severity, rule, summary, when, peer, and every evidence field."""
    span = when(f.first) + (f" .. {when(f.last)}" if f.last and f.last != f.first else "")
    facts = [
        ("seen", f"{f.count} time{'' if f.count == 1 else 's'}, {span}"),
        ("status", "still going when the data ends" if f.open else "ended"),
        ("reached", f.reached),
        ("peer", " ".join(p for p in (f.peer, f.peer_country) if p)),
        ("direction", f.direction),
        *f.evidence,
    ]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts if v)
    return (
        f'<div class="finding {esc(f.severity)}"><div>{_severity(f.severity)} '
        f"<strong>{esc(f.rule)}</strong>: {esc(f.summary)}</div><dl>{items}</dl></div>"
    )


def camera_html(cam: CameraView) -> str:
    """One camera's section."""
    outside = tuple(r for r in cam.countries if r.label != LOCAL)
    local = tuple(r for r in cam.countries if r.label == LOCAL)
    local_line = (
        f'<p class="muted">Inside the site: {esc(human_bytes(local[0].bytes_out))} sent, '
        f"{esc(human_bytes(local[0].bytes_in))} received in {local[0].flows} flows.</p>"
        if local
        else ""
    )
    platforms = ", ".join(esc(p.name) for p in cam.platforms) or "none seen"
    findings = "".join(finding_html(f) for f in cam.findings) or '<p class="none">None.</p>'
    chart = bar_chart(outside, f"{cam.title}: bytes per country")
    return (
        f'<section class="camera" id="{esc(_anchor(cam))}"><h2>{esc(cam.title)}</h2>'
        f"{_identity(cam)}<p>Cloud/P2P platforms: {platforms}</p>"
        "<h3>Where it talked</h3>"
        + local_line
        + (chart or "")
        + traffic_table(outside, "country", "Nothing outside the site.")
        + traffic_table(cam.asns, "AS", "No network outside the site.")
        + traffic_table(cam.names, "name", "No name seen.")
        + f"<h3>Findings</h3>{findings}</section>"
    )


def _contents(view: ReportView) -> str:
    links = "".join(f"<li>{_camera_link(c)}</li>" for c in view.cameras)
    return f"<nav><h2>Cameras</h2><ol>{links}</ol></nav>" if links else ""


def _source(lines: Sequence[str]) -> str:
    """What the data came from: the line itself, or a count with the list folded away."""
    if not lines:
        return "an unknown source"
    if len(lines) == 1:
        return esc(lines[0])
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f"<details><summary>{len(lines)} inputs</summary><ul>{items}</ul></details>"


def render(view: ReportView) -> str:
    """The whole page."""
    site = f": site {esc(view.site)}" if view.site else ""
    source = _source(view.source)
    generated = esc(view.generated) if view.generated else "unknown time"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>netwatch camera audit{site}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Camera audit{site}</h1>"
        f'<div class="meta">Generated {generated} by netwatch from {source}</div>'
        + (f'<div class="meta" id="geoip">{esc(view.geoip.line)}</div>' if view.geoip else "")
        + "</header>"
        + _summary(view)
        + _where(view)
        + _platforms(view.platforms, view.registrations)
        + '<section id="exposure"><h2>Exposure: reached from outside the site</h2>'
        + _finding_table(view.exposure, "No camera was reached from outside the site.")
        + '</section><section id="audio"><h2>Audio</h2>'
        + _finding_table(view.audio, "No camera offered or sent audio.")
        + '</section><section id="findings"><h2>All findings, most severe first</h2>'
        + _finding_table(view.findings, "No rule found anything.")
        + (
            f'<p class="muted">{view.findings_not_listed} more in the camera sections.</p>'
            if view.findings_not_listed
            else ""
        )
        + "</section>"
        + (
            f'<p class="muted">{view.not_shown} more cameras in the inventory are not shown.</p>'
            if view.not_shown
            else ""
        )
        + _contents(view)
        + "".join(camera_html(c) for c in view.cameras)
        + (f'<footer class="meta">{esc(view.geoip.line)}</footer>' if view.geoip else "")
        + "</body></html>\n"
    )
