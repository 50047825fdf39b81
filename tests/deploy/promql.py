"""A light PromQL scanner: the metric selectors an expression uses (names and label names).

It is no parser; Prometheus itself checks the syntax (``test_grafana`` / ``promtool``).
It strips string literals, then reads each identifier that starts a vector selector.
"""

from __future__ import annotations

import re

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_SELECTOR = re.compile(r"(?<![\w:.])(?P<name>[A-Za-z_:][\w:]*)\s*(?P<labels>\{[^}]*\})?")
_LABEL_NAME = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "inf", "nan",
    }
)  # fmt: skip


def selectors(expr: str) -> list[tuple[str, frozenset[str]]]:
    """``(metric name, label names matched)`` for each named vector selector in ``expr``."""
    # Blank out strings but keep a placeholder so `{a="x"}` still reads as a matcher.
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range / subquery durations
    found: list[tuple[str, frozenset[str]]] = []
    for m in _SELECTOR.finditer(text):
        name = m["name"]
        rest = text[m.end() :].lstrip()
        if name.lower() in _KEYWORDS or (rest.startswith("(") and not m["labels"]):
            continue  # keyword, or function / aggregation call
        if name[0].isdigit():
            continue
        labels = frozenset(_LABEL_NAME.findall(m["labels"] or ""))
        found.append((name, labels))
    return found
