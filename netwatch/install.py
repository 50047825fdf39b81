"""``netwatch install``: put what a sensor needs in place, from the installed package.

The wheel (and the sdist) carry under ``netwatch/share/`` the repository's own files: the
example config, the systemd units, the logrotate file, the Grafana dashboards and
provisioning files, the Prometheus rules and example configs, and the demo capture (in
the repository, ``netwatch/share/*`` are links to the top-level folders). This module
copies them where a Debian/Ubuntu sensor expects them:

==========================================  ==========================================
``/etc/netwatch/netwatch.yaml``             the example config (edit it)
``/etc/systemd/system/netwatch.service``    the daemon; ``ExecStart=`` names this
                                            installation's ``netwatch`` (``--prefix``)
``/etc/systemd/system/netwatch-geoipupdate.*``  the GeoIP refresh service and timer
``/etc/logrotate.d/netwatch``               rotation of the flow and alert logs
``/usr/share/netwatch/...``                 dashboards, rules, the pristine example
                                            config, the unit README, the demo capture
==========================================  ==========================================

Files under ``/etc`` belong to the administrator once written (as Debian's conffiles):
``/usr/share/netwatch/installed.json`` records the SHA-256 of what was last written to
each; a file that still has it is updated, one that differs (edited) is kept and the new
version written beside it as ``FILE.new`` (``--force`` replaces it). Files under
``/usr/share/netwatch`` are always replaced. Every write is atomic (a temporary file in
the same directory, then a rename); a second run changes nothing.

Options: ``--root DIR`` installs under DIR (as a package build's DESTDIR: the paths
written into the files stay the final ones), ``--prefix DIR`` is where netwatch itself is
installed (default: where this interpreter puts console scripts, less ``bin``: the
virtualenv, e.g. ``/opt/netwatch``; the unit runs ``DIR/bin/netwatch``), ``--dry-run``
prints what would be done, ``--force``.

Reads no config. No user or directory of the daemon's is created: the unit runs as a
``DynamicUser=`` and systemd creates ``/var/lib/netwatch`` and ``/var/log/netwatch`` at
start; the commands to enable the service are printed, not run (no subprocess at all).

Known limits: Linux/systemd layout only; no uninstall (the manifest lists every file
written); the Grafana and Prometheus files are placed under ``/usr/share/netwatch`` for
the operator to provision, not wired into a Grafana or Prometheus on this host.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

#: The files the package carries for a sensor (links to the repository's folders).
SHARE = Path(__file__).resolve().parent / "share"
SHARE_DIR = PurePosixPath("/usr/share/netwatch")
MANIFEST = SHARE_DIR / "installed.json"
CONFIG = PurePosixPath("/etc/netwatch/netwatch.yaml")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
LOGROTATE = PurePosixPath("/etc/logrotate.d/netwatch")
UNIT = "netwatch.service"
#: The command the repository's unit names; replaced by this installation's.
UNIT_EXEC = "/usr/bin/netwatch"
#: A path systemd takes as it is in ExecStart= (no quoting, no %-specifiers, no $VARS).
PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@/-]+")
#: Where this interpreter installs console scripts, less ``bin``: the virtualenv (e.g.
#: /opt/netwatch), or /usr/local for Debian's system pip.
DEFAULT_PREFIX = Path(sysconfig.get_path("scripts")).parent
#: Folders of the package's share/ copied as they are under /usr/share/netwatch.
SHARED_FOLDERS = ("grafana", "prometheus", "demo")
FILE_MODE = 0o644
DIR_MODE = 0o755
EXIT_OK = 0
EXIT_USAGE = 2


class Kind(enum.Enum):
    """Who owns an installed file after it is written."""

    CONFIG = "config"  # the administrator's (under /etc): never overwritten once edited
    DATA = "data"  # netwatch's (under /usr/share/netwatch): always replaced


class Action(enum.Enum):
    """What happened to one target file."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # edited by the administrator; the new version went to FILE.new
    REPLACED = "replaced"  # edited, overwritten because of --force


@dataclass(frozen=True)
class Item:
    """One file to install: its final path on the sensor, its bytes and who owns it."""

    target: PurePosixPath
    content: bytes
    kind: Kind


@dataclass(frozen=True)
class Done:
    """The outcome for one item (``side`` is the FILE.new written beside a kept file)."""

    target: PurePosixPath
    action: Action
    side: PurePosixPath | None = None


@dataclass(frozen=True)
class Options:
    """What ``netwatch install`` was asked to do."""

    root: Path = Path("/")
    prefix: Path = DEFAULT_PREFIX
    dry_run: bool = False
    force: bool = False


class InstallError(Exception):
    """A request that cannot be carried out (bad --prefix, missing package data)."""


def executable(prefix: Path) -> PurePosixPath:
    """The ``netwatch`` command of the installation at ``prefix``, as the unit runs it."""
    path = PurePosixPath(os.path.abspath(prefix)) / "bin" / "netwatch"
    if not PLAIN_PATH.fullmatch(str(path)):
        raise InstallError(
            f"--prefix {prefix}: {path} has characters systemd's ExecStart= would need quoted; "
            "install netwatch under a plain path such as /opt/netwatch"
        )
    return path


def unit_text(template: str, command: PurePosixPath) -> str:
    """The daemon's unit with ``ExecStart=`` running ``command`` instead of /usr/bin's."""
    lines = template.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    if len(starts) != 1 or UNIT_EXEC not in lines[starts[0]]:
        raise InstallError(f"{UNIT}: expected one ExecStart= running {UNIT_EXEC}")
    i = starts[0]
    lines[i] = lines[i].replace(UNIT_EXEC, str(command), 1)
    return "".join(lines)


