"""The sinks package against its built-in set: a sink module that is not listed fails.

Every module of :mod:`netwatch.sinks` is imported; one that defines a registered sink missing
from ``BUILTIN_SINKS`` (a type the config could never name on purpose) or that defines none
without being a helper fails the walk. The second test drops a real extra sink module into
the package and shows that the same walk then fails.
"""

from __future__ import annotations

from pathlib import Path

from netwatch.config.schema import SINK_TYPES
from netwatch.registry import PackageAudit, audit_package
from netwatch.sinks import BUILTIN_SINKS
from netwatch.sinks.base import Sink
from tests.registry_support import extra_module

PACKAGE = "netwatch.sinks"
HELPERS = frozenset({"", "base", "message"})


def audit() -> PackageAudit:
    return audit_package(PACKAGE, Sink.registry, BUILTIN_SINKS, HELPERS)


def test_every_sink_module_is_in_the_builtin_set() -> None:
    result = audit()
    assert result.ok, result
    assert {cls.name_ for cls in BUILTIN_SINKS} == set(SINK_TYPES)  # the config's types


def test_a_sink_module_missing_from_the_builtin_set_fails_the_walk(tmp_path: Path) -> None:
    source = """
        from netwatch.sinks.base import Sink

        class CarrierPigeonSink(Sink):
            pass
    """
    with extra_module(tmp_path, PACKAGE, "carrier_pigeon", source, Sink.registry):
        result = audit()
        assert "carrierpigeon" in Sink.registry
    assert result.unlisted == {"carrier_pigeon"} and not result.ok
    assert audit().ok  # and the package is clean again
