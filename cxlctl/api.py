"""The library facade: ``cxlctl.open()``, ``cxlctl.list_memdevs()`` and :class:`Device`.

>>> import cxlctl
>>> with cxlctl.open("mem0", backend="sim") as dev:
...     dev.identify().firmware_version
'BWFW VERSION 00'

One :class:`Device` per open memdev: the device node is opened once, the kernel's
command table (QUERY) and ``payload_max`` are read once and cached, and every
command is sent from a ``struct cxl_send_command`` packed once with buffers
reused (see :class:`cxlctl.transport.PreparedCommand`). Sizes and flags the
kernel checks itself are not checked again here. A :class:`Device` is not
thread-safe: open one per thread.

Failures raise :class:`cxlctl.CxlError` subclasses (``DeviceNotFound``,
``PermissionDenied``, ``UnsupportedCommand``, ``MailboxError`` ...) whose message
names the device, the command and the cause; ``exit_code`` is what the CLI
exits with for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from . import mailbox as mb
from .backends import Backend, MemdevInfo, open_backend
from .memdev import Memdev, check_retval

if TYPE_CHECKING:
    from types import TracebackType

    from .mailbox.firmware import FwInfo
    from .mailbox.generic import Timestamp
    from .mailbox.health import Alert, AlertConfig, HealthInfo, ShutdownState
    from .mailbox.logs import LogCaps, SupportedLogs
    from .mailbox.memdev import Identify, PartitionInfo
    from .transport import CommandInfo, SendResult

__all__ = ["Device", "backend", "list_memdevs", "open"]

#: one backend per name in a process: the simulator's state is shared like a
#: real system's, and the kernel's sysfs is read through one object
_BACKENDS: dict[str, Backend] = {}


def backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name`` (``"kernel"`` or ``"sim"``; default: the
    ``CXLCTL_BACKEND`` environment variable, else ``"kernel"``), one per process;
    a :class:`~cxlctl.backends.Backend` instance is returned as it is."""
    if isinstance(name, Backend):
        return name
    import os

    key = (name or os.environ.get("CXLCTL_BACKEND") or "kernel").lower()
    if key == "simulator":
        key = "sim"
    b = _BACKENDS.get(key)
    if b is None:
        b = _BACKENDS[key] = open_backend(key)
    return b


def list_memdevs(
    memdevs: Sequence[str] = (), *, backend: str | Backend | None = None
) -> list[MemdevInfo]:
    """What sysfs says about the given memdevs (all of them when none is given):
    ``memdev``, sizes, ``serial``, ``host``, ``firmware_version``, ``payload_max``,
    ``label_storage_size`` ... as ``cxl list -M``. Raises ``DeviceNotFound``."""
    return _backend(backend).list_memdevs(memdevs)


def open(name: str, *, backend: str | Backend | None = None) -> Device:
    """Open a memdev (``mem0`` or ``/dev/cxl/mem0``) for commands; use it as a
    context manager or call :meth:`Device.close`. Raises ``DeviceNotFound`` for an
    unknown memdev; the device node itself is opened on the first command."""
    b = _backend(backend)
    return Device(b.memdev(name))


_backend = backend


_IDENTIFY = mb.BY_NAME["identify"]
_HEALTH = mb.BY_NAME["get-health-info"]
_PARTITION = mb.BY_NAME["get-partition-info"]
_FW_INFO = mb.BY_NAME["get-fw-info"]
_ALERT = mb.BY_NAME["get-alert-config"]
_SHUTDOWN = mb.BY_NAME["get-shutdown-state"]
_TIMESTAMP = mb.BY_NAME["get-timestamp"]
_LOGS = mb.BY_NAME["get-supported-logs"]


