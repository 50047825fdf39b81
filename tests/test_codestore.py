"""The dataclass methods compiled ahead of time (netwatch.codestore, netwatch._codestore):
the same code as compiling, used only when exactly right."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import re
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
print(json.dumps({**_codestore.stats, "later": len(getattr(_codestore, "_later"))}))
"""


def test_a_replay_compiles_no_dataclass_method_and_no_regular_expression() -> None:
    demo = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
    stats = _probe(REPLAY, str(demo))
    assert stats["misses"] == 0 and stats["hits"] > 500
    assert stats["regex_misses"] == 0 and stats["regex_hits"] > 50
    if not os.environ.get("NETWATCH_PURE"):  # (the pure GeoIP path loads maxminddb's)
        assert stats["later"] > 100_000  # the texts only other commands run: still marshalled


PRELOAD = """
import json
from netwatch import _codestore
from netwatch.preload import preload
preload()
print(json.dumps({**_codestore.stats, "later": len(getattr(_codestore, "_later"))}))
"""


def test_the_daemons_preload_unpacks_the_rest_and_compiles_nothing() -> None:
    """The texts a replay does not run are unpacked at the first text missing from the
    others (here: importing every module, as the daemon does before its privilege drop)."""
    stats = _probe(PRELOAD)
    assert stats["misses"] == 0 and stats["hits"] == len(_codestore.read_store())
    assert stats["later"] == 0


def test_a_store_dumped_in_two_parts_reads_as_one(tmp_path: Path) -> None:
    entries = _codestore.read_store()
    start = frozenset(list(entries)[::3])
    path = tmp_path / "store"
    path.write_bytes(codestore.dump(entries, {}, start))
    assert _codestore.read_store(path) == entries
    first, later, _regexes = _codestore.read_parts(path)
    assert set(first) == start and len(later) > 1000
    path.write_bytes(codestore.dump(entries, {}))
    first, later, _regexes = _codestore.read_parts(path)
    assert first == entries and later == b""


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
    done = _run(code, {**os.environ, "PYTHONPATH": str(REPO)})
    first = "['ast', 'dis', 'inspect']" if inspect_first else "[]"
    signature = "<function signature at"
    assert done.stdout.startswith(
        f"{first} Undocumented(port: int, name: str = 'x') True {signature}"
    )


def _store(doc: dict[str, object], later: bytes = b"") -> bytes:
    """A store file holding ``doc`` (and ``later``, marshalled entries)."""
    return _codestore.join_store(marshal.dumps(doc), later)


@pytest.mark.parametrize(
    "doc",
    [
        {"format": 1},
        {"magic": b"\0\0\r\n"},
        {"optimize": 2},
        {"code": {"text": "not code"}},
        {"code": {1: compile("x = 1", "<string>", "exec")}},
    ],
)
def test_a_store_of_another_kind_is_not_used(tmp_path: Path, doc: dict[str, object]) -> None:
    magic, optimize = _codestore.header()
    good = {
        "format": _codestore.FORMAT,
        "magic": magic,
        "optimize": optimize,
        "code": {},
        "regex_header": _codestore.regex_header(),
        "regex": {},
    }
    path = tmp_path / "store"
    path.write_bytes(_store({**good, "code": {"a": compile("x", "<string>", "exec")}}))
    assert list(_codestore.read_store(path)) == ["a"]
    path.write_bytes(_store({**good, **doc}))
    assert _codestore.read_store(path) == {}


def test_a_missing_or_damaged_store_is_not_used(tmp_path: Path) -> None:
    assert _codestore.read_store(tmp_path / "missing") == {}
    damaged = tmp_path / "damaged"
    damaged.write_bytes(_codestore.STORE.read_bytes()[:1000])
    assert _codestore.read_store(damaged) == {}
    damaged.write_bytes(b"\x00not marshal")
    assert _codestore.read_store(damaged) == {}
    damaged.write_bytes(b"")
    assert _codestore.read_store(damaged) == {}
    good = _codestore.STORE.read_bytes()
    damaged.write_bytes(good[:-1000])  # the entries a replay does not run: cut short
    first = _codestore.read_parts(damaged)[0]
    assert len(first) > 500  # those a replay runs are used; the others will be compiled
    assert _codestore.read_store(damaged) == first


