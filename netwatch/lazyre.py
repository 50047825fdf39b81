"""Regular expressions compiled at their first use, not at import.

``lazy(pattern, flags)`` gives a function returning the compiled pattern, compiled once per
process on the first call: a module keeps a pattern it may never need out of start-up
(most of the deep parsers' patterns only run on traffic of their protocol) without writing
a cached accessor per pattern. Configuration read: none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import AnyStr


def lazy(pattern: AnyStr, flags: int = 0) -> Callable[[], re.Pattern[AnyStr]]:
    """A function returning ``re.compile(pattern, flags)``, compiled on its first call."""
    return functools.cache(functools.partial(re.compile, pattern, flags))
