"""The vocabulary of ``new_destination`` baselines, shared by the decision and its storage.

A destination key is ``(device, dest, port, proto)``: the camera, the destination (the name
it asked for, else the peer's /24 or /48 network, see :func:`destination_of`), the peer port
and the transport. The in-memory decision (:mod:`netwatch.detect.baseline`) hands its
changes to the persistence edge (:mod:`netwatch.detect.baseline_store`) as the frozen
records below, and gets a :class:`BaselineSnapshot` back when it starts. No I/O here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple


class DestinationKey(NamedTuple):
    """One learnt (or new) destination of one camera."""

    device: str
    dest: str
    port: int
    proto: str


def destination_of(ip: bytes, name: str | None) -> str:
    """The baseline's destination: the name, else the /24 (IPv4) or /48 (IPv6) network."""
    if name:
        return name
    if len(ip) == 4:  # formatted directly: this runs at every camera flow end
        return f"{ip[0]}.{ip[1]}.{ip[2]}.0/24"
    return f"{ipaddress.IPv6Address(ip[:6] + bytes(10))}/48"


@dataclass(frozen=True, slots=True)
class DeviceFirstSeen:
    """A camera seen for the first time: its learning period starts at ``ts``."""

    device: str
    ts: float


@dataclass(frozen=True, slots=True)
class DestinationAdded:
    """A destination added to a camera's baseline (``learned``: during its learning period)."""

    key: DestinationKey
    ts: float
    learned: bool


BaselineChange = DeviceFirstSeen | DestinationAdded


@dataclass(frozen=True, slots=True)
class BaselineSnapshot:
    """What a store holds at start: first-seen time per camera, and the known keys."""

    devices: Mapping[str, float]
    keys: Sequence[DestinationKey]

    @classmethod
    def empty(cls) -> BaselineSnapshot:
        """No camera seen yet."""
        return cls({}, ())
