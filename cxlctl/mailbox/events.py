"""Event records (CXL 3.1 8.2.9.2): Get Event Records and the record types it returns.

Every record is 128 bytes: a 48-byte common header (Table 8-43) whose UUID names
the type, then 80 bytes of type-specific data.  General Media (8.2.9.2.1.1),
DRAM (8.2.9.2.1.2) and Memory Module (8.2.9.2.1.3) records are decoded field by
field; any other UUID is a :class:`GenericEvent` with its data as hex.  Names of
enumerated values follow the kernel's trace events (drivers/cxl/core/trace.h).
"""

from __future__ import annotations

import ctypes
import uuid as _uuid
from typing import Any

from ..errors import DecodeError, UsageError
from ..record import Record
from .layouts import (
    DramRecord,
    EventRecord,
    EventRecordHeader,
    GeneralMediaRecord,
    GetEventRecordsOutHeader,
    MemoryModuleRecord,
    le24,
    parse,
    parse_table,
    spec_uuid,
)
from .names import LOG_NAMES, EventLog

RECORD_SIZE = ctypes.sizeof(EventRecord)  # 128


def log_by_name(name: str) -> EventLog:
    try:
        return LOG_NAMES[name.lower()]
    except KeyError:
        raise UsageError(f"unknown event log {name!r} (info, warn, fail, fatal)") from None


GENERAL_MEDIA_UUID = "fbcd0a77-c260-417f-85a9-088b1621eba6"
DRAM_UUID = "601dcbb3-9c06-4eab-b8af-4e9bfb5c9624"
MEMORY_MODULE_UUID = "fe927475-dd59-4339-a586-79bab113b774"
RECORD_TYPES: dict[str, str] = {
    GENERAL_MEDIA_UUID: "general_media",
    DRAM_UUID: "dram",
    MEMORY_MODULE_UUID: "memory_module",
}

# Get Event Records output flags (Table 8-50)
EVENT_FLAG_OVERFLOW = 1 << 0
EVENT_FLAG_MORE_RECORDS = 1 << 1

SEVERITY = {0: "informational", 1: "warning", 2: "failure", 3: "fatal"}
#: Common header flags, bits 2.. (bits 1:0 are the severity).
HDR_FLAG_NAMES = (
    (2, "PERMANENT_CONDITION"),
    (3, "MAINTENANCE_NEEDED"),
    (4, "PERFORMANCE_DEGRADED"),
    (5, "HARDWARE_REPLACEMENT_NEEDED"),
    (6, "MAINT_OP_SUB_CLASS_VALID"),
    (7, "LD_ID_VALID"),
    (8, "HEAD_ID_VALID"),
)
DPA_FLAG_NAMES = ((0, "VOLATILE"), (1, "NOT_REPAIRABLE"))
DESCRIPTOR_NAMES = ((0, "UNCORRECTABLE_EVENT"), (1, "THRESHOLD_EVENT"), (2, "POISON_LIST_OVERFLOW"))
GMER_TYPES = {
    0: "ECC Error",
    1: "Invalid Address",
    2: "Data Path Error",
    3: "TE State Violation",
    4: "Scrub Media ECC Error",
    5: "Adv Prog CME Counter Expiration",
    6: "CKID Violation",
}
DRAM_TYPES = {
    0: "ECC Error",
    1: "Scrub Media ECC Error",
    2: "Invalid Address",
    3: "Data Path Error",
    4: "TE State Violation",
    5: "Adv Prog CME Counter Expiration",
    6: "CKID Violation",
}
TRANSACTION_TYPES = {
    0: "Unknown",
    1: "Host Read",
    2: "Host Write",
    3: "Host Scan Media",
    4: "Host Inject Poison",
    5: "Internal Media Scrub",
    6: "Internal Media Management",
    7: "Internal Media Error Check Scrub",
    8: "Media Initialization",
}
MEDIA_SUB_TYPES = {
    0: "Not Reported",
    1: "Internal Datapath Error",
    2: "Media Link Command Training Error",
    3: "Media Link Control Training Error",
    4: "Media Link Data Training Error",
    5: "Media Link CRC Error",
}
GMER_VALID_NAMES = (
    (0, "CHANNEL"),
    (1, "RANK"),
    (2, "DEVICE"),
    (3, "COMPONENT"),
    (4, "COMPONENT PLDM FORMAT"),
)
DRAM_VALID_NAMES = (
    (0, "CHANNEL"),
    (1, "RANK"),
    (2, "NIBBLE"),
    (3, "BANK GROUP"),
    (4, "BANK"),
    (5, "ROW"),
    (6, "COLUMN"),
    (7, "CORRECTION MASK"),
    (8, "COMPONENT"),
    (9, "COMPONENT PLDM FORMAT"),
    (10, "SUB CHANNEL"),
)
MODULE_VALID_NAMES = ((0, "COMPONENT"), (1, "COMPONENT PLDM FORMAT"))
CME_FLAG_NAMES = (
    (0, "Corrected Memory Errors in Multiple Media Components"),
    (1, "Exceeded Programmable Threshold"),
)
MODULE_EVENT_TYPES = {
    0: "Health Status Change",
    1: "Media Status Change",
    2: "Life Used Change",
    3: "Temperature Change",
    4: "Data Path Error",
    5: "LSA Error",
    6: "Unrecoverable Internal Sideband Bus Error",
    7: "Memory Media FRU Error",
    8: "Power Management Fault",
}
MODULE_SUB_TYPES = {
    0: "Not Reported",
    1: "Invalid Config Data",
    2: "Unsupported Config Data",
    3: "Unsupported Memory Media FRU",
}
HEALTH_STATUS_NAMES = (
    (0, "MAINTENANCE_NEEDED"),
    (1, "PERFORMANCE_DEGRADED"),
    (2, "REPLACEMENT_NEEDED"),
    (3, "MEM_CAPACITY_DEGRADED"),
)
MEDIA_STATUS = {
    0: "Normal",
    1: "Not Ready",
    2: "Write Persistency Lost",
    3: "All Data Lost",
    4: "Write Persistency Loss in the Event of Power Loss",
    5: "Write Persistency Loss in Event of Shutdown",
    6: "Write Persistency Loss Imminent",
    7: "All Data Loss in Event of Power Loss",
    8: "All Data loss in the Event of Shutdown",
    9: "All Data Loss Imminent",
}
TWO_BIT_STATUS = {0: "Normal", 1: "Warning", 2: "Critical"}


