"""Firmware update commands (8.2.9.3)."""

from __future__ import annotations

import struct

from ..record import Record
from .layouts import unpack

#: FwInfoOut as one struct format (size pinned against the layout in the tests)
FW_INFO_FORMAT = struct.Struct("<BBB13x16s16s16s16s")


class FwSlot(Record):
    slot: int
    version: str
    active: bool
    staged: bool


class FwInfo(Record):
    num_slots: int
    active_slot: int
    staged_slot: int
    online_activate_capable: bool
    fw_slot_info: int  #: raw FW Slot Info byte (active: bits 2:0, staged: bits 5:3)
    fw_activation_caps: int  #: raw FW Activation Capabilities byte
    slots: tuple[FwSlot, ...]
    trailing_bytes: int


def decode_fw_info(data: bytes) -> FwInfo:
    (n, info, caps, *revisions), trailing = unpack(FW_INFO_FORMAT, data, "get-fw-info")
    active, staged = info & 7, (info >> 3) & 7
    slots = tuple(
        [
            FwSlot(
                i,
                revisions[i - 1].split(b"\0", 1)[0].decode("ascii", "backslashreplace"),
                i == active,
                i == staged,
            )
            for i in range(1, min(n, 4) + 1)
        ]
    )
    return FwInfo(n, active, staged, bool(caps & 1), info, caps, slots, trailing)
