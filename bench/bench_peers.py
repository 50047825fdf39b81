"""netwatch beside Suricata 7 and NFStream on the same captures: CPU time per packet.

Usage: ``python bench/bench_peers.py [--packets 1000000] [--flood 200000] [--runs 3]
[--tools netwatch,netwatch-cold,netwatch-pure,netwatch-c,nfstream,nfstream-ndpi,suricata]``
(or ``./dev bench-peers``, which installs Suricata and NFStream first).

Every tool runs in a fresh process, round after round, the tools interleaved within each
round so all of them see the same machine conditions; the figure is the CPU time of the
whole process (user + system, every thread, and every child the process waited for, as
``os.wait4`` reports it), the median over ``--runs`` rounds. Each tool reads

- the camera-site capture (``bench/out/site-<packets>.pcap``, ``bench/gen_site_pcap.py``):
  packets per CPU-second;
- the flood of one-packet flows (``bench/out/flood-<flood>.pcap``, ``bench/bench_flood.py``):
  new flows per CPU-second (``--flood 0`` skips it);
- a one-packet capture cut from the site capture: the start-up cost, printed separately and
  subtracted for the "minus start-up" columns.

The tools:

- ``netwatch``: ``python -m netwatch replay FILE --flows ... --alerts ... --uid-seed 1`` (the
  default config: all detection rules on, the flow log on, built-in GeoIP data), with the
  core the environment selects by default; ``netwatch-pure`` with ``NETWATCH_PURE=1`` and
  ``netwatch-c`` with ``NETWATCH_CORE=c`` (only when the compiled core is built).
- ``nfstream``: NFStream's C meter, one meter, no dissection (as ``bench_pipeline.py``);
  ``nfstream-ndpi``: the same with nDPI dissection on (``n_dissections=20``, its default).
  NFStream runs its meter in a child process: both are counted.
- ``netwatch-cold``: ``netwatch`` with an empty GeoIP cache folder of its own on every run
  (the first start after an install or a data update: the built-in GeoIP data unpacked and
  written to the cache). The other netwatch variants share one cache folder of the bench's
  own (never the user's), filled by one untimed run before the first round: they start as a
  deployed sensor restarts.
- ``suricata``: ``suricata -r FILE --runmode single -S <empty rule file>`` with a minimal
  generated ``suricata.yaml`` (:func:`suricata_yaml`): eve-log with flow records only, no
  rules, the app-layer parsers of Suricata's stock configuration on, the flow memory cap
  raised so that it keeps every flood flow, one packet thread (its flow manager and
  recycler threads are counted too).

Before every run the capture is read through once by the bench itself (not counted), so
every tool starts with it in the page cache: this VM's kernel reclaims cold page-cache pages
within seconds, and the first tool of a round would otherwise also pay for the disk.

Every run's output is checked: the flow records a tool wrote and the packets they count are
printed beside the rates, so nobody benchmarks an error; a run that fails stops the bench.

Reads no config file (the environment's ``NETWATCH_PURE``/``NETWATCH_CORE`` are cleared for
the children and set per variant; ``PYTHONDONTWRITEBYTECODE`` is cleared too, and netwatch's
bytecode compiled before the first round, so netwatch starts as an installed package does).
Known limits: the figures are CPU time, not wall time; peak RSS is the largest of the process and
its waited-for children (``ru_maxrss``) and, for netwatch, includes the memory-mapped capture's
pages; the tools' flow timeouts differ, so their flow counts differ; this is a benchmark to read,
not a timed test.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

PCAP_HEADER = 24  # bytes of a classic pcap file header
RECORD_HEADER = 16  # bytes of a classic pcap record header
PCAP_MAGIC_LE = b"\xd4\xc3\xb2\xa1"
PCAP_MAGIC_NS_LE = b"\x4d\x3c\xb2\xa1"
KIB_PER_MIB = 1024
US_PER_S = 1_000_000
#: Share of a capture's packets a tool's flow records must count for its run to look sane.
PLAUSIBLE_SHARE = 0.99
#: Packets per flow NFStream gives nDPI in ``nfstream-ndpi`` (NFStream's own default).
NDPI_DISSECTIONS = 20
#: Lines of a failed run's output shown in the error.
ERROR_TAIL_LINES = 15
#: Cleared for the children: netwatch's core switches, and Python's "write no bytecode" (with
#: it set, and the tree's bytecode not yet compiled, every netwatch start would compile every
#: module again, which an installed package never does: pip compiles at install time).
ENV_CLEARED = (
    "NETWATCH_PURE",
    "NETWATCH_CORE",
    "PYTHONDONTWRITEBYTECODE",
    "CACHE_DIRECTORY",
    "XDG_CACHE_HOME",
)
#: The environment variable netwatch's default GeoIP cache folder is found under (in the
#: bench: a folder of the bench's own, never the user's cache).
CACHE_HOME = "XDG_CACHE_HOME"
#: Suricata's stock configuration (7.0) enables these app-layer parsers; the generated one too.
SURICATA_PARSERS = (
    "telnet",
    "rfb",
    "mqtt",
    "krb5",
    "bittorrent-dht",
    "snmp",
    "ike",
    "tls",
    "dcerpc",
    "ftp",
    "rdp",
    "ssh",
    "http2",
    "smtp",
    "smb",
    "nfs",
    "tftp",
    "dns",
    "http",
    "ntp",
    "quic",
    "dhcp",
    "sip",
)
#: Suricata's flow memory cap: its default (32 MiB) drops about 4 % of the flood's 200,000
#: flows (no record written), so the flood would compare unequal work.
FLOW_MEMCAP = "1gb"
#: ... and leaves these off.
SURICATA_PARSERS_OFF = ("pgsql", "modbus", "dnp3", "enip")


class Cost(NamedTuple):
    """What one process cost, from its ``rusage``."""

    user_s: float
    sys_s: float
    peak_rss_mib: float

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds."""
        return self.user_s + self.sys_s


