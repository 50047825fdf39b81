"""Which local hosts are cameras, who they are, how sure, and on what evidence.

A flow end is a camera when the inventory names it (by IP, MAC or CIDR) or, zero-config,
when it showed a *camera signal*: a discovery reply of a camera protocol, a camera server
banner, a DHCP host name / mDNS name / SSDP header naming a camera model or a camera service
(the LAN parsers), or a MAC prefix of a camera-only maker (``camera_vendor``, injected: the
camera-vendor OUI table from ``seeds/``). Signals arrive through :meth:`Devices.learn`
(keyed by IP address, or by MAC: a 6-byte key is a DHCP client's hardware address) and
:meth:`Devices.learn_mac`; each device keeps its signals as evidence (bounded).

Signal vocabulary of ``how`` (what :meth:`learn` is told):

- ``hint:<field>:<fingerprint id>`` (``HINT_PREFIX``): a *weak* signal, a vendor that also
  makes non-camera products (``_dhnap._tcp``, a miIO hello reply, a TP-Link plug's
  discovery reply): kept as evidence, never makes a camera alone;
- ``dhcp_resolver`` (``RESOLVER_HOW``): the key is a resolver a DHCP server hands out
  (option 6): kept in :attr:`Devices.dhcp_resolvers`, not a device;
- anything else is a camera signal (a discovery protocol name, ``banner:<field>``,
  ``<lan field>:<fingerprint id>``).

A MAC prefix of a vendor that also makes non-camera products (Edimax, D-Link, TP-Link,
Xiaomi, Tuya: ``weak_vendor``, the seeds' weak ``mac_prefix`` fingerprints) is evidence
only. Confidence: ``high`` for the inventory or two camera signals of different kinds,
``med`` for one. :meth:`Devices.cameras` lists the cameras recognised so far with their
evidence (for the replay summary and the metrics).

Config read: ``cameras`` (inventory), ``site.local_nets``. Known limits: behind a router the
MAC seen for a remote host is the router's, so only site-local ends are considered; a
device recognised by its MAC is listed by :meth:`cameras` under its MAC until a flow shows
its address; evidence is capped at ``MAX_SIGNALS`` signals per device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from netwatch.config import DEFAULT_GROUP
from netwatch.enrich.addrclass import AddressClassifier, ip_text
from netwatch.enrich.inventory import Inventory
from netwatch.enrich.macvendor import mac_text
from netwatch.signatures.lan import HINT_PREFIX, RESOLVER_HOW, lan_matcher

CameraVendor = Callable[[bytes], str | None]
Details = tuple[str | None, str | None, str | None]

VENDOR_OUI = "vendor_oui"
PAYLOAD_PREFIX = "payload:"
MAX_SIGNALS = 8
MAX_RESOLVERS = 64
MAC_LEN = 6


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence: how it was seen, the vendor and model it names."""

    how: str
    vendor: str | None
    model: str | None
    camera: bool  # makes a camera by itself

    def as_dict(self) -> dict[str, str]:
        found = {"how": self.how, "vendor": self.vendor, "model": self.model}
        return {k: v for k, v in found.items() if v}


@dataclass(frozen=True, slots=True)
class Device:
    """A camera/NVR as the detection rules see it."""

    name: str  # inventory name, or the IP text when unnamed
    ip: str
    mac: str | None
    vendor: str | None
    group: str
    managed: bool  # listed in the inventory
    how: str  # "inventory", "vendor_oui", or the first camera signal that identified it
    model: str | None = None  # from a discovery reply or a LAN name, when one was seen
    firmware: str | None = None
    serial: str | None = None
    confidence: str = "med"  # "high" | "med"
    signals: tuple[Signal, ...] = ()  # the evidence, camera signals first

    def details(self) -> dict[str, str]:
        """Model, firmware and serial as alert evidence (only those known)."""
        found = {
            "device_model": self.model,
            "device_firmware": self.firmware,
            "device_serial": self.serial,
        }
        return {k: v for k, v in found.items() if v}


