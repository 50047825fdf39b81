"""The command line of a store made ahead of time (``python -m netwatch.seedstore``,
``python -m netwatch.codestore``): rebuild the store, or with ``--check`` list what is stale
in it and exit 1 (0: up to date; 2: a usage error). Reads no config."""

from __future__ import annotations

import sys
from collections.abc import Callable


def store_command(
    module: str, argv: list[str], stale: Callable[[], list[str]], rebuild: Callable[[], str]
) -> int:
    """``python -m MODULE [--check]``. ``stale()``: what is out of date (empty: nothing);
    ``rebuild()``: writes the store and says what it wrote."""
    if argv == ["--check"]:
        problems = stale()
        for line in problems:
            sys.stdout.write(f"{line}\n")
        if problems:
            sys.stdout.write(f"rebuild it: python -m {module}\n")
        return 1 if problems else 0
    if argv:
        sys.stderr.write(f"usage: python -m {module} [--check]\n")
        return 2
    sys.stdout.write(f"{rebuild()}\n")
    return 0
