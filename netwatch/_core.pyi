"""Types of the compiled core (netwatch/_core.c); see netwatch.core for the Python side."""

import mmap
from collections.abc import Callable
from typing import overload

from netwatch.decode.frames import Decoded

#: A payload FastLoop.run counted and hands over for the deep parsers' step only (status
#: DEEP), or a new flow it made (status STARTED): (flow, is_orig, payload offset, payload
#: length).
DeepPayload = tuple[object, bool, int, int]

#: A packet FastLoop.run hands back: (ts, wire length, frame, the decoder's tuple of it or
#: None for an odd frame, or a DeepPayload for status DEEP).
Handed = tuple[float, int, bytes, Decoded | DeepPayload | None]

RECORD_SIZE: int
MAX_CAPLEN: int
#: How many packets one check of a Flow's or Endpoint's cells covers in FastLoop.run (a
#: write from Python to a cell makes the next packet check them again).
FRESH_PACKETS: int

def walk_pcap(
    buffer: bytes | bytearray | mmap.mmap,
    start: int,
    end: int,
    little: bool,
    ethernet: bool,
    limit: int,
    /,
) -> tuple[bytearray, int, int, int]: ...

class FlowBase:
    """netwatch.flow.table.Flow's attributes in C (the subclass there is the type used)."""

    @overload
    def __init__(self, key: object, uid: object, ts: object, proto: object) -> None: ...
    @overload
    def __init__(
        self,
        key: object,
        uid: object,
        ts: object,
        proto: object,
        odir: object,
        orig_h: object,
        resp_h: object,
        orig_p: object,
        resp_p: object,
        frame: object,
        mac_off: int,
        vlan: object,
        budget: object,
        /,
    ) -> None: ...

class EndpointBase:
    """netwatch.flow.tcpstate.Endpoint's attributes in C (the subclass there is the type
    used)."""

    @overload
    def __init__(self, letters: object) -> None: ...
    @overload
    def __init__(self, letters: object, seq: object, /) -> None: ...

class FastLoop:
    """The fused loop's fast branch over Python's flow table (see netwatch.corefeed)."""

    def __init__(self, flow_type: type, endpoint_type: type) -> None: ...
    @property
    def fast(self) -> int: ...
    @property
    def key_hits(self) -> int: ...
    @property
    def flow_hits(self) -> int: ...
    @property
    def first_acks(self) -> int: ...
    @property
    def first_fins(self) -> int: ...
    @property
    def closes(self) -> int: ...
    @property
    def resets(self) -> int: ...
    @property
    def syn_acks(self) -> int: ...
    @property
    def first_datas(self) -> int: ...
    @property
    def deeps(self) -> int: ...
    @property
    def deep_tcp(self) -> int: ...
    @property
    def starts(self) -> int: ...
    def run(
        self,
        flows: dict[tuple[object, ...], object],
        buffer: bytes | bytearray | mmap.mmap,
        start: int,
        end: int,
        little: bool,
        tick: float,
        next_sweep: float,
        limit: int,
        closed: Callable[[object, float], float] | None = None,
        deep: bool = False,
        new_flows: tuple[object, ...] | None = None,
        /,
    ) -> tuple[int, int, int, int, int, Handed | None]: ...
    def reasons(self) -> tuple[int, ...]: ...
    def conds(self) -> tuple[int, ...]: ...

def flow_record(
    flow: object,
    tcp_summary: tuple[int, int, int, str, str] | None,
    service: object,
    local_orig: object,
    local_resp: object,
    resp_cc: object,
    resp_asn: object,
    resp_org: object,
    orig_cc: object,
    resp_name: object,
    orig_device: object,
    resp_device: object,
    vendor: object,
    server_name: object,
    http_host: object,
    user_agent: object,
    server: object,
    dns_query: object,
    /,
) -> dict[str, object] | None: ...
def record_types(flow_type: type, endpoint_type: type, /) -> None: ...
def community_id(saddr: bytes, daddr: bytes, proto: int, sport: int, dport: int, /) -> str: ...
def sha1(data: bytes, /) -> bytes: ...
def json_plain(record: object, /) -> int | None: ...
