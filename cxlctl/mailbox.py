"""The command catalogue: opcodes, kernel command ids, payload layouts, decoders.

One :class:`Command` record per CXL mailbox command (CXL 3.1 section 8.2.9 names
and opcodes).  Name/opcode/id lookups, completion candidates, the simulator's
dispatch and the help text are all derived from :data:`CATALOGUE`.

Decoders take ``bytes`` of any length and either return a frozen dataclass of
plain values or raise :class:`~cxlctl.errors.DecodeError`: a payload shorter
than its layout is an error naming the command and both lengths; a longer one
(a newer device) decodes what is known and reports ``trailing_bytes``.
"""

from __future__ import annotations

import ctypes
import enum
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import DecodeError, UsageError
from .uapi import CommandId

CAPACITY_UNIT = 256 * 1024 * 1024  #: capacities in Identify/Partition Info are in 256 MiB units

# --- mailbox return codes (CXL 3.1 Table 8-34) ------------------------------


class ReturnCode(enum.IntEnum):
    SUCCESS = 0x00
    BACKGROUND_COMMAND_STARTED = 0x01
    INVALID_INPUT = 0x02
    UNSUPPORTED = 0x03
    INTERNAL_ERROR = 0x04
    RETRY_REQUIRED = 0x05
    BUSY = 0x06
    MEDIA_DISABLED = 0x07
    FW_TRANSFER_IN_PROGRESS = 0x08
    FW_TRANSFER_OUT_OF_ORDER = 0x09
    FW_VERIFICATION_FAILED = 0x0A
    INVALID_SLOT = 0x0B
    ACTIVATION_FAILED_ROLLED_BACK = 0x0C
    ACTIVATION_FAILED_COLD_RESET_REQUIRED = 0x0D
    INVALID_HANDLE = 0x0E
    INVALID_PHYSICAL_ADDRESS = 0x0F
    INJECT_POISON_LIMIT_REACHED = 0x10
    PERMANENT_MEDIA_FAILURE = 0x11
    ABORTED = 0x12
    INVALID_SECURITY_STATE = 0x13
    INCORRECT_PASSPHRASE = 0x14
    UNSUPPORTED_MAILBOX_OR_CCI = 0x15
    INVALID_PAYLOAD_LENGTH = 0x16
    INVALID_LOG = 0x17
    INTERRUPTED = 0x18
    UNSUPPORTED_FEATURE_VERSION = 0x19
    UNSUPPORTED_FEATURE_SELECTION_VALUE = 0x1A
    FEATURE_TRANSFER_IN_PROGRESS = 0x1B
    FEATURE_TRANSFER_OUT_OF_ORDER = 0x1C
    RESOURCES_EXHAUSTED = 0x1D
    INVALID_EXTENT_LIST = 0x1E
    TRANSFER_OUT_OF_ORDER = 0x1F
    REQUEST_ABORT_NOT_SUPPORTED = 0x20


def return_code_name(rc: int) -> str:
    """Spec name of a mailbox return code, e.g. ``Invalid Input``."""
    try:
        return (
            ReturnCode(rc)
            .name.replace("_", " ")
            .title()
            .replace("Fw ", "FW ")
            .replace("Cci", "CCI")
        )
    except ValueError:
        return f"Unknown return code {rc:#x}"


# --- payload layouts ---------------------------------------------------------
# ctypes little-endian, packed, "ms" layout; field names from the spec/kernel.


class _Layout(ctypes.LittleEndianStructure):
    _pack_ = 1
    _layout_ = "ms"


class IdentifyOut(_Layout):
    """Identify Memory Device output (CXL 3.1 8.2.9.9.1.1, Table 8-127), CXL 2.0 part."""

    _fields_ = [
        ("fw_revision", ctypes.c_uint8 * 16),
        ("total_capacity", ctypes.c_uint64),
        ("volatile_capacity", ctypes.c_uint64),
        ("persistent_capacity", ctypes.c_uint64),
        ("partition_align", ctypes.c_uint64),
        ("info_event_log_size", ctypes.c_uint16),
        ("warning_event_log_size", ctypes.c_uint16),
        ("failure_event_log_size", ctypes.c_uint16),
        ("fatal_event_log_size", ctypes.c_uint16),
        ("lsa_size", ctypes.c_uint32),
        ("poison_list_max_mer", ctypes.c_uint8 * 3),
        ("inject_poison_limit", ctypes.c_uint16),
        ("poison_caps", ctypes.c_uint8),
        ("qos_telemetry_caps", ctypes.c_uint8),
    ]


