"""Test support for the registry walk tests: a real extra module dropped into a package.

:func:`extra_module` writes a module file into a temporary directory, appends that directory
to the package's ``__path__`` (so :func:`pkgutil.walk_packages` finds it exactly as it finds
a module written into the source tree), and undoes everything afterwards: the path entry,
the imported module and what its classes registered.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def extra_module(
    tmp_path: Path,
    package: str,
    name: str,
    source: str,
    registry: MutableMapping[str, Any],
) -> Iterator[None]:
    """``package.name`` with ``source`` exists while the block runs (see module docstring)."""
    pkg = sys.modules[package]
    folder = tmp_path / f"extra_{name}"
    folder.mkdir()
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    before = dict(registry)
    pkg.__path__.append(str(folder))
    try:
        yield
    finally:
        pkg.__path__.remove(str(folder))
        sys.modules.pop(f"{package}.{name}", None)
        for key in set(registry) - set(before):
            del registry[key]
