"""The real daemon, started as root with the default ``capture.user``, from an installation
the target user cannot read (issue 9, "Privilege drop").

How it failed: ``netwatch run`` as root dropped to ``nobody`` and then exited with ``No module
named 'importlib.readers'`` when the built-in GeoIP data loaded, because the interpreter
(pyenv under /root, 0700) was unreadable by ``nobody``; and the drop chowned every entry of
the directories of ``flow_log`` / ``alert_log`` / jsonl sinks, so with a relative ``alert_log:
alerts.jsonl`` the config's own ``netwatch.yaml``, webhook secret and TLS key became
``nobody``'s.

Here: the interpreter already lives under /root (0700). netwatch and every third-party package
the daemon imports are copied into a 0700 directory put first on ``PYTHONPATH``, so neither
netwatch's code and data (seeds) nor its dependencies' code and data (the built-in GeoIP
data set, netaddr's IEEE registry) can be read by ``nobody``. The config directory holds
``netwatch.yaml``, a 0600 webhook secret, a 0600 TLS key, a 0640 metrics web config with a
bcrypt user, and gets ``alert_log: alerts.jsonl`` next to them. The daemon replays the demo
capture once (no loop), writes flows and alerts, and delivers to a webhook served here on
127.0.0.1. Expected: exit 0, every alert delivered and logged, the pre-existing files keep
owner root and their modes, and what netwatch created (state directory and its databases,
the logs, the sink's directory) belongs to ``nobody``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

import netwatch
from netwatch.alerts.grouping import members
from tests.integration.stack import clean_env, free_port
from tests.test_preload import Receiver, serving
from tests.test_privileges import NOBODY

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="starting the daemon as root needs root"),
    pytest.mark.skipif(NOBODY is None, reason="user 'nobody' does not exist"),
]

REPO = Path(__file__).resolve().parents[2]
DEMO_PCAP = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
RUN_TIMEOUT_S = 90.0
SOURCE = Path(netwatch.__file__).parent  # the netwatch under test
# What `netwatch run` loads from site-packages: listed by a fresh interpreter that preloads.
LIST_DEPENDENCIES = """
import json, sys, sysconfig
from pathlib import Path
from netwatch.preload import preload
from netwatch.pipeline import Pipeline
from netwatch.config import Config
from netwatch.enrich.geo import BUILTIN_PACKAGE
preload()
Pipeline(Config.default(), lambda r: None, on_alert=lambda a, c: None).warm_up()
import zstandard  # what unpacks the built-in GeoIP data: not imported when it is cached
site = Path(sysconfig.get_paths()["purelib"]).resolve()
tops = set()
for module in list(sys.modules.values()):
    file = getattr(module, "__file__", None)
    if file and Path(file).resolve().is_relative_to(site):
        tops.add(Path(file).resolve().relative_to(site).parts[0])
tops.add(BUILTIN_PACKAGE)  # a data package: its files are read, the package never imported
print(json.dumps({"site": str(site), "tops": sorted(tops)}))
"""
WHERE = """
import json, importlib.util, netwatch, netaddr, zstandard
print(json.dumps([netwatch.__file__, netaddr.__file__, zstandard.__file__,
                  importlib.util.find_spec("detector").origin]))
"""


def nobody() -> pwd.struct_passwd:
    assert NOBODY is not None
    return NOBODY


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def site() -> Iterator[Path]:
    """The config directory: root-owned 0o755 under /tmp, like /etc/netwatch."""
    path = Path(tempfile.mkdtemp(prefix="netwatch-privdrop-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that keeps every body it gets."""
    with serving() as server:
        yield server


