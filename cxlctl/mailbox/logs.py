"""Log commands (8.2.9.5): supported logs, the Command Effects Log, capabilities."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from ..errors import DecodeError
from . import BY_OPCODE, KNOWN_LOGS
from .layouts import (
    CelEntry,
    LogCapsOut,
    SupportedLogEntry,
    SupportedLogsHeader,
    parse,
    spec_uuid,
)


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
