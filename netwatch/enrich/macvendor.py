"""MAC address -> IEEE registrant (vendor) name, from the registry copy bundled in netaddr.

Used to name the maker of a device seen on the LAN (``vendor`` in flow and alert records).
It answers "who registered this prefix" for any MAC; deciding which vendors make cameras
is not its job.

Configuration read: none.

Known limits:
- netaddr ships only the IEEE MA-L (OUI, 24-bit) registry and the old IAB (36-bit)
  registry; it has no MA-M (28-bit) or MA-S (36-bit) registries. For a MAC inside an
  MA-M/MA-S block the parent OUI is registered to "IEEE Registration Authority", which
  names nobody, so ``vendor`` returns None there (as for "Private" registrations).
- The registry is the snapshot packaged with the installed netaddr release (its files
  carry no date; see ``registry_info``); prefixes assigned later are unknown.
- Locally administered (randomised, virtual) and group (multicast) MACs have no vendor.
- A registered prefix can be used by another maker (OEM/white-label cameras).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata, resources

DEFAULT_CACHE_ENTRIES = 4096
_GROUP_BIT = 0x01
_LOCAL_BIT = 0x02
_IAB_OUIS = frozenset({b"\x00\x50\xc2", b"\x40\xd8\x55"})
_UNSEEN = ""  # cache marker: vendor names are never empty
_NOT_A_VENDOR = frozenset({"ieee registration authority", "private"})
_HEADER_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True)
class RegistryInfo:
    """Where the vendor names come from."""

    source: str
    netaddr_version: str
    oui_entries: int
    iab_entries: int
    snapshot_date: date | None  # from the file header when it carries one (netaddr 1.3: no)
    path: str


def mac_text(mac: bytes) -> str:
    """Six packed bytes as 'aa:bb:cc:dd:ee:ff'."""
    return mac.hex(":")


_OUI_LINE = re.compile(
    r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*$", re.MULTILINE
)
_IAB_LINES = re.compile(
    r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*\n"
    r"([0-9A-F]{4})[0-9A-F]{2}-[0-9A-F]{6}[ \t]+\(base 16\)",
    re.MULTILINE,
)


def _registry_text(name: str) -> str:
    data = resources.files("netaddr.eui").joinpath(name).read_bytes()
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


@functools.cache
def load_registry() -> dict[bytes, str]:
    """The IEEE registrants by prefix (3 bytes; 5 for IAB blocks), read once into memory.

    netaddr re-opens its registry files on every lookup, which fails once privileges are
    dropped when the installation is not readable by the user: read them before the drop.
    """
    orgs: dict[bytes, str] = {}
    for m in _OUI_LINE.finditer(_registry_text("oui.txt")):
        orgs.setdefault(bytes.fromhex(m[1] + m[2] + m[3]), m[4])
    for m in _IAB_LINES.finditer(_registry_text("iab.txt")):
        orgs.setdefault(bytes.fromhex(m[1] + m[2] + m[3] + m[5]), m[4])
    return orgs


def _registered_org(key: bytes) -> str | None:
    org = load_registry().get(key, "").strip()
    if not org or org.lower() in _NOT_A_VENDOR:
        return None
    return org


class MacVendors:
    """Vendor lookups, cached per OUI (per 36-bit block for IAB OUIs), bounded.

    The first lookup in a process pays for netaddr loading its index (~0.1 s).
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self._max_entries = max_entries
        self._cache: dict[bytes, str | None] = {}
        self.hits = 0
        self.misses = 0

    def vendor(self, mac: bytes) -> str | None:
        """Registrant of the MAC's prefix; None for local/group MACs and unknown prefixes."""
        if len(mac) != 6 or mac[0] & (_GROUP_BIT | _LOCAL_BIT):
            return None
        key = mac[:3]
        if key in _IAB_OUIS:
            key = mac[:4] + bytes((mac[4] & 0xF0,))
        org = self._cache.get(key, _UNSEEN)
        if org is not _UNSEEN:
            self.hits += 1
            return org
        self.misses += 1
        org = _registered_org(key)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[key] = org
        return org


def _count_entries(name: str, marker: bytes) -> tuple[int, date | None, str]:
    ref = resources.files("netaddr.eui").joinpath(name)
    data = ref.read_bytes()
    header = data[:512].decode("utf-8", "replace")
    match = _HEADER_DATE.search(header)
    when = datetime.strptime(match.group(1), "%Y-%m-%d").date() if match else None
    return data.count(marker), when, str(ref)


def registry_info() -> RegistryInfo:
    """Describe the IEEE registry snapshot in the installed netaddr (reads ~8 MB once)."""
    oui_count, oui_date, oui_path = _count_entries("oui.txt", b"(base 16)")
    iab_count, _iab_date, _iab_path = _count_entries("iab.txt", b"(base 16)")
    return RegistryInfo(
        source="IEEE MA-L (oui.txt) and IAB (iab.txt) registries bundled in netaddr",
        netaddr_version=metadata.version("netaddr"),
        oui_entries=oui_count,
        iab_entries=iab_count,
        snapshot_date=oui_date,
        path=oui_path,
    )
