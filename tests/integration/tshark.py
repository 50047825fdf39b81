"""Run tshark once per capture and derive the per-conversation packet counts netwatch must match.

One tshark invocation per file does two things at once: its conversation taps
(``-z conv,tcp -z conv,udp``) give the independent dissector's own conversation counts, and
``-T fields`` prints each frame's layer stack (``frame.protocols``) with its addresses, ports
and fragment fields. The conversation tables are the reference; the per-frame fields are used
only to translate them into netwatch's flow semantics where the two differ by design:

1. **Tunnels.** tshark's taps credit a frame to *every* TCP/UDP layer it dissects, so a VXLAN
   or Geneve frame counts in the outer UDP conversation *and* in the inner one. So does
   netwatch, as Zeek does: the outer UDP datagram of a tunnel it decapsulates (``vxlan``,
   ``geneve``, ``teredo``, ``ayiya``, ``gtp``) is a flow of its own besides the inner flow, so
   no correction. GRE, ERSPAN, IP-in-IP and 6in4 have no ports, so they never appear in these
   tables. Conversely, IP headers that tshark finds inside a TCP/UDP payload netwatch does not
   decapsulate (sFlow samples, ...) are *opaque* to netwatch, which keeps the outer UDP flow;
   any conversation tshark credits for such an inner layer is taken out. The decision uses
   tshark's own dissection of the frame, never netwatch's. tshark dissects VXLAN on UDP 4789
   and Geneve on 6081 by default, as netwatch does; netwatch also decapsulates UDP 8472
   (Linux's VXLAN port) when the VXLAN I flag is set, which tshark does not: no corpus
   capture has VXLAN on 8472 (forcing ``-d udp.port==8472,vxlan`` would mis-dissect the
   ESP-in-UDP packet of ``tcpdump_esp_truncated.pcap``), so a capture that does will need
   that option. (netwatch recognises Teredo and AYIYA on any port by Zeek's rules, tshark by
   its own heuristics: a capture where the two disagree needs a documented difference.)
2. **Fragments.** With reassembly on (the default), tshark dissects the transport layer only
   in the frame that completes a datagram (and not at all for incomplete ones), so its
   conversations count datagrams, not packets. It runs here with ``ip.defragment`` and
   ``ipv6.defragment`` off: every *first* fragment is then dissected (and tapped) as TCP/UDP
   and later fragments show as bare IP data. netwatch counts a later fragment in the flow of
   its first fragment (same ``src, dst, proto, id``; for a fragmented tunnel packet, the
   inner flow); the same rule is applied to tshark's fields: each later fragment is credited
   to the conversation its datagram's first fragment was counted in (the nearest earlier
   first fragment, else the next one: netwatch holds early fragments). A fragmented
   *tunnel* datagram (the fragmented IP layer is not the innermost one netwatch sees) is
   different: netwatch rebuilds it and counts it once, whole, as Zeek does, which is what the
   taps already credit to its first fragment, so its later fragments are credited nowhere.
   Fragment timeouts and table bounds are not modelled (the corpus fragments are
   milliseconds apart).
3. **ICMP errors.** tshark's taps skip the TCP/UDP headers quoted inside ICMP errors, and
   netwatch counts those frames in the ICMP flow: no correction, the walk stops at ICMP.

Why not derive everything from ``-T fields`` alone? Then tshark would only be a header
parser and the counting rule would be ours on both sides; the conversation taps keep the
counting independent. Why not the tables alone? Their rows are ``addr:port`` pairs with no
layer information, so an outer VXLAN conversation and an inner one look alike.

Conversations are direction-insensitive 5-tuples (:data:`ConvKey`); tshark 4.0 separates TCP
conversations by stream index, so rows with the same 5-tuple are summed (as are netwatch
flows with the same 5-tuple: port reuse, timeouts). Name resolution is off (``-n``).

Defects: frames tshark marks ``_ws.malformed`` or ``_ws.short`` are summarised per named
protocol (``"TCP"``, ``"IPv4"``, ``"DNS"`` ...) so tests can tell header defects (in layers
netwatch decodes) from payload defects (which netwatch's fast path never looks at).

Reads no config. Limits: a frame whose field lists do not line up with its layer stack
(truncated headers tshark could name but not read) gets no correction and is counted in
:attr:`Dissection.unaligned`; the fragment rule ignores timeouts.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Path of the tshark binary, or None when it is not installed.
TSHARK = shutil.which("tshark")

#: (address, port, address, port, "tcp"|"udp"), endpoints in a canonical order.
ConvKey = tuple[str, int, str, int, str]
#: (src, dst, protocol, id) of an IP datagram, as netwatch's fragment tracker keys it.
DatagramKey = tuple[str, str, int, int]

OPTIONS = ("-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE")
FIELDS = (
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.id",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.ident",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.offset",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "_ws.short",
    "_ws.malformed",
)
#: UDP tunnels netwatch decapsulates (tshark's protocol names).
DECAPSULATED = frozenset({"vxlan", "geneve", "teredo", "ayiya", "gtp"})
#: Layers netwatch's decoder walks: a defect named here is a header defect.
HEADER_PROTOCOLS = frozenset(
    {
        "Ethernet",
        "Ethertype",
        "802.1Q Virtual LAN",
        "IEEE 802.1ad",
        "MPLS",
        "PPPoE",
        "PPP",
        "Linux cooked-mode capture",
        "Linux cooked-mode capture v2",
        "Null/Loopback",
        "Raw packet data",
        "IPv4",
        "IPv6",
        "IPv6 Fragment",
        "IPv6 Hop-by-Hop",
        "IPv6 Routing",
        "IPv6 Destination Options",
        "TCP",
        "UDP",
        "ICMP",
        "ICMPv6",
        "GRE",
        "ERSPAN",
        "VXLAN",
        "Geneve",
    }
)

_ROW = re.compile(
    r"^(?P<a>\S+)\s+<->\s+(?P<b>\S+)\s+"
    r"\d+\s+\S+\s+\S+\s+\d+\s+\S+\s+\S+\s+(?P<frames>\d+)\s+\S+\s+\S+\s"
)
_DEFECT = re.compile(
    r"\[(?:Malformed Packet: (?P<m>[^\]]+)|Packet size limited during capture: (?P<s>.+?)"
    r" truncated)\]"
)
_SECTION = {"TCP Conversations": "tcp", "UDP Conversations": "udp"}


class TsharkError(RuntimeError):
    """tshark failed on a capture (exit status and stderr in the message)."""


def conv_key(a: str, a_port: int, b: str, b_port: int, proto: str) -> ConvKey:
    """The direction-insensitive key of a conversation; addresses in canonical text form."""
    ea = (ipaddress.ip_address(a), a_port)
    eb = (ipaddress.ip_address(b), b_port)
    lo, hi = sorted((ea, eb), key=lambda e: (e[0].version, e[0], e[1]))
    return (str(lo[0]), lo[1], str(hi[0]), hi[1], proto)


def _endpoint(text: str) -> tuple[str, int]:
    addr, _, port = text.rpartition(":")  # IPv6 addresses contain ':' too: split at the last
    return addr, int(port)


@dataclass(slots=True)
class _Ip:
    src: str
    dst: str
    proto: int
    fragment: tuple[DatagramKey, bool] | None  # (datagram, is first fragment)


@dataclass(frozen=True, slots=True)
class Frame:
    """What tshark's dissection says about one frame, in netwatch's terms."""

    number: int
    layers: tuple[str, ...]
    #: The conversation netwatch should count the frame in (innermost visible TCP/UDP).
    counted: ConvKey | None
    #: Other conversations tshark's taps credit the frame to (outer or opaque layers).
    extra: tuple[ConvKey, ...]
    #: Fragmented IP layers netwatch sees: (datagram, is first fragment).
    fragments: tuple[tuple[DatagramKey, bool], ...]
    #: Protocols named by ``_ws.malformed`` / ``_ws.short`` ("?" when unnamed).
    defects: tuple[str, ...]
    aligned: bool
    #: Datagrams of :attr:`fragments` that carry a tunnel (counted once, whole).
    tunnels: frozenset[DatagramKey] = frozenset()


@dataclass(slots=True)
class Dissection:
    """tshark's view of one capture."""

    path: Path
    taps: Counter[ConvKey] = field(default_factory=Counter)
    frames: list[Frame] = field(default_factory=list)
    #: tshark reported that the file ends in the middle of a record (exit status 2).
    cut_short: bool = False

    @property
    def unaligned(self) -> int:
        """Frames whose fields could not be matched to their layers (no correction applied)."""
        return sum(1 for f in self.frames if not f.aligned)

    def outer_credits(self) -> Counter[ConvKey]:
        """Frames the taps credited to outer-tunnel or opaque-inner conversations."""
        out: Counter[ConvKey] = Counter()
        for f in self.frames:
            for key in f.extra:
                if self.taps[key] > 0:
                    out[key] += 1
        return out

    def later_fragment_credits(self) -> Counter[ConvKey]:
        """Later fragments credited to the conversation of their datagram's first fragment."""
        firsts: dict[DatagramKey, list[tuple[int, ConvKey]]] = {}
        laters: list[tuple[int, DatagramKey]] = []
        whole = {d for f in self.frames for d in f.tunnels}  # counted once, whole
        for f in self.frames:
            for dgram, first in f.fragments:
                if not first:
                    laters.append((f.number, dgram))
                elif f.counted is not None and self.taps[f.counted] > 0:
                    firsts.setdefault(dgram, []).append((f.number, f.counted))
        out: Counter[ConvKey] = Counter()
        for number, dgram in laters:
            if dgram in whole:
                continue
            owner = _first_fragment_owner(firsts.get(dgram, []), number)
            if owner is not None:
                out[owner] += 1
        return out

    def expected(self) -> Counter[ConvKey]:
        """Per-conversation packet counts in netwatch's semantics (zero rows dropped)."""
        exp = Counter(self.taps)
        exp.subtract(self.outer_credits())
        exp.update(self.later_fragment_credits())
        return Counter({k: v for k, v in exp.items() if v != 0})

    def defect_frames(self, protocols: frozenset[str] | None = None) -> int:
        """Frames with a malformed/short mark (only marks naming ``protocols`` when given)."""
        return sum(
            1
            for f in self.frames
            if f.defects and (protocols is None or any(p in protocols for p in f.defects))
        )

    def defects(self) -> Counter[str]:
        """How many frames carry a defect mark, per named protocol."""
        return Counter(p for f in self.frames for p in set(f.defects))


