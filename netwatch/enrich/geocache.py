"""A cache directory of derived files kept across restarts, trusted like ssh's StrictModes.

Used for the built-in GeoIP data (``netwatch.enrich.geo``): its containers are unpacked once
per data version into files here, and later starts map those files instead of unpacking
again. This module knows nothing of what the files hold: the caller names each file (its
name carries a digest of what it was made from, so a new version gets a new name), says
how big it must be and how to write it.

Trust: the daemon often starts as root, so a file here is used only when

- the directory is a real directory (opened with ``O_NOFOLLOW``: a symlink in its place is
  refused; the folders above it are the operator's, as in ``$CACHE_DIRECTORY``, which
  systemd makes a symlink under ``DynamicUser=``), owned by the effective uid and not
  writable by group or others; a missing one is created with mode 0700;
- the file, opened ``O_NOFOLLOW | O_CLOEXEC`` relative to the directory's descriptor, is a
  regular file owned by the effective uid, not writable by group or others, of exactly the
  expected size.

Anything else raises :class:`CacheError` (one line naming the path and the reason); the
caller then does without the cache. A file of the wrong size that passes the other checks
is damaged (files appear under their final name only whole): :meth:`FileCache.lookup`
raises :class:`StaleCacheError`, and :meth:`FileCache.store` replaces it.

Writing (:meth:`FileCache.store`): into a temporary file created ``O_EXCL`` with mode 0600
(a name of its own per process, so two starts at once both work), ``fsync``, then
``os.replace`` to the final name (atomic) and an ``fsync`` of the directory; on any failure
(read-only directory, ``ENOSPC``) the temporary file is removed and :class:`CacheError`
raised. After a new file is in place, the files the caller calls stale (older versions of
the same file: only names of netwatch's own pattern) and temporary files of ours left by a
killed process (older than :data:`STALE_TEMP_S`) are removed; nothing else is touched.

Known limits: Linux/POSIX only (``dir_fd``, ``O_NOFOLLOW``); a file's content is not
checked against a digest (that would read it whole, which is what the cache saves):
damaged content of the right size is found by the reader, as damage in any database file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from netwatch.lazyre import lazy

#: The subfolder of the cache base directory (``$CACHE_DIRECTORY`` ...) netwatch's GeoIP
#: files go in.
GEOIP_SUBDIR = "geoip"
#: The folder under ``$XDG_CACHE_HOME`` or ``~/.cache``.
APP_DIR = "netwatch"
#: Temporary files of ours older than this (seconds) are a killed writer's: removed.
STALE_TEMP_S = 3600.0
#: A temporary file of ours: ``.<final name>.<pid>.<8 hex digits>.tmp``.
_TEMP_RE = lazy(r"\.(?P<name>[^/]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_WRITE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class CacheError(Exception):
    """The cache cannot be used: one line naming the path and the reason."""


class StaleCacheError(CacheError):
    """A cached file of ours has the wrong size: damaged, to be written again."""


def default_cache_dir(
    environ: Mapping[str, str] | None = None, home: Path | None = None
) -> Path | None:
    """The GeoIP cache folder when none is configured: ``$CACHE_DIRECTORY/geoip`` (set by
    systemd for ``CacheDirectory=``; the first of several), else
    ``$XDG_CACHE_HOME/netwatch/geoip`` (an absolute path only, as the XDG spec says), else
    ``~/.cache/netwatch/geoip``; None when there is no home directory either."""
    env = os.environ if environ is None else environ
    systemd = env.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd and os.path.isabs(systemd):
        return Path(systemd) / GEOIP_SUBDIR
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_DIR / GEOIP_SUBDIR
    if home is None:
        try:
            home = Path.home()
        except (KeyError, RuntimeError):  # no HOME and no passwd entry
            return None
    if not home.is_absolute() or str(home) == "/":  # e.g. a system user without a home
        return None
    return home / ".cache" / APP_DIR / GEOIP_SUBDIR


def _make_dirs(path: Path) -> None:
    """Create ``path`` and each missing folder above it with mode 0700 (``os.makedirs``
    gives the folders above the umask's mode)."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            os.mkdir(folder, 0o700)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _untrusted(info: os.stat_result, euid: int) -> str | None:
    """Why a file or directory with ``info`` is not ours to trust, or None."""
    if info.st_uid != euid:
        return f"owned by uid {info.st_uid}, not {euid}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


class FileCache:
    """One cache directory (module docstring): :meth:`open` it, :meth:`lookup` and
    :meth:`store` files in it, then :meth:`close` it (the descriptors it handed out stay
    the caller's)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dir: int | None = None
        self._euid = os.geteuid()

    def __enter__(self) -> FileCache:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the directory (created 0700, with missing parents, when absent) and check
        it; CacheError when it is not one netwatch may trust."""
        path = self.directory
        try:
            fd = os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            try:
                _make_dirs(path)
                fd = os.open(path, _DIR_FLAGS)
            except OSError as exc:
                raise CacheError(f"{path}: cannot create the cache directory: {_why(exc)}") from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                kind = (
                    "a symlink, not a cache directory" if path.is_symlink() else "not a directory"
                )
                raise CacheError(f"{path}: {kind}") from exc
            raise CacheError(f"{path}: cannot open the cache directory: {_why(exc)}") from exc
        why = _untrusted(os.fstat(fd), self._euid)
        if why is not None:
            os.close(fd)
            raise CacheError(f"{path}: cache directory {why}")
        self._dir = fd

    def close(self) -> None:
        """Close the directory (idempotent)."""
        if self._dir is not None:
            os.close(self._dir)
            self._dir = None

    def _fd(self) -> int:
        if self._dir is None:
            raise CacheError(f"{self.directory}: the cache directory is not open")
        return self._dir

    def lookup(self, name: str, size: int) -> int | None:
        """A read-only descriptor of the cached file ``name`` when it is one to trust, of
        ``size`` bytes; None when there is none; StaleCacheError when it is ours but of another
        size, CacheError when it is not one to trust."""
        path = self.directory / name
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self._fd())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CacheError(f"{path}: a symlink, not a cached file") from exc
            raise CacheError(f"{path}: cannot open: {_why(exc)}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise CacheError(f"{path}: not a regular file")
            why = _untrusted(info, self._euid)
            if why is not None:
                raise CacheError(f"{path}: {why}")
            if info.st_size != size:
                raise StaleCacheError(f"{path}: {info.st_size} bytes, not {size}")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def store(
        self,
        name: str,
        size: int,
        fill: Callable[[int], None],
        stale: Callable[[str], bool] = lambda _name: False,
    ) -> int:
        """Write ``name`` anew (``fill`` writes its content to the descriptor it is given,
        which must come to ``size`` bytes) and return a read-only descriptor of it, checked
        as :meth:`lookup` checks; then remove the files ``stale`` names (never ``name``) and
        our old temporary files. CacheError on a write failure (the temporary file removed);
        what ``fill`` raises otherwise passes through, after the same clean-up."""
        folder = self._fd()
        temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            fd = os.open(temp, _WRITE_FLAGS, 0o600, dir_fd=folder)
        except OSError as exc:
            raise CacheError(f"{self.directory / temp}: cannot create: {_why(exc)}") from exc
        try:
            try:
                fill(fd)
                written = os.fstat(fd).st_size
                if written != size:
                    where = self.directory / temp
                    raise CacheError(f"{where}: {written} bytes written, not {size}")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as exc:
            self._remove(temp)
            raise CacheError(f"{self.directory / name}: cannot write: {_why(exc)}") from exc
        except BaseException:
            self._remove(temp)
            raise
        # the rename itself on disk (some file systems refuse fsync on a directory: the
        # file is whole anyway)
        with contextlib.suppress(OSError):
            os.fsync(folder)
        self._clean(name, stale)
        opened = self.lookup(name, size)
        if opened is None:  # removed between the rename and now (another process's clean-up)
            raise CacheError(f"{self.directory / name}: vanished after writing")
        return opened

    def _remove(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self._fd())

    def remove(self, name: str) -> None:
        """Remove the cached file ``name`` (a damaged one); no error when it is gone."""
        self._remove(name)

    def _clean(self, keep: str, stale: Callable[[str], bool]) -> None:
        """Remove the files ``stale`` names and temporary files of ours older than
        ``STALE_TEMP_S`` (a writer killed midway); errors are ignored."""
        folder = self._fd()
        now = time.time()
        try:
            names = os.listdir(folder)
        except OSError:
            return
        for entry in names:
            if entry == keep:
                continue
            temp = _TEMP_RE().fullmatch(entry)
            if temp is not None and (temp["name"] == keep or stale(temp["name"])):
                try:
                    info = os.stat(entry, dir_fd=folder, follow_symlinks=False)
                except OSError:
                    continue
                if now - info.st_mtime > STALE_TEMP_S:
                    self._remove(entry)
            elif temp is None and stale(entry):
                self._remove(entry)
