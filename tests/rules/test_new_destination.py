"""Tests for netwatch.rules.new_destination: the baseline key it builds per camera flow end
(without the named tuple's own constructor) is a whole ``DestinationKey``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netwatch.detect.baseline import Baseline, DestinationKey
from netwatch.testing import pcapgen as g
from tests.rules.test_rules import CLOUD, FOREIGN, NEW_DEST_CONFIG, _flows_to, replay


def test_the_baseline_key_is_a_whole_destination_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[Any] = []
    decide = Baseline.decide

    def recorded(self: Baseline, key: DestinationKey, ts: float) -> Any:
        keys.append(key)
        return decide(self, key, ts)

    monkeypatch.setattr(Baseline, "decide", recorded)
    t = g.Trace()
    _flows_to(t, [(FOREIGN, 1), (CLOUD, 100)])
    alerts = [a for a in replay(tmp_path, t, NEW_DEST_CONFIG) if a["rule"] == "new_destination"]
    assert len(alerts) == 1
    assert [key.dest for key in keys] == ["89.160.20.0/24", "175.16.199.0/24"]
    for key in keys:
        assert type(key) is DestinationKey and len(key) == len(DestinationKey._fields)
        assert DestinationKey(*key) == key and key.device == "lobby-1" and key.proto == "udp"
