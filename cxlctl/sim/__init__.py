"""A simulated CXL memdev at the ioctl seam: Linux 6.12's driver checks plus a type-3 device.

:class:`SimDevice` has ``ioctl(request, arg)`` with the contract of
``fcntl.ioctl(fd, request, arg, True)`` on ``/dev/cxl/memN``: it reads the
structure from ``arg``, reads and writes the payloads through the pointers in it
(safely: a bad pointer is ``EFAULT``, as ``copy_from_user`` would say, never a
crash), updates ``arg`` in place and returns 0 or raises ``OSError`` with the
errno Linux 6.12 gives for that request.

Two halves, kept apart as in Linux:

* :class:`SimDriver` -- ``drivers/cxl/core/mbox.c``: the command table, the
  enabled bits from the device's CEL, the exclusive bits the nvdimm bridge claims,
  every size/flag/reserved-field rule in the kernel's order, the RAW policy.
* :class:`TypeThreeDevice` -- the device behind the mailbox: commands, payloads,
  mailbox return codes, state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import mailbox as mb
from . import device as _device  # registers the device's command handlers
from .device.model import (
    PROFILES,
    QEMU11_CEL,
    QEMU_CEL,
    DeviceConfig,
    TypeThreeDevice,
    full_cel,
)
from .driver.mbox import SimDriver, UserMemory
from .state import load_state, save_state

if TYPE_CHECKING:
    from .driver.fwupload import FwUpload

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "PROFILES",
    "QEMU11_CEL",
    "QEMU_CEL",
    "DeviceConfig",
    "SimDevice",
    "SimDriver",
    "TypeThreeDevice",
    "UserMemory",
    "make_devices",
]
_ = _device

# --- what the user holds -----------------------------------------------------------


class SimDevice:
    """A simulated ``/dev/cxl/memN``: :class:`SimDriver` over :class:`TypeThreeDevice`."""

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
        health: str | None = None,
    ) -> None:
        self.name = name
        self.config = config or DeviceConfig()
        self.state_dir = state_dir
        self._driver_options = (raw_commands, raw_allow_all, locked_down, nvdimm_bridge)
        self._health = health
        # built when first used (:meth:`_build`): naming a memdev costs nothing
        self._device: TypeThreeDevice | None = None
        self._driver: SimDriver | None = None
        self._fwupload: FwUpload | None = None
        #: committed endpoint decoders (an active region); the simulator makes none
        self.decoders_committed = 0

    def _build(self) -> SimDriver:
        """The device and the driver over it, from the config and the saved state,
        when something first asks for them (a command, ``bound``, the sysfs a
        running sanitize shows): a run that names three memdevs and uses one builds one."""
        if self._driver is None:
            raw, allow_all, locked, bridge = self._driver_options
            # the saved state, read once for the device and the driver
            saved = load_state(self.state_dir, self.config.serial) if self.state_dir else {}
            dev = TypeThreeDevice(self.config, self.state_dir, saved)
            if self._health is not None and self._health != "normal":
                apply_health(dev, self._health)  # "normal" is what a new device reports
            drv = SimDriver(
                dev,
                raw_commands=raw,
                raw_allow_all=allow_all,
                locked_down=locked,
                nvdimm_bridge=bridge,
            )
            if saved.get("cxl_mem_bound") is False:
                drv.unbind()  # `disable-memdev` in an earlier process
            self._device, self._driver = dev, drv
        return self._driver

    @property
    def built(self) -> bool:
        """The device and driver exist (something used this memdev)."""
        return self._driver is not None

    @property
    def device(self) -> TypeThreeDevice:
        """The simulated type-3 device (built on first use)."""
        drv = self._driver  # built: no further call (sysfs asks for every memdev)
        return (drv if drv is not None else self._build()).device

    @property
    def driver(self) -> SimDriver:
        """The simulated kernel's driver for it (built on first use)."""
        drv = self._driver
        return drv if drv is not None else self._build()

    @property
    def fwupload(self) -> FwUpload:
        """The simulated kernel's firmware-upload device for this memdev."""
        up = self._fwupload
        if up is None:
            up = self._fwupload = _fwupload_class()(self)
        return up

    @property
    def bound(self) -> bool:
        """cxl_mem is bound (sysfs ``memN/driver``); ``disable-memdev`` unbinds it."""
        drv = self._driver
        return (drv if drv is not None else self._build()).bound

    def unbind(self) -> None:
        """``echo memN > /sys/bus/cxl/drivers/cxl_mem/unbind``: the nvdimm bridge goes
        away and with it the exclusive claim on Set LSA. /dev/cxl/memN stays and
        answers as before (cxl_pci owns it), as Linux 6.12 does."""
        self.driver.unbind()
        save_state(self.state_dir, self.config.serial, cxl_mem_bound=False)

    def bind(self) -> None:
        """``echo memN > /sys/bus/cxl/drivers/cxl_mem/bind``."""
        self.driver.bind()
        save_state(self.state_dir, self.config.serial, cxl_mem_bound=True)

    def ioctl(self, request: int, arg: Any) -> int:
        """Behave like ``fcntl.ioctl(fd, request, arg, True)`` on a real memdev
        (:meth:`SimDriver.ioctl`: a bad ``arg`` is ``OSError``, never ``TypeError``)."""
        drv = self._driver  # built: no property on the per-command path
        return (drv if drv is not None else self._build()).ioctl(request, arg)

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
            "security/state": "sanitize" if self._sanitizing() else "disabled",
            "host": c.host,
        }

    def _sanitizing(self) -> bool:
        # a device not yet built runs nothing, unless a sanitize may have been saved
        # by an earlier process (CXLCTL_SIM_STATE)
        if self._driver is None and self.state_dir is None:
            return False
        return self.device.sanitizing()


