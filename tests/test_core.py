"""The compiled core (netwatch/_core.c) against Python's decoder, packet by packet.

For every packet of every capture in pcaps/ and the corpus, and for the decoder fuzz
inputs (tests/decode/test_fuzz.py's templates and mutations): the C walk yields one record
per pcap record, at the right place; a record is common-shape exactly where
:func:`common_shape` (the written definition) says so, and then carries exactly the
:data:`Decoded` tuple Python's decoder returns for the frame. Hostile record areas never
make it read past its buffer (run under ``./dev sanitize`` for ASan/UBSan). And the C bases
of Flow and Endpoint: the C-backed classes read and write, delete, pickle, copy and
collect exactly like the pure-Python reference classes (``PyFlow``, ``PyEndpoint``).

Skips where the core cannot be there (NETWATCH_PURE=1, no C compiler); fails when a
compiler is there and the extension was not built.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import inspect
import os
import pickle
import random
import shutil
import struct
import sys
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netwatch import core
from netwatch.capture.files import open_capture
from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import MAX_CAPLEN, PCAP_HEADER_LEN, PcapHeader, ReadStats, walk_pcap
from netwatch.decode.frames import Decoder
from netwatch.decode.tunnels import TUNNEL_UDP_PORTS, tunnel_kind
from netwatch.flow.ids import community_id
from netwatch.flow.table import Flow, PyFlow
from netwatch.flow.tcpstate import ORIG_LETTERS, Endpoint, PyEndpoint
from netwatch.testing import pcapgen as g
from tests.decode.test_fuzz import TEMPLATES, _mutate
from tests.profile import examples

ROOT = Path(__file__).resolve().parent.parent
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
Frames = list[tuple[bytes, int]]  # (captured bytes, wire length)


@pytest.fixture(autouse=True)
def _needs_core() -> None:
    if core.available():
        return
    if os.environ.get("NETWATCH_PURE") == "1":
        pytest.skip("NETWATCH_PURE=1 forces the pure-Python path")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: netwatch._core is not built")
    pytest.fail("a C compiler is here but netwatch._core is not built (pip install -e .)")


def _u16(frame: bytes, off: int) -> int:
    return int.from_bytes(frame[off : off + 2], "big")


def common_shape(frame: bytes, wirelen: int) -> bool:
    """The definition of a common-shape Ethernet frame: at most two VLAN tags, IPv4 with a
    20-byte header and no fragment bits or IPv6 straight to TCP/UDP, a TCP header within the
    capture and the IP payload, a UDP header whose datagram the general walk would not look
    into for a tunnel (netwatch.decode.tunnels.tunnel_kind)."""
    flen = len(frame)
    if flen < 14:
        return False
    off, etype, tags = 14, _u16(frame, 12), 0
    while etype in VLAN_TPIDS:
        if tags == 2 or flen < off + 4:
            return False
        etype, off, tags = _u16(frame, off + 2), off + 4, tags + 1
    if etype == 0x0800:
        if flen < off + 20 or frame[off] != 0x45 or _u16(frame, off + 6) & 0x3FFF:
            return False
        tot, limit = _u16(frame, off + 2), wirelen - off
        tot = limit if tot == 0 or tot > limit else tot
        if tot < 20:
            return False
        proto, l4, pay = frame[off + 9], off + 20, tot - 20
    elif etype == 0x86DD:
        if flen < off + 40 or frame[off] >> 4 != 6:
            return False
        pay, limit = _u16(frame, off + 4), wirelen - off - 40
        pay = max(limit, 0) if pay == 0 or pay > limit else pay
        proto, l4 = frame[off + 6], off + 40
    else:
        return False
    if proto == 6:
        return flen >= l4 + 20 and 20 <= (frame[l4 + 12] >> 4) * 4 <= pay
    if proto == 17:
        if flen < l4 + 8 or pay < 8:
            return False
        end = min(l4 + pay, flen)
        return tunnel_kind(frame, l4 + 8, end, _u16(frame, l4), _u16(frame, l4 + 2)) is None
    return False


def pcap_bytes(linktype: int, frames: Frames) -> bytes:
    """A little-endian microsecond classic pcap of ``frames``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, MAX_CAPLEN, linktype)]
    for i, (frame, wirelen) in enumerate(frames):
        out.append(struct.pack("<IIII", i, 7, len(frame), wirelen) + frame)
    return b"".join(out)