@dataclass(frozen=True, slots=True)
class CameraSummary:
    """One recognised camera: :meth:`Devices.cameras`."""

    address: str  # IP text, or the MAC text while no flow has shown its address
    mac: str | None
    vendor: str | None
    model: str | None
    confidence: str
    signals: tuple[Signal, ...]


class _Entry:
    """What was learnt about one address or MAC: signals in arrival order, details."""

    __slots__ = ("details", "signals")

    def __init__(self) -> None:
        self.signals: list[Signal] = []
        self.details: Details | None = None

    def add(self, signal: Signal) -> bool:
        if signal in self.signals or len(self.signals) >= MAX_SIGNALS:
            return False
        self.signals.append(signal)
        return True

    def primary(self) -> Signal | None:
        """The first camera signal, a banner only when nothing better was seen."""
        cams = [s for s in self.signals if s.camera]
        better = [s for s in cams if not s.how.startswith("banner")]
        chosen = better or cams
        return chosen[0] if chosen else None


class Devices:
    """Resolves flow ends to cameras and keeps the evidence."""

    def __init__(
        self,
        inventory: Inventory,
        classifier: AddressClassifier,
        camera_vendor: CameraVendor,
        max_entries: int = 65_536,
        weak_vendor: CameraVendor | None = None,
    ) -> None:
        self._inventory = inventory
        self._classifier = classifier
        self._camera_vendor = camera_vendor
        self._weak_vendor = weak_vendor if weak_vendor is not None else _seed_weak_vendor
        self._learned: dict[bytes, _Entry] = {}  # ip -> what it said
        self._learned_macs: dict[bytes, _Entry] = {}  # mac -> what it said
        self._cache: dict[tuple[bytes, bytes | None], Device | None] = {}
        self._seen: dict[bytes, bytes | None] = {}  # ip -> MAC of a camera found there
        self._resolvers: dict[bytes, None] = {}  # ordered set of packed addresses
        #: MAC -> the inventory entry a flow showed it at: the same camera at another
        #: address (a fallback address before DHCP, an IPv6 link-local) stays managed
        self._inventory_macs: dict[bytes, Any] = {}
        self._max = max_entries
        #: Resolvers dropped because ``MAX_RESOLVERS`` were kept (oldest first).
        self.resolver_evictions = 0
        #: Called with ("ip", ip, vendor, how, details) or ("mac", mac, vendor, how, None)
        #: for each device learnt here (capture workers share them).
        self.on_learn: Callable[[str, bytes, str | None, str, Any], None] | None = None

    def adopt(self, other: Devices) -> None:
        """Take over what ``other`` learnt from discovery and banners (a config reload)."""
        self._learned.update(other._learned)
        self._learned_macs.update(other._learned_macs)
        self._resolvers.update(other._resolvers)
        self._cache.clear()
        self._seen.clear()

    @property
    def inventory_size(self) -> int:
        """How many entries the inventory has (0: zero-config)."""
        return len(self._inventory)

    @property
    def dhcp_resolvers(self) -> frozenset[bytes]:
        """Packed addresses of the resolvers DHCP servers handed out (option 6), bounded."""
        return frozenset(self._resolvers)

    def learn(
        self, ip: bytes, vendor: str | None, how: str, details: Details | None = None
    ) -> None:
        """Record a signal ``ip`` sent (see the module docstring for ``how``); a 6-byte
        ``ip`` is a MAC. ``details`` is (model, firmware, serial) from a discovery reply or
        a LAN name. A banner does not replace what a discovery reply said."""
        if how == RESOLVER_HOW:
            self._add_resolver(ip)
            return
        table = self._learned_macs if len(ip) == MAC_LEN else self._learned
        entry = table.get(ip)
        if entry is None:
            if len(table) >= self._max:
                table.pop(next(iter(table)))
            entry = table[ip] = _Entry()
        model = details[0] if details else None
        added = entry.add(Signal(how, vendor, model, self._is_camera_signal(how, vendor)))
        new_details = bool(details and any(details) and entry.details != details)
        if new_details:
            entry.details = details
        if not (added or new_details):
            return  # nothing new: keep the cache
        self._forget(ip)
        if self.on_learn is not None:
            self.on_learn("ip", ip, vendor, how, details)

    def learn_mac(self, mac: bytes, vendor: str | None, how: str) -> None:
        """Record that the host with this MAC announced itself as a camera (layer 2)."""
        entry = self._learned_macs.setdefault(mac, _Entry())
        if entry.add(Signal(how, vendor, None, not how.startswith(HINT_PREFIX))):
            self._forget(mac)
            if self.on_learn is not None:
                self.on_learn("mac", mac, vendor, how, None)

    def share(
        self, kind: str, key: bytes, vendor: str | None, how: str, details: Any = None
    ) -> None:
        """Record a device another capture worker learnt (no ``on_learn`` call back)."""
        hook, self.on_learn = self.on_learn, None
        try:
            if kind == "ip":
                self.learn(key, vendor, how, tuple(details) if details else None)
            else:
                self.learn_mac(key, vendor, how)
        finally:
            self.on_learn = hook

    def camera(self, ip: bytes, mac: bytes | None) -> Device | None:
        """The camera at this site-local end, or None."""
        if not self._classifier.is_site_local(ip):
            return None  # never a camera; not cached (a flood of outside peers would churn it)
        key = (ip, mac)
        if key in self._cache:
            return self._cache[key]
        dev = self._identify(ip, mac)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key] = dev
        if dev is not None and (mac is not None or ip not in self._seen):
            if len(self._seen) >= self._max and ip not in self._seen:
                self._seen.pop(next(iter(self._seen)))
            self._seen[ip] = mac
        return dev

    def cameras(self) -> list[CameraSummary]:
        """Every camera recognised so far, one per MAC when known (else per address):
        from the flows seen, and from what was learnt by address or MAC."""
        found: dict[str, CameraSummary] = {}
        addresses: set[str] = set()  # every address of a camera seen, not only the kept one
        for ip, mac in self._seen.items():
            dev = self._identify(ip, mac)  # afresh: later signals add evidence
            if dev is not None:
                _keep(found, _summary(dev.ip, dev))
                addresses.add(dev.ip)
        for ip, entry in self._learned.items():
            if entry.primary() is not None and ip_text(ip) not in addresses:
                learnt = self._identify(ip, None)
                if learnt is not None:
                    _keep(found, _summary(learnt.ip, learnt))
        for mac, entry in self._learned_macs.items():
            text = mac_text(mac)
            if text not in found and entry.primary() is not None:
                _keep(found, _summary(text, self._from_signals(text, mac, [entry])))
        return list(found.values())

    # -- internals ------------------------------------------------------------------------

    def _is_camera_signal(self, how: str, vendor: str | None) -> bool:
        """Not a hint, and not a payload signature of a vendor that also makes non-camera
        products (the TP-Link Smart Home protocol of a Kasa plug names TP-Link, not a camera)."""
        if how.startswith(HINT_PREFIX):
            return False
        return not (how.startswith(PAYLOAD_PREFIX) and vendor in mixed_vendors())

    def _add_resolver(self, addr: bytes) -> None:
        if addr in self._resolvers:
            return
        if len(self._resolvers) >= MAX_RESOLVERS:
            self._resolvers.pop(next(iter(self._resolvers)))
            self.resolver_evictions += 1
        self._resolvers[addr] = None
        if self.on_learn is not None:
            self.on_learn("ip", addr, None, RESOLVER_HOW, None)

    def _forget(self, key: bytes) -> None:
        """Drop cached answers for an address or MAC that just said something new."""
        self._cache = {k: v for k, v in self._cache.items() if key not in k}

    def _identify(self, ip: bytes, mac: bytes | None) -> Device | None:
        if not self._classifier.is_site_local(ip):
            return None
        mac_str = mac_text(mac) if mac else None
        vendor = self._camera_vendor(mac) if mac else None
        known = self._inventory.lookup(ip, mac)
        entries = [e for e in (self._learned.get(ip), self._learned_macs.get(mac or b"")) if e]
        if known is None and mac is not None:
            known = self._inventory_macs.get(mac)  # an inventory camera at another address
        if known is not None:
            if mac is not None and len(self._inventory_macs) < self._max:
                self._inventory_macs[mac] = known
            dev = Device(known.name, ip_text(ip), mac_str, vendor, known.group, True, "inventory")
            return self._with_evidence(dev, entries, mac, "high")
        text = ip_text(ip)
        if any(e.primary() is not None for e in entries) or vendor is not None:
            return self._from_signals(text, mac, entries, vendor)
        return None

    def _from_signals(
        self, text: str, mac: bytes | None, entries: list[_Entry], oui_vendor: str | None = None
    ) -> Device:
        """A zero-config camera from its signals (at least one camera signal)."""
        signals = [s for e in entries for s in e.signals]
        if oui_vendor is not None:
            signals.append(Signal(VENDOR_OUI, oui_vendor, None, True))
        primary = next((e.primary() for e in entries if e.primary() is not None), None)
        how = primary.how if primary is not None else VENDOR_OUI
        vendor = next((s.vendor for s in signals if s.camera and s.vendor), oui_vendor)
        dev = Device(text, text, mac_text(mac) if mac else None, vendor, DEFAULT_GROUP, False, how)
        kinds = {_kind(s.how) for s in signals if s.camera}
        return self._with_evidence(dev, entries, mac, "high" if len(kinds) >= 2 else "med")

    def _with_evidence(
        self, dev: Device, entries: list[_Entry], mac: bytes | None, confidence: str
    ) -> Device:
        signals = [s for e in entries for s in e.signals]
        if dev.how == VENDOR_OUI and not any(s.how == VENDOR_OUI for s in signals):
            signals.append(Signal(VENDOR_OUI, dev.vendor, None, True))
        weak = self._weak_vendor(mac) if mac else None
        if weak is not None:
            signals.append(Signal(f"{HINT_PREFIX}mac_prefix", weak, None, False))
        signals = list(dict.fromkeys(signals))  # the same signal by MAC and by address
        signals.sort(key=lambda s: not s.camera)
        details = next((e.details for e in entries if e.details), None)
        model = next((s.model for s in signals if s.camera and s.model), None)
        if details is not None:
            model = details[0] or model
            dev = replace(dev, firmware=details[1], serial=details[2])
        return replace(dev, model=model, confidence=confidence, signals=tuple(signals))


