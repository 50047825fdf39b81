"""netwatch's optional compiled parts, looked up one way: an attribute of an extension
module (``netwatch._mmdb``, ``netwatch._ring``, ``netwatch._deep``) when it is built and not
switched off, else None so that the caller takes its Python reference code.

Switches (environment, read when asked): ``NETWATCH_PURE=1`` turns every compiled part off;
``NETWATCH_CORE=python`` turns off the parts that belong to the per-packet loop's compiled
path (``loop=True``). The per-packet core itself is loaded by :mod:`netwatch.core`, which
also says why it is not. Reads no config.
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def optional(module: str, name: str, *, loop: bool = False) -> Any:
    """``netwatch.<module>.<name>``, or None when the extension is not built, when
    ``NETWATCH_PURE=1``, or (``loop``) when ``NETWATCH_CORE=python``."""
    if os.environ.get("NETWATCH_PURE") == "1":
        return None
    if loop and os.environ.get("NETWATCH_CORE") == "python":
        return None
    try:
        extension = importlib.import_module(f"netwatch.{module}")
    except ImportError:
        return None
    return getattr(extension, name)
