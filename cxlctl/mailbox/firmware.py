"""Firmware update commands (8.2.9.3)."""

from __future__ import annotations

from ..record import Record
from .layouts import FwInfoOut, fixed_string, parse


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
    s, trailing = parse(FwInfoOut, data, "get-fw-info")
    n = int(s.fw_slots_supported)
    info = int(s.fw_slot_info)
    active, staged = info & 7, (info >> 3) & 7
    slots = tuple(
        FwSlot(i + 1, fixed_string(s.slot_fw_revision[i]), i + 1 == active, i + 1 == staged)
        for i in range(min(n, 4))
    )
    caps = int(s.fw_activation_caps)
    return FwInfo(n, active, staged, bool(caps & 1), info, caps, slots, trailing)
