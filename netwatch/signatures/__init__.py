"""Signature data: vendor cloud endpoints, payload magic, banners, discovery, MAC prefixes.

The facts live in `seeds/` as data files, each naming its sources and snapshot date (see
`seeds/README.md`); nothing here hard-codes them. `Signatures.load()` reads and validates
every seed file at start-up (errors are one line `FILE:LINE: key.path: message`, raised as
`ConfigError`), and `SignatureMatcher` builds the lookups once: `match_name`,
`endpoints_for_port`, `match_payload`, `vendor_of_mac`, `match_banner`, `match_discovery`,
`match_ethertype`.

Modules: `model` (the frozen entry types and `Signatures`), `loader` (file reading and
validation), `match` (the matchers). Reads no netwatch config. Known limits: one error per
run; the seeds are a research snapshot and go stale (each file's `snapshot:` date).
"""

from __future__ import annotations

from netwatch.config.errors import ConfigError
from netwatch.signatures.match import SignatureMatcher
from netwatch.signatures.model import (
    CloudEndpoint,
    DiscoveryMarker,
    DiscoveryProtocol,
    EndpointPort,
    Fingerprint,
    Match,
    PayloadSignature,
    Signatures,
    VendorOui,
)

__all__ = [
    "CloudEndpoint",
    "ConfigError",
    "DiscoveryMarker",
    "DiscoveryProtocol",
    "EndpointPort",
    "Fingerprint",
    "Match",
    "PayloadSignature",
    "SignatureMatcher",
    "Signatures",
    "VendorOui",
]
