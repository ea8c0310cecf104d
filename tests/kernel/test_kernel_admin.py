"""The write-side verbs against the real driver: disable-memdev -> write-labels ->
read-labels -> enable-memdev (restoring the label bytes), and set-alert-config,
which Linux enables for QEMU 11's cxl-type3 (7.3 stack) but not for QEMU 10's."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from .conftest import STACK, Memdev, cli_commands, cxlctl, cxlctl_bytes

OFFSET = 0x20000  # away from the namespace index blocks, and from test_kernel_labels'


def _needs(cmd: str) -> None:
    if cmd not in cli_commands():
        pytest.skip(f"this cxlctl has no {cmd}")


def test_disable_write_read_enable(pmem: Memdev) -> None:
    _needs("write-labels")
    m = pmem
    assert m.bound
    data = bytes((i * 7 + 3) & 0xFF for i in range(3 * m.payload_max))  # several commands
    n = str(len(data))
    before = cxlctl_bytes("read-labels", m.name, "-O", str(OFFSET), "-s", n)
    with tempfile.TemporaryDirectory() as tmp:
        new, old = Path(tmp) / "new.bin", Path(tmp) / "old.bin"
        new.write_bytes(data)
        old.write_bytes(before)

        r = cxlctl("write-labels", "-y", m.name, "-O", str(OFFSET), "-i", str(new))
        assert r.returncode == 7, r
        assert "label area is owned by the nvdimm bridge" in r.stderr

        r = cxlctl("disable-memdev", m.name)
        assert r.returncode == 0, r
        try:
            assert not m.bound
            (listed,) = json.loads(cxlctl("list", m.name, "-i", "--json").stdout)
            assert listed["state"] == "disabled"
            (q,) = json.loads(cxlctl("query", m.name, "--json").stdout)
            set_lsa = next(c for c in q["commands"] if c["id"] == 10)
            assert not set_lsa["exclusive"]  # the nvdimm bridge's claim went with cxl_mem

            r = cxlctl("write-labels", "-y", m.name, "-O", str(OFFSET), "-i", str(new), "--verify")
            assert r.returncode == 0, r
            assert cxlctl_bytes("read-labels", m.name, "-O", str(OFFSET), "-s", n) == data
            r = cxlctl("write-labels", "-y", m.name, "-O", str(OFFSET), "-i", str(old), "--verify")
            assert r.returncode == 0, r
        finally:
            r = cxlctl("enable-memdev", m.name)
            if r.returncode != 0:  # leave the VM usable for the other tests
                Path("/sys/bus/cxl/drivers/cxl_mem/bind").write_text(m.name)
            assert r.returncode == 0, r
        assert m.bound
        assert "state" not in json.loads(cxlctl("list", m.name, "-i", "--json").stdout)[0]
        assert cxlctl_bytes("read-labels", m.name, "-O", str(OFFSET), "-s", n) == before
        r = cxlctl("zero-labels", "-y", m.name, "-O", str(OFFSET), "-s", "64")
        assert r.returncode == 7, r  # the bridge owns the labels again


def _alert_config(m: Memdev) -> dict[str, object]:
    r = cxlctl("alert-config", m.name, "--json")
    assert r.returncode == 0, r
    (d,) = json.loads(r.stdout)
    assert isinstance(d, dict)
    return d


def test_set_alert_config(pmem: Memdev) -> None:
    _needs("set-alert-config")
    r = cxlctl("set-alert-config", pmem.name, "-L", "80")
    assert r.returncode == 2, r
    assert "Action not specified" in r.stderr
    if not STACK.alert_config:  # QEMU 10: not in the CEL, so Linux never enabled it
        r = cxlctl("set-alert-config", pmem.name, "-L", "80", "--life-used-alert", "on")
        assert r.returncode == 4, r
        assert "[ENOTTY]" in r.stderr
        return
    # QEMU 11.1: life used critical 75, over-temperature critical 35 (its defaults)
    before = _alert_config(pmem)
    assert before["life_used_crit_alert_threshold"] == 75
    assert before["dev_over_temperature_crit_alert_threshold"] == 35
    r = cxlctl("set-alert-config", pmem.name, "-L", "80", "--life-used-alert", "on")
    assert r.returncode == 3, r  # not below the critical threshold
    assert "Invalid Input" in r.stderr
    assert _alert_config(pmem) == before
    r = cxlctl("set-alert-config", pmem.name, "-O", "40", "--over-temperature-alert", "on")
    assert r.returncode == 3, r  # above the over-temperature critical threshold
    assert _alert_config(pmem) == before
    r = cxlctl("set-alert-config", pmem.name, "-L", "30", "--life-used-alert", "on", "--json")
    assert r.returncode == 0, r
    after = _alert_config(pmem)
    assert after["life_used_prog_warn_threshold"] == 30
    # QEMU sets the alert's bit in Programmable Alerts (byte 1), not in Valid Alerts
    assert after["life_used_prog_warn_threshold_writable"] is True
    assert after["life_used_prog_warn_threshold_valid"] is False
    unchanged = {k: v for k, v in after.items() if not k.startswith("life_used_prog")}
    assert unchanged == {k: v for k, v in before.items() if not k.startswith("life_used_prog")}
