"""Capture filters: compile ``capture.bpf`` with libpcap and attach it to a Linux socket.

:func:`compile_filter` turns a tcpdump-syntax expression into classic BPF instructions with
libpcap's own compiler (``pcap_open_dead`` + ``pcap_compile``), exactly as
``tcpdump -ddd -y EN10MB EXPR`` prints them; nothing is hand-assembled. :func:`attach_filter`
loads such a program into the kernel with ``SO_ATTACH_FILTER``, and :func:`lock_filter` sets
``SO_LOCK_FILTER`` so the program can no longer be replaced or removed on that socket.

Config read: none directly. The caller passes ``capture.bpf`` as the expression and
``capture.snaplen`` as ``snaplen`` (the "accept" instructions return it, so the kernel also
truncates accepted packets to that length). An empty (or blank) ``capture.bpf`` means "no
filter": :func:`compile_filter` returns ``()`` and :func:`attach_filter` does nothing.

libpcap is loaded with :func:`ctypes.util.find_library` (falling back to ``libpcap.so.0.8``
and ``libpcap.so.1``) on first use; without it every call raises :class:`BpfError`.

Security:

- the expression comes from the configuration file (trusted, written by the operator),
  never from packet data; it is length-checked (:data:`MAX_EXPRESSION_BYTES`) and a NUL
  byte is refused rather than silently cutting the string short;
- no subprocess and no shell are involved: libpcap is called in-process through ctypes;
- libpcap resolves names while compiling: ``host some.name`` does a DNS/hosts lookup,
  ``ether host name`` reads ``/etc/ethers``, port and protocol names read ``/etc/services``
  and ``/etc/protocols``. Use numeric addresses to keep startup free of network I/O;
- the kernel verifies every program it is given (and refuses more than
  :data:`BPF_MAXINSNS` instructions); :func:`lock_filter` stops a later compromise of the
  process from widening or dropping the filter on an open socket.

Known limits:

- the program is compiled for one link type, Ethernet (``DLT_EN10MB``, 1) by default, and
  runs on the frame as the socket sees it: an ``AF_PACKET``/``SOCK_RAW`` socket on an
  Ethernet interface. It is meaningless on sockets that see another framing;
- VLAN tags: on Linux the kernel removes the 802.1Q tag from received frames before packet
  sockets see them (into packet metadata; with hardware VLAN offload the driver never puts it
  in the frame at all, on some drivers even on a mirror port). A program compiled here tests
  the ``vlan`` keyword against the frame bytes (EtherType 0x8100 at offset 12), so ``vlan``
  does not match such frames, and ``vlan and tcp`` drops tagged TCP that ``tcp`` alone would
  keep. tcpdump on a live Linux interface emits Linux-specific "VLAN tag present" loads
  instead, which a ``pcap_open_dead`` handle cannot produce. Write filters without ``vlan``:
  the untagged expression matches the (stripped) tagged traffic too;
- ``ip broadcast``-style primitives that need the interface netmask are compiled with
  ``PCAP_NETMASK_UNKNOWN`` (only the all-ones broadcast address is recognised);
- compiles are serialised by a module lock (``pcap_compile`` was not thread-safe before
  libpcap 1.8).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import socket
import threading
from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = [
    "BPF_MAXINSNS",
    "MAX_EXPRESSION_BYTES",
    "SO_ATTACH_FILTER",
    "SO_LOCK_FILTER",
    "BpfError",
    "BpfInsn",
    "attach_filter",
    "compile_filter",
    "lock_filter",
]

SO_ATTACH_FILTER: Final = 26
"""Linux ``setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, struct sock_fprog)``."""
SO_LOCK_FILTER: Final = 44
"""Linux ``setsockopt(SOL_SOCKET, SO_LOCK_FILTER, int 1)``: the filter can no longer change."""
BPF_MAXINSNS: Final = 4096
"""Largest classic BPF program the Linux kernel accepts on a socket."""
MAX_EXPRESSION_BYTES: Final = 64 * 1024
"""Longest ``capture.bpf`` expression accepted (UTF-8 bytes); anything longer is a mistake."""
PCAP_NETMASK_UNKNOWN: Final = 0xFFFF_FFFF

_LIBPCAP_NAMES: tuple[str, ...] = ("libpcap.so.0.8", "libpcap.so.1")
_MISSING_LIBPCAP: Final = "libpcap is not installed (Debian: apt-get install libpcap0.8)"


class BpfError(Exception):
    """The capture filter cannot be compiled or attached (the daemon exits with status 2)."""


class BpfInsn(NamedTuple):
    """One classic BPF instruction (``struct bpf_insn`` / ``struct sock_filter``)."""

    code: int
    jt: int
    jf: int
    k: int


class _CInsn(ctypes.Structure):
    """``struct bpf_insn {u_short code; u_char jt; u_char jf; bpf_u_int32 k;}``."""

    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


class _CProgram(ctypes.Structure):
    """``struct bpf_program {u_int bf_len; struct bpf_insn *bf_insns;}``."""

    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_CInsn)))


class _CSockFprog(ctypes.Structure):
    """``struct sock_fprog {unsigned short len; struct sock_filter *filter;}``."""

    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_CInsn)))


# pcap_compile was not reentrant before libpcap 1.8; one compile at a time is cheap enough.
_COMPILE_LOCK: Final = threading.Lock()


def _open_libpcap() -> ctypes.CDLL:
    """Load libpcap and declare the signatures of the functions used here."""
    names: list[str] = []
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    names.extend(name for name in _LIBPCAP_NAMES if name not in names)
    lib: ctypes.CDLL | None = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        break
    if lib is None:
        raise BpfError(_MISSING_LIBPCAP)

    prog_p = ctypes.POINTER(_CProgram)
    # pcap_t *pcap_open_dead(int linktype, int snaplen);
    lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    # int pcap_compile(pcap_t *, struct bpf_program *, const char *, int, bpf_u_int32);
    lib.pcap_compile.argtypes = (
        ctypes.c_void_p,
        prog_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    )
    lib.pcap_compile.restype = ctypes.c_int
    # char *pcap_geterr(pcap_t *);
    lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
    lib.pcap_geterr.restype = ctypes.c_char_p
    # void pcap_freecode(struct bpf_program *);
    lib.pcap_freecode.argtypes = (prog_p,)
    lib.pcap_freecode.restype = None
    # void pcap_close(pcap_t *);
    lib.pcap_close.argtypes = (ctypes.c_void_p,)
    lib.pcap_close.restype = None
    return lib


@functools.cache
def _libpcap() -> ctypes.CDLL:
    """libpcap, loaded once (a failure is not cached: the next call tries again)."""
    return _open_libpcap()


def compile_filter(
    expr: str, linktype: int = 1, snaplen: int = 262_144, optimize: bool = True
) -> tuple[BpfInsn, ...]:
    """Compile a tcpdump-syntax filter ``expr`` for ``linktype`` (1: Ethernet) with libpcap.

    Returns the instructions ``tcpdump -ddd -y <linktype> expr`` would print (tcpdump's own
    default ``snaplen`` is 262144), or ``()`` for an empty or blank expression (no filter).
    ``expr`` is the operator's ``capture.bpf`` (see the module docstring's security notes).

    Raises :class:`BpfError` ("capture.bpf: <libpcap's message>") for an expression libpcap
    rejects, one longer than :data:`MAX_EXPRESSION_BYTES` or holding a NUL byte, and when
    libpcap is not installed.
    """
    if not expr.strip():
        return ()
    try:
        raw = expr.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BpfError(f"capture.bpf: not valid text ({exc.reason})") from None
    if len(raw) > MAX_EXPRESSION_BYTES:
        raise BpfError(
            f"capture.bpf: expression is {len(raw)} bytes long (at most {MAX_EXPRESSION_BYTES})"
        )
    if b"\x00" in raw:
        raise BpfError("capture.bpf: expression contains a NUL character")
    if not 0 < snaplen <= 0x7FFF_FFFF:
        raise BpfError(f"capture.bpf: invalid snaplen {snaplen}")

    lib = _libpcap()
    with _COMPILE_LOCK:
        handle = lib.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise BpfError(f"capture.bpf: libpcap cannot open a handle for link type {linktype}")
        try:
            prog = _CProgram()
            if lib.pcap_compile(
                handle, ctypes.byref(prog), raw, int(optimize), PCAP_NETMASK_UNKNOWN
            ):
                message = lib.pcap_geterr(handle) or b"unknown libpcap error"
                raise BpfError(f"capture.bpf: {message.decode('utf-8', 'replace')}")
            try:
                count = int(prog.bf_len)
                insns = prog.bf_insns
                return tuple(
                    BpfInsn(int(i.code), int(i.jt), int(i.jf), int(i.k))
                    for i in (insns[n] for n in range(count))
                )
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)


def _c_program(program: Sequence[BpfInsn]) -> ctypes.Array[_CInsn]:
    """``program`` as a C ``struct sock_filter`` array, every field range-checked."""
    if len(program) > BPF_MAXINSNS:
        raise BpfError(
            f"capture.bpf: the filter compiles to {len(program)} instructions; "
            f"the kernel accepts at most {BPF_MAXINSNS}"
        )
    array = (_CInsn * len(program))()
    for n, (code, jt, jf, k) in enumerate(program):
        if not (
            0 <= code <= 0xFFFF and 0 <= jt <= 0xFF and 0 <= jf <= 0xFF and 0 <= k <= 0xFFFF_FFFF
        ):
            raise BpfError(f"capture.bpf: instruction {n} is out of range: {(code, jt, jf, k)}")
        array[n] = _CInsn(code, jt, jf, k)
    return array


def attach_filter(sock: socket.socket, program: Sequence[BpfInsn]) -> None:
    """Attach ``program`` (from :func:`compile_filter`) to ``sock`` with ``SO_ATTACH_FILTER``.

    An empty program attaches nothing. A socket that already has a filter gets the new one in
    its place, unless :func:`lock_filter` was called (then ``OSError``/``PermissionError``).

    Packets queued on the socket before the filter is attached were not filtered: create the
    packet socket with protocol 0 (it receives nothing), attach, then ``bind`` it to the
    interface with ``ETH_P_ALL``; or drain the socket after attaching.

    Raises :class:`BpfError` for a program the kernel would refuse for its size or with
    fields out of range, and ``OSError`` when the kernel refuses it otherwise.
    """
    if not program:
        return
    array = _c_program(program)
    fprog = _CSockFprog(len(program), ctypes.cast(array, ctypes.POINTER(_CInsn)))
    # bytes(fprog) holds the address of `array`; the local keeps it alive during the call.
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    del array


def lock_filter(sock: socket.socket) -> None:
    """Set ``SO_LOCK_FILTER`` on ``sock``: its filter can no longer be replaced or detached.

    The lock lasts as long as the socket and cannot be undone. Call it right after
    :func:`attach_filter`, before dropping privileges and handling packet data, so a later
    compromise of the process cannot widen (or remove) the capture filter on that socket.
    Locking a socket without a filter freezes it unfiltered.
    """
    sock.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)
