"""The ``netwatch`` command line: ``run`` (the daemon), ``replay``, ``alert-test``,
``check-config``.

Exit codes (DESIGN.md contract): 0 success; 2 bad usage, bad config or unreadable input,
with one clear line on stderr naming the file (and, for config, the line and key);
1 unexpected runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from netwatch import __version__
from netwatch.alerttest import run_alert_test
from netwatch.capture.afpacket import RingError
from netwatch.capture.bpf import BpfError
from netwatch.capture.files import CaptureError
from netwatch.config import Config, ConfigError, check_config_main
from netwatch.daemon import UsageError, run_daemon
from netwatch.enrich.geo import GeoDatabaseError, age_warning
from netwatch.metrics.server import WebConfigError
from netwatch.pipeline import geo_backend
from netwatch.privileges import PrivilegeError
from netwatch.replay import run_replay
from netwatch.sinks.base import SinkError

log = logging.getLogger("netwatch")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netwatch", description="Passive IP-camera traffic monitor for mirror ports."
    )
    p.add_argument("--version", action="version", version=f"netwatch {__version__}")
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
        help="keep new_destination baselines here (default: in memory for this replay)",
    )
    run = sub.add_parser("run", help="the daemon: capture, detect, serve metrics, deliver alerts")
    run.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    at = sub.add_parser("alert-test", help="send a test alert through the configured sinks")
    at.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    at.add_argument("--sink", metavar="NAME", help="only this sink (default: all)")
    cp = sub.add_parser("check-config", help="validate a config file and exit")
    cp.add_argument("file")
    return p


def _load_config(path: Path | None) -> Config:
    return Config.load(path) if path is not None else Config.default()


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netwatch`` console script."""
    args = _parser().parse_args(argv)
    if args.command != "run":  # the daemon logs as its config says (logging.*)
        logging.basicConfig(level=logging.INFO, format="netwatch: %(levelname)s: %(message)s")
    try:
        if args.command == "check-config":
            return check_config_main(args.file)
        if args.command == "replay":
            return _replay(args)
        if args.command == "run":
            return run_daemon(args.config)
        if args.command == "alert-test":
            return run_alert_test(_load_config(args.config), args.sink, sys.stdout)
    except (
        ConfigError,
        CaptureError,
        GeoDatabaseError,
        UsageError,
        SinkError,
        WebConfigError,
        BpfError,
        PrivilegeError,
    ) as exc:
        sys.stderr.write(f"netwatch: {exc}\n")
        return EXIT_USAGE
    except RingError as exc:
        sys.stderr.write(f"netwatch: capture: {exc.strerror}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"netwatch: {exc.filename or ''}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
