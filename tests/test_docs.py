"""The documentation agrees with the code: metrics, their labels, and the alert rules.

A real daemon (``netwatch run``) replays the demo capture in a loop with the features that
export metrics turned on (evidence, a sink, the baseline), and its ``/metrics`` page is the
truth the docs are compared with:

- every metric in README's metrics table exists, and every ``netwatch_*`` metric the daemon
  exports is in that table;
- each table row names exactly the label names its metrics carry (label values, written in
  parentheses after a label, are left out of the comparison);
- ``tests/deploy/metric_names.py`` (what the dashboard and alerting-rule checks compare
  with) lists only exported metrics, each with exactly its labels;
- every ``netwatch_*`` name in ``grafana/README.md`` is exported;
- README's two rule tables list exactly the flow rules of the registry and the sensor's own
  rules, each with its default severity first.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netwatch.signatures.loader import RULE_IDS
from tests.deploy.metric_names import METRIC_LABELS
from tests.integration.stack import LOOPBACK, Proc, clean_env, free_port, http_get, poll

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GRAFANA_README = REPO / "grafana" / "README.md"
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
DEMO_CONFIG = REPO / "config" / "demo.yaml"

#: Exported metrics with no sample in this setup, so their labels cannot be read off the
#: scrape (each with the reason); their names are still checked.
NO_SAMPLES_EXPECTED = {
    "netwatch_decode_failures_total": "the demo capture decodes cleanly",
}
#: The sensor's own rules (README's second rule table), besides the flow rules.
SENSOR_RULES = frozenset({"capture_loss", "alert_flood"})


@dataclass(frozen=True, slots=True)
class Exported:
    """A metric as PromQL names it (counters with ``_total``), with its samples' labels."""

    name: str
    labels: frozenset[str]
    samples: int
    total: float  # the sum of its samples


def _exported(text: str) -> dict[str, Exported]:
    out: dict[str, Exported] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        for sample in family.samples:
            labels.update(sample.labels)
        labels.discard("le")
        total = sum(sample.value for sample in family.samples)
        out[name] = Exported(name, frozenset(labels), len(family.samples), total)
    return out


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    """The demo daemon's metrics once its first notifications went out."""
    tmp = tmp_path_factory.mktemp("docs")
    port = free_port()
    cfg = tmp / "netwatch.yaml"
    # the demo's inventory, so that unmanaged_device fires too
    cameras = "\n".join(
        line
        for line in DEMO_CONFIG.read_text(encoding="utf-8").splitlines()
        if line.startswith("  - {name: cam-")
    )
    cfg.write_text(
        f"capture: {{files: [{DEMO}], loop: true, realtime: true, speed: 20, user: null}}\n"
        f"metrics: {{listen: '{LOOPBACK}:{port}'}}\n"
        f"state_dir: {tmp / 'state'}\n"
        f"flow_log: {tmp / 'flows.jsonl'}\n"
        f"cameras:\n{cameras}\n"
        "alerts: {evaluate_active_s: 5, group_wait_s: 5}\n"
        "evidence: {enabled: true}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp / 'alerts.jsonl'}}}\n"
        "logging: {format: json, level: info}\n",
        encoding="utf-8",
    )
    argv = [sys.executable, "-m", "netwatch", "run", "-c", str(cfg)]
    proc = Proc("netwatch", argv, tmp / "netwatch.log", cwd=tmp, env=clean_env())
    url = f"http://{LOOPBACK}:{port}/metrics"

    def ready() -> dict[str, Exported] | None:
        try:
            status, body = http_get(url)
        except OSError:
            return None
        if status != 200:
            return None
        found = _exported(body.decode())
        alerts = found.get("netwatch_alerts_total")
        delivered = found.get("netwatch_sink_alerts_delivered_total")
        return found if alerts and alerts.total and delivered and delivered.total else None

    try:
        deadline = time.monotonic() + 60.0
        found = None
        while found is None and time.monotonic() < deadline and proc.running():
            found = poll(ready, 2.0)
        assert found is not None, proc.tail()
        return found
    finally:
        proc.stop()


# --------------------------------------------------------------------------- README tables


@dataclass(frozen=True, slots=True)
class Row:
    """One row of README's metrics table."""

    line: int
    names: tuple[str, ...]
    labels: frozenset[str]
    wildcard: tuple[str, ...]  # prefixes written as ``process_*``


_BRACES = re.compile(r"\{([^{}]*)\}")


def _expand(name: str) -> list[str]:
    """``a_{b,c}_d`` -> ``a_b_d``, ``a_c_d`` (nested and repeated groups)."""
    m = _BRACES.search(name)
    if m is None:
        return [name]
    out: list[str] = []
    for part in m[1].split(","):
        out.extend(_expand(name[: m.start()] + part + name[m.end() :]))
    return out


def _code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _table(text: str, header: str) -> Iterator[tuple[int, list[str]]]:
    """The rows (line number, cells) of the markdown table whose header line is ``header``."""
    lines = text.splitlines()
    start = lines.index(header)
    for number, line in enumerate(lines[start + 2 :], start + 3):
        if not line.startswith("|"):
            return
        yield number, [c.strip() for c in line.strip().strip("|").split("|")]


