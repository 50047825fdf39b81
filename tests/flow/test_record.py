"""Tests for the flow record: the per-end facts (each worked out once and handed to the
rules), and the compiled builder (``_core.flow_record``) against the reference builder."""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netwatch.pipeline
from netwatch.alerts.model import Alert
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import GEO_NONE, GeoInfo, GeoSourceInfo
from netwatch.flow import record as record_mod
from netwatch.flow.ids import UidSource
from netwatch.flow.record import Enrichers, FlowEnds, flow_record_ends, transport_summary
from netwatch.flow.table import Flow, PyFlow
from netwatch.flow.tcpstate import ORIG_LETTERS, RESP_LETTERS, Endpoint, PyEndpoint
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as pg
from tests.profile import examples
from tests.test_fastloop import real_captures, site_capture, zeek_traces

__all__ = ["site_capture"]  # the fixture this module uses

REPO = Path(__file__).resolve().parent.parent.parent

CAMERA_MAC = pg.host_mac(pg.HIKVISION_OUIS[0], 1)
HOST_MAC = "02:4e:57:00:00:01"
ROUTER_MAC = "02:00:5e:00:00:01"
CAMERA, HOST, OTHER_HOST = "10.20.1.1", "10.30.0.5", "10.30.0.6"
OUTSIDE, FAR_CAMERA = "89.160.20.112", "89.160.20.113"
ANSWER = GeoInfo("SE", 64500, "Example AB")


