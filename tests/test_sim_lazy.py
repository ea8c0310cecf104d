"""The simulator builds a simulated device only when something uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxlctl.backends import SimBackend
from cxlctl.memdev import Memdev


def _built(b: SimBackend) -> list[bool]:
    return [d.built for d in b.devices.values()]


def test_names_and_sysfs_build_no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CXLCTL_SIM_STATE", raising=False)
    b = SimBackend()
    assert b.names() == ["mem0", "mem1", "mem2"]
    assert [b.sysfs(n)["security/state"] for n in b.names()] == ["disabled"] * 3
    assert _built(b) == [False, False, False]
    with Memdev(b, "mem1") as md:
        assert md.identify().label_storage_size == 256 << 20
    assert _built(b) == [False, True, False]


def test_a_lazy_device_keeps_its_health_profile_and_saved_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CXLCTL_SIM_HEALTH", "mem2:critical")
    monkeypatch.setenv("CXLCTL_SIM_STATE", str(tmp_path))
    SimBackend().disable("mem0")
    b = SimBackend()
    assert _built(b) == [False, False, False]
    assert b.enabled("mem0") is False  # the earlier process's unbind, read when built
    with Memdev(b, "mem2") as md:
        assert md.health().health_status != 0
    with Memdev(b, "mem1") as md:
        assert md.health().health_status == 0
