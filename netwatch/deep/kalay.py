"""ThroughTek Kalay (TUTK "IOTC") P2P recognition on the wire: which message, the device UID.

Kalay is the P2P platform of ThroughTek's IOTC SDK (Wyze, many baby monitors, pet and
doorbell cameras, Bambu printers, ...; CVE-2021-28372 concerns it). Every IOTC datagram is
obfuscated with the SDK's ``TransCodePartial``: the datagram is cut into 16-byte blocks,
each block read as four little-endian 32-bit words ``w0..w3`` and turned into

1. ``y[i] = rotr(w[i], 1 + 4*i) XOR K[i]`` with ``K`` the first 16 bytes of the string
   ``"Charlie is the designer of P2P!!"`` as four little-endian words,
2. the 16 bytes of ``y`` shuffled by the fixed permutation :data:`SHUFFLE`
   (``out[j] = y[SHUFFLE[j]]``; it is its own inverse),
3. each shuffled word rotated right by ``3 + 4*i``.

:func:`descramble` undoes it block by block (rotate left, shuffle, XOR, rotate left). The
sources disagree on the last ``len % 16`` bytes (plain XOR with the key, or XOR plus a
shuffle for tails of 2, 4 or 8 bytes) and some data datagrams are obfuscated only in their
first 64 bytes; netwatch reads only the first three full blocks, which every source
transforms the same way.

Descrambled, a datagram starts with a 16-byte header: magic ``04 02``, the IOTC version
byte (``0x12``, ``0x19``, ``0x1a``, ``0x1c``, ``0x1d`` seen), a flags byte, the body length
(little-endian, ``len(datagram) - 16``), a datagram counter, and the message type
(little-endian 16 bits at offset 8, followed by a role byte). Messages that name a device
carry its 20-character UID at offset 16. The types used here, each with its purpose:

* ``0x0601`` LAN_SEARCH (an app's search, broadcast to UDP 32761) and ``0x0602``
  LAN_SEARCH_R (the device's answer, with its UID): LAN.
* ``0x1007`` QUERY (an SDK peer's join / query to a master server, UDP 10240) and its
  reply ``0x1008`` (the rendezvous servers), ``0x0203`` announce to a rendezvous server,
  ``0x0209``/``0x020A``/``0x0211``/``0x0214`` rendezvous pre-checks: REGISTER.
* ``0x0401`` P2P request (punch to a candidate address), ``0x0402`` KNOCK and ``0x0404``
  its reply between the two peers, ``0x0301`` the server's punch-to (candidate
  addresses), ``0x0804`` candidate registration for a coordinated punch, ``0x8003``
  reflexive-address probe: TRAVERSAL.
* ``0x0303`` relay assignment, ``0x0503``/``0x0504`` relayed data, ``0x0523``/``0x0524``
  relay ping and pong: RELAY.
* ``0x0407``/``0x0408`` session data, ``0x0427``/``0x0428`` keep-alive between the peers:
  SESSION.

Any other type keeps its hex code as its name; on the master servers' port (UDP 10240)
such a message counts as a master exchange (REGISTER) because only Kalay servers answer
there (the device's own login message type is not in the public record). Sources, facts
and confidences: ``seeds/cloud_endpoints.yaml`` (``tutk-kalay-*`` entries and its header:
AlexxIT/go2rtc ``pkg/tutk``, the clean-room IOTC clients cited there, Mandiant's
FEYE-2021-0020). nDPI has no TUTK dissector.

:class:`KalayParser` is the registered deep parser: it claims UDP 32761 (LAN search) and
10240 (master servers) and looks at the first payload of each direction of other UDP flows
(``udp_other``). A payload shorter than a header costs one length check, any other a
mask test of 16 wire bits (:data:`MAGIC_MASK`, derived from the transform: each clear bit
of the magic is one wire bit) before a single block is descrambled. What it finds lands on
the flow: ``flow.app["p2p"]`` = :data:`PLATFORM`, ``flow.app["kalay"]`` = a
:class:`KalayFlow` (messages per direction, UID, IOTC version), and the Zeek service name
``kalay``. A host that answers a LAN search is reported to the context as a Kalay device
(``ctx.camera``): Kalay devices are mostly cameras, but printers and other appliances use
it too.

Reads no configuration. Never raises. Known limits: the header check (magic and a length
field that matches the datagram) is the whole recognition, about one chance in 2^32 for a
random payload; a datagram cut by a snaplen is accepted when at least
:data:`MIN_CUT_BYTES` bytes were kept; Kalay over TCP (the SDK's TCP relay fallback) and
DTLS payloads are not read; the role byte's meaning is undocumented and not used.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from netwatch.deep.base import Context, DeepParser
from netwatch.deep.pppp import Kind, P2pMessages, PpppFlow, pppp_of

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

PLATFORM = "ThroughTek Kalay"
SERVICE = "kalay"
MAGIC = b"\x04\x02"
BLOCK = 16
HEADER = BLOCK
LAN_SEARCH_PORT = 32761
MASTER_PORT = 10240
#: A datagram shorter than its header says is accepted only when a snaplen kept this much.
MIN_CUT_BYTES = 64
UID_AT = 16
UID_LEN = 20
#: ``TransCodePartial``'s key: the first 16 bytes of "Charlie is the designer of P2P!!".
KEY: Final = b"Charlie is the d"
#: The byte shuffle of one 16-byte block (``out[j] = in[SHUFFLE[j]]``; an involution).
SHUFFLE: Final = (11, 9, 8, 15, 13, 10, 12, 14, 2, 1, 5, 0, 6, 4, 7, 3)
#: Rotation of word ``i``: around the XOR with the key, and around the shuffle.
ROT_INNER: Final = (1, 5, 9, 13)
ROT_OUTER: Final = (3, 7, 11, 15)
_WORDS = struct.Struct("<4I")
_KEY_WORDS: Final = _WORDS.unpack(KEY)
_MASK32 = 0xFFFFFFFF
_UID_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK32


def descramble_block(block: bytes) -> bytes:
    """The clear text of one 16-byte block of ``TransCodePartial`` (``ReverseTransCodePartial``)."""
    words = _WORDS.unpack(block)
    mixed = _WORDS.pack(*(_rotl(w, r) for w, r in zip(words, ROT_OUTER, strict=True)))
    shuffled = _WORDS.unpack(bytes(mixed[i] for i in SHUFFLE))
    return _WORDS.pack(
        *(_rotl(w ^ k, r) for w, k, r in zip(shuffled, _KEY_WORDS, ROT_INNER, strict=True))
    )


def _magic_filter() -> tuple[int, int]:
    """``(mask, value)`` over wire bytes 8..15 (one little-endian int) that hold exactly when
    the first block descrambles to the magic ``04 02``.

    The clear bytes 0..7 depend only on the wire words 2 and 3, and every step is a bit
    rotation, a byte shuffle or an XOR with the key: each clear bit of the magic is one wire
    bit, flipped or not. Derived from :func:`descramble_block` itself, by the tests (the
    module holds the answer as :data:`MAGIC_MASK` and :data:`MAGIC_VALUE`).
    """

    def magic_of(wire: int) -> int:
        clear = descramble_block(bytes(8) + wire.to_bytes(8, "little"))
        return clear[0] | clear[1] << 8

    base = magic_of(0)
    flip = base ^ (MAGIC[0] | MAGIC[1] << 8)
    mask = value = 0
    for bit in range(64):
        moved = magic_of(1 << bit) ^ base
        if moved:
            mask |= 1 << bit
            if flip & moved:
                value |= 1 << bit
    return mask, value


def descramble(data: bytes, blocks: int) -> bytes:
    """The clear text of the first ``blocks`` full 16-byte blocks of ``data`` (fewer if short)."""
    whole = min(blocks, len(data) // BLOCK)
    return b"".join(descramble_block(data[i * BLOCK : (i + 1) * BLOCK]) for i in range(whole))


#: The cheap test on wire bytes 8..15 a payload passes before anything is descrambled:
#: ``_magic_filter()``'s answer, written out so that a start does not derive it (65 block
#: descrambles); tests/deep/test_kalay.py derives it again and compares.
MAGIC_MASK: Final = 0x10000E01FE00F
MAGIC_VALUE: Final = 0x2008200D


@dataclass(frozen=True, slots=True)
class MessageType:
    """One IOTC message type: its name, its purpose, whether it carries a device UID."""

    name: str
    kind: Kind
    uid: bool = False


_R, _L, _T, _Y, _S = Kind.REGISTER, Kind.LAN, Kind.TRAVERSAL, Kind.RELAY, Kind.SESSION
MESSAGES: dict[int, MessageType] = {
    0x0601: MessageType("LAN_SEARCH", _L, uid=True),
    0x0602: MessageType("LAN_SEARCH_R", _L, uid=True),
    0x1007: MessageType("QUERY", _R, uid=True),
    0x1008: MessageType("QUERY_R", _R),
    0x0203: MessageType("RDV_ANNOUNCE", _R, uid=True),
    0x0209: MessageType("RDV_PUNCH_FOLLOWUP", _R, uid=True),
    0x020A: MessageType("RDV_TOKEN", _R, uid=True),
    0x0211: MessageType("P2P_PRECHECK1", _R, uid=True),
    0x0214: MessageType("P2P_PRECHECK2", _R, uid=True),
    0x0301: MessageType("PUNCH_TO", _T),
    0x0401: MessageType("P2P_REQUEST", _T, uid=True),
    0x0402: MessageType("KNOCK", _T, uid=True),
    0x0404: MessageType("KNOCK_R", _T, uid=True),
    0x0804: MessageType("CANDIDATE_REGISTER", _T, uid=True),
    0x8003: MessageType("REFLEXIVE_PROBE", _T),
    0x0303: MessageType("RELAY_ASSIGN", _Y),
    0x0503: MessageType("RELAY_DATA_R", _Y),
    0x0504: MessageType("RELAY_DATA", _Y),
    0x0523: MessageType("RELAY_PING", _Y),
    0x0524: MessageType("RELAY_PONG", _Y),
    0x0407: MessageType("SESSION_DATA", _S),
    0x0408: MessageType("SESSION_DATA_R", _S),
    0x0427: MessageType("ALIVE", _S),
    0x0428: MessageType("ALIVE_R", _S),
}
#: Messages only a device sends about itself (the sender is the Kalay device).
DEVICE_MESSAGES = frozenset({"LAN_SEARCH_R"})


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed IOTC datagram (from its descrambled header and UID)."""

    code: int
    type: MessageType | None  # None: a type the public record does not document
    version: int
    uid: str | None = None

    @property
    def name(self) -> str:
        return self.type.name if self.type is not None else f"0x{self.code:04X}"