def bit_names(value: int, table: tuple[tuple[int, str], ...]) -> tuple[str, ...]:
    return tuple(name for bit, name in table if value & (1 << bit))


def _sym(table: dict[int, str], value: int) -> str:
    return table.get(value, f"Reserved ({value:#x})")


# --- values ----------------------------------------------------------------------


class EventHeader(Record):
    """Common Event Record header (Table 8-43)."""

    uuid: str
    record_type: str  #: general_media, dram, memory_module or generic
    length: int
    flags: int  #: the 24-bit flags field
    severity: str  #: bits 1:0
    flag_names: tuple[str, ...]
    handle: int
    related_handle: int
    timestamp: int  #: ns since the epoch
    maint_op_class: int
    maint_op_sub_class: int
    ld_id: int
    head_id: int


class ComponentId(Record):
    """The 16-byte Component ID and, in PLDM format, its entity and resource IDs."""

    raw: str  #: hex
    pldm_format: bool  #: the record's validity flags say the ID is PLDM-formatted
    pldm_entity_id: str | None  #: 6 bytes hex, when valid
    pldm_resource_id: str | None  #: 4 bytes hex, when valid


def _component(raw: Any, pldm: bool) -> ComponentId:
    b = bytes(raw)
    ent = b[1:7].hex() if pldm and b[0] & 1 else None
    res = b[7:11].hex() if pldm and b[0] & 2 else None
    return ComponentId(b.hex(), pldm, ent, res)


class GeneralMediaEvent(Record):
    """General Media Event Record (8.2.9.2.1.1)."""

    header: EventHeader
    dpa: int
    dpa_flags: int
    dpa_flag_names: tuple[str, ...]
    descriptor: int
    descriptor_names: tuple[str, ...]
    type: int
    type_name: str
    transaction_type: int
    transaction_type_name: str
    validity_flags: int
    validity_names: tuple[str, ...]
    channel: int
    rank: int
    device: int
    component_id: ComponentId
    cme_threshold_ev_flags: int
    cme_threshold_ev_names: tuple[str, ...]
    cme_count: int
    sub_type: int
    sub_type_name: str


class DramEvent(Record):
    """DRAM Event Record (8.2.9.2.1.2)."""

    header: EventHeader
    dpa: int
    dpa_flags: int
    dpa_flag_names: tuple[str, ...]
    descriptor: int
    descriptor_names: tuple[str, ...]
    type: int
    type_name: str
    transaction_type: int
    transaction_type_name: str
    validity_flags: int
    validity_names: tuple[str, ...]
    channel: int
    rank: int
    nibble_mask: int
    bank_group: int
    bank: int
    row: int
    column: int
    correction_mask: str  #: 32 bytes hex
    component_id: ComponentId
    sub_channel: int
    cme_threshold_ev_flags: int
    cme_threshold_ev_names: tuple[str, ...]
    cvme_count: int
    sub_type: int
    sub_type_name: str


