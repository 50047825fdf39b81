"""The ``netwatch`` command line: ``run`` (the daemon), ``replay``, ``cameras`` (the camera
inventory a sensor or ``replay --state-dir`` wrote), ``alert-test``, ``check-config``.

Exit codes (DESIGN.md contract): 0 success; 2 bad usage, bad config or unreadable input,
with one clear line on stderr naming the file (and, for config, the line and key);
1 unexpected runtime failure. ``run`` and ``check-config`` print the same line for the same
config (:func:`netwatch.preflight.failure_line` for :data:`netwatch.preflight.FAILURES`).

``check-config`` takes the file as ``FILE`` or ``-c FILE`` (as ``run`` does); without
``--schema-only`` it runs every check ``run`` makes short of opening sockets.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from netwatch import __version__, core
from netwatch.alerttest import run_alert_test
from netwatch.config import Config, check_config_main
from netwatch.daemon import run_daemon
from netwatch.enrich.geo import age_warning
from netwatch.inventory import INVENTORY_FILE, InventoryError, table_lines
from netwatch.inventory import load as load_inventory
from netwatch.pipeline import geo_backend
from netwatch.preflight import FAILURES, failure_line
from netwatch.replay import run_replay

log = logging.getLogger("netwatch")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
RUN_FAILURES: tuple[type[Exception], ...] = FAILURES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netwatch", description="Passive IP-camera traffic monitor for mirror ports."
    )
    p.add_argument(
        "--version", action="version", version=f"netwatch {__version__} ({core.describe()})"
    )
    sub = p.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="analyse capture files through the pipeline")
    rp.add_argument("pcaps", nargs="+", type=Path, metavar="PCAP")
    rp.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    rp.add_argument("--flows", type=Path, metavar="OUT.jsonl", help="write flow records here")
    rp.add_argument("--alerts", type=Path, metavar="OUT.jsonl", help="write alert records here")
    rp.add_argument("--uid-seed", type=int, default=None, help="seed flow uids (reproducible)")
    rp.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=(
            "keep new_destination baselines and alert evidence pcaps (evidence/) here "
            "(default: baselines in memory, no evidence)"
        ),
    )
    cams = sub.add_parser(
        "cameras", help="the camera inventory of a sensor or of `replay --state-dir DIR`"
    )
    where = cams.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="the sensor's config (its state_dir)")
    where.add_argument("--state-dir", type=Path, help="the state directory to read")
    cams.add_argument("--json", action="store_true", help="print the inventory's JSON form")
    run = sub.add_parser("run", help="the daemon: capture, detect, serve metrics, deliver alerts")
    run.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    at = sub.add_parser("alert-test", help="send a test alert through the configured sinks")
    at.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    at.add_argument("--sink", metavar="NAME", help="only this sink (default: all)")
    cp = sub.add_parser(
        "check-config", help="check a config as `run` would (short of opening sockets), exit"
    )
    cp.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the config file")
    cp.add_argument("-c", "--config", type=Path, help="the config file (same as FILE)")
    cp.add_argument(
        "--schema-only",
        action="store_true",
        help="check the file alone (no environment, interfaces, secrets or directories)",
    )
    return p


def _check_config_file(p: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The one file ``check-config`` was given, as FILE or ``-c FILE``."""
    given: set[Path] = {f for f in (args.file, args.config) if f is not None}
    if len(given) != 1:
        p.error("check-config: give one config file, as FILE or -c FILE")
    return given.pop()


def _load_config(path: Path | None) -> Config:
    """The config file (its warnings logged) or the built-in defaults."""
    cfg = Config.load(path) if path is not None else Config.default()
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return cfg


def _replay(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    backend = geo_backend(cfg)
    warning = age_warning(backend.describe(), date.today(), cfg.geoip.max_age_days)
    if warning:
        log.warning("%s", warning)
    summary = run_replay(
        args.pcaps,
        cfg,
        flows_out=args.flows,
        alerts_out=args.alerts,
        geo=backend,
        uid_seed=args.uid_seed,
        state_dir=args.state_dir,
    )
    for line in summary.lines():
        sys.stdout.write(line + "\n")
    return EXIT_OK


def _cameras(args: argparse.Namespace) -> int:
    """Print the inventory a sensor or a replay wrote to its state directory."""
    state_dir = args.state_dir or _load_config(args.config).state_dir
    try:
        doc = load_inventory(state_dir / INVENTORY_FILE)
    except InventoryError as exc:
        sys.stderr.write(f"netwatch: {exc}\n")
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in table_lines(doc)))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netwatch`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "run":  # the daemon logs as its config says (logging.*)
        logging.basicConfig(level=logging.INFO, format="netwatch: %(levelname)s: %(message)s")
    try:
        if args.command == "check-config":
            path = _check_config_file(parser, args)
            return check_config_main(str(path), schema_only=args.schema_only)
        if args.command == "replay":
            return _replay(args)
        if args.command == "cameras":
            return _cameras(args)
        if args.command == "run":
            return run_daemon(args.config)
        if args.command == "alert-test":
            return run_alert_test(_load_config(args.config), args.sink, sys.stdout)
    except RUN_FAILURES as exc:
        sys.stderr.write(f"netwatch: {failure_line(exc)}\n")
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