def compare(linktype: int, frames: Frames) -> Counter[str]:
    """Walk ``frames`` in C and decode them in Python; assert the contract; count kinds."""
    frames = [(f, w) for f, w in frames if 0 < len(f) <= MAX_CAPLEN]
    buf = pcap_bytes(linktype, frames)
    batch = core.walk_pcap(
        buf, PCAP_HEADER_LEN, len(buf), little=True, ethernet=linktype == 1, limit=len(frames)
    )
    assert (batch.next, batch.status, batch.empty) == (len(buf), core.Status.END, 0)
    records = list(batch)
    assert len(records) == len(frames)
    decoder = Decoder()
    kinds: Counter[str] = Counter()
    for i, (rec, (frame, wirelen)) in enumerate(zip(records, frames, strict=True)):
        assert (rec.sec, rec.frac, rec.caplen, rec.wirelen) == (i, 7, len(frame), wirelen)
        assert buf[rec.frame_off : rec.frame_off + rec.caplen] == frame
        got = core.as_decoded(rec, frame)
        want = decoder.decode(linktype, frame, wirelen, float(i))
        decoder.outer.clear()
        decoder.released.clear()
        common = linktype == LinkType.ETHERNET and common_shape(frame, wirelen)
        assert (got is not None) == common, (i, frame.hex(), wirelen)
        if got is not None:
            assert got == want, (i, frame.hex(), wirelen)
        kinds[core.Kind(rec.kind).name] += 1
    return kinds


def compare_capture(path: Path) -> Counter[str]:
    """:func:`compare` over one capture file's packets, link type by link type."""
    by_link: dict[int, Frames] = {}
    with open_capture(path) as capture:
        for _ts, linktype, wirelen, frame in capture.packets():
            by_link.setdefault(linktype, []).append((frame, wirelen))
    kinds: Counter[str] = Counter()
    for linktype, frames in by_link.items():
        kinds += compare(linktype, frames)
    return kinds


def test_every_bundled_capture() -> None:
    paths = sorted(p for p in (ROOT / "pcaps").rglob("*.pcap*") if p.is_file())
    assert paths
    kinds: Counter[str] = Counter()
    for path in paths:
        kinds += compare_capture(path)
    assert kinds["IPV4"] and kinds["IPV6"] and kinds["ODD"]


def test_every_corpus_capture(pcap_corpus: Path) -> None:
    kinds: Counter[str] = Counter()
    for path in sorted(p for p in pcap_corpus.rglob("*.pcap*") if p.is_file()):
        kinds += compare_capture(path)
    assert kinds["IPV4"] and kinds["ODD"]


def test_mapped_file_in_its_own_byte_order_and_tick() -> None:
    """The walk over a file's bytes as written (here big-endian, nanoseconds, QinQ): each
    record's offset, timestamp fields and wire length, and the inner VLAN."""
    r4 = g.Route.of("02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2", (7, 9))
    frames = [g.tcp_frame(r4, 1000 + i, 443, seq=i, ack=2, flags=0x10) for i in range(20)]
    body = b"".join(struct.pack(">IIII", 5, 999_999_999, len(f), len(f) + 4) + f for f in frames)
    buf = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1) + body
    batch = core.walk_pcap(buf, PCAP_HEADER_LEN, len(buf), little=False, ethernet=True, limit=99)
    records = list(batch)
    assert [r.frame_off for r in records] == [
        PCAP_HEADER_LEN + 16 + sum(16 + len(f) for f in frames[:i]) for i in range(20)
    ]
    assert all(r.vlan == 9 and r.kind == core.Kind.IPV4 for r in records)
    assert [r.sport for r in records] == list(range(1000, 1020))
    assert [(r.sec, r.frac, r.wirelen) for r in records] == [
        (5, 999_999_999, len(frames[0]) + 4)
    ] * 20


