"""netwatch: a passive IP-camera traffic monitor for switch mirror (SPAN) ports.

The offline pipeline is: capture file -> decode (struct fast path) -> bidirectional
flow table (Zeek conn.log semantics) -> enrichment (GeoIP, names, MAC vendor) -> flow log.

Importing the package first gives :mod:`dataclasses` the methods it writes for netwatch's
classes compiled ahead of time (:mod:`netwatch._codestore`): the same classes, ~40 ms less
CPU at every start.

:func:`collector_paused`: the cyclic garbage collector paused while a start imports and loads
what lives until the process exits (the package's own imports here, ``netwatch.cli``'s, a
replay's config and GeoIP data).
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__version__ = "0.1.0"


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector switched off while the body runs (imports, loading the
    config: objects that live until the process exits, whose collections would walk them
    again and again and free nothing), then back as it was. What the body made and still
    exists joins the oldest generation (``gc.freeze`` then ``gc.unfreeze``: two list splices),
    as it would have after surviving the young collections; so switching the collector back
    on does not walk it at once. When something is frozen already (``gc.get_freeze_count``:
    a replay freezes what it loaded), nothing is moved: unfreezing would thaw that too."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


with collector_paused():
    from netwatch import _codestore

    _codestore.install()
