"""Owned and drop_privileges for real: every test that may change ids runs in a forked child.

The child runs the drop, reports what it observed as JSON over a pipe and leaves with
``os._exit``, so the pytest process itself stays root. Nothing of ``os`` is mocked. The test
directories live in a ``mkdtemp`` under /tmp chmodded 0o755 (pytest's own tmp_path parents
are 0o700 and cannot be traversed by ``nobody``).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import select
import shutil
import signal
import socket
import sqlite3
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from netwatch.privileges import (
    DropResult,
    Owned,
    PrivilegeError,
    check_writable_dir,
    drop_privileges,
)


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


NOBODY = _nobody()

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root"),
    pytest.mark.skipif(NOBODY is None, reason="user 'nobody' does not exist"),
]

CHILD_TIMEOUT = 10.0


def nobody() -> pwd.struct_passwd:
    assert NOBODY is not None
    return NOBODY


class ListHandler(logging.Handler):
    """Keeps (level, message, fields) of every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            {
                "level": record.levelname,
                "msg": record.getMessage(),
                "fields": getattr(record, "fields", None),
            }
        )


def child_logger() -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger("tests.privileges.child")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = ListHandler()
    logger.handlers[:] = [handler]
    return logger, handler


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` in a forked child; its return value (or its exception) as a dict."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_fd)
            try:
                out: dict[str, Any] = {"ok": True, "value": body()}
            except BaseException as exc:
                out = {
                    "ok": False,
                    "type": type(exc).__name__,
                    "error": str(exc),
                    "traceback": traceback.format_exc(),
                }
            data = json.dumps(out, default=str).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], CHILD_TIMEOUT)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"child did not finish within {CHILD_TIMEOUT} s")
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


def child_value(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    out = in_child(body)
    if not out["ok"]:
        pytest.fail(f"child raised {out['type']}: {out['error']}\n{out['traceback']}")
    value: dict[str, Any] = out["value"]
    return value


def proc_status() -> dict[str, str]:
    status: dict[str, str] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return status


def setuid0_raises() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return True
    return False


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A root-owned 0o755 directory under /tmp that ``nobody`` can traverse."""
    path = Path(tempfile.mkdtemp(prefix="netwatch-priv-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def make_dir(path: Path, mode: int = 0o700) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


def make_file(path: Path, text: str = "x\n", mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_owned_directory_records_only_the_directories_it_created(root_dir: Path) -> None:
    etc = make_dir(root_dir / "etc", 0o755)
    owned = Owned()
    old_umask = os.umask(0o077)  # the mode is exact whatever the umask
    try:
        made = owned.directory(etc / "a" / "b")
    finally:
        os.umask(old_umask)
    assert made == etc / "a" / "b"
    assert owned.paths == (etc / "a", etc / "a" / "b")
    assert [mode(p) for p in owned.paths] == [0o750, 0o750]
    assert etc not in owned and etc / "a" in owned
    assert owned.directory(etc / "a" / "b") == made  # exists now: nothing new recorded
    assert owned.directory(etc) == etc
    assert owned.paths == (etc / "a", etc / "a" / "b")
    make_file(etc / "plain")
    with pytest.raises(NotADirectoryError):
        owned.directory(etc / "plain")
    assert owned.paths == (etc / "a", etc / "a" / "b")


def test_owned_file_is_created_exclusively(root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = make_dir(root_dir / "etc", 0o755)
    existing = make_file(etc / "netwatch.yaml", "capture: {}\n", 0o644)
    secret = make_file(root_dir / "secret")
    (etc / "dangling").symlink_to(root_dir / "nowhere")
    (etc / "link").symlink_to(secret)
    owned = Owned()
    created = owned.file(etc / "logs" / "alerts.jsonl")
    db = owned.file(etc / "logs" / "outbox.sqlite", 0o600)
    for path in (existing, etc / "dangling", etc / "link"):
        assert owned.file(path) == path
    assert owned.paths == (etc / "logs", created, db)
    assert (mode(created), mode(db)) == (0o640, 0o600)
    assert created.read_bytes() == b""
    assert existing.read_text() == "capture: {}\n" and mode(existing) == 0o644
    assert not (root_dir / "nowhere").exists()  # O_EXCL: no file through a dangling link
    assert secret.read_text() == "x\n"
    with sqlite3.connect(db) as conn:  # an empty file is a new SQLite database
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    wal = owned.adopt(etc / "logs" / "outbox.sqlite-wal")
    assert owned.paths[-1] == wal
    monkeypatch.chdir(etc)
    assert Owned().file("relative.jsonl") == etc / "relative.jsonl"  # kept absolute


def test_drop_chowns_exactly_what_netwatch_created(root_dir: Path) -> None:
    """The issue's setup: ``alert_log: alerts.jsonl`` next to netwatch.yaml and its secrets."""
    etc = make_dir(root_dir / "etc", 0o755)
    config = make_file(etc / "netwatch.yaml", "alert_log: alerts.jsonl\n", 0o644)
    url = make_file(etc / "webhook-url", "http://127.0.0.1:9/\n", 0o600)
    key = make_file(etc / "tls.key", "KEY\n", 0o600)
    secret = make_file(root_dir / "secret")
    other = make_file(root_dir / "other")
    owned = Owned()
    alert_log = owned.file(etc / "alerts.jsonl")
    state = owned.directory(root_dir / "var" / "state")
    db = owned.file(state / "outbox.sqlite", 0o600)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE outbox (body TEXT)")
    conn.close()
    flows = owned.file(root_dir / "log" / "flows.jsonl")
    (state / "planted").symlink_to(secret)  # not netwatch's: left alone
    (state / "link").symlink_to(secret)
    owned.adopt(state / "link")  # recorded, but lchown never follows it
    os.link(other, state / "hard")
    owned.adopt(state / "hard")  # a hard-linked regular file is skipped with a warning
    owned.adopt(state / "gone")  # recorded and removed meanwhile (a SQLite journal)
    before = {p: (owner(p), mode(p)) for p in (etc, config, url, key, secret, other)}
    user = nobody()

    def body() -> dict[str, Any]:
        logger, handler = child_logger()
        early = sqlite3.connect(db)  # opened as root before the drop, like the daemon's outbox
        result = drop_privileges("nobody", owned, writable_dirs=[state], log=logger)
        early.execute("INSERT INTO outbox VALUES ('before')")
        early.commit()  # the rollback journal is created in the state directory
        early.close()
        late = sqlite3.connect(db)
        late.execute("INSERT INTO outbox VALUES ('after')")
        late.commit()
        rows = [r[0] for r in late.execute("SELECT body FROM outbox ORDER BY rowid")]
        late.close()
        (state / "new.txt").write_text("new\n")
        for log in (alert_log, flows):
            with log.open("a") as f:
                f.write("{}\n")
        status = proc_status()
        return {
            "result": asdict(result),
            "resuid": os.getresuid(),
            "resgid": os.getresgid(),
            "groups": os.getgroups(),
            "setuid0_raises": setuid0_raises(),
            "caps": {k: int(status[k], 16) for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb")},
            "no_new_privs": status.get("NoNewPrivs"),
            "rows": rows,
            "stdlib_readable": os.access(Path(os.__file__).parent, os.R_OK | os.X_OK),
            "logs": handler.records,
        }

    got = child_value(body)
    uid, gid = user.pw_uid, user.pw_gid
    assert got["result"] == asdict(
        DropResult(dropped=True, user="nobody", uid=uid, gid=gid, reason="dropped")
    )
    assert got["resuid"] == [uid, uid, uid]
    assert got["resgid"] == [gid, gid, gid]
    assert got["groups"] == []
    assert got["setuid0_raises"] is True
    assert got["caps"] == {"CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    assert got["no_new_privs"] == "1"
    assert got["rows"] == ["before", "after"]
    info = [r for r in got["logs"] if r["level"] == "INFO"]
    assert [r["msg"] for r in info] == [
        f"dropped privileges to user nobody (uid {uid}, gid {gid}); capture sockets stay open"
    ]
    fields = info[0]["fields"]
    assert (fields["user"], fields["uid"], fields["gid"]) == ("nobody", uid, gid)
    assert (fields["no_new_privs"], fields["bounding_set"]) == (True, 0)
    # created: var, var/state, state/outbox.sqlite, log, log/flows.jsonl, alerts.jsonl, link
    assert fields["chowned"] == 7

    for path in (alert_log, root_dir / "var", state, db, root_dir / "log", flows):
        assert owner(path) == (uid, gid), path
    assert owner(state / "link") == (uid, gid)  # the link itself
    assert owner(state / "new.txt") == (uid, gid)  # created by the user after the drop
    # everything netwatch did not create keeps its owner and mode
    assert {p: (owner(p), mode(p)) for p in before} == before
    for path in (root_dir, state / "planted", state / "hard"):
        assert owner(path) == (0, 0), path
    warnings = [r for r in got["logs"] if r["level"] == "WARNING"]
    assert warnings[0] == {
        "level": "WARNING",
        "msg": f"not chowning {state / 'hard'}: it has 2 hard links",
        "fields": {"path": str(state / "hard"), "nlink": 2},
    }
    # here the interpreter may live under /root (pyenv), unreadable by nobody: warned about
    unreadable = [r["fields"]["path"] for r in warnings[1:]]
    stdlib = str(Path(os.__file__).parent)
    assert (stdlib in unreadable) is (not got["stdlib_readable"])
    assert all("modules imported after the drop will fail" in r["msg"] for r in warnings[1:])


def refused(owned: Owned, writable: list[Path]) -> dict[str, Any]:
    """Drop in a child; the error text and whether the child is still root."""

    def body() -> dict[str, Any]:
        try:
            drop_privileges("nobody", owned, writable_dirs=writable)
        except PrivilegeError as exc:
            return {"error": str(exc), "euid": os.geteuid()}
        return {"error": "", "euid": os.geteuid()}

    return child_value(body)


def test_existing_state_dir_the_user_cannot_write_is_refused(root_dir: Path) -> None:
    state = make_dir(root_dir / "state", 0o755)  # made by an admin, not by netwatch
    owned = Owned()
    db = owned.file(state / "outbox.sqlite")
    got = refused(owned, [state])
    assert got == {
        "error": f"{state} is not writable by user nobody (mode 0755, owner uid 0): create it "
        f"for that user (install -d -o nobody -m 0750 {state}) or remove it and let "
        "netwatch create it",
        "euid": 0,
    }
    assert owner(db) == (0, 0)  # refused before anything was changed
    assert owner(state) == (0, 0)


def test_check_writable_dir_alone_for_check_config(root_dir: Path) -> None:
    state = make_dir(root_dir / "state", 0o755)
    with pytest.raises(PrivilegeError, match=re.escape(f"{state} is not writable by user nobody")):
        check_writable_dir(state, "nobody")
    check_writable_dir(root_dir / "absent", "nobody")  # netwatch will create it
    os.chown(state, nobody().pw_uid, nobody().pw_gid)
    check_writable_dir(state, "nobody")
    group = make_dir(root_dir / "group", 0o770)
    os.chown(group, 0, nobody().pw_gid)  # the user's primary group may write
    check_writable_dir(group, "nobody")
    with pytest.raises(PrivilegeError, match="no such user"):
        check_writable_dir(state, "netwatch-no-such-user")


def test_state_dir_behind_an_unsearchable_directory_is_refused(root_dir: Path) -> None:
    private = make_dir(root_dir / "private", 0o700)
    owned = Owned()
    state = owned.directory(private / "state")
    got = refused(owned, [state])
    assert got == {
        "error": f"{state} is not reachable by user nobody: {private} (mode 0700, owner uid 0) "
        f"cannot be searched; move it, or let nobody search {private} (chmod o+x {private})",
        "euid": 0,
    }
    assert owner(state) == (0, 0)


def test_state_dir_left_by_an_earlier_run_is_accepted_as_it_is(root_dir: Path) -> None:
    user = nobody()
    state = make_dir(root_dir / "state", 0o750)
    os.chown(state, user.pw_uid, user.pw_gid)
    db = make_file(state / "outbox.sqlite")
    os.chown(db, user.pw_uid, user.pw_gid)
    owned = Owned()
    owned.directory(state)
    owned.file(db)
    assert owned.paths == ()

    def body() -> dict[str, Any]:
        result = drop_privileges("nobody", owned, writable_dirs=[state])
        (state / "next.txt").write_text("x")
        return {"dropped": result.dropped}

    assert child_value(body) == {"dropped": True}
    assert owner(state / "next.txt") == (user.pw_uid, user.pw_gid)


def test_socket_opened_before_drop_keeps_working() -> None:
    payload = os.urandom(16).hex().encode()

    def body() -> dict[str, Any]:
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        try:
            capture = socket.socket(
                socket.AF_PACKET,
                socket.SOCK_RAW,
                socket.htons(0x0003),  # ETH_P_ALL
            )
            capture.bind(("lo", 0))
            kind = "AF_PACKET"
        except PermissionError:
            capture, kind = receiver, "UDP"
        capture.settimeout(2.0)
        result = drop_privileges("nobody", Owned())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(payload, receiver.getsockname())
        seen = False
        while not seen:
            seen = payload in capture.recv(65536)
        capture.close()
        receiver.close()
        return {"kind": kind, "dropped": result.dropped, "euid": os.geteuid(), "seen": seen}

    try:  # AF_PACKET needs CAP_NET_RAW (a container may lack it): then the UDP socket is used
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        kind = "AF_PACKET"
    except PermissionError:
        kind = "UDP"
    got = child_value(body)
    assert got == {"kind": kind, "dropped": True, "euid": nobody().pw_uid, "seen": True}


def test_user_none_keeps_root_with_warning(
    root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owned = Owned()
    state = owned.directory(root_dir / "state")
    caplog.set_level(logging.WARNING, logger="netwatch.privileges")
    result = drop_privileges(None, owned, writable_dirs=[state])
    assert result == DropResult(
        dropped=False, user=None, uid=0, gid=os.getegid(), reason="capture.user is null"
    )
    assert os.geteuid() == 0
    assert owner(state) == (0, 0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "capture.user is null: netwatch keeps running as root")
    ]


def test_unknown_user_raises_and_changes_nothing(root_dir: Path) -> None:
    name = "netwatch-no-such-user"
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    owned = Owned()
    state = owned.directory(root_dir / "state")
    with pytest.raises(PrivilegeError, match=re.escape(f"capture.user: no such user '{name}'")):
        drop_privileges(name, owned)
    assert os.geteuid() == 0
    assert owner(state) == (0, 0)


def test_uid0_user_is_refused(root_dir: Path) -> None:
    owned = Owned()
    state = owned.directory(root_dir / "state")
    with pytest.raises(PrivilegeError, match="has uid 0; use null"):
        drop_privileges("root", owned)
    assert owner(state) == (0, 0)


def test_shared_system_directory_is_refused() -> None:
    owned = Owned()
    owned.adopt(Path("/tmp"))  # netwatch never creates one; a wrong adopt() must not hand it over

    def body() -> dict[str, Any]:
        before = os.stat("/tmp")
        try:
            drop_privileges("nobody", owned)
        except PrivilegeError as exc:
            error = str(exc)
        else:
            error = ""
        after = os.stat("/tmp")
        return {
            "error": error,
            "euid": os.geteuid(),
            "owner_kept": (before.st_uid, before.st_gid) == (after.st_uid, after.st_gid),
        }

    got = child_value(body)
    assert got["error"].startswith("refusing to chown shared directory /tmp")
    assert got["euid"] == 0
    assert got["owner_kept"] is True


def test_not_root_does_nothing(root_dir: Path) -> None:
    user = nobody()
    owned = Owned()
    state = owned.directory(root_dir / "state", 0o755)

    def body() -> dict[str, Any]:
        os.setgroups([])
        os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
        os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
        logger, handler = child_logger()
        result = drop_privileges("nobody", owned, writable_dirs=[state], log=logger)
        return {"result": asdict(result), "logs": handler.records}

    got = child_value(body)
    uid, gid = user.pw_uid, user.pw_gid
    assert got["result"] == asdict(
        DropResult(dropped=False, user="nobody", uid=uid, gid=gid, reason="not root")
    )
    assert got["logs"] == [
        {
            "level": "INFO",
            "msg": f"running as uid {uid} (not root): nothing to drop",
            "fields": {"uid": uid, "gid": gid},
        }
    ]
    assert owner(state) == (0, 0)
    assert mode(state) == 0o755


def test_saved_root_uid_is_refused() -> None:
    user = nobody()

    def body() -> dict[str, Any]:
        os.seteuid(user.pw_uid)  # effective nobody, real and saved uid still 0
        try:
            drop_privileges("nobody", Owned())
        except PrivilegeError as exc:
            return {"error": str(exc)}
        return {"error": ""}

    got = child_value(body)
    assert "root can be regained" in got["error"]