class IdentifyOut3(_Layout):
    """Identify output as of CXL 3.0: adds the Dynamic Capacity Event Log size."""

    _fields_ = [("base", IdentifyOut), ("dc_event_log_size", ctypes.c_uint16)]


class FwInfoOut(_Layout):
    """Get FW Info output (8.2.9.3.1, Table 8-56)."""

    _fields_ = [
        ("fw_slots_supported", ctypes.c_uint8),
        ("fw_slot_info", ctypes.c_uint8),
        ("fw_activation_caps", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 13),
        ("slot_fw_revision", (ctypes.c_uint8 * 16) * 4),
    ]


class PartitionInfoOut(_Layout):
    """Get Partition Info output (8.2.9.9.2.1, Table 8-130); 256 MiB units."""

    _fields_ = [
        ("active_volatile_capacity", ctypes.c_uint64),
        ("active_persistent_capacity", ctypes.c_uint64),
        ("next_volatile_capacity", ctypes.c_uint64),
        ("next_persistent_capacity", ctypes.c_uint64),
    ]


class SetPartitionInfoIn(_Layout):
    """Set Partition Info input (8.2.9.9.2.2, Table 8-131)."""

    _fields_ = [
        ("volatile_capacity", ctypes.c_uint64),
        ("flags", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
    ]


class GetLsaIn(_Layout):
    """Get LSA input (8.2.9.9.2.3, Table 8-132)."""

    _fields_ = [("offset", ctypes.c_uint32), ("length", ctypes.c_uint32)]


class SetLsaIn(_Layout):
    """Set LSA input header (8.2.9.9.2.4, Table 8-133); data follows."""

    _fields_ = [("offset", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]


class HealthInfoOut(_Layout):
    """Get Health Info output (8.2.9.9.3.1, Table 8-134)."""

    _fields_ = [
        ("health_status", ctypes.c_uint8),
        ("media_status", ctypes.c_uint8),
        ("additional_status", ctypes.c_uint8),
        ("life_used", ctypes.c_uint8),
        ("device_temperature", ctypes.c_int16),
        ("dirty_shutdown_count", ctypes.c_uint32),
        ("corrected_volatile_error_count", ctypes.c_uint32),
        ("corrected_persistent_error_count", ctypes.c_uint32),
    ]


class AlertConfigOut(_Layout):
    """Get Alert Configuration output (8.2.9.9.3.2, Table 8-136)."""

    _fields_ = [
        ("valid_alerts", ctypes.c_uint8),
        ("programmable_alerts", ctypes.c_uint8),
        ("life_used_critical_threshold", ctypes.c_uint8),
        ("life_used_programmable_warning_threshold", ctypes.c_uint8),
        ("device_over_temperature_critical_threshold", ctypes.c_int16),
        ("device_under_temperature_critical_threshold", ctypes.c_int16),
        ("device_over_temperature_programmable_warning_threshold", ctypes.c_int16),
        ("device_under_temperature_programmable_warning_threshold", ctypes.c_int16),
        ("corrected_volatile_mem_error_programmable_warning_threshold", ctypes.c_uint16),
        ("corrected_persistent_mem_error_programmable_warning_threshold", ctypes.c_uint16),
    ]


class SetAlertConfigIn(_Layout):
    """Set Alert Configuration input (8.2.9.9.3.3, Table 8-137)."""

    _fields_ = [
        ("valid_alert_actions", ctypes.c_uint8),
        ("enable_alert_actions", ctypes.c_uint8),
        ("life_used_programmable_warning_threshold", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
        ("device_over_temperature_programmable_warning_threshold", ctypes.c_int16),
        ("device_under_temperature_programmable_warning_threshold", ctypes.c_int16),
        ("corrected_volatile_mem_error_programmable_warning_threshold", ctypes.c_uint16),
        ("corrected_persistent_mem_error_programmable_warning_threshold", ctypes.c_uint16),
    ]


class ShutdownStateOut(_Layout):
    """Get Shutdown State output (8.2.9.9.3.4, Table 8-138)."""

    _fields_ = [("state", ctypes.c_uint8)]


class SupportedLogsHeader(_Layout):
    """Get Supported Logs output header (8.2.9.5.1, Table 8-64)."""

    _fields_ = [("entries", ctypes.c_uint16), ("reserved", ctypes.c_uint8 * 6)]


class SupportedLogEntry(_Layout):
    """Supported Log Entry (Table 8-65)."""

    _fields_ = [("uuid", ctypes.c_uint8 * 16), ("size", ctypes.c_uint32)]


class GetLogIn(_Layout):
    """Get Log input (8.2.9.5.2, Table 8-66)."""

    _fields_ = [
        ("uuid", ctypes.c_uint8 * 16),
        ("offset", ctypes.c_uint32),
        ("length", ctypes.c_uint32),
    ]


class CelEntry(_Layout):
    """Command Effects Log entry (8.2.9.5.2.1, Table 8-68)."""

    _fields_ = [("opcode", ctypes.c_uint16), ("effect", ctypes.c_uint16)]


class LogUuidIn(_Layout):
    """Input of Get Log Capabilities / Clear Log / Populate Log: a log UUID."""

    _fields_ = [("uuid", ctypes.c_uint8 * 16)]


class LogCapsOut(_Layout):
    """Get Log Capabilities output (8.2.9.5.3, Table 8-72)."""

    _fields_ = [("parameter_flags", ctypes.c_uint32)]


class SupLogSublistIn(_Layout):
    """Get Supported Logs Sub-List input (8.2.9.5.6, Table 8-76)."""

    _fields_ = [("max_entries", ctypes.c_uint8), ("start_index", ctypes.c_uint8)]


class TimestampOut(_Layout):
    """Get Timestamp output (8.2.9.4.1, Table 8-62): ns since the Unix epoch."""

    _fields_ = [("timestamp", ctypes.c_uint64)]


class ScanMediaCapsIn(_Layout):
    """Get Scan Media Capabilities input (8.2.9.9.4.4, Table 8-145); 64-byte units."""

    _fields_ = [("dpa", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class ScanMediaCapsOut(_Layout):
    """Get Scan Media Capabilities output (Table 8-146)."""

    _fields_ = [("estimated_scan_media_time", ctypes.c_uint32)]


LayoutT = TypeVar("LayoutT", bound=ctypes.Structure)


def parse(layout: type[LayoutT], data: bytes, command: str) -> tuple[LayoutT, int]:
    """Overlay ``layout`` on ``data``; return it and the count of trailing bytes.

    A short payload is a :class:`DecodeError` naming the command and both lengths.
    """
    need = ctypes.sizeof(layout)
    if len(data) < need:
        raise DecodeError(f"{command}: payload is {len(data)} bytes, layout needs {need}")
    return layout.from_buffer_copy(data[:need]), len(data) - need


def encode(obj: ctypes.Structure) -> bytes:
    return bytes(obj)


def fixed_string(raw: Any) -> str:
    """A fixed-width ASCII field (``c_uint8 * N``): up to the first NUL, unprintables escaped."""
    b = bytes(raw).split(b"\0", 1)[0]
    return b.decode("ascii", errors="backslashreplace")


def spec_uuid(raw: Any) -> str:
    """CXL UUIDs are stored as 16 bytes in big-endian (RFC 4122) order."""
    return str(_uuid.UUID(bytes=bytes(raw)))


# --- decoded values ------------------------------------------------------------


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
class FwSlot:
    slot: int
    version: str
    active: bool
    staged: bool


@dataclass(frozen=True, slots=True)
class FwInfo:
    num_slots: int
    active_slot: int
    staged_slot: int
    online_activate_capable: bool
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
    return FwInfo(n, active, staged, bool(s.fw_activation_caps & 1), slots, trailing)


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


MEDIA_STATUS = {
    0: "normal",
    1: "not_ready",
    2: "write_persistency_lost",
    3: "all_data_lost",
    4: "write_persistency_loss_on_power_loss",
    5: "write_persistency_loss_on_shutdown",
    6: "write_persistency_loss_imminent",
    7: "all_data_loss_on_power_loss",
    8: "all_data_loss_on_shutdown",
    9: "all_data_loss_imminent",
}
_LEVEL = {0: "normal", 1: "warning", 2: "critical"}


@dataclass(frozen=True, slots=True)
class HealthInfo:
    health_status: int
    maintenance_needed: bool
    performance_degraded: bool
    hw_replacement_needed: bool
    media_status: str
    life_used_status: str
    temperature_status: str
    corrected_volatile_error_count_status: str
    corrected_persistent_error_count_status: str
    life_used_percent: int | None  #: None: not implemented (0xff)
    temperature: int | None  #: degrees C, None: not implemented (0xffff)
    dirty_shutdowns: int
    volatile_errors: int
    pmem_errors: int
    trailing_bytes: int


def decode_health_info(data: bytes) -> HealthInfo:
    s, trailing = parse(HealthInfoOut, data, "get-health-info")
    hs, add = int(s.health_status), int(s.additional_status)
    life = int(s.life_used)
    temp = int(s.device_temperature)
    return HealthInfo(
        health_status=hs,
        maintenance_needed=bool(hs & 1),
        performance_degraded=bool(hs & 2),
        hw_replacement_needed=bool(hs & 4),
        media_status=MEDIA_STATUS.get(int(s.media_status), f"reserved({int(s.media_status)})"),
        life_used_status=_LEVEL.get(add & 3, "reserved"),
        temperature_status=_LEVEL.get((add >> 2) & 3, "reserved"),
        corrected_volatile_error_count_status="warning" if add & 0x10 else "normal",
        corrected_persistent_error_count_status="warning" if add & 0x20 else "normal",
        life_used_percent=None if life == 0xFF else life,
        temperature=None if temp == -1 else temp,
        dirty_shutdowns=int(s.dirty_shutdown_count),
        volatile_errors=int(s.corrected_volatile_error_count),
        pmem_errors=int(s.corrected_persistent_error_count),
        trailing_bytes=trailing,
    )


@dataclass(frozen=True, slots=True)
class AlertConfig:
    life_used_prog_warn_threshold_valid: bool
    dev_over_temperature_prog_warn_threshold_valid: bool
    dev_under_temperature_prog_warn_threshold_valid: bool
    corrected_volatile_mem_err_prog_warn_threshold_valid: bool
    corrected_pmem_err_prog_warn_threshold_valid: bool
    life_used_prog_warn_threshold_writable: bool
    dev_over_temperature_prog_warn_threshold_writable: bool
    dev_under_temperature_prog_warn_threshold_writable: bool
    corrected_volatile_mem_err_prog_warn_threshold_writable: bool
    corrected_pmem_err_prog_warn_threshold_writable: bool
    life_used_crit_alert_threshold: int
    life_used_prog_warn_threshold: int
    dev_over_temperature_crit_alert_threshold: int
    dev_under_temperature_crit_alert_threshold: int
    dev_over_temperature_prog_warn_threshold: int
    dev_under_temperature_prog_warn_threshold: int
    corrected_volatile_mem_err_prog_warn_threshold: int
    corrected_pmem_err_prog_warn_threshold: int
    trailing_bytes: int


def decode_alert_config(data: bytes) -> AlertConfig:
    s, trailing = parse(AlertConfigOut, data, "get-alert-config")
    v, p = int(s.valid_alerts), int(s.programmable_alerts)
    return AlertConfig(
        bool(v & 1), bool(v & 2), bool(v & 4), bool(v & 8), bool(v & 16),
        bool(p & 1), bool(p & 2), bool(p & 4), bool(p & 8), bool(p & 16),
        int(s.life_used_critical_threshold),
        int(s.life_used_programmable_warning_threshold),
        int(s.device_over_temperature_critical_threshold),
        int(s.device_under_temperature_critical_threshold),
        int(s.device_over_temperature_programmable_warning_threshold),
        int(s.device_under_temperature_programmable_warning_threshold),
        int(s.corrected_volatile_mem_error_programmable_warning_threshold),
        int(s.corrected_persistent_mem_error_programmable_warning_threshold),
        trailing,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShutdownState:
    dirty: bool
    state: str
    trailing_bytes: int


def decode_shutdown_state(data: bytes) -> ShutdownState:
    s, trailing = parse(ShutdownStateOut, data, "get-shutdown-state")
    dirty = bool(s.state & 1)
    return ShutdownState(dirty, "dirty" if dirty else "clean", trailing)


KNOWN_LOGS: dict[str, str] = {
    "0da9c0b5-bf41-4b78-8f79-96b1623b3f17": "Command Effects Log (CEL)",
    "5e1819d9-11a9-400c-811f-d60719403d86": "Vendor Debug Log",
    "b3fab4cf-01b6-4332-943e-5e9962f23567": "Component State Dump Log",
    "1c99e47e-e9a8-4f4c-a4a9-7e0f7e4d3c2f": "DDR5 Error Check Scrub (ECS) Log",
    "f1720d2c-4ac2-45d0-9c53-25bb6b4d8c35": "Media Test Capability Log",
    "0a0c6ce9-d1d0-4ec7-8f05-2c7c9d9b1a38": "Media Test Results Short Log",
    "7faeb4fb-03a9-4e35-9ecf-2a3a5d0d6b2c": "Media Test Results Long Log",
}
CEL_UUID = "0da9c0b5-bf41-4b78-8f79-96b1623b3f17"


@dataclass(frozen=True, slots=True)
class LogEntry:
    uuid: str
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class SupportedLogs:
    logs: tuple[LogEntry, ...]
    trailing_bytes: int


def decode_supported_logs(data: bytes) -> SupportedLogs:
    hdr, _ = parse(SupportedLogsHeader, data, "get-supported-logs")
    n = int(hdr.entries)
    off = ctypes.sizeof(SupportedLogsHeader)
    esz = ctypes.sizeof(SupportedLogEntry)
    if len(data) < off + n * esz:
        raise DecodeError(
            f"get-supported-logs: payload is {len(data)} bytes, {n} entries need {off + n * esz}"
        )
    logs = []
    for i in range(n):
        e, _ = parse(SupportedLogEntry, data[off + i * esz : off + (i + 1) * esz], "log entry")
        u = spec_uuid(e.uuid)
        logs.append(LogEntry(u, KNOWN_LOGS.get(u, "unknown"), int(e.size)))
    return SupportedLogs(tuple(logs), len(data) - off - n * esz)


CEL_EFFECTS = (
    "config_change_cold_reset",
    "config_change_immediate",
    "data_change_immediate",
    "policy_change_immediate",
    "log_change_immediate",
    "security_state_change",
    "background_operation",
    "secondary_mailbox_supported",
    "request_abort_background_op_supported",
    "config_change_after_cold_reset_or_conventional_reset",  # bit 9 (3.1)
    "config_change_after_cxl_reset",  # bit 10 (3.1)
)


@dataclass(frozen=True, slots=True)
class CelRecord:
    opcode: int
    name: str
    effect: int
    effects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cel:
    entries: tuple[CelRecord, ...]
    trailing_bytes: int


def decode_cel(data: bytes) -> Cel:
    esz = ctypes.sizeof(CelEntry)
    n = len(data) // esz
    recs = []
    for i in range(n):
        e = CelEntry.from_buffer_copy(data[i * esz : (i + 1) * esz])
        eff = int(e.effect)
        names = tuple(name for bit, name in enumerate(CEL_EFFECTS) if eff & (1 << bit))
        op = int(e.opcode)
        cmd = BY_OPCODE.get(op)
        recs.append(CelRecord(op, cmd.title if cmd else f"Opcode {op:#06x}", eff, names))
    return Cel(tuple(recs), len(data) - n * esz)


@dataclass(frozen=True, slots=True)
class Timestamp:
    timestamp: int  #: ns since the Unix epoch (0: never set)
    trailing_bytes: int


def decode_timestamp(data: bytes) -> Timestamp:
    s, trailing = parse(TimestampOut, data, "get-timestamp")
    return Timestamp(int(s.timestamp), trailing)


@dataclass(frozen=True, slots=True)
class ScanMediaCaps:
    estimated_scan_media_time_ms: int
    trailing_bytes: int


def decode_scan_media_caps(data: bytes) -> ScanMediaCaps:
    s, trailing = parse(ScanMediaCapsOut, data, "get-scan-media-caps")
    return ScanMediaCaps(int(s.estimated_scan_media_time), trailing)


@dataclass(frozen=True, slots=True)
class LogCaps:
    parameter_flags: int
    clear_log_supported: bool
    populate_log_supported: bool
    auto_populate_supported: bool
    persistent_across_cold_reset: bool
    trailing_bytes: int


def decode_log_caps(data: bytes) -> LogCaps:
    s, trailing = parse(LogCapsOut, data, "get-log-caps")
    f = int(s.parameter_flags)
    return LogCaps(f, bool(f & 1), bool(f & 2), bool(f & 4), bool(f & 8), trailing)


@dataclass(frozen=True, slots=True)
class RawBytes:
    """Output of a command without a structured decoder."""

    length: int
    hex: str


def decode_bytes(data: bytes) -> RawBytes:
    return RawBytes(len(data), data.hex())


# --- the catalogue -------------------------------------------------------------

VARIABLE: None = None  #: a variable-length payload


@dataclass(frozen=True, slots=True)
class Command:
    """One mailbox command."""

    name: str  #: CLI name (kebab-case)
    title: str  #: CXL 3.1 spec name
    opcode: int
    kernel_id: int | None  #: CXL_MEM_COMMAND_ID_* if Linux has one
    size_in: int | None  #: bytes, None = variable
    size_out: int | None  #: bytes, None = variable
    decoder: Callable[[bytes], Any] | None = None
    destructive: bool = False


def _c(
    name: str,
    title: str,
    opcode: int,
    kid: int | None,
    sin: int | None,
    sout: int | None,
    dec: Callable[[bytes], Any] | None = None,
    destructive: bool = False,
) -> Command:
    return Command(name, title, opcode, kid, sin, sout, dec, destructive)


K = CommandId
CATALOGUE: tuple[Command, ...] = (
    # Events (8.2.9.2)
    _c("get-event-records", "Get Event Records", 0x0100, None, 1, VARIABLE),
    _c("clear-event-records", "Clear Event Records", 0x0101, None, VARIABLE, 0, None, True),
    _c("get-event-interrupt-policy", "Get Event Interrupt Policy", 0x0102, None, 0, 5),
    _c(
        "set-event-interrupt-policy",
        "Set Event Interrupt Policy",
        0x0103,
        None,
        VARIABLE,
        0,
        None,
        True,
    ),
    # Firmware update (8.2.9.3)
    _c("get-fw-info", "Get FW Info", 0x0200, K.GET_FW_INFO, 0, 0x50, decode_fw_info),
    _c("transfer-fw", "Transfer FW", 0x0201, None, VARIABLE, 0, None, True),
    _c("activate-fw", "Activate FW", 0x0202, None, 2, 0, None, True),
    # Timestamp (8.2.9.4)
    _c("get-timestamp", "Get Timestamp", 0x0300, K.GET_TIMESTAMP, 0, 8, decode_timestamp),
    _c("set-timestamp", "Set Timestamp", 0x0301, None, 8, 0, None, True),
    # Logs (8.2.9.5)
    _c(
        "get-supported-logs",
        "Get Supported Logs",
        0x0400,
        K.GET_SUPPORTED_LOGS,
        0,
        VARIABLE,
        decode_supported_logs,
    ),
    _c("get-log", "Get Log", 0x0401, K.GET_LOG, 0x18, VARIABLE, decode_bytes),
    _c("get-log-caps", "Get Log Capabilities", 0x0402, K.GET_LOG_CAPS, 0x10, 4, decode_log_caps),
    _c("clear-log", "Clear Log", 0x0403, K.CLEAR_LOG, 0x10, 0, None, True),
    _c("populate-log", "Populate Log", 0x0404, None, 0x10, 0, None, True),
    _c(
        "get-supported-logs-sub-list",
        "Get Supported Logs Sub-List",
        0x0405,
        K.GET_SUP_LOG_SUBLIST,
        2,
        VARIABLE,
    ),
    # Features (8.2.9.6)
    _c("get-supported-features", "Get Supported Features", 0x0500, None, 8, VARIABLE),
    _c("get-feature", "Get Feature", 0x0501, None, 0x15, VARIABLE),
    _c("set-feature", "Set Feature", 0x0502, None, VARIABLE, 0, None, True),
    # Memory device commands (8.2.9.9)
    _c("identify", "Identify Memory Device", 0x4000, K.IDENTIFY, 0, 0x43, decode_identify),
    _c(
        "get-partition-info",
        "Get Partition Info",
        0x4100,
        K.GET_PARTITION_INFO,
        0,
        0x20,
        decode_partition_info,
    ),
    _c(
        "set-partition-info",
        "Set Partition Info",
        0x4101,
        K.SET_PARTITION_INFO,
        0x0A,
        0,
        None,
        True,
    ),
    _c("get-lsa", "Get LSA", 0x4102, K.GET_LSA, 8, VARIABLE, decode_bytes),
    _c("set-lsa", "Set LSA", 0x4103, K.SET_LSA, VARIABLE, 0, None, True),
    _c(
        "get-health-info", "Get Health Info", 0x4200, K.GET_HEALTH_INFO, 0, 0x12, decode_health_info
    ),
    _c(
        "get-alert-config",
        "Get Alert Configuration",
        0x4201,
        K.GET_ALERT_CONFIG,
        0,
        0x10,
        decode_alert_config,
    ),
    _c(
        "set-alert-config",
        "Set Alert Configuration",
        0x4202,
        K.SET_ALERT_CONFIG,
        0x0C,
        0,
        None,
        True,
    ),
    _c(
        "get-shutdown-state",
        "Get Shutdown State",
        0x4203,
        K.GET_SHUTDOWN_STATE,
        0,
        1,
        decode_shutdown_state,
    ),
    _c("set-shutdown-state", "Set Shutdown State", 0x4204, K.SET_SHUTDOWN_STATE, 1, 0, None, True),
    _c("get-poison-list", "Get Poison List", 0x4300, None, 0x10, VARIABLE),
    _c("inject-poison", "Inject Poison", 0x4301, None, 8, 0, None, True),
    _c("clear-poison", "Clear Poison", 0x4302, None, 0x48, 0, None, True),
    _c(
        "get-scan-media-caps",
        "Get Scan Media Capabilities",
        0x4303,
        K.GET_SCAN_MEDIA_CAPS,
        0x10,
        4,
        decode_scan_media_caps,
    ),
    _c("scan-media", "Scan Media", 0x4304, None, 0x11, 0, None, True),
    _c("get-scan-media-results", "Get Scan Media Results", 0x4305, None, 0, VARIABLE),
    _c("sanitize", "Sanitize", 0x4400, None, 0, 0, None, True),
    _c("secure-erase", "Secure Erase", 0x4401, None, 0, 0, None, True),
    _c("get-security-state", "Get Security State", 0x4500, None, 0, 4),
)

BY_NAME: dict[str, Command] = {c.name: c for c in CATALOGUE}
BY_OPCODE: dict[int, Command] = {c.opcode: c for c in CATALOGUE}
BY_KERNEL_ID: dict[int, Command] = {c.kernel_id: c for c in CATALOGUE if c.kernel_id is not None}

#: Short aliases users type (``cxlctl send mem0 health``).
ALIASES: dict[str, str] = {
    "health": "get-health-info",
    "partition": "get-partition-info",
    "partition-info": "get-partition-info",
    "fw-info": "get-fw-info",
    "timestamp": "get-timestamp",
    "supported-logs": "get-supported-logs",
    "logs": "get-supported-logs",
    "alert-config": "get-alert-config",
    "shutdown-state": "get-shutdown-state",
    "scan-media-caps": "get-scan-media-caps",
    "log-caps": "get-log-caps",
    "lsa": "get-lsa",
}


def lookup(name_or_id: str) -> Command:
    """Find a kernel command by CLI name, alias, kernel enum name or numeric id."""
    key = name_or_id.strip().lower().replace("_", "-")
    if key in ALIASES:
        key = ALIASES[key]
    if key in BY_NAME:
        return BY_NAME[key]
    enum_key = key.upper().replace("-", "_")
    if enum_key in CommandId.__members__:
        cid = CommandId[enum_key]
        if int(cid) in BY_KERNEL_ID:
            return BY_KERNEL_ID[int(cid)]
    try:
        num = int(key, 0)
    except ValueError:
        num = -1
    if num in BY_KERNEL_ID:
        return BY_KERNEL_ID[num]
    raise UsageError(
        f"unknown command {name_or_id!r}",
        hint="see `cxlctl send --help` or `cxlctl query` for the command names",
    )
