"""Memory device commands: Identify (8.2.9.9.1) and partitions (8.2.9.9.2)."""

from __future__ import annotations

from dataclasses import dataclass

from . import CAPACITY_UNIT
from .layouts import IdentifyOut, IdentifyOut3, PartitionInfoOut, fixed_string, parse


@dataclass(frozen=True, slots=True)
class Identify:
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
    base, trailing = parse(IdentifyOut, data, "identify")
    dc: int | None = None
    if trailing >= 2:
        ext, trailing = parse(IdentifyOut3, data, "identify")
        dc = int(ext.dc_event_log_size)
    mer = bytes(base.poison_list_max_mer)
    caps = int(base.poison_caps)
    return Identify(
        fw_revision=fixed_string(base.fw_revision),
        total_capacity=int(base.total_capacity) * CAPACITY_UNIT,
        volatile_only_capacity=int(base.volatile_capacity) * CAPACITY_UNIT,
        persistent_only_capacity=int(base.persistent_capacity) * CAPACITY_UNIT,
        partition_align=int(base.partition_align) * CAPACITY_UNIT,
        info_event_log_size=int(base.info_event_log_size),
        warning_event_log_size=int(base.warning_event_log_size),
        failure_event_log_size=int(base.failure_event_log_size),
        fatal_event_log_size=int(base.fatal_event_log_size),
        lsa_size=int(base.lsa_size),
        poison_list_max_mer=int.from_bytes(mer, "little"),
        inject_poison_limit=int(base.inject_poison_limit),
        poison_caps=caps,
        poison_caps_injects_persistent_poison=bool(caps & 1),
        poison_caps_scan_media=bool(caps & 2),
        qos_telemetry_caps=int(base.qos_telemetry_caps),
        dc_event_log_size=dc,
        trailing_bytes=trailing,
    )


@dataclass(frozen=True, slots=True)
class PartitionInfo:
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
