"""The ``netwatch`` command line: ``run`` (the daemon), ``replay``, ``cameras`` (the camera
inventory a sensor or ``replay --state-dir`` wrote), ``report``, ``alert-test``,
``check-config``, ``install`` (put the config, units and dashboards on a sensor).

``report`` writes the camera audit as one HTML file (:mod:`netwatch.report`): of capture
files (replayed with ``-c FILE``'s config, or the built-in one), or, without captures, of
the inventory a sensor saved in its state directory (``--state-dir DIR``, or the
``state_dir`` of ``-c FILE``).

Exit codes (DESIGN.md contract): 0 success; 2 bad usage, bad config or unreadable input,
with one clear line on stderr naming the file (and, for config, the line and key);
1 unexpected runtime failure. ``run`` and ``check-config`` print the same line for the same
config (:func:`netwatch.preflight.failure_line` for :data:`netwatch.preflight.FAILURES`).

``check-config`` takes the file as ``FILE`` or ``-c FILE`` (as ``run`` does); without
``--schema-only`` it runs every check ``run`` makes short of opening sockets.

Start-up: each command imports what it uses when it runs (``replay`` does not load the
daemon, its sinks and metrics server: about 0.1 s of a 1-packet replay; nor the report,
install and inventory modules: ``report``, ``install`` and ``cameras`` import them, and
``replay`` imports the inventory only with ``--state-dir``); the daemon's
:func:`netwatch.preload.preload` still loads every module before its privilege drop.
``tests/test_cli.py`` checks what a replay must not import. Once its config, GeoIP data and
pipeline are loaded (the pipeline warmed up: its seeds, matchers and tables), ``replay``
freezes what the garbage collector tracks (``gc.freeze``): those objects live until the
process exits anyway, and neither the replay's collections nor the collection at exit walk
them again (~35 ms of CPU of a 1-packet replay, most of it at exit). The frozen objects are
still freed by reference counting; a reference cycle among them is only freed by the
process's exit (in-process callers of :func:`main`: tests). This module's imports, and all
the replay loads before that freeze, are made with the collector paused
(:func:`netwatch.collector_paused`; a replay switches it off until the pipeline is ready):
its young collections during a start walked objects that all live on.
"""

from __future__ import annotations

import gc

from netwatch import __version__, collector_paused

# The modules a command needs are imported with the cyclic collector paused (~300 modules:
# classes, functions and tables that live until the process exits; see collector_paused).
with collector_paused():
    import argparse
    import json
    import logging
    import os
    import sys
    from collections.abc import Iterator, Sequence
    from contextlib import contextmanager
    from datetime import date
    from pathlib import Path
    from typing import Any

    from netwatch import core
    from netwatch.capture.files import STDIN
    from netwatch.config import Config, check_config_main
    from netwatch.enrich.geo import age_warning
    from netwatch.pipeline import geo_backend
    from netwatch.replay import run_replay

