"""Live capture through tshark (via pyshark): the slow path for what AF_PACKET cannot open.

:class:`TsharkSource` captures with ``tshark`` and hands the daemon batches of packets, the
same ``(ts, linktype, wirelen, frame)`` tuples as :class:`~netwatch.capture.source.FileSource`.
It exists for interfaces the native AF_PACKET source cannot open: remote capture
(``rpcap://host/eth0``), extcap interfaces (``sshdump``, ``ciscodump``, ``udpdump``, ...) and
any other name ``tshark -D`` lists. It is **the slow path**: tshark dissects every packet
and writes it as JSON, pyshark parses that JSON in Python, and netwatch only keeps the raw
frame. Use it only where AF_PACKET is not possible.

How it runs:

- a background thread owns an asyncio loop and one tshark process, started as
  ``tshark -l -n -T json --no-duplicate-keys -x -s SNAPLEN [-f BPF] -i IF1 [-i IF2 ...]``
  through a :class:`pyshark.LiveCapture` subclass. pyshark 0.6's own live capture runs
  ``dumpcap -i IF -w - | tshark -i -``; dumpcap does not know extcap interfaces (``dumpcap
  -D`` does not list them, only ``tshark -D`` does), so netwatch lets tshark capture
  itself. The capture filter and the snap length come before the first ``-i`` and so
  apply to every interface;
- the thread puts packets into a bounded queue (``queue_size``, 65,536 by default). A full
  queue drops the packet and counts it in :attr:`TsharkSource.dropped_queue`;
- :meth:`TsharkSource.batches` yields up to ``max_batch`` packets, waits at most
  ``max_wait_s`` for the first one and yields ``[]`` when nothing came, so the daemon keeps
  its housekeeping. When ``stop`` is set (or the generator is closed) it stops tshark.

What pyshark 0.6 gives with ``use_json=True, include_raw=True`` (tshark 4.0, checked):

- the frame: the ``frame_raw`` layer's value is the captured bytes as hex
  (``pkt.frame_raw.value``). :meth:`pyshark.packet.packet.Packet.get_raw_packet` returns the
  same bytes, but builds them one byte at a time; netwatch calls ``bytes.fromhex`` on the
  value, which gives identical bytes faster;
- the timestamp: ``pkt.sniff_timestamp``, tshark's ``frame.time_epoch`` as a decimal string
  (nanosecond digits; a ``float`` keeps about a quarter of a microsecond);
- the wire length: ``pkt.length``, tshark's ``frame.len`` (the on-wire length;
  ``frame.cap_len`` is the captured length, shorter when the snap length cut the frame);
- the link type: ``frame.encap_type`` in ``pkt.frame_info`` is Wireshark's *WTAP_ENCAP*
  number, not the LINKTYPE value: they agree for Ethernet (1) only. :data:`WTAP_TO_LINKTYPE`
  maps the encapsulations the decoder handles (numbers checked with tshark 4.0 on one-frame
  pcap files of each link type); any other becomes :data:`UNKNOWN_LINKTYPE`, which the
  decoder counts as unsupported;
- the interface: ``frame.interface_id`` (the position of the ``-i`` option, so the
  configured name) and ``frame.interface_id_tree`` / ``frame.interface_name``. Counts are
  kept per configured interface name.

Counts (:meth:`TsharkSource.counts`), per configured interface: ``received`` is what tshark
delivered and netwatch queued; ``dropped_kernel`` is what was "dropped before netwatch saw
it": packets lost to a full queue, plus the drops tshark reports per interface when it
exits (tshark reports kernel drops only then, not while it runs); ``dropped_interface`` stays 0;
``errors`` counts tshark failures (failed starts, captures that ended on their own) and
``up`` is true while tshark captures.

Errors: when tshark cannot start (unknown interface, no permission, invalid capture
filter) or exits on its own, :meth:`TsharkSource.start` or :meth:`TsharkSource.batches`
raises :class:`TsharkError` with tshark's own message (its last stderr lines). The daemon logs
it and retries with backoff. ``start`` waits for tshark's "Capture started." message (its
dumpcap has opened the interfaces; tshark prints "Capturing on ..." before that), so a caller
knows the capture is running (the tests send their traffic only then).

Security: the interface names and the BPF filter come from the config file. pyshark and
this module start tshark with :func:`asyncio.create_subprocess_exec` (an argument vector,
never a shell: pyshark 0.6 has no ``shell=True`` anywhere), the names and the filter are
each one argument after ``-i`` / ``-f`` (getopt takes the next argument as the value even
when it starts with ``-``), and packet data only ever flows from tshark's stdout into Python.
tshark runs in its own session; stopping sends SIGTERM (tshark stops its dumpcap and extcap
children and deletes its temporary file), then SIGKILL to the whole process group after
:data:`TERM_GRACE_S`. tshark keeps a temporary pcapng of the capture; it is written into a
private directory that is removed after every stop, so nothing stays behind in ``/tmp``.

Config read: ``capture.method: tshark``, ``capture.interfaces``, ``capture.bpf``,
``capture.snaplen`` (read by :meth:`TsharkSource.from_config`; the class registers itself
as the ``tshark`` capture source, and this module, which imports pyshark, is imported only
when the config asks for it).

Measured rate (bench/bench_tshark.py, tshark 4.0 JSON + pyshark 0.6, one core, the 5,221-packet
demo capture, tshark start-up included): about 1,500 packets/s extracted, about 1,300
packets/s with the netwatch pipeline (which alone runs 7,000-10,000 packets/s on that small
file); two to three orders of magnitude below AF_PACKET.

Known limits: slow (JSON dissection by tshark plus JSON parsing in Python; bursts beyond
the rate above fill the queue and are counted as drops); timestamps are only as precise as
a float of epoch seconds (sub-microsecond); tshark's temporary file grows for as long as a
capture runs (it is deleted at each stop); tshark needs 1-2 s to start; if the daemon itself
is killed with SIGKILL, tshark exits on its next write to the closed pipe. pyshark's
``Capture`` internals (``_get_tshark_process``, ``_go_through_packets_from_fd``) are used
and are tied to pyshark 0.6.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Self

from pyshark import LiveCapture
from pyshark.tshark.output_parser.tshark_json import TsharkJsonParser
from pyshark.tshark.tshark import tshark_supports_duplicate_keys

from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import Record as Packet
from netwatch.capture.source import CaptureCounts, Source

if TYPE_CHECKING:
    from netwatch.config import Config

Batch = list[Packet]

UNKNOWN_LINKTYPE: Final = 0xFFFF
"""Link type yielded for a tshark encapsulation :data:`WTAP_TO_LINKTYPE` does not know."""

WTAP_TO_LINKTYPE: Final[dict[int, int]] = {
    1: LinkType.ETHERNET,
    7: LinkType.RAW,
    15: LinkType.NULL,
    25: LinkType.LINUX_SLL,
    129: LinkType.IPV4,
    130: LinkType.IPV6,
    174: LinkType.LOOP,
    210: LinkType.LINUX_SLL2,
}
"""tshark's ``frame.encap_type`` (WTAP_ENCAP_*) -> LINKTYPE value, for the decoder's types."""

TERM_GRACE_S: Final = 3.0
"""How long tshark gets to exit after SIGTERM before its process group is killed."""

DEFAULT_QUEUE_SIZE: Final = 65_536

_STDERR_KEEP = 20
_NO_STARTED_GRACE_S = 2.0
_DROPPED_RE = re.compile(r"(\d+) packets? dropped from (.+)")
# tshark's noise on stderr, not worth showing in an error message
_NOISE = ("Running as user", "Capture started", "File:", "** (tshark", "packets captured")


class TsharkError(Exception):
    """tshark could not start, or stopped on its own; ``str()`` carries tshark's message."""


