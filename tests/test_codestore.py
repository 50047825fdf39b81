"""The dataclass methods compiled ahead of time (netwatch.codestore, netwatch._codestore):
the same code as compiling, used only when exactly right."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netwatch import _codestore, codestore

REPO = Path(__file__).resolve().parents[1]


def test_the_store_is_up_to_date() -> None:
    """After adding or changing a dataclass: ``python -m netwatch.codestore``."""
    assert codestore.stale() == []


def test_every_entry_is_what_compiling_its_text_gives() -> None:
    """(That compiling gives what ``exec`` in dataclasses gives: the class test below.)"""
    entries = _codestore.read_store()
    assert len(entries) > 500
    for text, code in entries.items():
        fresh = _codestore.compile_text(text)
        assert code == fresh, text
        assert marshal.dumps(code) == marshal.dumps(fresh), text
        assert (code.co_filename, code.co_flags) == ("<string>", fresh.co_flags)


REPLAY = """
import json, sys
from netwatch import _codestore
from netwatch.cli import main
main(["replay", "-qq", sys.argv[1]])
print(json.dumps(_codestore.stats))
"""


def test_a_replay_compiles_no_dataclass_method() -> None:
    demo = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
    env = {k: v for k, v in os.environ.items() if k != _codestore.BUILD_ENV}
    done = subprocess.run(
        [sys.executable, "-c", REPLAY, str(demo)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    stats = json.loads(done.stdout.splitlines()[-1])
    assert stats["misses"] == 0 and stats["hits"] > 500


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Sample:
    name: str
    port: int = 80
    tags: tuple[str, ...] = ()


def _methods(cls: type) -> dict[str, object]:
    names = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__")
    return {n: getattr(cls, n).__code__ for n in names}


def test_a_class_built_from_the_store_is_the_class_compiling_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def define() -> type:
        @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
        class Sample:
            name: str
            port: int = 80
            tags: tuple[str, ...] = ()

        return Sample

    monkeypatch.setattr(_codestore, "_code", {})
    monkeypatch.setattr(_codestore, "_recording", {})
    monkeypatch.setitem(vars(dataclasses), "exec", getattr(_codestore, "_exec"))  # noqa: B009
    compiled = define()
    texts = _codestore.recorded()
    assert len(texts) == 6
    monkeypatch.setattr(_codestore, "_code", texts)
    monkeypatch.setattr(_codestore, "stats", {"hits": 0, "misses": 0})
    stored = define()
    assert _codestore.stats == {"hits": 6, "misses": 0}
    monkeypatch.delitem(vars(dataclasses), "exec")
    plain = define()
    # code objects compare by bytecode, constants (nested code too), names and flags
    assert _methods(stored) == _methods(compiled) == _methods(plain)
    flags = {getattr(c, n).__code__.co_flags for c in (stored, plain) for n in ("__init__",)}
    assert len(flags) == 1
    for cls in (stored, plain):
        one = cls(name="a", tags=("x",))
        assert repr(one).endswith("Sample(name='a', port=80, tags=('x',))")
        assert one == cls(name="a", tags=("x",)) and hash(one) == hash(cls(name="a", tags=("x",)))
        with pytest.raises(dataclasses.FrozenInstanceError):
            one.port = 1
        with pytest.raises(TypeError):
            cls("a")


def test_the_package_installs_the_store() -> None:
    assert vars(dataclasses).get("exec") is getattr(_codestore, "_exec")  # noqa: B009
    assert _Sample(name="b") == _Sample(name="b", port=80)


NO_INSPECT = """
import sys
import netwatch
import dataclasses
first = sorted(m for m in ("inspect", "ast", "dis") if m in sys.modules)

@dataclasses.dataclass(frozen=True)
class Undocumented:
    port: int
    name: str = "x"

import inspect
print(first, Undocumented.__doc__, dataclasses.inspect is inspect, inspect.signature)
"""


@pytest.mark.parametrize("inspect_first", [False, True])
def test_dataclasses_is_imported_without_inspect_until_a_class_needs_it(
    inspect_first: bool,
) -> None:
    """Importing the package loads no ``inspect`` (nor ``ast``, ``dis``); a dataclass without
    a docstring still gets its signature as ``__doc__``, through the real module, which then
    is ``dataclasses``' and the one any ``import inspect`` gets. With ``inspect`` imported
    before the package, ``dataclasses`` has it as usual."""
    code = ("import inspect\n" if inspect_first else "") + NO_INSPECT
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    first = "['ast', 'dis', 'inspect']" if inspect_first else "[]"
    signature = "<function signature at"
    assert done.stdout.startswith(
        f"{first} Undocumented(port: int, name: str = 'x') True {signature}"
    )


@pytest.mark.parametrize(
    "doc",
    [
        {"format": 2},
        {"magic": b"\0\0\r\n"},
        {"optimize": 2},
        {"code": {"text": "not code"}},
        {"code": {1: compile("x = 1", "<string>", "exec")}},
    ],
)
def test_a_store_of_another_kind_is_not_used(tmp_path: Path, doc: dict[str, object]) -> None:
    magic, optimize = _codestore.header()
    good = {"format": _codestore.FORMAT, "magic": magic, "optimize": optimize, "code": {}}
    path = tmp_path / "store"
    path.write_bytes(marshal.dumps({**good, "code": {"a": compile("x", "<string>", "exec")}}))
    assert list(_codestore.read_store(path)) == ["a"]
    path.write_bytes(marshal.dumps({**good, **doc}))
    assert _codestore.read_store(path) == {}


def test_a_missing_or_damaged_store_is_not_used(tmp_path: Path) -> None:
    assert _codestore.read_store(tmp_path / "missing") == {}
    damaged = tmp_path / "damaged"
    damaged.write_bytes(_codestore.STORE.read_bytes()[:1000])
    assert _codestore.read_store(damaged) == {}
    damaged.write_bytes(b"\x00not marshal")
    assert _codestore.read_store(damaged) == {}


PROBE = """
import dataclasses, json
from netwatch import _codestore
import netwatch.config
print(json.dumps({"installed": "exec" in vars(dataclasses), **_codestore.stats,
                  "recorded": len(_codestore.recorded())}))
"""


def _probe(**env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != _codestore.BUILD_ENV}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**clean, **env},
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_building_reads_no_store_and_records_every_text() -> None:
    used = _probe()
    assert used["installed"] and used["misses"] == 0 and used["recorded"] == 0
    building = _probe(NETWATCH_CODESTORE="build")
    assert building["installed"] and building["hits"] == 0
    assert building["recorded"] == building["misses"] == used["hits"] > 20


def test_the_command_checks_and_refuses_bad_usage() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "error", "-m", "netwatch.codestore", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )

    assert run("--check").returncode == 0
    bad = run("--bogus")
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_other_calls_reach_exec_as_they_came() -> None:
    namespace: dict[str, object] = {}
    run = getattr(_codestore, "_exec")  # noqa: B009
    run(compile("x = 1", "<string>", "exec"), namespace)
    run("y = 2", namespace, namespace)
    assert (namespace["x"], namespace["y"]) == (1, 2)
    with pytest.raises(TypeError):
        run("z = 3", namespace, unknown=1)
