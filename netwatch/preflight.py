"""Every check ``netwatch run`` makes before it opens a socket, as one side-effect-free step.

:func:`preflight` takes a loaded :class:`~netwatch.config.Config` and either returns a
:class:`Plan` (what was built on the way: sinks with their secrets read, the ring settings
with the compiled BPF filter, the metrics web config, the GeoIP backend loaded, the seeds,
the user to drop to, and the warnings to log) or raises the exception ``run`` fails with.
The daemon builds itself from the plan, and ``netwatch check-config`` runs the very same
function, so the two can never disagree about a config. :func:`failure_line` turns each of
:data:`FAILURES` into the one line both print (exit status 2).

Checks, in this order (the first failure ends the run):

1. capture: a source exists (``capture.files`` or ``capture.interfaces``); each file opens
   as a capture file; for ``method: afpacket`` each interface exists and ``capture.bpf``
   compiles (no socket is opened); ``method: tshark`` needs the pyshark package;
2. sinks: ``build_sinks`` builds every sink, reading each secret (an unset or empty
   ``*_env``, an unreadable or empty ``*_file``);
3. metrics: the web config's TLS key file is not readable by others (a symlink warns), and
   the web config loads (TLS certificate and key, bcrypt for basic auth);
4. privileges: started as root, ``capture.user`` resolves to a non-root user (``null``
   warns that root is kept), and an existing ``state_dir`` is one that user can write
   (netwatch never takes over a directory it did not create);
5. files: ``state_dir`` and the directories of ``flow_log``, ``alert_log`` and every jsonl
   sink's ``path`` exist or can be created, and are writable (checked with ``access(2)``,
   never by creating anything; an existing log file must be writable and not a directory);
6. seeds: the signature seeds load;
7. GeoIP: the databases (or the built-in data set) load; data older than
   ``geoip.max_age_days`` adds a warning.

Side effects: none outside the process but the GeoIP cache (``geoip.cache``: the built-in
data unpacked into the cache folder when it is not there yet, as any start does). Files
are opened for reading only (capture files, secrets, seeds, GeoIP, TLS material) and
closed; nothing else is created, written, chowned or bound. ``reload=True`` is for
SIGHUP: it skips what only a restart applies (capture, metrics, privileges, files) and
re-checks sinks and seeds; GeoIP databases are re-opened by ``Pipeline.reconfigure``,
which keeps the built-in data set it already holds.

Config read: ``capture.*``, ``sinks``, ``metrics.web_config``, ``state_dir``, ``flow_log``,
``alert_log``, ``geoip.*``; the warnings of ``Config.warnings``.

Known limits: run as a user other than the daemon's (``check-config`` as an admin for a
daemon started by systemd as root), the checks see that user's permissions and
environment: secrets in the unit's ``Environment=``, root-only files and ``capture.user``
(checked only as root) are checked as they stand for the caller.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from yaml.nodes import ScalarNode

from netwatch.capture.afpacket import RingError, RingSettings
from netwatch.capture.bpf import BpfError
from netwatch.capture.files import CaptureError, open_capture
from netwatch.capture.live import ring_settings
from netwatch.config import Config, ConfigError
from netwatch.config.loader import child, compose, line_of
from netwatch.config.values import secret_problem, symlink_note
from netwatch.enrich.geo import GeoBackend, GeoDatabaseError, GeoSourceInfo, age_warning
from netwatch.metrics.server import WebConfig, WebConfigError, load_web_config
from netwatch.pipeline import geo_backend
from netwatch.privileges import PrivilegeError, TargetUser, check_writable_dir, resolve_user
from netwatch.signatures.match import SignatureMatcher
from netwatch.sinks import build_sinks
from netwatch.sinks.base import Sink, SinkError

WEB_KEY_PATH = ("tls_server_config", "key_file")


class UsageError(Exception):
    """The config asks for something this sensor cannot do (exit 2)."""


FAILURES: tuple[type[Exception], ...] = (
    ConfigError,
    CaptureError,
    GeoDatabaseError,
    UsageError,
    SinkError,
    WebConfigError,
    BpfError,
    PrivilegeError,
    OSError,  # RingError is one
)
"""What :func:`preflight` (and so ``run``) raises for a config that cannot run."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What preflight built: the daemon uses these instead of building them again."""

    cfg: Config
    sinks: tuple[Sink, ...]
    """Every sink of ``cfg.sinks``, in order, secrets read, Alertmanager life cycle set."""
    ring: RingSettings | None
    """Live ``afpacket`` capture: the ring settings with the compiled filter; else None."""
    web: WebConfig | None
    """The loaded ``metrics.web_config``; None without one (or when reloading)."""
    user: TargetUser | None
    """Started as root with ``capture.user`` set: whom to drop to; else None."""
    geo: GeoBackend | None
    """The GeoIP backend, loaded; None when reloading (the pipeline re-opens database
    files itself and keeps the built-in data set it already holds)."""
    geo_info: GeoSourceInfo | None
    signatures: SignatureMatcher
    warnings: tuple[str, ...]
    """One line each, for the log (``check-config`` prints them)."""

    def close(self) -> None:
        """Release what the sinks hold (``check-config`` builds them only to check)."""
        for sink in self.sinks:
            sink.close()


