"""``netwatch report``: the camera audit as one self-contained HTML file.

The pipeline is data -> view model -> HTML: the inventory JSON (:mod:`netwatch.inventory`,
the one builder ``netwatch cameras`` reads too: built by replaying captures, or a sensor's
saved inventory) is read into a
:class:`~netwatch.report.view.ReportView` (:mod:`.view`) and rendered by :mod:`.html`
(inline CSS and SVG, no script, nothing fetched). :func:`write_report` writes the file
atomically (a temporary file renamed over the target), :func:`write_inventory` the JSON
it was made from.

Config read: what :func:`netwatch.inventory.build_from_captures` reads. Known
limits: see the modules.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netwatch.report.html import render
from netwatch.report.view import view_of


def render_report(inventory: Mapping[str, Any]) -> str:
    """The HTML page of an inventory."""
    return render(view_of(inventory))


def write_report(inventory: Mapping[str, Any], out: Path) -> int:
    """Write the page to ``out`` (atomically); returns its size in bytes."""
    return _write(render_report(inventory).encode("utf-8"), out)


def write_inventory(inventory: Mapping[str, Any], out: Path) -> int:
    """Write the inventory the page shows as JSON to ``out`` (atomically); returns its size
    (the data ``netwatch cameras --json`` gives, to compare or keep beside the page)."""
    return _write((json.dumps(inventory, indent=1, sort_keys=True) + "\n").encode(), out)


def _write(data: bytes, out: Path) -> int:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)
