"""CS2 Network "PPPP" P2P recognition: which message, who sent it, the device ID and addresses.

PPPP (CS2 Network P2P, also Yunni iLnkP2P and their forks) carries the cloud login, the
hole punching and the video of millions of cheap cameras (Xiaomi/Chuangmi, Yi, many OEMs).
Every datagram starts with a 4-byte header: magic ``0xF1``, the message type, and the
length of the body, big-endian (so ``len(datagram) == 4 + length``). The message types and
bodies used here (sources: pmarrapese/iot ``p2p/dissector/pppp.fdesc`` @ 09ff8fc9fbb0, the
DEF CON 28 talk's dissector; magicus/pppp-dissector ``pppp_dissect.lua`` and ``PPPP.md``;
re-ws.pl "PPPP API: what I know", 2018; confirmed on the corpus capture
camera-real/``shf_xiaomi-cam_nofw_wan_snaplen150.pcapng``):

* ``0x00`` HELLO to a P2P server on UDP 32100; ``0x01`` HELLO_ACK carries the sender's
  public (WAN) address as the server saw it (``sockaddr``: family ``00 02``, then the port
  and the IPv4 address, both byte-reversed).
* ``0x10``/``0x12``/``0x14`` device login (plain / CRC-"encrypted" / keyed) and their acks
  ``0x11``/``0x13``/``0x15``; the plain and keyed logins start with the device ID.
* ``0x20`` P2P_REQ (a client asks the server for a device, with its ID), ``0x40`` PUNCH_TO
  (the server tells a peer which address to punch to), ``0x41`` PUNCH_PKT and ``0x42``
  P2P_RDY between the peers (both carry the device ID), ``0x7x``/``0x8x`` relay messages.
* ``0x30`` LAN_SEARCH, broadcast by an app to UDP 32108.
* ``0xD0`` DRW (the data: commands and video; body ``D1``, channel, index), ``0xD1``
  DRW_ACK, ``0xE0``/``0xE1`` ALIVE, ``0xF0`` CLOSE: these run between the peers on
  ephemeral ports, so recognition cannot rely on the ports.

The device ID is an 8-byte NUL-padded prefix, a 4-byte big-endian serial and an 8-byte
NUL-padded check code, shown as ``PREFIX-000123-CHECK``.

:class:`PpppParser` is the registered deep parser: it claims UDP 32100 (servers) and 32108
(LAN search), where it reads the first ``deep.max_payload_packets`` payloads of each
direction, and it looks at the first payload of each direction of other UDP flows
(``udp_other``; one byte comparison for non-PPPP payloads). What it finds lands on the
flow: ``flow.app["p2p"]`` = :data:`PLATFORM` (the platform name, for any rule),
``flow.app["pppp"]`` = a :class:`PpppFlow` (messages per direction, device ID, addresses),
and the Zeek service name ``pppp``. A device that logs in, or announces its device ID in a
punch or P2P_RDY, is reported to the context as a PPPP device (``ctx.camera``).

Reads no configuration. Never raises. Known limits: the "encrypted" PPPP variants (first
byte ``0x2C``/``0x9F``/``0xB1``... after a vendor key's XOR) are not recognised; a datagram
cut by a snaplen is accepted when at least :data:`MIN_CUT_BYTES` bytes were kept and its
body still checks out (DRW magic, device ID); other UDP protocols whose payload starts with
``0xF1``, a known type and a matching length would be read as PPPP (rare: three checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from netwatch.deep.base import Context, DeepParser, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

PLATFORM = "CS2 Network PPPP"
SERVICE = "pppp"
MAGIC = 0xF1
HEADER = 4
SERVER_PORT = 32100
LAN_SEARCH_PORT = 32108
#: A datagram shorter than its header says is accepted only when a snaplen kept this much.
MIN_CUT_BYTES = 64
#: Distinct message names kept per direction of a flow (bounded state).
MAX_NAMES = 12
_DRW_MAGIC = 0xD1
_UID_BYTES = 20
_SOCKADDR_BYTES = 16
_AF_INET = b"\x00\x02"


class Kind(Enum):
    """What a message is for; the rules read these."""

    REGISTER = "register"  # with a P2P server: hello, device login, queries, reports
    LAN = "lan"  # LAN search and notify
    TRAVERSAL = "traversal"  # hole punching between the peers
    RELAY = "relay"  # through a relay server
    SESSION = "session"  # data, acks, keep-alive, close between the peers


@dataclass(frozen=True, slots=True)
class MessageType:
    """One PPPP message type: its name, purpose and whether its body starts with a device ID."""

    name: str
    kind: Kind
    uid: bool = False
    sockaddr: bool = False  # the body starts with an IPv4 sockaddr


_R, _L, _T, _Y, _S = Kind.REGISTER, Kind.LAN, Kind.TRAVERSAL, Kind.RELAY, Kind.SESSION
MESSAGES: dict[int, MessageType] = {
    0x00: MessageType("HELLO", _R),
    0x01: MessageType("HELLO_ACK", _R, sockaddr=True),
    0x02: MessageType("HELLO_TO", _T, sockaddr=True),
    0x03: MessageType("HELLO_TO_ACK", _T),
    0x08: MessageType("QUERY_DID", _R),
    0x09: MessageType("QUERY_DID_ACK", _R),
    0x10: MessageType("DEV_LGN", _R, uid=True),
    0x11: MessageType("DEV_LGN_ACK", _R),
    0x12: MessageType("DEV_LGN_CRC", _R),
    0x13: MessageType("DEV_LGN_ACK_CRC", _R),
    0x14: MessageType("DEV_LGN_KEY", _R, uid=True),
    0x15: MessageType("DEV_LGN_ACK_KEY", _R),
    0x16: MessageType("DEV_LGN_DSK", _R),
    0x18: MessageType("DEV_ONLINE_REQ", _R, uid=True),
    0x19: MessageType("DEV_ONLINE_REQ_ACK", _R),
    0x20: MessageType("P2P_REQ", _R, uid=True),
    0x21: MessageType("P2P_REQ_ACK", _R),
    0x26: MessageType("P2P_REQ_DSK", _R),
    0x30: MessageType("LAN_SEARCH", _L),
    0x31: MessageType("LAN_NOTIFY", _L, uid=True),
    0x32: MessageType("LAN_NOTIFY_ACK", _L, uid=True),
    0x40: MessageType("PUNCH_TO", _T, sockaddr=True),
    0x41: MessageType("PUNCH_PKT", _T, uid=True),
    0x42: MessageType("P2P_RDY", _T, uid=True),
    0x43: MessageType("P2P_RDY_ACK", _T),
    0x60: MessageType("RS_LGN", _Y, uid=True),
    0x61: MessageType("RS_LGN_ACK", _Y),
    0x62: MessageType("RS_LGN1", _Y, uid=True),
    0x63: MessageType("RS_LGN1_ACK", _Y),
    0x67: MessageType("LIST_REQ1", _R, uid=True),
    0x68: MessageType("LIST_REQ", _R),
    0x69: MessageType("LIST_REQ_ACK", _R),
    0x6A: MessageType("LIST_REQ_DSK", _R),
    0x70: MessageType("RLY_HELLO", _Y),
    0x71: MessageType("RLY_HELLO_ACK", _Y),
    0x72: MessageType("RLY_PORT", _Y),
    0x73: MessageType("RLY_PORT_ACK", _Y),
    0x74: MessageType("RLY_PORT_KEY", _Y, uid=True),
    0x75: MessageType("RLY_PORT_ACK_KEY", _Y),
    0x78: MessageType("RLY_BYTE_COUNT", _Y),
    0x80: MessageType("RLY_REQ", _Y, uid=True),
    0x81: MessageType("RLY_REQ_ACK", _Y),
    0x82: MessageType("RLY_TO", _Y, sockaddr=True),
    0x83: MessageType("RLY_PKT", _Y),
    0x84: MessageType("RLY_RDY", _Y, uid=True),
    0x85: MessageType("RLY_TO_ACK", _Y),
    0x87: MessageType("RLY_SERVER_REQ", _Y),
    0x90: MessageType("SDEV_RUN", _R),
    0x91: MessageType("SDEV_LGN", _R),
    0x92: MessageType("SDEV_LGN_CRC", _R),
    0x93: MessageType("SDEV_LGN_KEY", _R),
    0x94: MessageType("SDEV_REPORT", _R),
    0xA0: MessageType("CONNECT_REPORT", _R),
    0xA1: MessageType("REPORT_REQ", _R),
    0xA2: MessageType("REPORT", _R),
    0xD0: MessageType("DRW", _S),
    0xD1: MessageType("DRW_ACK", _S),
    0xD8: MessageType("PSR", _S),
    0xE0: MessageType("ALIVE", _S),
    0xE1: MessageType("ALIVE_ACK", _S),
    0xF0: MessageType("CLOSE", _S),
    0xF4: MessageType("MGM_DUMP_LOGIN_DID", _R),
    0xF5: MessageType("MGM_DUMP_LOGIN_DID_DETAIL", _R),
    0xF6: MessageType("MGM_DUMP_LOGIN_DID_1", _R),
    0xF7: MessageType("MGM_LOG_CONTROL", _R),
    0xF8: MessageType("MGM_REMOTE_MANAGEMENT", _R),
    0xF9: MessageType("REPORT_SESSION_READY", _S),
}
#: Messages whose body starts with the DRW magic byte 0xD1.
_DRW_BODY = frozenset({0xD0, 0xD1, 0xD8})
#: Messages a device sends about itself (the sender is the PPPP device).
DEVICE_MESSAGES = frozenset({"DEV_LGN", "DEV_LGN_CRC", "DEV_LGN_KEY", "DEV_LGN_DSK", "P2P_RDY"})


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed PPPP datagram."""

    code: int
    type: MessageType
    device_id: str | None = None
    address: str | None = None  # "ip:port" of a sockaddr body (HELLO_ACK, PUNCH_TO, ...)

    @property
    def name(self) -> str:
        return self.type.name


