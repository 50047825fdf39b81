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

One device, several addresses: a flow end showing a camera's MAC joins that MAC's device,
whatever its address (IPv4, IPv6 global or link-local, a setup address then a DHCP lease),
so the signals
learnt at any of its addresses count for all of them and every address has the same
:attr:`Device.name` (the device's id): the inventory name, else the text of the first
address the MAC was seen at (so a single-stack camera keeps its address as its name), or
the MAC's text when another device already has that id (two cameras of one make, each seen
first at the factory's default address). An
inventory camera listed by IP or CIDR stays managed at another address with its MAC;
:meth:`Devices.bind` links the MAC of an inventory address as soon as a flow *starts*
there, so a camera's IPv6 flow ending before its first IPv4 one is not taken for an
unmanaged device. A router's MAC is no device (the hosts of a routed subnet share it): a MAC
seen at a public address (a flow end outside the site), or at more than ``MAX_IPV4``
IPv4 addresses, joins nothing from then on (its addresses are devices of their own again).

Config read: ``cameras`` (inventory), ``site.local_nets``. Bounded: ``max_entries`` devices
keyed by MAC (the oldest dropped, counted in ``device_evictions``) with at most
``MAX_ADDRESSES`` addresses each (the oldest dropped, counted in ``address_evictions``),
``MAX_GATEWAYS`` router MACs (``gateway_evictions``).
Known limits: behind a router the MAC seen for a remote host is the router's, so only
site-local ends are considered; an end without a MAC (a cooked capture) joins no device
(its name is its address unless the inventory names it); a device recognised by its MAC is
listed by :meth:`cameras` under its MAC until a flow shows its address; evidence is capped
at ``MAX_SIGNALS`` signals per device; a device's id is its first address *in this
process* (each capture worker, and each restart, may name an unlisted camera seen first at
another address differently).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
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
MAX_ADDRESSES = 16  # addresses kept per device (IPv6 privacy addresses rotate)
MAX_GATEWAYS = 1024  # MACs seen at outside addresses, kept
MAX_IPV4 = 4  # IPv4 addresses of one device (a new lease, a fallback); more: a router's MAC
IPV4_LEN = 4


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
    name: str = ""  # the device's id (Device.name); the address when unset
    group: str = DEFAULT_GROUP
    managed: bool = False
    how: str = ""  # Device.how
    firmware: str | None = None
    serial: str | None = None
    addresses: tuple[str, ...] = ()  # every address seen for it (bounded), first seen first


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


@dataclass(slots=True)
class _Linked:
    """One device known by its MAC: its id, its addresses (ordered), its inventory entry."""

    name: str
    addresses: dict[bytes, None]
    known: Any  # the inventory entry (netwatch.enrich.inventory.Device) or None


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
        #: The inventory's lookup, None when it lists nothing (zero-config: nothing to ask
        #: for each new site address).
        self._listed = inventory.lookup if len(inventory) else None
        self._classifier = classifier
        self._camera_vendor = camera_vendor
        self._weak_vendor = weak_vendor if weak_vendor is not None else _seed_weak_vendor
        self._learned: dict[bytes, _Entry] = {}  # ip -> what it said
        self._learned_macs: dict[bytes, _Entry] = {}  # mac -> what it said
        #: (ip, mac) -> what :meth:`camera` answered for a site-local end (None: not a
        #: camera). Read-only outside this class (RecognisedCameras looks answers up here
        #: before calling camera()); replaced or cleared whenever something new is learnt.
        self.answers: dict[tuple[bytes, bytes | None], Device | None] = {}
        self._seen: dict[bytes, bytes | None] = {}  # ip -> MAC of a camera found there
        self._resolvers: dict[bytes, None] = {}  # ordered set of packed addresses
        #: MAC -> the device a flow showed it at: its id, addresses and inventory entry (the
        #: same camera at another address, an IPv6 link-local or a new lease, is one device)
        self._by_mac: dict[bytes, _Linked] = {}
        self._max = max_entries
        #: Devices dropped because ``max_entries`` were kept, and addresses dropped from a
        #: device that had ``MAX_ADDRESSES`` (oldest first).
        self.device_evictions = 0
        self.address_evictions = 0
        #: MACs seen at outside addresses (routers: bounded, oldest dropped and counted).
        #: Read-only outside this class: camera() learns nothing more from an outside end
        #: whose MAC is here (or that has none), so RecognisedCameras answers None itself.
        self.gateways: dict[bytes, None] = {}
        self.gateway_evictions = 0
        self._ids: dict[str, bytes] = {}  # an unlisted device's id -> its MAC (ids are unique)
        #: Resolvers dropped because ``MAX_RESOLVERS`` were kept (oldest first).
        self.resolver_evictions = 0
        #: Called with ("ip", ip, vendor, how, details) or ("mac", mac, vendor, how, None)
        #: for each device learnt here (capture workers share them).
        self.on_learn: Callable[[str, bytes, str | None, str, Any], None] | None = None

    def adopt(self, other: Devices) -> None:
        """Take over what ``other`` learnt from discovery and banners, its routers' MACs and
        its unlisted cameras' ids (a config reload; listed ones follow the new inventory)."""
        self._learned.update(other._learned)
        self._learned_macs.update(other._learned_macs)
        self._resolvers.update(other._resolvers)
        self.gateways.update(other.gateways)
        for mac, linked in other._by_mac.items():  # unlisted cameras keep their ids
            if linked.known is None and mac not in self._by_mac:
                self._by_mac[mac] = _Linked(linked.name, dict(linked.addresses), None)
                self._ids[linked.name] = mac
        self.answers.clear()
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
        mac = self._seen.get(ip)
        if mac is not None:
            self._forget(mac)  # the device's other addresses share what it said here
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

    def camera(self, ip: bytes, mac: bytes | None, site_local: bool | None = None) -> Device | None:
        """The camera at this site-local end, or None. ``site_local``: this classifier's
        answer for ``ip`` when the caller has it already (None: ask the classifier)."""
        if site_local is None:
            site_local = self._classifier.is_site_local(ip)
        if not site_local:
            # a public address outside the site (reached through a router): a gateway's MAC
            if mac is not None and mac not in self.gateways and not self._classifier.is_local(ip):
                self._gateway(mac)
            return None  # never a camera; not cached (a flood of outside peers would churn it)
        key = (ip, mac)
        if key in self.answers:
            return self.answers[key]
        dev = self._identify(ip, mac, True)
        if len(self.answers) >= self._max:
            self.answers.clear()
        self.answers[key] = dev
        if dev is not None and (mac is not None or ip not in self._seen):
            if len(self._seen) >= self._max and ip not in self._seen:
                self._seen.pop(next(iter(self._seen)))
            self._seen[ip] = mac
        return dev

    def cameras(self) -> list[CameraSummary]:
        """Every camera recognised so far, one per device (its MAC, or its inventory name;
        else its address): from the flows seen, and from what was learnt by address or MAC."""
        found: dict[str, CameraSummary] = {}
        addresses: set[str] = set()  # every address of a camera seen, not only the kept one
        linked = [(next(iter(d.addresses)), mac) for mac, d in self._by_mac.items() if d.addresses]
        for ip, mac in [*linked, *self._seen.items()]:
            dev = self._identify(ip, mac)  # afresh: later signals add evidence
            if dev is not None:
                _keep(found, self._summary(ip, dev, mac))
                addresses.add(dev.ip)
        for ip, entry in self._learned.items():
            if entry.primary() is not None and ip_text(ip) not in addresses:
                learnt = self._identify(ip, None)
                if learnt is not None:
                    _keep(found, self._summary(ip, learnt, None))
        for mac, entry in self._learned_macs.items():
            text = mac_text(mac)
            if mac not in self._by_mac and entry.primary() is not None:
                _keep(found, _summary(text, self._from_signals(text, text, mac, [entry])))
        return list(found.values())

    @property
    def linked(self) -> int:
        """Devices known by their MAC (bounded by ``max_entries``)."""
        return len(self._by_mac)

    def restore_ids(self, ids: Iterable[tuple[str, str]]) -> int:
        """Unlisted cameras' ids from a previous run, as (MAC text, id): a camera keeps its
        id across restarts whatever address it shows first. Returns how many were taken
        (bounded by ``max_entries``; a MAC or id already known here is left alone)."""
        taken = 0
        for mac_str, name in ids:
            try:
                mac = bytes.fromhex(mac_str.replace(":", ""))
            except ValueError:
                continue
            full = len(self._by_mac) >= self._max
            if len(mac) != MAC_LEN or mac in self._by_mac or name in self._ids or full:
                continue
            self._by_mac[mac] = _Linked(name, {}, None)
            self._ids[name] = mac
            taken += 1
        self.answers.clear()
        return taken

    @property
    def binds(self) -> bool:
        """True when :meth:`bind` can learn anything (the inventory lists exact addresses):
        else pipelines skip the call at each flow's start."""
        return self._inventory.by_address

    def bind(self, ip: bytes, mac: bytes | None) -> None:
        """A flow started at ``ip`` with ``mac``: when the inventory lists that address
        exactly, the MAC is that camera's from now on (before any of its flows ends)."""
        if mac is None or mac in self.gateways:
            return
        linked = self._by_mac.get(mac)
        if linked is not None and linked.known is not None:
            return
        known = self._inventory.exact(ip)
        if known is not None and self._classifier.is_site_local(ip):
            self._link(ip, mac, known, known.name)

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
        self.answers = {k: v for k, v in self.answers.items() if key not in k}

    def _identify(
        self, ip: bytes, mac: bytes | None, site_local: bool | None = None
    ) -> Device | None:
        """The camera at ``ip`` (with ``mac``), or None (``site_local``: the classifier's
        answer for ``ip`` when the caller has it already)."""
        if not (self._classifier.is_site_local(ip) if site_local is None else site_local):
            return None
        vendor = self._camera_vendor(mac) if mac else None
        # _linked(ip, mac) and the inventory's lookup, without their calls: this runs for
        # each new site address (a scan's are all new)
        linked = self._by_mac.get(mac) if mac is not None and mac not in self.gateways else None
        known = self._listed(ip, mac) if self._listed is not None else None
        if (
            known is None
            and vendor is None
            and linked is None
            and ip not in self._learned
            and (mac or b"") not in self._learned_macs
        ):
            return None  # nothing learnt of it (_entries would be empty): most site hosts
        if known is None and linked is not None:
            known = linked.known  # an inventory camera at another address
        entries = self._entries(ip, mac, linked)
        if known is None and vendor is None and all(e.primary() is None for e in entries):
            return None  # nothing says camera (most site hosts): no texts built for it
        text = ip_text(ip)
        if known is not None:
            self._link(ip, mac, known, known.name)
            mac_str = mac_text(mac) if mac else None
            dev = Device(known.name, text, mac_str, vendor, known.group, True, "inventory")
            return self._with_evidence(dev, entries, mac, "high")
        name = self._link(ip, mac, None, linked.name if linked is not None else text)
        if linked is not None and name is None:  # a router's MAC after all
            return self._identify(ip, mac)
        return self._from_signals(name or text, text, mac, entries, vendor)

    def _entries(self, ip: bytes, mac: bytes | None, linked: _Linked | None) -> list[_Entry]:
        """What was learnt at the device's addresses, then of its MAC: the same list, in
        the same order (IPv4 addresses first, each family first seen first), whichever of
        its addresses asks."""
        addresses = [ip]
        if linked is not None:
            addresses = sorted({**linked.addresses, ip: None}, key=len)
        found = [self._learned.get(a) for a in addresses]
        found.append(self._learned_macs.get(mac or b""))
        return [e for e in found if e is not None]

    def _linked(self, ip: bytes, mac: bytes | None) -> _Linked | None:
        """The device with ``mac`` (None for a router's MAC, :meth:`_gateway`)."""
        if mac is None or mac in self.gateways:
            return None
        return self._by_mac.get(mac)

    def _gateway(self, mac: bytes) -> None:
        """``mac`` was seen at an outside address: a router's, never one device's."""
        if len(self.gateways) >= MAX_GATEWAYS:
            self.gateways.pop(next(iter(self.gateways)))
            self.gateway_evictions += 1
        self.gateways[mac] = None
        if self._drop(mac):
            self._forget(mac)

    def _drop(self, mac: bytes) -> bool:
        """Forget the device with this MAC (its id is free again); True if there was one."""
        linked = self._by_mac.pop(mac, None)
        if linked is None:
            return False
        if self._ids.get(linked.name) == mac:
            del self._ids[linked.name]
        return True

    def _link(self, ip: bytes, mac: bytes | None, known: Any, name: str) -> str | None:
        """``ip`` is an address of the device with ``mac`` (bounded; see the docstring): the
        device's id, or None when ``mac`` joins nothing (a router's)."""
        if mac is None or mac in self.gateways:
            return None
        linked = self._by_mac.get(mac)
        fresh = linked is None
        if linked is None:
            if len(self._by_mac) >= self._max:
                self._drop(next(iter(self._by_mac)))
                self.device_evictions += 1
            if known is None and name in self._ids:
                name = mac_text(mac)  # another device was first seen there (a setup address)
            linked = self._by_mac[mac] = _Linked(name, {}, known)
            self._ids[name] = mac
        elif known is not None and linked.known is None:
            self._ids.pop(linked.name, None)
            linked.known, linked.name, fresh = known, known.name, True  # now listed
        if ip not in linked.addresses:
            if len(ip) == IPV4_LEN and sum(len(a) == IPV4_LEN for a in linked.addresses) >= (
                MAX_IPV4
            ):
                self._gateway(mac)  # the hosts of a routed subnet behind a router's MAC
                return None
            if len(linked.addresses) >= MAX_ADDRESSES:
                linked.addresses.pop(next(iter(linked.addresses)))
                self.address_evictions += 1
            linked.addresses[ip] = None
        if fresh:
            self._forget(mac)  # answers cached for its other addresses before it was known
        return linked.name

    def _from_signals(
        self,
        name: str,
        text: str,
        mac: bytes | None,
        entries: list[_Entry],
        oui_vendor: str | None = None,
    ) -> Device:
        """A zero-config camera from its signals (at least one camera signal)."""
        signals = [s for e in entries for s in e.signals]
        if oui_vendor is not None:
            signals.append(Signal(VENDOR_OUI, oui_vendor, None, True))
        primary = next((e.primary() for e in entries if e.primary() is not None), None)
        how = primary.how if primary is not None else VENDOR_OUI
        vendor = next((s.vendor for s in signals if s.camera and s.vendor), oui_vendor)
        dev = Device(name, text, mac_text(mac) if mac else None, vendor, DEFAULT_GROUP, False, how)
        kinds = {_kind(s.how) for s in signals if s.camera}
        return self._with_evidence(dev, entries, mac, "high" if len(kinds) >= 2 else "med")

    def _summary(self, ip: bytes, dev: Device, mac: bytes | None) -> CameraSummary:
        """The summary of a device, with every address its MAC was seen at."""
        address = ip_text(ip)
        linked = self._linked(ip, mac)
        texts = tuple(ip_text(a) for a in linked.addresses) if linked is not None else ()
        return replace(_summary(address, dev), addresses=texts or (address,))

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
        details = next((e.details for e in entries if e.details), None)  # addresses first
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
    return CameraSummary(
        address,
        dev.mac,
        dev.vendor,
        dev.model,
        dev.confidence,
        dev.signals,
        name=dev.name,
        group=dev.group,
        managed=dev.managed,
        how=dev.how,
        firmware=dev.firmware,
        serial=dev.serial,
    )


def _seed_weak_vendor(mac: bytes) -> str | None:
    """The vendor of a weak ``mac_prefix`` fingerprint of the default seeds, or None."""
    hit = lan_matcher().mac_vendor(mac)
    return hit.vendor if hit is not None else None


def _keep(found: dict[str, CameraSummary], cam: CameraSummary) -> None:
    """One summary per device (by its id, :attr:`Device.name`): the first IPv4 address
    seen, the most signals, the addresses of both."""
    key = cam.name or cam.address
    known = found.get(key)
    if known is not None:
        both = tuple(dict.fromkeys((*known.addresses, *cam.addresses)))[:MAX_ADDRESSES]
        cam = replace(cam, addresses=both)
    if known is None or (":" in known.address and ":" not in cam.address):
        found[key] = cam
    elif len(cam.signals) > len(known.signals):
        found[key] = replace(cam, address=known.address)
    else:
        found[key] = replace(known, addresses=cam.addresses)


@functools.cache
def mixed_vendors() -> frozenset[str]:
    """Vendors of the seeds' weak MAC prefixes: they also make non-camera products."""
    return lan_matcher().weak_vendors()
