"""Constant labels on every exported series: tell several sensors apart in one Prometheus.

:class:`ConstLabels` is a collector that wraps other collectors (a whole
:class:`~prometheus_client.CollectorRegistry` is one) and adds fixed labels to every sample
they yield, at scrape time; :func:`labelled_registry` returns the registry to serve in
place of the wrapped one. :func:`site_labels` is the config option: with
``metrics.site_label: true`` every series gets ``site="<site.name>"``.

Config read (by :func:`site_labels`): ``metrics.site_label``, ``site.name``.

Known limits: a series that already has a label of the same name keeps its own value (the
constant label is not added to it), as Prometheus' ``honor_labels: true`` would; netwatch's
own series have no ``site`` label. The wrapper copies each metric family per scrape (a few
microseconds per series).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from netwatch.config import Config

SITE_LABEL = "site"


@runtime_checkable
class Collecting(Protocol):
    """Anything with ``collect()``: a collector or a whole registry."""

    def collect(self) -> Iterable[Metric]: ...


class ConstLabels(Collector):
    """Wraps collectors (or registries) and adds ``labels`` to every sample they yield."""

    def __init__(self, inner: Collecting | Iterable[Collecting], labels: Mapping[str, str]) -> None:
        self.inner: tuple[Collecting, ...] = (
            (inner,) if isinstance(inner, Collecting) else tuple(inner)
        )
        self.labels: Mapping[str, str] = MappingProxyType(dict(labels))

    def collect(self) -> Iterator[Metric]:
        for collector in self.inner:
            for metric in collector.collect():
                yield self._labelled(metric)

    def _labelled(self, metric: Metric) -> Metric:
        out = copy.copy(metric)
        out.samples = [s._replace(labels={**self.labels, **s.labels}) for s in metric.samples]
        return out


class LabelledRegistry(CollectorRegistry):
    """A registry whose every collector, also one registered later (the metrics server's
    own counters), is wrapped in :class:`ConstLabels`."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        super().__init__(auto_describe=False)
        self.labels: Mapping[str, str] = MappingProxyType(dict(labels))

    def register(self, collector: Collector) -> None:
        super().register(ConstLabels(collector, self.labels))


def labelled_registry(registry: CollectorRegistry, labels: Mapping[str, str]) -> CollectorRegistry:
    """The registry to serve: ``registry`` itself without labels, else a
    :class:`LabelledRegistry` holding ``registry`` (and whatever is registered on it later)."""
    if not labels:
        return registry
    outer = LabelledRegistry(labels)
    outer.register(registry)
    return outer


def site_labels(cfg: Config) -> Mapping[str, str]:
    """``{"site": site.name}`` when ``metrics.site_label`` is true, else no labels."""
    return {SITE_LABEL: cfg.site.name} if cfg.metrics.site_label else {}