@dataclass(slots=True)
class P2pMessages:
    """The message names and kinds each end of a P2P flow sent (bounded): what the CS2 PPPP
    and the Kalay flow records share. A subclass names its platform, the key of
    ``flow.app`` it lives under and the Zeek-style service it adds."""

    PLATFORM: ClassVar[str] = ""
    APP_KEY: ClassVar[str] = ""
    SERVICE: ClassVar[str] = ""

    sent_o: list[str] = field(default_factory=list)  # message names the originator sent
    sent_r: list[str] = field(default_factory=list)  # ... and the responder
    kinds_o: set[Kind] = field(default_factory=set)
    kinds_r: set[Kind] = field(default_factory=set)

    def saw(self, name: str, kind: Kind | None, is_orig: bool) -> None:
        """One message of this name (and kind, when known) from one end."""
        names, kinds = (self.sent_o, self.kinds_o) if is_orig else (self.sent_r, self.kinds_r)
        if name not in names and len(names) < MAX_NAMES:
            names.append(name)
        if kind is not None:
            kinds.add(kind)

    def sent(self, by_orig: bool) -> tuple[list[str], set[Kind]]:
        """The names and kinds of the messages one end sent."""
        return (self.sent_o, self.kinds_o) if by_orig else (self.sent_r, self.kinds_r)

    @property
    def kinds(self) -> set[Kind]:
        return self.kinds_o | self.kinds_r

    def messages(self) -> list[str]:
        """Every message name seen, originator's first."""
        return self.sent_o + [n for n in self.sent_r if n not in self.sent_o]

    @classmethod
    def of(cls, app: Mapping[str, Any] | None) -> Self | None:
        """This platform's summary in a flow's deep-parser results, if it was seen."""
        found = app.get(cls.APP_KEY) if app else None
        return found if isinstance(found, cls) else None

    @classmethod
    def on(cls, flow: Flow) -> Self:
        """This platform's summary of ``flow``, created (with the flow's ``p2p`` platform and
        service) at its first message."""
        if flow.app is None:
            flow.app = {}
        info = cls.of(flow.app)
        if info is None:
            info = cls()
            flow.app[cls.APP_KEY] = info
            flow.app.setdefault("p2p", cls.PLATFORM)
            service(flow, cls.SERVICE)
        return info


