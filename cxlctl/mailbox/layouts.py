"""Payload layouts: ctypes little-endian, packed, ``"ms"`` layout.

Field names follow the CXL 3.1 specification and the kernel; each docstring
cites the spec section and table.  Sizes are pinned in ``tests/test_mailbox.py``.
"""

from __future__ import annotations

import ctypes
import struct
import uuid as _uuid
from typing import Any, TypeVar

from ..errors import DecodeError


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


class SecurityStateOut(_Layout):
    """Get Security State output (8.2.9.9.6.1)."""

    _fields_ = [("security_state", ctypes.c_uint32)]


LayoutT = TypeVar("LayoutT", bound=ctypes.Structure)


def parse(layout: type[LayoutT], data: bytes, command: str) -> tuple[LayoutT, int]:
    """Overlay ``layout`` on ``data``; return it and the count of trailing bytes.

    A short payload is a :class:`DecodeError` naming the command and both lengths.
    """
    need = ctypes.sizeof(layout)
    if len(data) < need:
        raise DecodeError(f"{command}: payload is {len(data)} bytes, layout needs {need}")
    return layout.from_buffer_copy(data[:need]), len(data) - need


def parse_table(
    header: type[LayoutT], data: bytes, count_field: str, entry_size: int, command: str,
    entries: str = "entries",
) -> tuple[LayoutT, int, int, int]:  # fmt: skip
    """A header followed by ``header.<count_field>`` entries of ``entry_size`` bytes:
    (header, count, offset of the first entry, trailing bytes after the last). A
    payload shorter than the header or the entries it counts is a :class:`DecodeError`
    naming the command, the count and both lengths."""
    hdr, _ = parse(header, data, command)
    n = int(getattr(hdr, count_field))
    off = ctypes.sizeof(header)
    need = off + n * entry_size
    if len(data) < need:
        raise DecodeError(f"{command}: payload is {len(data)} bytes, {n} {entries} need {need}")
    return hdr, n, off, len(data) - need


def unpack(fmt: struct.Struct, data: bytes, command: str) -> tuple[tuple[Any, ...], int]:
    """:func:`parse` for a hot decoder: the fields of ``fmt`` (the layout as one
    :class:`struct.Struct`, pinned against the ctypes layout in the tests) in one
    call, and the count of trailing bytes. Short payloads fail as in :func:`parse`."""
    if len(data) < fmt.size:
        raise DecodeError(f"{command}: payload is {len(data)} bytes, layout needs {fmt.size}")
    return fmt.unpack_from(data), len(data) - fmt.size


def get_log_in(log_uuid: bytes, offset: int, length: int) -> bytes:
    """Get Log input payload for a log UUID given as its 16 spec-order bytes."""
    req = GetLogIn(offset=offset, length=length)
    ctypes.memmove(req.uuid, log_uuid, 16)
    return bytes(req)


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


# --- media and poison (8.2.9.9.4), events (8.2.9.2) --------------------------------


