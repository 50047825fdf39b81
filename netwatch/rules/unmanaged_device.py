"""``unmanaged_device``: a device that identifies as a camera/NVR is not in the inventory.

Only with an inventory (``cameras`` in config): a host recognised as a camera by its
vendor MAC prefix or a discovery reply, but not listed, is reported once per device and
suppression window, whatever it talks to. Without an inventory every discovered camera is
monitored under the default group and this rule stays quiet. Evidence: how it was
recognised (vendor prefix, discovery protocol), its MAC and vendor. Once per device:
every address of one camera (IPv4, IPv6, a new lease) is the same device
(:mod:`netwatch.detect.devices`), and a listed camera stays listed at another address with
its MAC. Known false positives: a listed camera seen at a new address before any flow at
its listed address showed its MAC: list it by MAC.

Options (``rules.unmanaged_device``, ``groups.<name>.rules.unmanaged_device``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from netwatch.alerts.model import RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

if TYPE_CHECKING:
    from netwatch.detect.policy import Policy


class UnmanagedDevice(Rule):
    """A camera that the inventory does not list."""

    @classmethod
    def runs_for(cls, policy: Policy, inventory_size: int) -> bool:
        return inventory_size > 0  # its first check: zero-config, nothing is unmanaged

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if facts.device.managed or not facts.inventory_size:
            return
        yield facts.finding(
            self.id,
            Severity.MEDIUM,
            f"{facts.device.vendor or 'a camera vendor'} device {facts.device.ip} is not in "
            "the inventory",
            {
                "recognised_by": facts.device.how,
                "mac": facts.device.mac,
                "vendor": facts.device.vendor,
            },
            peer=False,
        )
