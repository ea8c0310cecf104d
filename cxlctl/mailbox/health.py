"""Health information and alerts (8.2.9.9.3)."""

from __future__ import annotations

import struct

from ..record import Record
from .layouts import AlertConfigOut, ShutdownStateOut, parse, unpack

#: HealthInfoOut as one struct format (size pinned against the layout)
HEALTH_FORMAT = struct.Struct("<BBBBhIII")

#: Media Status values (Table 8-134) -> cxl-cli's ``media_*`` key for that value.
MEDIA_STATUS = {
    0: "normal",
    1: "not_ready",
    2: "persistence_lost",
    3: "data_lost",
    4: "powerloss_persistence_loss",
    5: "shutdown_persistence_loss",
    6: "persistence_loss_imminent",
    7: "powerloss_data_loss",
    8: "shutdown_data_loss",
    9: "data_loss_imminent",
}
_LEVEL = {0: "normal", 1: "warning", 2: "critical"}
LIFE_USED_NOT_IMPLEMENTED = 0xFF
TEMPERATURE_NOT_IMPLEMENTED = 0xFFFF


class HealthInfo(Record):
    """Get Health Info, every field (keys as cxl-cli's ``health`` block where they exist)."""

    health_status: int  #: raw Health Status byte
    maintenance_needed: bool
    performance_degraded: bool
    hw_replacement_needed: bool
    media_status: int  #: raw Media Status byte
    media_status_name: str  #: normal, not_ready, ... or reserved(N)
    additional_status: int  #: raw Additional Status byte
    ext_life_used: str  #: normal / warning / critical / unknown
    ext_temperature: str
    ext_corrected_volatile: str  #: normal / warning
    ext_corrected_persistent: str
    life_used_percent: int | None  #: None: not implemented (0xff)
    temperature: int | None  #: degrees C (signed), None: not implemented (0xffff)
    dirty_shutdowns: int
    volatile_errors: int  #: corrected volatile error count
    pmem_errors: int  #: corrected persistent error count
    trailing_bytes: int


def decode_health_info(data: bytes) -> HealthInfo:
    (hs, ms, add, life, temp, dirty, vol_err, pmem_err), trailing = unpack(
        HEALTH_FORMAT, data, "get-health-info"
    )
    return HealthInfo(
        hs, bool(hs & 1), bool(hs & 2), bool(hs & 4),
        ms, MEDIA_STATUS.get(ms) or f"reserved({ms})", add,
        _LEVEL.get(add & 3, "unknown"),
        _LEVEL.get((add >> 2) & 3, "unknown"),
        "warning" if add & 0x10 else "normal",
        "warning" if add & 0x20 else "normal",
        None if life == LIFE_USED_NOT_IMPLEMENTED else life,
        None if temp & 0xFFFF == TEMPERATURE_NOT_IMPLEMENTED else temp,
        dirty, vol_err, pmem_err, trailing,
    )  # fmt: skip


class AlertConfig(Record):
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


class ShutdownState(Record):
    dirty: bool
    state: str
    trailing_bytes: int


def decode_shutdown_state(data: bytes) -> ShutdownState:
    s, trailing = parse(ShutdownStateOut, data, "get-shutdown-state")
    dirty = bool(s.state & 1)
    return ShutdownState(dirty, "dirty" if dirty else "clean", trailing)