class Output(NamedTuple):
    """What a tool wrote: its flow records and the packets they count."""

    flows: int
    packets: int


class Run(NamedTuple):
    """One tool on one capture."""

    tool: str
    capture: str
    cost: Cost
    output: Output


class Capture(NamedTuple):
    """A capture the tools read, and its number of pcap records."""

    label: str
    path: Path
    records: int


@dataclass(frozen=True)
class Tool:
    """How to run one tool on a capture and read back what it wrote."""

    name: str
    #: (capture, work directory) -> the command line
    argv: Callable[[Path, Path], list[str]]
    #: (work directory, the process's stdout and stderr) -> what it wrote
    read: Callable[[Path, str], Output]
    env: Mapping[str, str]
    #: Run each time with an empty cache folder of its own (netwatch's GeoIP cache: the
    #: first start after an install or a data update), not the bench's shared warm one.
    cold_cache: bool = False


class Rusage(Protocol):
    """The fields of ``resource.struct_rusage`` this bench reads."""

    @property
    def ru_utime(self) -> float: ...
    @property
    def ru_stime(self) -> float: ...
    @property
    def ru_maxrss(self) -> int: ...


def cost_of(ru: Rusage) -> Cost:
    """A ``Cost`` from an ``rusage`` (``ru_maxrss`` is in KiB on Linux)."""
    return Cost(ru.ru_utime, ru.ru_stime, ru.ru_maxrss / KIB_PER_MIB)


# --- Suricata --------------------------------------------------------------------------------


