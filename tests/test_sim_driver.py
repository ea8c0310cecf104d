"""The simulator's driver half, rule by rule (drivers/cxl/core/mbox.c, Linux 6.12)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simio import issue

from cxlctl import mailbox as mb
from cxlctl import uapi
from cxlctl.sim import DeviceConfig, SimDevice, make_devices
from cxlctl.sim.device.model import FileSlice
from cxlctl.uapi import CommandId as K

LSA_RANGE = (0).to_bytes(4, "little") + (64).to_bytes(4, "little")


@pytest.fixture
def raw_dev() -> SimDevice:
    """A device behind a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS."""
    return SimDevice("mem0", DeviceConfig(), raw_commands=True)


def test_raw_is_eperm_without_the_config(pmem: SimDevice) -> None:
    assert issue(pmem, K.RAW, raw_opcode=0x4000).errno == errno.EPERM


def test_raw_reaches_the_device_with_the_config(raw_dev: SimDevice) -> None:
    got = issue(raw_dev, K.RAW, raw_opcode=0x4000)
    assert (got.errno, got.retval, got.out_size) == (0, 0, 69)


@pytest.mark.parametrize(
    "opcode",
    [
        0x0202,
        0x4101,
        0x4103,
        0x4204,
        0x4304,
        0x4305,
        0x4300,
        0x4301,
        0x4302,
        0x4400,
        0x4500,
        0x4601,
    ],
)
def test_raw_deny_list_and_security_sets(raw_dev: SimDevice, opcode: int) -> None:
    assert issue(raw_dev, K.RAW, raw_opcode=opcode).errno == errno.EPERM


def test_raw_allow_all_and_lockdown() -> None:
    allow = SimDevice("mem0", raw_commands=True, raw_allow_all=True)
    assert issue(allow, K.RAW, raw_opcode=0x4500).errno == 0
    locked = SimDevice("mem0", raw_commands=True, raw_allow_all=True, locked_down=True)
    assert issue(locked, K.RAW, raw_opcode=0x4000).errno == errno.EPERM


def test_raw_checks_only_its_own_fields(raw_dev: SimDevice) -> None:
    # cxl_to_mem_cmd_raw() checks raw.rsvd and out.size, not flags or in/out.rsvd
    assert issue(raw_dev, K.RAW, raw_opcode=0x4000, raw_rsvd=1).errno == errno.EINVAL
    assert issue(raw_dev, K.RAW, raw_opcode=0x4000, out_size=2049).errno == errno.EINVAL
    assert issue(raw_dev, K.RAW, raw_opcode=0x4000, flags=4, in_rsvd=1).errno == 0


def test_raw_unknown_opcode_is_a_device_error(raw_dev: SimDevice) -> None:
    got = issue(raw_dev, K.RAW, raw_opcode=0x7777)
    assert got.errno == 0
    assert got.retval == mb.ReturnCode.UNSUPPORTED


def test_query_shows_the_raw_entry_when_configured(raw_dev: SimDevice) -> None:
    from cxlctl import transport as tp

    entry = tp.query(raw_dev)[K.RAW]
    assert (entry.id, entry.size_in, entry.size_out) == (
        K.RAW,
        uapi.CXL_VARIABLE_PAYLOAD,
        uapi.CXL_VARIABLE_PAYLOAD,
    )


def test_device_error_keeps_out_size_and_zero_fills(pmem: SimDevice) -> None:
    # Get LSA beyond the label area: the device says Invalid Input; the kernel
    # still copies its zeroed bounce buffer of out.size bytes back.
    bad = (0x0FFFFFF0).to_bytes(4, "little") + (64).to_bytes(4, "little")
    got = issue(pmem, K.GET_LSA, data=bad, out_size=100)
    assert (got.errno, got.retval, got.out_size) == (0, mb.ReturnCode.INVALID_INPUT, 100)
    assert got.out == bytes(100)


def test_lsa_length_zero_or_above_payload_max_is_invalid_input(pmem: SimDevice) -> None:
    # QEMU 10 asserts (length 0) or corrupts itself (length > payload_max):
    # the simulator teaches the lesson with Invalid Input instead.
    for length in (0, 2049):
        data = (0).to_bytes(4, "little") + length.to_bytes(4, "little")
        assert issue(pmem, K.GET_LSA, data=data).retval == mb.ReturnCode.INVALID_INPUT


def test_variable_output_is_capped_at_payload_max(pmem: SimDevice) -> None:
    got = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=16)
    assert (got.errno, got.out_size) == (0, 16)


def test_bad_input_pointer_is_efault(pmem: SimDevice) -> None:
    assert issue(pmem, K.GET_LSA, data=LSA_RANGE, in_ptr=0x10).errno == errno.EFAULT
    assert not pmem.device.calls  # rejected before the device saw it


@contextlib.contextmanager
def page_then_hole(prot: int) -> Iterator[int]:
    """One page of caller memory with protection ``prot`` and unmapped memory right
    after it: the page's address."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    addr = libc.mmap(None, 8192, prot, flags, -1, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value)
    try:
        libc.munmap(ctypes.c_void_p(addr + 4096), ctypes.c_size_t(4096))
        yield addr
    finally:
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(4096))


