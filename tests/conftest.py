"""Shared pytest fixtures: where the third-party corpus lives, and skipping when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
PCAP_CORPUS = CORPUS / "pcaps"
MAXMIND = CORPUS / "maxmind"


CAPTURE_SUFFIXES = frozenset({".pcap", ".pcapng", ".cap", ".gz"})


def list_captures(root: Path) -> list[str]:
    """Capture files below ``root`` (by suffix), as sorted POSIX paths relative to it."""
    if not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix in CAPTURE_SUFFIXES
    )


def corpus_file(*parts: str) -> Path:
    """Return a corpus path, skipping the calling test with a clear reason when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"third-party corpus file {path} is absent (tests read ../shared/corpus)")
    return path


@pytest.fixture
def pcap_corpus() -> Path:
    """The folder of real third-party captures; skips when ../shared/corpus is absent."""
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent: the real-capture tests need ../shared/corpus")
    return PCAP_CORPUS


@pytest.fixture
def maxmind_dir() -> Path:
    """MaxMind's official test databases; skips when ../shared/corpus is absent."""
    if not MAXMIND.is_dir():
        pytest.skip(f"{MAXMIND} is absent: the GeoIP format tests need ../shared/corpus/maxmind")
    return MAXMIND


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--regen-golden`` rewrites the golden baselines instead of comparing against them."""
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/* from the current output",
    )


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden baselines."""
    return bool(request.config.getoption("--regen-golden"))