class CountingGeo:
    """A GeoIP backend with one answer for every address, noting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def lookup(self, ip_text: str) -> GeoInfo:
        self.asked.append(ip_text)
        return ANSWER

    def describe(self) -> GeoSourceInfo:
        return GeoSourceInfo("counting", "none", None, "")


def frames() -> list[tuple[float, int, int, bytes]]:
    """Three UDP flows: camera -> outside, site host -> site host, outside -> site host."""
    routes = [
        pg.Route.of(CAMERA_MAC, CAMERA, ROUTER_MAC, OUTSIDE),
        pg.Route.of(HOST_MAC, HOST, ROUTER_MAC, OTHER_HOST),
        pg.Route.of(ROUTER_MAC, FAR_CAMERA, HOST_MAC, HOST),
    ]
    out = []
    for i, route in enumerate(routes):
        frame = pg.udp_frame(route, 40_000 + i, 9_000, b"x")
        out.append((1_767_261_600.0 + i, 1, len(frame), frame))
    return out


def replay(
    yaml: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Pipeline, CountingGeo, list[tuple[dict[str, Any], FlowEnds]]]:
    """The flows through a pipeline with detection on; every record with its ends."""
    seen: list[tuple[dict[str, Any], FlowEnds]] = []

    def kept(f: Flow, enr: Enrichers) -> tuple[dict[str, Any], FlowEnds]:
        record, ends = flow_record_ends(f, enr)
        seen.append((record, ends))
        return record, ends

    monkeypatch.setattr(netwatch.pipeline, "flow_record_ends", kept)
    geo = CountingGeo()
    alerts: list[tuple[Alert, int]] = []
    cfg = Config.from_yaml(yaml, file="test.yaml")
    pipe = Pipeline(cfg, lambda r: None, on_alert=lambda a, n: alerts.append((a, n)), geo=geo)
    pipe.run(frames())
    pipe.finish()
    return pipe, geo, seen


def test_each_end_is_worked_out_once_and_handed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, geo, seen = replay("{}", monkeypatch)
    by_orig = {record["id.orig_h"]: (record, ends) for record, ends in seen}
    assert set(by_orig) == {CAMERA, HOST, FAR_CAMERA}
    # GeoIP is asked for the public ends only, once each (site-local ends: never public)
    assert sorted(geo.asked) == [OUTSIDE, FAR_CAMERA]
    assert pipe.enrichers.geo.lookups == 2
    record, ends = by_orig[CAMERA]
    assert type(ends) is FlowEnds  # a FlowEnds (made without its __new__), fields named
    assert ends.orig_camera is not None and ends.orig_camera.name == record["orig_device"]
    assert ends.resp_camera is None
    assert (
        (ends.orig_local, ends.resp_local)
        == (True, False)
        == (
            record["local_orig"],
            record["local_resp"],
        )
    )
    assert (ends.orig_geo, ends.resp_geo) == (GEO_NONE, ANSWER)
    assert record["resp_cc"] == "SE" and record["resp_asn"] == 64500
    record, ends = by_orig[HOST]
    assert ends == FlowEnds(None, None, True, True, GEO_NONE, GEO_NONE)
    record, ends = by_orig[FAR_CAMERA]
    assert (ends.orig_geo, ends.resp_geo) == (ANSWER, GEO_NONE)
    assert record["orig_cc"] == "SE"
    assert record["orig_device"] is None and record["resp_device"] is None


def test_the_inventory_is_asked_only_when_it_lists_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe, _geo, _seen = replay("{}", monkeypatch)
    assert pipe.enrichers.listed is None  # zero-config: no inventory lookup per flow end
    listed = "cameras: [{name: far-cam, ip: " + FAR_CAMERA + ", group: default}]\n"
    pipe, _geo, seen = replay(listed, monkeypatch)
    assert pipe.enrichers.listed is not None
    by_orig = {record["id.orig_h"]: record for record, _ends in seen}
    # outside the site, so not a recognised camera end, but the inventory still names it
    assert by_orig[FAR_CAMERA]["orig_device"] == "far-cam"
    assert by_orig[CAMERA]["resp_device"] is None


def test_udp_fields_are_transport_summarys(monkeypatch: pytest.MonkeyPatch) -> None:
    # the record's UDP case is transport_summary's, inlined: one-way, answered, and flipped
    # (the first datagram from the service port: Zeek's ``^``) flows, both orders of reply
    out = pg.Route.of(HOST_MAC, HOST, ROUTER_MAC, OUTSIDE)
    back = out.reverse()
    datagrams = [
        (out, 40_000, 9_000),  # one-way
        (out, 40_001, 9_001),  # answered
        (back, 9_001, 40_001),
        (back, 53, 40_002),  # flipped, one-way
        (back, 53, 40_003),  # flipped, answered
        (out, 40_003, 53),
        (back, 9_004, 40_004),  # one-way, from the outside
    ]
    frames_ = []
    for i, (route, sport, dport) in enumerate(datagrams):
        frame = pg.udp_frame(route, sport, dport, b"xy")
        frames_.append((1_767_261_600.0 + i, 1, len(frame), frame))
    checked: list[tuple[Any, ...]] = []

    def kept(f: Flow, enr: Enrichers) -> tuple[dict[str, Any], FlowEnds]:
        record, ends = flow_record_ends(f, enr)
        fields = ("orig_bytes", "resp_bytes", "missed_bytes", "conn_state", "history")
        got = tuple(record[k] for k in fields)
        assert got == transport_summary(f)
        checked.append(got[3:])
        return record, ends

    monkeypatch.setattr(netwatch.pipeline, "flow_record_ends", kept)
    pipe = Pipeline(Config.from_yaml("{}", file="test.yaml"), lambda r: None, geo=CountingGeo())
    pipe.run(frames_)
    pipe.finish()
    assert sorted(checked) == sorted(
        [("S0", "D"), ("SF", "Dd"), ("SHR", "^d"), ("SF", "^dD"), ("S0", "D")]
    )


# -- the compiled builder (netwatch._core.flow_record) against the reference -----------------

BUILD = record_mod._build
needs_core = pytest.mark.skipif(BUILD is None, reason="the compiled core is not loaded")


def exact(record: dict[str, Any]) -> list[tuple[str, type, str]]:
    """A record as its keys in order, each value's type and repr (-0.0, int vs float, bool
    vs int told apart)."""
    return [(k, type(v), repr(v)) for k, v in record.items()]


@pytest.fixture
def both_builders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """While in use, every record is built by the compiled builder and by the reference,
    which must agree exactly; counts [built in C, given back to the reference]."""
    counts = [0, 0]
    assert BUILD is not None

    def both(f: Flow, *args: Any) -> dict[str, Any] | None:
        want = record_mod.reference_record(f, *args)
        got = BUILD(f, *args)
        if got is None:
            counts[1] += 1
            return None
        assert exact(got) == exact(want)
        counts[0] += 1
        return got

    monkeypatch.setattr(record_mod, "_build", both)
    return counts


def replay_capture(path: Path) -> list[dict[str, Any]]:
    """Every record of a capture through a pipeline with detection on and a GeoIP answer for
    every public address (the compiled core's loop when it is loaded)."""
    recs: list[dict[str, Any]] = []
    pipe = Pipeline(Config.default(), recs.append, geo=CountingGeo(), uids=UidSource(3))
    pipe.run_capture(open_capture(path))
    pipe.finish()
    return recs


@needs_core
def test_compiled_records_on_pcaps_and_site_traffic(
    site_capture: Path, both_builders: list[int]
) -> None:
    paths = [site_capture, *sorted(p for p in (REPO / "pcaps").rglob("*.pcap") if p.is_file())]
    for path in paths:
        replay_capture(path)
    assert both_builders[0] > 300
    assert both_builders[1] == 0  # every flow of the table's making is built in C


@needs_core
def test_compiled_records_on_every_real_capture(
    pcap_corpus: Path, both_builders: list[int]
) -> None:
    for path in real_captures(pcap_corpus):
        replay_capture(path)
    assert both_builders[0] > 1000
    assert both_builders[1] == 0


@needs_core
def test_compiled_records_on_every_zeek_trace(both_builders: list[int]) -> None:
    for path in zeek_traces():
        replay_capture(path)
    assert both_builders[0] > 200
    assert both_builders[1] == 0


def test_the_reference_builds_the_pure_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the compiled builder (NETWATCH_PURE=1 has none) flow_record_ends gives the
    same records through reference_record."""
    ours = [exact({**r, "uid": ""}) for r, _ in replay("{}", monkeypatch)[2]]  # random uids
    monkeypatch.setattr(record_mod, "_build", None)
    assert [exact({**r, "uid": ""}) for r, _ in replay("{}", monkeypatch)[2]] == ours


FIELDS = ("resp_cc", "resp_asn", "resp_org", "orig_cc", "resp_name", "orig_device")
texts = st.one_of(st.none(), st.text(max_size=8))
enrichment = st.tuples(
    texts,  # service
    st.booleans(),
    st.booleans(),
    texts,
    st.one_of(st.none(), st.integers(0, 2**32)),
    *([texts] * 11),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.one_of(
    finite,
    st.sampled_from((0.0, -0.0, 1e-7, 5e-7, 1.0000005, 1_767_261_600.0000005, 2.5e-6)),
    st.integers(1_700_000_000_000_000, 1_800_000_000_000_000).map(lambda us: us / 1e6),
    # as the capture readers compute a packet's time: seconds + fraction * tick
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999)).map(lambda t: t[0] + t[1] * 1e-6),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 10**9 - 1)).map(
        lambda t: t[0] + t[1] * 1e-9
    ),
)
counters = st.one_of(
    st.integers(0, 2**16),
    st.sampled_from((2**31, 2**63 - 1, 2**63, 2**64, 2**70, True, False)),
    finite,
)
addresses = st.one_of(
    st.tuples(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4)),
    st.tuples(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16)),
    st.binary(min_size=4, max_size=4).map(lambda a: (a, a)),  # equal ends: ports decide
    st.binary(min_size=16, max_size=16).map(lambda a: (a, a)),
)
ports = st.one_of(st.integers(0, 65535), st.sampled_from((0, 8, 9, 13, 128, 129, 145, 65535)))
macs = st.one_of(st.none(), st.just(b""), st.binary(min_size=6, max_size=6), st.binary(max_size=9))


@st.composite
def flows(draw: st.DrawFn) -> tuple[Flow, tuple[Any, ...]]:
    """A C Flow with odd but table-shaped values, and the builder's other arguments."""
    proto = draw(st.sampled_from((1, 6, 17, 58, 0, 2, 47, 132, 255)))
    first = draw(times)
    f = Flow((), draw(st.text(max_size=4)), first, proto)
    f.orig_h, f.resp_h = draw(addresses)
    f.orig_p, f.resp_p = draw(ports), draw(ports)
    f.orig_mac, f.resp_mac = draw(macs), draw(macs)
    f.vlan = draw(st.one_of(st.integers(-1, 4095), st.sampled_from((-(2**70), 2**70, -5))))
    f.stop = draw(st.one_of(st.just(-1.0), times))
    f.last = draw(times)
    for name in ("o_pkts", "r_pkts", "o_ipb", "r_ipb", "o_bytes", "r_bytes"):
        setattr(f, name, draw(counters))  # ints, big ints, bools, floats
    setattr(f, "hist", draw(st.sampled_from((None, [], ["^"], "", "^"))))  # noqa: B010
    summary = None
    if proto == 6 and draw(st.booleans()):
        f.tcp = (draw(endpoints(ORIG_LETTERS)), draw(endpoints(RESP_LETTERS)))
        f.hist = draw(st.lists(st.sampled_from(f"^{ORIG_LETTERS}{RESP_LETTERS}"), max_size=8))
    return f, (summary, *draw(enrichment))


seq = st.one_of(st.integers(-1, 3), st.sampled_from((2**32 - 1, 2**32, 2**40, 2**60)))


@st.composite
def endpoints(draw: st.DrawFn, letters: str) -> Endpoint:
    """A TCP endpoint in any state, its sequence fields near their edges."""
    e = Endpoint(letters)
    e.state, e.prev = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    e.base, e.acked, e.fin, e.seqmax = draw(seq), draw(seq), draw(seq), draw(seq)
    e.missed = draw(st.integers(0, 2**40))
    return e


@needs_core
@settings(max_examples=examples(2000), deadline=None)
@given(flows())
def test_compiled_record_equals_the_reference_on_odd_values(
    case: tuple[Flow, tuple[Any, ...]],
) -> None:
    assert BUILD is not None
    f, args = case
    got = BUILD(f, *args)
    assert got is not None
    assert exact(got) == exact(record_mod.reference_record(f, *args))


def _fresh() -> Flow:
    f = Flow((), "Cx", 1.5, 17)
    f.orig_h, f.resp_h, f.orig_p, f.resp_p = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 1, 2
    f.o_pkts = 1
    return f


ENRICH: tuple[Any, ...] = (None, True, False, *([None] * 13))


@needs_core
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("first", 1),  # an int time
        ("stop", 2),
        ("last", 3),
        ("proto", "17"),
        ("proto", 256),
        ("proto", True),
        ("orig_p", 65536),
        ("resp_p", -1),
        ("orig_p", 1.0),
        ("orig_h", b"\x0a\x00\x00"),  # neither 4 nor 16 bytes
        ("resp_h", bytes(16)),  # two families
        ("orig_h", bytearray(4)),
        ("orig_mac", bytearray(6)),
        ("vlan", 1.0),
        ("vlan", True),
        ("hist", ("^",)),
        ("o_pkts", None),
        ("r_bytes", "1"),
    ],
)
def test_what_the_compiled_builder_gives_back(name: str, value: object) -> None:
    """Anything but the flow table's shape: None, and flow_record_ends takes the reference,
    which answers (or raises) as it always did."""
    assert BUILD is not None
    f = _fresh()
    assert BUILD(f, None, *ENRICH) is not None
    setattr(f, name, value)
    assert BUILD(f, None, *ENRICH) is None
    f = _fresh()
    delattr(f, name)
    assert BUILD(f, None, *ENRICH) is None


