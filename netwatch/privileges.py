"""Drop root privileges once the daemon has opened everything that needs root.

Public API: :func:`drop_privileges`, :class:`DropResult`, :class:`PrivilegeError`.

The daemon starts as root because AF_PACKET capture sockets (CAP_NET_RAW), promiscuous mode
and possibly a privileged metrics port need it. Once those sockets, the metrics listening
socket, the outbox / baseline SQLite files and the log files are open, it calls
:func:`drop_privileges` and parses hostile traffic as an unprivileged user from then on.

Configuration read (by the caller, handed in as arguments): ``capture.user`` (default
``"nobody"``; ``null`` keeps root) is ``user``; ``state_dir`` and the directories of
``flow_log`` and ``alert_log`` (and optionally the files themselves) are ``writable``.

What a drop does, as root with a user name, in this order:

1. resolve the user with :func:`pwd.getpwnam` (unknown user: :class:`PrivilegeError`; a user
   whose uid is 0 is refused too: write ``capture.user: null`` to keep root on purpose);
2. ``chown`` every existing path of ``writable`` to the user's uid/gid, and for a directory
   the entries directly inside it (one level, not recursive), so the daemon can keep
   writing: SQLite creates ``-journal`` / ``-wal`` files next to its database, log rotation
   creates new files. Entries inside a directory are changed without following symlinks,
   and a regular file with more than one hard link is skipped with a warning (a hard link
   planted in the state directory must not hand another file to the user). The top-level
   paths are trusted (root configured them) and may be symlinks; well-known shared system
   directories (``/``, ``/tmp``, ``/var/log``, ``/var/lib``, ...) are refused with
   :class:`PrivilegeError` instead of being handed over;
3. ``prctl(PR_SET_NO_NEW_PRIVS, 1)`` through ctypes libc, so no later ``execve`` (of a
   set-uid binary or one with file capabilities) can regain privileges. Best effort: a
   missing libc or a failing prctl is logged and ignored (it is defence in depth; the
   setuid steps below are not best effort). It applies to the calling thread and the
   threads and processes it creates afterwards only, so call this before starting threads;
4. ``os.setgroups([])``: no supplementary groups at all. The user's own supplementary groups
   (``os.initgroups``) are deliberately not used: netwatch needs none, and groups such as
   ``adm`` or ``systemd-journal`` would only widen what a compromised parser could read;
5. ``os.setresgid(gid, gid, gid)`` then ``os.setresuid(uid, uid, uid)`` (group first: once
   the uid is dropped the gid can no longer be changed). glibc applies both to every thread
   of the process. Changing all three uids from 0 to non-zero makes the kernel clear the
   permitted, effective and ambient capability sets (unless ``SECBIT_KEEP_CAPS`` was set,
   which netwatch never does; the check below catches it anyway);
6. verify, failing closed with :class:`PrivilegeError`: the real/effective/saved uids and
   gids are the user's, there are no supplementary groups, ``os.setuid(0)`` raises
   :class:`PermissionError` (and ``os.setgid(0)`` too unless the user's group is 0), and
   ``CapPrm`` / ``CapEff`` in ``/proc/self/status`` are 0 (skipped when /proc is absent).

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

Known limits: the chown hands netwatch's own directories (and the files already in them,
including the SQLite outbox / baseline databases and log files created as root before the
drop) to the user, and leaves them so after exit; the next start as root works again since
root can write anything. Using the shared ``nobody`` user means every other ``nobody``
process can write netwatch's state too: prefer a dedicated system user (``netwatch``).
Subdirectories deeper than one level are not changed. Modules imported after the drop
(lazy imports in libraries, codec lookups) must be readable by the user: an interpreter or
virtualenv under /root (mode 0700) makes them fail with ModuleNotFoundError, so import
everything before the drop and install where the user can read (a WARNING is logged when the
standard library or netwatch is unreadable after the drop). Anything that needs root later
(reopening a capture socket, binding a new privileged port, re-reading a root-only file on
reload) fails after the drop; the daemon must open such things before calling this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import pwd
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DropResult", "PrivilegeError", "drop_privileges"]

_log = logging.getLogger(__name__)

PR_SET_NO_NEW_PRIVS = 38

# Directories that are never netwatch's own: handing one of them to the unprivileged user
# would be a privilege escalation of its own (a log path such as /var/log/flows.jsonl makes
# the caller pass /var/log as the "log directory").
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


def drop_privileges(
    user: str | None,
    writable: Sequence[Path],
    *,
    log: logging.Logger | None = None,
) -> DropResult:
    """Switch from root to ``user`` after chowning ``writable`` to it (see the module doc).

    Raises :class:`PrivilegeError` for an unknown user, a uid-0 user, a shared system
    directory in ``writable``, or a drop that failed or cannot be verified; :class:`OSError`
    from chown propagates. Nothing is changed when the user cannot be resolved.
    """
    logger = log if log is not None else _log
    euid = os.geteuid()
    if euid != 0:
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
        return DropResult(
            dropped=False, user=_user_name(euid), uid=euid, gid=egid, reason="not root"
        )
    if user is None:
        logger.warning(
            "capture.user is null: netwatch keeps running as root",
            extra={"fields": {"uid": 0}},
        )
        return DropResult(
            dropped=False, user=None, uid=0, gid=os.getegid(), reason="capture.user is null"
        )

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"capture.user: no such user {user!r}") from None
    uid, gid = entry.pw_uid, entry.pw_gid
    if uid == 0:
        raise PrivilegeError(
            f"capture.user: {user!r} has uid 0; use null to keep running as root on purpose"
        )
    for path in writable:
        _check_not_shared(path)

    changed = _chown_all(writable, uid, gid, logger)
    no_new_privs = _set_no_new_privs(logger)
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to user {user!r}: {exc}") from exc
    _verify(uid, gid)
    _warn_unreadable_code(user, logger)

    logger.info(
        "dropped privileges to user %s (uid %d, gid %d); capture sockets stay open",
        user,
        uid,
        gid,
        extra={
            "fields": {
                "user": user,
                "uid": uid,
                "gid": gid,
                "groups": [],
                "chowned": changed,
                "no_new_privs": no_new_privs,
            }
        },
    )
    return DropResult(dropped=True, user=user, uid=uid, gid=gid, reason="dropped")


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _check_not_shared(path: Path) -> None:
    try:
        resolved = path.resolve()
    except OSError:
        resolved = path.absolute()
    if resolved in _SHARED_DIRS:
        raise PrivilegeError(
            f"refusing to chown shared directory {resolved} for the unprivileged user "
            f"(from {path}); give netwatch a directory of its own"
        )


def _chown_all(writable: Sequence[Path], uid: int, gid: int, logger: logging.Logger) -> int:
    """Chown each existing path and the entries directly in each directory; the count."""
    changed = 0
    for path in writable:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        os.chown(path, uid, gid)
        changed += 1
        if stat.S_ISDIR(st.st_mode):
            for entry in _entries(path):
                if _chown_entry(entry, uid, gid, logger):
                    changed += 1
    return changed


def _entries(directory: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        yield from it


def _chown_entry(entry: os.DirEntry[str], uid: int, gid: int, logger: logging.Logger) -> bool:
    try:
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            logger.warning(
                "not chowning %s: it has %d hard links",
                entry.path,
                st.st_nlink,
                extra={"fields": {"path": entry.path, "nlink": st.st_nlink}},
            )
            return False
        os.chown(entry.path, uid, gid, follow_symlinks=False)
    except FileNotFoundError:  # removed meanwhile
        return False
    return True


def _set_no_new_privs(logger: logging.Logger) -> bool:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)``; False (logged) when unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError) as exc:
        logger.warning("cannot set no_new_privs: no libc prctl (%s)", exc)
        return False
    prctl.restype = ctypes.c_int
    zero = ctypes.c_ulong(0)
    if prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), zero, zero, zero) != 0:
        err = ctypes.get_errno()
        logger.warning(
            "cannot set no_new_privs: prctl failed (%s)", errno.errorcode.get(err, str(err))
        )
        return False
    return True


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
    """CapPrm and CapEff of this process from /proc/self/status ({} without /proc)."""
    # Bytes only: after the drop a codec lookup may need an import the user cannot read.
    try:
        data = Path("/proc/self/status").read_bytes()
    except OSError:
        return {}
    caps: dict[str, int] = {}
    for line in data.splitlines():
        name, _, value = line.partition(b":")
        if name in (b"CapPrm", b"CapEff"):
            caps[name.decode()] = int(value.strip(), 16)
    return caps
