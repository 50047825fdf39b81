"""The Grafana dashboards: model conventions, metric names, and PromQL accepted by Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.dashboards import dashboard_files, dashboard_queries, substitute
from tests.deploy.metric_names import METRIC_LABELS, TARGET_LABELS
from tests.deploy.promql import selectors

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_UIDS = frozenset({"netwatch-overview", "netwatch-camera", "netwatch-health"})
NO_QUERY_PANELS = frozenset({"row", "text"})
FILES = dashboard_files()


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_panels(dashboard["panels"]))


def _variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = dashboard["templating"]["list"]
    return variables


def _raw_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _all_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


dashboards = pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])


def test_three_dashboards_with_stable_unique_uids() -> None:
    uids = [_load(path)["uid"] for path in FILES]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    for path in FILES:
        assert path.stem == _load(path)["uid"], "file name = uid keeps provisioning stable"


@dashboards
def test_dashboard_model(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    dashboard = _load(path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,40}", dashboard["uid"])
    assert dashboard["title"].startswith("netwatch")
    assert dashboard["id"] is None
    assert dashboard["tags"] == ["netwatch"]
    assert isinstance(dashboard["schemaVersion"], int) and 36 <= dashboard["schemaVersion"] <= 42
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "DS_PROMETHEUS" not in text
    links = dashboard["links"]
    assert any(link["type"] == "dashboards" and "netwatch" in link["tags"] for link in links)


@dashboards
def test_datasource_variable(path: Path) -> None:
    variables = _variables(_load(path))
    matches = [v for v in variables if v["name"] == "datasource"]
    assert len(matches) == 1
    (variable,) = matches
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    for other in variables:
        if other["type"] == "query":
            assert other["datasource"] == DATASOURCE, other["name"]


@dashboards
def test_every_panel_and_target_uses_the_datasource_variable(path: Path) -> None:
    for panel in _all_panels(_load(path)):
        if panel["type"] in NO_QUERY_PANELS:
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


@dashboards
def test_panel_ids_and_layout(path: Path) -> None:
    panels = _all_panels(_load(path))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"].strip()
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in "hwxy")
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] not in NO_QUERY_PANELS:
            assert panel.get("description"), f"{panel['title']}: describe the panel"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: set a unit"


@dashboards
def test_rates_use_grafana_intervals(path: Path) -> None:
    for title, expr in _raw_exprs(_load(path)):
        windows = re.findall(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]*)\]", expr)
        if "_total" in expr:
            assert windows, f"{title}: query counters through rate() or increase()"
        for window in windows:
            assert window in ("$__rate_interval", "$__range"), f"{title}: [{window}]"


@dashboards
def test_geomaps_look_up_country_codes(path: Path) -> None:
    for panel in _all_panels(_load(path)):
        if panel["type"] != "geomap":
            continue
        for layer in panel["options"]["layers"]:
            location = layer["location"]
            assert location["mode"] == "lookup"
            assert location["gazetteer"] == "public/gazetteer/countries.json"
            assert location["lookup"] == "country"
        for target in panel["targets"]:
            assert "sum by (country)" in target["expr"], panel["title"]


@dashboards
def test_queries_use_only_exported_metrics_and_labels(path: Path) -> None:
    queries = dashboard_queries(path)
    assert queries
    for title, expr in queries:
        found = selectors(expr)
        assert found, f"{title}: no metric in {expr!r}"
        for name, labels in found:
            assert name in METRIC_LABELS, f"{title}: {name} is not a netwatch metric"
            unknown = labels - METRIC_LABELS[name] - TARGET_LABELS
            assert not unknown, f"{title}: {name} has no label(s) {sorted(unknown)}"


def test_camera_dashboard_variables() -> None:
    (path,) = [p for p in FILES if p.stem == "netwatch-camera"]
    variables = {v["name"]: v for v in _variables(_load(path))}
    for name in ("group", "camera"):
        assert variables[name]["multi"] and variables[name]["includeAll"], name
        assert "netwatch_camera_sent_bytes_total" in variables[name]["definition"]
    assert 'group=~"$group"' in variables["camera"]["definition"]
    # "All" must expand to the listed cameras: the country/ASN metrics have no group label.
    assert "allValue" not in variables["camera"]
    queries = dict(dashboard_queries(path))
    assert queries["variable camera"] == (
        'netwatch_camera_sent_bytes_total{job=~".+", instance=~".+", group=~".+"}'
    )


# ------------------------------------------------------------------ the helper module


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rate(x[$__rate_interval])", "rate(x[1m])"),
        ("rate(x[${__rate_interval}])", "rate(x[1m])"),
        ("increase(x[$__range]) / $__range_s", "increase(x[5m]) / 300"),
        ("avg_over_time(x[$__interval])", "avg_over_time(x[30s])"),
        ('x{camera="$camera"}', 'x{camera=~".+"}'),
        ('x{camera=~"${camera:regex}", group = "[[group]]"}', 'x{camera=~".+", group=~".+"}'),
        ('x{camera!="$camera", job="netwatch"}', 'x{camera!~".+", job="netwatch"}'),
        ('x{camera=~"lobby-$n|hall"}', 'x{camera=~".+"}'),
        ('label_replace(x, "a", "$1", "b", "(.*)")', 'label_replace(x, "a", "$1", "b", "(.*)")'),
    ],
)
def test_substitute(expr: str, expected: str) -> None:
    assert substitute(expr) == expected


def test_dashboard_queries_reads_nested_rows_and_variables(tmp_path: Path) -> None:
    target = {"datasource": DATASOURCE, "refId": "A", "expr": 'y{camera="$camera"}'}
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "a", "type": "query", "query": {"query": 'label_values(x{j=~"$j"}, c)'}},
                {"name": "b", "type": "query", "query": "query_result(topk(3, x))"},
                {"name": "c", "type": "query", "query": "label_values(c)"},
                {"name": "d", "type": "custom", "query": "a,b"},
            ]
        },
        "panels": [
            {"type": "row", "title": "r", "panels": [{"title": "nested", "targets": [target]}]},
            {"type": "text", "title": "t"},
            {"title": "loki", "datasource": {"type": "loki", "uid": "l"}, "targets": [target]},
        ],
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard), encoding="utf-8")
    assert dashboard_queries(path) == [
        ("variable a", 'x{j=~".+"}'),
        ("variable b", "topk(3, x)"),
        ("nested", 'y{camera=~".+"}'),
    ]


# ------------------------------------------------------------------ PromQL via Prometheus


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away Prometheus on 127.0.0.1 with no scrape targets (only its query API)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not on PATH (CI installs the Debian prometheus package)")
    root = tmp_path_factory.mktemp("prometheus")
    config = root / "prometheus.yml"
    config.write_text("scrape_configs: []\n", encoding="utf-8")
    url = f"http://127.0.0.1:{_free_port()}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--log.level=warn",
    ]
    with (root / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                log_text = (root / "prometheus.log").read_text(errors="replace")
                pytest.fail(f"prometheus exited with {process.returncode}:\n{log_text}")
            try:
                if _get(f"{url}/-/ready", timeout=0.5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus did not become ready within 15 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(url: str, expr: str) -> dict[str, Any]:
    body = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(f"{url}/api/v1/query", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            data = json.loads(error.read())
    return data


@dashboards
def test_queries_are_valid_promql(path: Path, prometheus_url: str) -> None:
    errors = []
    for title, expr in dashboard_queries(path):
        answer = _query(prometheus_url, expr)
        if answer.get("status") != "success":
            errors.append(f"{title}: {answer.get('error')}\n    {expr}")
    assert not errors, "\n".join(errors)


def test_prometheus_rejects_bad_promql(prometheus_url: str) -> None:
    """The check above can fail: Prometheus answers syntax and type errors with status error."""
    assert _query(prometheus_url, "sum(rate(x[1m])")["status"] == "error"
    assert _query(prometheus_url, "rate(x)")["status"] == "error"
    assert _query(prometheus_url, "sum(rate(x[1m]))")["status"] == "success"
