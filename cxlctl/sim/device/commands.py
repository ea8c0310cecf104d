"""Core mailbox commands of the simulated device: identify, logs, firmware,
timestamp, partitions, labels, health, alerts, shutdown state, scan media caps."""

from __future__ import annotations

import ctypes
import struct
import time
import uuid as _uuid
from typing import TYPE_CHECKING

from ... import mailbox as mb
from ...mailbox import layouts as lay
from ...mailbox.names import VENDOR_DEBUG_UUID
from .model import QEMU_PROFILES, RC, FileSlice, MiB, TypeThreeDevice, handles

if TYPE_CHECKING:
    from ...mailbox.health import SetAlertConfig

# The outputs the list and health paths read, each packed with one precompiled
# struct (tests/test_sim_packers.py pins them against the ctypes layouts). A field
# is masked to its width first: what assigning it to the ctypes field did.

#: Identify output as of CXL 3.0 (IdentifyOut3) as one struct format: fw_revision,
#: the four capacities, the event log sizes (8 bytes, per profile), lsa_size and the
#: constant tail (9 bytes): a pack of eight arguments, no argument unpacking
_IDENTIFY3 = struct.Struct("<16sQQQQ8sI9s")
#: info, warning, failure, fatal event log sizes: QEMU's, the full profile's
_QEMU_LOGS, _FULL_LOGS = struct.pack("<4H", 0, 0, 0, 0), struct.pack("<4H", 32, 32, 16, 16)
_IDENTIFY_TAIL = struct.pack(
    "<3sHBBH",
    b"\x00\x01\x00",  # poison_list_max_mer: 256 records, little-endian 24-bit
    0,  # inject_poison_limit
    0,  # poison_caps
    0,  # qos_telemetry_caps
    8,  # dc_event_log_size
)
#: Get Partition Info output (PartitionInfoOut)
_PARTITION_INFO = struct.Struct("<QQQQ")
#: Get Health Info output (HealthInfoOut); the temperature (s16) packed as its u16
_HEALTH_INFO = struct.Struct("<BBBBHIII")
assert _IDENTIFY3.size == ctypes.sizeof(lay.IdentifyOut3)
assert _PARTITION_INFO.size == ctypes.sizeof(lay.PartitionInfoOut)
assert _HEALTH_INFO.size == ctypes.sizeof(lay.HealthInfoOut)
_U64 = (1 << 64) - 1
_UNIT = mb.CAPACITY_UNIT
_QEMU_PROFILES = QEMU_PROFILES


