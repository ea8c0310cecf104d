"""uapi.py mirrors include/uapi/linux/cxl_mem.h (Linux 6.12)."""

from __future__ import annotations

import ctypes

from cxlctl import uapi
from cxlctl.uapi import CommandId as K


def test_ioctl_numbers_are_the_kernels() -> None:
    assert uapi.CXL_MEM_QUERY_COMMANDS == 0x8008CE01
    assert uapi.CXL_MEM_SEND_COMMAND == 0xC030CE02


def test_struct_sizes_and_offsets() -> None:
    assert ctypes.sizeof(uapi.cxl_command_info) == 16
    assert ctypes.sizeof(uapi.cxl_mem_query_commands) == 8
    assert ctypes.sizeof(uapi.cxl_send_command) == 48
    s = uapi.cxl_send_command
    offsets = {
        name: getattr(s, name).offset for name in ("id", "flags", "u", "retval", "in_", "out")
    }
    assert offsets == {"id": 0, "flags": 4, "u": 8, "retval": 12, "in_": 16, "out": 32}


def test_raw_union_overlays_rsvd() -> None:
    s = uapi.cxl_send_command()
    s.raw.opcode, s.raw.rsvd = 0x4000, 0x1
    assert s.rsvd == 0x0001_4000
    assert bytes(s)[8:12] == bytes.fromhex("00400100")


def test_command_ids_and_names() -> None:
    assert K.MAX.value == 25
    assert len(uapi.COMMAND_NAMES) == 26
    assert uapi.COMMAND_NAMES[K.IDENTIFY] == "Identify Command"
    assert uapi.COMMAND_NAMES[K.GET_SUP_LOG_SUBLIST] == "Get Supported Logs Sub-List"
    assert all(uapi.COMMAND_NAMES[i].startswith("Deprecated ") for i in uapi.DEPRECATED_IDS)
    assert {15, 16, 17, 19, 20} == uapi.DEPRECATED_IDS


def test_query_buffer() -> None:
    buf = uapi.query_buffer(3)
    assert len(buf) == 8 + 3 * 16
    assert buf[:4] == (3).to_bytes(4, "little")
