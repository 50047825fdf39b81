"""Detection rules: one module per rule id (DESIGN.md), each yielding alerts with evidence.

:data:`BUILTIN_RULES` is the explicit set of flow rules the detector runs on ended flows;
:data:`BUILTIN_SENSOR_RULES` the sensor rules the daemon feeds with capture counters
(:func:`sensor_rules`). A test imports every module of this package and fails on one that
defines a rule missing from these tuples (it would never run), or that defines no rule and
is not a declared helper. Reads no configuration (see each rule's module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netwatch.rules.audio_stream import AudioStream
from netwatch.rules.base import REGISTRY, Rule, SensorRule, SensorRules
from netwatch.rules.capture_loss import CaptureLoss
from netwatch.rules.cloud_enabled import CloudEnabled
from netwatch.rules.cloud_registration import CloudRegistration
from netwatch.rules.denied_country import DeniedCountry
from netwatch.rules.inbound_access import InboundAccess
from netwatch.rules.nat_traversal import NatTraversal
from netwatch.rules.new_destination import NewDestination
from netwatch.rules.outbound_stream import OutboundStream
from netwatch.rules.rogue_dns import RogueDns
from netwatch.rules.unexpected_egress import UnexpectedEgress
from netwatch.rules.unmanaged_device import UnmanagedDevice
from netwatch.rules.upnp_port_mapping import UpnpPortMapping

BUILTIN_RULES: tuple[type[Rule], ...] = (
    CloudRegistration,
    CloudEnabled,
    UnexpectedEgress,
    OutboundStream,
    DeniedCountry,
    RogueDns,
    InboundAccess,
    AudioStream,
    NatTraversal,
    UpnpPortMapping,
    UnmanagedDevice,
    NewDestination,
)

BUILTIN_SENSOR_RULES: tuple[type[SensorRule], ...] = (CaptureLoss,)

#: Modules of this package that define no rule (the walk test allows exactly these).
HELPER_MODULES = frozenset({"", "base"})

if TYPE_CHECKING:
    from netwatch.config import Config

__all__ = [
    "BUILTIN_RULES",
    "BUILTIN_SENSOR_RULES",
    "HELPER_MODULES",
    "REGISTRY",
    "Rule",
    "SensorRule",
    "SensorRules",
    "sensor_rules",
]


def sensor_rules(cfg: Config) -> SensorRules:
    """Every built-in sensor rule, configured from ``cfg``: the daemon calls
    ``on_capture(now, source.counts())`` on the result at each housekeeping turn."""
    return SensorRules.from_config(cfg, BUILTIN_SENSOR_RULES)
