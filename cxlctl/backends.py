"""Where memdevs come from: the real kernel (sysfs + /dev/cxl) or the simulator.

>>> from cxlctl.backends import open_backend
>>> backend = open_backend("sim")
>>> [m.memdev for m in backend.list_memdevs()]
['mem0', 'mem1', 'mem2']

A :class:`Backend` names memdevs, reads their sysfs attributes, binds and unbinds
them, and opens a :class:`~cxlctl.transport.Transport` for the ioctls;
:class:`~cxlctl.memdev.Memdev` runs typed commands over it.  Nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import transport as tp
from .errors import (
    CxlError,
    DecodeError,
    DeviceBusy,
    DeviceNotFound,
    PermissionDenied,
    UnsupportedCommand,
    UsageError,
    file_error,
    from_errno,
)
from .memdev import Memdev
from .record import Record
from .sysfs import HostSysfs, number, text

#: Where each number attribute must lie.  payload_max: the mailbox payload size,
#: 256 bytes to 1 MiB by the spec (0 for a device cxl_pci could not size).
ATTR_RANGES: dict[str, tuple[int, int]] = {
    "payload_max": (0, 1 << 20),
    "numa_node": (-1, (1 << 31) - 1),
    "label_storage_size": (0, (1 << 32) - 1),
}
_U64_RANGE = (0, (1 << 64) - 1)
_HEX_DIGITS = "0123456789abcdefABCDEF"


def attr_number(name: str, attrs: dict[str, str], key: str, default: int = 0) -> int:
    """A memdev's number attribute, range-checked where it is read: a missing or
    empty one is ``default``; one that is not a number in range (``ATTR_RANGES``, else
    u64) is a clean error naming it (``payload_max`` of 2 GiB would otherwise size
    every buffer). Plain decimal and ``0x`` hex, what the kernel prints, are parsed
    here; anything else goes to :func:`cxlctl.sysfs.number`, which decides."""
    v = attrs.get(key, "")
    if not v:
        return default
    lo, hi = ATTR_RANGES.get(key, _U64_RANGE)
    if v.isascii() and (
        (v.isdigit() and (v[0] != "0" or len(v) == 1))
        or (v[:2] == "0x" and len(v) > 2 and not v[2:].strip(_HEX_DIGITS))
    ):
        n = int(v, 0)
        if lo <= n <= hi:
            return n
    try:
        return number(v.encode("utf-8", "surrogateescape"), lo=lo, hi=hi)
    except ValueError as e:
        raise DecodeError(
            f"{name}: sysfs {key} is {v!r}: {e}",
            hint="the kernel or the device reports a value cxlctl cannot use",
        ) from None


if TYPE_CHECKING:
    from .change import Recorder
    from .sim import SimDevice
    from .sim.driver.platform import Platform
    from .sim.driver.sysfs import SimSysfs
    from .sysfs import Sysfs
    from .tracefs import Tracing

#: debugfs of the cxl core (inject_poison, clear_poison per memdev)
DEBUGFS_CXL = "/sys/kernel/debug/cxl"
_MEMDEV_RE = re.compile(r"(?:/dev/cxl/)?mem([0-9]+)|([0-9]+)", re.ASCII)
_PCI_RE = re.compile(r"(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", re.ASCII | re.IGNORECASE)


def memdev_name(spec: str) -> str:
    """``mem0``, ``/dev/cxl/mem0`` or a bare id ``0`` -> ``mem0``; anything else
    (including non-ASCII digits such as ``mem٣``) is a usage error."""
    s = spec.strip()
    m = _MEMDEV_RE.fullmatch(s) if s.isascii() else None
    if not m:
        raise UsageError(
            f"{spec!r} is not a memdev (expected memN, /dev/cxl/memN, N, a PCI address "
            "such as 0000:0d:00.0, or a serial with -S)"
        )
    return f"mem{int(m.group(1) or m.group(2))}"


def split_specs(specs: Sequence[str]) -> list[str]:
    """MEMDEV arguments with comma lists opened up (``mem0,mem1`` -> two)."""
    return [p.strip() for s in specs for p in s.split(",") if p.strip()]


def parse_serial(spec: str) -> int:
    """A serial as cxl-cli takes it with ``-S``: decimal or ``0x`` hex, 64 bits."""
    from .units import parse_int

    return parse_int(spec, f"serial {spec!r}", units=False)


class MemdevInfo(Record):
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

    @property
    def sysfs_seam(self) -> Sysfs:
        """The whole sysfs tree at the seam (:mod:`cxlctl.sysfs`): the kernel's
        ``/sys`` or the simulator's; the topology code walks it the same way."""
        raise NotImplementedError

    def open(self, name: str) -> tp.Transport:
        raise NotImplementedError

    def info(self, name: str) -> MemdevInfo:
        a = self.sysfs(name)
        num = attr_number
        return MemdevInfo(  # positional, in MemdevInfo's field order
            name,
            num(name, a, "pmem/size"),
            num(name, a, "ram/size"),
            num(name, a, "serial"),
            a.get("host", ""),
            a.get("firmware_version", ""),
            num(name, a, "payload_max"),
            num(name, a, "label_storage_size"),
            num(name, a, "numa_node", -1),
            a.get("security/state", ""),
            self.name,
        )

    def list_memdevs(self, specs: Sequence[str] = ()) -> list[MemdevInfo]:
        return [self.info(n) for n in self.select(specs)]

    def select(
        self, specs: Sequence[str] = (), *, serial: bool = False, explicit: bool = False
    ) -> list[str]:
        """The memdev names a command line selects: the grammar of every per-memdev
        verb (docs/cli-grammar.md).

        SPECS are MEMDEV arguments: ``memN``, ``/dev/cxl/memN``, a bare id ``N``, a
        PCI address of the device (``0000:0d:00.0``), or with SERIAL every
        argument is a serial (decimal or ``0x`` hex), as cxl-cli's ``-S``.  Comma
        lists are split; ``all`` (or no argument) selects every memdev; duplicates
        are dropped, the order is the arguments'.  EXPLICIT (verbs that change a
        device) refuses an empty selection: they need a MEMDEV or ``all``.
        """
        items = split_specs(specs)
        if explicit and not items:
            raise UsageError(
                "name the memdevs to change (MEMDEV..., or `all` for every memdev)",
                hint="`cxlctl list` shows them",
            )
        have = self.names()
        if not items or "all" in items:
            if not have:
                raise self.no_devices()
            return have
        out: list[str] = []
        for spec in items:
            for name in self._resolve(spec, have, serial):
                if name not in out:
                    out.append(name)
        return out

    def _resolve(self, spec: str, have: list[str], serial: bool) -> list[str]:
        if serial:
            want = parse_serial(spec)
            hits = [n for n in have if self.info(n).serial == want]
            what = f"serial {spec}"
        elif _PCI_RE.fullmatch(spec.strip()) and spec.isascii():
            pci = spec.strip().lower()
            if pci.count(":") == 1:
                pci = "0000:" + pci
            hits = [n for n in have if self.info(n).host.lower() == pci]
            what = f"PCI device {pci}"
        else:
            try:
                name = memdev_name(spec)
            except UsageError as e:
                if re.fullmatch(r"0x[0-9a-fA-F]+", spec.strip(), re.ASCII):
                    e.hint = f"to select by serial, add -S: `-S {spec.strip()}`"
                raise
            hits = [name] if name in have else []
            what = name
        if not hits:
            raise DeviceNotFound(
                f"{what}: no such memdev on the {self.name} backend",
                hint=f"available: {', '.join(have) or 'none'}",
            )
        return hits

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

    def disable(self, name: str, rec: Recorder | None = None) -> None:
        """Unbind the memdev from cxl_mem (with ``rec``: only record the write)."""
        raise NotImplementedError

    def enable(self, name: str, rec: Recorder | None = None) -> None:
        """Bind the memdev to cxl_mem (with ``rec``: only record the write)."""
        raise NotImplementedError

    # -- what Linux runs itself and reports through tracefs (see cxlctl.tracefs) --
    def tracing(self) -> Tracing:
        raise UnsupportedCommand(f"the {self.name} backend has no tracefs")

    def trigger_poison_list(self, name: str) -> list[dict[str, Any]]:
        """``cxl_poison`` trace events after writing 1 to ``memN/trigger_poison_list``."""
        return self.tracing().trigger_poison_list(name, self.sysfs(name).get("host", ""))

    def inject_poison(self, name: str, dpa: int, rec: Recorder | None = None) -> None:
        if rec is not None:
            rec.write(f"{DEBUGFS_CXL}/{name}/inject_poison", f"{dpa:#x}\n".encode(), "debugfs")
            return
        self.tracing().debugfs_poison(name, "inject_poison", dpa)

    def clear_poison(self, name: str, dpa: int, rec: Recorder | None = None) -> None:
        if rec is not None:
            rec.write(f"{DEBUGFS_CXL}/{name}/clear_poison", f"{dpa:#x}\n".encode(), "debugfs")
            return
        self.tracing().debugfs_poison(name, "clear_poison", dpa)