_FWUPLOAD: list[type[FwUpload]] = []  # the class, imported when first needed


def _fwupload_class() -> type[FwUpload]:
    """:class:`.driver.fwupload.FwUpload`, imported once (not at start-up: most runs
    never touch a firmware upload; ``list -F`` asks every memdev for its state)."""
    if not _FWUPLOAD:
        from .driver.fwupload import FwUpload

        _FWUPLOAD.append(FwUpload)
    return _FWUPLOAD[0]


#: The built-in device kinds, in 256 MiB units of (volatile, persistent).
KINDS: dict[str, tuple[int, int]] = {
    "pmem": (0, 1),
    "ram": (1, 0),
    "mixed": (1, 1),
    "split": (1, 1),  # like mixed, but all of it partitionable (alignment 256 MiB)
}
#: kinds whose capacity Set Partition Info can move (Identify's partition alignment)
PARTITIONABLE = frozenset({"split"})
DEFAULT_KINDS = ("pmem", "ram", "mixed")


def pci_address(index: int) -> str:
    """The simulated PCI address of ``mem<index>``: ``0000:0d:00.0`` upwards, one
    bus per device; past bus ff (mem243) the next PCI domain, so every address
    stays a valid ``DDDD:BB:DD.F``."""
    domain, bus = divmod(0x0D + index, 0x100)
    if domain > 0xFFFF:
        raise ValueError(f"no PCI address for simulated device {index}")
    return f"{domain:04x}:{bus:02x}:00.0"


