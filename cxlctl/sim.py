"""A simulated CXL memdev at the ioctl seam: Linux 6.12's driver checks plus a type-3 device.

:class:`SimDevice` has ``ioctl(request, arg)`` with the contract of
``fcntl.ioctl(fd, request, arg, True)`` on ``/dev/cxl/memN``: it reads the
structure from ``arg``, reads and writes the payloads through the pointers in it
(safely: a bad pointer is ``EFAULT``, as ``copy_from_user`` would say, never a
crash), updates ``arg`` in place and returns 0 or raises ``OSError`` with the
errno Linux 6.12 gives for that request.

Two halves, kept apart as in Linux:

* :class:`KernelDriver` -- ``drivers/cxl/core/mbox.c``: the command table, the
  enabled bits from the device's CEL, the exclusive bits the nvdimm bridge claims,
  every size/flag/reserved-field rule in the kernel's order, the RAW policy.
* :class:`TypeThreeDevice` -- the device behind the mailbox: commands, payloads,
  mailbox return codes, state.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
import time
import uuid as _uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import mailbox as mb
from . import uapi
from .uapi import CXL_VARIABLE_PAYLOAD as VAR
from .uapi import CommandId as K

RC = mb.ReturnCode
MiB = 1024 * 1024

# --- copy_from_user / copy_to_user without crashing on bad pointers ----------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.read.restype = ctypes.c_ssize_t
_libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.write.restype = ctypes.c_ssize_t
_CHUNK = 32 * 1024  # half the default pipe capacity


class UserMemory:
    """Reads and writes this process's memory through a pipe, so the kernel does
    the access check: an unmapped or read-only address gives ``EFAULT``."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()

    def _drain(self) -> None:
        try:
            while os.read(self._r, 65536):
                pass
        except BlockingIOError:
            pass

    def copy_from_user(self, addr: int, n: int) -> bytes:
        out = bytearray()
        with self._lock:
            while len(out) < n:
                want = min(_CHUNK, n - len(out))
                got = _libc.write(self._w, ctypes.c_void_p(addr + len(out)), want)
                if got != want:
                    self._drain()
                    raise OSError(errno.EFAULT, os.strerror(errno.EFAULT))
                out += os.read(self._r, want)
        return bytes(out)

    def copy_to_user(self, addr: int, data: bytes) -> None:
        with self._lock:
            for pos in range(0, len(data), _CHUNK):
                chunk = data[pos : pos + _CHUNK]
                os.write(self._w, chunk)
                got = _libc.read(self._r, ctypes.c_void_p(addr + pos), len(chunk))
                if got != len(chunk):
                    self._drain()
                    raise OSError(errno.EFAULT, os.strerror(errno.EFAULT))

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


_MEMORY: UserMemory | None = None


def _user_memory() -> UserMemory:
    global _MEMORY
    if _MEMORY is None:
        _MEMORY = UserMemory()
    return _MEMORY


def _fault() -> OSError:
    return OSError(errno.EFAULT, os.strerror(errno.EFAULT))


def _err(e: int) -> OSError:
    return OSError(e, os.strerror(e))


# --- the device ------------------------------------------------------------------

#: Command effects per opcode as QEMU 10's cxl-type3 reports them in its CEL.
_EFFECTS: dict[int, int] = {
    0x0100: 0x0000, 0x0101: 0x0010, 0x0102: 0x0000, 0x0103: 0x0002,
    0x0200: 0x0000, 0x0201: 0x0040, 0x0202: 0x0040,
    0x0300: 0x0000, 0x0301: 0x0008,
    0x0400: 0x0000, 0x0401: 0x0000, 0x0402: 0x0000, 0x0403: 0x0010, 0x0405: 0x0000,
    0x0500: 0x0000, 0x0501: 0x0000, 0x0502: 0x003E,
    0x4000: 0x0000, 0x4100: 0x0000, 0x4101: 0x0001, 0x4102: 0x0000, 0x4103: 0x0006,
    0x4200: 0x0000, 0x4201: 0x0000, 0x4202: 0x0008, 0x4203: 0x0000, 0x4204: 0x0008,
    0x4300: 0x0000, 0x4301: 0x0000, 0x4302: 0x0000, 0x4303: 0x0000, 0x4304: 0x0040,
    0x4305: 0x0000, 0x4400: 0x0064, 0x4500: 0x0000,
}  # fmt: skip