def suricata_yaml(log_dir: Path) -> str:
    """A minimal ``suricata.yaml``: eve flow records only, app-layer parsers on, no stats,
    a flow memory cap that holds the whole flood (:data:`FLOW_MEMCAP`)."""
    parsers = "".join(f"    {p}:\n      enabled: yes\n" for p in SURICATA_PARSERS)
    parsers += "".join(f"    {p}:\n      enabled: no\n" for p in SURICATA_PARSERS_OFF)
    return f"""%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7]"
    EXTERNAL_NET: "!$HOME_NET"
  port-groups: {{}}
default-log-dir: {log_dir}
logging:
  default-log-level: notice
  outputs:
    - console:
        enabled: yes
stats:
  enabled: no
unix-command:
  enabled: no
threading:
  set-cpu-affinity: no
flow:
  memcap: {FLOW_MEMCAP}
pcap-file:
  checksum-checks: auto
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - flow
app-layer:
  protocols:
{parsers}"""


def suricata_argv(capture: Path, work: Path) -> list[str]:
    """``suricata -r`` with the generated config and an empty rule file, one packet thread."""
    (work / "suricata.yaml").write_text(suricata_yaml(work))
    (work / "empty.rules").write_text("")
    return [
        "suricata",
        "-c",
        str(work / "suricata.yaml"),
        "-r",
        str(capture),
        "-l",
        str(work),
        "-S",
        str(work / "empty.rules"),
        "--runmode",
        "single",
    ]


def eve_flows(lines: Iterable[str]) -> Output:
    """Flow records in eve JSON lines and the packets they count (other events ignored)."""
    flows = packets = 0
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("event_type") != "flow":
            continue
        flow = event.get("flow", {})
        flows += 1
        packets += int(flow.get("pkts_toserver", 0)) + int(flow.get("pkts_toclient", 0))
    return Output(flows, packets)


def read_suricata(work: Path, _log: str) -> Output:
    """What Suricata wrote into ``eve.json``."""
    with (work / "eve.json").open() as fh:
        return eve_flows(fh)


# --- netwatch --------------------------------------------------------------------------------


def netwatch_argv(capture: Path, work: Path) -> list[str]:
    """``netwatch replay`` as a user runs it, flow log and alert log on."""
    return [
        sys.executable,
        "-m",
        "netwatch",
        "replay",
        str(capture),
        "--flows",
        str(work / "flows.jsonl"),
        "--alerts",
        str(work / "alerts.jsonl"),
        "--uid-seed",
        "1",
    ]


def flow_log(lines: Iterable[str]) -> Output:
    """Records in netwatch's flow log and the packets they count."""
    flows = packets = 0
    for line in lines:
        if line.strip():
            rec = json.loads(line)
            flows += 1
            packets += int(rec["orig_pkts"]) + int(rec["resp_pkts"])
    return Output(flows, packets)


def read_netwatch(work: Path, _log: str) -> Output:
    """What ``netwatch replay`` wrote into its flow log."""
    with (work / "flows.jsonl").open() as fh:
        return flow_log(fh)


# --- NFStream --------------------------------------------------------------------------------

NFSTREAM = r"""
import json, sys
from nfstream import NFStreamer
flows = packets = 0
for f in NFStreamer(source=sys.argv[1], n_dissections=int(sys.argv[2]), statistical_analysis=False,
                    decode_tunnels=True, n_meters=1, performance_report=0):
    flows += 1
    packets += f.bidirectional_packets
print(json.dumps({"flows": flows, "packets": packets}))
"""


def nfstream_argv(dissections: int) -> Callable[[Path, Path], list[str]]:
    """NFStream over a capture, one meter, ``dissections`` packets given to nDPI (0: none)."""

    def argv(capture: Path, _work: Path) -> list[str]:
        return [sys.executable, "-c", NFSTREAM, str(capture), str(dissections)]

    return argv


def read_last_json(_work: Path, log: str) -> Output:
    """The flows and packets a child printed as JSON on its last line."""
    last = json.loads(log.strip().splitlines()[-1])
    return Output(int(last["flows"]), int(last["packets"]))


# --- running ---------------------------------------------------------------------------------


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: this one without netwatch's core switches, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_measured(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[Cost, str]:
    """Run a command to its end; its whole-process cost and its output (stdout + stderr)."""
    log_path = cwd / "output.txt"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _pid, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-ERROR_TAIL_LINES:])
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{tail}")
    return cost_of(ru), text