log = logging.getLogger("netwatch")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Given the ``command`` being run, only that subcommand gets
    its arguments (~1 ms of a start: each ``add_argument`` makes a help formatter); the
    others are named, with their help, for the usage, the choices and the errors, which are
    those of the whole parser. Without it (no command, ``--help``, ``--version``), all."""

    def wants(name: str) -> bool:
        return command is None or command == name

    p = _Parser(prog="netwatch", description="Passive IP-camera traffic monitor for mirror ports.")
    p.add_argument("--version", action=_Version, help="print the version and the cores in use")
    sub = p.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="analyse capture files through the pipeline")
    if wants("replay"):
        _replay_parser(rp)
    cams = sub.add_parser(
        "cameras", help="the camera inventory of a sensor or of `replay --state-dir DIR`"
    )
    if wants("cameras"):
        where = cams.add_mutually_exclusive_group()
        where.add_argument("-c", "--config", type=Path, help="the sensor's config (its state_dir)")
        where.add_argument("--state-dir", type=Path, help="the state directory to read")
        cams.add_argument("--json", action="store_true", help="print the inventory's JSON form")
    rep = sub.add_parser("report", help="write the camera audit (one self-contained HTML file)")
    if wants("report"):
        _report_parser(rep)
    run = sub.add_parser("run", help="the daemon: capture, detect, serve metrics, deliver alerts")
    if wants("run"):
        run.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
    at = sub.add_parser("alert-test", help="send a test alert through the configured sinks")
    if wants("alert-test"):
        at.add_argument("-c", "--config", type=Path, help="config file (default: built-in)")
        at.add_argument("--sink", metavar="NAME", help="only this sink (default: all)")
    cp = sub.add_parser(
        "check-config", help="check a config as `run` would (short of opening sockets), exit"
    )
    if wants("check-config"):
        cp.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the config file")
        cp.add_argument("-c", "--config", type=Path, help="the config file (same as FILE)")
        cp.add_argument(
            "--schema-only",
            action="store_true",
            help="check the file alone (no environment, interfaces, secrets or directories)",
        )
    ip = sub.add_parser(
        "install",
        help="put the config, systemd units, logrotate file, dashboards and rules in place",
    )
    if wants("install"):
        _install_parser(ip)
    return p


#: The subcommands, as ``_parser`` names them.
COMMANDS = ("replay", "cameras", "report", "run", "alert-test", "check-config", "install")


def _replay_parser(rp: argparse.ArgumentParser) -> None:
    rp.add_argument(
        "pcaps", nargs="+", type=Path, metavar="PCAP", help="capture files; - reads standard input"
    )
    rp.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="no alert lines and no progress line (-qq: no summary either)",
    )
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


def _report_parser(rep: argparse.ArgumentParser) -> None:
    rep.add_argument(
        "pcaps", nargs="*", type=Path, metavar="CAPTURE", help="capture files to replay"
    )
    rep.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.html", help="the page to write"
    )
    rep.add_argument(
        "-c",
        "--config",
        type=Path,
        help="config file (default: built-in); without "
        "captures, the report is of the inventory in its state_dir",
    )
    rep.add_argument(
        "--json",
        type=Path,
        metavar="OUT.json",
        help="also write the inventory the page shows (JSON, as `netwatch cameras --json`)",
    )
    rep.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        # the name is netwatch.inventory.INVENTORY_FILE (not imported to build the parser)
        help="without captures: the report is of the inventory saved here (inventory.json)",
    )


def _install_parser(ip: argparse.ArgumentParser) -> None:
    ip.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="install under DIR (paths inside the files stay the final ones; default: /)",
    )
    ip.add_argument(
        "--prefix",
        type=Path,
        default=None,  # netwatch.install.DEFAULT_PREFIX (the install module loads when used)
        metavar="DIR",
        help="netwatch's installation; the unit runs DIR/bin/netwatch (default: this "
        "Python's scripts folder less bin/, e.g. the virtualenv)",
    )
    ip.add_argument(
        "--dry-run", action="store_true", help="print what would be done, write nothing"
    )
    ip.add_argument(
        "--force", action="store_true", help="replace files under /etc that were edited"
    )


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size().columns`` gives it (as its
    documentation says: ``COLUMNS`` when a positive number, else the width of the terminal
    on ``sys.__stdout__``, else 80), without importing ``shutil``, which imports ``bz2``
    and ``lzma`` (their shared libraries): ~7 M instructions of every start, for
    ``argparse``'s help formatter, which asks for the width each time one is made."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _HelpFormatter(argparse.HelpFormatter):
    """``argparse``'s help formatter, with the default width worked out by :func:`_columns`
    (the same width, less 2, as ``argparse`` does)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """An ``argparse`` parser formatting with :class:`_HelpFormatter` (its subcommands'
    parsers are of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


class _Version(argparse.Action):
    """``--version``: the version line, worked out only when asked for (naming the ring
    conversion imports the live-capture module, which no other command needs to start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"netwatch {__version__} ({_cores()})\n")  # where argparse writes it
        parser.exit()


def _cores() -> str:
    """Which per-packet core runs, which live-ring conversion, which GeoIP tree walk and
    which deep-parser readers (DNS message walk, TLS ClientHello body): compiled or Python."""
    from netwatch.capture.afpacket import RING_CONVERSION  # noqa: PLC0415 - --version only
    from netwatch.deep.dns import C_SCAN  # noqa: PLC0415 - --version only
    from netwatch.deep.tls import C_BODY  # noqa: PLC0415 - --version only
    from netwatch.enrich.geo import WALK  # noqa: PLC0415 - --version only

    geoip = "python" if WALK is None else "c"
    deep = "python" if C_SCAN is None or C_BODY is None else "c"
    return f"{core.describe()}, ring: {RING_CONVERSION}, geoip: {geoip}, deep: {deep}"


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


