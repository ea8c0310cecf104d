"""Regressions for simulator bugs the kernel tier's differential test found.

Each case is what Linux 6.12 + QEMU 10's cxl-type3 answered (tests/kernel/
test_differential.py, run by tools/vm/kernel-tier) and the simulator once did not.
"""

from __future__ import annotations

import ctypes
import struct
import uuid
from typing import Any

import pytest
from simio import Outcome
from simio import issue as _issue

from cxlctl import mailbox as mb
from cxlctl.sim import SimDevice
from cxlctl.uapi import CommandId as K

PM = 2048
RC = mb.ReturnCode
CEL = uuid.UUID("0da9c0b5-bf41-4b78-8f79-96b1623b3f17").bytes


def issue(dev: SimDevice, cmd_id: int, **kw: Any) -> Outcome:
    """simio.issue with an output buffer of payload_max + out.size, whatever out.size says."""
    buf = ctypes.create_string_buffer(PM + max(int(kw.get("out_size", PM)), 0) + 4096)
    o = _issue(dev, cmd_id, out_ptr=ctypes.addressof(buf), **kw)
    return Outcome(o.errno, o.retval, o.out_size, buf.raw[: max(o.out_size, 0)])


@pytest.mark.parametrize("out_size", [-2, -(1 << 31), PM + 1, PM + 4096])
def test_identify_out_size_beyond_payload_max_is_clamped(pmem: SimDevice, out_size: int) -> None:
    # out.size is compared as u32 (so -2 passes the size_out check) and the bounce
    # buffer is at most payload_max: the kernel answered ok, 69 bytes
    o = issue(pmem, K.IDENTIFY, out_size=out_size)
    assert (o.errno, o.retval, o.out_size) == (0, 0, 69)


@pytest.mark.parametrize("out_size", [-2, PM + 1, 1 << 16])
def test_device_error_reports_at_most_payload_max(pmem: SimDevice, out_size: int) -> None:
    # Get LSA past the label area: Invalid Input, out.size = payload_max (not out.size)
    o = issue(pmem, K.GET_LSA, data=struct.pack("<II", 0xFFFFFFF0, PM), out_size=out_size)
    assert (o.errno, o.retval, o.out_size) == (0, RC.INVALID_INPUT, PM)


def test_get_log_unknown_uuid_is_invalid_log_even_with_length_0(pmem: SimDevice) -> None:
    o = issue(pmem, K.GET_LOG, data=bytes(16) + struct.pack("<II", 0, 0))
    assert (o.errno, o.retval) == (0, RC.INVALID_LOG)


def test_get_log_length_over_payload_max_is_invalid_input(pmem: SimDevice) -> None:
    o = issue(pmem, K.GET_LOG, data=bytes(16) + struct.pack("<II", 0, PM + 1))
    assert (o.errno, o.retval) == (0, RC.INVALID_INPUT)


@pytest.mark.parametrize(
    ("dpa", "lines", "rc", "ms"),
    [
        (64, 0, RC.SUCCESS, 1),  # length 0 is fine on QEMU
        (0, 1 << 22, RC.SUCCESS, 2097),  # 256 MiB at 500 ns per line
        (3, 1, RC.INVALID_INPUT, None),  # misaligned: Invalid Input first
        (3, 1 << 40, RC.INVALID_INPUT, None),
        (1 << 28, 1, RC.INVALID_PHYSICAL_ADDRESS, None),  # past the device
    ],
)
def test_scan_media_caps_like_qemu(
    pmem: SimDevice, dpa: int, lines: int, rc: int, ms: int | None
) -> None:
    o = issue(pmem, K.GET_SCAN_MEDIA_CAPS, data=struct.pack("<QQ", dpa, lines), out_size=4)
    assert (o.errno, o.retval) == (0, rc)
    if ms is not None:
        assert int.from_bytes(o.out, "little") == ms