def metric_rows() -> list[Row]:
    rows = []
    for number, (names, labels, _what) in _table(
        README.read_text(encoding="utf-8"), "| family | labels | what |"
    ):
        spans = _code_spans(names)
        wildcard = tuple(s[:-1] for s in spans if s.endswith("*"))
        expanded = tuple(n for s in spans if not s.endswith("*") for n in _expand(s))
        # label values are written in parentheses after their label: not label names
        label_names = frozenset(_code_spans(re.sub(r"\([^()]*\)", "", labels)))
        rows.append(Row(number, expanded, label_names, wildcard))
    return rows


def test_the_readme_metrics_table_parses() -> None:
    rows = metric_rows()
    assert len(rows) > 20
    assert any("netwatch_camera_sent_bytes_total" in r.names for r in rows)
    assert _expand("a_{b,c}_{d,e}") == ["a_b_d", "a_b_e", "a_c_d", "a_c_e"]


def test_every_documented_metric_is_exported(scrape: Mapping[str, Exported]) -> None:
    missing = {
        f"README.md:{row.line}: {name}"
        for row in metric_rows()
        for name in row.names
        if name not in scrape
    }
    assert not missing, sorted(missing)


def test_every_exported_metric_is_documented(scrape: Mapping[str, Exported]) -> None:
    rows = metric_rows()
    documented = {n for r in rows for n in r.names}
    prefixes = tuple(p for r in rows for p in r.wildcard)
    undocumented = {
        name
        for name in scrape
        if name not in documented and not name.startswith(prefixes) and name.startswith("netwatch_")
    }
    assert not undocumented, sorted(undocumented)


def test_each_row_names_exactly_its_metrics_labels(scrape: Mapping[str, Exported]) -> None:
    wrong = []
    for row in metric_rows():
        present = [scrape[n] for n in row.names if n in scrape]
        sampled = [m for m in present if m.samples and m.name not in NO_SAMPLES_EXPECTED]
        if not sampled:
            continue
        actual = frozenset().union(*(m.labels for m in sampled))
        # every metric of the row sampled: exactly its labels; else at least those seen
        if actual != row.labels and (len(sampled) == len(present) or not actual <= row.labels):
            wrong.append(
                f"README.md:{row.line}: documents {sorted(row.labels)}, exports {sorted(actual)}"
            )
    assert not wrong, wrong


def test_no_sample_exceptions_are_still_needed(scrape: Mapping[str, Exported]) -> None:
    for name, why in NO_SAMPLES_EXPECTED.items():
        assert name in scrape, f"{name} ({why}) is not exported any more"
        assert not scrape[name].samples, f"{name} has samples now: drop it from the list"


def test_deployment_metric_list_matches_the_export(scrape: Mapping[str, Exported]) -> None:
    wrong = []
    for name, labels in METRIC_LABELS.items():
        found = scrape.get(name)
        if found is None:
            wrong.append(f"{name}: not exported")
        elif found.samples and name not in NO_SAMPLES_EXPECTED and found.labels != labels:
            wrong.append(f"{name}: listed {sorted(labels)}, exported {sorted(found.labels)}")
    assert not wrong, wrong


def test_grafana_readme_names_exported_metrics(scrape: Mapping[str, Exported]) -> None:
    names = set(re.findall(r"\bnetwatch_[a-z_]+", GRAFANA_README.read_text(encoding="utf-8")))
    assert names, "grafana/README.md names no metric"
    assert names <= set(scrape), sorted(names - set(scrape))


def rule_rows() -> dict[str, tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    rows: dict[str, tuple[int, str]] = {}
    for header in (
        "| rule | severity | fires when | evidence | false positives and how to allow-list |",
        "| rule | severity | fires when | evidence |",
    ):
        for number, cells in _table(text, header):
            (rule,) = _code_spans(cells[0])
            assert rule not in rows, f"README.md:{number}: {rule} listed twice"
            rows[rule] = (number, cells[1])
    return rows


def test_the_rule_tables_list_every_rule_once() -> None:
    rows = rule_rows()
    assert set(rows) == set(RULE_IDS) | SENSOR_RULES, set(rows) ^ (set(RULE_IDS) | SENSOR_RULES)


def test_the_rule_tables_give_each_flow_rule_the_severities_it_uses() -> None:
    """The severity cell names the severities the rule's module raises (``Severity.X``)."""
    rows = rule_rows()
    wrong = []
    for rule in RULE_IDS:
        source = (REPO / "netwatch" / "rules" / f"{rule}.py").read_text(encoding="utf-8")
        used = {s.lower() for s in re.findall(r"\bSeverity\.([A-Z]+)\b", source)}
        number, cell = rows[rule]
        documented = set(re.findall(r"\b(critical|high|medium|low|info)\b", cell))
        if used != documented:
            wrong.append(
                f"README.md:{number}: {rule} documents {sorted(documented)}, raises {sorted(used)}"
            )
    assert not wrong, wrong
