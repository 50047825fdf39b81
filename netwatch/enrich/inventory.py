"""The explicit camera inventory from config: which device name a flow end belongs to.

Config read: ``cameras`` (each with ``name`` and one of ``ip``, ``cidr`` or ``mac``, plus
``group``). Lookups happen once per flow end (cached per address by the caller's cache), so
a linear scan over CIDR entries is fine for inventories of thousands of cameras. Precedence:
exact IP, then MAC, then the most specific CIDR.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CameraEntry(Protocol):
    """The shape of one inventory entry (``netwatch.config.CameraConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None: ...
    @property
    def cidr(self) -> IPNetwork | None: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def group(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Device:
    """A named device from the inventory."""

    name: str
    group: str


class Inventory:
    """Maps packed addresses and MACs to inventory devices."""

    def __init__(self, cameras: Sequence[CameraEntry]) -> None:
        self._by_ip: dict[bytes, Device] = {}
        self._by_mac: dict[bytes, Device] = {}
        nets: list[tuple[IPNetwork, Device]] = []
        for cam in cameras:
            dev = Device(cam.name, cam.group)
            if cam.ip is not None:
                self._by_ip[cam.ip.packed] = dev
            elif cam.mac is not None:
                self._by_mac[bytes.fromhex(cam.mac.replace(":", ""))] = dev
            elif cam.cidr is not None:
                nets.append((cam.cidr, dev))
        nets.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._nets = nets

    def __len__(self) -> int:
        return len(self._by_ip) + len(self._by_mac) + len(self._nets)

    @property
    def by_address(self) -> bool:
        """True when some entry is listed by exact IP address."""
        return bool(self._by_ip)

    def exact(self, addr: bytes) -> Device | None:
        """The inventory device listed by exactly this address (no MAC, no CIDR)."""
        return self._by_ip.get(addr)

    def lookup(self, addr: bytes, mac: bytes | None = None) -> Device | None:
        """The inventory device for this address (and MAC, when the frame had one)."""
        dev = self._by_ip.get(addr)
        if dev is not None:
            return dev
        if mac is not None:
            dev = self._by_mac.get(mac)
            if dev is not None:
                return dev
        if self._nets:
            ip = ipaddress.ip_address(addr)
            for net, ndev in self._nets:
                if ip.version == net.version and ip in net:
                    return ndev
        return None