@handles(mb.IDENTIFY)
def _identify(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    c = dev.config
    vol, pers, align = c.volatile_bytes, c.persistent_bytes, c.partition_align
    out = _IDENTIFY3.pack(
        c.fw_revision.encode()[:16],
        (vol + pers) // _UNIT & _U64,
        0 if align else vol // _UNIT & _U64,  # volatile-only
        0 if align else pers // _UNIT & _U64,  # persistent-only
        align // _UNIT,
        _QEMU_LOGS if c.profile in _QEMU_PROFILES else _FULL_LOGS,
        c.lsa_size & 0xFFFFFFFF,
        _IDENTIFY_TAIL,
    )
    return RC.SUCCESS, out


@handles(mb.GET_SUPPORTED_LOGS)
def _supported_logs(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    logs = dev.supported_logs()
    out = bytes(lay.SupportedLogsHeader(entries=len(logs)))
    for u, data in logs:
        e = lay.SupportedLogEntry(size=len(data))
        ctypes.memmove(e.uuid, _uuid.UUID(u).bytes, 16)
        out += bytes(e)
    return RC.SUCCESS, out


@handles(mb.GET_LOG)
def _get_log(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = lay.GetLogIn.from_buffer_copy(p)
    want = str(_uuid.UUID(bytes=bytes(req.uuid)))
    offset, length = int(req.offset), int(req.length)
    if length > dev.config.payload_max:
        return RC.INVALID_INPUT, b""
    for u, data in dev.supported_logs():
        if u == want:
            if length == 0:
                return RC.INVALID_INPUT, b""
            # QEMU reads its CEL at 4 x offset, past the log: teach the lesson instead
            if offset >= len(data) or offset + length > len(data):
                return RC.INVALID_INPUT, b""
            return RC.SUCCESS, data[offset : offset + length]
    return RC.INVALID_LOG, b""


@handles(mb.GET_LOG_CAPS)
def _log_caps(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    want = str(_uuid.UUID(bytes=p[:16]))
    if want not in {u for u, _ in dev.supported_logs()}:
        return RC.INVALID_LOG, b""
    # the Vendor Debug Log can be cleared (Linux allows Clear Log only for it)
    flags = 0x1 if want == VENDOR_DEBUG_UUID else 0
    return RC.SUCCESS, bytes(lay.LogCapsOut(parameter_flags=flags))


@handles(mb.CLEAR_LOG)
def _clear_log(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    want = str(_uuid.UUID(bytes=p[:16]))
    if want not in {u for u, _ in dev.supported_logs()}:
        return RC.INVALID_LOG, b""
    if want != VENDOR_DEBUG_UUID:
        return RC.UNSUPPORTED, b""  # the CEL cannot be cleared
    dev.vendor_debug_cleared = True
    dev.persist(vendor_debug_cleared=True)
    return RC.SUCCESS, b""


@handles(mb.GET_SUPPORTED_LOGS_SUB_LIST)
def _sup_log_sublist(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    max_entries, start = p[0], p[1]
    logs = dev.supported_logs()
    if max_entries == 0 or (start >= len(logs) and logs):
        return RC.INVALID_INPUT, b""
    chosen = logs[start : start + max_entries]
    out = bytes([len(chosen), 0]) + len(logs).to_bytes(2, "little") + bytes([start, 0, 0, 0])
    for u, data in chosen:
        e = lay.SupportedLogEntry(size=len(data))
        ctypes.memmove(e.uuid, _uuid.UUID(u).bytes, 16)
        out += bytes(e)
    return RC.SUCCESS, out


@handles(mb.GET_TIMESTAMP)
def _get_timestamp(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes(lay.TimestampOut(timestamp=dev.now_ns()))


@handles(mb.SET_TIMESTAMP)
def _set_timestamp(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    dev.timestamp_base_ns = int.from_bytes(p[:8], "little")
    dev.timestamp_set_at = time.monotonic_ns()
    dev.persist(timestamp=[dev.timestamp_base_ns, time.time_ns()])
    return RC.SUCCESS, b""


@handles(mb.GET_PARTITION_INFO)
def _partition_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    c = dev.config
    out = _PARTITION_INFO.pack(
        c.volatile_bytes // _UNIT & _U64,  # active
        c.persistent_bytes // _UNIT & _U64,
        dev.next_volatile // _UNIT & _U64,  # next
        dev.next_persistent // _UNIT & _U64,
    )
    return RC.SUCCESS, out


@handles(mb.SET_PARTITION_INFO)
def _set_partition_info(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    """8.2.9.9.2.2: the volatile capacity (256 MiB units) out of the partitionable
    capacity, a multiple of the alignment.  Without the immediate flag it becomes
    Get Partition Info's "next" layout (active after the next cold reset); with it
    the active partitions change at once (Linux never lets that through)."""
    c = dev.config
    if not c.partition_align:
        return RC.INVALID_INPUT, b""  # nothing is partitionable
    req = lay.SetPartitionInfoIn.from_buffer_copy(p.ljust(ctypes.sizeof(lay.SetPartitionInfoIn)))
    total = c.volatile_bytes + c.persistent_bytes
    vol = int(req.volatile_capacity) * mb.CAPACITY_UNIT
    if vol > total or vol % c.partition_align:
        return RC.INVALID_INPUT, b""
    if req.flags & 1:  # immediate
        c.volatile_bytes, c.persistent_bytes = vol, total - vol
        dev.next_volatile = dev.next_persistent = 0
    else:
        dev.next_volatile, dev.next_persistent = vol, total - vol
    dev.persist(next_partition=[dev.next_volatile, dev.next_persistent])
    return RC.SUCCESS, b""


#: Get LSA input (offset, length) and the Set LSA header (offset, reserved), as one
#: struct: the bulk-transfer hot path (sizes pinned against the layouts below)
_LSA_HEAD = struct.Struct("<II")
assert _LSA_HEAD.size == ctypes.sizeof(lay.GetLsaIn) == ctypes.sizeof(lay.SetLsaIn)


@handles(mb.GET_LSA)
def _get_lsa(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes | FileSlice]:
    off, n = _LSA_HEAD.unpack(p)  # lay.GetLsaIn; execute() checked the size
    # QEMU asserts on length 0 and overruns its registers above payload_max:
    # a real device may be that fragile, the simulator says Invalid Input.
    if n == 0 or n > dev.config.payload_max or off + n > dev.config.lsa_size:
        return RC.INVALID_INPUT, b""
    if dev.faults is not None and dev.faults.has("lsa-readback", mb.GET_LSA.opcode):  # for --verify
        data = dev.lsa.read(off, n)
        return RC.SUCCESS, bytes([data[0] ^ 0x01]) + data[1:]
    # left in the label area's file: the driver preads it into the caller's buffer
    return RC.SUCCESS, dev.lsa.file_slice(off, n)


@handles(mb.SET_LSA)
def _set_lsa(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if len(p) < _LSA_HEAD.size:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    off, _reserved = _LSA_HEAD.unpack_from(p)  # lay.SetLsaIn; the data follows
    n = len(p) - _LSA_HEAD.size
    if off + n > dev.config.lsa_size:
        return RC.INVALID_INPUT, b""
    dev.lsa.write(off, memoryview(p)[_LSA_HEAD.size :])
    return RC.SUCCESS, b""


@handles(mb.GET_HEALTH_INFO)
def _health_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    out = _HEALTH_INFO.pack(
        dev.health_status & 0xFF,
        dev.media_status & 0xFF,
        dev.additional_status & 0xFF,
        dev.life_used & 0xFF,
        dev.temperature & 0xFFFF,  # device_temperature, s16
        dev.dirty_shutdown_count & 0xFFFFFFFF,
        dev.corrected_volatile_errors & 0xFFFFFFFF,
        dev.corrected_persistent_errors & 0xFFFFFFFF,
    )
    return RC.SUCCESS, out


@handles(mb.GET_ALERT_CONFIG)
def _get_alert_config(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes(dev.alert)


@handles(mb.SET_ALERT_CONFIG)
def _set_alert_config(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    """CXL 3.1 8.2.9.9.3.3: a threshold changes only where its Valid Alert Actions
    bit is set (Enable Alert Actions bits without it are ignored). Invalid Input
    for reserved bits, a threshold the device does not make programmable, a life
    used warning above 100 % or not below the critical threshold, and a
    temperature warning outside the (under, over) critical thresholds."""
    from ...mailbox.health import ALL_ALERTS, Alert, decode_set_alert_config

    req = decode_set_alert_config(p)
    if dev.config.profile == "qemu11":
        return _set_alert_config_qemu11(dev, req)
    valid, enable = req.valid, req.enable
    a = dev.alert
    if (valid | enable) & ~ALL_ALERTS or valid & ~int(a.programmable_alerts):
        return RC.INVALID_INPUT, b""
    lo = int(a.device_under_temperature_critical_threshold)
    hi = int(a.device_over_temperature_critical_threshold)
    on = valid & enable
    life = req.threshold(Alert.LIFE_USED)
    if on & Alert.LIFE_USED and (life > 100 or life >= int(a.life_used_critical_threshold)):
        return RC.INVALID_INPUT, b""
    for alert in (Alert.OVER_TEMPERATURE, Alert.UNDER_TEMPERATURE):
        if on & alert and not lo < req.threshold(alert) < hi:
            return RC.INVALID_INPUT, b""
    for alert in Alert:
        if valid & alert:
            if enable & alert:
                setattr(a, alert.field, req.threshold(alert))
                a.valid_alerts |= alert
            else:
                a.valid_alerts &= ~alert
    dev.persist(alert_config=bytes(a).hex())
    return RC.SUCCESS, b""


def _set_alert_config_qemu11(dev: TypeThreeDevice, req: SetAlertConfig) -> tuple[int, bytes]:
    """QEMU 11.1's cmd_set_alert_config(), not the spec's: Enable Alert Actions is
    ignored; each Valid bit in turn (life used, over-, under-temperature, corrected
    volatile, persistent) checks its threshold against the critical one (unsigned;
    Invalid Input returns at once, keeping what earlier bits already changed), sets it
    and ORs the bit into byte 1 (Programmable Alerts; Valid Alerts stays 0)."""
    from ...mailbox.health import Alert

    a = dev.alert
    over_crit = int(a.device_over_temperature_critical_threshold) & 0xFFFF
    under_crit = int(a.device_under_temperature_critical_threshold) & 0xFFFF
    for alert in Alert:
        if not req.valid & alert:
            continue
        value = req.threshold(alert)
        raw = value & 0xFFFF  # QEMU compares the temperatures as uint16
        if (
            (alert is Alert.LIFE_USED and value >= int(a.life_used_critical_threshold))
            or (alert is Alert.OVER_TEMPERATURE and raw >= over_crit)
            or (alert is Alert.UNDER_TEMPERATURE and raw <= under_crit)
        ):
            dev.persist(alert_config=bytes(a).hex())
            return RC.INVALID_INPUT, b""
        setattr(a, alert.field, value)
        a.programmable_alerts = int(a.programmable_alerts) | alert
    dev.persist(alert_config=bytes(a).hex())
    return RC.SUCCESS, b""


@handles(mb.GET_SHUTDOWN_STATE)
def _get_shutdown(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes([1 if dev.dirty_shutdown else 0])


@handles(mb.SET_SHUTDOWN_STATE)
def _set_shutdown(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if p[0] & ~1:
        return RC.INVALID_INPUT, b""
    dev.dirty_shutdown = bool(p[0] & 1)
    dev.persist(dirty_shutdown=dev.dirty_shutdown)
    return RC.SUCCESS, b""


@handles(mb.GET_SCAN_MEDIA_CAPS)
def _scan_media_caps(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = lay.ScanMediaCapsIn.from_buffer_copy(p)
    start, length = int(req.dpa), int(req.length) * 64
    size = dev.config.volatile_bytes + dev.config.persistent_bytes
    # QEMU 10's order: alignment (Invalid Input), then range (Invalid PA); length 0 is fine
    if start % 64:
        return RC.INVALID_INPUT, b""
    if start + length > size:
        return RC.INVALID_PHYSICAL_ADDRESS, b""
    # qemu: 500 ns per 64-byte line, as QEMU estimates; full: 1 ms per MiB; at least 1 ms
    ms = length // 128000 if dev.config.qemu else length // MiB
    return RC.SUCCESS, bytes(lay.ScanMediaCapsOut(estimated_scan_media_time=max(1, ms)))


@handles(mb.GET_SECURITY_STATE)
def _security_state(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, (0).to_bytes(4, "little")