@dataclass(slots=True)
class KalayFlow(P2pMessages):
    """What one flow showed of Kalay (``flow.app["kalay"]``); bounded."""

    PLATFORM: ClassVar[str] = PLATFORM
    APP_KEY: ClassVar[str] = "kalay"
    SERVICE: ClassVar[str] = SERVICE

    uid: str | None = None
    version: int | None = None  # the IOTC version byte of the first message

    def note(self, msg: Message, is_orig: bool, kind: Kind | None) -> None:
        self.saw(msg.name, kind, is_orig)
        if msg.uid is not None and self.uid is None:
            self.uid = msg.uid
        if self.version is None:
            self.version = msg.version

    def evidence(self) -> dict[str, object]:
        """The evidence fields of an alert about this flow."""
        return {
            "platform": PLATFORM,
            "kalay_messages": self.messages(),
            "device_id": self.uid,
            "iotc_version": self.version,
        }


def parse_kalay(data: bytes) -> Message | None:
    """The IOTC message of one UDP payload, or None when it is not Kalay; never raises."""
    size = len(data)
    if size < HEADER:
        return None
    if int.from_bytes(data[8:HEADER], "little") & MAGIC_MASK != MAGIC_VALUE:
        return None  # 16 wire bits that must hold the magic: no descrambling
    head = descramble_block(data[:HEADER])
    if head[0:2] != MAGIC:
        return None
    want = HEADER + (head[4] | head[5] << 8)
    if size > want or (size < want and size < MIN_CUT_BYTES):
        return None  # trailing bytes, or too short for its length and not a snaplen cut
    code = head[8] | head[9] << 8
    mtype = MESSAGES.get(code)
    uid = None
    if mtype is not None and mtype.uid:
        body = descramble(data[HEADER : HEADER + 2 * BLOCK], 2)
        uid = uid_of(body[UID_AT - HEADER : UID_AT - HEADER + UID_LEN])
    return Message(code, mtype, head[2], uid)