class PoisonListIn(_Layout):
    """Get Poison List input (8.2.9.9.4.1, Table 8-140): DPA, length in 64-byte units."""

    _fields_ = [("address", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class PoisonListOutHeader(_Layout):
    """Get Poison List output header (Table 8-141); Media Error Records follow."""

    _fields_ = [
        ("flags", ctypes.c_uint8),
        ("reserved1", ctypes.c_uint8),
        ("overflow_timestamp", ctypes.c_uint64),
        ("count", ctypes.c_uint16),
        ("reserved2", ctypes.c_uint8 * 20),
    ]


class MediaErrorRecord(_Layout):
    """Media Error Record (Table 8-142): address bits 2:0 source, 63:6 DPA; 64-byte units."""

    _fields_ = [
        ("address", ctypes.c_uint64),
        ("length", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class InjectPoisonIn(_Layout):
    """Inject Poison input (8.2.9.9.4.2, Table 8-143)."""

    _fields_ = [("address", ctypes.c_uint64)]


class ClearPoisonIn(_Layout):
    """Clear Poison input (8.2.9.9.4.3, Table 8-144): DPA and 64 bytes to write."""

    _fields_ = [("address", ctypes.c_uint64), ("write_data", ctypes.c_uint8 * 64)]


class ScanMediaIn(_Layout):
    """Scan Media input (8.2.9.9.4.5, Table 8-147); length in 64-byte units."""

    _fields_ = [
        ("address", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("flags", ctypes.c_uint8),
    ]


class ScanMediaResultsHeader(_Layout):
    """Get Scan Media Results output header (8.2.9.9.4.6, Table 8-148)."""

    _fields_ = [
        ("restart_address", ctypes.c_uint64),
        ("restart_length", ctypes.c_uint64),
        ("flags", ctypes.c_uint8),
        ("reserved1", ctypes.c_uint8),
        ("count", ctypes.c_uint16),
        ("reserved2", ctypes.c_uint8 * 12),
    ]


class GetEventRecordsOutHeader(_Layout):
    """Get Event Records output header (8.2.9.2.2, Table 8-50 / 3.1 Table 8-54)."""

    _fields_ = [
        ("flags", ctypes.c_uint8),
        ("reserved1", ctypes.c_uint8),
        ("overflow_error_count", ctypes.c_uint16),
        ("first_overflow_timestamp", ctypes.c_uint64),
        ("last_overflow_timestamp", ctypes.c_uint64),
        ("record_count", ctypes.c_uint16),
        ("reserved2", ctypes.c_uint8 * 10),
    ]


class EventRecordHeader(_Layout):
    """Common Event Record header (8.2.9.2.1, Table 8-43 in 3.1); 80 bytes of data follow."""

    _fields_ = [
        ("uuid", ctypes.c_uint8 * 16),
        ("length", ctypes.c_uint8),
        ("flags", ctypes.c_uint8 * 3),
        ("handle", ctypes.c_uint16),
        ("related_handle", ctypes.c_uint16),
        ("timestamp", ctypes.c_uint64),
        ("maint_op_class", ctypes.c_uint8),
        ("maint_op_sub_class", ctypes.c_uint8),
        ("ld_id", ctypes.c_uint16),
        ("head_id", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 11),
    ]


class EventRecord(_Layout):
    """One 128-byte event record: header + record-specific data."""

    _fields_ = [("hdr", EventRecordHeader), ("data", ctypes.c_uint8 * 80)]


class GeneralMediaRecord(_Layout):
    """General Media Event Record (8.2.9.2.1.1, 3.1 Table 8-45)."""

    _fields_ = [
        ("hdr", EventRecordHeader),
        ("phys_addr", ctypes.c_uint64),
        ("descriptor", ctypes.c_uint8),
        ("type", ctypes.c_uint8),
        ("transaction_type", ctypes.c_uint8),
        ("validity_flags", ctypes.c_uint16),
        ("channel", ctypes.c_uint8),
        ("rank", ctypes.c_uint8),
        ("device", ctypes.c_uint8 * 3),
        ("component_id", ctypes.c_uint8 * 16),
        ("cme_threshold_ev_flags", ctypes.c_uint8),
        ("cme_count", ctypes.c_uint8 * 3),
        ("sub_type", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 41),
    ]


class DramRecord(_Layout):
    """DRAM Event Record (8.2.9.2.1.2, 3.1 Table 8-46)."""

    _fields_ = [
        ("hdr", EventRecordHeader),
        ("phys_addr", ctypes.c_uint64),
        ("descriptor", ctypes.c_uint8),
        ("type", ctypes.c_uint8),
        ("transaction_type", ctypes.c_uint8),
        ("validity_flags", ctypes.c_uint16),
        ("channel", ctypes.c_uint8),
        ("rank", ctypes.c_uint8),
        ("nibble_mask", ctypes.c_uint8 * 3),
        ("bank_group", ctypes.c_uint8),
        ("bank", ctypes.c_uint8),
        ("row", ctypes.c_uint8 * 3),
        ("column", ctypes.c_uint16),
        ("correction_mask", ctypes.c_uint8 * 32),
        ("component_id", ctypes.c_uint8 * 16),
        ("sub_channel", ctypes.c_uint8),
        ("cme_threshold_ev_flags", ctypes.c_uint8),
        ("cvme_count", ctypes.c_uint8 * 3),
        ("sub_type", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
    ]


class MemoryModuleRecord(_Layout):
    """Memory Module Event Record (8.2.9.2.1.3, 3.1 Table 8-47); embeds Get Health Info."""

    _fields_ = [
        ("hdr", EventRecordHeader),
        ("event_type", ctypes.c_uint8),
        ("health", HealthInfoOut),
        ("validity_flags", ctypes.c_uint16),
        ("component_id", ctypes.c_uint8 * 16),
        ("event_sub_type", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 42),
    ]


class ClearEventRecordsIn(_Layout):
    """Clear Event Records input header (8.2.9.2.3, Table 8-51); u16 handles follow."""

    _fields_ = [
        ("event_log", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("count", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    ]


class EventInterruptPolicy(_Layout):
    """Get/Set Event Interrupt Policy payload (8.2.9.2.4-5, Table 8-52), the CXL 2.0
    part: one settings byte per event log (bits 1:0 interrupt mode, 7:4 message number)."""

    _fields_ = [
        ("info_settings", ctypes.c_uint8),
        ("warn_settings", ctypes.c_uint8),
        ("failure_settings", ctypes.c_uint8),
        ("fatal_settings", ctypes.c_uint8),
    ]


class EventInterruptPolicy3(_Layout):
    """Event Interrupt Policy as of CXL 3.0: adds the Dynamic Capacity log's settings."""

    _fields_ = [("base", EventInterruptPolicy), ("dcd_settings", ctypes.c_uint8)]


def le24(raw: Any) -> int:
    """A 3-byte little-endian field (``c_uint8 * 3``)."""
    return int.from_bytes(bytes(raw), "little")
