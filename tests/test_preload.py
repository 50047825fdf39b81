"""preload() covers what the daemon imports after the privilege drop.

The harness runs in a fresh interpreter (a forked pytest would inherit every module pytest
imported and hide a missing one): as root it preloads, builds the pipeline and the sinks from
a real config, warms up, drops to ``nobody`` with :class:`~netwatch.privileges.Owned`, then
replays the demo capture and delivers every alert to a jsonl file and to a webhook served
here on 127.0.0.1. Here the interpreter lives under /root (0700), so any module or codec the
run needs after the drop and did not load before fails as it did in the field; the harness
also reports every module that entered ``sys.modules`` after the drop (there must be none).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

import netwatch
from netwatch.preload import (
    CODECS,
    OPTIONAL_MODULES,
    QUIC_CRYPTO,
    RUNTIME_MODULES,
    SKIPPED_PREFIXES,
    netwatch_modules,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_PCAP = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
CHILD_TIMEOUT_S = 60.0


def _has_nobody() -> bool:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return True


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not _has_nobody(),
    reason="dropping privileges needs root and a user 'nobody'",
)

# Runs in a fresh interpreter as root; prints one JSON object on stdout.
HARNESS = """
import json
import sys
from pathlib import Path

args = json.loads(sys.argv[1])
if args["preload"]:
    from netwatch.preload import preload

    preload()
from netwatch.alerts.grouping import members
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.pipeline import Pipeline
from netwatch.privileges import Owned, drop_privileges
from netwatch.sinks import build_sinks

cfg = Config.load(Path(args["config"]))
owned = Owned()
owned.directory(cfg.state_dir)
for sink in cfg.sinks:
    if sink.path is not None:
        owned.file(sink.path)
sinks = build_sinks(cfg.sinks)  # reads the root-only webhook secret
alerts = []
flows = []
pipeline = Pipeline(
    cfg, flows.append, on_alert=lambda alert, count: alerts.append(alert.record(count))
)
pipeline.warm_up()
capture = open_capture(Path(args["pcap"]))
loaded = set(sys.modules)
result = drop_privileges(cfg.capture.user, owned, writable_dirs=[cfg.state_dir])
out = {"dropped": result.dropped, "user": result.user}
try:
    pipeline.run_capture(capture)
    pipeline.finish()
    out["deliveries"] = {s.name: [s.send(alerts).ok, s.send(alerts[:1]).ok] for s in sinks}
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
out["flows"] = len(flows)
out["alerts"] = len(alerts)
out["reports"] = [len(list(members(a))) for a in alerts]  # the webhook posts one alert each
out["imported_after_drop"] = sorted(set(sys.modules) - loaded)
print(json.dumps(out))
"""


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it gets."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving() -> Iterator[Receiver]:
    """A :class:`Receiver` serving from a thread while the block runs."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


