"""Memory device commands: Identify (8.2.9.9.1) and partitions (8.2.9.9.2)."""

from __future__ import annotations

import struct

from ..record import Record
from . import CAPACITY_UNIT
from .layouts import PartitionInfoOut, parse, unpack

#: IdentifyOut / IdentifyOut3 as struct formats (sizes pinned against the layouts)
IDENTIFY_FORMAT = struct.Struct("<16sQQQQHHHHI3sHBB")
IDENTIFY3_FORMAT = struct.Struct("<16sQQQQHHHHI3sHBBH")


class Identify(Record):
    fw_revision: str
    total_capacity: int  #: bytes
    volatile_only_capacity: int
    persistent_only_capacity: int
    partition_align: int
    info_event_log_size: int
    warning_event_log_size: int
    failure_event_log_size: int
    fatal_event_log_size: int
    lsa_size: int
    poison_list_max_mer: int
    inject_poison_limit: int
    poison_caps: int
    poison_caps_injects_persistent_poison: bool
    poison_caps_scan_media: bool
    qos_telemetry_caps: int
    dc_event_log_size: int | None  #: CXL 3.0+, None on a CXL 2.0 device
    trailing_bytes: int


def decode_identify(data: bytes) -> Identify:
    dc: int | None = None
    if len(data) >= IDENTIFY3_FORMAT.size:
        (
            (fw, total, vol, pers, align, info, warn, fail, fatal, lsa, mer, inject, caps, qos, dc),
            (trailing),
        ) = unpack(IDENTIFY3_FORMAT, data, "identify")
    else:
        (
            (fw, total, vol, pers, align, info, warn, fail, fatal, lsa, mer, inject, caps, qos),
            (trailing),
        ) = unpack(IDENTIFY_FORMAT, data, "identify")
    u = CAPACITY_UNIT
    return Identify(
        fw.split(b"\0", 1)[0].decode("ascii", "backslashreplace"),
        total * u, vol * u, pers * u, align * u,
        info, warn, fail, fatal, lsa,
        int.from_bytes(mer, "little"), inject,
        caps, bool(caps & 1), bool(caps & 2),
        qos, dc, trailing,
    )  # fmt: skip


class PartitionInfo(Record):
    active_volatile_capacity: int  #: bytes
    active_persistent_capacity: int
    next_volatile_capacity: int
    next_persistent_capacity: int
    trailing_bytes: int


def decode_partition_info(data: bytes) -> PartitionInfo:
    s, trailing = parse(PartitionInfoOut, data, "get-partition-info")
    u = CAPACITY_UNIT
    return PartitionInfo(
        int(s.active_volatile_capacity) * u,
        int(s.active_persistent_capacity) * u,
        int(s.next_volatile_capacity) * u,
        int(s.next_persistent_capacity) * u,
        trailing,
    )
