"""Which cameras were seen in traffic, and how each was recognised.

:class:`RecognisedCameras` is asked, once per end of each ended flow (by the flow record
builder, :func:`netwatch.flow.record.flow_record`), whether that end is a camera: it
answers with the camera's name (the inventory name, or the IP text of a camera recognised
without an inventory), so flow records mark camera ends zero-config too, and it tallies
each camera once (by MAC, else IP) with how it was recognised. The replay summary and the
``netwatch_cameras_recognised`` metric read :meth:`RecognisedCameras.by_how`, so "no
alerts" and "saw no cameras" look different.

The detector's identity state is read in one place, :func:`camera_of` (today
:meth:`netwatch.detect.devices.Devices.camera` and its ``how``), and grouped by
:func:`how_of` into ``inventory``, ``mac_prefix``, ``banner`` and ``discovery``.

Config read: none. Bounded: at most ``max_cameras`` cameras tallied (later ones counted in
``overflow``); a camera's ``how`` is the latest seen (a prefix match later confirmed by a
discovery reply counts as discovery).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netwatch.detect.devices import Device, Devices

DEFAULT_MAX_CAMERAS = 65_536
INVENTORY, MAC_PREFIX, BANNER, DISCOVERY = "inventory", "mac_prefix", "banner", "discovery"


def camera_of(devices: Devices, ip: bytes, mac: bytes | None) -> Device | None:
    """The camera at this flow end as the detector's identity sees it, or None."""
    return devices.camera(ip, mac)


def how_of(device: Device) -> str:
    """How a camera was recognised, in a few stable words (metric label values)."""
    if device.managed:
        return INVENTORY
    if device.how == "vendor_oui":
        return MAC_PREFIX
    if device.how.startswith("banner"):
        return BANNER
    return DISCOVERY


class RecognisedCameras:
    """Marks camera ends of flows and tallies the cameras seen, by how recognised."""

    def __init__(self, max_cameras: int = DEFAULT_MAX_CAMERAS) -> None:
        #: The detector's devices (set when a detector is hooked; None: no detection).
        self.devices: Devices | None = None
        self._how: dict[str, str] = {}
        self._max = max_cameras
        self.overflow = 0  # cameras seen beyond the bound, not tallied

    def name(self, ip: bytes, mac: bytes | None) -> str | None:
        """The camera's name when this flow end is a recognised camera (and tally it)."""
        if self.devices is None:
            return None
        dev = camera_of(self.devices, ip, mac)
        if dev is None:
            return None
        key = dev.mac or dev.ip
        if key in self._how or len(self._how) < self._max:
            self._how[key] = how_of(dev)
        else:
            self.overflow += 1
        return dev.name

    def __len__(self) -> int:
        return len(self._how)

    def by_how(self) -> dict[str, int]:
        """How many cameras were recognised each way."""
        counts: dict[str, int] = {}
        for how in list(self._how.values()):
            counts[how] = counts.get(how, 0) + 1
        return counts


def summary_line(counts: dict[str, int]) -> str:
    """``cameras: 2 (discovery 1, mac_prefix 1)``, or a line that says none were seen."""
    total = sum(counts.values())
    if not total:
        return "cameras: 0 (none recognised: no camera-specific alert can fire)"
    parts = ", ".join(f"{how} {n}" for how, n in sorted(counts.items()))
    return f"cameras: {total} ({parts})"