def _read(relative: str) -> bytes:
    path = SHARE / relative
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InstallError(f"package data missing: {path} ({exc.strerror})") from exc


def _shared_files() -> Iterator[str]:
    """Every file of the shared folders, relative to share/, in a stable order."""
    for folder in SHARED_FOLDERS:
        base = SHARE / folder
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
                yield str(path.relative_to(SHARE))


def items(command: PurePosixPath) -> list[Item]:
    """What a sensor gets, with the unit running ``command``."""
    unit = unit_text(_read(f"systemd/{UNIT}").decode("utf-8"), command)
    found = [
        Item(CONFIG, _read("config/netwatch.yaml"), Kind.CONFIG),
        Item(UNIT_DIR / UNIT, unit.encode("utf-8"), Kind.CONFIG),
        Item(LOGROTATE, _read("logrotate/netwatch"), Kind.CONFIG),
    ]
    for name in ("netwatch-geoipupdate.service", "netwatch-geoipupdate.timer"):
        found.append(Item(UNIT_DIR / name, _read(f"systemd/{name}"), Kind.CONFIG))
    found.append(Item(SHARE_DIR / "config/netwatch.yaml", _read("config/netwatch.yaml"), Kind.DATA))
    found.append(Item(SHARE_DIR / "systemd/README.md", _read("systemd/README.md"), Kind.DATA))
    found.extend(Item(SHARE_DIR / rel, _read(rel), Kind.DATA) for rel in _shared_files())
    return found


def on_disk(root: Path, target: PurePosixPath) -> Path:
    """Where ``target`` (a final path on the sensor) is written under ``root``."""
    return root / target.relative_to("/")


def digest(data: bytes) -> str:
    """The manifest's fingerprint of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """Target -> SHA-256 of what the last install wrote there (empty if none or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): v for k, v in files.items() if isinstance(v, str)}


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` in one rename (parents created 0755)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def decide(item: Item, current: bytes | None, recorded: str | None, force: bool) -> Action:
    """What to do with one item, given the file there now and what the manifest says."""
    if current is None:
        return Action.CREATED
    if current == item.content:
        return Action.UNCHANGED
    if item.kind is Kind.DATA or digest(current) == recorded:
        return Action.UPDATED
    return Action.REPLACED if force else Action.KEPT


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def install(options: Options) -> list[Done]:
    """Install every item under ``options.root``; what was done, in order."""
    command = executable(options.prefix)
    manifest_path = on_disk(options.root, MANIFEST)
    manifest = load_manifest(manifest_path)
    done: list[Done] = []
    for item in items(command):
        path = on_disk(options.root, item.target)
        action = decide(item, _current(path), manifest.get(str(item.target)), options.force)
        side = None
        if action is Action.KEPT:
            side = item.target.with_name(item.target.name + ".new")
            side_path = on_disk(options.root, side)
            if not options.dry_run and _current(side_path) != item.content:
                write_atomic(side_path, item.content)
        else:
            if not options.dry_run and action is not Action.UNCHANGED:
                write_atomic(path, item.content)
            manifest[str(item.target)] = digest(item.content)
        done.append(Done(item.target, action, side))
    body = {"command": str(command), "files": dict(sorted(manifest.items()))}
    text = (json.dumps(body, indent=1) + "\n").encode("utf-8")
    if not options.dry_run and _current(manifest_path) != text:
        write_atomic(manifest_path, text)
    return done


def describe(done: Done, dry_run: bool) -> str:
    """One line of the report."""
    verb = {
        Action.CREATED: "create" if dry_run else "created",
        Action.UPDATED: "update" if dry_run else "updated",
        Action.UNCHANGED: "unchanged",
        Action.KEPT: "keep" if dry_run else "kept",
        Action.REPLACED: "replace" if dry_run else "replaced",
    }[done.action]
    line = (
        f"{'would ' if dry_run and done.action is not Action.UNCHANGED else ''}{verb} {done.target}"
    )
    if done.action is Action.KEPT:
        line += f" (edited here; the new version {'would go' if dry_run else 'is'} in {done.side})"
    if done.action is Action.REPLACED:
        line += " (edited here; --force)"
    return line


NEXT_STEPS = """\
next:
  edit {config} (capture.interfaces, site.local_nets, sinks), then
  {command} check-config -c {config}
  systemctl daemon-reload
  systemctl enable --now netwatch.service
  systemctl enable --now netwatch-geoipupdate.timer   # with MaxMind's /etc/GeoIP.conf only
no service user or directory to create: the unit runs as DynamicUser= and systemd creates
/var/lib/netwatch and /var/log/netwatch when it starts.
"""


def run_install(options: Options, out: TextIO) -> int:
    """The ``netwatch install`` command: install, print one line per file, then what next."""
    try:
        done = install(options)
    except InstallError as exc:
        sys.stderr.write(f"netwatch: install: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        hint = " (run as root, or give --root DIR)" if isinstance(exc, PermissionError) else ""
        sys.stderr.write(f"netwatch: install: {exc.filename}: {exc.strerror}{hint}\n")
        return EXIT_USAGE
    for d in done:
        out.write(describe(d, options.dry_run) + "\n")
    command = executable(options.prefix)
    if not options.dry_run and options.root == Path("/") and not Path(str(command)).exists():
        out.write(f"warning: {command} does not exist; the unit runs it (see --prefix)\n")
    out.write(NEXT_STEPS.format(config=CONFIG, command=command))
    return EXIT_OK
