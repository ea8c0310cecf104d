"""Health information and alerts (8.2.9.9.3)."""

from __future__ import annotations

from dataclasses import dataclass

from .layouts import AlertConfigOut, HealthInfoOut, ShutdownStateOut, parse

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


@dataclass(frozen=True, slots=True)
class HealthInfo:
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
    s, trailing = parse(HealthInfoOut, data, "get-health-info")
    hs, ms, add = int(s.health_status), int(s.media_status), int(s.additional_status)
    life = int(s.life_used)
    temp = int(s.device_temperature)
    return HealthInfo(
        health_status=hs,
        maintenance_needed=bool(hs & 1),
        performance_degraded=bool(hs & 2),
        hw_replacement_needed=bool(hs & 4),
        media_status=ms,
        media_status_name=MEDIA_STATUS.get(ms, f"reserved({ms})"),
        additional_status=add,
        ext_life_used=_LEVEL.get(add & 3, "unknown"),
        ext_temperature=_LEVEL.get((add >> 2) & 3, "unknown"),
        ext_corrected_volatile="warning" if add & 0x10 else "normal",
        ext_corrected_persistent="warning" if add & 0x20 else "normal",
        life_used_percent=None if life == LIFE_USED_NOT_IMPLEMENTED else life,
        temperature=None if temp & 0xFFFF == TEMPERATURE_NOT_IMPLEMENTED else temp,
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
