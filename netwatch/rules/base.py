"""The rule interface and registry: one detection per module, registered by class name.

A rule subclasses :class:`Rule`; ``__init_subclass__`` derives its id from the class name
(``CloudRegistration`` -> ``cloud_registration``), refuses duplicates loudly, and records
it in :data:`REGISTRY`. Rules are sans-I/O: they look at what the pipeline hands them and
*yield* :class:`~netwatch.alerts.model.Alert` values; the router decides who is told and
when. A rule that raises is isolated by :func:`run_rule` (logged once, counted), never
taking the pipeline down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from netwatch.alerts.model import Alert
from netwatch.detect.baseline import Baseline
from netwatch.detect.facts import FlowFacts

log = logging.getLogger(__name__)

REGISTRY: dict[str, type[Rule]] = {}

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def rule_id(class_name: str) -> str:
    """``CloudRegistration`` -> ``cloud_registration``."""
    return _CAMEL.sub("_", class_name).lower()


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What stateful rules are given at construction (injected by the detector)."""

    baseline: Baseline | None = None


class Rule:
    """Base class of every detection rule."""

    #: The stable rule id (alerts, metrics labels, config); set from the class name.
    id: ClassVar[str] = ""

    def __init__(self, context: RuleContext | None = None) -> None:
        self.context = context

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.id = rule_id(cls.__name__)
        if cls.id in REGISTRY:
            raise TypeError(f"rule id {cls.id!r} is defined twice: {REGISTRY[cls.id]} and {cls}")
        REGISTRY[cls.id] = cls

    def on_flow_end(self, facts: FlowFacts) -> Iterable[Alert]:
        """Alerts for one camera end of a flow that ended (default: none)."""
        return ()


class RuleErrors:
    """Counts rule failures per rule id; logs the first failure of each rule."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def record(self, rule: Rule, exc: BaseException) -> None:
        """Count one failure (and log it the first time for this rule)."""
        first = rule.id not in self.counts
        self.counts[rule.id] = self.counts.get(rule.id, 0) + 1
        if first:
            log.error("rule %s failed (isolated, counted): %r", rule.id, exc)


T = TypeVar("T")
A = TypeVar("A")


def run_rule(
    rule: Rule, errors: RuleErrors, hook: Callable[[A], Iterable[T]], arg: A
) -> Iterator[T]:
    """Run one rule hook on ``arg``, isolating any failure: what it yielded before is kept."""
    try:
        yield from hook(arg)
    except Exception as exc:  # a failing rule must not stop the pipeline
        errors.record(rule, exc)
