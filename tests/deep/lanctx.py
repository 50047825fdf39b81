"""A recording parser context and a small UDP-flow builder for the LAN-identity tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.enrich.names import PassiveDns
from netwatch.flow.table import PROTO_UDP, Flow

Seen = tuple[bytes, str | None, str, DeviceIdentity | None]


@dataclass
class Recorder:
    """Implements the parser Context: keeps every camera() call and every count."""

    names: PassiveDns = field(default_factory=lambda: PassiveDns(1024))
    seen: list[Seen] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    expected: list[tuple[bytes, int, str]] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def camera(
        self, host: bytes, vendor: str | None, how: str, ident: DeviceIdentity | None
    ) -> None:
        self.seen.append((host, vendor, how, ident))

    def banner(self, flow: Flow, field: str, value: str) -> None:
        raise AssertionError("no banner expected")

    def expect(self, host: bytes, port: int, name: str) -> None:
        self.expected.append((host, port, name))

    def hows(self) -> list[str]:
        return [how for _, _, how, _ in self.seen]


def udp_flow(src: bytes, sport: int, dst: bytes, dport: int) -> Flow:
    """A UDP flow as the flow table would create it for its first packet."""
    flow = Flow((src, dst, PROTO_UDP, sport, dport), "C1", 0.0, PROTO_UDP)
    flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p = src, sport, dst, dport
    return flow
