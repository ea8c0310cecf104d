"""The device half: a CXL type-3 memory device's mailbox, state and configuration.

Command handlers register themselves with :func:`handles` under their catalogue
record (``@handles(mb.IDENTIFY)``); the families live in sibling modules
(``commands``, ...), all imported by the package.  The CEL's Command Effects come
from the same records.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ... import mailbox as mb
from ...mailbox import layouts as lay
from ...mailbox.names import CEL_UUID, VENDOR_DEBUG_UUID
from ..state import io_error, load_state, open_sized, save_state  # CXLCTL_SIM_STATE

if TYPE_CHECKING:
    from .background import BgOp, FwState

RC = mb.ReturnCode
#: opcode -> the input size its catalogue record fixes (looked up on every command;
#: commands with a variable-length input are not in it)
_SIZE_IN: dict[int, int] = {c.opcode: c.size_in for c in mb.CATALOGUE if c.size_in is not None}
_UNSUPPORTED, _INVALID_PAYLOAD_LENGTH = int(RC.UNSUPPORTED), int(RC.INVALID_PAYLOAD_LENGTH)
MiB = 1024 * 1024

# --- the device ------------------------------------------------------------------

#: The opcodes in QEMU 10's CEL, in its order (reference capture, 26 entries).
QEMU_CEL: tuple[int, ...] = (
    0x0100, 0x0101, 0x0102, 0x0103, 0x0200, 0x0201, 0x0202, 0x0300, 0x0301,
    0x0400, 0x0401, 0x0500, 0x0501, 0x0502, 0x4000, 0x4100, 0x4102, 0x4103,
    0x4300, 0x4301, 0x4302, 0x4303, 0x4304, 0x4305, 0x4400, 0x4500,
)  # fmt: skip

#: QEMU 11.1's CEL, in its order (kernel-tier capture on Linux 7.3, 31 entries): QEMU
#: 10's plus 0x0005 (Request Abort Background Operation), 0x0600, Get/Set Alert
#: Configuration (which Linux then enables) and 0x4402 (Media Operations).
QEMU11_CEL: tuple[int, ...] = (
    0x0005, 0x0100, 0x0101, 0x0102, 0x0103, 0x0200, 0x0201, 0x0202, 0x0300,
    0x0301, 0x0400, 0x0401, 0x0500, 0x0501, 0x0502, 0x0600, 0x4000, 0x4100,
    0x4102, 0x4103, 0x4201, 0x4202, 0x4300, 0x4301, 0x4302, 0x4303, 0x4304,
    0x4305, 0x4400, 0x4402, 0x4500,
)  # fmt: skip

#: Where QEMU 11.1's CEL effects differ from QEMU 10's: its background commands also
#: say "secondary mailbox supported" (bit 7).
_EFFECTS_QEMU11: dict[int, int] = {
    0x0005: 0x0000, 0x0201: 0x00C0, 0x0202: 0x00C0, 0x0600: 0x0056,
    0x4304: 0x00C0, 0x4400: 0x00E4, 0x4402: 0x0044,
}  # fmt: skip

#: The simulator profiles: "full" (every command cxlctl knows), "qemu" (QEMU 10's
#: cxl-type3, the 6.12 kernel tier) and "qemu11" (QEMU 11.1's, the 7.3 kernel tier).
PROFILES: tuple[str, ...] = ("full", "qemu", "qemu11")
QEMU_PROFILES: tuple[str, ...] = ("qemu", "qemu11")


class DeviceConfig:
    """What a simulated device is: capacities in bytes, identity, profile.

    A plain class (not a dataclass: defining one costs start-up time); every
    field is a keyword (or positional, in this order) argument and can be changed
    afterwards, as tests do.
    """

    __slots__ = (
        "cel",
        "faults",
        "fw_revision",
        "host",
        "lsa_size",
        "numa_node",
        "partition_align",
        "payload_max",
        "persistent_bytes",
        "profile",
        "serial",
        "slot_fw_revisions",
        "time_scale",
        "volatile_bytes",
    )

    def __init__(
        self,
        volatile_bytes: int = 0,
        persistent_bytes: int = 256 * MiB,
        serial: int = 0x1234,
        lsa_size: int = 256 * MiB,
        payload_max: int = 2048,
        fw_revision: str = "BWFW VERSION 00",
        slot_fw_revisions: tuple[str, ...] = ("BWFW VERSION 0",),
        #: "full": every command cxlctl knows; "qemu": exactly QEMU 10's cxl-type3 CEL;
        #: "qemu11": exactly QEMU 11.1's (see PROFILES).
        profile: str = "full",
        host: str = "0000:0d:00.0",
        numa_node: int = -1,
        cel: tuple[int, ...] = (),
        #: faults to inject (CXLCTL_SIM_FAULTS, parsed: :class:`.faults.Fault`, this
        #: memdev's only), e.g. "lsa-readback" flips a bit in what Get LSA returns
        faults: tuple[Any, ...] = (),
        #: background operations take their QEMU 10 time (qemu profile) or a short one
        #: (full) times this factor (CXLCTL_SIM_TIME_SCALE; 0: they finish at once)
        time_scale: float = 1.0,
        #: Identify's partition alignment in bytes; not 0: all the capacity is
        #: partitionable (Set Partition Info moves it between volatile_bytes and
        #: persistent_bytes, the active partitions)
        partition_align: int = 0,
    ) -> None:
        self.partition_align = partition_align
        self.volatile_bytes = volatile_bytes
        self.persistent_bytes = persistent_bytes
        self.serial = serial
        self.lsa_size = lsa_size
        self.payload_max = payload_max
        self.fw_revision = fw_revision
        self.slot_fw_revisions = slot_fw_revisions
        self.profile = profile
        self.host = host
        self.numa_node = numa_node
        if not cel:
            if profile == "qemu":
                cel = QEMU_CEL
            elif profile == "qemu11":
                cel = QEMU11_CEL
            else:
                cel = full_cel()
        self.cel = cel
        self.faults = faults
        self.time_scale = time_scale

    @property
    def qemu(self) -> bool:
        """A QEMU cxl-type3 profile (any version)."""
        return self.profile in QEMU_PROFILES

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in _CONFIG_ORDER)
        return f"DeviceConfig({inner})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceConfig):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in _CONFIG_ORDER)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was


_CONFIG_ORDER = (
    "volatile_bytes",
    "persistent_bytes",
    "serial",
    "lsa_size",
    "payload_max",
    "fw_revision",
    "slot_fw_revisions",
    "profile",
    "host",
    "numa_node",
    "cel",
    "faults",
    "time_scale",
    "partition_align",
)


#: how many (opcode, payload) pairs TypeThreeDevice.calls keeps
CALL_LOG = 256


class FileSlice:
    """An output payload still in a file: ``n`` bytes at ``offset`` of ``fd`` (the
    label area). The simulated driver copies it to the caller's buffer with one
    ``pread(2)`` into that address, which the kernel checks as copy_to_user would
    (``EFAULT``), so a Get LSA costs no bounce buffer; ``bytes()`` reads it."""

    __slots__ = ("fd", "n", "offset")

    def __init__(self, fd: int, offset: int, n: int) -> None:
        self.fd, self.offset, self.n = fd, offset, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> FileSlice:
        """``out[:k]``: the driver's truncation to what fits."""
        start, stop, step = key.indices(self.n)
        if step != 1:
            raise ValueError("file slices have step 1")
        return FileSlice(self.fd, self.offset + start, max(stop - start, 0))

    def __bytes__(self) -> bytes:
        data = os.pread(self.fd, self.n, self.offset)
        return data + bytes(self.n - len(data))  # a file truncated meanwhile: zeros


