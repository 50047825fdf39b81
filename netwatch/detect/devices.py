"""Which local hosts are cameras, and who they are: inventory first, then vendor prefixes.

A flow end is a camera when the inventory names it (by IP, MAC or CIDR) or, zero-config,
when its MAC address belongs to a camera vendor (``camera_vendor`` is injected: the
camera-vendor OUI table from ``seeds/``). Discovery-protocol and banner identification
plug in through :meth:`Devices.learn`. Results are cached per (address, MAC), bounded.

Config read: ``cameras`` (inventory), ``site.local_nets``. Known limit: behind a router
the MAC seen for a remote host is the router's, so only site-local ends are considered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from netwatch.config import DEFAULT_GROUP
from netwatch.enrich.addrclass import AddressClassifier, ip_text
from netwatch.enrich.inventory import Inventory
from netwatch.enrich.macvendor import mac_text

CameraVendor = Callable[[bytes], str | None]


@dataclass(frozen=True, slots=True)
class Device:
    """A camera/NVR as the detection rules see it."""

    name: str  # inventory name, or the IP text when unnamed
    ip: str
    mac: str | None
    vendor: str | None
    group: str
    managed: bool  # listed in the inventory
    how: str  # "inventory", "vendor_oui", or the discovery protocol that identified it
    model: str | None = None  # from a discovery reply, when one was seen
    firmware: str | None = None
    serial: str | None = None

    def details(self) -> dict[str, str]:
        """Model, firmware and serial as alert evidence (only those known)."""
        found = {
            "device_model": self.model,
            "device_firmware": self.firmware,
            "device_serial": self.serial,
        }
        return {k: v for k, v in found.items() if v}


class Devices:
    """Resolves flow ends to cameras."""

    def __init__(
        self,
        inventory: Inventory,
        classifier: AddressClassifier,
        camera_vendor: CameraVendor,
        max_entries: int = 65_536,
    ) -> None:
        self._inventory = inventory
        self._classifier = classifier
        self._camera_vendor = camera_vendor
        self._learned: dict[bytes, tuple[str | None, str]] = {}  # ip -> (vendor, how)
        self._details: dict[bytes, tuple[str | None, str | None, str | None]] = {}
        self._learned_macs: dict[bytes, tuple[str | None, str]] = {}  # mac -> (vendor, how)
        self._cache: dict[tuple[bytes, bytes | None], Device | None] = {}
        self._max = max_entries
        #: Called with ("ip", ip, vendor, how, details) or ("mac", mac, vendor, how, None)
        #: for each device learnt here (capture workers share them).
        self.on_learn: Callable[[str, bytes, str | None, str, Any], None] | None = None

    def adopt(self, other: Devices) -> None:
        """Take over what ``other`` learnt from discovery and banners (a config reload)."""
        self._learned.update(other._learned)
        self._details.update(other._details)
        self._learned_macs.update(other._learned_macs)
        self._cache.clear()

    @property
    def inventory_size(self) -> int:
        """How many entries the inventory has (0: zero-config)."""
        return len(self._inventory)

    def learn(
        self,
        ip: bytes,
        vendor: str | None,
        how: str,
        details: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        """Record that ``ip`` identified itself as a camera (discovery reply, banner);
        ``details`` is (model, firmware, serial) from a discovery reply. A banner does not
        replace what a discovery reply said."""
        known = self._learned.get(ip)
        entry = (vendor, how)
        if known is None or (known != entry and not how.startswith("banner")):
            self._learned[ip] = entry
        elif not (details and any(details) and self._details.get(ip) != details):
            return  # nothing new: keep the cache
        if details and any(details):
            self._details[ip] = details
        self._cache = {k: v for k, v in self._cache.items() if k[0] != ip}
        if self.on_learn is not None:
            self.on_learn("ip", ip, vendor, how, details)

    def learn_mac(self, mac: bytes, vendor: str | None, how: str) -> None:
        """Record that the host with this MAC announced itself as a camera (layer 2)."""
        if self._learned_macs.get(mac) != (vendor, how):
            self._learned_macs[mac] = (vendor, how)
            self._cache = {k: v for k, v in self._cache.items() if k[1] != mac}
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
        key = (ip, mac)
        if key in self._cache:
            return self._cache[key]
        dev = self._resolve(ip, mac)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key] = dev
        return dev

    def _resolve(self, ip: bytes, mac: bytes | None) -> Device | None:
        dev = self._identify(ip, mac)
        details = self._details.get(ip)
        if dev is None or details is None:
            return dev
        return replace(dev, model=details[0], firmware=details[1], serial=details[2])

    def _identify(self, ip: bytes, mac: bytes | None) -> Device | None:
        if not self._classifier.is_site_local(ip):
            return None
        mac_str = mac_text(mac) if mac else None
        vendor = self._camera_vendor(mac) if mac else None
        known = self._inventory.lookup(ip, mac)
        if known is not None:
            return Device(known.name, ip_text(ip), mac_str, vendor, known.group, True, "inventory")
        learned = self._learned.get(ip) or (self._learned_macs.get(mac) if mac else None)
        if learned is not None:
            text = ip_text(ip)
            return Device(
                text, text, mac_str, learned[0] or vendor, DEFAULT_GROUP, False, learned[1]
            )
        if vendor is not None:
            text = ip_text(ip)
            return Device(text, text, mac_str, vendor, DEFAULT_GROUP, False, "vendor_oui")
        return None
