"""The simulated device packs Identify, Get Partition Info, Get FW Info and Get Health
Info with one precompiled struct each: byte for byte what filling the ctypes layouts
(``cxlctl.mailbox.layouts``) field by field gives, on random device states (field
values past their width included: a ctypes field keeps the low bits)."""

from __future__ import annotations

import ctypes
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl.mailbox import layouts as lay
from cxlctl.sim import DeviceConfig, SimDevice, TypeThreeDevice

UNIT = mb.CAPACITY_UNIT
#: capacities: realistic multiples of 256 MiB, odd byte counts, and past 64 bits
capacities = st.one_of(
    st.integers(0, 64).map(lambda n: n * UNIT),
    st.integers(0, 1 << 40),
    st.integers(-(1 << 96), 1 << 96),
)
profiles = st.sampled_from(["full", "qemu", "qemu11"])
revisions = st.text(max_size=20)  # non-ASCII and longer than 16 bytes included


def _device(profile: str, **config: Any) -> TypeThreeDevice:
    return SimDevice("mem0", DeviceConfig(profile=profile, **config)).device


def _answer(dev: TypeThreeDevice, cmd: mb.Command[Any]) -> bytes:
    rc, out = dev.execute(cmd.opcode, b"")
    assert rc == mb.ReturnCode.SUCCESS
    return out


def _put(field: Any, data: bytes) -> None:
    ctypes.memmove(field, data, len(data))


@settings(max_examples=300, deadline=None)
@given(
    profile=profiles,
    vol=capacities,
    pers=capacities,
    align=st.one_of(st.just(0), st.integers(0, 1 << 30).map(lambda n: n * UNIT)),
    lsa=st.integers(0, 1 << 40),
    fw=revisions,
)
def test_identify_is_the_layouts_bytes(
    profile: str, vol: int, pers: int, align: int, lsa: int, fw: str
) -> None:
    dev = _device(profile, lsa_size=0)
    c = dev.config  # set after the build, as tests and Set Partition Info do
    c.volatile_bytes, c.persistent_bytes, c.partition_align = vol, pers, align
    c.lsa_size, c.fw_revision = lsa, fw
    want = lay.IdentifyOut3(dc_event_log_size=8)
    b = want.base
    _put(b.fw_revision, fw.encode()[:16])
    b.total_capacity = (vol + pers) // UNIT
    b.volatile_capacity = 0 if align else vol // UNIT
    b.persistent_capacity = 0 if align else pers // UNIT
    b.partition_align = align // UNIT
    logs = (0, 0, 0, 0) if profile != "full" else (32, 32, 16, 16)
    (
        b.info_event_log_size,
        b.warning_event_log_size,
        b.failure_event_log_size,
        b.fatal_event_log_size,
    ) = logs
    b.lsa_size = lsa
    b.poison_list_max_mer[:] = (0, 1, 0)  # 256 records
    assert _answer(dev, mb.IDENTIFY) == bytes(want)


@settings(max_examples=300, deadline=None)
@given(profile=profiles, vol=capacities, pers=capacities, nxt_vol=capacities, nxt_pers=capacities)
def test_partition_info_is_the_layouts_bytes(
    profile: str, vol: int, pers: int, nxt_vol: int, nxt_pers: int
) -> None:
    dev = _device(profile)
    dev.config.volatile_bytes, dev.config.persistent_bytes = vol, pers
    dev.next_volatile, dev.next_persistent = nxt_vol, nxt_pers
    want = lay.PartitionInfoOut(
        active_volatile_capacity=vol // UNIT,
        active_persistent_capacity=pers // UNIT,
        next_volatile_capacity=nxt_vol // UNIT,
        next_persistent_capacity=nxt_pers // UNIT,
    )
    assert _answer(dev, mb.GET_PARTITION_INFO) == bytes(want)


@settings(max_examples=300, deadline=None)
@given(
    profile=profiles,
    active=st.integers(0, 9),
    staged=st.integers(0, 9),
    slots=st.dictionaries(st.integers(-1, 6), revisions, max_size=6),
)
def test_fw_info_is_the_layouts_bytes(
    profile: str, active: int, staged: int, slots: dict[int, str]
) -> None:
    dev = _device(profile)
    dev.fw.active_slot, dev.fw.staged_slot, dev.fw.slots = active, staged, slots
    want = lay.FwInfoOut(
        fw_slots_supported=2,
        fw_slot_info=(active & 7) | ((staged & 7) << 3),
        fw_activation_caps=1,
    )
    for slot, rev in slots.items():
        if 1 <= slot <= 4:
            _put(want.slot_fw_revision[slot - 1], rev.encode()[:16])
    assert _answer(dev, mb.GET_FW_INFO) == bytes(want)


def test_fw_info_of_a_fresh_device() -> None:
    """The defaults the list shows: slot 1 active, slot 2 staged (full profile)."""
    out = _answer(_device("full"), mb.GET_FW_INFO)
    info = lay.FwInfoOut.from_buffer_copy(out)
    assert (info.fw_slots_supported, info.fw_slot_info, info.fw_activation_caps) == (2, 0x11, 1)
    assert bytes(info.slot_fw_revision[0]).rstrip(b"\0") == b"BWFW VERSION 0"
    assert bytes(info.slot_fw_revision[1]).rstrip(b"\0") == b"BWFW VERSION 1"


@settings(max_examples=300, deadline=None)
@given(
    status=st.tuples(*[st.integers(0, 0x3FF)] * 4),
    temperature=st.integers(-(1 << 17), 1 << 17),
    counts=st.tuples(*[st.integers(0, 1 << 34)] * 3),
    health=st.sampled_from([None, "normal", "warning", "critical"]),
)
def test_health_info_is_the_layouts_bytes(
    status: tuple[int, int, int, int],
    temperature: int,
    counts: tuple[int, int, int],
    health: str | None,
) -> None:
    dev = _device("full")  # the QEMU CELs have no Get Health Info
    if health is None:  # random values, past each field's width
        dev.health_status, dev.media_status, dev.additional_status, dev.life_used = status
        dev.temperature = temperature
        (
            dev.dirty_shutdown_count,
            dev.corrected_volatile_errors,
            dev.corrected_persistent_errors,
        ) = counts
    else:  # CXLCTL_SIM_HEALTH's profiles
        from cxlctl.sim import apply_health

        apply_health(dev, health)
    want = lay.HealthInfoOut(
        health_status=dev.health_status,
        media_status=dev.media_status,
        additional_status=dev.additional_status,
        life_used=dev.life_used,
        device_temperature=dev.temperature,
        dirty_shutdown_count=dev.dirty_shutdown_count,
        corrected_volatile_error_count=dev.corrected_volatile_errors,
        corrected_persistent_error_count=dev.corrected_persistent_errors,
    )
    assert _answer(dev, mb.GET_HEALTH_INFO) == bytes(want)
