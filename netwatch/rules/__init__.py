"""Detection rules: one module per rule id (DESIGN.md), each yielding alerts with evidence.

:data:`BUILTIN_RULES` is the explicit set the pipeline runs; a test checks it against the
registry, so a rule module that is written but not listed (or listed twice) is caught.
"""

from __future__ import annotations

from netwatch.rules.audio_stream import AudioStream
from netwatch.rules.base import REGISTRY, Rule
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

__all__ = ["BUILTIN_RULES", "REGISTRY", "Rule"]