def test_readonly_output_buffer_is_efault(pmem: SimDevice) -> None:
    with page_then_hole(mmap.PROT_READ) as addr:
        got = issue(pmem, K.IDENTIFY, out_ptr=addr)
        assert got.errno == errno.EFAULT


def test_buffers_running_into_unmapped_memory_are_efault(pmem: SimDevice) -> None:
    """A payload that starts mapped and ends in a hole: the copy faults part-way,
    and the driver says EFAULT, not a short copy (both directions)."""
    with page_then_hole(mmap.PROT_READ | mmap.PROT_WRITE) as addr:
        near_end = addr + 4096 - 4
        ctypes.memmove(near_end, LSA_RANGE[:4], 4)
        assert issue(pmem, K.GET_LSA, data=LSA_RANGE, in_ptr=near_end).errno == errno.EFAULT
        got = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=64, out_ptr=addr + 4096 - 32)
        assert got.errno == errno.EFAULT
        # and the driver's pipe is clean afterwards: the next command is exact
        ok = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=64)
        assert (ok.errno, ok.out_size, ok.out) == (0, 64, bytes(64))


def test_set_partition_immediate_flag_is_ebusy() -> None:
    (dev,) = make_devices(["mixed"])  # full profile: Set Partition Info is enabled
    data = (0).to_bytes(8, "little") + bytes([1, 0])
    assert issue(dev, K.SET_PARTITION_INFO, data=data).errno == errno.EBUSY
    got = issue(dev, K.SET_PARTITION_INFO, data=bytes(10))
    assert (got.errno, got.retval) == (0, mb.ReturnCode.INVALID_INPUT)


def test_detached_device_is_enxio(pmem: SimDevice) -> None:
    pmem.driver.attached = False
    assert issue(pmem, K.IDENTIFY).errno == errno.ENXIO


def test_short_send_argument_faults(pmem: SimDevice) -> None:
    with pytest.raises(OSError, match="Bad address"):
        pmem.ioctl(uapi.CXL_MEM_SEND_COMMAND, bytearray(47))


def test_fixed_input_length_mismatch_reaches_device_as_invalid_payload_length(
    raw_dev: SimDevice,
) -> None:
    # through RAW the kernel does not check sizes; the device does
    got = issue(raw_dev, K.RAW, raw_opcode=0x4102, data=bytes(4))
    assert got.retval == mb.ReturnCode.INVALID_PAYLOAD_LENGTH


KNOWN_ERRNOS = {0, errno.ENOTTY, errno.EINVAL, errno.ENOMEM, errno.EPERM, errno.EBUSY}