@needs_core
def test_the_compiled_builder_takes_flows_only() -> None:
    assert BUILD is not None
    assert BUILD(PyFlow((), "Cx", 1.5, 17), None, *ENRICH) is None  # the reference class
    assert BUILD(object(), None, *ENRICH) is None
    with pytest.raises(TypeError):
        BUILD(_fresh(), None)
    f = _fresh()
    f.proto = 6
    f.tcp = (Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS))
    summary = (1, 2, 3, "SF", "ShAD")  # a summary given is taken as it is
    assert BUILD(f, summary, *ENRICH) == record_mod.reference_record(f, summary, *ENRICH)
    assert BUILD(f, None, *ENRICH) is not None
    setattr(f, "hist", ["S", 1])  # noqa: B010 (not the table's history)
    assert BUILD(f, None, *ENRICH) is None
    setattr(f, "hist", "S")  # noqa: B010
    assert BUILD(f, None, *ENRICH) is None
    f.hist = None
    for name, value in [("state", 2**70), ("base", "0"), ("seqmax", 2**62), ("fin", None)]:
        f.tcp = (Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS))
        setattr(f.tcp[1], name, value)
        assert BUILD(f, None, *ENRICH) is None, name
    setattr(f, "tcp", (object(), object()))  # noqa: B010 (not the table's Endpoints)
    assert BUILD(f, None, *ENRICH) is None
    f.tcp = (PyEndpoint(ORIG_LETTERS), PyEndpoint(RESP_LETTERS))
    assert BUILD(f, None, *ENRICH) is None