def test_qinq_is_common_and_a_third_tag_is_odd() -> None:
    r6 = g.Route.of("02:00:00:00:00:01", "fd00::1", "02:00:00:00:00:02", "fd00::2", (30, 40))
    two = g.udp_frame(r6, 5004, 5005, b"\x80" * 100)
    three = two[:12] + b"\x88\xa8\x00\x05" + two[12:]
    kinds = compare(1, [(two, len(two)), (three, len(three))])
    assert kinds == Counter({"IPV6": 1, "ODD": 1})


def test_tunnel_ports_and_their_neighbours_as_python() -> None:
    """Every tunnel port (the general walk looks into the datagram: odd here) as the source
    or destination, and the ports either side of each (the C tests a range first: its edges
    included), are decided as Python's decoder decides them."""
    r4 = g.Route.of("02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2")
    ports = sorted({q for p in TUNNEL_UDP_PORTS for q in (p - 1, p, p + 1)})
    frames = [g.udp_frame(r4, p, 40000, b"\x80" * 64) for p in ports]
    frames += [g.udp_frame(r4, 40000, p, b"\x80" * 64) for p in ports]
    kinds = compare(1, [(f, len(f)) for f in frames])
    tunnels = 2 * len(TUNNEL_UDP_PORTS)
    assert kinds == Counter({"ODD": tunnels, "IPV4": len(frames) - tunnels})


def test_batches_resume_where_they_stopped() -> None:
    r4 = g.Route.of("02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2")
    frames = [(g.udp_frame(r4, 5000, 6000 + i, bytes(i)), 60) for i in range(10)]
    buf = pcap_bytes(1, frames)
    off, ports = PCAP_HEADER_LEN, []
    while True:
        batch = core.walk_pcap(buf, off, len(buf), little=True, ethernet=True, limit=3)
        ports += [r.dport for r in batch]
        off = batch.next
        if batch.status is core.Status.END:
            break
        assert batch.status is core.Status.FULL
    assert (ports, off) == (list(range(6000, 6010)), len(buf))


def test_stops_like_the_python_walker() -> None:
    """An empty record is skipped and counted, a record cut by the end stops the walk at its
    header, and a captured length above the maximum stops it (framing lost)."""
    r4 = g.Route.of("02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2")
    frame = g.tcp_frame(r4, 1, 2, seq=1, ack=1, flags=0x10)
    rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    empty = struct.pack("<IIII", 1, 0, 0, 0)
    huge = struct.pack("<IIII", 1, 0, MAX_CAPLEN + 1, 9) + frame
    cut = rec[:-1]
    for body, want in (
        (rec + empty + rec, (2, len(rec) * 2 + 16, core.Status.END, 1)),
        (rec + cut, (1, len(rec), core.Status.END, 0)),
        (rec + huge + rec, (1, len(rec), core.Status.CAPLEN, 0)),
    ):
        b = core.walk_pcap(body, 0, len(body), little=True, ethernet=True, limit=10)
        assert (len(list(b)), b.next, b.status, b.empty) == want


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=600), st.integers(0, 40), st.booleans())
def test_hostile_record_areas_stay_inside_the_buffer(data: bytes, start: int, little: bool) -> None:
    start = min(start, len(data))
    b = core.walk_pcap(data, start, len(data), little=little, ethernet=True, limit=1000)
    assert start <= b.next <= len(data)
    for r in b:
        assert start + 16 <= r.frame_off and r.frame_off + r.caplen <= len(data)
    header = PcapHeader.parse(struct.pack("<I" if little else ">I", 0xA1B2C3D4) + bytes(20))
    stats = ReadStats()
    python = [
        rec[2:] for rec in walk_pcap(data, start, len(data), False, header=header, stats=stats)
    ]
    assert python == [(r.wirelen, data[r.frame_off : r.frame_off + r.caplen]) for r in b]
    assert (stats.empty_records, stats.caplen_exceeds) == (b.empty, b.status is core.Status.CAPLEN)


@settings(
    max_examples=examples(300),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(TEMPLATES), st.integers(0, 2**32 - 1))
def test_fuzz_inputs_agree_with_python(template: tuple[int, bytes], seed: int) -> None:
    linktype, frame0 = template
    rng = random.Random(seed)
    frames: Frames = []
    for _ in range(100):
        frame = _mutate(rng, frame0) if rng.random() < 0.8 else frame0
        wirelen = rng.randrange(70_000) if rng.random() < 0.1 else len(frame)
        frames.append((frame, wirelen))
    compare(linktype, frames)
    if linktype != LinkType.ETHERNET:  # the same bytes as Ethernet frames: still agree
        compare(LinkType.ETHERNET, frames)