class KernelBackend(Backend):
    """Memdevs of the running kernel: ``/sys/bus/cxl/devices/memN`` and ``/dev/cxl/memN``."""

    name = "kernel"

    def __init__(self, sysfs_root: str = tp.SYSFS_CXL_DEVICES, dev_root: str = tp.DEV_CXL) -> None:
        self.sysfs_root = sysfs_root
        self.dev_root = dev_root
        self._tracing: Tracing | None = None
        self._seam: Sysfs | None = None

    @property
    def sysfs_seam(self) -> Sysfs:
        seam: Sysfs | None = getattr(self, "_seam", None)  # a subclass may skip __init__
        if seam is None:
            from .sysfs import HostSysfs

            root = os.path.normpath(self.sysfs_root)
            suffix = os.path.join("bus", "cxl", "devices")
            if root.endswith(suffix):
                root = root[: -len(suffix)] or "/"
            seam = self._seam = HostSysfs(root)
        return seam

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.sysfs_root)
        except OSError:
            return []
        mems = [e for e in entries if re.fullmatch(r"mem\d+", e)]
        return sorted(mems, key=lambda n: int(n[3:]))

    def sysfs(self, name: str) -> dict[str, str]:
        """The memdev's attributes, read as bytes (bounded, one page) and decoded
        without ever failing: a byte that is not UTF-8 (the device's FW Revision is
        printed unfiltered) becomes ``\\xff``."""
        tree = HostSysfs(self.sysfs_root)
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
            with contextlib.suppress(OSError):
                out[key] = text(tree.read(f"{name}/{key}")).strip()
        base = os.path.join(self.sysfs_root, name)
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
                return number(HostSysfs(port).read("decoders_committed"), hi=1 << 16)
            except (OSError, ValueError):
                return None
        return None

    def disable(self, name: str, rec: Recorder | None = None) -> None:
        # libcxl's util_unbind(): the device name into memN/driver/unbind
        path = os.path.join(self.sysfs_root, name, "driver", "unbind")
        if rec is not None:
            rec.write(path, name.encode())
            return
        self._write_attr(name, path)
        self._settle(name, enabled=False)

    def enable(self, name: str, rec: Recorder | None = None) -> None:
        path = os.path.join(os.path.dirname(self.sysfs_root), "drivers", "cxl_mem", "bind")
        if rec is not None:
            rec.write(path, name.encode())
            return
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
    (comma-separated kinds: pmem, ram, mixed), ``CXLCTL_SIM_PROFILE`` (full, qemu, qemu11),
    ``CXLCTL_SIM_RAW=1`` (a kernel with CONFIG_CXL_MEM_RAW_COMMANDS) and
    ``CXLCTL_SIM_TOPOLOGY`` (the platform: windows, host bridges, switches; see
    :mod:`cxlctl.sim.driver.platform`) and ``CXLCTL_SIM_FAULTS`` (faults to inject,
    e.g. ``lsa-readback``)."""

    name = "sim"
    simulated = True

    def __init__(
        self, devices: Sequence[SimDevice] | None = None, platform: Platform | None = None
    ) -> None:
        state_dir = _state_dir() if devices is None else None
        topology = os.environ.get("CXLCTL_SIM_TOPOLOGY", "")
        made = devices is None
        if devices is None:
            from . import sim

            spec = os.environ.get("CXLCTL_SIM_DEVICES", "")
            # "none": a machine without CXL memdevs, to rehearse that case
            kinds = [] if spec.strip() == "none" else [k for k in spec.split(",") if k]
            try:
                devices = sim.make_devices(
                    kinds or ([] if spec.strip() == "none" else sim.DEFAULT_KINDS),
                    profile=os.environ.get("CXLCTL_SIM_PROFILE") or "full",
                    raw_commands=os.environ.get("CXLCTL_SIM_RAW", "") == "1",
                    state_dir=state_dir,
                    faults=os.environ.get("CXLCTL_SIM_FAULTS", "").split(","),
                    serials=sim.parse_serials(os.environ.get("CXLCTL_SIM_SERIALS", "")),
                    firmware=os.environ.get("CXLCTL_SIM_FIRMWARE") or None,
                    health=sim.parse_health(os.environ.get("CXLCTL_SIM_HEALTH", "")),
                    time_scale=_scale(os.environ.get("CXLCTL_SIM_TIME_SCALE", "")),
                )
            except ValueError as e:
                raise UsageError(f"simulator configuration: {e}") from e
        else:
            state_dir = None
        self.devices = {d.name: d for d in devices}
        self._tracing: Tracing | None = None
        self._platform = platform
        self._state_dir = state_dir
        self._seam: SimSysfs | None = None
        if made and platform is None and not topology:
            # the default platform (a root port per device on one host bridge): its
            # PCI addresses are what make_devices gave (sim.pci_address), so the
            # topology code is imported only when sysfs topology is asked for
            return
        self._place_devices(topology)

    def _place_devices(self, topology: str) -> None:
        from .sim.driver import platform as pf

        try:
            if self._platform is None:
                self._platform = pf.parse(topology, len(self.devices))
            from .sim.driver.cxlbus import Layout

            layout = Layout(self._platform, len(self.devices))
        except OSError as e:  # the file named in it
            what = "simulator topology (CXLCTL_SIM_TOPOLOGY)"
            raise file_error(what, os.fsdecode(e.filename or topology), e, usage=True) from e
        except ValueError as e:
            raise UsageError(f"simulator topology (CXLCTL_SIM_TOPOLOGY): {e}") from e
        for dev, slot in zip(self.devices.values(), layout.slots, strict=False):
            dev.config.host = slot.pci.rsplit("/", 1)[-1]  # the PCI device above memN

    @property
    def platform(self) -> Platform:
        """The simulated platform (windows, host bridges, switches)."""
        if self._platform is None:
            self._place_devices("")
        assert self._platform is not None
        return self._platform

    @property
    def sysfs_seam(self) -> SimSysfs:
        if self._seam is None:
            from .sim.driver.sysfs import SimSysfs

            self._seam = SimSysfs(self.devices, self.platform, self._state_dir)
        return self._seam

    def tracing(self) -> Tracing:
        if self._tracing is None:
            from .sim.driver.tracefs import SimTracing

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
        ep = self.sysfs_seam.bus.endpoints.get(self.devices[name].config.serial)
        return None if ep is None else ep.commit_end + 1

    def disable(self, name: str, rec: Recorder | None = None) -> None:
        if rec is not None:  # what the kernel backend would write
            rec.write(f"{tp.SYSFS_CXL_DEVICES}/{name}/driver/unbind", name.encode())
            return
        # through the simulated sysfs, so the endpoint port goes away as in Linux
        self._driver_write("unbind", name)

    def enable(self, name: str, rec: Recorder | None = None) -> None:
        if rec is not None:
            bind = os.path.join(os.path.dirname(tp.SYSFS_CXL_DEVICES), "drivers", "cxl_mem", "bind")
            rec.write(bind, name.encode())
            return
        self._driver_write("bind", name)

    def _driver_write(self, what: str, name: str) -> None:
        try:
            self.sysfs_seam.write(f"bus/cxl/drivers/cxl_mem/{what}", name.encode())
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{name}: {what} cxl_mem", e.strerror) from e

    def open(self, name: str) -> tp.Transport:
        return self.devices[name]


def _state_dir() -> str | None:
    """``CXLCTL_SIM_STATE``: unset or empty for none; a relative path is refused."""
    value = os.environ.get("CXLCTL_SIM_STATE") or None
    if value is None:
        return None
    from .sim.state import check_dir_setting

    return check_dir_setting(value)


def _scale(text: str) -> float:
    """CXLCTL_SIM_TIME_SCALE: a factor for the simulated background operations."""
    if not text:
        return 1.0
    v = float(text)
    if not 0 <= v <= 1e6:
        raise ValueError(f"CXLCTL_SIM_TIME_SCALE={text!r} is outside 0..1e6")
    return v


def open_backend(name: str | None = None) -> Backend:
    """``kernel`` or ``sim``; default from ``CXLCTL_BACKEND``, else ``kernel``."""
    name = (name or os.environ.get("CXLCTL_BACKEND") or "kernel").lower()
    if name == "kernel":
        return KernelBackend()
    if name in ("sim", "simulator"):
        return SimBackend()
    raise UsageError(f"unknown backend {name!r} (kernel, sim)")
