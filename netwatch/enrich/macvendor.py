"""MAC address -> IEEE registrant (vendor) name, from the registry copy bundled in netaddr.

Used to name the maker of a device seen on the LAN (``vendor`` in flow and alert records).
It answers "who registered this prefix" for any MAC; deciding which vendors make cameras
is not its job.

The registry files are memory-mapped and read through netaddr's offset indexes: a record is
parsed when its prefix is first asked for (start-up ~15 ms instead of ~140 ms for parsing
all 40,000 records; the test checks the two agree on every record). The indexes are mapped
when the registry is opened (before a privilege drop). The first :data:`FINDS_BEFORE_SPLIT`
prefixes asked of a registry are searched for in its index (~0.3 ms each: a site has a
handful of vendors); only the next one splits the index into a dict of its lines (~6-8 ms
for the OUI index), so a MAC flood costs at most that many searches more than splitting
at once, and a start whose MACs are outside the two IAB OUIs never reads the IAB index.

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
import importlib.util
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEFAULT_CACHE_ENTRIES = 4096
#: Keys a registry searches for in its index before it splits the index into a dict.
FINDS_BEFORE_SPLIT = 32
_GROUP_BIT = 0x01
_LOCAL_BIT = 0x02
_IAB_OUIS = frozenset({b"\x00\x50\xc2", b"\x40\xd8\x55"})
_UNSEEN = ""  # cache marker: vendor names are never empty
_NOT_A_VENDOR = frozenset({"ieee registration authority", "private"})
_header_date = lazy(r"(\d{4}-\d{2}-\d{2})")


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


# a registry's record, compiled at its first lookup
_oui_line = lazy(
    r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*$", re.MULTILINE
)
_iab_lines = lazy(
    r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})[ \t]+\(hex\)[ \t]+(.*?)[ \t]*\n"
    r"([0-9A-F]{4})[0-9A-F]{2}-[0-9A-F]{6}[ \t]+\(base 16\)",
    re.MULTILINE,
)


class _RegistryFile:
    """One registry of netaddr: its text and netaddr's offset index of it (memory-mapped
    when plain files), the index's lines by key made at the first lookup."""

    __slots__ = ("_index", "_lines", "finds", "record", "text")

    def __init__(
        self,
        text: bytes | mmap.mmap,
        index: bytes | mmap.mmap,
        record: Callable[[], re.Pattern[str]],
    ) -> None:
        self.text = text
        self._index = index
        self._lines: dict[bytes, bytes] | None = None
        self.finds = 0  # keys searched for in the index so far
        self.record = record

    def line(self, key: bytes) -> bytes | None:
        """The index line ``key,offset,size`` of a decimal key (its first line), or None:
        searched for in the index for the first :data:`FINDS_BEFORE_SPLIT` keys, then from
        the index split into a dict (:func:`_index_lines`)."""
        lines = self._lines
        if lines is None:
            if self.finds < FINDS_BEFORE_SPLIT:
                self.finds += 1
                return _find_line(self._index, key)
            lines = self._lines = _index_lines(self._index[:])
        return lines.get(key)


def _registry_dir() -> Traversable:
    """netaddr's ``eui`` folder, found without importing netaddr (~30 ms) where it is a
    plain folder (else through importlib.resources, which imports it)."""
    spec = importlib.util.find_spec("netaddr")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "eui"
        if folder.is_dir():
            return folder
    from importlib import resources  # noqa: PLC0415 - ~5 ms of imports (tempfile, lzma...)

    return resources.files("netaddr.eui")


def _mapped(ref: Traversable) -> bytes | mmap.mmap:
    """The file's bytes, memory-mapped when it is a plain file: held open across the
    privilege drop at no cost (an installed zip is read instead)."""
    try:
        with open(str(ref), "rb") as file:
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return ref.read_bytes()


def _index(ref: Traversable) -> dict[bytes, bytes]:
    """netaddr's ``.idx`` file (lines ``key,offset,size``) by key (:func:`_index_lines`)."""
    return _index_lines(ref.read_bytes())