PROBE = """
import dataclasses, json
from netwatch import _codestore
import netwatch.config
print(json.dumps({"installed": "exec" in vars(dataclasses), **_codestore.stats,
                  "recorded": len(_codestore.recorded())}))
"""


def _run(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter in the repository, with ``env`` and ``args``
    (its ``sys.argv[1:]``); its output."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )


def _probe(code: str = PROBE, *args: str, **env: str) -> dict[str, int]:
    """Run ``code`` with ``args`` in a fresh interpreter (no build switch but ``env``'s): the
    JSON object it prints last."""
    clean = {k: v for k, v in os.environ.items() if k != _codestore.BUILD_ENV}
    done = _run(code, {**clean, **env}, *args)
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
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


def test_every_stored_regular_expression_is_what_compiling_it_gives() -> None:
    """Each pattern made from its stored code equals the one ``re``'s compiler makes (the
    same code, flags and pattern) and has the same groups; the stored arguments are what
    :func:`netwatch._codestore.regex_entry` gives now."""
    _entries, regexes = _codestore.read_stores()
    assert len(regexes) > 100
    compile_fresh = getattr(_codestore, "_compile_regex")  # noqa: B009 - re's own
    sre = getattr(_codestore, "_sre")  # noqa: B009
    for (pattern, flags), entry in regexes.items():
        fresh = compile_fresh(pattern, flags)
        made = sre.compile(pattern, *entry)
        assert made == fresh, pattern
        assert (made.flags, made.groups, made.groupindex) == (
            fresh.flags,
            fresh.groups,
            fresh.groupindex,
        ), pattern
        assert _codestore.regex_entry(pattern, flags) == entry, pattern


def test_re_compiles_through_the_store() -> None:
    """``re`` asks the store first: a stored pattern is made from it (``re.purge`` empties
    ``re``'s own cache), with the same matches; a pattern not stored is compiled."""
    _entries, regexes = _codestore.read_stores()
    pattern, flags = next(k for k in regexes if isinstance(k[0], str) and "(" in k[0])
    before = dict(_codestore.stats)
    re.purge()
    made = re.compile(pattern, flags)
    assert _codestore.stats["regex_hits"] == before["regex_hits"] + 1
    assert made == getattr(_codestore, "_compile_regex")(pattern, flags)  # noqa: B009
    re.purge()
    other = re.compile(r"netwatch-(?P<test>\d+)-not-stored")
    assert _codestore.stats["regex_misses"] == before["regex_misses"] + 1
    assert other.match("netwatch-12-not-stored")["test"] == "12"  # type: ignore[index]


def test_a_damaged_regular_expression_entry_is_compiled_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store: dict[object, object] = getattr(_codestore, "_regex")  # noqa: B009
    key = ("netwatch-damaged-(a|b)", 0)
    monkeypatch.setitem(store, key, (0, [1, 2, 3], 0, {}, (None,)))  # not valid SRE code
    re.purge()
    made = re.compile(*key)
    assert made.match("netwatch-damaged-b") is not None


def test_regular_expressions_of_another_python_release_are_not_used(tmp_path: Path) -> None:
    """The dataclass texts are still used (same bytecode), the patterns not."""
    magic, optimize = _codestore.header()
    version, sre_magic, codesize = _codestore.regex_header()
    entry = _codestore.regex_entry("a+", 0)
    doc = {
        "format": _codestore.FORMAT,
        "magic": magic,
        "optimize": optimize,
        "code": {"a": compile("x", "<string>", "exec")},
        "regex_header": (version, sre_magic, codesize),
        "regex": {("a+", 0): entry},
    }
    path = tmp_path / "store"
    path.write_bytes(_store(doc))
    assert _codestore.read_stores(path)[1] == {("a+", 0): entry}
    path.write_bytes(_store({**doc, "regex_header": (version - 1, sre_magic, codesize)}))
    entries, regexes = _codestore.read_stores(path)
    assert (list(entries), regexes) == (["a"], {})