@dataclass(slots=True)
class PpppFlow(P2pMessages):
    """What one flow showed of PPPP (``flow.app["pppp"]``); bounded."""

    PLATFORM: ClassVar[str] = PLATFORM
    APP_KEY: ClassVar[str] = "pppp"
    SERVICE: ClassVar[str] = SERVICE

    device_id: str | None = None
    public_addr: str | None = None  # from HELLO_ACK: the receiver's WAN address
    punch_to: str | None = None  # from PUNCH_TO: the address the receiver is told to punch

    def note(self, msg: Message, is_orig: bool) -> None:
        self.saw(msg.name, msg.type.kind, is_orig)
        if msg.device_id is not None and self.device_id is None:
            self.device_id = msg.device_id
        if msg.address is not None:
            if msg.code == 0x01 and self.public_addr is None:
                self.public_addr = msg.address
            elif msg.code == 0x40 and self.punch_to is None:
                self.punch_to = msg.address

    def evidence(self) -> dict[str, object]:
        """The evidence fields of an alert about this flow."""
        return {
            "platform": PLATFORM,
            "pppp_messages": self.messages(),
            "device_id": self.device_id,
            "public_addr": self.public_addr,
            "punch_to": self.punch_to,
        }


def parse_pppp(data: bytes) -> Message | None:
    """The PPPP message of one UDP payload, or None when it is not PPPP; never raises."""
    if len(data) < HEADER or data[0] != MAGIC:
        return None
    mtype = MESSAGES.get(data[1])
    if mtype is None:
        return None
    want = HEADER + int.from_bytes(data[2:4], "big")
    if len(data) > want or (len(data) < want and len(data) < MIN_CUT_BYTES):
        return None  # trailing bytes, or too short for its length and not a snaplen cut
    body = data[HEADER:want]
    code = data[1]
    if code in _DRW_BODY and (len(body) < HEADER or body[0] != _DRW_MAGIC):
        return None
    device_id = None
    if mtype.uid:
        device_id = device_id_of(body)
        if device_id is None:
            return None
    address = sockaddr_of(body) if mtype.sockaddr else None
    if mtype.sockaddr and address is None and want - HEADER >= _SOCKADDR_BYTES:
        return None  # a sockaddr body that is not one
    return Message(code, mtype, device_id, address)


