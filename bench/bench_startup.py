"""Start-up cost of ``netwatch replay``: CPU time and peak RSS of whole processes, A/B.

Usage: ``python bench/bench_startup.py [--ab DIR] [--runs 7] [--capture PCAP]
[--no-bytecode] [--python PY] [-- EXTRA ARGS]``

Each run is a fresh interpreter executing ``netwatch replay -qq CAPTURE`` (the command
line's ``main``, imported from the tree under test: this checkout, and with ``--ab DIR``
the source tree DIR, e.g. ``git archive main | tar -x -C DIR``, runs alternating); its user +
system CPU time and peak RSS come from the kernel (``os.wait4``), so interpreter start-up,
imports, building the pipeline, the replay and exit all count. The default capture is the
first packet of the demo capture (an ARP request: no flow), written to a temporary file;
``--capture`` replays another file (e.g. ``bench/out/site-1000000.pcap`` for the whole
benchmark run). Prints the median and every round per tree.

Bytecode: an installed netwatch (a wheel) has its modules compiled to ``.pyc`` files; a
checkout run with ``PYTHONDONTWRITEBYTECODE=1`` compiles every module it imports on every
start. By default both trees' ``netwatch`` packages are compiled first (``compileall``, as
pip does; the ``__pycache__`` folders are ignored by git); ``--no-bytecode`` deletes the
``__pycache__`` folders under both trees' ``netwatch`` instead and runs with
``PYTHONDONTWRITEBYTECODE=1``: what a checkout pays when it is set (the libraries keep their
installed bytecode).

``--python``: the interpreter (default: this one). The compiled core must be built in each
tree (``pip install -e .`` here; copy the ``.so`` files into an exported tree). This is a
benchmark to read, not a timed test. Reads no config.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "pcaps" / "demo" / "camera-site-demo.pcap"
PCAP_HEADER = 24
RECORD_HEADER = struct.Struct("<IIII")  # the demo capture is little-endian

CHILD = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from netwatch.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


def first_packet(source: Path, out: Path) -> Path:
    """A capture of the first record of ``source`` (a little-endian classic pcap)."""
    data = source.read_bytes()
    _sec, _usec, caplen, _wire = RECORD_HEADER.unpack_from(data, PCAP_HEADER)
    out.write_bytes(data[: PCAP_HEADER + RECORD_HEADER.size + caplen])
    return out


def run_once(python: str, tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """CPU seconds (user + system) and peak RSS (KiB) of one replay process."""
    proc = subprocess.Popen(
        [python, "-c", CHILD, str(tree), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: exit {proc.returncode}: {err.decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ab", type=Path, metavar="DIR", help="source tree to alternate with")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--capture", type=Path, help="capture to replay (default: 1 packet)")
    ap.add_argument("--no-bytecode", action="store_true", help="compile at every start")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("extra", nargs="*", help="more replay arguments (after --)")
    opts = ap.parse_args()
    trees = [("this", ROOT), *([("base", opts.ab.resolve())] if opts.ab else [])]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NETWATCH_CORE")}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for _tag, tree in trees:
            if opts.no_bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                for cache in (tree / "netwatch").rglob("__pycache__"):
                    shutil.rmtree(cache)
            else:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                compileall.compile_dir(tree / "netwatch", quiet=1)
        capture = opts.capture or first_packet(DEMO, Path(tmp) / "one.pcap")
        args = ["replay", "-qq", str(capture), *opts.extra]
        results: dict[str, list[tuple[float, int]]] = {tag: [] for tag, _ in trees}
        for _tag, tree in trees:  # one unmeasured run each: file cache warm
            run_once(opts.python, tree, args, env)
        for _round in range(opts.runs):
            for tag, tree in trees:
                results[tag].append(run_once(opts.python, tree, args, env))
    mode = "no bytecode" if opts.no_bytecode else "bytecode compiled"
    print(f"netwatch {' '.join(args)}; {mode}; {opts.runs} rounds, alternating")
    for tag, tree in trees:
        cpu = [c for c, _ in results[tag]]
        rss = statistics.median(r for _, r in results[tag]) / 1024
        rounds = ", ".join(f"{c:.3f}" for c in cpu)
        print(
            f"{tag} ({tree}): CPU {statistics.median(cpu):.3f} s median ({rounds}); "
            f"peak RSS {rss:.1f} MiB"
        )
    if opts.ab:
        a = statistics.median(c for c, _ in results["this"])
        b = statistics.median(c for c, _ in results["base"])
        print(f"this / base: {a / b:.3f}")


if __name__ == "__main__":
    main()
