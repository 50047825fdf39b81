"""netwatch_cameras_recognised{how}: the daemon's metrics say how many cameras were seen."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.metrics.collector import NetwatchCollector
from netwatch.pipeline import Pipeline
from tests.metrics.conftest import Run

NAME = "netwatch_cameras_recognised"


def test_inventory_camera_is_counted(run: Run) -> None:
    assert run.registry.get_sample_value(NAME, {"how": "inventory"}) == 1
    assert run.registry.get_sample_value(NAME, {"how": "mac_prefix"}) is None


def test_no_camera_gives_an_empty_family() -> None:
    pipe = Pipeline(Config.default(), lambda rec: None, geo=NullGeo(), on_alert=lambda a, n: None)
    registry = CollectorRegistry()
    registry.register(NetwatchCollector(pipe))
    fams = [f for f in registry.collect() if f.name == NAME]
    assert len(fams) == 1 and fams[0].samples == []