class ModuleHealth(Record):
    """The Get Health Info payload embedded in a Memory Module record."""

    health_status: int
    health_status_names: tuple[str, ...]
    media_status: int
    media_status_name: str
    additional_status: int
    life_used_status: str
    device_temperature_status: str
    corrected_volatile_error_count_status: str
    corrected_persistent_error_count_status: str
    life_used: int
    device_temperature: int  #: degrees C (signed)
    dirty_shutdown_count: int
    corrected_volatile_error_count: int
    corrected_persistent_error_count: int


class MemoryModuleEvent(Record):
    """Memory Module Event Record (8.2.9.2.1.3)."""

    header: EventHeader
    event_type: int
    event_type_name: str
    health: ModuleHealth
    validity_flags: int
    validity_names: tuple[str, ...]
    component_id: ComponentId
    event_sub_type: int
    event_sub_type_name: str


class GenericEvent(Record):
    """A record of a type cxlctl does not decode: header plus data as hex."""

    header: EventHeader
    data: str


EventValue = GeneralMediaEvent | DramEvent | MemoryModuleEvent | GenericEvent


class EventRecords(Record):
    """Get Event Records output (Table 8-50)."""

    flags: int
    overflow: bool
    more_records: bool
    overflow_error_count: int
    first_overflow_timestamp: int
    last_overflow_timestamp: int
    records: tuple[EventValue, ...]
    trailing_bytes: int


# --- decoders ----------------------------------------------------------------------


def _header(h: EventRecordHeader) -> EventHeader:
    u = spec_uuid(h.uuid)
    flags = le24(h.flags)
    return EventHeader(
        uuid=u,
        record_type=RECORD_TYPES.get(u, "generic"),
        length=int(h.length),
        flags=flags,
        severity=SEVERITY[flags & 3],
        flag_names=bit_names(flags, HDR_FLAG_NAMES),
        handle=int(h.handle),
        related_handle=int(h.related_handle),
        timestamp=int(h.timestamp),
        maint_op_class=int(h.maint_op_class),
        maint_op_sub_class=int(h.maint_op_sub_class),
        ld_id=int(h.ld_id),
        head_id=int(h.head_id),
    )


def _media_fields(
    r: Any, types: dict[int, str], valid_names: tuple[tuple[int, str], ...], pldm_bit: int
) -> dict[str, Any]:
    """The fields General Media and DRAM records share, by their record field names."""
    addr, valid = int(r.phys_addr), int(r.validity_flags)
    desc, cme = int(r.descriptor), int(r.cme_threshold_ev_flags)
    return {
        "header": _header(r.hdr),
        "dpa": addr & ~0x3F,
        "dpa_flags": addr & 0x3,
        "dpa_flag_names": bit_names(addr & 0x3, DPA_FLAG_NAMES),
        "descriptor": desc,
        "descriptor_names": bit_names(desc, DESCRIPTOR_NAMES),
        "type": int(r.type),
        "type_name": _sym(types, int(r.type)),
        "transaction_type": int(r.transaction_type),
        "transaction_type_name": _sym(TRANSACTION_TYPES, int(r.transaction_type)),
        "validity_flags": valid,
        "validity_names": bit_names(valid, valid_names),
        "channel": int(r.channel),
        "rank": int(r.rank),
        "component_id": _component(r.component_id, bool(valid & pldm_bit)),
        "cme_threshold_ev_flags": cme,
        "cme_threshold_ev_names": bit_names(cme, CME_FLAG_NAMES),
        "sub_type": int(r.sub_type),
        "sub_type_name": _sym(MEDIA_SUB_TYPES, int(r.sub_type)),
    }


def _general_media(data: bytes) -> GeneralMediaEvent:
    r = GeneralMediaRecord.from_buffer_copy(data)
    return GeneralMediaEvent(
        **_media_fields(r, GMER_TYPES, GMER_VALID_NAMES, 0x10),
        device=le24(r.device),
        cme_count=le24(r.cme_count),
    )


def _dram(data: bytes) -> DramEvent:
    r = DramRecord.from_buffer_copy(data)
    return DramEvent(
        **_media_fields(r, DRAM_TYPES, DRAM_VALID_NAMES, 0x200),
        nibble_mask=le24(r.nibble_mask),
        bank_group=int(r.bank_group),
        bank=int(r.bank),
        row=le24(r.row),
        column=int(r.column),
        correction_mask=bytes(r.correction_mask).hex(),
        sub_channel=int(r.sub_channel),
        cvme_count=le24(r.cvme_count),
    )


