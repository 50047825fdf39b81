"""``cloud_enabled``: a camera announces on the LAN that its cloud/P2P service is on.

Fires when a camera's discovery reply says its vendor cloud is switched on (Hikvision SADP
``HCPlatformEnable`` true: Hik-Connect/EZVIZ). The camera may not have registered yet,
or its registration may be blocked at the firewall, but it will keep trying, and a
setting can be seen before any traffic leaves. Evidence: the discovery protocol, model,
firmware and serial. Known false positives: none expected; sites that use the vendor
cloud on purpose should switch this rule off for the group (or accept it).

Options (``rules.cloud_enabled``, ``groups.<name>.rules.cloud_enabled``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import RuleAlert, Severity
from netwatch.deep.discovery import DeviceIdentity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class CloudEnabled(Rule):
    """A camera's discovery reply says its cloud service is enabled."""

    needs_app = True  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        key = "discovery" if facts.device_is_orig else "discovery_resp"
        ident = facts.app.get(key)
        if not isinstance(ident, DeviceIdentity) or ident.cloud_enabled is not True:
            return
        yield facts.finding(
            self.id,
            Severity.HIGH,
            f"{facts.device.name} announces ({ident.protocol}) that its "
            f"{ident.vendor or 'vendor'} cloud service is enabled",
            {
                "protocol": ident.protocol,
                "model": ident.model,
                "firmware": ident.firmware,
                "serial": ident.serial,
            },
            peer=False,
        )