def make_devices(
    kinds: Iterable[str] = DEFAULT_KINDS,
    *,
    profile: str = "full",
    raw_commands: bool = False,
    state_dir: str | None = None,
    faults: Iterable[str] = (),
    serials: Sequence[int] = (),
    firmware: str | None = None,
    health: Mapping[str, str] | None = None,
    time_scale: float = 1.0,
) -> list[SimDevice]:
    """``mem0``, ``mem1``... of the given kinds, serials 0x1234 upwards (or SERIALS,
    in order), FIRMWARE as every device's FW revision (at most 16 ASCII characters,
    the Identify field), HEALTH a profile per memdev (``normal``, ``warning``,
    ``critical``: see :data:`HEALTH_PROFILES`) to rehearse alerts, FAULTS the
    ``CXLCTL_SIM_FAULTS`` items (:mod:`cxlctl.sim.device.faults`) to rehearse a
    misbehaving device."""
    if firmware is not None and (len(firmware) > 16 or not firmware.isascii()):
        raise ValueError(f"firmware {firmware!r}: at most 16 ASCII characters")
    for name, prof in (health or {}).items():
        if prof not in HEALTH_PROFILES:
            raise ValueError(
                f"health {name}:{prof}: unknown profile ({', '.join(HEALTH_PROFILES)})"
            )
    out = []
    parsed: tuple[Any, ...] = ()
    items = [f for f in faults if f.strip()]
    if items:  # CXLCTL_SIM_FAULTS: imported only when there are faults
        from .device.faults import parse

        parsed = parse(items)
    # the full profile's CEL, shared by every device made here (DeviceConfig would
    # sort the handlers' opcodes once per device)
    cel = full_cel() if profile == "full" else ()
    health = health or {}
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ValueError(f"unknown simulated device kind {kind!r} (pmem, ram, mixed, split)")
        vol, pers = KINDS[kind]
        cfg = DeviceConfig(
            volatile_bytes=vol * mb.CAPACITY_UNIT,
            persistent_bytes=pers * mb.CAPACITY_UNIT,
            serial=serials[i] if i < len(serials) else 0x1234 + i,
            profile=profile,
            host=pci_address(i),
            cel=cel,
            faults=tuple(f for f in parsed if f.memdev in (None, f"mem{i}")) if parsed else (),
            time_scale=time_scale,
            partition_align=mb.CAPACITY_UNIT if kind in PARTITIONABLE else 0,
        )
        if firmware is not None:
            cfg.fw_revision = firmware
        if profile not in PROFILES:
            raise ValueError(f"unknown simulator profile {profile!r} ({', '.join(PROFILES)})")
        name = f"mem{i}"
        h = health.get(name, "normal")
        out.append(SimDevice(name, cfg, raw_commands=raw_commands, state_dir=state_dir, health=h))
    for f in parsed:
        if f.memdev is not None and not any(d.name == f.memdev for d in out):
            raise ValueError(f"fault {f.text!r}: no simulated {f.memdev} (mem0..mem{len(out) - 1})")
    return out


#: CXLCTL_SIM_HEALTH=mem1:critical: (health status bits, media status, additional
#: status, life used %, temperature C, dirty shutdowns, volatile/persistent errors)
HEALTH_PROFILES: dict[str, tuple[int, int, int, int, int, int, int, int]] = {
    "normal": (0, 0, 0, 3, 37, 0, 0, 0),
    "warning": (0x1, 0, 0x05, 80, 72, 1, 12, 3),  # maintenance; life and temperature warning
    "critical": (0x5, 0x6, 0x0A, 97, 91, 3, 150, 42),  # replace; persistence loss imminent
}


def apply_health(device: Any, profile: str) -> None:
    """Give a simulated device a health profile (Get Health Info answers it)."""
    hs, ms, add, life, temp, dirty, vol, pers = HEALTH_PROFILES[profile]
    device.health_status, device.media_status, device.additional_status = hs, ms, add
    if profile != "normal":
        device.life_used, device.temperature = life, temp
        device.dirty_shutdown_count = max(device.dirty_shutdown_count, dirty)
        device.corrected_volatile_errors, device.corrected_persistent_errors = vol, pers


def parse_health(text: str) -> dict[str, str]:
    """``mem1:critical,mem2:warning`` -> {"mem1": "critical", "mem2": "warning"}."""
    out: dict[str, str] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        name, sep, prof = item.partition(":")
        if not sep or not name.startswith("mem") or not name[3:].isdigit() or not name.isascii():
            raise ValueError(f"health {item!r}: expected memN:PROFILE (e.g. mem1:critical)")
        out[name] = prof
    return out


def parse_serials(text: str) -> list[int]:
    """``0x1234,4661`` -> serials (64 bits each)."""
    from ..units import parse_int

    try:
        return [
            parse_int(x.strip(), "CXLCTL_SIM_SERIALS", units=False)
            for x in text.split(",")
            if x.strip()
        ]
    except Exception as e:  # UsageError -> ValueError: the configuration is wrong
        raise ValueError(str(e)) from None
