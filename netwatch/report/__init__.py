"""``netwatch report``: the camera audit as one self-contained HTML file.

The pipeline is data -> view model -> HTML: the inventory JSON (:mod:`.collect`: built by
replaying captures, or a sensor's saved inventory) is read into a
:class:`~netwatch.report.view.ReportView` (:mod:`.view`) and rendered by :mod:`.html`
(inline CSS and SVG, no script, nothing fetched). :func:`write_report` writes the file
atomically (a temporary file renamed over the target).

Config read: what :func:`~netwatch.report.collect.inventory_from_captures` reads. Known
limits: see the modules.
"""

from __future__ import annotations

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
    data = render_report(inventory).encode("utf-8")
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