def _kind(how: str) -> str:
    """The kind of a signal: ``ssdp_server:dlink-dcs`` -> ``ssdp``, ``banner:x`` -> banner."""
    head = how.split(":", 1)[0]
    return head.split("_", 1)[0] if head.startswith(("dhcp", "mdns", "ssdp", "upnp")) else head


def _summary(address: str, dev: Device) -> CameraSummary:
    return CameraSummary(address, dev.mac, dev.vendor, dev.model, dev.confidence, dev.signals)


def _seed_weak_vendor(mac: bytes) -> str | None:
    """The vendor of a weak ``mac_prefix`` fingerprint of the default seeds, or None."""
    hit = lan_matcher().mac_vendor(mac)
    return hit.vendor if hit is not None else None


def _keep(found: dict[str, CameraSummary], cam: CameraSummary) -> None:
    """One summary per device: the first IPv4 address seen, the most signals."""
    key = cam.mac or cam.address
    known = found.get(key)
    if known is None or (":" in known.address and ":" not in cam.address):
        found[key] = cam
    elif len(cam.signals) > len(known.signals):
        found[key] = replace(cam, address=known.address)


@functools.cache
def mixed_vendors() -> frozenset[str]:
    """Vendors of the seeds' weak MAC prefixes: they also make non-camera products."""
    return lan_matcher().weak_vendors()