def uid_of(field_: bytes) -> str | None:
    """A Kalay UID: exactly 20 uppercase letters or digits (the SDK's format), or None."""
    if len(field_) != UID_LEN or not _UID_BYTES.issuperset(field_):
        return None
    return field_.decode("ascii")


def kalay_of(app: Mapping[str, Any] | None) -> KalayFlow | None:
    """The Kalay summary in a flow's deep-parser results (``flow.app``), if Kalay was seen."""
    return KalayFlow.of(app)


P2pFlow = PpppFlow | KalayFlow


def p2p_of(app: Mapping[str, Any] | None) -> P2pFlow | None:
    """The P2P platform summary of a flow: CS2 PPPP or ThroughTek Kalay, if either was seen."""
    return pppp_of(app) or kalay_of(app)


def platform_of(flow: P2pFlow) -> str:
    """The platform name of a P2P summary (for alert titles)."""
    return flow.PLATFORM


class KalayParser(DeepParser):
    """Kalay on UDP 32761 and 10240, and on any other UDP flow (first payload per direction)."""

    udp_ports = frozenset({LAN_SEARCH_PORT, MASTER_PORT})
    udp_other = True

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        if len(data) < HEADER:
            return
        msg = parse_kalay(data)
        if msg is None:
            return
        ctx.count("kalay")
        info = KalayFlow.on(flow)
        kind = msg.type.kind if msg.type is not None else None
        if kind is None and MASTER_PORT in (flow.resp_p, flow.orig_p):
            kind = Kind.REGISTER  # only Kalay master servers answer on their port
        info.note(msg, is_orig, kind)
        if msg.name in DEVICE_MESSAGES:
            ctx.camera(flow.orig_h if is_orig else flow.resp_h, None, f"kalay:{msg.name}", None)
