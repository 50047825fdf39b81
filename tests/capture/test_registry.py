"""Capture sources register themselves; the config picks one through the registry.

The walk imports every module of :mod:`netwatch.capture` and fails on one that defines a
registered source missing from ``BUILTIN_SOURCES``, or that defines none and is not a
declared helper; the last tests drop a real extra module into the package to show that it
does fail. ``build_source`` is checked on real configs (files, ``lo``, tshark), with the
errors that make ``netwatch run`` exit 2, and in a fresh interpreter for the lazy pyshark
import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netwatch.capture.afpacket import RingError
from netwatch.capture.bpf import BpfError
from netwatch.capture.live import LiveSource
from netwatch.capture.registry import (
    BUILTIN_SOURCES,
    HELPER_MODULES,
    UnknownSourceError,
    build_source,
    source_class,
)
from netwatch.capture.source import SOURCES, FileSource, Source
from netwatch.config import Config
from netwatch.registry import PackageAudit, audit_package
from tests.registry_support import extra_module

PACKAGE = "netwatch.capture"
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"


def audit() -> PackageAudit:
    package_classes = [source_class(entry.kind) for entry in BUILTIN_SOURCES]
    return audit_package(PACKAGE, SOURCES, package_classes, HELPER_MODULES)


def config(tmp_path: Path, capture: str) -> Config:
    path = tmp_path / "netwatch.yaml"
    path.write_text(f"capture:\n{capture}")
    return Config.load(path)


def test_every_source_module_is_in_the_builtin_set() -> None:
    result = audit()
    assert result.ok, result
    assert [e.kind for e in BUILTIN_SOURCES] == ["file", "afpacket", "tshark"]
    assert [source_class(e.kind).live for e in BUILTIN_SOURCES] == [False, True, True]
    assert {source_class(e.kind).__module__ for e in BUILTIN_SOURCES} == {
        e.module for e in BUILTIN_SOURCES
    }


def test_a_source_module_missing_from_the_builtin_set_fails_the_walk(tmp_path: Path) -> None:
    source = """
        from netwatch.capture.source import Source

        class PcapOverIpSource(Source):
            pass
    """
    with extra_module(tmp_path, PACKAGE, "pcap_over_ip", source, SOURCES):
        result = audit()
        assert SOURCES["pcap_over_ip"].kind == "pcap_over_ip"
    assert result.unlisted == {"pcap_over_ip"} and not result.ok
    assert audit().ok


def test_a_module_defining_no_source_fails_unless_declared_a_helper(tmp_path: Path) -> None:
    with extra_module(tmp_path, PACKAGE, "ringstats", "X = 1\n", SOURCES):
        result = audit()
    assert result.stray == {"ringstats"} and not result.ok


def test_a_kind_defined_twice_fails_loudly() -> None:
    with pytest.raises(TypeError, match="defined twice"):
        type("FileSource", (Source,), {})  # kind "file" is FileSource's
    with pytest.raises(TypeError, match="defined twice"):
        type("Other", (Source,), {}, kind="afpacket")
    assert SOURCES["file"] is FileSource and SOURCES["afpacket"] is LiveSource


def test_files_win_and_build_a_file_source(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"  files: [{DEMO}]\n  loop: true\n  realtime: true\n  speed: 4\n")
    source = build_source(cfg)
    assert isinstance(source, FileSource)
    assert (source.paths, source.loop, source.realtime, source.speed) == ((DEMO,), True, True, 4.0)


def test_afpacket_is_built_from_the_config_without_opening_a_ring(tmp_path: Path) -> None:
    source = build_source(config(tmp_path, "  interfaces: [lo]\n  bpf: 'tcp port 554'\n"))
    assert isinstance(source, LiveSource) and source.interfaces == ["lo"]
    assert source.settings.bpf  # compiled here
    assert source.counts()["lo"].up is False  # opening is start's job (Source.open)


def test_config_errors_keep_their_exit_2_types(tmp_path: Path) -> None:
    with pytest.raises(RingError, match="nw-absent0: no such interface"):
        build_source(config(tmp_path, "  interfaces: [nw-absent0]\n"))
    with pytest.raises(BpfError, match=r"capture\.bpf"):
        build_source(config(tmp_path, "  interfaces: [lo]\n  bpf: 'tcp port'\n"))
    with pytest.raises(UnknownSourceError, match="unknown source 'pcap_over_ip'"):
        source_class("pcap_over_ip")


def test_tshark_is_built_and_pyshark_is_imported_only_when_asked(tmp_path: Path) -> None:
    afpacket_cfg = tmp_path / "afpacket.yaml"
    afpacket_cfg.write_text("capture:\n  interfaces: [lo]\n")
    tshark_cfg = tmp_path / "tshark.yaml"
    tshark_cfg.write_text("capture:\n  interfaces: [lo]\n  method: tshark\n  snaplen: 200\n")
    probe = (
        "import sys\n"
        "from netwatch.capture.registry import build_source\n"
        "from netwatch.config import Config\n"
        f"s = build_source(Config.load({str(afpacket_cfg)!r}))\n"
        "print(type(s).__name__, 'pyshark' in sys.modules)\n"
        f"s = build_source(Config.load({str(tshark_cfg)!r}))\n"
        "print(type(s).__name__, 'pyshark' in sys.modules, s.snaplen, s.running)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split("\n")
    assert out[:2] == ["LiveSource False", "TsharkSource True 200 False"]