def run_tool(tool: Tool, capture: Capture) -> Run:
    """One run of a tool on a capture, in a fresh process and a fresh work directory."""
    with tempfile.TemporaryDirectory(prefix=f"peers-{tool.name}-") as tmp:
        work = Path(tmp)
        env = dict(tool.env)
        if tool.cold_cache:
            (work / "cache").mkdir(mode=0o700)
            env[CACHE_HOME] = str(work / "cache")
        cost, log = run_measured(tool.argv(capture.path, work), env, work)
        return Run(tool.name, capture.label, cost, tool.read(work, log))


def count_records(path: Path) -> int:
    """Records of a classic little-endian pcap file (the generators write those)."""
    n = 0
    with path.open("rb") as fh:
        if fh.read(PCAP_HEADER)[:4] not in (PCAP_MAGIC_LE, PCAP_MAGIC_NS_LE):
            raise ValueError(f"{path}: not a little-endian classic pcap")
        while len(head := fh.read(RECORD_HEADER)) == RECORD_HEADER:
            fh.seek(int.from_bytes(head[8:12], "little"), os.SEEK_CUR)
            n += 1
    return n


def first_packets(src: Path, dst: Path, count: int = 1) -> Path:
    """Copy the file header and the first ``count`` records of ``src`` (fewer if it has fewer)
    to ``dst``."""
    with src.open("rb") as fh, dst.open("wb") as out:
        out.write(fh.read(PCAP_HEADER))
        for _ in range(count):
            head = fh.read(RECORD_HEADER)
            if len(head) < RECORD_HEADER:
                break
            out.write(head + fh.read(int.from_bytes(head[8:12], "little")))
    return dst


# --- the tools and the rounds ----------------------------------------------------------------