def _memory_module(data: bytes) -> MemoryModuleEvent:
    r = MemoryModuleRecord.from_buffer_copy(data)
    h = r.health
    hs, add, valid = int(h.health_status), int(h.additional_status), int(r.validity_flags)
    health = ModuleHealth(
        health_status=hs,
        health_status_names=bit_names(hs, HEALTH_STATUS_NAMES),
        media_status=int(h.media_status),
        media_status_name=_sym(MEDIA_STATUS, int(h.media_status)),
        additional_status=add,
        life_used_status=_sym(TWO_BIT_STATUS, add & 3),
        device_temperature_status=_sym(TWO_BIT_STATUS, (add >> 2) & 3),
        corrected_volatile_error_count_status="Warning" if add & 0x10 else "Normal",
        corrected_persistent_error_count_status="Warning" if add & 0x20 else "Normal",
        life_used=int(h.life_used),
        device_temperature=int(h.device_temperature),
        dirty_shutdown_count=int(h.dirty_shutdown_count),
        corrected_volatile_error_count=int(h.corrected_volatile_error_count),
        corrected_persistent_error_count=int(h.corrected_persistent_error_count),
    )
    return MemoryModuleEvent(
        header=_header(r.hdr),
        event_type=int(r.event_type),
        event_type_name=_sym(MODULE_EVENT_TYPES, int(r.event_type)),
        health=health,
        validity_flags=valid,
        validity_names=bit_names(valid, MODULE_VALID_NAMES),
        component_id=_component(r.component_id, bool(valid & 0x2)),
        event_sub_type=int(r.event_sub_type),
        event_sub_type_name=_sym(MODULE_SUB_TYPES, int(r.event_sub_type)),
    )


def decode_event_record(data: bytes) -> EventValue:
    """One 128-byte event record, decoded by the UUID in its header."""
    if len(data) < RECORD_SIZE:
        raise DecodeError(f"event record: payload is {len(data)} bytes, layout needs {RECORD_SIZE}")
    data = data[:RECORD_SIZE]
    u = str(_uuid.UUID(bytes=data[:16]))
    if u == GENERAL_MEDIA_UUID:
        return _general_media(data)
    if u == DRAM_UUID:
        return _dram(data)
    if u == MEMORY_MODULE_UUID:
        return _memory_module(data)
    hdr = EventRecordHeader.from_buffer_copy(data)
    return GenericEvent(_header(hdr), data[ctypes.sizeof(EventRecordHeader) :].hex())


def decode_event_records(data: bytes) -> EventRecords:
    hdr, n, off, trailing = parse_table(
        GetEventRecordsOutHeader, data, "record_count", RECORD_SIZE, "get-event-records", "records"
    )
    records = tuple(
        decode_event_record(data[off + i * RECORD_SIZE : off + (i + 1) * RECORD_SIZE])
        for i in range(n)
    )
    flags = int(hdr.flags)
    return EventRecords(
        flags=flags,
        overflow=bool(flags & EVENT_FLAG_OVERFLOW),
        more_records=bool(flags & EVENT_FLAG_MORE_RECORDS),
        overflow_error_count=int(hdr.overflow_error_count),
        first_overflow_timestamp=int(hdr.first_overflow_timestamp),
        last_overflow_timestamp=int(hdr.last_overflow_timestamp),
        records=records,
        trailing_bytes=trailing,
    )


# --- Get Event Interrupt Policy (8.2.9.2.4) ---------------------------------------------


class InterruptSettings(Record):
    """One event log's interrupt settings byte."""

    settings: int  #: the raw byte
    mode: str  #: none, msi_msix, fw, reserved (bits 1:0)
    message_number: int  #: the MSI/MSI-X vector (bits 7:4)
    reserved_bits: int  #: bits 3:2


class EventInterruptPolicy(Record):
    """Get Event Interrupt Policy output (Table 8-52)."""

    info: InterruptSettings
    warn: InterruptSettings
    fail: InterruptSettings
    fatal: InterruptSettings
    dynamic_capacity: InterruptSettings | None  #: CXL 3.0+, None on a CXL 2.0 device
    trailing_bytes: int


def interrupt_settings(b: int) -> InterruptSettings:
    from .names import InterruptMode

    return InterruptSettings(b, InterruptMode(b & 0x3).name.lower(), b >> 4, (b >> 2) & 0x3)


def decode_event_interrupt_policy(data: bytes) -> EventInterruptPolicy:
    from .layouts import EventInterruptPolicy as Base
    from .layouts import EventInterruptPolicy3

    base, trailing = parse(Base, data, "get-event-interrupt-policy")
    dcd: InterruptSettings | None = None
    if trailing:
        ext, trailing = parse(EventInterruptPolicy3, data, "get-event-interrupt-policy")
        dcd = interrupt_settings(int(ext.dcd_settings))
    return EventInterruptPolicy(
        info=interrupt_settings(int(base.info_settings)),
        warn=interrupt_settings(int(base.warn_settings)),
        fail=interrupt_settings(int(base.failure_settings)),
        fatal=interrupt_settings(int(base.fatal_settings)),
        dynamic_capacity=dcd,
        trailing_bytes=trailing,
    )
