"""One memdev: typed mailbox commands over a transport, plain values back.

>>> from cxlctl.backends import open_backend
>>> open_backend("sim").memdev("mem0").identify().fw_revision
'BWFW VERSION 00'

Nothing here prints; failures are :class:`~cxlctl.errors.CxlError` subclasses whose
message names the device, the command and the cause.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import mailbox as mb
from . import transport as tp
from . import uapi
from .errors import (
    DeviceBusy,
    MailboxError,
    UnsupportedCommand,
    UsageError,
    from_errno,
)
from .mailbox import layouts as lay

if TYPE_CHECKING:
    from .backends import Backend, MemdevInfo
    from .change import Recorder
    from .mailbox.firmware import FwInfo
    from .mailbox.generic import Timestamp
    from .mailbox.health import AlertConfig, HealthInfo, ShutdownState
    from .mailbox.logs import LogCaps, SupportedLogs
    from .mailbox.memdev import Identify, PartitionInfo


class Memdev:
    """One memdev: typed commands over :func:`cxlctl.transport.send`."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.name = name
        self._t: tp.Transport | None = None
        self._info: MemdevInfo | None = None
        #: --dry-run: requests that change the device are recorded here, not sent
        self.recorder: Recorder | None = None
        self._payload_max = 0
        #: catalogue command name -> its SEND, packed once (buffers reused)
        self._prepared: dict[str, tp.PreparedCommand] = {}

    @property
    def info(self) -> MemdevInfo:
        if self._info is None:
            self._info = self.backend.info(self.name)
        return self._info

    @property
    def payload_max(self) -> int:
        """sysfs ``payload_max`` (read once per open memdev; 4096 if unreadable)."""
        if not self._payload_max:
            self._payload_max = self.info.payload_max or 4096
        return self._payload_max

    @property
    def transport(self) -> tp.Transport:
        if self._t is None:
            self._t = self.backend.open(self.name)
        return self._t

    def close(self) -> None:
        self._prepared.clear()
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
        if self.recorder is not None and changes_device(req):
            self.recorder.ioctl(self.name, req)
            return tp.SendResult(mb.ReturnCode.SUCCESS, b"")
        try:
            return tp.send(self.transport, req)
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: {what}") from e

    def send(
        self, cmd: mb.Command, payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendResult:
        return self.submit(self.request(cmd, payload, out_size), cmd.name)

    def prepared(self, cmd: mb.Command) -> tp.PreparedCommand:
        """The command's SEND, packed once per open memdev: input buffer of
        payload_max, output buffer of payload_max (or none for a no-output command)."""
        p = self._prepared.get(cmd.name)
        if p is None:
            req = self.request(cmd)  # UnsupportedCommand without a kernel id
            p = tp.PreparedCommand(self.transport, req.id, req.out_size, self.payload_max)
            self._prepared[cmd.name] = p
        return p

    def run(self, cmd: mb.Command | str, payload: bytes = b"") -> bytes:
        """Send and require mailbox Success; return the output payload."""
        c = mb.lookup(cmd) if isinstance(cmd, str) else cmd
        if self.recorder is not None and c.destructive:  # --dry-run records it
            res = self.send(c, payload)
            check_retval(self.name, c.name, res.retval)
            return res.out
        p = self._prepared.get(c.name) or self.prepared(c)
        if len(payload) > self._payload_max:
            raise UsageError(
                f"{self.name}: {c.name}: input is {len(payload)} bytes, "
                f"payload_max is {self.payload_max}"
            )
        try:
            rc, out = p(payload)
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: {c.name}") from e
        if rc:
            check_retval(self.name, c.name, rc)
        return out

    def decoded(self, cmd: mb.Command | str, payload: bytes = b"") -> Any:
        """Send, require Success and decode the output with the command's decoder."""
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


def changes_device(req: tp.SendRequest) -> bool:
    """A request that may change the device: a catalogue command marked destructive,
    or RAW with an opcode not known to be a pure read."""
    if req.id == uapi.CommandId.RAW:
        cmd = mb.BY_OPCODE.get(req.raw_opcode)
        return cmd is None or cmd.destructive
    kc = mb.BY_KERNEL_ID.get(req.id)
    return kc is None or kc.destructive


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