# -- Flow and Endpoint on the core's C bases (FlowBase, EndpointBase) ----------------------

MISSING = "<unset>"
BIG = 1 << 70


def _flow(cls: type, ts: object = 1.5) -> Any:
    return cls((b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1000, 53, 17), "Cuid", ts, 17)


def _endpoint(cls: type, ts: object = None) -> Any:
    return cls(ORIG_LETTERS)


#: (C-backed class, reference class, a maker of an instance from a class and a time)
KINDS: list[tuple[type, Any, Callable[..., Any]]] = [
    (Flow, PyFlow, _flow),
    (Endpoint, PyEndpoint, _endpoint),
]


def _view(obj: object, names: tuple[str, ...], *, by_value: bool = False) -> list[object]:
    """Each attribute as Python sees it: an int or float by type and repr (-0.0, nan), any
    other object by identity (or by value: after a pickle round trip), unset as MISSING."""
    out: list[object] = []
    for name in names:
        try:
            value = getattr(obj, name)
        except AttributeError:
            out.append((name, MISSING))
            continue
        if type(value) in (int, float):
            out.append((name, type(value), repr(value)))
        else:
            out.append((name, type(value), value if by_value else id(value)))
    return out


def test_flow_and_endpoint_are_the_c_backed_subclasses() -> None:
    bases = core.flow_bases()
    assert bases is not None
    assert Flow.__mro__[1:] == (bases[0], object) and Flow is not PyFlow
    assert Endpoint.__mro__[1:] == (bases[1], object) and Endpoint is not PyEndpoint
    for cls, ref in ((Flow, PyFlow), (Endpoint, PyEndpoint)):
        assert (cls.__module__, cls.__qualname__) == (ref.__module__, ref.__qualname__)
        for name in ref.__slots__:  # every attribute is the C base's own descriptor
            descr = inspect.getattr_static(cls, name)
            assert descr is vars(cls.__mro__[1])[name], name
    # the counters the fast loop writes are C fields (getset), the rest plain slots
    cells = {"last", "o_pkts", "o_ipb", "o_bytes", "r_pkts", "r_ipb", "r_bytes"}
    for name in PyFlow.__slots__:
        kind = type(inspect.getattr_static(Flow, name)).__name__
        assert kind == ("getset_descriptor" if name in cells else "member_descriptor"), name


@pytest.mark.parametrize("ts", [1.5, 0, -0.0, float("nan"), BIG, True, "t", None])
def test_same_attributes_after_init(ts: object) -> None:
    for cls, ref, make in KINDS:
        assert _view(make(cls, ts), ref.__slots__) == _view(make(ref, ts), ref.__slots__)


def test_init_by_keyword_and_wrong_arguments_as_the_reference() -> None:
    """The positional call takes C's shortcut; keywords and wrong calls are parsed, and
    fail where the reference's __init__ fails."""
    key = (b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1000, 53, 17)
    pairs: list[tuple[Any, Any]] = [(Flow, PyFlow), (Endpoint, PyEndpoint)]
    for cls, ref in pairs:
        args: tuple[Any, ...] = (key, "Cuid", 1.5, 17) if ref is PyFlow else (ORIG_LETTERS,)
        names = ("key", "uid", "ts", "proto") if ref is PyFlow else ("letters",)
        kw = dict(zip(names, args, strict=True))
        assert _view(cls(**kw), ref.__slots__) == _view(ref(**kw), ref.__slots__)
        assert _view(cls(*args[:1], **dict(list(kw.items())[1:])), ref.__slots__) == _view(
            ref(*args[:1], **dict(list(kw.items())[1:])), ref.__slots__
        )
        for bad_args, bad_kw in (
            (args[:-1], {}),
            ((*args, 0, 0), {}),  # (Endpoint with 2 and Flow with 13 are the one-call forms)
            (args, {"other": 1}),
            (args[:-1], {"nope": 1}),
        ):
            for c in (cls, ref):
                with pytest.raises(TypeError):
                    c(*bad_args, **bad_kw)


