"""The seed files parsed ahead of time (netwatch.seedstore): used only when exactly right."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netwatch import seedstore
from netwatch.detect.resolvers import load_public_resolvers
from netwatch.signatures import Signatures, loader
from netwatch.signatures.model import ENDPOINTS_FILE, OUI_FILE, load_endpoints, load_ouis

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The store read again on the next load, and the counters from zero."""
    monkeypatch.setattr(seedstore, "_entries", None)
    monkeypatch.setattr(seedstore, "_values", {})
    monkeypatch.setattr(seedstore, "stats", {"hits": 0, "misses": 0})
    yield


def test_the_store_is_up_to_date() -> None:
    """After a seed file or a seed class changed: ``python -m netwatch.seedstore``."""
    assert seedstore.stale() == []


START = """
import json, sys
from netwatch import seedstore
from netwatch.detect.resolvers import public_resolver_table
from netwatch.signatures.lan import discovery_seed, lan_matcher
from netwatch.signatures.match import SignatureMatcher
SignatureMatcher.load()
lan_matcher()
discovery_seed("hik-sadp-v2")
public_resolver_table()
print(json.dumps(seedstore.stats))
"""


def test_a_start_parses_no_seed_file() -> None:
    done = subprocess.run(
        [sys.executable, "-c", START], capture_output=True, text=True, check=True, cwd=REPO
    )
    stats = json.loads(done.stdout)
    assert stats["misses"] == 0 and stats["hits"] >= 6


def test_a_hit_equals_what_parsing_gives(fresh: None) -> None:
    stored = Signatures.load()
    assert seedstore.stats == {"hits": 5, "misses": 0}
    assert seedstore.STORE.is_file()
    seedstore._entries, seedstore._values = {}, {}  # nothing stored: everything parsed
    parsed = Signatures.load()
    assert seedstore.stats["misses"] == 5
    assert stored == parsed
    assert stored.endpoints is not parsed.endpoints


def test_the_same_bytes_elsewhere_are_a_hit(fresh: None, tmp_path: Path) -> None:
    copy = tmp_path / ENDPOINTS_FILE
    shutil.copyfile(loader.default_seeds_dir() / ENDPOINTS_FILE, copy)
    assert load_endpoints(copy) == load_endpoints(loader.default_seeds_dir() / ENDPOINTS_FILE)
    assert seedstore.stats == {"hits": 2, "misses": 0}


def test_an_edited_seed_file_is_parsed(fresh: None, tmp_path: Path) -> None:
    original = (loader.default_seeds_dir() / OUI_FILE).read_text()
    assert "\tHikvision\t" in original
    edited = tmp_path / OUI_FILE
    edited.write_text(original.replace("\tHikvision\t", "\tHikvisi0n\t", 1))
    ouis = load_ouis(edited)
    assert seedstore.stats == {"hits": 0, "misses": 1}
    assert sum(o.vendor == "Hikvisi0n" for o in ouis) == 1


def test_a_bad_seed_file_still_fails_with_its_line(fresh: None, tmp_path: Path) -> None:
    source = (loader.default_seeds_dir() / ENDPOINTS_FILE).read_text()
    bad = tmp_path / ENDPOINTS_FILE
    bad.write_text(source.replace("confidence: high", "confidence: sure", 1))
    with pytest.raises(Exception, match=r":\d+: endpoints\[\d+\]\.confidence: "):
        load_endpoints(bad)


def _store_with(tmp_path: Path, change: str) -> Path:
    doc = pickle.loads(seedstore.build())
    if change == "fields":  # a class that had one field more when the store was made
        for classes, _blob in doc["entries"].values():
            name = next(iter(classes))
            classes[name] = (*classes[name], "gone")
    elif change == "format":
        doc["format"] = seedstore.FORMAT + 1
    path = tmp_path / "seedstore.pickle"
    path.write_bytes(b"not a pickle" if change == "corrupt" else pickle.dumps(doc))
    return path


@pytest.mark.parametrize("change", ["none", "fields", "format", "corrupt"])
def test_an_out_of_date_or_broken_store_is_not_used(
    fresh: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(seedstore, "STORE", _store_with(tmp_path, change))
    seedstore.stats.update(hits=0, misses=0)  # build() parsed
    resolvers = load_public_resolvers()
    used = change == "none"
    assert seedstore.stats == {"hits": int(used), "misses": int(not used)}
    seedstore._entries, seedstore._values = {}, {}
    assert resolvers == load_public_resolvers()


def test_the_command_rebuilds_and_checks(tmp_path: Path) -> None:
    """``python -m netwatch.seedstore`` on a copy of the package (the checkout's is kept)."""
    package = tmp_path / "netwatch"
    shutil.copytree(REPO / "netwatch", package, symlinks=True)
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")  # netwatch/seeds links to ../seeds
    (package / "seedstore.pickle").unlink()
    env = {"PYTHONPATH": str(tmp_path)}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "netwatch.seedstore", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env=env,
        )

    missing = command("--check")
    assert missing.returncode == 1 and "unreadable" in missing.stdout
    assert command().returncode == 0
    assert (package / "seedstore.pickle").read_bytes() == seedstore.STORE.read_bytes()
    assert command("--check").returncode == 0


def test_a_long_tuple_of_one_slotted_class_is_stored_by_columns() -> None:
    """The OUI table (and any tuple of ``ROWS_MIN`` or more instances of one slotted
    dataclass) is pickled as its class and columns, and unpickles equal, as the same
    classes, frozen as before; shorter or mixed tuples are pickled item by item."""
    ouis = load_ouis(loader.default_seeds_dir() / OUI_FILE)
    assert len(ouis) > 2000
    blob = seedstore._dumps(ouis)
    assert b"_rebuild_rows" in blob and b"_rebuild\x94" not in blob
    back = pickle.loads(blob)
    assert type(back) is tuple and back == ouis
    assert all(type(a) is type(b) for a, b in zip(back, ouis, strict=True))
    sources = {id(o.source) for o in back}
    assert len(sources) == len({o.source for o in back}) < 10  # equal texts: one object
    with pytest.raises(AttributeError):
        back[0].oui = "00:00:00"
    few = ouis[: seedstore.ROWS_MIN - 1]
    assert (
        b"_rebuild_rows" not in seedstore._dumps(few) and pickle.loads(seedstore._dumps(few)) == few
    )
    mixed = (*ouis[:20], "not an oui")
    assert b"_rebuild_rows" not in seedstore._dumps(mixed)
    assert pickle.loads(seedstore._dumps(mixed)) == mixed


def test_rows_of_another_shape_are_refused() -> None:
    """A column of the wrong length, or columns for other fields, raise (the store's entry
    is then not used: the seeds are parsed)."""
    ouis = load_ouis(loader.default_seeds_dir() / OUI_FILE)[:20]
    cls = type(ouis[0])
    columns = pickle.loads(pickle.dumps(seedstore._Rows.of(ouis).__reduce__()[1][2]))
    assert seedstore._rebuild_rows(cls, 20, columns) == ouis
    with pytest.raises(pickle.UnpicklingError):
        seedstore._rebuild_rows(cls, 21, columns)
    with pytest.raises(pickle.UnpicklingError):
        seedstore._rebuild_rows(cls, 20, columns[:-1])
