"""Read the shipped Grafana dashboards and turn their queries into plain PromQL.

``dashboard_queries`` returns every Prometheus expression of a dashboard (panel targets,
panels nested in collapsed rows, and template-variable queries that wrap PromQL) with the
Grafana variables replaced, so each one can be sent as-is to Prometheus's ``/api/v1/query``:

- ``$__rate_interval`` -> ``1m``, ``$__interval`` -> ``30s``, ``$__range`` -> ``5m``
  (and the ``_s``/``_ms`` variants as plain numbers);
- a label matcher whose value mentions any variable (``$v``, ``${v}``, ``${v:fmt}``,
  ``[[v]]``) becomes a regex matcher on ``.+``: ``camera="$camera"`` -> ``camera=~".+"``,
  ``camera!="$camera"`` -> ``camera!~".+"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"

_BUILTIN_INTERVALS = (
    ("__rate_interval_ms", "60000"),
    ("__rate_interval", "1m"),
    ("__interval_ms", "30000"),
    ("__interval", "30s"),
    ("__range_ms", "300000"),
    ("__range_s", "300"),
    ("__range", "5m"),
)
_VARIABLE = r"(?:\$\{\w+(?::[\w-]+)?\}|\$\w+|\[\[\w+(?::[\w-]+)?\]\])"
_STRING = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`"
_MATCHER = re.compile(rf"(?P<label>[A-Za-z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>{_STRING})")
_HAS_VARIABLE = re.compile(_VARIABLE)
# Prometheus template-variable functions whose argument is (or contains) PromQL.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<expr>.+),\s*[A-Za-z_]\w*\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(?P<expr>.+)\)\s*$", re.S)
_NOT_PROMQL = re.compile(r"^\s*(label_values|label_names|metrics)\(", re.S)


def dashboard_files() -> list[Path]:
    """The dashboard JSON files shipped in ``grafana/dashboards``, sorted by name."""
    return sorted(DASHBOARD_DIR.glob("*.json"))


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced so that Prometheus accepts it."""
    for name, value in _BUILTIN_INTERVALS:
        expr = re.sub(rf"\$\{{{name}\}}|\$\{name}\b|\[\[{name}\]\]", value, expr)

    def matcher(m: re.Match[str]) -> str:
        if not _HAS_VARIABLE.search(m["value"]):
            return m[0]
        op = "!~" if m["op"].startswith("!") else "=~"
        return f'{m["label"]}{op}".+"'

    return _MATCHER.sub(matcher, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _is_prometheus(datasource: Any) -> bool:
    if datasource is None:
        return True  # inherits the dashboard's (Prometheus) data source
    if isinstance(datasource, dict):
        return bool(datasource.get("type", "prometheus") == "prometheus")
    return True  # a name or a ${variable}


def _variable_promql(variable: dict[str, Any]) -> str | None:
    """The PromQL inside a query variable, or ``None`` when it wraps none."""
    if variable.get("type") != "query" or not _is_prometheus(variable.get("datasource")):
        return None
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, dict) else query
    if not isinstance(text, str) or not text.strip():
        return None
    if m := _QUERY_RESULT.match(text):
        return m["expr"].strip()
    if m := _LABEL_VALUES.match(text):
        return m["expr"].strip()
    if _NOT_PROMQL.match(text):
        return None  # label_values(label), label_names(), metrics(regex): no expression
    return text.strip()


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every Prometheus query of the dashboard at ``path``.

    Template-variable queries are reported with the title ``variable <name>``. Expressions
    have the Grafana variables substituted (see the module docstring).
    """
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries: list[tuple[str, str]] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if (expr := _variable_promql(variable)) is not None:
            queries.append((f"variable {variable.get('name', '')}", substitute(expr)))
    for panel in _panels(dashboard.get("panels", [])):
        if not _is_prometheus(panel.get("datasource")):
            continue
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip() and _is_prometheus(target.get("datasource")):
                queries.append((str(panel.get("title", "")), substitute(expr)))
    return queries
