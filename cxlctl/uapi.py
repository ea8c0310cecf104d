"""Line-by-line mirror of ``include/uapi/linux/cxl_mem.h`` as of Linux 6.12.

ctypes structures with the kernel's field names (``in`` is spelled ``in_``) and
ioctl request numbers computed with ioctl-opt from the structure types, as the
C macros do.
"""

from __future__ import annotations

import ctypes
import enum
import struct

from ioctl_opt import IOR, IOWR

# --- command ids: the CXL_CMDS X-macro (append-only in the kernel) ----------


class CommandId(enum.IntEnum):
    """``CXL_MEM_COMMAND_ID_*`` and ``CXL_MEM_DEPRECATED_ID_*``."""

    INVALID = 0
    IDENTIFY = 1
    RAW = 2
    GET_SUPPORTED_LOGS = 3
    GET_FW_INFO = 4
    GET_PARTITION_INFO = 5
    GET_LSA = 6
    GET_HEALTH_INFO = 7
    GET_LOG = 8
    SET_PARTITION_INFO = 9
    SET_LSA = 10
    GET_ALERT_CONFIG = 11
    SET_ALERT_CONFIG = 12
    GET_SHUTDOWN_STATE = 13
    SET_SHUTDOWN_STATE = 14
    GET_POISON = 15  # deprecated
    INJECT_POISON = 16  # deprecated
    CLEAR_POISON = 17  # deprecated
    GET_SCAN_MEDIA_CAPS = 18
    SCAN_MEDIA = 19  # deprecated
    GET_SCAN_MEDIA = 20  # deprecated
    GET_TIMESTAMP = 21
    GET_LOG_CAPS = 22
    CLEAR_LOG = 23
    GET_SUP_LOG_SUBLIST = 24
    MAX = 25


#: ``cxl_command_names[]``: the kernel's names, "Deprecated " prefix included.
COMMAND_NAMES: dict[int, str] = {
    0: "Invalid Command",
    1: "Identify Command",
    2: "Raw device command",
    3: "Get Supported Logs",
    4: "Get FW Info",
    5: "Get Partition Information",
    6: "Get Label Storage Area",
    7: "Get Health Info",
    8: "Get Log",
    9: "Set Partition Information",
    10: "Set Label Storage Area",
    11: "Get Alert Configuration",
    12: "Set Alert Configuration",
    13: "Get Shutdown State",
    14: "Set Shutdown State",
    15: "Deprecated Get Poison List",
    16: "Deprecated Inject Poison",
    17: "Deprecated Clear Poison",
    18: "Get Scan Media Capabilities",
    19: "Deprecated Scan Media",
    20: "Deprecated Get Scan Media Results",
    21: "Get Timestamp",
    22: "Get Log Capabilities",
    23: "Clear Log",
    24: "Get Supported Logs Sub-List",
    25: "invalid / last command",
}

#: ``cxl_deprecated_commands[]``
DEPRECATED_IDS: frozenset[int] = frozenset({15, 16, 17, 19, 20})

CXL_MEM_COMMAND_FLAG_ENABLED = 1 << 0
CXL_MEM_COMMAND_FLAG_EXCLUSIVE = 1 << 1
CXL_MEM_COMMAND_FLAG_MASK = 0b11  # GENMASK(1, 0)

#: ``size_in``/``size_out`` value meaning "variable length" (``~0``).
CXL_VARIABLE_PAYLOAD = 0xFFFFFFFF


class cxl_command_info(ctypes.LittleEndianStructure):  # noqa: N801 - kernel name
    """``struct cxl_command_info``: one entry of the QUERY reply."""

    _pack_ = 1
    _layout_ = "ms"
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("size_in", ctypes.c_uint32),
        ("size_out", ctypes.c_uint32),
    ]


class cxl_mem_query_commands(ctypes.LittleEndianStructure):  # noqa: N801
    """``struct cxl_mem_query_commands`` (header; ``commands[]`` follows)."""

    _pack_ = 1
    _layout_ = "ms"
    _fields_ = [
        ("n_commands", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint32),
        # struct cxl_command_info commands[];  (flexible array member)
    ]


class _Raw(ctypes.LittleEndianStructure):
    _pack_ = 1
    _layout_ = "ms"
    _fields_ = [("opcode", ctypes.c_uint16), ("rsvd", ctypes.c_uint16)]


class _RawUnion(ctypes.Union):
    _pack_ = 1
    _layout_ = "ms"
    _fields_ = [("raw", _Raw), ("rsvd", ctypes.c_uint32)]


class _Payload(ctypes.LittleEndianStructure):
    _pack_ = 1
    _layout_ = "ms"
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint32),
        ("payload", ctypes.c_uint64),
    ]


class cxl_send_command(ctypes.LittleEndianStructure):  # noqa: N801
    """``struct cxl_send_command`` with the anonymous raw/rsvd union."""

    _pack_ = 1
    _layout_ = "ms"
    _anonymous_ = ("u",)
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("u", _RawUnion),
        ("retval", ctypes.c_uint32),
        ("in_", _Payload),
        ("out", _Payload),
    ]


#: ``_IOR(0xCE, 1, struct cxl_mem_query_commands)``
CXL_MEM_QUERY_COMMANDS: int = IOR(0xCE, 1, cxl_mem_query_commands)
#: ``_IOWR(0xCE, 2, struct cxl_send_command)``
CXL_MEM_SEND_COMMAND: int = IOWR(0xCE, 2, cxl_send_command)

SEND_SIZE = ctypes.sizeof(cxl_send_command)

#: ``struct cxl_send_command`` as one :class:`struct.Struct`, for packing and
#: unpacking in one call: id, flags, raw.opcode, raw.rsvd, retval, in.size,
#: in.rsvd, in.payload, out.size, out.rsvd, out.payload (pinned in tests/test_uapi.py)
SEND_FORMAT = struct.Struct("<IIHHIIIQIIQ")
SEND_RETVAL_OFFSET: int = cxl_send_command.retval.offset
SEND_OUT_SIZE_OFFSET: int = cxl_send_command.out.offset + _Payload.size.offset
QUERY_HEADER_SIZE = ctypes.sizeof(cxl_mem_query_commands)
COMMAND_INFO_SIZE = ctypes.sizeof(cxl_command_info)


def query_buffer(n_commands: int) -> bytearray:
    """A zeroed QUERY argument with room for ``n_commands`` entries."""
    buf = bytearray(QUERY_HEADER_SIZE + n_commands * COMMAND_INFO_SIZE)
    cxl_mem_query_commands.from_buffer(buf).n_commands = n_commands
    return buf