@needs_core
def test_compiled_time_rounding_is_pythons() -> None:
    """The record's ts (round(first, 6): C's shortcut for a time already at six decimals,
    else float.__round__) on packet times, random floats and the shortcut's edges."""
    assert BUILD is not None
    rng = random.Random(11)
    values = [0.0, -0.0, 0.0078125, 5e-7, -5e-7, 1.5e-6, 2.5e-6, 1e-6, -1e-6, 2.0**33, -(2.0**33)]
    values += [2.0**33 - 2.0**-20, 2.0**32 + 5e-7, 8589934591.999999, 1e300, -1e-300, 5e-324]
    for _ in range(20_000):
        sec = rng.randrange(2**32)
        values += [sec + rng.randrange(10**6) * 1e-6, sec + rng.randrange(10**9) * 1e-9]
        values += [rng.uniform(-1e10, 1e10), rng.uniform(-2, 2), rng.randrange(10**8) / 1e7]
    f = _fresh()
    for x in values:
        f.first = x
        record = BUILD(f, None, *ENRICH)
        assert record is not None
        assert repr(record["ts"]) == repr(round(x, 6)), x


@needs_core
def test_compiled_tcp_summary_on_every_state_pair() -> None:
    """Every pair of endpoint states and previous states, with sequence fields at the edges
    Endpoint.size and conn_state look at (a half-open reset, a FIN octet) and histories for
    the RSTOS0 pattern: the compiled summary equals transport_summary."""
    assert BUILD is not None
    histories = [[], list("S"), list("SR"), list("^SR"), list("SdR"), list("SQR"), list("SIR")]
    histories += [list("SHR"), list("SAR"), list("SFR"), list("SGR"), list("R"), list("ShR")]
    fields = [(-1, -1, -1, -1), (5, 5, -1, 5), (5, 6, -1, 5), (5, 7, 6, 5), (5, 5, 9, 9)]
    f = _fresh()
    f.proto = 6
    n = 0
    for os_, rs, o_prev, r_prev in itertools.product(range(7), range(7), (0, 1), (0, 1)):
        for base, acked, fin, seqmax in fields:
            ends = (Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS))
            for e, state, prev in zip(ends, (os_, rs), (o_prev, r_prev), strict=True):
                e.state, e.prev, e.base, e.acked, e.fin, e.seqmax = (
                    state,
                    prev,
                    base,
                    acked,
                    fin,
                    seqmax,
                )
            f.tcp = ends
            for hist in histories if os_ == 6 else histories[:2]:
                f.hist = hist
                got = BUILD(f, None, *ENRICH)
                assert got is not None
                assert exact(got) == exact(record_mod.reference_record(f, None, *ENRICH))
                n += 1
    assert n > 3000


@needs_core
def test_compiled_address_texts_are_inet_ntops() -> None:
    """Every byte value in every position of an IPv4 address, and IPv6 shapes (zero runs,
    IPv4-mapped), give socket.inet_ntop's text."""
    assert BUILD is not None
    f = _fresh()
    pairs = [
        (bytes([b, 255 - b, b // 3, (b * 7) % 256]), bytes([(b * 5) % 256, b, 0, 9]))
        for b in range(256)
    ]
    six = [bytes(16), bytes(15) + b"\x01", b"\xfe\x80" + bytes(13) + b"\x01"]
    six += [
        bytes(10) + b"\xff\xff\x0a\x00\x00\x01",
        b"\x20\x01\x0d\xb8" + bytes(4) + b"\x00\x01" * 4,
    ]
    pairs += [(a, b) for a in six for b in six]
    for orig_h, resp_h in pairs:
        f.orig_h, f.resp_h = orig_h, resp_h
        record = BUILD(f, None, *ENRICH)
        assert record is not None
        family = socket.AF_INET if len(orig_h) == 4 else socket.AF_INET6
        assert record["id.orig_h"] == socket.inet_ntop(family, orig_h)
        assert record["id.resp_h"] == socket.inet_ntop(family, resp_h)