def netwatch_core() -> str:
    """What ``netwatch --version`` says about its core (``core: c`` when built)."""
    proc = subprocess.run(
        [sys.executable, "-m", "netwatch", "--version"],
        env=child_env({}),
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def has_nfstream() -> bool:
    """NFStream is importable by this interpreter."""
    probe = [sys.executable, "-c", "import nfstream"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def all_tools() -> dict[str, Tool]:
    """Every tool this bench knows, by name."""
    return {
        "netwatch": Tool("netwatch", netwatch_argv, read_netwatch, child_env({})),
        "netwatch-cold": Tool(
            "netwatch-cold", netwatch_argv, read_netwatch, child_env({}), cold_cache=True
        ),
        "netwatch-pure": Tool(
            "netwatch-pure", netwatch_argv, read_netwatch, child_env({"NETWATCH_PURE": "1"})
        ),
        "netwatch-c": Tool(
            "netwatch-c", netwatch_argv, read_netwatch, child_env({"NETWATCH_CORE": "c"})
        ),
        "nfstream": Tool("nfstream", nfstream_argv(0), read_last_json, child_env({})),
        "nfstream-ndpi": Tool(
            "nfstream-ndpi", nfstream_argv(NDPI_DISSECTIONS), read_last_json, child_env({})
        ),
        "suricata": Tool("suricata", suricata_argv, read_suricata, child_env({})),
    }


def available(names: Sequence[str]) -> list[Tool]:
    """The requested tools that can run here (the others named on stderr)."""
    tools = all_tools()
    unknown = [n for n in names if n not in tools]
    if unknown:
        raise SystemExit(f"unknown tools: {', '.join(unknown)} (known: {', '.join(tools)})")
    missing: dict[str, str] = {}
    if "netwatch-c" in names and "core: c" not in netwatch_core():
        missing["netwatch-c"] = "the compiled core is not built"
    if not has_nfstream():
        missing |= dict.fromkeys(("nfstream", "nfstream-ndpi"), "nfstream is not installed")
    if shutil.which("suricata") is None:
        missing["suricata"] = "suricata is not on PATH"
    for name in names:
        if name in missing:
            print(f"skipping {name}: {missing[name]}", file=sys.stderr)
    return [tools[n] for n in names if n not in missing]


def with_warm_cache(tools: Sequence[Tool], cache: Path, one: Capture) -> list[Tool]:
    """``tools`` with netwatch's (but not ``netwatch-cold``'s) cache folder set to ``cache``,
    filled first by one untimed ``netwatch`` run on ``one``: every measured run then starts as
    a deployed sensor restarts, with its GeoIP data already unpacked."""
    cache.mkdir(mode=0o700)
    warm = [
        replace(t, env={**t.env, CACHE_HOME: str(cache)})
        if t.name.startswith("netwatch") and not t.cold_cache
        else t
        for t in tools
    ]
    for tool in warm:
        if tool.name.startswith("netwatch") and not tool.cold_cache:
            run_tool(tool, one)
            break
    filled = sum(1 for path in cache.rglob("*") if path.is_file())
    print(f"GeoIP cache warmed: {filled} file(s) in {cache}", file=sys.stderr)
    return warm


def read_through(path: Path, chunk: int = 1 << 20) -> int:
    """Read ``path`` whole (its bytes are dropped) so that it is in the page cache; the bytes
    read. This VM's kernel reclaims cold page-cache pages within seconds (DAMON), so without
    it the first tool of a round would also pay for reading the 1.1 GB capture from disk."""
    total = 0
    buf = bytearray(chunk)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            total += n
    return total


def rounds(tools: Sequence[Tool], captures: Sequence[Capture], runs: int) -> Iterator[Run]:
    """Every tool on every capture, ``runs`` times, interleaved round by round; the capture
    read through into the page cache (:func:`read_through`, not counted) before each run, so
    that every tool starts with the same cache."""
    for i in range(runs):
        for capture in captures:
            for tool in tools:
                read_through(capture.path)
                run = run_tool(tool, capture)
                print(
                    f"round {i + 1}/{runs} {tool.name:14} {capture.label:8} "
                    f"{run.cost.cpu_s:8.3f} CPU-s  {run.output.flows:,} flows",
                    file=sys.stderr,
                )
                yield run


# --- the report ------------------------------------------------------------------------------


class Row(NamedTuple):
    """The medians of one tool on one capture."""

    tool: str
    cpu_s: float
    startup_s: float
    peak_rss_mib: float
    output: Output
    #: CPU seconds of every round, in round order
    each: tuple[float, ...] = ()


def row_of(tool: str, runs: Sequence[Run], startup: Sequence[Run]) -> Row:
    """Medians over a tool's runs on one capture and on the one-packet capture."""
    return Row(
        tool=tool,
        cpu_s=statistics.median(r.cost.cpu_s for r in runs),
        startup_s=statistics.median(r.cost.cpu_s for r in startup) if startup else 0.0,
        peak_rss_mib=statistics.median(r.cost.peak_rss_mib for r in runs),
        output=runs[0].output,
        each=tuple(r.cost.cpu_s for r in runs),
    )


def rows(results: Sequence[Run], capture: str, tools: Sequence[str]) -> list[Row]:
    """One row per tool that ran on ``capture``."""
    out = []
    for tool in tools:
        runs = [r for r in results if r.tool == tool and r.capture == capture]
        startup = [r for r in results if r.tool == tool and r.capture == "startup"]
        if runs:
            out.append(row_of(tool, runs, startup))
    return out


def table(capture: Capture, table_rows: Sequence[Row], unit: str) -> list[str]:
    """A markdown table: rates per CPU-second, whole process and minus start-up, vs Suricata."""
    base = {r.tool: r for r in table_rows}.get("suricata")
    lines = [
        f"{capture.label}: {capture.path.name}, {capture.records:,} packets",
        "",
        f"| tool | {unit}/CPU-s | µs/packet | minus start-up: {unit}/CPU-s | start-up CPU-s "
        "| peak RSS MiB | flows written | packets in flows | ratio to Suricata (minus start-up) "
        "| CPU-s per round |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in table_rows:
        rate = capture.records / r.cpu_s
        work = max(r.cpu_s - r.startup_s, 1e-9)
        ratio = "-"
        if base is not None:
            base_work = max(base.cpu_s - base.startup_s, 1e-9)
            ratio = f"{base.cpu_s / r.cpu_s:.2f} ({base_work / work:.2f})"
        lines.append(
            f"| {r.tool} | {rate:,.0f} | {US_PER_S * r.cpu_s / capture.records:.2f} "
            f"| {capture.records / work:,.0f} | {r.startup_s:.2f} | {r.peak_rss_mib:,.0f} "
            f"| {r.output.flows:,} | {r.output.packets:,} | {ratio} "
            f"| {' / '.join(f'{c:.2f}' for c in r.each)} |"
        )
    return lines


def plausibility(capture: Capture, table_rows: Sequence[Row]) -> list[str]:
    """Warnings for tools whose flow records do not count (nearly) every packet of the capture
    (:data:`PLAUSIBLE_SHARE`; the generated captures carry under 0.1 % non-IP frames)."""
    warn = []
    for r in table_rows:
        if r.output.flows == 0 or r.output.packets < PLAUSIBLE_SHARE * capture.records:
            warn.append(
                f"WARNING {r.tool} on {capture.label}: {r.output.flows} flows counting "
                f"{r.output.packets} of {capture.records} packets: is it benchmarking an error?"
            )
    return warn


# --- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model named in /proc/cpuinfo (or the platform's processor)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "?"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "?"


def version_of(argv: Sequence[str]) -> str:
    """The first line a version command prints, or what went wrong."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=child_env({}))
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def machine() -> list[str]:
    """What the numbers were measured on."""
    return [
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs (shared: CPU time, not wall time), "
        f"{platform.system()} {platform.release()}",
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"{version_of([sys.executable, '-m', 'netwatch', '--version'])}; "
        f"{version_of(['suricata', '-V'])}; NFStream "
        f"{version_of([sys.executable, '-c', 'import nfstream; print(nfstream.__version__)'])}",
    ]


def captures(packets: int, flood: int, scratch: Path) -> list[Capture]:
    """The site capture, the flood (unless 0) and the one-packet start-up capture."""
    from bench_pipeline import ensure_capture as ensure_site  # noqa: PLC0415

    site = ensure_site(packets)
    out = [Capture("site", site, count_records(site))]
    if flood:
        from bench_flood import ensure_capture as ensure_flood  # noqa: PLC0415

        path = ensure_flood(flood)
        out.append(Capture("flood", path, count_records(path)))
    one = first_packets(site, scratch / "one-packet.pcap")
    out.append(Capture("startup", one, 1))
    return out


def main() -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000, help="site capture size")
    ap.add_argument("--flood", type=int, default=200_000, help="one-packet flows (0: skip)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default=",".join(all_tools()), help="comma-separated")
    args = ap.parse_args()
    tools = available([t for t in args.tools.split(",") if t])
    names = [t.name for t in tools]
    # netwatch runs from this tree: its bytecode compiled first, as an installed package's is
    compileall.compile_dir(REPO / "netwatch", quiet=1)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        caps = captures(args.packets, args.flood, Path(tmp))
        tools = with_warm_cache(tools, Path(tmp) / "cache", caps[-1])
        results = list(rounds(tools, caps, args.runs))
    report = [*machine(), f"median of {args.runs} interleaved rounds", ""]
    units = {"site": "packets", "flood": "new flows"}
    for cap in caps:
        if cap.label in units:
            cap_rows = rows(results, cap.label, names)
            report += [*table(cap, cap_rows, units[cap.label]), *plausibility(cap, cap_rows), ""]
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
