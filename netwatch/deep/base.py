"""The deep-parser interface and registry: each parser says which payloads it claims.

A deep parser subclasses :class:`DeepParser`; ``__init_subclass__`` derives its name from the
class name (``TlsParser`` -> ``tls``), refuses a name taken twice, and records it in
:data:`PARSERS`. A parser claims payloads by

* port: ``udp_ports`` / ``tcp_ports`` (either end of the flow; the lowest ``rank`` wins
  when both ends are claimed), and by
* magic: ``client_magic`` / ``server_magic``, prefixes of the first bytes a TCP client or
  server sends (tried in ``rank`` order when no port claims the flow; indexed by first
  byte): the first match parses, and when it answers ``Verdict.PASS`` (``OPTIONS `` starts
  an HTTP and an RTSP request alike) the next match tries, or
* ``udp_other``: it looks at UDP payloads that no port claims (after the payload signatures).

A parser chosen by its magic owns the TCP flow from then on (``session``): the other side's
bytes go to it too, whatever they start with, so it can confirm or withdraw its service as
Zeek's analyzer would (an HTTP request answered by something that is not HTTP).

:class:`Dispatch` turns a set of parser classes into the lookup tables the inspector uses per
payload (two dict lookups for ports, a short prefix scan for magic). A parser writes what it
finds on the flow through the :class:`Context` the inspector gives it (the passive DNS
cache, counters, camera and banner callbacks). Reads no configuration. Known limit: a
protocol on a port nobody claims and without magic is not recognised.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from netwatch.registry import register, snake_name

if TYPE_CHECKING:
    from netwatch.deep.discovery.identity import DeviceIdentity
    from netwatch.enrich.names import PassiveDns
    from netwatch.flow.table import Flow


class Verdict(Enum):
    """What a parser says about the rest of a direction of a flow."""

    WAIT = "wait"  # the message is incomplete: keep the bytes, add the next segment
    MORE = "more"  # later messages may tell more (RTSP): keep inspecting
    DONE = "done"  # nothing more to learn: the direction's budget drops to zero
    PASS = "pass"  # not this parser's protocol after all: the next claimant by magic tries


class Context(Protocol):
    """What a parser may use besides the flow (implemented by the flow inspector)."""

    names: PassiveDns

    def count(self, what: str) -> None:
        """Count one parsed (or unparsed) message of kind ``what``."""

    def camera(
        self, host: bytes, vendor: str | None, how: str, ident: DeviceIdentity | None
    ) -> None:
        """``host`` showed it is a camera (a discovery reply, ...)."""

    def banner(self, flow: Flow, field: str, value: str) -> None:
        """A server banner (``http_server``, ``rtsp_server``, ``www_authenticate``)."""

    def expect(self, host: bytes, port: int, name: str) -> None:
        """A connection to ``host``:``port`` is announced (an FTP data channel): when one
        comes, its service is ``name``."""


#: ``flow.app`` key of the parser that owns a TCP flow (chosen by magic, or handed over: a
#: STARTTLS exchange hands the flow to the TLS parser); the inspector sends it both sides.
OWNER = "_owner"

PARSERS: dict[str, type[DeepParser]] = {}
"""Every deep parser class by name, filled as the classes are defined."""


class DeepParser:
    """Base class of every deep parser (see the module docstring)."""

    name: ClassVar[str] = ""
    #: Lower runs first: decides between two port claims and orders the magic scan.
    rank: ClassVar[int] = 100
    udp_ports: ClassVar[frozenset[int]] = frozenset()
    tcp_ports: ClassVar[frozenset[int]] = frozenset()
    client_magic: ClassVar[tuple[bytes, ...]] = ()
    server_magic: ClassVar[tuple[bytes, ...]] = ()
    udp_other: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = snake_name(cls.__name__, "Parser")
        register(PARSERS, cls.name, cls, "deep parser")

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        """One UDP payload this parser claimed (default: nothing).

        ``Verdict.DONE`` ends the direction's inspection; ``Verdict.MORE`` from an
        ``udp_other`` look keeps it going (else one look per direction); None: no opinion.
        """
        return None

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        """A direction's bytes so far (``buf``: pending bytes plus this segment)."""
        return Verdict.DONE


class Dispatch:
    """Lookup tables from a set of parser classes; one instance of each class."""

    def __init__(self, classes: Iterable[type[DeepParser]]) -> None:
        parsers = sorted((cls() for cls in classes), key=lambda p: p.rank)
        self.parsers = tuple(parsers)
        self.udp_ports = _ports(parsers, "udp_ports")
        self.tcp_ports = _ports(parsers, "tcp_ports")
        self.udp_other = tuple(p for p in parsers if p.udp_other)
        self.client_magic = _by_first_byte((p.client_magic, p) for p in parsers)
        self.server_magic = _by_first_byte((p.server_magic, p) for p in parsers)


Magic = tuple[tuple[bytes, ...], DeepParser]


def _by_first_byte(claims: Iterable[Magic]) -> dict[int, tuple[Magic, ...]]:
    """First byte -> the (prefixes, parser) pairs that can match it, in rank order.

    A prefix matches only bytes that start with its own first byte, so looking the first
    byte up and scanning what it returns is the same as scanning every claim in order.
    """
    table: dict[int, list[Magic]] = {}
    for prefixes, parser in claims:
        by_first: dict[int, list[bytes]] = {}  # one pass (SSLv2's magic is 128 prefixes)
        for prefix in prefixes:
            if prefix:
                by_first.setdefault(prefix[0], []).append(prefix)
        for first, same in by_first.items():
            table.setdefault(first, []).append((tuple(same), parser))
    return {first: tuple(pairs) for first, pairs in table.items()}


def _ports(parsers: Iterable[DeepParser], attr: str) -> dict[int, DeepParser]:
    """Port -> its parser; two parsers claiming one port is a mistake, refused loudly."""
    table: dict[int, DeepParser] = {}
    for parser in parsers:
        for port in getattr(parser, attr):
            if port in table:
                raise ValueError(f"{attr} {port} claimed by {table[port].name} and {parser.name}")
            table[port] = parser
    return table


def drop_service(flow: Flow, name: str) -> None:
    """Withdraw a service name: Zeek removes an analyzer's service when the protocol is
    violated after its confirmation (a TLS client answered in plain text)."""
    services = flow.app.get("service") if flow.app is not None else None
    if services and name in services:
        services.remove(name)
        if not services:
            del flow.app["service"]  # type: ignore[union-attr]


def tcp_partial(flow: Flow) -> bool:
    """Whether the TCP connection was first seen without a SYN (Zeek's partial connection:
    its HTTP analyzer, for one, ignores such a connection's contents)."""
    hist = flow.hist
    if not hist:
        return True
    first = hist[1] if hist[0] == "^" and len(hist) > 1 else hist[0]
    return first not in _SYN_LETTERS


_SYN_LETTERS = frozenset("SsHh")


def service(flow: Flow, name: str) -> None:
    """Add a Zeek-style service name (comma-joined in the flow record)."""
    app = flow.app
    if app is None:
        flow.app = {"service": [name]}
        return
    services: list[str] | None = app.get("service")
    if services is None:
        app["service"] = [name]
    elif name not in services:
        services.append(name)
