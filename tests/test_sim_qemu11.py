"""The simulator's ``qemu11`` profile: QEMU 11.1's cxl-type3 as the 7.3 kernel tier saw it.

Captured on Linux 7.3.4 + QEMU 11.1.3 (tools/vm/kernel-tier --stack 7.3, and
../shared/reference/linux-7.3-qemu-11.md): a 31-entry CEL, Get/Set Alert
Configuration enabled, QEMU's alert defaults, and QEMU's own Set Alert
Configuration rules (Enable bits ignored, partial application, unsigned compares).
"""

from __future__ import annotations

import struct

import pytest
from simio import issue

from cxlctl import mailbox as mb
from cxlctl import transport as tp
from cxlctl.sim import PROFILES, QEMU11_CEL, QEMU_CEL, DeviceConfig, SimDevice, make_devices
from cxlctl.uapi import CommandId as K

RC = mb.ReturnCode
#: Get Alert Configuration right after QEMU 11.1 starts (kernel-tier capture)
QEMU11_ALERT_DEFAULT = bytes.fromhex("00004b2823000a001900140000000000")


@pytest.fixture
def dev() -> SimDevice:
    return SimDevice("mem0", DeviceConfig(profile="qemu11"), nvdimm_bridge=True)


def alert(d: SimDevice) -> bytes:
    o = issue(d, K.GET_ALERT_CONFIG)
    assert (o.errno, o.retval, o.out_size) == (0, 0, 16)
    return o.out


def set_alert(d: SimDevice, valid: int, enable: int = 0, life: int = 0, over: int = 0,
              under: int = 0, vol: int = 0, pers: int = 0) -> int:  # fmt: skip
    data = struct.pack("<BBBxHHHH", valid, enable, life, over, under, vol, pers)
    o = issue(d, K.SET_ALERT_CONFIG, data=data, out_size=0)
    assert o.errno == 0
    return o.retval


def test_profiles() -> None:
    assert PROFILES == ("full", "qemu", "qemu11")
    assert [d.device.config.cel for d in make_devices(["pmem"], profile="qemu11")] == [QEMU11_CEL]
    with pytest.raises(ValueError, match="qemu11"):
        make_devices(["pmem"], profile="qemu12")


def test_cel_has_qemu11s_31_entries_and_effects(dev: SimDevice) -> None:
    cel = dev.device.cel_bytes()
    assert len(cel) == 124
    entries = [struct.unpack_from("<HH", cel, i) for i in range(0, len(cel), 4)]
    assert [op for op, _ in entries] == list(QEMU11_CEL)
    assert set(QEMU_CEL) < set(QEMU11_CEL)
    assert set(QEMU11_CEL) - set(QEMU_CEL) == {0x0005, 0x0600, 0x4201, 0x4202, 0x4402}
    effects = dict(entries)
    # the background commands also say "secondary mailbox supported" on QEMU 11.1
    assert (effects[0x0201], effects[0x0202], effects[0x4304], effects[0x4400]) == (
        0xC0, 0xC0, 0xC0, 0xE4)  # fmt: skip
    assert (effects[0x0600], effects[0x4402], effects[0x4202]) == (0x56, 0x44, 0x08)
    # Get Supported Logs advertises the 124-byte CEL
    o = issue(dev, K.GET_SUPPORTED_LOGS)
    assert o.out[24:28] == (124).to_bytes(4, "little")


def test_linux_enables_the_alert_commands(dev: SimDevice) -> None:
    by_id = {c.id: c for c in tp.query(dev)}
    assert by_id[K.GET_ALERT_CONFIG].enabled
    assert by_id[K.SET_ALERT_CONFIG].enabled
    assert not by_id[K.GET_HEALTH_INFO].enabled
    qemu10 = SimDevice("mem1", DeviceConfig(profile="qemu"))
    assert not {c.id: c for c in tp.query(qemu10)}[K.GET_ALERT_CONFIG].enabled


def test_alert_defaults(dev: SimDevice) -> None:
    assert alert(dev) == QEMU11_ALERT_DEFAULT


def test_set_life_used_sets_programmable_not_valid(dev: SimDevice) -> None:
    assert set_alert(dev, valid=1, enable=1, life=30) == RC.SUCCESS
    assert alert(dev)[:4] == bytes([0x00, 0x01, 75, 30])


def test_enable_bits_are_ignored(dev: SimDevice) -> None:
    # "off" (Valid set, Enable clear) still writes the threshold on QEMU 11.1
    assert set_alert(dev, valid=2, enable=0, over=20) == RC.SUCCESS
    a = alert(dev)
    assert a[1] == 0x02
    assert struct.unpack_from("<H", a, 8)[0] == 20


@pytest.mark.parametrize(
    ("valid", "kw"),
    [(1, {"life": 75}), (1, {"life": 200}), (2, {"over": 35}), (2, {"over": 40}),
     (4, {"under": 10}), (4, {"under": 0})],
)  # fmt: skip
def test_threshold_checks_are_invalid_input_and_change_nothing(
    dev: SimDevice, valid: int, kw: dict[str, int]
) -> None:
    assert set_alert(dev, valid=valid, **kw) == RC.INVALID_INPUT
    assert alert(dev) == QEMU11_ALERT_DEFAULT


def test_a_failing_bit_keeps_what_earlier_bits_changed(dev: SimDevice) -> None:
    # observed: valid 0x1f with all-zero thresholds -> life 0 and over 0 applied,
    # then under-temperature 0 <= 10 is Invalid Input
    assert set_alert(dev, valid=0x1F) == RC.INVALID_INPUT
    assert alert(dev) == bytes.fromhex("00034b0023000a000000140000000000")


def test_temperatures_compare_unsigned(dev: SimDevice) -> None:
    # observed: under-temperature 0xff00 (-256 signed) is above 10 as QEMU's uint16
    assert set_alert(dev, valid=4, under=0xFF00) == RC.SUCCESS
    assert alert(dev)[10:12] == b"\x00\xff"


def test_error_counts_are_taken_as_given(dev: SimDevice) -> None:
    assert set_alert(dev, valid=0x18, vol=0xFFFF, pers=7) == RC.SUCCESS
    a = alert(dev)
    assert a[1] == 0x18
    assert a[12:16] == b"\xff\xff\x07\x00"


def test_reserved_valid_bits_are_ignored(dev: SimDevice) -> None:
    assert set_alert(dev, valid=0xE0) == RC.SUCCESS
    assert alert(dev) == QEMU11_ALERT_DEFAULT


def test_identify_is_qemu_shaped(dev: SimDevice) -> None:
    qemu10 = SimDevice("mem1", DeviceConfig(profile="qemu"))
    assert issue(dev, K.IDENTIFY).out == issue(qemu10, K.IDENTIFY).out
