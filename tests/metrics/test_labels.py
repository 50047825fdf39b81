"""ConstLabels: a real prometheus_client registry, scraped over HTTP through the wrapper."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from netwatch.config import Config
from netwatch.metrics.labels import ConstLabels, labelled_registry, site_labels
from netwatch.metrics.server import MetricsServer


def real_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    alerts = Counter("nwtest_alerts", "Alerts.", ["rule"], registry=registry)
    alerts.labels(rule="rogue_dns").inc(3)
    Gauge("nwtest_flows", "Active flows.", registry=registry).set(7)
    lag = Histogram("nwtest_lag_seconds", "Lag.", buckets=(0.1, 1.0), registry=registry)
    lag.observe(0.5)
    ProcessCollector(registry=registry)
    return registry


def scrape(registry: CollectorRegistry) -> str:
    with MetricsServer(registry, 0, host="127.0.0.1") as server:  # started on entry
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body: bytes = resp.read()
    return body.decode()


def test_every_scraped_sample_carries_the_site_label() -> None:
    inner = real_registry()
    text = scrape(labelled_registry(inner, {"site": "hq-north"}))
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    names = {s.name for s in samples}
    assert {"nwtest_alerts_total", "nwtest_flows", "nwtest_lag_seconds_bucket"} <= names
    assert any(n.startswith("process_") for n in names)
    assert all(s.labels.get("site") == "hq-north" for s in samples), samples
    counter = next(s for s in samples if s.name == "nwtest_alerts_total")
    assert counter.labels == {"rule": "rogue_dns", "site": "hq-north"} and counter.value == 3
    buckets = [s for s in samples if s.name == "nwtest_lag_seconds_bucket"]
    assert {s.labels["le"] for s in buckets} == {"0.1", "1.0", "+Inf"}
    # the wrapped registry itself is unchanged
    assert all("site" not in s.labels for fam in inner.collect() for s in fam.samples)


def test_a_series_keeps_its_own_label_of_the_same_name() -> None:
    registry = CollectorRegistry()
    Gauge("nwtest_peer", "Peer.", ["site"], registry=registry).labels(site="remote").set(1)
    Gauge("nwtest_other", "Other.", registry=registry).set(2)
    wrapped = ConstLabels(registry, {"site": "local"})
    got = {s.name: s.labels for fam in wrapped.collect() for s in fam.samples}
    assert got == {"nwtest_peer": {"site": "remote"}, "nwtest_other": {"site": "local"}}


def test_several_collectors_can_be_wrapped() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Gauge("nwtest_a", "A.", registry=a).set(1)
    Gauge("nwtest_b", "B.", registry=b).set(2)
    wrapped = ConstLabels([a, b], {"site": "x"})
    assert [fam.name for fam in wrapped.collect()] == ["nwtest_a", "nwtest_b"]


def test_site_label_follows_the_config() -> None:
    registry = real_registry()
    assert site_labels(Config.default()) == {}
    assert labelled_registry(registry, site_labels(Config.default())) is registry
    cfg = Config.from_yaml("site: {name: hq-north}\nmetrics: {site_label: true}\n")
    assert site_labels(cfg) == {"site": "hq-north"}