def _reference_new(
    key: object,
    uid: object,
    ts: object,
    proto: object,
    odir: object,
    orig_h: object,
    resp_h: object,
    orig_p: object,
    resp_p: object,
    frame: Any,
    mac_off: Any,
    vlan: object,
    budget: object,
) -> PyFlow:
    """What ``FlowTable._new`` writes on the pure path, attribute by attribute."""
    f = PyFlow(key, uid, ts, proto)  # type: ignore[arg-type]
    f.odir = odir  # type: ignore[assignment]
    f.orig_h, f.resp_h, f.orig_p, f.resp_p = orig_h, resp_h, orig_p, resp_p  # type: ignore[assignment]
    if mac_off >= 0:
        f.resp_mac = frame[mac_off : mac_off + 6]
        f.orig_mac = frame[mac_off + 6 : mac_off + 12]
    f.vlan = vlan  # type: ignore[assignment]
    f.deep_o = f.deep_r = budget  # type: ignore[assignment]
    return f


_FRAMES: list[Any] = [
    b"",
    bytes(range(5)),
    bytes(range(11)),
    bytes(range(12)),
    bytes(range(13)),
    bytes(range(60)),
    bytearray(range(60)),
    memoryview(bytes(range(30))),
]
_MAC_OFFS: list[Any] = [-1, -7, 0, 1, 5, 6, 7, 18, 47, 48, 49, 54, 59, 60, 61, 100]
_MAC_OFFS += [2**62, 2**63, 2**70, -(2**70), True, False]


@pytest.mark.parametrize("frame", _FRAMES, ids=lambda f: f"{type(f).__name__}{len(f)}")
def test_a_whole_new_flow_in_one_call_is_the_reference_writes(frame: Any) -> None:
    """``Flow`` with 13 arguments (the table's new flow) sets what the reference's
    ``__init__`` and ``_new``'s writes set: the MACs sliced as Python slices (short frames,
    offsets past the end, huge and negative ints, bools, bytearray and memoryview frames)."""
    whole: Callable[..., Any] = Flow  # the C form (the reference takes 4 arguments)
    key = (b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1000, 53, 17)
    for mac_off in _MAC_OFFS:
        for odir, vlan, budget in ((True, -1, 8), (False, 20, 0), (False, 2**70, None)):
            args = (key, "Cuid", 1.5, 17, odir, b"\x0a\0\0\x02", b"\x0a\0\0\x01", 53, 1000)
            full = (*args, frame, mac_off, vlan, budget)
            got = whole(*full)
            want = _reference_new(*full)
            assert _view(got, PyFlow.__slots__, by_value=True) == _view(
                want, PyFlow.__slots__, by_value=True
            ), mac_off
            for name in ("orig_mac", "resp_mac"):  # same type too (bytes, bytearray, view)
                assert type(getattr(got, name)) is type(getattr(want, name))
    # what the reference's slicing refuses, refused alike
    for bad_off, bad_frame in ((1.5, b"x" * 20), ("0", b"x" * 20), (None, b"x" * 20), (0, 7)):
        full = (key, "Cuid", 1.5, 17, True, b"", b"", 0, 0, bad_frame, bad_off, -1, 8)
        for make in (whole, _reference_new):
            with pytest.raises(TypeError):
                make(*full)


def _reference_syn(letters: str, seq: Any) -> PyEndpoint:
    """What ``FlowTable._tcp_first`` writes on the pure path for an originator's bare SYN."""
    o = PyEndpoint(letters)
    o.bits = 1
    o.last_ctl = [seq, -1, -1]
    o.base = o.seqmax = o.deliv = seq + 1
    o.state = 1  # SYN_SENT
    o.dack = (seq + 1) & 0xFFFFFFFF
    return o