@settings(max_examples=400, deadline=None)
@given(
    cmd_id=st.one_of(st.integers(0, 30), st.integers(0, 2**32 - 1)),
    flags=st.sampled_from([0, 1, 2, 3, 4, 0x80000000]),
    rsvd=st.sampled_from([0, 0, 0, 1]),
    in_rsvd=st.sampled_from([0, 0, 0, 7]),
    out_rsvd=st.sampled_from([0, 0, 0, 9]),
    data=st.binary(max_size=64),
    in_size=st.one_of(st.none(), st.integers(0, 4096)),
    out_size=st.one_of(st.integers(0, 4096), st.just(2**32 - 1)),
    raw_opcode=st.integers(0, 0xFFFF),
)
def test_random_structs_never_crash(
    cmd_id: int,
    flags: int,
    rsvd: int,
    in_rsvd: int,
    out_rsvd: int,
    data: bytes,
    in_size: int | None,
    out_size: int,
    raw_opcode: int,
) -> None:
    """Any struct gives a known errno or a bounded answer; never another exception."""
    dev = SimDevice("mem0", DeviceConfig(), raw_commands=True)
    got = issue(
        dev,
        cmd_id,
        flags=flags,
        rsvd=rsvd,
        in_rsvd=in_rsvd,
        out_rsvd=out_rsvd,
        data=data,
        in_size=in_size,
        out_size=out_size,
        raw_opcode=raw_opcode,
    )
    assert got.errno in KNOWN_ERRNOS
    if got.errno == 0:
        assert got.out_size <= (2048 if out_size == 2**32 - 1 else out_size)
        assert 0 <= got.retval <= 0xFFFF


def test_clear_log_is_for_vendor_debug_logs_only() -> None:
    (dev,) = make_devices(["pmem"])  # full profile lists Clear Log in its CEL
    cel = bytes.fromhex("0da9c0b5bf414b788f7996b1623b3f17")
    assert issue(dev, K.CLEAR_LOG, data=cel).errno == errno.EBUSY
    vendor = bytes.fromhex("5e1819d911a9400c811fd60719403d86")
    assert issue(dev, K.CLEAR_LOG, data=vendor).errno == 0  # reaches the device


def test_identify_supported_logs_and_get_log_are_force_enabled() -> None:
    from cxlctl import transport as tp

    dev = SimDevice("mem0", DeviceConfig(cel=(0x0200,)))  # a bogus, tiny CEL
    enabled = {c.id for c in tp.query(dev) if c.enabled}
    assert enabled == {K.IDENTIFY, K.GET_SUPPORTED_LOGS, K.GET_LOG, K.GET_FW_INFO}
    assert issue(dev, K.IDENTIFY).retval == mb.ReturnCode.UNSUPPORTED


def test_get_lsa_from_the_label_file_is_exact_and_checks_the_output_buffer(
    pmem: SimDevice,
) -> None:
    """Get LSA once the label area has a file: the driver preads straight into the
    caller's buffer. Same bytes, same truncation to out.size, and the same EFAULT
    for a buffer that is read-only or runs into unmapped memory."""
    data = bytes(range(64))
    pmem.device.lsa[0:64] = data  # the first write makes the area's file
    assert isinstance(pmem.device.execute_out(0x4102, LSA_RANGE)[1], FileSlice)
    assert issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=64).out == data
    short = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=16)
    assert (short.errno, short.out_size, short.out) == (0, 16, data[:16])
    at = (32).to_bytes(4, "little") + (8).to_bytes(4, "little")
    assert issue(pmem, K.GET_LSA, data=at, out_size=64).out == data[32:40]

    with page_then_hole(mmap.PROT_READ | mmap.PROT_WRITE) as addr:
        got = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=64, out_ptr=addr + 4096 - 32)
        assert got.errno == errno.EFAULT
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(4096), mmap.PROT_READ) == 0
        got = issue(pmem, K.GET_LSA, data=LSA_RANGE, out_size=64, out_ptr=addr)
        assert got.errno == errno.EFAULT
        assert ctypes.string_at(addr, 64) == bytes(64)  # nothing written to it
    assert pmem.device.execute(0x4102, LSA_RANGE) == (mb.ReturnCode.SUCCESS, data)
