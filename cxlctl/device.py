"""Library API: find memdevs, talk to them, get plain values back.

>>> from cxlctl.device import open_backend
>>> backend = open_backend("sim")
>>> [m.memdev for m in backend.list_memdevs()]
['mem0', 'mem1', 'mem2']
>>> backend.memdev("mem0").identify().fw_revision
'BWFW VERSION 00'

Nothing here prints; failures are :class:`~cxlctl.errors.CxlError` subclasses whose
message names the device, the command and the cause.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import mailbox as mb
from . import transport as tp
from . import uapi
from .errors import (
    CxlError,
    DeviceBusy,
    DeviceNotFound,
    MailboxError,
    PermissionDenied,
    UnsupportedCommand,
    UsageError,
    from_errno,
)
from .mailbox import layouts as lay

if TYPE_CHECKING:
    from .mailbox.firmware import FwInfo
    from .mailbox.generic import Timestamp
    from .mailbox.health import AlertConfig, HealthInfo, ShutdownState
    from .mailbox.logs import LogCaps, SupportedLogs
    from .mailbox.memdev import Identify, PartitionInfo
    from .sim import SimDevice
    from .tracefs import Tracing

_MEMDEV_RE = re.compile(r"^(?:/dev/cxl/)?(mem\d+)$")


def memdev_name(spec: str) -> str:
    """``mem0`` or ``/dev/cxl/mem0`` -> ``mem0``; anything else is a usage error."""
    m = _MEMDEV_RE.match(spec.strip())
    if not m:
        raise UsageError(f"{spec!r} is not a memdev (expected memN or /dev/cxl/memN)")
    return m.group(1)


@dataclass(frozen=True, slots=True)
class MemdevInfo:
    """What sysfs says about one memdev (the keys match ``cxl list -M``)."""

    memdev: str
    pmem_size: int
    ram_size: int
    serial: int
    host: str
    firmware_version: str
    payload_max: int
    label_storage_size: int
    numa_node: int
    security_state: str
    backend: str


class Backend:
    """Where memdevs come from: the real kernel, or the simulator."""

    name = "abstract"
    simulated = False

    def names(self) -> list[str]:
        raise NotImplementedError

    def sysfs(self, name: str) -> dict[str, str]:
        raise NotImplementedError

    def open(self, name: str) -> tp.Transport:
        raise NotImplementedError

    def info(self, name: str) -> MemdevInfo:
        a = self.sysfs(name)

        def num(key: str, default: int = 0) -> int:
            try:
                return int(a.get(key, ""), 0)
            except ValueError:
                return default

        return MemdevInfo(
            memdev=name,
            pmem_size=num("pmem/size"),
            ram_size=num("ram/size"),
            serial=num("serial"),
            host=a.get("host", ""),
            firmware_version=a.get("firmware_version", ""),
            payload_max=num("payload_max"),
            label_storage_size=num("label_storage_size"),
            numa_node=num("numa_node", -1),
            security_state=a.get("security/state", ""),
            backend=self.name,
        )

    def list_memdevs(self, specs: Sequence[str] = ()) -> list[MemdevInfo]:
        return [self.info(n) for n in self.select(specs)]

    def select(self, specs: Sequence[str] = ()) -> list[str]:
        """Names for the given MEMDEV arguments; none given means all memdevs."""
        have = self.names()
        if not specs:
            if not have:
                raise self.no_devices()
            return have
        out = []
        for spec in specs:
            name = memdev_name(spec)
            if name not in have:
                raise DeviceNotFound(
                    f"{name}: no such memdev on the {self.name} backend",
                    hint=f"available: {', '.join(have) or 'none'}",
                )
            if name not in out:
                out.append(name)
        return out

    def no_devices(self) -> CxlError:
        return DeviceNotFound("no CXL memdevs found")

    def memdev(self, spec: str) -> Memdev:
        (name,) = self.select([spec])
        return Memdev(self, name)

    # -- the memdev's binding to cxl_mem (cxl disable-memdev / enable-memdev) --
    def enabled(self, name: str) -> bool:
        """cxl_mem is bound to the memdev (libcxl: ``memN/driver`` is a link)."""
        raise NotImplementedError

    def labels_owned(self, name: str) -> bool:
        """The nvdimm bridge owns the label area: the memdev's ``pmemN`` child is
        bound to cxl_nvdimm (libcxl's ``cxl_memdev_nvdimm_bridge_active()``)."""
        raise NotImplementedError

    def decoders_committed(self, name: str) -> int | None:
        """Committed decoders of the memdev's endpoint port (part of an active
        region); None when no endpoint port can be found."""
        raise NotImplementedError

    def disable(self, name: str) -> None:
        """Unbind the memdev from cxl_mem."""
        raise NotImplementedError

    def enable(self, name: str) -> None:
        """Bind the memdev to cxl_mem."""
        raise NotImplementedError

    # -- what Linux runs itself and reports through tracefs (see cxlctl.tracefs) --
    def tracing(self) -> Tracing:
        raise UnsupportedCommand(f"the {self.name} backend has no tracefs")

    def trigger_poison_list(self, name: str) -> list[dict[str, Any]]:
        """``cxl_poison`` trace events after writing 1 to ``memN/trigger_poison_list``."""
        return self.tracing().trigger_poison_list(name, self.sysfs(name).get("host", ""))

    def inject_poison(self, name: str, dpa: int) -> None:
        self.tracing().debugfs_poison(name, "inject_poison", dpa)

    def clear_poison(self, name: str, dpa: int) -> None:
        self.tracing().debugfs_poison(name, "clear_poison", dpa)


class KernelBackend(Backend):
    """Memdevs of the running kernel: ``/sys/bus/cxl/devices/memN`` and ``/dev/cxl/memN``."""

    name = "kernel"

    def __init__(self, sysfs_root: str = tp.SYSFS_CXL_DEVICES, dev_root: str = tp.DEV_CXL) -> None:
        self.sysfs_root = sysfs_root
        self.dev_root = dev_root
        self._tracing: Tracing | None = None

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.sysfs_root)
        except OSError:
            return []
        mems = [e for e in entries if re.fullmatch(r"mem\d+", e)]
        return sorted(mems, key=lambda n: int(n[3:]))

    def sysfs(self, name: str) -> dict[str, str]:
        base = os.path.join(self.sysfs_root, name)
        out: dict[str, str] = {}
        for key in (
            "serial",
            "firmware_version",
            "payload_max",
            "label_storage_size",
            "numa_node",
            "ram/size",
            "pmem/size",
            "security/state",
        ):
            try:
                with open(os.path.join(base, key)) as f:
                    out[key] = f.read().strip()
            except OSError:
                pass
        out["host"] = os.path.basename(os.path.dirname(os.path.realpath(base)))
        return out

    # -- cxl_mem binding, as libcxl does it --
    def enabled(self, name: str) -> bool:
        return os.path.islink(os.path.join(self.sysfs_root, name, "driver"))

    def labels_owned(self, name: str) -> bool:
        base = os.path.join(self.sysfs_root, name)
        if not self.enabled(name):
            return False
        try:
            children = os.listdir(base)
        except OSError:
            return False
        return any(
            re.fullmatch(r"pmem\d+", c) and os.path.islink(os.path.join(base, c, "driver"))
            for c in children
        )

    def decoders_committed(self, name: str) -> int | None:
        try:
            entries = os.listdir(self.sysfs_root)
        except OSError:
            return None
        for e in entries:
            if not re.fullmatch(r"endpoint\d+", e):
                continue
            port = os.path.join(self.sysfs_root, e)
            if os.path.basename(os.path.realpath(os.path.join(port, "uport"))) != name:
                continue
            try:
                with open(os.path.join(port, "decoders_committed")) as f:
                    return int(f.read().strip(), 0)
            except (OSError, ValueError):
                return None
        return None

    def disable(self, name: str) -> None:
        # libcxl's util_unbind(): the device name into memN/driver/unbind
        self._write_attr(name, os.path.join(self.sysfs_root, name, "driver", "unbind"))
        self._settle(name, enabled=False)

    def enable(self, name: str) -> None:
        path = os.path.join(os.path.dirname(self.sysfs_root), "drivers", "cxl_mem", "bind")
        if not os.path.exists(path):
            raise DeviceNotFound(
                f"{name}: cannot enable: {path} is missing",
                hint="is cxl_mem loaded? modprobe cxl_mem",
            )
        self._write_attr(name, path)
        self._settle(name, enabled=True)

    def _write_attr(self, name: str, path: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(name)
        except OSError as e:
            err = e.errno or errno.EIO
            if err in (errno.EACCES, errno.EPERM):
                raise PermissionDenied(
                    f"{name}: cannot write {path}: permission denied", hint="run as root"
                ) from e
            raise from_errno(err, f"{name}: writing {path}", e.strerror) from e

    def _settle(self, name: str, *, enabled: bool) -> None:
        """The kernel binds and unbinds synchronously; allow a moment anyway, then
        say so if the memdev did not change (libcxl: "failed to disable")."""
        import time

        for _ in range(50):
            if self.enabled(name) == enabled:
                return
            time.sleep(0.02)
        what = "enable" if enabled else "disable"
        raise DeviceBusy(f"{name}: failed to {what}: the driver binding did not change")

    def open(self, name: str) -> tp.Transport:
        try:
            return tp.KernelTransport(name, dev_root=self.dev_root, sysfs_root=self.sysfs_root)
        except OSError as e:
            err = e.errno or errno.EIO
            if err == errno.EPERM:  # open() refused: a permission problem, not RAW policy
                err = errno.EACCES
            path = os.path.join(self.dev_root, name)
            # our own checks (ENODEV) carry the better explanation in strerror
            detail = e.strerror if err == errno.ENODEV else None
            raise from_errno(err, f"{name}: cannot open {path}", detail) from e

    def tracing(self) -> Tracing:
        if self._tracing is None:
            from .tracefs import KernelTracing

            self._tracing = KernelTracing(self.sysfs_root)
        return self._tracing

    def no_devices(self) -> CxlError:
        return DeviceNotFound(
            f"no CXL memdevs found in {self.sysfs_root}",
            hint="is cxl_pci loaded? use --sim to try the bundled simulator",
        )


class SimBackend(Backend):
    """Simulated memdevs, in process.  Configured by ``CXLCTL_SIM_DEVICES``
    (comma-separated kinds: pmem, ram, mixed), ``CXLCTL_SIM_PROFILE`` (full, qemu)
    and ``CXLCTL_SIM_RAW=1`` (a kernel with CONFIG_CXL_MEM_RAW_COMMANDS)."""

    name = "sim"
    simulated = True

    def __init__(self, devices: Sequence[SimDevice] | None = None) -> None:
        if devices is None:
            from . import sim

            kinds = [k for k in os.environ.get("CXLCTL_SIM_DEVICES", "").split(",") if k]
            try:
                devices = sim.make_devices(
                    kinds or sim.DEFAULT_KINDS,
                    profile=os.environ.get("CXLCTL_SIM_PROFILE") or "full",
                    raw_commands=os.environ.get("CXLCTL_SIM_RAW", "") == "1",
                    state_dir=os.environ.get("CXLCTL_SIM_STATE") or None,
                )
            except ValueError as e:
                raise UsageError(f"simulator configuration: {e}") from e
        self.devices = {d.name: d for d in devices}
        self._tracing: Tracing | None = None

    def tracing(self) -> Tracing:
        if self._tracing is None:
            from .sim.kernel import SimTracing

            self._tracing = SimTracing(self.devices)
        return self._tracing

    def names(self) -> list[str]:
        return list(self.devices)

    def sysfs(self, name: str) -> dict[str, str]:
        return self.devices[name].sysfs()

    def enabled(self, name: str) -> bool:
        return self.devices[name].bound

    def labels_owned(self, name: str) -> bool:
        dev = self.devices[name]
        return dev.bound and dev.driver.nvdimm_bridge

    def decoders_committed(self, name: str) -> int | None:
        return self.devices[name].decoders_committed

    def disable(self, name: str) -> None:
        self.devices[name].unbind()

    def enable(self, name: str) -> None:
        self.devices[name].bind()

    def open(self, name: str) -> tp.Transport:
        return self.devices[name]


def open_backend(name: str | None = None) -> Backend:
    """``kernel`` or ``sim``; default from ``CXLCTL_BACKEND``, else ``kernel``."""
    name = (name or os.environ.get("CXLCTL_BACKEND") or "kernel").lower()
    if name == "kernel":
        return KernelBackend()
    if name in ("sim", "simulator"):
        return SimBackend()
    raise UsageError(f"unknown backend {name!r} (kernel, sim)")


class Memdev:
    """One memdev: typed commands over :func:`cxlctl.transport.send`."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.name = name
        self._t: tp.Transport | None = None
        self._info: MemdevInfo | None = None

    @property
    def info(self) -> MemdevInfo:
        if self._info is None:
            self._info = self.backend.info(self.name)
        return self._info

    @property
    def payload_max(self) -> int:
        return self.info.payload_max or 4096

    @property
    def transport(self) -> tp.Transport:
        if self._t is None:
            self._t = self.backend.open(self.name)
        return self._t

    def close(self) -> None:
        if self._t is not None:
            self._t.close()
            self._t = None

    # -- the two ioctls --
    def query(self) -> list[tp.CommandInfo]:
        try:
            return tp.query(self.transport)
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: query") from e

    def request(
        self, cmd: mb.Command, payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendRequest:
        """The SEND request for a catalogue command (not sent)."""
        if cmd.kernel_id is None:
            raise UnsupportedCommand(
                f"{self.name}: {cmd.name}: Linux has no command id for {cmd.title} "
                f"(opcode {cmd.opcode:#06x})",
                hint=f"try `cxlctl raw {self.name} {cmd.opcode:#06x}` if RAW is allowed",
            )
        if out_size is None:
            out_size = self.payload_max if cmd.size_out is None or cmd.size_out else 0
        return tp.SendRequest(cmd.kernel_id, payload, out_size)

    def raw_request(
        self, opcode: int, payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendRequest:
        if not 0 <= opcode <= 0xFFFF:
            raise UsageError(f"opcode {opcode:#x} does not fit in 16 bits")
        return tp.SendRequest(
            uapi.CommandId.RAW,
            payload,
            self.payload_max if out_size is None else out_size,
            raw_opcode=opcode,
        )

    def submit(self, req: tp.SendRequest, what: str) -> tp.SendResult:
        """Issue a prepared request; errno -> CxlError naming ``what``."""
        if len(req.payload) > self.payload_max:
            raise UsageError(
                f"{self.name}: {what}: input is {len(req.payload)} bytes, "
                f"payload_max is {self.payload_max}"
            )
        try:
            return tp.send(self.transport, req)
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: {what}") from e

    def send(
        self, cmd: mb.Command, payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendResult:
        return self.submit(self.request(cmd, payload, out_size), cmd.name)

    def run(self, cmd: mb.Command | str, payload: bytes = b"") -> bytes:
        """Send and require mailbox Success; return the output payload."""
        c = mb.lookup(cmd) if isinstance(cmd, str) else cmd
        res = self.send(c, payload)
        check_retval(self.name, c.name, res.retval)
        return res.out

    def decoded(self, cmd: mb.Command | str, payload: bytes = b"") -> Any:
        c = mb.lookup(cmd) if isinstance(cmd, str) else cmd
        return c.decode(self.run(c, payload))

    # -- typed commands --
    def identify(self) -> Identify:
        v: Identify = self.decoded("identify")
        return v

    def fw_info(self) -> FwInfo:
        v: FwInfo = self.decoded("get-fw-info")
        return v

    def partition_info(self) -> PartitionInfo:
        v: PartitionInfo = self.decoded("get-partition-info")
        return v

    def health(self) -> HealthInfo:
        v: HealthInfo = self.decoded("get-health-info")
        return v

    def alert_config(self) -> AlertConfig:
        v: AlertConfig = self.decoded("get-alert-config")
        return v

    def shutdown_state(self) -> ShutdownState:
        v: ShutdownState = self.decoded("get-shutdown-state")
        return v

    def timestamp(self) -> Timestamp:
        v: Timestamp = self.decoded("get-timestamp")
        return v

    def supported_logs(self) -> SupportedLogs:
        v: SupportedLogs = self.decoded("get-supported-logs")
        return v

    def log_caps(self, log_uuid: str) -> LogCaps:
        v: LogCaps = self.decoded("get-log-caps", _uuid_bytes(log_uuid))
        return v

    def log_size(self, log_uuid: str) -> int:
        """The size Get Supported Logs advertises for a log; UnsupportedCommand if absent."""
        for e in self.supported_logs().logs:
            if e.uuid == log_uuid:
                return e.size
        raise UnsupportedCommand(
            f"{self.name}: get-log: the device does not list log {log_uuid} in Get Supported Logs",
            hint=f"see `cxlctl logs {self.name}`",
        )

    def iter_log(
        self, log_uuid: str, offset: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """Get Log in payload_max pages, validated against the advertised size first:
        a device may misbehave on offsets or lengths it never advertised."""
        size = self.log_size(log_uuid)
        if length is None:
            length = size - offset
        if offset < 0 or length <= 0 or offset + length > size:
            raise UsageError(
                f"{self.name}: get-log: range {offset}+{length} is outside the "
                f"{size}-byte log {log_uuid}"
            )
        cmd = mb.BY_NAME["get-log"]
        raw_uuid = _uuid_bytes(log_uuid)
        done = 0
        while done < length:
            n = min(self.payload_max, length - done)
            chunk = self.run(cmd, lay.get_log_in(raw_uuid, offset + done, n))[:n]
            if not chunk:
                raise MailboxError(
                    f"{self.name}: get-log: device returned no data at offset {offset + done}", 0
                )
            done += len(chunk)
            yield chunk

    def iter_lsa(self, offset: int, length: int) -> Iterator[bytes]:
        """Get LSA in payload_max chunks (never 0, never above payload_max), bounded
        by the label storage size; yields each chunk as it arrives."""
        size = self.info.label_storage_size
        if offset < 0 or length <= 0 or offset + length > size:
            raise UsageError(
                f"{self.name}: label range {offset}+{length} is outside the "
                f"{size}-byte label storage area"
            )
        cmd = mb.BY_NAME["get-lsa"]
        done = 0
        while done < length:
            n = min(self.payload_max, length - done)
            chunk = self.run(cmd, bytes(lay.GetLsaIn(offset=offset + done, length=n)))
            if len(chunk) != n:
                raise MailboxError(
                    f"{self.name}: get-lsa: device returned {len(chunk)} bytes, asked for {n}",
                    0,
                )
            done += n
            yield chunk

    def read_lsa(self, offset: int, length: int) -> bytes:
        """Get LSA in payload_max chunks, bounded by the label area size."""
        size = self.info.label_storage_size
        if offset < 0 or length < 0 or offset + length > size:
            raise UsageError(
                f"{self.name}: label range {offset}+{length} is outside the "
                f"{size}-byte label storage area"
            )
        out = bytearray()
        cmd = mb.BY_NAME["get-lsa"]
        while len(out) < length:
            n = min(self.payload_max, length - len(out))
            chunk = self.run(cmd, bytes(lay.GetLsaIn(offset=offset + len(out), length=n)))
            if len(chunk) != n:
                raise MailboxError(
                    f"{self.name}: get-lsa: device returned {len(chunk)} bytes, asked for {n}",
                    0,
                )
            out += chunk
        return bytes(out)

    # -- writing the label area (cxl write-labels / zero-labels) --
    def labels_owned(self) -> bool:
        """The kernel owns the label area: the nvdimm bridge is bound (sysfs), or
        QUERY marks Set LSA exclusive. Set LSA would answer EBUSY."""
        if self.backend.labels_owned(self.name):
            return True
        return any(c.id == uapi.CommandId.SET_LSA and c.exclusive for c in self.query())

    def labels_busy(self) -> DeviceBusy:
        return DeviceBusy(
            f"{self.name}: label area is owned by the nvdimm bridge; "
            f"run `cxlctl disable-memdev {self.name}` first"
        )

    def iter_write_lsa(self, offset: int, length: int, data: bytes | None = None) -> Iterator[int]:
        """Set LSA over ``offset..offset+length`` from ``data`` (zeros if None), in
        commands of at most payload_max bytes (8-byte header + payload_max - 8 data
        bytes, as libcxl), bounded by the label storage size. Yields the data bytes
        of each command once the device accepted it; EBUSY means the kernel owns
        the labels."""
        size = self.info.label_storage_size
        if offset < 0 or length <= 0 or offset + length > size:
            raise UsageError(
                f"{self.name}: label range {offset}+{length} is outside the "
                f"{size}-byte label storage area"
            )
        if data is not None and len(data) != length:
            raise UsageError(f"{self.name}: {len(data)} bytes of data for a {length}-byte write")
        step = self.payload_max - len(bytes(lay.SetLsaIn()))
        if step <= 0:
            raise UsageError(f"{self.name}: payload_max {self.payload_max} cannot carry Set LSA")
        cmd = mb.BY_NAME["set-lsa"]
        zeros = bytes(min(step, length)) if data is None else b""
        done = 0
        while done < length:
            n = min(step, length - done)
            chunk = zeros[:n] if data is None else data[done : done + n]
            try:
                self.run(cmd, bytes(lay.SetLsaIn(offset=offset + done)) + chunk)
            except DeviceBusy as e:
                raise self.labels_busy() from e
            done += n
            yield n

    # -- alert configuration (cxl set-alert-config) --
    def set_alert_config(self, valid: int, enable: int, thresholds: dict[str, int]) -> None:
        """Set Alert Configuration: VALID/ENABLE are the action bit masks, THRESHOLDS
        the input fields (``life_used_programmable_warning_threshold``, ...) to set."""
        s = lay.SetAlertConfigIn(valid_alert_actions=valid, enable_alert_actions=enable)
        for field_name, value in thresholds.items():
            setattr(s, field_name, value)
        self.run("set-alert-config", bytes(s))


def _uuid_bytes(log_uuid: str) -> bytes:
    """A log UUID in the spec's byte order (RFC 4122, big-endian)."""
    import uuid as _uuid  # not at import time: start-up matters

    try:
        return _uuid.UUID(log_uuid).bytes
    except ValueError:
        raise UsageError(f"{log_uuid!r} is not a log UUID") from None


def check_retval(name: str, what: str, rc: int) -> None:
    if rc != mb.ReturnCode.SUCCESS:
        raise MailboxError(
            f"{name}: {what}: device returned {mb.return_code_name(rc)} ({rc:#x})", rc
        )