@pytest.mark.parametrize(
    "seq",
    [0, 1, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**63 - 1, 2**64, -1, -(2**70), True],
)
def test_an_originator_after_its_syn_in_one_call_is_the_reference_writes(seq: Any) -> None:
    """``Endpoint(letters, seq)`` (the table's originator after a bare SYN) sets what the
    reference's ``__init__`` and ``_tcp_first``'s writes set, values and types."""
    syn: Callable[..., Any] = Endpoint  # the C form (the reference takes 1 argument)
    got, want = syn(ORIG_LETTERS, seq), _reference_syn(ORIG_LETTERS, seq)
    assert _view(got, PyEndpoint.__slots__, by_value=True) == _view(
        want, PyEndpoint.__slots__, by_value=True
    )
    assert got.base is got.deliv  # one object, as the reference's chained assignment
    for bad in ("1", None, 1.5):
        for make in (syn, _reference_syn):
            with pytest.raises(TypeError):
                make(ORIG_LETTERS, bad)


_VALUES = st.one_of(
    st.integers(),
    st.integers(-(2**63) - 2, -(2**63) + 2),
    st.integers(2**63 - 2, 2**63 + 2),
    st.sampled_from([BIG, -BIG, 0, 1, -1, 256, 257]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
    st.builds(list),
)
_DELETE = object()


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(
    st.sampled_from([0, 1]),
    st.lists(st.tuples(st.integers(0, 40), st.one_of(_VALUES, st.just(_DELETE))), max_size=30),
)
def test_attributes_behave_like_the_reference_slots(
    kind: int, ops: list[tuple[int, object]]
) -> None:
    """Any sequence of writes and deletions, of any value, leaves the C-backed object
    reading exactly like the reference (type, value, identity; unset raises
    AttributeError); an unknown name cannot be set on either."""
    cls, ref, make = KINDS[kind]
    names = ref.__slots__
    ours, theirs = make(cls), make(ref)
    for index, value in ops:
        name = names[index] if index < len(names) else "not_an_attribute"
        outcome: list[type[Exception] | None] = []
        for obj in (ours, theirs):
            try:
                if value is _DELETE:
                    delattr(obj, name)
                else:
                    setattr(obj, name, value)
                outcome.append(None)
            except AttributeError:
                outcome.append(AttributeError)
        assert outcome[0] == outcome[1], (name, value)
        assert _view(ours, names) == _view(theirs, names)


def test_methods_as_the_reference() -> None:
    for stop, last, first in [(-1.0, 5.0, 1.0), (3.0, 5.0, 1.0), (0, 7, 2), (-1.0, 5, 1.5)]:
        ours, theirs = _flow(Flow), _flow(PyFlow)
        for f in (ours, theirs):
            f.stop, f.last, f.first = stop, last, first
        assert repr(ours.duration) == repr(theirs.duration)
    ours, theirs = _flow(Flow), _flow(PyFlow)
    for f in (ours, theirs):
        f.app_set("a", 1)
        f.app_set("a", 2)
        f.app_set("b", None)
    assert ours.app == theirs.app == {"a": 1, "b": None}
    for state, seqmax, acked, fin in [(4, 100, 90, -1), (5, 101, 120, 100), (6, 50, 10, -1)]:
        sizes = []
        for cls in (Endpoint, PyEndpoint):
            e, peer = cls(ORIG_LETTERS), cls(ORIG_LETTERS.lower())
            e.state, e.base, e.seqmax, e.acked, e.fin = state, 10, seqmax, acked, fin
            sizes.append(e.size(peer))
        assert sizes[0] == sizes[1]


def test_pickle_and_copy_as_the_reference() -> None:
    for cls, ref, make in KINDS:
        ours = make(cls)
        setattr(ours, "hist" if cls is Flow else "blocks", ["S"])  # a member
        if cls is Flow:
            ours.o_pkts, ours.last = BIG, 7  # cells holding an object and an int
        delattr(ours, "keep" if cls is Flow else "zwin")  # unset stays unset
        theirs = make(ref)
        for name in ref.__slots__:
            try:
                setattr(theirs, name, getattr(ours, name))
            except AttributeError:
                delattr(theirs, name)
        want = _view(theirs, ref.__slots__, by_value=True)
        for twin in (pickle.loads(pickle.dumps(ours)), copy.copy(ours), copy.deepcopy(ours)):
            assert type(twin) is cls
            assert _view(twin, ref.__slots__, by_value=True) == want


class _Marker:
    """A weakly referenceable object to see a cycle collected."""


@pytest.mark.parametrize(
    ("kind", "attr"), [(0, "ev"), (0, "o_pkts"), (0, "last"), (1, "blocks"), (1, "seqmax")]
)
def test_cycles_through_members_and_cells_are_collected(kind: int, attr: str) -> None:
    cls, _, make = KINDS[kind]
    obj, marker = make(cls), _Marker()
    setattr(obj, attr, [obj, marker])
    gone = weakref.ref(marker)
    del obj, marker
    gc.collect()
    assert gone() is None


def test_objects_in_cells_are_released_once() -> None:
    big = BIG + 1  # an object of its own
    base = sys.getrefcount(big)
    f = _flow(Flow)
    f.o_pkts = big
    assert sys.getrefcount(big) == base + 1 and f.o_pkts is big
    f.o_pkts = 5
    assert sys.getrefcount(big) == base
    f.o_pkts = big
    del f.o_pkts
    assert sys.getrefcount(big) == base
    f.o_pkts = big
    f.__init__((), "C2", 1.0, 6)  # a second __init__ replaces it
    assert sys.getrefcount(big) == base and f.o_pkts == 0
    f.r_bytes = big
    del f
    assert sys.getrefcount(big) == base


def test_fast_loop_takes_only_plain_subclasses() -> None:
    class Shadowed(Flow):
        __slots__ = ()

        @property
        def o_pkts(self) -> int:  # type: ignore[override]
            return 0

    class WithDict(Flow):
        pass

    class WithSlot(Flow):
        __slots__ = ("extra",)

    for flow_type, end_type in (
        (PyFlow, PyEndpoint),
        (PyFlow, Endpoint),
        (Flow, PyEndpoint),
        (Shadowed, Endpoint),
        (WithDict, Endpoint),
        (WithSlot, Endpoint),
        (Endpoint, Flow),
    ):
        with pytest.raises(TypeError):
            core.fast_loop(flow_type, end_type)
    core.fast_loop(Flow, Endpoint)


# -- the flow record's pieces in C (tests/flow/test_record.py compares whole records) --------


def _core() -> Any:
    """The compiled module (the autouse fixture has made sure it is loaded)."""
    return core._CORE


def test_sha1_is_hashlibs() -> None:
    """SHA-1 in C on every length over one, two and three blocks, and random data."""
    rng = random.Random(7)
    for n in range(300):
        data = rng.randbytes(n)
        assert _core().sha1(data) == hashlib.sha1(data).digest(), n
    for n in (55, 56, 63, 64, 119, 120, 128, 1000):
        data = bytes([0xFF]) * n
        assert _core().sha1(data) == hashlib.sha1(data).digest(), n


@settings(max_examples=examples(3000), deadline=None)
@given(
    st.sampled_from((4, 16)).flatmap(
        lambda n: st.tuples(
            st.binary(min_size=n, max_size=n),
            st.one_of(st.none(), st.binary(min_size=n, max_size=n)),
        )
    ),
    st.sampled_from((1, 58, 6, 17, 0, 47, 132, 255)),
    st.one_of(st.integers(0, 65535), st.sampled_from((0, 8, 9, 10, 13, 18, 128, 129, 133, 145))),
    st.one_of(st.integers(0, 65535), st.sampled_from((0, 8, 9, 128, 129))),
)
def test_community_id_is_the_reference(
    ends: tuple[bytes, bytes | None], proto: int, sport: int, dport: int
) -> None:
    """The C Community ID equals netwatch.flow.ids.community_id (itself checked against the
    communityid package): ICMP pairs and one-way types, equal addresses, both families."""
    saddr, other = ends
    daddr = saddr if other is None else other
    assert _core().community_id(saddr, daddr, proto, sport, dport) == community_id(
        saddr, daddr, proto, sport, dport
    )


def test_community_id_refuses_what_it_does_not_hash() -> None:
    for args in (
        (bytes(4), bytes(16), 6, 1, 2),
        (bytes(5), bytes(5), 6, 1, 2),
        (bytes(4), bytes(4), 256, 1, 2),
        (bytes(4), bytes(4), 6, 65536, 2),
        (bytes(4), bytes(4), 6, 1, -1),
    ):
        with pytest.raises(ValueError):
            _core().community_id(*args)
