"""Drop root privileges once the daemon has opened everything that needs root.

Public API: :class:`Owned`, :func:`drop_privileges`, :func:`check_writable_dir` (the same
check, for ``check-config``), :class:`DropResult`, :class:`PrivilegeError`.

The daemon starts as root because AF_PACKET capture sockets (CAP_NET_RAW), promiscuous mode
and possibly a privileged metrics port need it. Once those sockets, the metrics listening
socket, the outbox / baseline SQLite files and the log files are open, it calls
:func:`drop_privileges` and parses hostile traffic as an unprivileged user from then on.

Configuration read (by the caller, handed in as arguments): ``capture.user`` (default
``"nobody"``; ``null`` keeps root) is ``user``; the files and directories netwatch creates
for ``state_dir``, ``flow_log``, ``alert_log`` and jsonl sinks are recorded in an
:class:`Owned`; ``state_dir`` is also one of ``writable_dirs``.

Ownership: netwatch hands to the user exactly what it created itself, nothing else. The
caller creates its directories and files through an :class:`Owned` record
(:meth:`Owned.directory` creates the missing directories of a path and remembers only those;
:meth:`Owned.file` creates a file with ``O_CREAT | O_EXCL`` and remembers it only when it
did not exist; :meth:`Owned.adopt` records a file netwatch just created by other means, such
as a SQLite ``-wal`` file). A config directory holding ``netwatch.yaml``, secret files or a
TLS key therefore keeps its owners even when ``alert_log: alerts.jsonl`` puts a log there.

What a drop does, as root with a user name, in this order:

1. resolve the user with :func:`pwd.getpwnam` (unknown user: :class:`PrivilegeError`; a user
   whose uid is 0 is refused too: write ``capture.user: null`` to keep root on purpose);
2. check, before changing anything: every directory netwatch created resolves to no
   well-known shared system directory (``/``, ``/tmp``, ``/var/log``, ...); every directory
   of ``writable_dirs`` that exists can be reached (searched) by the user, and, unless
   netwatch created it, written by the user (owner, group or other bits of its mode for the
   user's uid and primary gid; ACLs are not read). Otherwise :class:`PrivilegeError` with
   one line naming the directory, the user and the fix;
3. ``lchown`` exactly the paths of the :class:`Owned` record to the user's uid/gid (no
   symlink is followed; a regular file with more than one hard link is skipped with a
   warning, so a hard link planted in the state directory cannot hand over another file;
   a path gone meanwhile is skipped);
4. ``prctl(PR_SET_NO_NEW_PRIVS, 1)``, so no later ``execve`` (of a set-uid binary or one
   with file capabilities) can regain privileges. Best effort: a failing prctl is logged
   (defence in depth; the steps below are not best effort). It applies to the calling
   thread and the threads and processes it creates afterwards only, so call this before
   starting threads;
5. ``prctl(PR_CAPBSET_DROP, cap)`` for every capability 0..``/proc/sys/kernel/cap_last_cap``
   (40 when that file cannot be read; EINVAL for a number the kernel does not know is
   ignored) that ``CapBnd`` still holds: the capability bounding set becomes empty, so
   nothing this process executes can ever hold a capability again. This needs
   CAP_SETPCAP, which root has unless its own bounding set was narrowed; a failure raises
   :class:`PrivilegeError` naming the fix;
6. ``os.setgroups([])``: no supplementary groups at all. The user's own supplementary groups
   (``os.initgroups``) are deliberately not used: netwatch needs none, and groups such as
   ``adm`` or ``systemd-journal`` would only widen what a compromised parser could read;
7. ``os.setresgid(gid, gid, gid)`` then ``os.setresuid(uid, uid, uid)`` (group first: once
   the uid is dropped the gid can no longer be changed). glibc applies both to every thread
   of the process. Changing all three uids from 0 to non-zero makes the kernel clear the
   permitted, effective and ambient capability sets (unless ``SECBIT_KEEP_CAPS`` was set,
   which netwatch never does; the check below catches it anyway);
8. verify, failing closed with :class:`PrivilegeError`: the real/effective/saved uids and
   gids are the user's, there are no supplementary groups, ``os.setuid(0)`` raises
   :class:`PermissionError` (and ``os.setgid(0)`` too unless the user's group is 0), and
   ``CapPrm``, ``CapEff``, ``CapBnd`` and ``CapAmb`` in ``/proc/self/status`` are all 0
   (skipped when /proc is absent). /proc is read as bytes: decoding text could need a codec
   module the user cannot import.

Not root (``os.geteuid() != 0``, e.g. systemd ``DynamicUser=yes`` with
``AmbientCapabilities=CAP_NET_RAW``): nothing to drop; logged at INFO and returned as
``dropped=False, reason="not root"``. An effective uid other than 0 with a real or saved uid
of 0 (root could be regained with ``setuid``) raises :class:`PrivilegeError`. Root with
``user=None``: nothing is dropped, but a WARNING is logged every time. netwatch never keeps
root silently.

Threat model: packets come from the network and are hostile; decoders, flow tables and rules
run after the drop, so a parser bug gives at most the unprivileged user. Sockets and files
opened before the drop keep working, because the kernel checks permissions at open time, not
per read or write: the capture sockets keep receiving and the metrics socket keeps
accepting. A failed drop raises; it never falls back to running as root.

Known limits: what netwatch created stays the user's after exit; files left by an earlier
run are not created again, so they are not chowned again (they already belong to the user,
unless that run kept root). A log file in a directory netwatch did not create (``alert_log:
alerts.jsonl`` next to the config) is the user's, but the directory is not: after logrotate
moves it away, reopening cannot create the file again (use logrotate's ``create`` with the
user, or ``copytruncate``, or give the logs a directory of their own). Using the shared
``nobody`` user means every other ``nobody`` process can write netwatch's state too: prefer
a dedicated system user (``netwatch``). Modules imported after the drop (lazy imports in
libraries, codec lookups) must be readable by the user: an interpreter or virtualenv under
/root (mode 0700) makes them fail with ModuleNotFoundError, so the daemon imports everything
first (:func:`netwatch.preload.preload`) and a WARNING is logged when the standard library or
netwatch is unreadable after the drop. Anything that needs root later (reopening a capture
socket, binding a new privileged port, re-reading a root-only file on reload) fails after the
drop; the daemon must open such things before calling this.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pwd
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DropResult",
    "Owned",
    "PrivilegeError",
    "TargetUser",
    "check_writable_dir",
    "drop_privileges",
    "resolve_user",
]

_log = logging.getLogger(__name__)

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAP_LAST_CAP_FILE = Path("/proc/sys/kernel/cap_last_cap")
CAP_LAST_CAP_FALLBACK = 40  # CAP_CHECKPOINT_RESTORE, the highest of Linux 5.9 .. 6.x
PROC_STATUS = Path("/proc/self/status")
CAPABILITY_SETS = (b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb")
DIR_MODE = 0o750
FILE_MODE = 0o640
_SEARCH = 0o1  # x bit of one rwx triple
_WRITE_SEARCH = 0o3  # w and x bits: create and remove entries

# Directories that are never netwatch's own: handing one of them to the unprivileged user
# would be a privilege escalation of its own.
_SHARED_DIRS = frozenset(
    Path(p)
    for p in (
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/spool",
        "/var/tmp",
    )
)


class PrivilegeError(Exception):
    """Dropping privileges was impossible or could not be verified (the daemon must stop)."""


@dataclass(frozen=True, slots=True)
class DropResult:
    """The outcome of :func:`drop_privileges`.

    ``dropped`` is True only when this call switched to ``user``; ``uid`` / ``gid`` are the
    ids the process runs with afterwards; ``reason`` is ``"dropped"``, ``"not root"`` or
    ``"capture.user is null"``. ``user`` is the target user, or the current user's name when
    not root (None when it has no passwd entry).
    """

    dropped: bool
    user: str | None
    uid: int
    gid: int
    reason: str


class Owned:
    """The directories and files netwatch created, and so may hand to the unprivileged user.

    Paths are kept absolute (not resolved: a symlink stays the link) in creation order. A
    path is remembered only when this process created it: an existing directory or file is
    returned as it is and never recorded, so :func:`drop_privileges` leaves it alone.
    """

    def __init__(self) -> None:
        self._paths: dict[Path, None] = {}  # an ordered set

    @property
    def paths(self) -> tuple[Path, ...]:
        """Everything recorded, in the order it was created or adopted."""
        return tuple(self._paths)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and _absolute(path) in self._paths

    def __repr__(self) -> str:
        return f"Owned({[str(p) for p in self._paths]!r})"

    def directory(self, path: str | os.PathLike[str], mode: int = DIR_MODE) -> Path:
        """Create ``path`` and its missing parents (``mode``, umask ignored); remember those.

        An existing directory (or a symlink to one) is returned unchanged and not recorded;
        raises :class:`NotADirectoryError` when ``path`` exists and is not a directory, and
        the :class:`OSError` of a failing ``mkdir``. A directory some other process creates
        at the same moment is not recorded either.
        """
        target = _absolute(path)
        missing: list[Path] = []
        probe = target
        while not _exists(probe):
            missing.append(probe)
            probe = probe.parent
        if not missing and not target.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode)
            except FileExistsError:
                continue  # created meanwhile by someone else: not ours
            os.chmod(directory, mode)
            self._paths[directory] = None
        return target

    def file(self, path: str | os.PathLike[str], mode: int = FILE_MODE) -> Path:
        """Create an empty file (``O_CREAT | O_EXCL``, ``mode``) and remember it.

        Missing parent directories are created as by :meth:`directory`. An existing path
        (file, symlink, even a dangling one) is left alone and not recorded. SQLite opens an
        empty file as a new database, so this also suits ``outbox.sqlite``.
        """
        target = _absolute(path)
        self.directory(target.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, mode)
        except FileExistsError:
            return target
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        self._paths[target] = None
        return target

    def adopt(self, path: str | os.PathLike[str]) -> Path:
        """Record a path netwatch itself just created by other means (a SQLite ``-wal``)."""
        target = _absolute(path)
        self._paths[target] = None
        return target


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TargetUser:
    """The user a root-started daemon switches to (``capture.user``), resolved."""

    name: str
    uid: int
    gid: int


def drop_privileges(
    user: str | None,
    owned: Owned,
    *,
    writable_dirs: Sequence[Path] = (),
    log: logging.Logger | None = None,
) -> DropResult:
    """Switch from root to ``user`` after chowning ``owned.paths`` to it (see the module doc).

    Raises :class:`PrivilegeError` for an unknown user, a uid-0 user, a shared system
    directory among the created ones, a directory of ``writable_dirs`` the user cannot
    write, or a drop that failed or cannot be verified; :class:`OSError` from chown
    propagates. Nothing is changed when a check before the chown fails.
    """
    logger = log if log is not None else _log
    euid = os.geteuid()
    if euid != 0:
        return _not_root(euid, logger)
    if user is None:
        logger.warning(
            "capture.user is null: netwatch keeps running as root",
            extra={"fields": {"uid": 0}},
        )
        return DropResult(
            dropped=False, user=None, uid=0, gid=os.getegid(), reason="capture.user is null"
        )
    target = resolve_user(user)
    for path in owned.paths:
        _check_not_shared(path)
    for directory in writable_dirs:
        _check_writable(directory, owned, target)

    changed = _chown_owned(owned.paths, target, logger)
    libc = _libc(logger)
    no_new_privs = _set_no_new_privs(libc, logger)
    _clear_bounding_set(libc)
    try:
        os.setgroups([])
        os.setresgid(target.gid, target.gid, target.gid)
        os.setresuid(target.uid, target.uid, target.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to user {user!r}: {exc}") from exc
    _verify(target.uid, target.gid)
    _warn_unreadable_code(user, logger)

    logger.info(
        "dropped privileges to user %s (uid %d, gid %d); capture sockets stay open",
        user,
        target.uid,
        target.gid,
        extra={
            "fields": {
                "user": user,
                "uid": target.uid,
                "gid": target.gid,
                "groups": [],
                "chowned": changed,
                "no_new_privs": no_new_privs,
                "bounding_set": 0,
            }
        },
    )
    return DropResult(dropped=True, user=user, uid=target.uid, gid=target.gid, reason="dropped")


def _not_root(euid: int, logger: logging.Logger) -> DropResult:
    if 0 in os.getresuid():
        raise PrivilegeError(
            f"running as uid {euid} but the real or saved uid is 0 {os.getresuid()}: "
            "root can be regained; start netwatch as root or as the unprivileged user"
        )
    egid = os.getegid()
    logger.info(
        "running as uid %d (not root): nothing to drop",
        euid,
        extra={"fields": {"uid": euid, "gid": egid}},
    )
    return DropResult(dropped=False, user=_user_name(euid), uid=euid, gid=egid, reason="not root")


def resolve_user(user: str) -> TargetUser:
    """``capture.user`` resolved: PrivilegeError for an unknown user or one with uid 0."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"capture.user: no such user {user!r}") from None
    if entry.pw_uid == 0:
        raise PrivilegeError(
            f"capture.user: {user!r} has uid 0; use null to keep running as root on purpose"
        )
    return TargetUser(user, entry.pw_uid, entry.pw_gid)


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _check_not_shared(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    resolved = path.resolve()
    if resolved in _SHARED_DIRS:
        raise PrivilegeError(
            f"refusing to chown shared directory {resolved} for the unprivileged user "
            f"(from {path}); give netwatch a directory of its own"
        )


def check_writable_dir(directory: Path, user: str, owned: Owned | None = None) -> None:
    """Raise :class:`PrivilegeError` unless ``user`` will reach and write ``directory``.

    The check :func:`drop_privileges` makes for each of its ``writable_dirs`` (see the
    module doc), usable before anything is created (``check-config``): a directory that does
    not exist yet passes (netwatch creates it for the user), as does one ``owned`` records.
    """
    _check_writable(directory, owned if owned is not None else Owned(), resolve_user(user))


def _permits(st: os.stat_result, target: TargetUser, bits: int) -> bool:
    """Whether the mode grants ``bits`` (of one rwx triple) to the user (no ACLs)."""
    if st.st_uid == target.uid:
        granted = st.st_mode >> 6
    elif st.st_gid == target.gid:
        granted = st.st_mode >> 3
    else:
        granted = st.st_mode
    return granted & bits == bits


def _check_writable(directory: Path, owned: Owned, target: TargetUser) -> None:
    """The user must reach ``directory`` and, unless netwatch created it, write it."""
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return
    path = _absolute(directory).resolve()  # a symlink: the directory it leads to
    created = {p.resolve() for p in owned.paths}
    for parent in reversed(path.parents):
        if parent in created:
            continue  # chowned to the user below
        pst = os.stat(parent)
        if not _permits(pst, target, _SEARCH):
            raise PrivilegeError(
                f"{path} is not reachable by user {target.name}: {parent} (mode "
                f"{stat.S_IMODE(pst.st_mode):04o}, owner uid {pst.st_uid}) cannot be searched; "
                f"move it, or let {target.name} search {parent} (chmod o+x {parent})"
            )
    if path in created:
        return
    if not _permits(st, target, _WRITE_SEARCH):
        raise PrivilegeError(
            f"{path} is not writable by user {target.name} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}): create it for that user "
            f"(install -d -o {target.name} -m 0750 {path}) or remove it and let netwatch "
            "create it"
        )


def _chown_owned(paths: Sequence[Path], target: TargetUser, logger: logging.Logger) -> int:
    """``lchown`` each path netwatch created (skipping hard-linked files); the count."""
    changed = 0
    for path in paths:
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                logger.warning(
                    "not chowning %s: it has %d hard links",
                    path,
                    st.st_nlink,
                    extra={"fields": {"path": str(path), "nlink": st.st_nlink}},
                )
                continue
            os.chown(path, target.uid, target.gid, follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile (a SQLite journal)
            continue
        changed += 1
    return changed


# ctypes.CDLL(None): the symbols already loaded into the interpreter, libc among them.
# (ctypes.util.find_library would run ldconfig in a subprocess.)
_Libc = ctypes.CDLL


def _libc(logger: logging.Logger) -> _Libc | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError) as exc:
        logger.warning("no libc prctl in this process: %s", exc)
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc


def _prctl(libc: _Libc, option: int, arg: int) -> int:
    """``prctl(option, arg, 0, 0, 0)``: 0, or the errno of the failure."""
    if libc.prctl(option, arg, 0, 0, 0) == 0:
        return 0
    return ctypes.get_errno() or errno.EPERM


def _set_no_new_privs(libc: _Libc | None, logger: logging.Logger) -> bool:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1)``; False (logged) when unavailable."""
    if libc is None:
        logger.warning("cannot set no_new_privs: no libc prctl")
        return False
    err = _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    if err:
        logger.warning("cannot set no_new_privs: prctl failed (%s)", errno.errorcode.get(err, err))
        return False
    return True


def _cap_last_cap() -> int:
    try:
        return int(CAP_LAST_CAP_FILE.read_bytes().strip())
    except (OSError, ValueError):
        return CAP_LAST_CAP_FALLBACK


def _clear_bounding_set(libc: _Libc | None) -> None:
    """``PR_CAPBSET_DROP`` every capability still in the bounding set (all of them without
    /proc); raises PrivilegeError when one cannot be dropped."""
    if libc is None:
        raise PrivilegeError("cannot clear the capability bounding set: no libc prctl")
    bounding = _capabilities().get("CapBnd")
    for cap in range(_cap_last_cap() + 1):
        if bounding is not None and not bounding >> cap & 1:
            continue  # not in the set: nothing to drop (and no CAP_SETPCAP needed)
        err = _prctl(libc, PR_CAPBSET_DROP, cap)
        if err == errno.EINVAL:
            continue  # a capability number this kernel does not have
        if err:
            raise PrivilegeError(
                f"cannot clear capability {cap} from the bounding set: "
                f"{errno.errorcode.get(err, err)}; start netwatch as root with CAP_SETPCAP, "
                "or as the unprivileged user with only the capture capabilities "
                "(systemd: DynamicUser=yes, AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN)"
            )


def _verify(uid: int, gid: int) -> None:
    """Fail closed unless the process is ``uid``/``gid`` for good, without capabilities."""
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivilegeError(
            f"privilege drop incomplete: uids {os.getresuid()}, gids {os.getresgid()}"
        )
    if os.getgroups():
        raise PrivilegeError(f"privilege drop incomplete: groups {os.getgroups()}")
    _must_fail(os.setuid, 0, "setuid(0)")
    if gid != 0:
        _must_fail(os.setgid, 0, "setgid(0)")
    for name, value in _capabilities().items():
        if value:
            raise PrivilegeError(f"privilege drop incomplete: {name} is {value:#x}")


def _must_fail(call: Callable[[int], None], arg: int, what: str) -> None:
    try:
        call(arg)
    except PermissionError:
        return
    raise PrivilegeError(f"privilege drop failed: {what} still succeeds")


def _warn_unreadable_code(user: str, logger: logging.Logger) -> None:
    """Warn when the standard library or netwatch itself cannot be read by ``user`` now.

    Any module imported after the drop (a lazy import in a library, a codec lookup) must be
    readable by the user; an interpreter installed under /root (pyenv) is not.
    """
    for directory in (Path(os.__file__).parent, Path(__file__).parent):
        if not os.access(directory, os.R_OK | os.X_OK):
            logger.warning(
                "%s is not readable by user %s: modules imported after the drop will fail "
                "to load; install Python and netwatch where the user can read them",
                directory,
                user,
                extra={"fields": {"path": str(directory), "user": user}},
            )


def _capabilities() -> dict[str, int]:
    """CapPrm, CapEff, CapBnd and CapAmb of this process ({} without /proc)."""
    # Bytes only: after the drop a codec lookup may need an import the user cannot read.
    try:
        data = PROC_STATUS.read_bytes()
    except OSError:
        return {}
    caps: dict[str, int] = {}
    for line in data.splitlines():
        name, _, value = line.partition(b":")
        if name in CAPABILITY_SETS:
            caps[name.decode("ascii")] = int(value.strip(), 16)
    return caps