def _flag(value: str) -> bool:
    """A boolean field as tshark prints it: "1"/"0" (4.0) or "True"/"False" (4.2+)."""
    return value in ("1", "True", "true")


def _first_fragment_owner(firsts: list[tuple[int, ConvKey]], number: int) -> ConvKey | None:
    before = [key for n, key in firsts if n < number]
    if before:
        return before[-1]
    after = [key for n, key in firsts if n > number]
    return after[0] if after else None


def command(path: Path) -> list[str]:
    """The tshark command line used for ``path`` (one pass: fields and both conversation taps)."""
    if TSHARK is None:
        raise TsharkError("tshark is not installed")
    fields = [arg for name in FIELDS for arg in ("-e", name)]
    return [
        TSHARK,
        "-r",
        str(path),
        *OPTIONS,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "separator=/t",
        *fields,
        "-z",
        "conv,tcp",
        "-z",
        "conv,udp",
    ]


def dissect(path: Path, timeout_s: float = 120.0) -> Dissection:
    """Run tshark once on ``path`` and parse both outputs."""
    proc = subprocess.run(
        command(path), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    cut_short = "cut short in the middle of a packet" in proc.stderr
    if proc.returncode != 0 and not cut_short:  # a cut-short file still gets its output
        raise TsharkError(f"tshark exited {proc.returncode} on {path}: {proc.stderr.strip()}")
    out = parse(path, proc.stdout)
    out.cut_short = cut_short
    return out


def parse(path: Path, stdout: str) -> Dissection:
    """Parse the per-frame field lines, then the conversation tables that follow them."""
    out = Dissection(path)
    lines = stdout.splitlines()
    i = 0
    while i < len(lines) and not lines[i].startswith("====="):
        out.frames.append(parse_frame(i + 1, lines[i].split("\t")))
        i += 1
    proto: str | None = None
    for line in lines[i:]:
        if line in _SECTION:
            proto = _SECTION[line]
            continue
        if "<->" not in line:
            continue
        m = _ROW.match(line)
        if m is None or proto is None:  # never drop a row silently: the format changed
            raise TsharkError(f"{path}: unparsed conversation row: {line!r}")
        a, a_port = _endpoint(m["a"])
        b, b_port = _endpoint(m["b"])
        out.taps[conv_key(a, a_port, b, b_port, proto)] += int(m["frames"])
    return out


def _split(value: str) -> list[str]:
    return value.split(",") if value else []


class _Columns:
    """Per-layer field values of one frame, consumed layer by layer in stack order."""

    def __init__(self, cols: Sequence[str]) -> None:
        col = dict(zip(FIELDS, cols, strict=False))
        self.ip = _zip(
            col, "ip.src", "ip.dst", "ip.proto", "ip.id", "ip.flags.mf", "ip.frag_offset"
        )
        self.ip6 = _zip(col, "ipv6.src", "ipv6.dst")
        self.frag6 = _zip(
            col,
            "ipv6.fraghdr.nxt",
            "ipv6.fraghdr.ident",
            "ipv6.fraghdr.more",
            "ipv6.fraghdr.offset",
        )
        self.tcp = _zip(col, "tcp.srcport", "tcp.dstport")
        self.udp = _zip(col, "udp.srcport", "udp.dstport")
        self.defects = tuple(_defects(col.get("_ws.short", "") + col.get("_ws.malformed", "")))


def _zip(col: dict[str, str], *names: str) -> Iterator[tuple[str, ...]] | None:
    """Iterator over one layer's values; None when the lists disagree in length."""
    lists = [_split(col.get(n, "")) for n in names]
    if len({len(v) for v in lists}) > 1:
        return None
    return zip(*lists, strict=True)


def _defects(text: str) -> Iterator[str]:
    named = False
    for m in _DEFECT.finditer(text):
        named = True
        yield m["m"] or m["s"]
    if not named and text:
        yield "?"


class _UnalignedError(Exception):
    pass


def _take(it: Iterator[tuple[str, ...]] | None) -> tuple[str, ...]:
    if it is None:
        raise _UnalignedError
    value = next(it, None)
    if value is None:
        raise _UnalignedError
    return value


def parse_frame(number: int, cols: Sequence[str]) -> Frame:
    """Walk one frame's layer stack the way netwatch's decoder would see it."""
    layers = tuple(cols[0].split(":")) if cols and cols[0] else ()
    c = _Columns(cols)
    try:
        counted, extra, frags, tunnels = _walk(layers, c)
    except (_UnalignedError, ValueError):
        return Frame(number, layers, None, (), (), c.defects, False)
    return Frame(number, layers, counted, extra, frags, c.defects, True, tunnels)


def _walk(
    layers: tuple[str, ...], c: _Columns
) -> tuple[
    ConvKey | None,
    tuple[ConvKey, ...],
    tuple[tuple[DatagramKey, bool], ...],
    frozenset[DatagramKey],
]:
    ips: list[_Ip] = []
    visible = True  # still in headers netwatch walks (not inside an opaque payload)
    innermost = -1  # index in ips of the innermost IP layer netwatch sees
    transports: list[tuple[ConvKey, int, bool]] = []  # (key, ip index, may be netwatch's)
    outers: set[ConvKey] = set()  # a decapsulated tunnel's outer UDP: netwatch's flow too
    for pos, layer in enumerate(layers):
        if layer in ("icmp", "icmpv6"):
            break  # quoted headers of an ICMP error follow: neither tapped nor netwatch's
        if layer == "ip":
            src, dst, proto, ident, mf, off = _take(c.ip)
            frag = None
            if _flag(mf) or int(off or "0") > 0:
                frag = ((src, dst, int(proto), int(ident, 0)), int(off or "0") == 0)
            ips.append(_Ip(src, dst, int(proto), frag))
        elif layer == "ipv6":
            src, dst = _take(c.ip6)
            ips.append(_Ip(src, dst, -1, None))
        elif layer == "ipv6.fraghdr" and ips:
            nxt, ident, more, off = _take(c.frag6)
            if _flag(more) or int(off or "0") > 0:
                ip = ips[-1]
                ip.fragment = ((ip.src, ip.dst, int(nxt), int(ident, 0)), int(off or "0") == 0)
        elif layer in ("tcp", "udp") and ips:
            sport, dport = _take(c.tcp if layer == "tcp" else c.udp)
            ip = ips[-1]
            key = conv_key(ip.src, int(sport), ip.dst, int(dport), layer)
            following = layers[pos + 1] if pos + 1 < len(layers) else ""
            outer = following in DECAPSULATED  # a tunnel's outer UDP: its own flow
            if outer and visible:
                outers.add(key)
            transports.append((key, len(ips) - 1, visible and not outer))
            if not outer:
                visible = False
        if layer in ("ip", "ipv6") and visible:
            innermost = len(ips) - 1
    mine = [i for i, (_, ip_index, vis) in enumerate(transports) if vis and ip_index == innermost]
    counted = transports[mine[-1]][0] if mine else None
    extra = tuple(
        t[0] for i, t in enumerate(transports) if (not mine or i != mine[-1]) and t[0] not in outers
    )
    seen = ips[: innermost + 1]
    frags = tuple(ip.fragment for ip in seen if ip.fragment is not None)
    tunnels = frozenset(
        ip.fragment[0] for i, ip in enumerate(seen) if ip.fragment is not None and i < innermost
    )
    return counted, extra, frags, tunnels


def flow_conversations(records: Iterable[Mapping[str, Any]]) -> Counter[ConvKey]:
    """netwatch's TCP/UDP flow records as per-5-tuple packet counts (same-key flows summed)."""
    out: Counter[ConvKey] = Counter()
    for r in records:
        proto = {6: "tcp", 17: "udp"}.get(r["ip_proto"])
        if proto is not None:
            key = conv_key(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], proto)
            out[key] += r["orig_pkts"] + r["resp_pkts"]
    return out
