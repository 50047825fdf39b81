"""Which cameras were seen in traffic, and how each was recognised.

:class:`RecognisedCameras` is asked, once per end of each ended flow (by the flow record
builder, :func:`netwatch.flow.record.flow_record_ends`), whether that end is a camera: it
answers with the camera's name (the inventory name, or the IP text of a camera recognised
without an inventory), so flow records mark camera ends zero-config too, and it tallies
each camera once (by MAC, else IP) with how it was recognised. The replay summary and the
``netwatch_cameras_recognised`` metric read :meth:`RecognisedCameras.by_how`, so "no
alerts" and "saw no cameras" look different.

The detector's identity state is read in one place,
:meth:`netwatch.detect.devices.Devices.camera` and its ``how``, and grouped by
:func:`how_of` into ``inventory``, ``mac_prefix``, ``banner`` and ``discovery``.

With several capture workers each worker tallies the cameras of the flows hashed to it; it
sends the parent what changed since its last report (:meth:`RecognisedCameras.changes`),
and the parent counts the union (:func:`union_by_how`): each camera once, and where workers
disagree on how it was recognised the strongest way wins, in the fixed order
``HOW_PRECEDENCE`` (inventory > discovery > banner > mac_prefix).

Config read: none. Bounded: at most ``max_cameras`` cameras tallied (later ones counted in
``overflow``); a camera's ``how`` is the latest seen (a prefix match later confirmed by a
discovery reply counts as discovery). Known limits: cameras are keyed by inventory name,
else MAC, else IP text (:attr:`~netwatch.detect.devices.Device.name`), so across workers
an unlisted camera one worker saw only by IP and another by MAC counts twice (on an
Ethernet capture every flow end has its MAC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from netwatch.detect.devices import Device, Devices

DEFAULT_MAX_CAMERAS = 65_536
INVENTORY, MAC_PREFIX, BANNER, DISCOVERY = "inventory", "mac_prefix", "banner", "discovery"
#: Where capture workers disagree on how a camera was recognised, the first of these wins.
HOW_PRECEDENCE = (INVENTORY, DISCOVERY, BANNER, MAC_PREFIX)
_RANK = {how: rank for rank, how in enumerate(HOW_PRECEDENCE)}
#: Stands for "no answer cached" where None means "not a camera".
_UNASKED: Device | None = cast("Device", object())


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
        #: Entries added or changed since :meth:`changes` last ran (None: nobody asked yet,
        #: nothing is tracked); its keys are a subset of ``_how``'s, so it is bounded alike.
        self._changed: dict[str, str] | None = None

    def name(self, ip: bytes, mac: bytes | None) -> str | None:
        """The camera's name when this flow end is a recognised camera (and tally it)."""
        dev = self.device(ip, mac)
        return dev.name if dev is not None else None

    def device(self, ip: bytes, mac: bytes | None, site_local: bool | None = None) -> Device | None:
        """The camera when this flow end is a recognised one (and tally it), else None
        (``site_local``: the classifier's answer for ``ip``, when the caller has it)."""
        devices = self.devices
        if devices is None:
            return None
        # two calls for every flow (both ends): Devices.camera's answer, without its call
        # where it has nothing to learn (an outside end behind a known router, or without
        # a MAC) or has the answer cached (a site end seen before)
        if site_local is False and (mac is None or mac in devices.gateways):
            return None
        answers, end = devices.answers, (ip, mac)
        dev = answers[end] if site_local and end in answers else devices.camera(ip, mac, site_local)
        if dev is not None:
            self._tally(dev)
        return dev

    def _tally(self, dev: Device) -> None:
        """Count a camera seen at a flow end (its ``how`` kept or updated, or an overflow)."""
        key = dev.name if dev.managed else (dev.mac or dev.name)  # one key per device
        if key in self._how or len(self._how) < self._max:
            how = how_of(dev)
            if self._how.get(key) != how:
                self._how[key] = how
                if self._changed is not None:
                    self._changed[key] = how
        else:
            self.overflow += 1

    def ends(
        self,
        orig_ip: bytes,
        orig_mac: bytes | None,
        orig_local: bool,
        resp_ip: bytes,
        resp_mac: bytes | None,
        resp_local: bool,
    ) -> tuple[Device | None, Device | None]:
        """:meth:`device` for both ends of a flow, originator first (the flow record's one
        call per flow end), without its call: an outside end behind a known router, or
        without a MAC, and a site end the devices already answered "no camera" for, are
        answered None here (its own first tests; nothing to tally); a site end's cached
        camera is tallied, one not asked yet asked of ``Devices.camera`` (what
        :meth:`device` does for them)."""
        devices = self.devices
        if devices is None:
            return None, None
        # the originator first: its answer may learn a router's MAC or drop cached answers
        # (``devices.answers`` is replaced then), which the responder's then sees. Both
        # ends written out here: no call per end (two per flow end on a flood)
        if orig_local:
            orig = devices.answers.get((orig_ip, orig_mac), _UNASKED)
            if orig is _UNASKED:
                orig = devices.camera(orig_ip, orig_mac, True)
            if orig is not None:
                self._tally(orig)
        elif orig_mac is not None and orig_mac not in devices.gateways:
            orig = devices.camera(orig_ip, orig_mac, False)  # None (it may learn a router)
        else:
            orig = None
        if resp_local:
            resp = devices.answers.get((resp_ip, resp_mac), _UNASKED)
            if resp is _UNASKED:
                resp = devices.camera(resp_ip, resp_mac, True)
            if resp is not None:
                self._tally(resp)
        elif resp_mac is not None and resp_mac not in devices.gateways:
            resp = devices.camera(resp_ip, resp_mac, False)
        else:
            resp = None
        return orig, resp

    def __len__(self) -> int:
        return len(self._how)

    def by_how(self) -> dict[str, int]:
        """How many cameras were recognised each way."""
        return _count(list(self._how.values()))

    def changes(self) -> dict[str, str]:
        """Camera key -> how, for the cameras added or whose ``how`` changed since the last
        call (a capture worker's report to the parent). The first call gives every camera
        tallied so far; tracking starts then (a single process never pays for it)."""
        if self._changed is None:
            self._changed = {}
            return dict(self._how)
        out, self._changed = self._changed, {}
        return out


def stronger(a: str, b: str) -> str:
    """The stronger of two ways a camera was recognised (``HOW_PRECEDENCE``; an unknown
    word ranks last)."""
    return a if _RANK.get(a, len(_RANK)) <= _RANK.get(b, len(_RANK)) else b


def union_by_how(tallies: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """Cameras counted once across several tallies (camera key -> how, one per capture
    worker), each under the strongest way any tally recognised it."""
    union: dict[str, str] = {}
    for tally in tallies:
        for key, how in tally.items():
            seen = union.get(key)
            union[key] = how if seen is None else stronger(seen, how)
    return _count(union.values())


def _count(hows: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for how in hows:
        counts[how] = counts.get(how, 0) + 1
    return counts


def summary_line(counts: dict[str, int]) -> str:
    """``cameras: 2 (discovery 1, mac_prefix 1)``, or a line that says none were seen."""
    total = sum(counts.values())
    if not total:
        return "cameras: 0 (none recognised: no camera-specific alert can fire)"
    parts = ", ".join(f"{how} {n}" for how, n in sorted(counts.items()))
    return f"cameras: {total} ({parts})"