class Device:
    """One open memdev: typed mailbox commands returning plain values."""

    __slots__ = ("_commands", "memdev")

    def __init__(self, memdev: Memdev) -> None:
        #: the underlying :class:`cxlctl.memdev.Memdev` (labels, logs, alerts ...)
        self.memdev = memdev
        self._commands: list[CommandInfo] | None = None

    def __enter__(self) -> Device:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<cxlctl.Device {self.name} on the {self.memdev.backend.name} backend>"

    def close(self) -> None:
        """Close the device node (a later command opens it again)."""
        self.memdev.close()
        self._commands = None

    # -- what sysfs and the kernel say ----------------------------------------------
    @property
    def name(self) -> str:
        """The memdev's name, e.g. ``mem0``."""
        return self.memdev.name

    @property
    def info(self) -> MemdevInfo:
        """The memdev's sysfs attributes (read once)."""
        return self.memdev.info

    @property
    def payload_max(self) -> int:
        """The largest mailbox payload, from sysfs (read once)."""
        return self.memdev.payload_max

    def commands(self) -> list[CommandInfo]:
        """The kernel's command table (CXL_MEM_QUERY_COMMANDS), queried once per
        open device: id, flags (``enabled``, ``exclusive``), size_in, size_out."""
        if self._commands is None:
            self._commands = self.memdev.query()
        return self._commands

    # -- typed mailbox commands -------------------------------------------------------
    def identify(self) -> Identify:
        """Identify Memory Device (opcode 0x4000): capacities in bytes, log sizes,
        LSA size, poison and QoS capabilities, firmware revision."""
        v: Identify = self.memdev.decoded(_IDENTIFY)
        return v

    def health(self) -> HealthInfo:
        """Get Health Info (0x4200): status bits, media status, life used,
        temperature, dirty shutdowns, corrected error counts."""
        v: HealthInfo = self.memdev.decoded(_HEALTH)
        return v

    def partition_info(self) -> PartitionInfo:
        """Get Partition Info (0x4100): active and next capacities in bytes."""
        v: PartitionInfo = self.memdev.decoded(_PARTITION)
        return v

    def fw_info(self) -> FwInfo:
        """Get FW Info (0x0200): slots, their versions, active/staged slot."""
        v: FwInfo = self.memdev.decoded(_FW_INFO)
        return v

    def alert_config(self) -> AlertConfig:
        """Get Alert Configuration (0x4201): thresholds, valid/writable bits."""
        v: AlertConfig = self.memdev.decoded(_ALERT)
        return v

    def set_alert_config(self, changes: Mapping[Alert, int | None]) -> None:
        """Set Alert Configuration (0x4202): each alert named turns on with its
        threshold (an int) or off (None); the others keep their setting
        (``{Alert.LIFE_USED: 80, Alert.OVER_TEMPERATURE: None}``)."""
        from .mailbox.health import set_alert_config_request

        self.memdev.set_alert_config(set_alert_config_request(changes))

    def shutdown_state(self) -> ShutdownState:
        """Get Shutdown State (0x4203): clean or dirty."""
        v: ShutdownState = self.memdev.decoded(_SHUTDOWN)
        return v

    def timestamp(self) -> Timestamp:
        """Get Timestamp (0x0300): the device clock, ns since the Unix epoch."""
        v: Timestamp = self.memdev.decoded(_TIMESTAMP)
        return v

    def supported_logs(self) -> SupportedLogs:
        """Get Supported Logs (0x0400): each log's UUID and size."""
        v: SupportedLogs = self.memdev.decoded(_LOGS)
        return v

    def log_caps(self, log: str) -> LogCaps:
        """Get Log Capabilities (0x0402) of a log (UUID, or ``cel``/``vendor-debug``)."""
        return self.memdev.log_caps(mb.LOG_ALIASES.get(log, log))

    def get_log(self, log: str, offset: int = 0, length: int | None = None) -> bytes:
        """A log's bytes (Get Log in payload_max pages, checked against the size Get
        Supported Logs advertises); ``log`` is a UUID or ``cel``/``vendor-debug``."""
        return b"".join(self.memdev.iter_log(mb.LOG_ALIASES.get(log, log), offset, length))

    def read_labels(self, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of the label storage area (Get LSA in payload_max chunks), to its end
        by default."""
        if length is None:
            length = self.info.label_storage_size - offset
        return self.memdev.read_lsa(offset, length)

    # -- pass-through -----------------------------------------------------------------
    def send(self, command: str, payload: bytes = b"", *, check: bool = True) -> SendResult:
        """Send a kernel command by catalogue name, alias or kernel enum name
        (``identify``, ``get-lsa``, ``GET_LOG``) with an input payload; returns the
        mailbox return code and the output bytes. ``check``: raise ``MailboxError``
        unless the device answered Success."""
        cmd = mb.lookup(command)
        res = self.memdev.send(cmd, payload)
        if check:
            check_retval(self.name, cmd.name, res.retval)
        return res

    def raw(self, opcode: int, payload: bytes = b"", *, check: bool = True) -> SendResult:
        """Send any mailbox opcode through the kernel's RAW command (needs a kernel
        with CONFIG_CXL_MEM_RAW_COMMANDS; the kernel refuses some opcodes even then)."""
        res = self.memdev.submit(self.memdev.raw_request(opcode, payload), f"raw {opcode:#06x}")
        if check:
            check_retval(self.name, f"raw {opcode:#06x}", res.retval)
        return res