@contextmanager
def _alert_lines(shown: bool) -> Iterator[None]:
    """One log line per alert (``netwatch.alert``) while the body runs, or none; the
    logger's level is put back afterwards (``main`` may run again in one process)."""
    logger = logging.getLogger("netwatch.alert")
    level = logger.level
    if not shown:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _replay(args: argparse.Namespace) -> int:
    if args.pcaps.count(Path(STDIN)) > 1:
        from netwatch.preflight import UsageError  # noqa: PLC0415 - see the docstring

        raise UsageError("replay: standard input (-) can be given once")
    # The config, the GeoIP data and the pipeline (its seeds, matchers, tables) are loaded
    # with the cyclic collector paused, as the imports were, until the pipeline is ready.
    collecting = gc.isenabled()
    gc.disable()

    def ready() -> None:
        # What exists now (modules, classes, the config, the GeoIP data, the pipeline) lives
        # until the process exits: out of the cyclic collector's walks, during the replay
        # and at exit (see the module docstring); then the collector runs as before.
        gc.freeze()
        if collecting:
            gc.enable()

    try:
        cfg = _load_config(args.config)
        backend = geo_backend(cfg)
        warning = age_warning(backend.describe(), date.today(), cfg.geoip.max_age_days)
        if warning:
            log.warning("%s", warning)
        with _alert_lines(not args.quiet):
            summary = run_replay(
                args.pcaps,
                cfg,
                flows_out=args.flows,
                alerts_out=args.alerts,
                geo=backend,
                uid_seed=args.uid_seed,
                state_dir=args.state_dir,
                progress=sys.stderr if not args.quiet and sys.stderr.isatty() else None,
                ready=ready,
            )
    finally:
        if collecting:
            gc.enable()  # also when the replay failed before it was ready
    if args.quiet < 2:
        for line in summary.lines():
            sys.stdout.write(line + "\n")
    return EXIT_OK


def _report(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # only this command writes a report or builds an inventory from captures
    from netwatch.inventory import (  # noqa: PLC0415 - see the docstring
        INVENTORY_FILE,
        InventoryError,
        build_from_captures,
        load,
    )
    from netwatch.report import write_inventory, write_report  # noqa: PLC0415

    if args.pcaps and args.state_dir is not None:
        p.error("report: give capture files or --state-dir, not both")
    if not args.pcaps and args.state_dir is None and args.config is None:
        p.error("report: give capture files, --state-dir DIR or -c FILE")
    cfg = _load_config(args.config)
    try:
        if args.pcaps:
            # the page lists the findings: no line per alert on the terminal
            with _alert_lines(False):
                inventory = build_from_captures(args.pcaps, cfg, geo=geo_backend(cfg))
        else:
            state_dir = args.state_dir if args.state_dir is not None else cfg.state_dir
            inventory = load(state_dir / INVENTORY_FILE)
    except InventoryError as exc:
        sys.stderr.write(f"netwatch: {exc}\n")
        return EXIT_USAGE
    out = args.output
    try:
        size = write_report(inventory, out)
        if args.json is not None:
            out = args.json
            write_inventory(inventory, out)
    except OSError as exc:
        sys.stderr.write(f"netwatch: cannot write {out}: {exc}\n")
        return EXIT_USAGE
    cameras = len(inventory.get("cameras") or ())
    sys.stdout.write(f"report: {args.output} ({size} bytes, {cameras} cameras)\n")
    return EXIT_OK


def _cameras(args: argparse.Namespace) -> int:
    """Print the inventory a sensor or a replay wrote to its state directory."""
    from netwatch import inventory  # noqa: PLC0415 - see the docstring

    state_dir = args.state_dir or _load_config(args.config).state_dir
    try:
        doc = inventory.load(state_dir / inventory.INVENTORY_FILE)
    except inventory.InventoryError as exc:
        sys.stderr.write(f"netwatch: {exc}\n")
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in inventory.table_lines(doc)))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netwatch`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(words)
    if args.command != "run":  # the daemon logs as its config says (logging.*)
        logging.basicConfig(level=logging.INFO, format="netwatch: %(levelname)s: %(message)s")
    try:
        return _command(parser, args)
    except Exception as exc:
        from netwatch.preflight import FAILURES, failure_line  # noqa: PLC0415 - on failure only

        if not isinstance(exc, FAILURES):
            raise
        sys.stderr.write(f"netwatch: {failure_line(exc)}\n")
        return EXIT_USAGE


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the command ``args`` names, importing what only it needs (see the docstring)."""
    if args.command == "check-config":
        path = _check_config_file(parser, args)
        return check_config_main(str(path), schema_only=args.schema_only)
    if args.command == "replay":
        return _replay(args)
    if args.command == "run":
        from netwatch.daemon import run_daemon  # noqa: PLC0415 - see the docstring

        return run_daemon(args.config)
    if args.command == "alert-test":
        from netwatch.alerttest import run_alert_test  # noqa: PLC0415 - see the docstring

        return run_alert_test(_load_config(args.config), args.sink, sys.stdout)
    if args.command == "cameras":
        return _cameras(args)
    if args.command == "report":
        return _report(parser, args)
    if args.command == "install":
        from netwatch.install import DEFAULT_PREFIX, Options, run_install  # noqa: PLC0415

        prefix = args.prefix if args.prefix is not None else DEFAULT_PREFIX
        return run_install(Options(args.root, prefix, args.dry_run, args.force), sys.stdout)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
