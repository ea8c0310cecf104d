"""Log commands (8.2.9.5): supported logs, the Command Effects Log, capabilities."""

from __future__ import annotations

import ctypes

from ..record import Record
from . import BY_OPCODE, KNOWN_LOGS
from .layouts import (
    CelEntry,
    LogCapsOut,
    SupportedLogEntry,
    SupportedLogsHeader,
    parse,
    parse_table,
    spec_uuid,
)


class LogEntry(Record):
    uuid: str
    name: str
    size: int


class SupportedLogs(Record):
    logs: tuple[LogEntry, ...]
    trailing_bytes: int


def decode_supported_logs(data: bytes) -> SupportedLogs:
    esz = ctypes.sizeof(SupportedLogEntry)
    _, n, off, trailing = parse_table(
        SupportedLogsHeader, data, "entries", esz, "get-supported-logs"
    )
    logs = []
    for i in range(n):
        e, _ = parse(SupportedLogEntry, data[off + i * esz : off + (i + 1) * esz], "log entry")
        u = spec_uuid(e.uuid)
        logs.append(LogEntry(u, KNOWN_LOGS.get(u, "unknown"), int(e.size)))
    return SupportedLogs(tuple(logs), trailing)


#: Command Effect bits of a CEL entry (CXL 3.1 Table 8-75; bits 9-11 as in Linux's
#: ``CXL_CMD_EFFECTS_VALID``/``CONFIG_CHANGE_CONV_RESET``/``CONFIG_CHANGE_CXL_RESET``).
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
    "effects_10_11_valid",
    "config_change_conventional_reset",
    "config_change_cxl_reset",
)


class CelEffects(Record):
    """Every Command Effect bit of one CEL entry, by name."""

    config_change_cold_reset: bool
    config_change_immediate: bool
    data_change_immediate: bool
    policy_change_immediate: bool
    log_change_immediate: bool
    security_state_change: bool
    background_operation: bool
    secondary_mailbox_supported: bool
    request_abort_background_op_supported: bool
    effects_10_11_valid: bool
    config_change_conventional_reset: bool
    config_change_cxl_reset: bool
    reserved_bits: int  #: bits 15:12, raw


class CelRecord(Record):
    opcode: int
    name: str | None  #: the catalogue's command name, None if cxlctl does not know it
    title: str  #: spec name, or ``Opcode 0xNNNN``
    effect: int  #: raw Command Effect field
    effects: CelEffects
    #: the catalogue's word: the command changes the device (None if unknown)
    destructive: bool | None


class Cel(Record):
    entries: tuple[CelRecord, ...]
    trailing_bytes: int  #: bytes after the last whole 4-byte entry


def cel_effects(eff: int) -> CelEffects:
    b = [bool(eff & (1 << bit)) for bit in range(len(CEL_EFFECTS))]
    return CelEffects(
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
        eff >> len(CEL_EFFECTS),
    )  # fmt: skip


def decode_cel(data: bytes) -> Cel:
    esz = ctypes.sizeof(CelEntry)
    n = len(data) // esz
    recs = []
    for i in range(n):
        e = CelEntry.from_buffer_copy(data[i * esz : (i + 1) * esz])
        eff = int(e.effect)
        op = int(e.opcode)
        cmd = BY_OPCODE.get(op)
        recs.append(
            CelRecord(
                op,
                cmd.name if cmd else None,
                cmd.title if cmd else f"Opcode {op:#06x}",
                eff,
                cel_effects(eff),
                cmd.destructive if cmd else None,
            )
        )
    return Cel(tuple(recs), len(data) - n * esz)


class LogCaps(Record):
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
