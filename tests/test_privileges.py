"""drop_privileges for real: every test that may change ids runs in a forked child.

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

from netwatch.privileges import DropResult, PrivilegeError, drop_privileges


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


def test_drop_to_nobody_keeps_state_writable(root_dir: Path) -> None:
    state = make_dir(root_dir / "state")
    logs = make_dir(root_dir / "log")
    flows = make_file(logs / "flows.jsonl")
    db = state / "outbox.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE outbox (body TEXT)")
    conn.close()
    db.chmod(0o600)
    deep_dir = make_dir(state / "sub")
    deep_file = make_file(deep_dir / "deep.txt")
    secret = make_file(root_dir / "secret")
    (state / "link").symlink_to(secret)
    other = make_file(root_dir / "other")
    os.link(other, state / "hard")
    user = nobody()

    def body() -> dict[str, Any]:
        logger, handler = child_logger()
        early = sqlite3.connect(db)  # opened as root before the drop, like the daemon's outbox
        result = drop_privileges("nobody", [state, logs, flows], log=logger)
        early.execute("INSERT INTO outbox VALUES ('before')")
        early.commit()  # the rollback journal is created in the state directory
        early.close()
        late = sqlite3.connect(db)
        late.execute("INSERT INTO outbox VALUES ('after')")
        late.commit()
        rows = [r[0] for r in late.execute("SELECT body FROM outbox ORDER BY rowid")]
        late.close()
        (state / "new.txt").write_text("new\n")
        with flows.open("a") as f:
            f.write("{}\n")
        status = proc_status()
        return {
            "result": asdict(result),
            "resuid": os.getresuid(),
            "resgid": os.getresgid(),
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "setuid0_raises": setuid0_raises(),
            "cap_eff": int(status["CapEff"], 16),
            "cap_prm": int(status["CapPrm"], 16),
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
    assert (got["uid"], got["euid"], got["gid"]) == (uid, uid, gid)
    assert got["resuid"] == [uid, uid, uid]
    assert got["resgid"] == [gid, gid, gid]
    assert got["groups"] == []
    assert got["setuid0_raises"] is True
    assert got["cap_eff"] == 0
    assert got["cap_prm"] == 0
    assert got["no_new_privs"] == "1"
    assert got["rows"] == ["before", "after"]
    info = [r for r in got["logs"] if r["level"] == "INFO"]
    assert [r["msg"] for r in info] == [
        f"dropped privileges to user nobody (uid {uid}, gid {gid}); capture sockets stay open"
    ]
    assert info[0]["fields"]["user"] == "nobody"
    assert (info[0]["fields"]["uid"], info[0]["fields"]["gid"]) == (uid, gid)
    assert info[0]["fields"]["no_new_privs"] is True

    # chowned: the given paths and the entries directly inside the directories
    for path in (state, logs, flows, db, deep_dir, state / "link", state / "new.txt"):
        assert owner(path) == (uid, gid), path
    # not chowned: deeper than one level, a symlink's target, a hard-linked file
    for path in (deep_file, secret, other):
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
        result = drop_privileges("nobody", [])
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
    state = make_dir(root_dir / "state")
    caplog.set_level(logging.WARNING, logger="netwatch.privileges")
    result = drop_privileges(None, [state])
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
    state = make_dir(root_dir / "state")
    with pytest.raises(PrivilegeError, match=re.escape(f"capture.user: no such user '{name}'")):
        drop_privileges(name, [state])
    assert os.geteuid() == 0
    assert owner(state) == (0, 0)


def test_uid0_user_is_refused(root_dir: Path) -> None:
    state = make_dir(root_dir / "state")
    with pytest.raises(PrivilegeError, match="has uid 0; use null"):
        drop_privileges("root", [state])
    assert owner(state) == (0, 0)


def test_shared_system_directory_is_refused() -> None:
    def body() -> dict[str, Any]:
        before = os.stat("/tmp")
        try:
            drop_privileges("nobody", [Path("/tmp")])
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
    state = make_dir(root_dir / "state", 0o755)
    user = nobody()

    def body() -> dict[str, Any]:
        os.setgroups([])
        os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
        os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
        logger, handler = child_logger()
        result = drop_privileges("nobody", [state], log=logger)
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
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o755


def test_saved_root_uid_is_refused() -> None:
    user = nobody()

    def body() -> dict[str, Any]:
        os.seteuid(user.pw_uid)  # effective nobody, real and saved uid still 0
        try:
            drop_privileges("nobody", [])
        except PrivilegeError as exc:
            return {"error": str(exc)}
        return {"error": ""}

    got = child_value(body)
    assert "root can be regained" in got["error"]