def preflight(
    cfg: Config,
    *,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
    today: date | None = None,
    reload: bool = False,
    sink_options: Mapping[str, Any] | None = None,
) -> Plan:
    """Run every check of ``netwatch run`` short of opening sockets (module docstring).

    ``environ`` (default ``os.environ``) is where sinks read ``*_env`` secrets; ``euid``
    (default ``os.geteuid()``) decides whether ``capture.user`` matters; ``sink_options``
    are passed to :func:`~netwatch.sinks.build_sinks`. Raises one of :data:`FAILURES`.
    """
    env = os.environ if environ is None else environ
    warnings = [str(w) for w in cfg.warnings]
    ring = None if reload else check_capture(cfg)
    sinks = build_checked_sinks(cfg, env, sink_options or {})
    web = None
    user = None
    if not reload:
        web = check_web_config(cfg.metrics.web_config, warnings)
        user = target_user(cfg.capture.user, os.geteuid() if euid is None else euid, warnings)
        check_writable(cfg)
        if user is not None:  # the dropped user must write an existing state directory
            check_writable_dir(cfg.state_dir, user.name)
    signatures = SignatureMatcher.load()
    geo, info = None, None
    if not reload:
        geo = geo_backend(cfg)
        info = geo.describe()
        old = age_warning(info, today or date.today(), cfg.geoip.max_age_days)
        if old:
            warnings.append(old)
    return Plan(
        cfg=cfg,
        sinks=tuple(sinks),
        ring=ring,
        web=web,
        user=user,
        geo=geo,
        geo_info=info,
        signatures=signatures,
        warnings=tuple(warnings),
    )


def failure_line(exc: BaseException) -> str:
    """The one line (without the ``netwatch: `` prefix) that ``run`` and ``check-config``
    print for one of :data:`FAILURES`."""
    if isinstance(exc, RingError):
        return f"capture: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


# ---------------------------------------------------------------- capture


def check_capture(cfg: Config) -> RingSettings | None:
    """A source exists and opens; the ring settings of a live ``afpacket`` capture."""
    c = cfg.capture
    if not c.files and not c.interfaces:
        raise UsageError("capture: nothing to read (set capture.interfaces or capture.files)")
    if c.files:
        for path in c.files:
            open_capture(path).close()
        return None
    if c.method == "tshark":
        if importlib.util.find_spec("pyshark") is None:
            raise UsageError("capture.method: tshark needs the pyshark package (not installed)")
        return None
    return ring_settings(cfg)


# ---------------------------------------------------------------- sinks and metrics


def build_checked_sinks(
    cfg: Config, environ: Mapping[str, str], options: Mapping[str, Any]
) -> list[Sink]:
    """Every sink built (secrets read: SinkError), with the ``alerts:`` settings it uses
    (the dashboard link; the Alertmanager life cycle)."""
    sinks = build_sinks(cfg.sinks, environ=environ, **options)
    for sink in sinks:
        sink.use_alerts(cfg.alerts)
    return sinks


def check_web_config(path: Path | None, warnings: list[str]) -> WebConfig | None:
    """The metrics web config loaded, after its TLS key file passed the secret check."""
    if path is None:
        return None
    key = web_key_file(path)
    if key is not None:
        file, line = key
        problem = secret_problem(file)
        if problem is not None:
            raise ConfigError(str(path), line, ".".join(WEB_KEY_PATH), problem)
        note = symlink_note(file)
        if note is not None:
            warnings.append(f"{path}:{line}: {'.'.join(WEB_KEY_PATH)}: {note}")
    return load_web_config(path)


def web_key_file(path: Path) -> tuple[Path, int] | None:
    """The TLS key file a web config names (resolved against its directory) and its line;
    None when there is none or the file cannot be parsed (``load_web_config`` says why)."""
    try:
        node = compose(path.read_bytes(), str(path))
    except (OSError, ConfigError):
        return None
    tls = child(node, WEB_KEY_PATH[0]) if node is not None else None
    value = child(tls, WEB_KEY_PATH[1]) if tls is not None else None
    if not isinstance(value, ScalarNode) or not value.value:
        return None
    file = path.parent / str(value.value)
    return (file, line_of(value)) if file.exists() else None


# ---------------------------------------------------------------- privileges and files


def target_user(user: str | None, euid: int, warnings: list[str]) -> TargetUser | None:
    """Whom a root-started daemon drops to (PrivilegeError as ``drop_privileges`` raises)."""
    if euid != 0:
        return None
    if user is None:
        warnings.append("capture.user is null: netwatch keeps running as root")
        return None
    return resolve_user(user)


def check_writable(cfg: Config) -> None:
    """``state_dir`` and every log file's directory can be created and written."""
    check_dir(cfg.state_dir, "state_dir")
    logs = [("flow_log", cfg.flow_log), ("alert_log", cfg.alert_log)]
    logs += [(f"sinks[{i}].path", s.path) for i, s in enumerate(cfg.sinks) if s.type == "jsonl"]
    for key, file in logs:
        if file is not None:
            check_file(file, key)


def check_dir(path: Path, key: str) -> None:
    """``path`` is a writable directory, or its nearest existing ancestor is one."""
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{key}: cannot create {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write to" if existing == path else "create"
        raise UsageError(f"{key}: cannot {what} {path}: {existing} is not writable")


def check_file(path: Path, key: str) -> None:
    """An existing ``path`` is a writable file; a new one can be created."""
    if os.path.lexists(path):
        if path.is_dir():
            raise UsageError(f"{key}: {path} is a directory")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{key}: {path} is not writable")
        return
    check_dir(path.parent, key)