def device_id_of(body: bytes) -> str | None:
    """``PREFIX-000123-CHECK`` from the first 20 bytes of a body, or None if implausible."""
    if len(body) < _UID_BYTES:
        return None
    prefix = _nul_padded_upper(body[0:8])
    check = _nul_padded_upper(body[12:20])
    if prefix is None or check is None:
        return None
    serial = int.from_bytes(body[8:12], "big")
    return f"{prefix}-{serial:06d}-{check}"


def _nul_padded_upper(field_: bytes) -> str | None:
    """An uppercase ASCII word (letters, then letters or digits) padded with NULs, or None."""
    text = field_.rstrip(b"\x00")
    if not text or b"\x00" in text or not (0x41 <= text[0] <= 0x5A):
        return None
    if not all(0x41 <= c <= 0x5A or 0x30 <= c <= 0x39 for c in text):
        return None
    return text.decode("ascii")


def sockaddr_of(body: bytes) -> str | None:
    """``ip:port`` of a PPPP IPv4 sockaddr (family 00 02, byte-reversed port and address)."""
    if len(body) < _SOCKADDR_BYTES or body[0:2] != _AF_INET:
        return None
    port = int.from_bytes(body[2:4], "little")
    ip = ".".join(str(b) for b in reversed(body[4:8]))
    return f"{ip}:{port}"


def pppp_of(app: Mapping[str, Any] | None) -> PpppFlow | None:
    """The PPPP summary in a flow's deep-parser results (``flow.app``), if PPPP was seen."""
    return PpppFlow.of(app)


class PpppParser(DeepParser):
    """CS2 PPPP on UDP 32100/32108, and on any other UDP flow (first payload per direction)."""

    udp_ports = frozenset({SERVER_PORT, LAN_SEARCH_PORT})
    udp_other = True

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        if not data or data[0] != MAGIC:
            return
        msg = parse_pppp(data)
        if msg is None:
            ctx.count("pppp_unparsed")
            return
        ctx.count("pppp")
        PpppFlow.on(flow).note(msg, is_orig)
        if msg.name in DEVICE_MESSAGES:
            ctx.camera(flow.orig_h if is_orig else flow.resp_h, None, f"pppp:{msg.name}", None)