@pytest.fixture
def site() -> Iterator[Path]:
    """A root-owned 0o755 directory under /tmp (pytest's tmp_path is not searchable by nobody)."""
    path = Path(tempfile.mkdtemp(prefix="netwatch-preload-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_netwatch_modules_are_every_module_of_the_package() -> None:
    root = Path(netwatch.__file__).parent
    on_disk = set()
    for where, dirs, files in os.walk(root):  # packages only: seeds/ is data (and a script)
        dirs[:] = [d for d in dirs if (Path(where) / d / "__init__.py").is_file()]
        for name in files:
            # Python sources, and compiled extensions (netwatch._core, when built)
            suffix = next((s for s in (".py", *EXTENSION_SUFFIXES) if name.endswith(s)), None)
            if suffix is not None:
                parts = (Path(where) / name[: -len(suffix)]).relative_to(root.parent).parts
                on_disk.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    skipped = {m for m in on_disk for p in SKIPPED_PREFIXES if m == p or m.startswith(p + ".")}
    assert skipped >= {"netwatch.__main__", "netwatch.testing", "netwatch.testing.pcapgen"}
    wanted = on_disk - skipped - {"netwatch"}
    assert set(netwatch_modules()) == wanted - OPTIONAL_MODULES
    assert set(netwatch_modules(optional=True)) == wanted
    assert "netwatch.daemon" in wanted and "netwatch.sinks.webhook" in wanted


def test_preload_in_a_fresh_interpreter() -> None:
    probe = (
        "import codecs, json, sys\n"
        "from netwatch.preload import preload\n"
        "first = preload()\n"
        "print(json.dumps({'first': first, 'again': preload(), 'modules': sorted(sys.modules),"
        " 'codecs': [codecs.lookup(c).name for c in sys.argv[1:]]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *CODECS],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    got = json.loads(done.stdout)
    modules = set(got["modules"])
    assert got["first"] > 100 and got["again"] == 0
    assert set(netwatch_modules()) <= modules
    assert set(RUNTIME_MODULES) <= modules
    assert {"encodings.idna", "encodings.utf_8_sig", "stringprep", "unicodedata"} <= modules
    # not loaded: test helpers, the command line's __main__, pyshark (only for tshark)
    assert not {"netwatch.testing", "netwatch.__main__", "pyshark"} & modules
    assert not OPTIONAL_MODULES & modules
    assert got["codecs"] == ["idna", "utf-8-sig", "utf-8", "iso8859-1", "ascii"]


# The QUIC parser imports its crypto when it first decrypts an Initial (a junk one here):
# after QUIC_CRYPTO is imported, that import loads nothing more.
QUIC_PROBE = """
import sys
from netwatch.deep.quic import LongHeader, client_initial_keys, decrypt_initial
from netwatch.preload import QUIC_CRYPTO
lazy = set(QUIC_CRYPTO) & set(sys.modules)
for name in QUIC_CRYPTO:
    __import__(name)
before = set(sys.modules)
keys = client_initial_keys(bytes(8), 1)
packet = bytes(64)
print(sorted(lazy), decrypt_initial(packet, LongHeader(0, 1, 0, bytes(8), 18, 64), keys))
print(sorted(set(sys.modules) - before))
"""


def test_quic_crypto_is_what_the_quic_parser_imports_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUIC_PROBE],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    # not imported with the parser (start-up), and nothing beyond the list when decrypting
    assert done.stdout.splitlines() == ["[] None", "[]"]
    assert set(QUIC_CRYPTO) <= set(RUNTIME_MODULES)


# With the compiled walk, the built-in GeoIP data is read without maxminddb; maxminddb is
# imported for a text lookup (or a configured file's probe): after RUNTIME_MODULES is
# imported, that loads nothing more.
GEO_PROBE = """
import sys
from netwatch.enrich.geo import BuiltinGeo
from netwatch.preload import RUNTIME_MODULES
geo = BuiltinGeo()
geo.load()
lazy = "maxminddb" in sys.modules
for name in RUNTIME_MODULES:
    __import__(name)
before = set(sys.modules)
print(lazy, geo._geo._sources()[1].get("8.8.8.8")["autonomous_system_number"])
print(sorted(set(sys.modules) - before))
"""


def test_maxminddb_is_preloaded_for_lookups_after_the_drop() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GEO_PROBE],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "[]"
    lazy = done.stdout.splitlines()[0]
    walk = os.environ.get("NETWATCH_PURE") != "1" and find_spec("netwatch._mmdb") is not None
    assert lazy == ("False 15169" if walk else "True 15169")


def run_harness(site: Path, receiver: Receiver, *, preload: bool) -> dict[str, Any]:
    config = site / "netwatch.yaml"
    config.write_text(
        "capture: {user: nobody}\n"
        "state_dir: state\n"
        "sinks:\n"
        "  - {name: log, type: jsonl, path: alerts.jsonl}\n"
        "  - {name: hook, type: webhook, url_file: webhook-url}\n"
    )
    config.chmod(0o644)
    secret = site / "webhook-url"
    secret.write_text(receiver.url + "\n")
    secret.chmod(0o600)
    script = site / "harness.py"
    script.write_text(HARNESS)
    args = {"preload": preload, "config": str(config), "pcap": str(DEMO_PCAP)}
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@needs_root
def test_harness_runs_as_nobody_after_preload(site: Path, receiver: Receiver) -> None:
    got = run_harness(site, receiver, preload=True)
    assert "error" not in got, got["error"]
    assert (got["dropped"], got["user"]) == (True, "nobody")
    assert got["imported_after_drop"] == []
    assert got["flows"] > 0 and got["alerts"] > 0
    assert got["deliveries"] == {"log": [True, True], "hook": [True, True]}
    delivered = [a["labels"]["alertname"] for body in receiver.bodies for a in body["alerts"]]
    assert len(delivered) == sum(got["reports"]) + got["reports"][0]
    lines = (site / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == got["alerts"] + 1
    uid = pwd.getpwnam("nobody").pw_uid
    assert (site / "alerts.jsonl").stat().st_uid == uid
    assert (site / "state").stat().st_uid == uid
    for name in ("netwatch.yaml", "webhook-url", "harness.py", "."):
        assert (site / name).stat().st_uid == 0, name


@needs_root
def test_harness_without_preload_fails_after_the_drop(site: Path, receiver: Receiver) -> None:
    """The same run without preload(): the webhook needs the idna codec after the drop."""
    got = run_harness(site, receiver, preload=False)
    assert got["dropped"] is True
    # with the standard library unreadable by nobody (here: under /root) the codec lookup
    # fails; where it is readable, the import succeeds but happens after the drop
    stdlib_private = not _readable_by_nobody(Path(os.__file__).parent)
    if stdlib_private:
        assert got.get("error") == "LookupError: unknown encoding: idna"
    else:
        assert "encodings.idna" in got["imported_after_drop"]


def _readable_by_nobody(directory: Path) -> bool:
    nobody = pwd.getpwnam("nobody")
    for path in (directory, *directory.parents):
        st = path.stat()
        bits = st.st_mode if st.st_uid != nobody.pw_uid else st.st_mode >> 6
        if not bits & 0o1:
            return False
    return True
