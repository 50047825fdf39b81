"""Self-registering classes: naming, loud duplicates, and the package audit behind the tests.

Rules, capture sources and deep parsers register themselves when their class is defined
(``__init_subclass__``): :func:`snake_name` derives the registered name from the class name
and :func:`register` refuses a name taken by another class. Each package also declares its
built-in set as an explicit tuple; :func:`audit_package` imports every module of the package
and compares the modules that define a registered class with that set, so a module written
but not listed (it would never run) or a module that defines nothing and is not a declared
helper is reported.

Reads no configuration. Known limit: the audit sees only classes registered in the registry
it is given and defined in modules of the walked package (a class registered from elsewhere,
a test for instance, is ignored).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake_name(class_name: str, suffix: str = "") -> str:
    """``CloudRegistration`` -> ``cloud_registration``; ``suffix`` (``"Parser"``) is dropped."""
    if suffix and class_name.endswith(suffix) and class_name != suffix:
        class_name = class_name[: -len(suffix)]
    return _CAMEL.sub("_", class_name).lower()


def register(registry: MutableMapping[str, type[T]], name: str, cls: type[T], what: str) -> None:
    """Record ``cls`` under ``name``; a name already taken by another class raises TypeError."""
    known = registry.get(name)
    if known is not None and known is not cls:
        raise TypeError(f"{what} {name!r} is defined twice: {known} and {cls}")
    registry[name] = cls


@dataclass(frozen=True, slots=True)
class PackageAudit:
    """What :func:`audit_package` found; :attr:`ok` when every set is empty."""

    #: modules (relative to the package) that define a registered class not in the built-ins
    unlisted: frozenset[str]
    #: modules that define no registered class and are not declared helpers
    stray: frozenset[str]
    #: declared helper modules that define a registered class, or do not exist
    wrong_helpers: frozenset[str]
    #: built-in classes registered under another class (a stale or copied entry)
    not_registered: frozenset[str]

    @property
    def ok(self) -> bool:
        return not (self.unlisted or self.stray or self.wrong_helpers or self.not_registered)


def package_modules(package: str) -> list[str]:
    """Every module directly in ``package`` (a sub-package counts as one module: its
    ``__init__``; audit its own modules separately), each imported; ``""`` stands for the
    package's own ``__init__``."""
    import pkgutil  # noqa: PLC0415 - the audit only (the tests), not a start

    pkg = importlib.import_module(package)
    names = [""]
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")
        names.append(info.name)
    return names


def audit_package(
    package: str,
    registry: MutableMapping[str, type[T]],
    builtins: Iterable[type[T]],
    helpers: Iterable[str],
) -> PackageAudit:
    """Import every module of ``package`` and check it against the declared built-in set.

    ``helpers`` names (relative, ``""`` for ``__init__``) the modules that are allowed to
    define no registered class: bases, shared parsing code, the registry itself.
    """
    modules = package_modules(package)
    builtin = set(builtins)
    prefix = f"{package}."

    def relative(cls: type[T]) -> str | None:
        mod = cls.__module__
        if mod == package:
            return ""
        return mod[len(prefix) :] if mod.startswith(prefix) else None

    defined = {
        cls: rel
        for cls in registry.values()
        if (rel := relative(cls)) is not None and "." not in rel  # a sub-package's own
    }
    defining = set(defined.values())
    helper_set = set(helpers)
    return PackageAudit(
        unlisted=frozenset(rel for cls, rel in defined.items() if cls not in builtin),
        stray=frozenset(set(modules) - defining - helper_set),
        wrong_helpers=frozenset((helper_set & defining) | (helper_set - set(modules))),
        not_registered=frozenset(
            cls.__qualname__ for cls in builtin if cls not in registry.values()
        ),
    )
