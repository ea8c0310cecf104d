"""Health information and alerts (8.2.9.9.3)."""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping

from ..errors import DecodeError
from ..record import Record
from .layouts import AlertConfigOut, SetAlertConfigIn, ShutdownStateOut, parse, unpack

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


class Alert(enum.IntFlag):
    """One programmable warning alert: its bit in Valid Alerts, Programmable Alerts
    (Table 8-136) and Valid/Enable Alert Actions (Table 8-137)."""

    LIFE_USED = 1
    OVER_TEMPERATURE = 2
    UNDER_TEMPERATURE = 4
    CORRECTED_VOLATILE = 8
    CORRECTED_PERSISTENT = 16

    @property
    def field(self) -> str:
        """Its threshold's field in :class:`SetAlertConfigIn` and :class:`AlertConfigOut`."""
        return ALERT_FIELDS[self]


#: Each alert's programmable warning threshold field (both layouts), in bit order.
ALERT_FIELDS: dict[Alert, str] = {
    Alert.LIFE_USED: "life_used_programmable_warning_threshold",
    Alert.OVER_TEMPERATURE: "device_over_temperature_programmable_warning_threshold",
    Alert.UNDER_TEMPERATURE: "device_under_temperature_programmable_warning_threshold",
    Alert.CORRECTED_VOLATILE: "corrected_volatile_mem_error_programmable_warning_threshold",
    Alert.CORRECTED_PERSISTENT: "corrected_persistent_mem_error_programmable_warning_threshold",
}
#: The signed (degrees C) thresholds; the others are unsigned counts and percentages.
SIGNED_ALERTS = Alert.OVER_TEMPERATURE | Alert.UNDER_TEMPERATURE
#: Every defined alert bit; the others are reserved.
ALL_ALERTS = Alert(0x1F)


class SetAlertConfig(Record):
    """Set Alert Configuration's input (8.2.9.9.3.3, Table 8-137), typed: the
    alerts whose action is valid (changed), which of them are enabled, and each
    alert's warning threshold (0 where it is not enabled)."""

    valid: Alert
    enable: Alert
    thresholds: tuple[int, int, int, int, int]  #: in :data:`ALERT_FIELDS` order

    def threshold(self, alert: Alert) -> int:
        """The threshold sent for one alert (0 where it is not enabled)."""
        return self.thresholds[int(alert).bit_length() - 1]


def set_alert_config_request(changes: Mapping[Alert, int | None]) -> SetAlertConfig:
    """The request that turns each alert in ``changes`` on with its threshold (an
    int) or off (None); alerts not named keep their setting. A threshold outside
    its field (u8 life used, s16 temperatures, u16 counts) is a ValueError."""
    valid = enable = Alert(0)
    values = [0] * len(ALERT_FIELDS)
    for i, alert in enumerate(ALERT_FIELDS):
        if alert not in changes:
            continue
        valid |= alert
        threshold = changes[alert]
        if threshold is None:
            continue
        lo, hi = _range(alert)
        if not lo <= threshold <= hi:
            raise ValueError(f"{alert.field}: {threshold} is outside {lo}..{hi}")
        enable |= alert
        values[i] = threshold
    t = tuple(values)
    return SetAlertConfig(valid, enable, (t[0], t[1], t[2], t[3], t[4]))


def _range(alert: Alert) -> tuple[int, int]:
    if alert is Alert.LIFE_USED:
        return 0, 0xFF
    return (-0x8000, 0x7FFF) if alert & SIGNED_ALERTS else (0, 0xFFFF)


def encode_set_alert_config(req: SetAlertConfig) -> bytes:
    """The Set Alert Configuration payload (12 bytes, :class:`SetAlertConfigIn`)."""
    s = SetAlertConfigIn(valid_alert_actions=int(req.valid), enable_alert_actions=int(req.enable))
    for name, value in zip(ALERT_FIELDS.values(), req.thresholds, strict=True):
        setattr(s, name, value)
    return bytes(s)


def decode_set_alert_config(data: bytes) -> SetAlertConfig:
    """A Set Alert Configuration payload as the device reads it: the reserved bits
    of the action masks are kept (a device rejects them); trailing bytes are an error."""
    s, trailing = parse(SetAlertConfigIn, data, "set-alert-config")
    if trailing:
        raise DecodeError(f"set-alert-config: payload is {len(data)} bytes, layout needs 12")
    t = tuple(int(getattr(s, name)) for name in ALERT_FIELDS.values())
    return SetAlertConfig(
        Alert(int(s.valid_alert_actions)),
        Alert(int(s.enable_alert_actions)),
        (t[0], t[1], t[2], t[3], t[4]),
    )


class ShutdownState(Record):
    dirty: bool
    state: str
    trailing_bytes: int


def decode_shutdown_state(data: bytes) -> ShutdownState:
    s, trailing = parse(ShutdownStateOut, data, "get-shutdown-state")
    dirty = bool(s.state & 1)
    return ShutdownState(dirty, "dirty" if dirty else "clean", trailing)
