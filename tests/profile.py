"""Test profiles: ``full`` (what CI runs: every property and fuzz example) and ``fast``.

``NETWATCH_TEST_PROFILE=fast`` (``./dev test-fast``) scales every Hypothesis ``max_examples``
and the decoder fuzz volume down to a tenth (at least 10 examples each), for a quick run
while developing; nothing else changes. Any other value than ``full`` or ``fast`` is an
error, so a typo cannot silently weaken CI.
"""

from __future__ import annotations

import os

SCALES = {"full": 1.0, "fast": 0.1}
PROFILE = os.environ.get("NETWATCH_TEST_PROFILE", "full")
if PROFILE not in SCALES:
    raise RuntimeError(f"NETWATCH_TEST_PROFILE={PROFILE!r}: use one of {sorted(SCALES)}")
SCALE = SCALES[PROFILE]


def examples(n: int) -> int:
    """``n`` examples under the full profile, a tenth (at least 10) under the fast one."""
    return n if SCALE == 1.0 else max(10, round(n * SCALE))
