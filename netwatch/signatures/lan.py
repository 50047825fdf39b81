"""What devices say about themselves on the LAN, matched against the seeds.

The DHCP, mDNS/DNS-SD and SSDP parsers and the seed-driven discovery protocols read the
seeds through this module: :func:`lan_matcher` (the ``LAN_FIELDS`` entries of
``device_fingerprints.yaml``: host names, vendor classes, service types, SSDP headers, MAC
prefixes) and :func:`discovery_seed` (one entry of ``discovery_protocols.yaml`` by id: its
ports and message markers). Both are loaded once from the default seeds directory (the one
:meth:`~netwatch.signatures.model.Signatures.load` reads without an argument) and cached.

A :class:`LanHit` says which fingerprint matched, the model a regex captured (a named
group ``model``), and whether the value alone makes a camera (``strength: camera``) or only
names a vendor (``weak``). Matching: ``exact``/``prefix``/``contains`` are case-sensitive,
``regex`` is ``re.search`` (seeds use ``(?i)`` where case varies). Values are cut to
``MAX_VALUE_CHARS`` before matching. Reads no netwatch config; never raises on values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from netwatch.signatures import loader
from netwatch.signatures.match import _Conditions
from netwatch.signatures.model import (
    DISCOVERY_FILE,
    FINGERPRINTS_FILE,
    LAN_FIELDS,
    DiscoveryMarker,
    DiscoveryProtocol,
    Fingerprint,
    load_discovery,
    load_fingerprints,
)

#: ``how`` of a weak signal (Devices keeps it as evidence, never a camera alone).
HINT_PREFIX = "hint:"
#: ``how`` of a resolver a DHCP server handed out (not a device).
RESOLVER_HOW = "dhcp_resolver"
MAX_VALUE_CHARS = 512
SCAN_LIMIT_BYTES = 2048


@dataclass(frozen=True, slots=True)
class LanHit:
    """One LAN fingerprint that matched a value."""

    fingerprint: Fingerprint
    value: str
    model: str | None

    @property
    def camera(self) -> bool:
        """The value alone makes its sender a camera."""
        return self.fingerprint.strength == "camera"

    @property
    def vendor(self) -> str | None:
        """The vendor named (None for ``any``: a camera service of every vendor)."""
        return None if self.fingerprint.vendor == "any" else self.fingerprint.vendor

    @property
    def how(self) -> str:
        """``<field>:<fingerprint id>``, prefixed ``hint:`` for a weak fingerprint."""
        how = f"{self.fingerprint.field}:{self.fingerprint.id}"
        return how if self.camera else HINT_PREFIX + how


Compiled = tuple[Fingerprint, re.Pattern[str] | None]


class LanMatcher:
    """The LAN fingerprints by field, tried in file order (camera entries first)."""

    def __init__(self, fingerprints: Iterable[Fingerprint]) -> None:
        table: dict[str, list[Fingerprint]] = {}
        for fp in fingerprints:
            if fp.field in LAN_FIELDS:
                table.setdefault(fp.field, []).append(fp)
        for prints in table.values():
            prints.sort(key=lambda fp: fp.strength != "camera")  # stable: file order kept
        self._prints = {field: tuple(prints) for field, prints in table.items()}
        # A field's regexes are compiled at the first value of that field (a start compiles
        # none; the seeds were checked when their file was read).
        self._fields: dict[str, tuple[Compiled, ...]] = {}

    def _compile(self, field: str) -> tuple[Compiled, ...] | None:
        prints = self._prints.get(field)
        if prints is None:
            return None
        entries = tuple(
            (fp, loader.compile_regex(fp.value, as_bytes=False) if fp.match == "regex" else None)
            for fp in prints
        )
        self._fields[field] = entries
        return entries

    def match(self, field: str, value: str) -> LanHit | None:
        """The first fingerprint of ``field`` that ``value`` matches, or None."""
        entries = self._fields.get(field) or self._compile(field)
        if not entries or not value:
            return None
        text = value[:MAX_VALUE_CHARS]
        for fp, pattern in entries:
            hit = _hit(fp, pattern, text)
            if hit is not None:
                return hit
        return None

    def match_all(self, pairs: Iterable[tuple[str, str]]) -> list[LanHit]:
        """Every (field, value) that matches, one hit per fingerprint."""
        found: dict[str, LanHit] = {}
        for field, value in pairs:
            hit = self.match(field, value)
            if hit is not None and hit.fingerprint.id not in found:
                found[hit.fingerprint.id] = hit
        return list(found.values())

    def weak_vendors(self) -> frozenset[str]:
        """Vendors of the weak ``mac_prefix`` fingerprints (they make non-camera products)."""
        prints = self._prints.get("mac_prefix", ())
        return frozenset(fp.vendor for fp in prints if fp.strength == "weak")

    def mac_vendor(self, mac: bytes) -> LanHit | None:
        """The ``mac_prefix`` fingerprint of a MAC (6 bytes), or None."""
        if len(mac) < 3:
            return None
        return self.match("mac_prefix", ":".join(f"{b:02X}" for b in mac[:3]))


def _hit(fp: Fingerprint, pattern: re.Pattern[str] | None, text: str) -> LanHit | None:
    if pattern is not None:
        found = pattern.search(text)
        if found is None:
            return None
        model = found.groupdict().get("model")
        return LanHit(fp, text, model or None)
    ok = (
        (fp.match == "exact" and text == fp.value)
        or (fp.match == "prefix" and text.startswith(fp.value))
        or (fp.match == "contains" and fp.value in text)
    )
    return LanHit(fp, text, None) if ok else None


@functools.cache
def lan_matcher() -> LanMatcher:
    """The LAN fingerprints of the default seeds (loaded once)."""
    return LanMatcher(load_fingerprints(loader.default_seeds_dir() / FINGERPRINTS_FILE))


@functools.cache
def _discovery_seeds() -> dict[str, DiscoveryProtocol]:
    protocols = load_discovery(loader.default_seeds_dir() / DISCOVERY_FILE)
    return {proto.id: proto for proto in protocols}


def discovery_seed(seed_id: str) -> DiscoveryProtocol:
    """The ``discovery_protocols.yaml`` entry with this id (KeyError: a code/seed mismatch)."""
    return _discovery_seeds()[seed_id]


class SeedMarkers:
    """A discovery protocol's markers, compiled: the first that holds names the message."""

    def __init__(self, proto: DiscoveryProtocol) -> None:
        self.proto = proto
        self._markers = tuple((mk, _Conditions.of(mk.match)) for mk in proto.markers)

    def message(self, payload: bytes) -> DiscoveryMarker | None:
        """The message kind of ``payload``, or None when no marker holds."""
        for mk, cond in self._markers:
            if cond.hit(payload, SCAN_LIMIT_BYTES):
                return mk
        return None