_ZERO_FD: list[int] = []  # /dev/zero, opened once per process when first needed


def _dev_zero() -> int:
    """A read-only fd of ``/dev/zero`` (-1 where it cannot be opened)."""
    if not _ZERO_FD:
        try:
            _ZERO_FD.append(os.open("/dev/zero", os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            _ZERO_FD.append(-1)
    return _ZERO_FD[0]


class LabelStorage:
    """The label storage area: a sparse file read and written with ``pread``/``pwrite``.

    Neither a read nor a write of the whole area grows the process: the bytes live
    in the file (the page cache), not in this process's memory, as a mapping's
    touched pages would. The file is a private unlinked temporary file made at the
    first write (until then every byte reads as zero), or ``path``
    (``CXLCTL_SIM_STATE``), kept between processes. Slices read and assign bytes
    like the ``mmap`` this replaces: ``lsa[0:16]``, ``lsa[0:16] = data``.
    """

    def __init__(self, size: int, path: str | None = None) -> None:
        self.size = size
        self.path = path
        self._f: Any = None  # a file object: closes its fd when collected
        self._fd = -1
        if path is not None and os.path.lexists(path):
            self._open()

    def _open(self) -> int:
        if self._f is None:
            if self.path is None:
                import tempfile

                self._f = tempfile.TemporaryFile(prefix="cxlctl-sim-lsa-", buffering=0)  # noqa: SIM115
            else:
                # checked like every state file: no symlink followed, no FIFO
                # waited on, only our own regular file resized (cxlctl.sim.state)
                d, name = os.path.split(self.path)
                fd = open_sized(d, name, self.size)
                self._f = open(fd, "r+b", buffering=0)  # noqa: SIM115 - lives as long as we do
            if os.fstat(self._f.fileno()).st_size != self.size:
                os.ftruncate(self._f.fileno(), self.size)  # sparse: costs no disk
            self._fd = self._f.fileno()
        return self._fd

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (the caller checked the range)."""
        if self._fd < 0:
            return bytes(n)
        try:
            data = os.pread(self._fd, n, offset)
        except OSError as e:
            raise io_error(self.path or "label storage", "read the label area", e) from None
        # a file another process truncated reads short: zeros, as a fresh area
        return data if len(data) == n else data + bytes(n - len(data))

    def file_slice(self, offset: int, n: int) -> FileSlice | bytes:
        """:meth:`read`, left in the file for the driver to copy. Before the first
        write there is no file and every byte is zero: the slice is of ``/dev/zero``
        (the driver's one ``pread`` then zeroes the caller's buffer, EFAULT checked
        alike), or bytes where it cannot be opened."""
        if self._fd >= 0:
            return FileSlice(self._fd, offset, n)
        zero = _dev_zero()
        return FileSlice(zero, 0, n) if zero >= 0 else bytes(n)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        fd = self._fd if self._fd >= 0 else self._open()
        try:
            done = os.pwrite(fd, data, offset)
            if done < len(data):  # a short write: the rest, until all or an error
                view = memoryview(data)[done:]
                while view:
                    n = os.pwrite(fd, view, offset + done)
                    view, done = view[n:], done + n
        except OSError as e:  # a full disk: a clean error, where a mapping gave SIGBUS
            raise io_error(self.path or "label storage", "write the label area", e) from None

    def _range(self, key: slice) -> tuple[int, int]:
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("label storage slices have step 1")
        return start, max(stop - start, 0)

    def __getitem__(self, key: slice) -> bytes:
        return self.read(*self._range(key))

    def __setitem__(self, key: slice, data: bytes) -> None:
        start, n = self._range(key)
        if len(data) != n:
            raise ValueError(f"{len(data)} bytes for a {n}-byte slice")
        self.write(start, data)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f, self._fd = None, -1


_BACKGROUND: list[ModuleType] = []  # .background, imported when the first device is made


def _background() -> Any:
    """The ``background`` module (it imports this one: not importable at the top)."""
    if not _BACKGROUND:
        from . import background

        _BACKGROUND.append(background)
    return _BACKGROUND[0]


Handler = Callable[["TypeThreeDevice", bytes], tuple[int, "bytes | FileSlice"]]
#: opcode -> handler, filled by :func:`handles` from catalogue records
HANDLERS: dict[int, Handler] = {}


def handles(cmd: mb.Command[Any]) -> Callable[[Handler], Handler]:
    """Register the device's behaviour for a catalogue command."""

    def deco(fn: Handler) -> Handler:
        if mb.BY_OPCODE.get(cmd.opcode) is not cmd:
            raise ValueError(f"{cmd.name}: not a catalogue record")
        HANDLERS[cmd.opcode] = fn
        return fn

    return deco


class TypeThreeDevice:
    """The device half: a CXL type-3 memory device's mailbox and state."""

    #: Get Health Info's status bytes: 0 until a health profile sets them
    #: (``cxlctl.sim.apply_health``)
    health_status = 0
    media_status = 0
    additional_status = 0

    def __init__(
        self,
        config: DeviceConfig,
        state_dir: str | None = None,
        saved: Mapping[str, Any] | None = None,
    ) -> None:
        """``saved``: this memdev's saved state (:func:`load_state`), when the caller
        has read it already; otherwise it is read here (once)."""
        self.config = config
        # CXLCTL_SIM_STATE: the label area survives between processes
        lsa_path = os.path.join(state_dir, f"{config.serial:#x}.lsa") if state_dir else None
        self.lsa = LabelStorage(config.lsa_size, lsa_path)
        self.timestamp_base_ns = time.time_ns()  # the kernel sets it at probe
        self.timestamp_set_at = time.monotonic_ns()
        self.dirty_shutdown = False
        self.life_used = 3
        self.temperature = 37
        profile = config.profile
        if profile == "full":
            # some deterministic history, so health/alert output has something to show
            self.dirty_shutdown_count = 1
            self.corrected_volatile_errors = 2 if config.volatile_bytes else 0
            self.corrected_persistent_errors = 5 if config.persistent_bytes else 0
        else:
            self.dirty_shutdown_count = 0
            self.corrected_volatile_errors = 0
            self.corrected_persistent_errors = 0
        #: the alert configuration (:attr:`alert`), made when first used from the
        #: profile the device was made with and what Set Alert Configuration saved
        self._alert: lay.AlertConfigOut | None = None
        self._alert_profile = profile
        self._saved_alert: Any = None
        #: Get Partition Info's "next" capacities: what Set Partition Info asked for,
        #: active after the next cold reset (0, 0: no change pending)
        self.next_volatile = 0
        self.next_persistent = 0
        #: the last CALL_LOG commands that reached the device (a ring: bounded memory
        #: however many commands a bulk transfer sends)
        self.calls: deque[tuple[int, bytes]] = deque(maxlen=CALL_LOG)
        self._cel_of: tuple[int, ...] = ()
        self._cel_set: frozenset[int] = frozenset()
        self.state_dir = state_dir
        #: CXLCTL_SIM_FAULTS (:class:`.faults.Injector`), None without faults
        self.faults: Any = None
        if config.faults:
            from .faults import Injector

            self.faults = Injector(tuple(config.faults))
        #: how long the last command took the device, in ms (``slow``); ``inf``: it
        #: never answered (``vanish``). The driver waits for it (mailbox timeout)
        self.latency_ms: float = 0
        bgmod = _background()
        st = load_state(state_dir, config.serial) if saved is None else saved
        self.bg: BgOp | None = None  # the running background operation
        self.bg_last: tuple[int, int] = (0, 0)
        #: Sanitize/Secure Erase runs that completed (the user data is gone)
        self.media_generation = 0
        self.vendor_debug_cleared = False
        self.fw: FwState
        if not st:  # nothing saved (no CXLCTL_SIM_STATE, or a fresh memdev)
            self.fw = bgmod.FwState.initial(config)
            return
        # what Set Alert Configuration left (CXLCTL_SIM_STATE), decoded when first used
        self._saved_alert = st.get("alert_config")
        self.fw = bgmod.FwState.initial(config) if "fw" not in st else bgmod.FwState.load(st["fw"])
        self.bg = bgmod.BgOp.load(st.get("bg"))
        last = st.get("bg_last") or (0, 0)
        self.bg_last = (int(last[0]), int(last[1]))
        self.media_generation = int(st.get("media_generation", 0))
        nxt = st.get("next_partition")
        if isinstance(nxt, list) and len(nxt) == 2 and all(isinstance(x, int) for x in nxt):
            self.next_volatile, self.next_persistent = nxt
        # what Set Timestamp, Set Shutdown State and Clear Log left (CXLCTL_SIM_STATE)
        ts = st.get("timestamp")
        if isinstance(ts, list) and len(ts) == 2 and all(type(x) is int for x in ts):
            # the device's clock kept running while no process modelled it
            self.timestamp_base_ns = ts[0] + (time.time_ns() - ts[1])
        if type(st.get("dirty_shutdown")) is bool:
            self.dirty_shutdown = st["dirty_shutdown"]
        self.vendor_debug_cleared = st.get("vendor_debug_cleared") is True

    @property
    def alert(self) -> lay.AlertConfigOut:
        """The alert configuration (Get/Set Alert Configuration), made when first used."""
        a = self._alert
        if a is None:
            a = self._alert = self._initial_alert()
        return a

    @alert.setter
    def alert(self, value: lay.AlertConfigOut) -> None:
        self._alert = value

    def _initial_alert(self) -> lay.AlertConfigOut:
        """What Set Alert Configuration saved, else the profile's defaults."""
        saved = self._saved_alert
        if isinstance(saved, str):
            with contextlib.suppress(ValueError):
                return lay.AlertConfigOut.from_buffer_copy(bytes.fromhex(saved))
        if self._alert_profile == "qemu11":  # QEMU 11.1's defaults (hw/mem/cxl_type3.c)
            return lay.AlertConfigOut(
                valid_alerts=0,
                programmable_alerts=0,
                life_used_critical_threshold=75,
                life_used_programmable_warning_threshold=40,
                device_over_temperature_critical_threshold=35,
                device_under_temperature_critical_threshold=10,
                device_over_temperature_programmable_warning_threshold=25,
                device_under_temperature_programmable_warning_threshold=20,
            )
        a = lay.AlertConfigOut(
            valid_alerts=0,
            programmable_alerts=0x1F,
            life_used_critical_threshold=95,
            device_over_temperature_critical_threshold=85,
            device_under_temperature_critical_threshold=-10,
        )
        if self._alert_profile == "full":
            a.valid_alerts = 0x03
            a.life_used_programmable_warning_threshold = 75
            a.device_over_temperature_programmable_warning_threshold = 70
        return a

    def persist(self, **updates: Any) -> None:
        """Keep device state between processes when CXLCTL_SIM_STATE is set."""
        save_state(self.state_dir, self.config.serial, **updates)

    @property
    def cel(self) -> tuple[int, ...]:
        return self.config.cel

    def execute(self, opcode: int, payload: bytes) -> tuple[int, bytes]:
        """Run one mailbox command: (return code, output payload)."""
        rc, out = self.execute_out(opcode, payload)
        return rc, bytes(out) if isinstance(out, FileSlice) else out

    def execute_out(self, opcode: int, payload: bytes) -> tuple[int, bytes | FileSlice]:
        """:meth:`execute` for the simulated driver: a Get LSA's output may be a
        :class:`FileSlice` of the label area, which the driver copies out itself."""
        self.calls.append((opcode, payload))
        if self.bg is not None:  # a background operation may have ended meanwhile
            from .background import poll

            poll(self)
        inj = self.faults
        if inj is not None:
            return self._faulty(inj, opcode, payload)
        return self._execute(opcode, payload)

    def _faulty(self, inj: Any, opcode: int, payload: bytes) -> tuple[int, bytes]:
        """execute() with CXLCTL_SIM_FAULTS: the device misbehaves as configured."""
        from .background import MEDIA_OPCODES

        self.latency_ms = inj.latency_ms(opcode)
        refused = inj.before(opcode, MEDIA_OPCODES)
        if inj.vanished:
            self.latency_ms = float("inf")
            return _UNSUPPORTED, b""  # never read: the doorbell does not clear
        if refused is not None:
            return refused, b""
        rc, out = self._execute(opcode, payload)
        data = bytes(out) if isinstance(out, FileSlice) else out
        if rc == RC.SUCCESS:
            data = inj.after(opcode, self.config.serial, data)
        return rc, data

    def _execute(self, opcode: int, payload: bytes) -> tuple[int, bytes | FileSlice]:
        cel = self.config.cel
        if cel is not self._cel_of:  # a set for lookups, looked up again if the config changes
            self._cel_of, self._cel_set = cel, cel_opcodes(cel)
        handler = HANDLERS.get(opcode)
        if handler is None or opcode not in self._cel_set:
            return _UNSUPPORTED, b""
        size_in = _SIZE_IN.get(opcode)
        if size_in is not None and len(payload) != size_in:
            return _INVALID_PAYLOAD_LENGTH, b""
        if self.bg is not None:
            from .background import admit

            refused = admit(self, opcode)
            if refused is not None:
                return refused, b""
        return handler(self, payload)

    def sanitizing(self) -> bool:
        """A Sanitize or Secure Erase runs (the media is disabled meanwhile)."""
        if self.bg is None:  # every command asks: no import, no clock when idle
            return False
        from .background import poll

        poll(self)
        return self.bg is not None and self.bg.opcode in (
            mb.SANITIZE.opcode,
            mb.SECURE_ERASE.opcode,
        )

    def background_complete(self) -> bool:
        """cxl_mbox_background_complete(): the Background Command Status register
        says 100%.  A device whose faulty answer claimed a background start has
        nothing running that could complete."""
        from .background import poll

        poll(self)
        if self.faults is not None and self.faults.claimed_background:
            return False
        return self.bg is None

    # -- helpers used by handlers --
    def cel_bytes(self) -> bytes:
        qemu11 = _EFFECTS_QEMU11 if self.config.profile == "qemu11" else {}
        return b"".join(
            bytes(lay.CelEntry(opcode=op, effect=qemu11.get(op, cel_effect(op)))) for op in self.cel
        )

    def supported_logs(self) -> list[tuple[str, bytes]]:
        logs = [(CEL_UUID, self.cel_bytes())]
        if self.config.profile == "full":
            # larger than payload_max, so reading it takes more than one Get Log;
            # empty once Clear Log cleared it
            log = b"" if self.vendor_debug_cleared else vendor_debug_log(self.config.serial)
            logs.append((VENDOR_DEBUG_UUID, log))
        return logs

    def now_ns(self) -> int:
        return self.timestamp_base_ns + (time.monotonic_ns() - self.timestamp_set_at)


#: CEL -> its opcodes as a set, shared by every device with that CEL (a run of many
#: memdevs has one per profile)
_CEL_SETS: dict[tuple[int, ...], frozenset[int]] = {}


def cel_opcodes(cel: tuple[int, ...]) -> frozenset[int]:
    """The opcodes of ``cel`` as a (shared, immutable) set."""
    key = cel if type(cel) is tuple else tuple(cel)
    got = _CEL_SETS.get(key)
    if got is None:
        got = frozenset(key)
        if len(_CEL_SETS) < 64:  # CELs a test makes up: a bounded cache
            _CEL_SETS[key] = got
    return got


def full_cel() -> tuple[int, ...]:
    """The full profile's CEL: every opcode the device has a handler for, in order."""
    return tuple(sorted(HANDLERS))


def cel_effect(opcode: int) -> int:
    """The Command Effect the device reports for an opcode (its catalogue record's)."""
    cmd = mb.BY_OPCODE.get(opcode)
    return cmd.effects if cmd is not None else 0


def vendor_debug_log(serial: int) -> bytes:
    """The full profile's Vendor Debug Log: 3000 deterministic bytes of text."""
    line = f"cxlctl simulated device {serial:#x}: vendor debug log\n".encode()
    return (line * (3000 // len(line) + 1))[:3000]


def units(nbytes: int) -> int:
    return nbytes // mb.CAPACITY_UNIT
