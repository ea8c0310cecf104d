"""One memdev: typed mailbox commands over a transport, plain values back.

>>> from cxlctl.backends import open_backend
>>> open_backend("sim").memdev("mem0").identify().firmware_version
'BWFW VERSION 00'

Nothing here prints; failures are :class:`~cxlctl.errors.CxlError` subclasses whose
message names the device, the command and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar

from . import mailbox as mb
from . import transport as tp
from . import uapi
from .errors import (
    CxlError,
    DecodeError,
    DeviceBusy,
    DeviceWarning,
    MailboxError,
    PartialWrite,
    UnsupportedCommand,
    UsageError,
    from_errno,
    write_report,
)
from .mailbox import layouts as lay
from .record import Record

#: The request a SEND carries, and the limits of its fields: library values for
#: the CLI's ``send``/``raw``/``--dry-run`` (which never reach uapi/transport).
SendRequest = tp.SendRequest
MAX_PAYLOAD = tp.MAX_PAYLOAD
RAW_ID = int(uapi.CommandId.RAW)
VARIABLE_SIZE = uapi.CXL_VARIABLE_PAYLOAD  #: size_in/size_out of a variable-length command


def kernel_command_name(cid: int) -> str | None:
    """The kernel's name for a command id (``CXL_MEM_COMMAND_ID_IDENTIFY`` ->
    ``IDENTIFY``), or None for an id Linux does not define."""
    return uapi.COMMAND_NAMES.get(cid)


def describe_send(name: str, req: tp.SendRequest) -> dict[str, Any]:
    """Every field of the ``struct cxl_send_command`` a request packs to, as the
    ioctl would receive it on ``/dev/cxl/NAME`` (what ``--dry-run`` prints)."""
    s = req.struct()
    return {
        "memdev": name,
        "ioctl": uapi.CXL_MEM_SEND_COMMAND,
        "id": int(s.id),
        "flags": int(s.flags),
        "raw_opcode": int(s.raw.opcode),
        "raw_rsvd": int(s.raw.rsvd),
        "rsvd": int(s.rsvd),
        "in_size": int(s.in_.size),
        "in_rsvd": int(s.in_.rsvd),
        "in_payload": req.payload.hex(),
        "out_size": int(s.out.size),
        "out_rsvd": int(s.out.rsvd),
        "struct": bytes(s).hex(),
    }


if TYPE_CHECKING:
    from .backends import Backend, MemdevInfo
    from .change import Recorder
    from .eventlog import EventLogRecords
    from .mailbox.events import EventInterruptPolicy
    from .mailbox.firmware import FwInfo
    from .mailbox.generic import Timestamp
    from .mailbox.health import AlertConfig, HealthInfo, SetAlertConfig, ShutdownState
    from .mailbox.logs import LogCaps, SupportedLogs
    from .mailbox.memdev import Identify, PartitionInfo
    from .mailbox.names import EventLog

T = TypeVar("T")


class Memdev:
    """One memdev: typed commands over :func:`cxlctl.transport.send`."""

    def __init__(self, backend: Backend, name: str, info: MemdevInfo | None = None) -> None:
        self.backend = backend
        self.name = name
        self._t: tp.Transport | None = None
        #: the sysfs attributes (read when first needed; INFO: already read by the caller)
        self._info: MemdevInfo | None = info
        #: --dry-run: requests that change the device are recorded here, not sent
        self.recorder: Recorder | None = None
        self._payload_max = 0
        #: catalogue command name -> its SEND, packed once (buffers reused)
        self._prepared: dict[str, tp.PreparedCommand] = {}
        #: the command whose refusal is being explained (its queries are not)
        self._explaining: str | None = None

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
        """Close the transport (``/dev/cxl/memN``); the next command reopens it."""
        self._prepared.clear()
        if self._t is not None:
            self._t.close()
            self._t = None

    def __enter__(self) -> Memdev:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the two ioctls --
    def query(self) -> list[tp.CommandInfo]:
        try:
            return tp.query(self.transport)
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: query") from e

    def request(
        self, cmd: mb.Command[Any], payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendRequest:
        """The SEND request for a catalogue command (not sent)."""
        if cmd.kernel_id is None:
            raise UnsupportedCommand(
                f"{self.name}: {cmd.name}: Linux has no command id for {cmd.title} "
                f"(opcode {cmd.opcode:#06x})",
                hint=f"try `cxlctl raw {self.name} {cmd.opcode:#06x}` if RAW is allowed",
            )
        if out_size is None:
            out_size = self._out_size(cmd)
        return tp.SendRequest(cmd.kernel_id, payload, out_size)

    def _out_size(self, cmd: mb.Command[Any]) -> int:
        """out.size for CMD: payload_max, or 0 for a command without output."""
        return self.payload_max if cmd.size_out is None or cmd.size_out else 0

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
            raise self.failed(e, what, req) from e

    def send(
        self, cmd: mb.Command[Any], payload: bytes = b"", out_size: int | None = None
    ) -> tp.SendResult:
        return self.submit(self.request(cmd, payload, out_size), cmd.name)

    def prepared(self, cmd: mb.Command[Any]) -> tp.PreparedCommand:
        """The command's SEND, packed once per open memdev: input buffer of
        payload_max, output buffer of payload_max (or none for a no-output command)."""
        p = self._prepared.get(cmd.name)
        if p is None:
            if cmd.kernel_id is None:
                self.request(cmd)  # UnsupportedCommand, saying why
            assert cmd.kernel_id is not None
            p = tp.PreparedCommand(
                self.transport, cmd.kernel_id, self._out_size(cmd), self.payload_max
            )
            self._prepared[cmd.name] = p
        return p

    def explain(self, c: mb.Command[Any], rc: int, payload: bytes) -> str | None:
        """Why the device answered ``rc`` to ``c`` with input ``payload``: the field it
        refused, its rule and valid range (the record's explainer, which may read the
        device's current settings), or None when the explainer has nothing to say.
        Never raises: an explanation must not hide the device's answer."""
        if self._explaining is not None:  # the explainer's own queries are not explained
            return None
        self._explaining = c.name
        try:
            return c.explain_rc(rc, payload, lambda n: self.decoded(mb.lookup(n)))
        except Exception:
            return None
        finally:
            self._explaining = None

    def _refused(self, c: mb.Command[Any], rc: int, payload: bytes) -> NoReturn:
        """A non-Success return code as MailboxError, with the command's own
        explanation (which field, which rule, the valid range) when it has one."""
        why = self.explain(c, rc, payload)
        try:
            check_retval(self.name, c.name, rc, why)
        except MailboxError as err:
            if rc == mb.ReturnCode.BUSY:  # a Busy says why (a background operation)
                from . import why as busy_why

                cause, hint = busy_why.busy(
                    self.backend, self.name, opcode=c.opcode, device_busy=True
                )
                err.hint = f"{cause}: {hint}"
            raise
        raise AssertionError("unreachable: rc is not Success")

    def run(self, cmd: mb.Command[Any] | str, payload: bytes = b"") -> bytes:
        """Send and require mailbox Success; return the output payload.

        A command Linux has no id for goes through RAW when the kernel has it
        (CONFIG_CXL_MEM_RAW_COMMANDS); without RAW it is UnsupportedCommand."""
        c = mb.lookup(cmd) if isinstance(cmd, str) else cmd
        if c.kernel_id is None:
            if not self.raw_available():
                from . import why

                raise UnsupportedCommand(
                    f"{self.name}: {c.name}: not available on this kernel, because "
                    f"{why.unavailable(c.opcode, f'{c.title} ({c.opcode:#06x})')}",
                    hint="RAW needs a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS; "
                    "on the simulator set CXLCTL_SIM_RAW=1",
                )
            res = self.submit(self.raw_request(c.opcode, payload), c.name)
            if res.retval:
                self._refused(c, res.retval, payload)
            return res.out
        if self.recorder is not None and c.destructive:  # --dry-run records it
            res = self.send(c, payload)
            self.check(c.name, res.retval, c.opcode)
            return res.out
        p = self._prepared.get(c.name) or self.prepared(c)
        if len(payload) > self._payload_max:
            raise UsageError(
                f"{self.name}: {c.name}: input is {len(payload)} bytes, "
                f"payload_max is {self.payload_max}"
            )
        try:
            rc, out = p(payload)
            if rc:
                for delay in RETRY_DELAYS if rc in RETRY_CODES and not c.destructive else ():
                    time.sleep(delay)  # Busy / Retry Required: a read is safe to repeat
                    rc, out = p(payload)
                    if rc not in RETRY_CODES:
                        break
        except OSError as e:
            raise self.failed(e, c.name, self.request(c, payload)) from e
        if rc:
            self._refused(c, rc, payload)
        if c.size_out and len(out) > c.size_out and len(out) >= p.out_size:
            import warnings

            warnings.warn(
                DeviceWarning(
                    f"{self.name}: {c.name}: the device returned {len(out)} bytes, the whole "
                    f"buffer, for a {c.size_out}-byte layout (more may have been cut off); "
                    "decoded what the layout defines"
                ),
                stacklevel=2,
            )
        return out

    def failed(self, e: OSError, what: str, req: tp.SendRequest) -> CxlError:
        """The error for a failed SEND; an EBUSY says which of its causes it is
        (:func:`cxlctl.why.busy` asks the system)."""
        err = e.errno or errno.EIO
        raw = req.id == uapi.CommandId.RAW
        cmd = mb.BY_OPCODE.get(req.raw_opcode) if raw else mb.BY_KERNEL_ID.get(req.id)
        if err == errno.ENOTTY and cmd is not None and not raw:
            with contextlib.suppress(CxlError):
                if any(c.id == req.id and not c.enabled for c in self.query()):
                    return UnsupportedCommand(
                        f"{self.name}: {what}: not available on this device: its Command "
                        f"Effects Log does not list {cmd.title} ({cmd.opcode:#06x}), so the "
                        f"kernel left {kernel_command_name(req.id)} disabled [ENOTTY]",
                        hint=f"`cxlctl query {self.name}` shows what the kernel enabled",
                    )
        if err != errno.EBUSY:
            return from_errno(err, f"{self.name}: {what}")
        from . import why

        cause, hint = why.busy(
            self.backend,
            self.name,
            opcode=req.raw_opcode if raw else (cmd.opcode if cmd else None),
            kernel_id=None if raw else req.id,
            kernel_name=kernel_command_name(req.id) or "",
            payload=req.payload,
            query=self.query,
        )
        return DeviceBusy(f"{self.name}: {what}: {cause} [EBUSY]", hint=hint)

    def check(self, what: str, rc: int, opcode: int | None = None) -> None:
        """Require mailbox Success; a Busy says why (a background operation)."""
        try:
            check_retval(self.name, what, rc)
        except MailboxError as e:
            if rc == mb.ReturnCode.BUSY:
                from . import why

                cause, hint = why.busy(self.backend, self.name, opcode=opcode, device_busy=True)
                e.hint = f"{cause}: {hint}"
            raise

    def raw_available(self) -> bool:
        """The kernel was built with CONFIG_CXL_MEM_RAW_COMMANDS (RAW is in its table)."""
        return any(ci.id == RAW_ID for ci in self.query())

    def decoded(self, cmd: mb.Command[T], payload: bytes = b"") -> T:
        """Run a catalogue command and decode its output with the record's decoder."""
        out = self.run(cmd, payload)
        try:
            return cmd.decode(out)
        except DecodeError as e:  # say which device sent it
            raise DecodeError(
                f"{self.name}: {e.message}", hint=e.hint or "the device's answer is malformed"
            ) from None

    # -- typed commands --
    def identify(self) -> Identify:
        return self.decoded(mb.IDENTIFY)

    def fw_info(self) -> FwInfo:
        return self.decoded(mb.GET_FW_INFO)

    def partition_info(self) -> PartitionInfo:
        return self.decoded(mb.GET_PARTITION_INFO)

    def health(self) -> HealthInfo:
        return self.decoded(mb.GET_HEALTH_INFO)

    def alert_config(self) -> AlertConfig:
        return self.decoded(mb.GET_ALERT_CONFIG)

    def shutdown_state(self) -> ShutdownState:
        return self.decoded(mb.GET_SHUTDOWN_STATE)

    def timestamp(self) -> Timestamp:
        return self.decoded(mb.GET_TIMESTAMP)

    def supported_logs(self) -> SupportedLogs:
        return self.decoded(mb.GET_SUPPORTED_LOGS)

    def log_caps(self, log_uuid: str) -> LogCaps:
        return self.decoded(mb.GET_LOG_CAPS, _uuid_bytes(log_uuid))

    def event_interrupt_policy(self) -> EventInterruptPolicy:
        return self.decoded(mb.GET_EVENT_INTERRUPT_POLICY)

    def event_records(self, log: EventLog) -> EventLogRecords:
        """Get Event Records for one log (through RAW: Linux has no command id for
        it; nothing is cleared), each record as the kernel would trace it
        (:mod:`cxlctl.eventlog`)."""
        from .eventlog import mailbox_log

        info = self.info
        out = self.decoded(mb.GET_EVENT_RECORDS, bytes([int(log)]))
        return mailbox_log(self.name, info.host, info.serial, log, out)

    # -- typed changes (each honours the recorder: --dry-run) --
    def set_timestamp(self, ns: int) -> None:
        """Set Timestamp (0x0301): ns since the Unix epoch. Linux has no command id:
        RAW, or UnsupportedCommand saying why."""
        if not 0 <= ns < 1 << 64:
            raise UsageError(f"timestamp {ns} does not fit in 64 bits")
        self.run(mb.SET_TIMESTAMP, ns.to_bytes(8, "little"))

    def set_shutdown_state(self, dirty: bool) -> None:
        """Set Shutdown State (0x4204, the kernel's SET_SHUTDOWN_STATE): EBUSY while
        cxl_pmem's nvdimm bridge owns it (the memdev is enabled)."""
        self.run(mb.SET_SHUTDOWN_STATE, bytes([1 if dirty else 0]))

    def clear_log(self, log_uuid: str) -> None:
        """Clear Log (0x0403, the kernel's CLEAR_LOG): Linux refuses (EBUSY) any log
        but the Vendor Debug Log."""
        self.run(mb.CLEAR_LOG, _uuid_bytes(log_uuid))

    def set_event_interrupt_policy(self, modes: dict[str, int]) -> tuple[bytes, bytes]:
        """Set Event Interrupt Policy (0x0103): change the interrupt mode (bits 1:0)
        of the named logs (``info``, ``warn``, ``fail``, ``fatal``,
        ``dynamic_capacity``) and keep the other logs' modes as Get Event Interrupt
        Policy reads them. The input has only the mode bits: bits 7:2 are reserved
        in Set (CXL 3.1 8.2.9.2.5; in Get, bits 7:4 are the message number the
        device assigned), as Linux's cxl_event_config() sends it. Returns (before,
        after): Get before and Get after the change; sends nothing when no mode
        changes (then after is before)."""
        before = self.run(mb.GET_EVENT_INTERRUPT_POLICY)
        order = ("info", "warn", "fail", "fatal", "dynamic_capacity")
        want = bytearray(b & 0x3 for b in before)
        for log, mode in modes.items():
            i = order.index(log)
            if i >= len(want):
                raise UnsupportedCommand(
                    f"{self.name}: set-event-interrupt-policy: the device has no {log} "
                    f"event log setting (its policy is {len(before)} bytes)"
                )
            want[i] = mode & 0x3
        if all((b & 0x3) == w for b, w in zip(before, want, strict=True)):
            return before, before
        self.run(mb.SET_EVENT_INTERRUPT_POLICY, bytes(want))
        return before, self.run(mb.GET_EVENT_INTERRUPT_POLICY)

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

    # -- the label storage area (read-labels, write-labels, zero-labels) --
    def label_range(self, offset: int = 0, length: int | None = None) -> tuple[int, int]:
        """The one range check of the label area: ``(offset, length)``, the length
        defaulting to the rest of the area. UsageError outside the area."""
        size = self.info.label_storage_size
        if size <= 0:
            raise UsageError(f"{self.name}: the device has no label storage area")
        if not 0 <= offset < size:
            raise UsageError(f"{self.name}: offset {offset} is beyond the {size}-byte label area")
        if length is None:
            length = size - offset
        if length <= 0:
            raise UsageError(f"{self.name}: label size {length}: must be at least 1")
        if offset + length > size:
            raise UsageError(
                f"{self.name}: offset {offset} + size {length} goes past the {size}-byte label area"
            )
        return offset, length

    def iter_labels(
        self, offset: int = 0, length: int | None = None, *, progress: Progress | None = None
    ) -> Iterator[memoryview]:
        """Get LSA over the range in payload_max chunks (never 0 bytes, never more
        than payload_max), range-checked before anything is sent. Yields views of
        ONE reusable buffer: use (write, compare, copy) each before the next."""
        offset, length = self.label_range(offset, length)
        step = self.payload_max
        x = tp.Exchange(self.transport, uapi.CommandId.GET_LSA, _LSA_HEAD.size, step)
        inp, out, hdr = x.input, x.output, _LSA_HEAD.size
        done = 0
        while done < length:
            n = min(step, length - done)
            _LSA_HEAD.pack_into(inp, 0, offset + done, n)
            try:
                rc, got = x(hdr, step)
            except OSError as e:
                raise from_errno(e.errno or errno.EIO, f"{self.name}: get-lsa") from e
            if rc:
                check_retval(self.name, "get-lsa", rc)
            if got != n:
                raise MailboxError(
                    f"{self.name}: get-lsa: device returned {got} bytes, asked for {n}", 0
                )
            done += n
            yield out if n == step else out[:n]  # out is exactly step bytes
            if progress is not None:
                progress(done, length)

    def read_labels(
        self, offset: int = 0, length: int | None = None, *, progress: Progress | None = None
    ) -> bytes:
        """The range as bytes (in memory: use :meth:`read_labels_into` for large ones)."""
        return b"".join(bytes(c) for c in self.iter_labels(offset, length, progress=progress))

    def read_labels_into(
        self,
        f: BinaryIO,
        offset: int = 0,
        length: int | None = None,
        *,
        progress: Progress | None = None,
    ) -> int:
        """Stream the range into a binary file; returns the bytes written."""
        n = 0
        for chunk in self.iter_labels(offset, length, progress=progress):
            f.write(chunk)
            n += len(chunk)
        return n

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

    def check_labels_writable(self) -> None:
        """DeviceBusy (before anything is read or sent) while the kernel owns the labels."""
        if self.labels_owned():
            raise self.labels_busy()

    def write_labels(
        self,
        source: bytes | BinaryIO | None,
        offset: int = 0,
        length: int | None = None,
        *,
        source_name: str = "input",
        verify: bool = False,
        progress: Progress | None = None,
        checked: bool = False,
    ) -> LabelWrite:
        """Set LSA over ``offset..offset+length`` from ``source`` (bytes, a binary
        file, or None for zeros) in commands of at most payload_max bytes (8-byte
        header + payload_max - 8 data bytes, as libcxl); ``verify`` reads the range
        back (Get LSA) and compares.

        Everything that can be checked is checked before a byte is sent: the range;
        a regular file's size (``os.fstat``, before reading it); that the kernel
        does not own the labels (before reading a byte, unless ``checked``: the
        caller did it); a pipe is copied to an unlinked temporary file first, never
        into memory. With ``length`` exactly that many bytes are taken (a shorter
        source is an error, more is ignored, as cxl-cli); without, the whole source,
        which must fit from the offset. The data streams through one reusable
        command buffer. A failure midway raises :class:`PartialWrite`, which says
        exactly which bytes were written. ``progress(done, total)`` follows each
        command.
        """
        if length is not None:
            offset, length = self.label_range(offset, length)
            room = length
        else:
            offset, room = self.label_range(offset, None)
        f: BinaryIO | None = None
        spool = False
        start = 0
        if isinstance(source, bytes | bytearray | memoryview):
            f = io.BytesIO(source)
            length = label_input_length(len(source), length, room, source_name)
        elif source is not None:
            f = source
            known = regular_size(f)
            if known is not None:
                start = f.tell()
                length = label_input_length(max(known - start, 0), length, room, source_name)
            else:
                spool = True
        else:
            length = room if length is None else length
        if not checked:
            self.check_labels_writable()
        with contextlib.ExitStack() as stack:
            if f is not None and spool:
                import tempfile

                tmp = stack.enter_context(tempfile.TemporaryFile(prefix="cxlctl-labels-"))
                length = spool_input(f, tmp, length, room, source_name)
                f = tmp
            assert length is not None
            commands = self._set_lsa(f, offset, length, progress)
            if verify:
                if f is not None:
                    f.seek(start)
                self._verify_labels(f, offset, length)
        return LabelWrite(self.name, offset, length, commands, verify)

    def zero_labels(
        self,
        offset: int = 0,
        length: int | None = None,
        *,
        verify: bool = False,
        progress: Progress | None = None,
        checked: bool = False,
    ) -> LabelWrite:
        """:meth:`write_labels` with zeros (``zero-labels``)."""
        return self.write_labels(
            None, offset, length, verify=verify, progress=progress, checked=checked
        )

    def _set_lsa(
        self, f: BinaryIO | None, offset: int, length: int, progress: Progress | None
    ) -> int:
        hdr = _LSA_HEAD.size
        step = self.payload_max - hdr
        if step <= 0:
            raise UsageError(f"{self.name}: payload_max {self.payload_max} cannot carry Set LSA")
        if self.recorder is not None:  # --dry-run: each Set LSA is recorded, none is sent
            return self._record_set_lsa(f, offset, length, step)
        x = tp.Exchange(self.transport, uapi.CommandId.SET_LSA, self.payload_max, 0)
        inp = x.input
        full = inp[hdr : hdr + step]  # the data of every command but maybe the last
        done = commands = in_doubt = 0
        try:
            while done < length:
                n = min(step, length - done)
                _LSA_HEAD.pack_into(inp, 0, offset + done, 0)
                if f is not None:
                    _read_exactly(f, full if n == step else inp[hdr : hdr + n], self.name)
                in_doubt = n  # from here until counted, an interrupt leaves it unknown
                try:
                    rc, _ = self._exchange(x, "set-lsa", hdr + n)
                except DeviceBusy as e:
                    in_doubt = 0
                    raise self.labels_busy() from e
                except (CxlError, OSError):
                    in_doubt = 0  # the ioctl failed: the command did not complete
                    raise
                if rc:  # not Success (0)
                    in_doubt = 0
                    check_retval(self.name, "set-lsa", rc)
                done += n
                commands += 1
                in_doubt = 0
                if progress is not None:
                    progress(done, length)
        except (CxlError, OSError, KeyboardInterrupt) as e:
            if not done and not in_doubt:  # the cause itself, saying nothing was written
                nothing = write_report(offset, 0, length)
                if isinstance(e, CxlError):
                    e.message = f"{e.message}; {nothing}"
                elif isinstance(e, KeyboardInterrupt):
                    e.cxlctl_done = nothing  # type: ignore[attr-defined]
                raise
            raise PartialWrite(
                self.name,
                offset=offset,
                written=done,
                length=length,
                cause=e,
                in_doubt=in_doubt,
                commands=commands,
                command="Set LSA command",
            ) from e
        return commands

    def _record_set_lsa(self, f: BinaryIO | None, offset: int, length: int, step: int) -> int:
        buf = bytearray(step)
        done = commands = 0
        while done < length:
            n = min(step, length - done)
            view = memoryview(buf)[:n]
            if f is not None:
                _read_exactly(f, view, self.name)
            self.run("set-lsa", _LSA_HEAD.pack(offset + done, 0) + bytes(view))
            done += n
            commands += 1
        return commands

    def _verify_labels(self, f: BinaryIO | None, offset: int, length: int) -> None:
        want = bytearray(self.payload_max)
        pos = offset
        for chunk in self.iter_labels(offset, length):
            n = len(chunk)
            expect = memoryview(want)[:n]
            if f is not None:
                _read_exactly(f, expect, self.name)
            if chunk != expect:
                bad = next(i for i in range(n) if chunk[i] != expect[i])
                raise CxlError(
                    f"{self.name}: verify failed: the label area differs from what was "
                    f"written at offset {pos + bad:#x} (all {length} bytes at {offset:#x} "
                    "were written; reading them back differs)"
                )
            pos += n

    def _exchange(self, x: tp.Exchange, what: str, in_size: int) -> tuple[int, int]:
        try:
            return x(in_size, len(x.output))
        except OSError as e:
            raise from_errno(e.errno or errno.EIO, f"{self.name}: {what}") from e

    def read_lsa(self, offset: int, length: int) -> bytes:
        """Get LSA over the range; an empty range is b"" (as before)."""
        return self.read_labels(offset, length) if length else b""

    # -- alert configuration (cxl set-alert-config) --
    def set_alert_config(self, request: SetAlertConfig) -> None:
        """Set Alert Configuration. Build the request with
        :func:`cxlctl.mailbox.health.set_alert_config_request` (which alerts to turn
        on with which threshold, which off)."""
        from .mailbox.health import encode_set_alert_config

        self.run(mb.SET_ALERT_CONFIG, encode_set_alert_config(request))


#: Get LSA input (offset, length) and the Set LSA header (offset, reserved): 8 bytes
_LSA_HEAD = struct.Struct("<II")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: bytes done so far of the total, after each command."""


class LabelWrite(Record):
    """What :meth:`Memdev.write_labels` did."""

    memdev: str
    offset: int
    length: int
    commands: int  #: Set LSA commands sent
    verified: bool


def regular_size(f: BinaryIO) -> int | None:
    """The size of a regular file behind ``f`` (``os.fstat``), else None."""
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def label_input_length(have: int, length: int | None, room: int, source: str) -> int:
    """The bytes to write from a source of ``have`` bytes: exactly ``length`` if
    given, else all of it, which must fit in ``room``."""
    if length is not None:
        if have < length:
            raise UsageError(f"write-labels: short input: {source} has {have} of {length} bytes")
        return length
    if have > room:
        raise UsageError(
            f"write-labels: {source} is larger than the {room} bytes of label area "
            "from the offset; nothing was written"
        )
    if not have:
        raise UsageError(f"write-labels: {source} is empty: nothing to write")
    return have


def spool_input(f: BinaryIO, tmp: BinaryIO, length: int | None, room: int, source: str) -> int:
    """Copy a pipe (at most one byte more than it may hold) to the unlinked temporary
    file ``tmp``, so its size is known before anything is sent, without holding it in
    memory; returns the bytes to write, with ``tmp`` rewound."""
    limit = length if length is not None else room + 1
    have = 0
    while have < limit:
        try:
            chunk = f.read(min(1 << 16, limit - have))
        except (OSError, ValueError) as e:
            raise UsageError(f"write-labels: cannot read {source}: {e}") from None
        if not chunk:
            break
        tmp.write(chunk)
        have += len(chunk)
    n = label_input_length(have, length, room, source)
    tmp.seek(0)
    return n


def _read_exactly(f: BinaryIO, into: memoryview, name: str) -> None:
    want = len(into)
    got = f.readinto(into) or 0  # type: ignore[attr-defined]  # mostly all at once
    while got < want:
        n = f.readinto(into[got:])  # type: ignore[attr-defined]
        if not n:
            raise CxlError(f"{name}: the input ended early ({got} of {want} bytes)")
        got += n


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


#: Busy and Retry Required (CXL 3.1 8.2.8.4.5.1: "a retry may resolve the issue"):
#: a command that changes nothing is sent again after each of these delays (seconds)
RETRY_CODES = frozenset({mb.ReturnCode.BUSY, mb.ReturnCode.RETRY_REQUIRED})
RETRY_DELAYS = (0.001, 0.002, 0.004)


def check_retval(name: str, what: str, rc: int, why: str | None = None) -> None:
    """MailboxError unless RC is Success; WHY says which field the device refused."""
    if rc != mb.ReturnCode.SUCCESS:
        raise MailboxError(
            f"{name}: {what}: device returned {mb.return_code_name(rc)} ({rc:#x})"
            + (f": {why}" if why else ""),
            rc,
        )