#: The opcodes in QEMU 10's CEL, in its order (reference capture, 26 entries).
QEMU_CEL: tuple[int, ...] = (
    0x0100, 0x0101, 0x0102, 0x0103, 0x0200, 0x0201, 0x0202, 0x0300, 0x0301,
    0x0400, 0x0401, 0x0500, 0x0501, 0x0502, 0x4000, 0x4100, 0x4102, 0x4103,
    0x4300, 0x4301, 0x4302, 0x4303, 0x4304, 0x4305, 0x4400, 0x4500,
)  # fmt: skip


@dataclass
class DeviceConfig:
    """What a simulated device is: capacities in bytes, identity, profile."""

    volatile_bytes: int = 0
    persistent_bytes: int = 256 * MiB
    serial: int = 0x1234
    lsa_size: int = 256 * MiB
    payload_max: int = 2048
    fw_revision: str = "BWFW VERSION 00"
    slot_fw_revisions: tuple[str, ...] = ("BWFW VERSION 0",)
    #: "full": every command cxlctl knows; "qemu": exactly QEMU 10's cxl-type3 CEL.
    profile: str = "full"
    host: str = "0000:0d:00.0"
    numa_node: int = -1
    cel: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.cel:
            if self.profile == "qemu":
                self.cel = QEMU_CEL
            else:
                self.cel = tuple(sorted(h for h in _HANDLERS))


Handler = Callable[["TypeThreeDevice", bytes], tuple[int, bytes]]
_HANDLERS: dict[int, Handler] = {}


def _handles(opcode: int) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        _HANDLERS[opcode] = fn
        return fn

    return deco


class TypeThreeDevice:
    """The device half: a CXL type-3 memory device's mailbox and state."""

    def __init__(self, config: DeviceConfig, state_dir: str | None = None) -> None:
        self.config = config
        self.lsa: bytearray | mmap.mmap = bytearray(config.lsa_size)
        if state_dir and config.lsa_size:
            # CXLCTL_SIM_STATE: the label area survives between processes (sparse file)
            os.makedirs(state_dir, exist_ok=True)
            path = os.path.join(state_dir, f"{config.serial:#x}.lsa")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(fd).st_size != config.lsa_size:
                    os.ftruncate(fd, config.lsa_size)
                self.lsa = mmap.mmap(fd, config.lsa_size)
            finally:
                os.close(fd)
        self.timestamp_base_ns = time.time_ns()  # the kernel sets it at probe
        self.timestamp_set_at = time.monotonic_ns()
        self.dirty_shutdown = False
        self.dirty_shutdown_count = 0
        self.life_used = 3
        self.temperature = 37
        self.alert = mb.AlertConfigOut(
            valid_alerts=0,
            programmable_alerts=0x1F,
            life_used_critical_threshold=95,
            device_over_temperature_critical_threshold=85,
            device_under_temperature_critical_threshold=-10,
        )
        self.next_volatile = 0
        self.next_persistent = 0
        self.calls: list[tuple[int, bytes]] = []  # a log of what reached the device

    @property
    def cel(self) -> tuple[int, ...]:
        return self.config.cel

    def execute(self, opcode: int, payload: bytes) -> tuple[int, bytes]:
        """Run one mailbox command: (return code, output payload)."""
        self.calls.append((opcode, payload))
        if opcode not in self.cel or opcode not in _HANDLERS:
            return RC.UNSUPPORTED, b""
        cmd = mb.BY_OPCODE.get(opcode)
        if cmd is not None and cmd.size_in is not None and len(payload) != cmd.size_in:
            return RC.INVALID_PAYLOAD_LENGTH, b""
        return _HANDLERS[opcode](self, payload)

    # -- helpers used by handlers --
    def cel_bytes(self) -> bytes:
        return b"".join(
            bytes(mb.CelEntry(opcode=op, effect=_EFFECTS.get(op, 0))) for op in self.cel
        )

    def supported_logs(self) -> list[tuple[str, bytes]]:
        return [(mb.CEL_UUID, self.cel_bytes())]

    def now_ns(self) -> int:
        return self.timestamp_base_ns + (time.monotonic_ns() - self.timestamp_set_at)


