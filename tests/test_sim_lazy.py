"""The simulator builds a simulated device only when something uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxlctl import api
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


@pytest.mark.parametrize("profile", ["full", "qemu", "qemu11"])
def test_the_alert_configuration_is_made_when_first_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str
) -> None:
    """The device makes its alert configuration on first use, from the profile it was
    built with (a later change of the config does not move it) and what an earlier
    process's Set Alert Configuration saved (CXLCTL_SIM_STATE)."""
    from cxlctl.mailbox.health import Alert
    from cxlctl.sim import DeviceConfig, SimDevice

    defaults = {  # (valid, programmable, life critical, life warning, over-temp warning)
        "full": (0x03, 0x1F, 95, 75, 70),
        "qemu": (0, 0x1F, 95, 0, 0),
        "qemu11": (0, 0, 75, 40, 25),
    }

    def seen(dev: SimDevice) -> tuple[int, ...]:
        a = dev.device.alert
        return (
            int(a.valid_alerts),
            int(a.programmable_alerts),
            int(a.life_used_critical_threshold),
            int(a.life_used_programmable_warning_threshold),
            int(a.device_over_temperature_programmable_warning_threshold),
        )

    dev = SimDevice("mem0", DeviceConfig(profile=profile))
    assert dev.device._alert is None  # built, without an alert configuration yet
    dev.config.profile = "qemu11" if profile != "qemu11" else "full"  # after the build
    assert seen(dev) == defaults[profile]

    if profile == "qemu":  # QEMU 10's CEL has no Get/Set Alert Configuration
        return
    monkeypatch.setenv("CXLCTL_SIM_PROFILE", profile)
    monkeypatch.setenv("CXLCTL_SIM_STATE", str(tmp_path))
    with api.Device(Memdev(SimBackend(), "mem0")) as d:
        d.set_alert_config({Alert.LIFE_USED: 33})
        want = d.alert_config()
    b = SimBackend()  # another process: the saved configuration, not the defaults
    assert int(b.devices["mem0"].device.alert.life_used_programmable_warning_threshold) == 33
    with api.Device(Memdev(b, "mem0")) as d:
        assert d.alert_config() == want