def _find_line(index: bytes | mmap.mmap, key: bytes) -> bytes | None:
    """The first line of ``index`` that starts with ``key,`` (without its line end)."""
    needle = key + b","
    if index[: len(needle)] == needle:
        start = 0
    else:
        start = index.find(b"\n" + needle) + 1
        if start == 0:
            return None
    end = index.find(b"\n", start)
    return index[start : end if end >= 0 else len(index)].rstrip()


def _index_lines(data: bytes) -> dict[bytes, bytes]:
    """The lines of an ``.idx`` file by key; the first line of a key wins. Split, not
    parsed: the numbers of a line are read when its key is asked for."""
    lines = data.split()
    lines.reverse()  # the last assignment of a key wins: the file's first line for it
    return {line.partition(b",")[0]: line for line in lines}


def _open_registry(name: str, record: Callable[[], re.Pattern[str]]) -> _RegistryFile:
    folder = _registry_dir()
    return _RegistryFile(
        _mapped(folder.joinpath(f"{name}.txt")), _mapped(folder.joinpath(f"{name}.idx")), record
    )


class Registry:
    """The IEEE registrants by prefix (3 bytes; 5 for IAB blocks): netaddr's ``oui.txt`` and
    ``iab.txt`` memory-mapped, found through netaddr's offset indexes, a record parsed
    only when its prefix is asked for (and remembered: at most one entry per record).

    netaddr re-opens its registry files on every lookup, which fails once privileges are
    dropped when the installation is not readable by the user: these maps (of the texts and
    indexes) are made before the drop (``Pipeline.warm_up``).
    """

    def __init__(self) -> None:
        self._oui = _open_registry("oui", _oui_line)
        self._iab = _open_registry("iab", _iab_lines)
        self._orgs: dict[bytes, str] = {}

    def org(self, key: bytes) -> str:
        """The registrant of a 3-byte OUI or 5-byte IAB key, '' when unregistered."""
        org = self._orgs.get(key)
        if org is None:
            org = self._orgs[key] = self._read(key)
        return org

    def _read(self, key: bytes) -> str:
        if len(key) == 3:
            registry, index_key = self._oui, int.from_bytes(key, "big")
        elif len(key) == 5:  # the 36-bit IAB prefix: the last nibble of key[4] is zero
            registry, index_key = self._iab, int.from_bytes(key, "big") >> 4
        else:
            return ""
        line = registry.line(str(index_key).encode())
        if line is None:
            return ""
        try:
            _key, offset, size = (int(field) for field in line.split(b","))
        except ValueError:
            return ""
        text = registry.text[offset : offset + size].decode("utf-8", "replace")
        match = registry.record().search(text.replace("\r\n", "\n"))
        if match is None or bytes.fromhex("".join(match.groups()[:3] + match.groups()[4:])) != key:
            return ""  # an index that does not point at the record of that key
        return match[4]


@functools.cache
def load_registry() -> Registry:
    """The registry, opened once per process."""
    return Registry()


def _registered_org(key: bytes) -> str | None:
    org = load_registry().org(key).strip()
    if not org or org.lower() in _NOT_A_VENDOR:
        return None
    return org


class MacVendors:
    """Vendor lookups, cached per OUI (per 36-bit block for IAB OUIs), bounded.

    The first lookup in a process maps the registry's files and indexes (~1 ms).
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
    from importlib import resources  # noqa: PLC0415 - see _registry_dir

    ref = resources.files("netaddr.eui").joinpath(name)
    data = ref.read_bytes()
    header = data[:512].decode("utf-8", "replace")
    match = _header_date().search(header)
    when = datetime.strptime(match.group(1), "%Y-%m-%d").date() if match else None
    return data.count(marker), when, str(ref)


def registry_info() -> RegistryInfo:
    """Describe the IEEE registry snapshot in the installed netaddr (reads ~8 MB once)."""
    from importlib import metadata  # noqa: PLC0415 - ~15 ms of imports a start need not pay

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