def link_or_copy(source: str, target: str) -> None:
    """Hard-link a file (fast; the 0700 directory above still hides it), else copy it."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def private_install(into: Path, env: dict[str, str]) -> Path:
    """Copy netwatch and the daemon's third-party packages into a 0700 directory."""
    into.mkdir(0o700)
    into.chmod(0o700)
    lib = into / "lib"
    lib.mkdir()
    shutil.copytree(  # the seeds symlink of a checkout is copied as files
        SOURCE,
        lib / "netwatch",
        ignore=shutil.ignore_patterns("__pycache__"),
        copy_function=link_or_copy,
    )
    listed = subprocess.run(
        [sys.executable, "-c", LIST_DEPENDENCIES],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    deps = json.loads(listed.stdout)
    site_packages = Path(deps["site"])
    assert {"detector", "zstandard", "netaddr", "yaml", "prometheus_client"} <= set(deps["tops"])
    for top in deps["tops"]:
        source = site_packages / top
        if source.is_dir():
            shutil.copytree(
                source,
                lib / top,
                ignore=shutil.ignore_patterns("__pycache__"),
                copy_function=link_or_copy,
            )
        else:
            link_or_copy(str(source), str(lib / top))
    return lib


def write_site(site: Path, webhook_url: str, metrics_port: int) -> dict[str, Path]:
    """The config directory's pre-existing files (root's), by name."""
    files = {
        "netwatch.yaml": (
            f"capture:\n  files: [{DEMO_PCAP}]\n"
            f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n  web_config: web.yml\n"
            "state_dir: state\n"
            "flow_log: flows.jsonl\n"
            "alert_log: alerts.jsonl\n"
            "sinks:\n"
            "  - {name: file, type: jsonl, path: out/sink.jsonl}\n"
            "  - {name: hook, type: webhook, url_file: webhook-url}\n"
            "logging: {format: json, level: info}\n",
            0o644,
        ),
        "webhook-url": (webhook_url + "\n", 0o600),
        "tls.key": ("-----BEGIN PRIVATE KEY-----\nnot a real key\n", 0o600),
        "web.yml": (
            "basic_auth_users:\n"
            f"  scraper: {bcrypt.hashpw(b'secret', bcrypt.gensalt(4)).decode()}\n",
            0o640,
        ),
    }
    paths = {}
    for name, (text, mode) in files.items():
        path = site / name
        path.write_text(text)
        path.chmod(mode)
        paths[name] = path
    return paths


def test_root_started_daemon_runs_as_nobody_from_an_unreadable_install(
    site: Path, webhook: Receiver
) -> None:
    env = clean_env()
    env.pop("PYTHONWARNINGS", None)
    lib = private_install(site / "private", env)
    env["PYTHONPATH"] = str(lib)
    where = subprocess.run(
        [sys.executable, "-c", WHERE],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    assert all(Path(f).is_relative_to(lib) for f in json.loads(where.stdout)), where.stdout
    files = write_site(site, webhook.url, free_port())
    before = {path: owner_mode(path) for path in (site, *files.values())}

    done = subprocess.run(
        [sys.executable, "-m", "netwatch", "run", "-c", str(files["netwatch.yaml"])],
        check=False,
        cwd=site,  # not the checkout: only the private copy is importable
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    log = done.stderr + done.stdout
    assert done.returncode == 0, log[-4000:]
    for failure in ("Traceback", "No module named", "Permission denied"):
        assert failure not in log, log[-4000:]
    assert "dropped privileges to user nobody" in log

    notes = [json.loads(line) for line in (site / "alerts.jsonl").read_text().splitlines()]
    assert notes, log[-4000:]
    sunk = [json.loads(line) for line in (site / "out" / "sink.jsonl").read_text().splitlines()]
    assert len(sunk) == len(notes)
    logged = [report for n in notes for report in members(n)]  # one webhook alert each
    delivered = [a for body in webhook.bodies for a in body["alerts"]]
    firing = [a for a in delivered if a["status"] == "firing"]
    assert len(firing) == len(logged)
    # capture files read to their end: every incident ended, the webhook heard of it
    incidents = {(r["rule"], r["device"], r["reached"]) for r in logged}
    assert len(delivered) - len(firing) == len(incidents)
    assert {a["labels"]["alertname"] for a in delivered} == {r["rule"] for r in logged}
    assert (site / "flows.jsonl").read_text().count("\n") > 0

    # nothing netwatch did not create changed owner or mode
    assert {path: owner_mode(path) for path in before} == before
    # what netwatch created belongs to nobody
    user = nobody()
    created = [site / "state", site / "alerts.jsonl", site / "flows.jsonl", site / "out"]
    created += [p for p in (site / "state").iterdir() if p.suffix == ".sqlite"]
    created.append(site / "out" / "sink.jsonl")
    assert {p.name for p in created} >= {"outbox.sqlite", "baseline.sqlite"}
    for path in created:
        assert owner_mode(path)[:2] == (user.pw_uid, user.pw_gid), path
