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
    """Identify Memory Device (8.2.9.9.1.1); fields named as cxl-cli names them
    where it has a key (``cxl list -I``, sysfs), spec names elsewhere."""

    firmware_version: str
    total_size: int  #: bytes
    volatile_only_size: int
    persistent_only_size: int
    partition_alignment_size: int
    info_event_log_size: int
    warning_event_log_size: int
    failure_event_log_size: int
    fatal_event_log_size: int
    label_storage_size: int
    poison_list_max_mer: int
    inject_poison_limit: int
    poison_caps: int
    poison_caps_injects_persistent_poison: bool
    poison_caps_scan_media: bool
    qos_telemetry_caps: int
    dc_event_log_size: int | None  #: CXL 3.0+, None on a CXL 2.0 device
    trailing_bytes: int

    # the names before cxl-cli's (0.x); kept for library callers, not in the JSON
    @property
    def fw_revision(self) -> str:
        return self.firmware_version

    @property
    def total_capacity(self) -> int:
        return self.total_size

    @property
    def volatile_only_capacity(self) -> int:
        return self.volatile_only_size

    @property
    def persistent_only_capacity(self) -> int:
        return self.persistent_only_size

    @property
    def partition_align(self) -> int:
        return self.partition_alignment_size

    @property
    def lsa_size(self) -> int:
        return self.label_storage_size


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
    active_volatile_size: int  #: bytes
    active_persistent_size: int
    next_volatile_size: int
    next_persistent_size: int
    trailing_bytes: int

    # the names before cxl-cli's (0.x); kept for library callers, not in the JSON
    @property
    def active_volatile_capacity(self) -> int:
        return self.active_volatile_size

    @property
    def active_persistent_capacity(self) -> int:
        return self.active_persistent_size

    @property
    def next_volatile_capacity(self) -> int:
        return self.next_volatile_size

    @property
    def next_persistent_capacity(self) -> int:
        return self.next_persistent_size


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