class _Parser(TsharkJsonParser):  # type: ignore[misc]  # pyshark has no type hints
    """pyshark's JSON parser, but a packet is complete at its own closing brace.

    pyshark 0.6 waits for the ``,`` that tshark writes only when the *next* packet starts,
    so the last packet of a burst would wait for more traffic. tshark indents each packet
    object by two spaces and everything inside it deeper, and JSON strings hold no raw
    newline, so ``"\\n  }"`` is exactly the end of a packet.
    """

    def _extract_packet_from_data(
        self, data: bytes, got_first_packet: bool = True
    ) -> tuple[bytes | None, bytes]:
        start = data.find(b"{")
        if start == -1:
            return None, data
        end = data.find(b"\n  }", start)
        if end == -1:
            return None, data
        return data[start : end + 4], data[end + 4 :]


class _Capture(LiveCapture):  # type: ignore[misc]  # pyshark has no type hints
    """pyshark's live capture, but tshark captures itself (no dumpcap pipe: extcap works),
    in its own session and with its own temporary directory, and stderr is kept."""

    def __init__(self, source: TsharkSource, tmpdir: str, eventloop: Any) -> None:
        params = ["-s", str(source.snaplen)]
        if source.bpf:
            params += ["-f", source.bpf]
        for name in source.interfaces:
            params += ["-i", name]
        super().__init__(
            interface=list(source.interfaces),
            bpf_filter=source.bpf or None,
            use_json=True,
            include_raw=True,
            custom_parameters=params,
            tshark_path=source.tshark_path,
            eventloop=eventloop,
        )
        self._source = source
        self._tmpdir = tmpdir
        self.process: asyncio.subprocess.Process | None = None

    async def _get_tshark_process(self, packet_count: Any = None, stdin: Any = None) -> Any:
        self._verify_capture_parameters()
        parameters = [self._get_tshark_path(), "-l", "-n", "-T", "json"]
        if tshark_supports_duplicate_keys(self._get_tshark_version()):
            parameters.append("--no-duplicate-keys")  # what pyshark's JSON parser expects
        # Capture.get_parameters, not LiveCapture's (which adds "-i -" for the dumpcap pipe):
        # "-x", then our "-s" / "-f" / "-i" options
        parameters += super(LiveCapture, self).get_parameters()
        env = dict(os.environ, TMPDIR=self._tmpdir)
        process = await asyncio.create_subprocess_exec(
            *parameters,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.process = process
        self._create_stderr_handling_task(process.stderr)
        self._running_processes.add(process)
        return process

    def _setup_tshark_output_parser(self) -> _Parser:
        return _Parser(self._get_tshark_version())

    async def _handle_process_stderr_forever(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            self._source._stderr_line(line.decode(errors="replace").strip())

    async def _cleanup_subprocess(self, process: Any) -> None:
        """SIGTERM, then SIGKILL to the process group; never raises for tshark's exit code."""
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), TERM_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        # a dumpcap/extcap child that outlived tshark
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


class TsharkSource(Source):
    """Live capture through tshark, as batches for the daemon (see the module docstring)."""

    def __init__(
        self,
        interfaces: Sequence[str],
        *,
        bpf: str = "",
        snaplen: int = 65535,
        max_batch: int = 1024,
        max_wait_s: float = 0.25,
        tshark_path: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        start_timeout_s: float = 15.0,
    ) -> None:
        names = tuple(interfaces)
        if not names:
            raise ValueError("at least one interface is needed")
        for name in names:
            if not name or "\0" in name:
                raise ValueError(f"invalid interface name {name!r}")
        if "\0" in bpf:
            raise ValueError("invalid capture filter")
        if snaplen <= 0 or max_batch <= 0 or max_wait_s <= 0 or queue_size <= 0:
            raise ValueError("snaplen, max_batch, max_wait_s and queue_size must be positive")
        self.interfaces = names
        self.bpf = bpf
        self.snaplen = snaplen
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.tshark_path = tshark_path
        self.start_timeout_s = start_timeout_s
        self._queue: queue.Queue[Packet] = queue.Queue(maxsize=queue_size)
        self.packets = 0
        """Packets delivered so far, all interfaces (the daemon's ``Source.packets``)."""
        self.errors = 0
        """tshark failures so far: failed starts and captures that ended on their own."""
        self.received = dict.fromkeys(names, 0)
        self.dropped_queue = dict.fromkeys(names, 0)
        """Packets lost to a full queue, per interface ("dropped before netwatch saw it")."""
        self.dropped_tshark = dict.fromkeys(names, 0)
        """Drops tshark reported per interface when it exited."""
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_KEEP)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capture: _Capture | None = None
        self._tmpdir: str | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._stopping = threading.Event()
        self._error: str | None = None
        self._capturing_on: float | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Self:
        """``capture.method: tshark`` on ``capture.interfaces``; tshark starts with the batches."""
        c = cfg.capture
        return cls(c.interfaces, bpf=c.bpf, snaplen=c.snaplen)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the capture thread (and so tshark) runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def tshark_pid(self) -> int | None:
        """The process id of the running tshark, if any."""
        cap = self._capture
        proc = cap.process if cap is not None else None
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        """Start tshark and wait until it reports a running capture.

        Raises :class:`TsharkError` (with tshark's message) when it fails to start or
        says nothing within ``start_timeout_s``. Does nothing if already running.
        """
        if self._thread is not None:
            if self._finished.is_set():
                self._raise_finished()
            return
        self._stderr.clear()
        self._ready.clear()
        self._finished.clear()
        self._stopping.clear()
        self._error = None
        self._capturing_on = None
        self._tmpdir = tempfile.mkdtemp(prefix="netwatch-tshark-")
        self._thread = threading.Thread(target=self._run, name="netwatch-tshark", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready.is_set() and not self._finished.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self.errors += 1
                self.close()
                raise TsharkError(
                    f"tshark on {self._label()}: no capture running after "
                    f"{self.start_timeout_s:g} s{self._stderr_tail()}"
                )
            self._ready.wait(min(left, 0.05))
            seen = self._capturing_on
            if seen is not None and time.monotonic() - seen > _NO_STARTED_GRACE_S:
                self._ready.set()  # a tshark that does not print "Capture started"
        if not self._ready.is_set():
            self._raise_finished()

    def close(self) -> None:
        """Stop tshark (SIGTERM, then SIGKILL) and the capture thread; idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._terminate)
        thread.join(TERM_GRACE_S + 5.0)
        self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def batches(self, stop: threading.Event) -> Iterator[Batch]:
        """Batches of at most ``max_batch`` packets (``[]`` after ``max_wait_s`` of quiet)
        until ``stop`` is set; raises :class:`TsharkError` if tshark fails or exits."""
        self.start()
        try:
            while not stop.is_set():
                try:
                    first = self._queue.get(timeout=self.max_wait_s)
                except queue.Empty:
                    if self._finished.is_set() and self._queue.empty():
                        self._raise_finished()
                    yield []
                    continue
                batch = [first]
                get = self._queue.get_nowait
                with contextlib.suppress(queue.Empty):
                    while len(batch) < self.max_batch:
                        batch.append(get())
                self.packets += len(batch)
                yield batch
        finally:
            self.close()

    def counts(self) -> dict[str, CaptureCounts]:
        """Packets delivered and dropped, per configured interface (see the module docstring)."""
        return {
            name: CaptureCounts(
                received=self.received[name],
                dropped_kernel=self.dropped_queue[name] + self.dropped_tshark[name],
                errors=self.errors,
                up=self._ready.is_set() and self.running,
            )
            for name in self.interfaces
        }

    # -- the capture thread ----------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(loop))
        except Exception as exc:  # reported to the caller as a TsharkError
            self._error = " ".join(str(exc).split()) or type(exc).__name__
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None
            self._finished.set()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._tmpdir is not None
        cap = _Capture(self, self._tmpdir, loop)
        self._capture = cap
        try:
            process = await cap._get_tshark_process()
            if self._stopping.is_set():
                self._terminate()
            await cap._go_through_packets_from_fd(process.stdout, self._on_packet)
        finally:
            await cap.close_async()

    def _terminate(self) -> None:
        """In the loop: ask tshark to stop (its stdout then ends, and the thread with it)."""
        cap = self._capture
        proc = cap.process if cap is not None else None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()

    def _on_packet(self, pkt: Any) -> None:
        fields: dict[str, Any] = pkt.frame_info._all_fields
        name = self._interface_of(fields)
        try:
            ts = float(pkt.sniff_timestamp)
        except ValueError:  # tshark's rare negative fraction: keep the seconds
            ts = float(str(pkt.sniff_timestamp).split(".")[0])
        try:
            encap = int(fields.get("frame.encap_type", -1))
        except ValueError:
            encap = -1
        record = (
            ts,
            WTAP_TO_LINKTYPE.get(encap, UNKNOWN_LINKTYPE),
            int(pkt.length),
            bytes.fromhex(pkt.frame_raw.value),
        )
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped_queue[name] += 1
        else:
            self.received[name] += 1

    def _interface_of(self, fields: dict[str, Any]) -> str:
        """The configured name of the interface a frame came from (the first one if unsure)."""
        try:
            return self.interfaces[int(fields["frame.interface_id"])]
        except (KeyError, ValueError, IndexError):
            pass
        tree = fields.get("frame.interface_id_tree")
        if isinstance(tree, dict) and tree.get("frame.interface_name") in self.received:
            return str(tree["frame.interface_name"])
        return self.interfaces[0]

    def _stderr_line(self, line: str) -> None:
        if not line:
            return
        if "Capture started" in line:  # dumpcap has opened the interfaces
            self._ready.set()
        elif line.startswith("Capturing on") and self._capturing_on is None:
            self._capturing_on = time.monotonic()  # printed before dumpcap has started
        if found := _DROPPED_RE.search(line):
            iface = found.group(2).strip().strip("'\"")
            for name in self.interfaces:
                if iface == name or iface.endswith(f": {name}"):
                    self.dropped_tshark[name] += int(found.group(1))
                    break
        if line != "tshark:" and not any(noise in line for noise in _NOISE):
            self._stderr.append(line)

    # -- errors ----------------------------------------------------------------------------

    def _label(self) -> str:
        return ",".join(self.interfaces)

    def _stderr_tail(self) -> str:
        lines = [line for line in self._stderr if not line.startswith("Capturing on")]
        return (": " + " ".join(" ".join(lines[-5:]).split())) if lines else ""

    def _raise_finished(self) -> None:
        """The capture thread ended without being asked to: raise why (and clean up)."""
        why = f": {self._error}" if self._error else ""
        message = why + self._stderr_tail()
        self.errors += 1
        self.close()
        raise TsharkError(f"tshark on {self._label()} stopped{message or ': exited'}")