def _units(nbytes: int) -> int:
    return nbytes // mb.CAPACITY_UNIT


@_handles(0x4000)
def _identify(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    c = dev.config
    base = mb.IdentifyOut()
    fw = c.fw_revision.encode()[:16]
    ctypes.memmove(base.fw_revision, fw, len(fw))
    base.total_capacity = _units(c.volatile_bytes + c.persistent_bytes)
    base.volatile_capacity = _units(c.volatile_bytes)
    base.persistent_capacity = _units(c.persistent_bytes)
    base.partition_align = 0
    if c.profile != "qemu":
        base.info_event_log_size = base.warning_event_log_size = 32
        base.failure_event_log_size = base.fatal_event_log_size = 16
    base.lsa_size = c.lsa_size
    base.poison_list_max_mer[1] = 1  # 256 records, little-endian 24-bit
    out = mb.IdentifyOut3(base=base, dc_event_log_size=8)
    return RC.SUCCESS, bytes(out)


@_handles(0x0400)
def _supported_logs(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    logs = dev.supported_logs()
    out = bytes(mb.SupportedLogsHeader(entries=len(logs)))
    for u, data in logs:
        e = mb.SupportedLogEntry(size=len(data))
        ctypes.memmove(e.uuid, _uuid.UUID(u).bytes, 16)
        out += bytes(e)
    return RC.SUCCESS, out


@_handles(0x0401)
def _get_log(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = mb.GetLogIn.from_buffer_copy(p)
    want = str(_uuid.UUID(bytes=bytes(req.uuid)))
    offset, length = int(req.offset), int(req.length)
    if length == 0 or length > dev.config.payload_max:
        return RC.INVALID_INPUT, b""
    for u, data in dev.supported_logs():
        if u == want:
            if offset >= len(data):
                return RC.INVALID_INPUT, b""
            return RC.SUCCESS, data[offset : offset + length]
    return RC.INVALID_LOG, b""


@_handles(0x0402)
def _log_caps(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    want = str(_uuid.UUID(bytes=p[:16]))
    if want not in {u for u, _ in dev.supported_logs()}:
        return RC.INVALID_LOG, b""
    return RC.SUCCESS, bytes(mb.LogCapsOut(parameter_flags=0))


@_handles(0x0403)
def _clear_log(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    want = str(_uuid.UUID(bytes=p[:16]))
    if want not in {u for u, _ in dev.supported_logs()}:
        return RC.INVALID_LOG, b""
    return RC.UNSUPPORTED, b""  # the CEL cannot be cleared


@_handles(0x0405)
def _sup_log_sublist(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    max_entries, start = p[0], p[1]
    logs = dev.supported_logs()
    if max_entries == 0 or (start >= len(logs) and logs):
        return RC.INVALID_INPUT, b""
    chosen = logs[start : start + max_entries]
    out = bytes([len(chosen), 0]) + len(logs).to_bytes(2, "little") + bytes([start, 0, 0, 0])
    for u, data in chosen:
        e = mb.SupportedLogEntry(size=len(data))
        ctypes.memmove(e.uuid, _uuid.UUID(u).bytes, 16)
        out += bytes(e)
    return RC.SUCCESS, out


@_handles(0x0200)
def _fw_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    out = mb.FwInfoOut(fw_slots_supported=2, fw_slot_info=1, fw_activation_caps=1)
    for i, rev in enumerate(dev.config.slot_fw_revisions[:4]):
        b = rev.encode()[:16]
        ctypes.memmove(out.slot_fw_revision[i], b, len(b))
    return RC.SUCCESS, bytes(out)


@_handles(0x0300)
def _get_timestamp(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes(mb.TimestampOut(timestamp=dev.now_ns()))


@_handles(0x0301)
def _set_timestamp(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    dev.timestamp_base_ns = int.from_bytes(p[:8], "little")
    dev.timestamp_set_at = time.monotonic_ns()
    return RC.SUCCESS, b""


@_handles(0x4100)
def _partition_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    c = dev.config
    out = mb.PartitionInfoOut(
        active_volatile_capacity=_units(c.volatile_bytes),
        active_persistent_capacity=_units(c.persistent_bytes),
        next_volatile_capacity=_units(dev.next_volatile),
        next_persistent_capacity=_units(dev.next_persistent),
    )
    return RC.SUCCESS, bytes(out)


@_handles(0x4101)
def _set_partition_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.INVALID_INPUT, b""  # partition_align is 0: nothing is partitionable


@_handles(0x4102)
def _get_lsa(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = mb.GetLsaIn.from_buffer_copy(p)
    off, n = int(req.offset), int(req.length)
    # QEMU asserts on length 0 and overruns its registers above payload_max:
    # a real device may be that fragile, the simulator says Invalid Input.
    if n == 0 or n > dev.config.payload_max or off + n > len(dev.lsa):
        return RC.INVALID_INPUT, b""
    return RC.SUCCESS, bytes(dev.lsa[off : off + n])


@_handles(0x4103)
def _set_lsa(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    hdr_size = ctypes.sizeof(mb.SetLsaIn)
    if len(p) < hdr_size:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    req = mb.SetLsaIn.from_buffer_copy(p[:hdr_size])
    data = p[hdr_size:]
    off = int(req.offset)
    if off + len(data) > len(dev.lsa):
        return RC.INVALID_INPUT, b""
    dev.lsa[off : off + len(data)] = data
    return RC.SUCCESS, b""


@_handles(0x4200)
def _health_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    out = mb.HealthInfoOut(
        health_status=0,
        media_status=0,
        additional_status=0,
        life_used=dev.life_used,
        device_temperature=dev.temperature,
        dirty_shutdown_count=dev.dirty_shutdown_count,
    )
    return RC.SUCCESS, bytes(out)


@_handles(0x4201)
def _get_alert_config(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes(dev.alert)


@_handles(0x4202)
def _set_alert_config(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = mb.SetAlertConfigIn.from_buffer_copy(p)
    valid, enable = int(req.valid_alert_actions), int(req.enable_alert_actions)
    if valid & ~0x1F or enable & ~valid & 0x1F:
        return RC.INVALID_INPUT, b""
    a = dev.alert
    if valid & 1 and req.life_used_programmable_warning_threshold > a.life_used_critical_threshold:
        return RC.INVALID_INPUT, b""
    names = (
        "life_used_programmable_warning_threshold",
        "device_over_temperature_programmable_warning_threshold",
        "device_under_temperature_programmable_warning_threshold",
        "corrected_volatile_mem_error_programmable_warning_threshold",
        "corrected_persistent_mem_error_programmable_warning_threshold",
    )
    for bit, name in enumerate(names):
        if valid & (1 << bit):
            if enable & (1 << bit):
                setattr(a, name, getattr(req, name))
                a.valid_alerts |= 1 << bit
            else:
                a.valid_alerts &= ~(1 << bit)
    return RC.SUCCESS, b""


@_handles(0x4203)
def _get_shutdown(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, bytes([1 if dev.dirty_shutdown else 0])


@_handles(0x4204)
def _set_shutdown(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if p[0] & ~1:
        return RC.INVALID_INPUT, b""
    dev.dirty_shutdown = bool(p[0] & 1)
    return RC.SUCCESS, b""


@_handles(0x4303)
def _scan_media_caps(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = mb.ScanMediaCapsIn.from_buffer_copy(p)
    start, length = int(req.dpa), int(req.length) * 64
    size = dev.config.volatile_bytes + dev.config.persistent_bytes
    if start % 64 or length == 0 or start + length > size:
        return RC.INVALID_PHYSICAL_ADDRESS if start % 64 else RC.INVALID_INPUT, b""
    # 1 ms per MiB, at least 1 ms
    return RC.SUCCESS, bytes(mb.ScanMediaCapsOut(estimated_scan_media_time=max(1, length // MiB)))


@_handles(0x4500)
def _security_state(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return RC.SUCCESS, (0).to_bytes(4, "little")


# --- the driver ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KernelCommand:
    """One ``CXL_CMD()`` entry of ``cxl_mem_commands[]`` in Linux 6.12."""

    id: int
    opcode: int
    size_in: int
    size_out: int


#: ``cxl_mem_commands[]`` as compiled without CONFIG_CXL_MEM_RAW_COMMANDS;
#: unlisted indices (RAW, the deprecated ids) are zeroed entries.
KERNEL_COMMANDS: tuple[KernelCommand, ...] = (
    KernelCommand(K.IDENTIFY, 0x4000, 0, 0x43),
    KernelCommand(K.GET_SUPPORTED_LOGS, 0x0400, 0, VAR),
    KernelCommand(K.GET_FW_INFO, 0x0200, 0, 0x50),
    KernelCommand(K.GET_PARTITION_INFO, 0x4100, 0, 0x20),
    KernelCommand(K.GET_LSA, 0x4102, 0x8, VAR),
    KernelCommand(K.GET_HEALTH_INFO, 0x4200, 0, 0x12),
    KernelCommand(K.GET_LOG, 0x0401, 0x18, VAR),
    KernelCommand(K.SET_PARTITION_INFO, 0x4101, 0x0A, 0),
    KernelCommand(K.SET_LSA, 0x4103, VAR, 0),
    KernelCommand(K.GET_ALERT_CONFIG, 0x4201, 0, 0x10),
    KernelCommand(K.SET_ALERT_CONFIG, 0x4202, 0xC, 0),
    KernelCommand(K.GET_SHUTDOWN_STATE, 0x4203, 0, 0x1),
    KernelCommand(K.SET_SHUTDOWN_STATE, 0x4204, 0x1, 0),
    KernelCommand(K.GET_SCAN_MEDIA_CAPS, 0x4303, 0x10, 0x4),
    KernelCommand(K.GET_TIMESTAMP, 0x0300, 0, 0x8),
    KernelCommand(K.GET_LOG_CAPS, 0x0402, 0x10, 0x4),
    KernelCommand(K.CLEAR_LOG, 0x0403, 0x10, 0),
    KernelCommand(K.GET_SUP_LOG_SUBLIST, 0x0405, 0x2, VAR),
)
_RAW_ENTRY = KernelCommand(K.RAW, 0, VAR, VAR)
_ZERO = KernelCommand(0, 0, 0, 0)

#: ``cxl_disabled_raw_commands[]``
DISABLED_RAW_OPCODES: frozenset[int] = frozenset(
    {0x0202, 0x4101, 0x4103, 0x4204, 0x4304, 0x4305, 0x4300, 0x4301, 0x4302}
)
#: ``security_command_sets[]``: Sanitize, PMem security, security passthrough.
SECURITY_COMMAND_SETS: frozenset[int] = frozenset({0x44, 0x45, 0x46})
CXL_SET_PARTITION_IMMEDIATE_FLAG = 1


class KernelDriver:
    """The driver half: ``cxl_query_cmd()`` and ``cxl_send_cmd()`` of Linux 6.12."""

    def __init__(
        self,
        device: TypeThreeDevice,
        *,
        raw_commands: bool = False,
        raw_allow_all: bool = False,
        locked_down: bool = False,
        nvdimm_bridge: bool | None = None,
        memory: UserMemory | None = None,
    ) -> None:
        self.device = device
        self.raw_commands = raw_commands
        self.raw_allow_all = raw_allow_all
        self.locked_down = locked_down
        self.payload_size = device.config.payload_max
        self.attached = True
        self.mem = memory or _user_memory()
        table = [_ZERO] * K.MAX
        for c in KERNEL_COMMANDS:
            table[c.id] = c
        if raw_commands:
            table[K.RAW] = _RAW_ENTRY
        self.table: tuple[KernelCommand, ...] = tuple(table)
        # cxl_walk_cel(): enable what the device's CEL lists
        cel = set(device.cel)
        self.enabled = {c.id for c in KERNEL_COMMANDS if c.opcode in cel}
        # cxl_pmem's nvdimm bridge claims the label area and the shutdown state
        if nvdimm_bridge is None:
            nvdimm_bridge = device.config.persistent_bytes > 0
        self.exclusive = {K.SET_LSA, K.SET_SHUTDOWN_STATE} if nvdimm_bridge else set()

    # -- ioctl entry (cxl_memdev_ioctl) --
    def ioctl(self, request: int, arg: bytearray) -> int:
        if not self.attached:
            raise _err(errno.ENXIO)
        if request == uapi.CXL_MEM_QUERY_COMMANDS:
            return self._query(arg)
        if request == uapi.CXL_MEM_SEND_COMMAND:
            return self._send(arg)
        raise _err(errno.ENOTTY)

    def _query(self, arg: bytearray) -> int:
        if len(arg) < uapi.QUERY_HEADER_SIZE:
            raise _fault()
        q = uapi.cxl_mem_query_commands.from_buffer(arg)
        n = int(q.n_commands)
        if n == 0:
            q.n_commands = len(self.table)
            return 0
        for j, c in enumerate(self.table[:n]):
            off = uapi.QUERY_HEADER_SIZE + j * uapi.COMMAND_INFO_SIZE
            if off + uapi.COMMAND_INFO_SIZE > len(arg):
                raise _fault()  # the kernel would write past the caller's buffer
            flags = 0
            if c.id in self.enabled:
                flags |= uapi.CXL_MEM_COMMAND_FLAG_ENABLED
            if c.id in self.exclusive:
                flags |= uapi.CXL_MEM_COMMAND_FLAG_EXCLUSIVE
            info = uapi.cxl_command_info(c.id, flags, c.size_in, c.size_out)
            arg[off : off + uapi.COMMAND_INFO_SIZE] = bytes(info)
        return 0

    def _raw_allowed(self, opcode: int) -> bool:
        if not self.raw_commands or self.locked_down:
            return False
        if self.raw_allow_all:
            return True
        if opcode >> 8 in SECURITY_COMMAND_SETS:
            return False
        return opcode not in DISABLED_RAW_OPCODES

    def _validate(self, s: uapi.cxl_send_command) -> tuple[int, int, int]:
        """cxl_validate_cmd_from_user(): (opcode, size_in, size_out) or raise."""
        cid = int(s.id)
        if cid == 0 or cid >= K.MAX:
            raise _err(errno.ENOTTY)
        if s.in_.size > self.payload_size:
            raise _err(errno.EINVAL)
        if cid == K.RAW:  # cxl_to_mem_cmd_raw()
            if s.raw.rsvd:
                raise _err(errno.EINVAL)
            if s.out.size > self.payload_size:
                raise _err(errno.EINVAL)
            if not self._raw_allowed(int(s.raw.opcode)):
                raise _err(errno.EPERM)
            return int(s.raw.opcode), int(s.in_.size), int(s.out.size)
        c = self.table[cid]  # cxl_to_mem_cmd()
        if s.flags & ~uapi.CXL_MEM_COMMAND_FLAG_MASK:
            raise _err(errno.EINVAL)
        if s.rsvd:
            raise _err(errno.EINVAL)
        if s.in_.rsvd or s.out.rsvd:
            raise _err(errno.EINVAL)
        if c.id not in self.enabled:
            raise _err(errno.ENOTTY)
        if c.id in self.exclusive:
            raise _err(errno.EBUSY)
        if c.size_in != VAR and c.size_in != s.in_.size:
            raise _err(errno.ENOMEM)
        if c.size_out != VAR and s.out.size < c.size_out:
            raise _err(errno.ENOMEM)
        return c.opcode, int(s.in_.size), int(s.out.size)

    def _send(self, arg: bytearray) -> int:
        if len(arg) < uapi.SEND_SIZE:
            raise _fault()
        s = uapi.cxl_send_command.from_buffer(arg)
        opcode, size_in, size_out = self._validate(s)
        # cxl_mbox_cmd_ctor()
        payload = self.mem.copy_from_user(int(s.in_.payload), size_in) if size_in else b""
        if (
            opcode == 0x4101
            and len(payload) >= ctypes.sizeof(mb.SetPartitionInfoIn)
            and payload[8] & CXL_SET_PARTITION_IMMEDIATE_FLAG
        ):
            raise _err(errno.EBUSY)  # cxl_payload_from_user_allowed()
        if size_out == VAR:
            size_out = self.payload_size
        # mbox_send: the device runs, the driver copies at most what fits
        rc, out = self.device.execute(opcode, payload)
        if rc == RC.SUCCESS:
            out = out[: min(size_out, self.payload_size)]
            size_out = len(out) if size_out else 0
            out = out[:size_out]
        else:
            out = bytes(size_out)  # the zeroed bounce buffer, length unchanged
        if size_out:
            self.mem.copy_to_user(int(s.out.payload), out)
        s.out.size = size_out
        s.retval = rc
        return 0


# --- what the user holds -----------------------------------------------------------


class SimDevice:
    """A simulated ``/dev/cxl/memN``: :class:`KernelDriver` over :class:`TypeThreeDevice`."""

    def __init__(
        self,
        name: str = "mem0",
        config: DeviceConfig | None = None,
        *,
        raw_commands: bool = False,
        raw_allow_all: bool = False,
        locked_down: bool = False,
        nvdimm_bridge: bool | None = None,
        state_dir: str | None = None,
    ) -> None:
        self.name = name
        self.config = config or DeviceConfig()
        self.device = TypeThreeDevice(self.config, state_dir)
        self.driver = KernelDriver(
            self.device,
            raw_commands=raw_commands,
            raw_allow_all=raw_allow_all,
            locked_down=locked_down,
            nvdimm_bridge=nvdimm_bridge,
        )

    def ioctl(self, request: int, arg: bytearray) -> int:
        """Behave like ``fcntl.ioctl(fd, request, arg, True)`` on a real memdev."""
        return self.driver.ioctl(request, arg)

    def close(self) -> None:
        """Nothing to release; present for the Transport interface."""

    def sysfs(self) -> dict[str, str]:
        """The memdev's sysfs attributes, formatted as the kernel prints them."""
        c = self.config
        return {
            "serial": f"{c.serial:#x}",
            "firmware_version": c.fw_revision,
            "payload_max": str(c.payload_max),
            "label_storage_size": str(c.lsa_size),
            "ram/size": f"{c.volatile_bytes:#x}",
            "pmem/size": f"{c.persistent_bytes:#x}",
            "numa_node": str(c.numa_node),
            "security/state": "disabled",
            "host": c.host,
        }


#: The built-in device kinds, in 256 MiB units of (volatile, persistent).
KINDS: dict[str, tuple[int, int]] = {"pmem": (0, 1), "ram": (1, 0), "mixed": (1, 1)}
DEFAULT_KINDS = ("pmem", "ram", "mixed")


def make_devices(
    kinds: Iterable[str] = DEFAULT_KINDS,
    *,
    profile: str = "full",
    raw_commands: bool = False,
    state_dir: str | None = None,
) -> list[SimDevice]:
    """``mem0``, ``mem1``... of the given kinds, serials 0x1234 upwards."""
    out = []
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ValueError(f"unknown simulated device kind {kind!r} (pmem, ram, mixed)")
        vol, pers = KINDS[kind]
        cfg = DeviceConfig(
            volatile_bytes=vol * mb.CAPACITY_UNIT,
            persistent_bytes=pers * mb.CAPACITY_UNIT,
            serial=0x1234 + i,
            profile=profile,
            host=f"0000:{0x0D + i:02x}:00.0",
        )
        if profile not in ("full", "qemu"):
            raise ValueError(f"unknown simulator profile {profile!r} (full, qemu)")
        out.append(SimDevice(f"mem{i}", cfg, raw_commands=raw_commands, state_dir=state_dir))
    return out
