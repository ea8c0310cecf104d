"""The seam: one interface, two implementations.

:class:`KernelTransport` opens ``/dev/cxl/memN`` and issues the two ioctls with
``fcntl.ioctl``; :class:`cxlctl.sim.SimDevice` answers the very same calls in
process.  :func:`query` and :func:`send` pack and unpack the uapi structures once,
for both, so the simulator exercises the real code path.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
from typing import Protocol

from . import uapi
from .record import Record

SYSFS_CXL_DEVICES = "/sys/bus/cxl/devices"
DEV_CXL = "/dev/cxl"


class Transport(Protocol):
    """Anything that answers the memdev ioctls like ``fcntl.ioctl(fd, req, arg, True)``."""

    name: str

    def ioctl(self, request: int, arg: bytearray) -> int: ...

    def close(self) -> None: ...


class CommandInfo(Record):
    """One ``struct cxl_command_info`` from QUERY."""

    index: int
    id: int
    flags: int
    size_in: int
    size_out: int

    @property
    def enabled(self) -> bool:
        return bool(self.flags & uapi.CXL_MEM_COMMAND_FLAG_ENABLED)

    @property
    def exclusive(self) -> bool:
        return bool(self.flags & uapi.CXL_MEM_COMMAND_FLAG_EXCLUSIVE)


#: The largest mailbox payload the CXL spec allows (payload_max is 2^n, n <= 20).
MAX_PAYLOAD = 1 << 20


class SendRequest(Record):
    """Everything that goes into one ``struct cxl_send_command``.

    The reserved fields and ``in_size`` can be set for probing the kernel's checks;
    buffers are always at least as large as the sizes the kernel is told.
    """

    id: int
    payload: bytes = b""
    out_size: int = 0
    flags: int = 0
    raw_opcode: int = 0
    in_size: int | None = None  #: in.size if not len(payload) (buffer is padded)
    rsvd: int = 0
    raw_rsvd: int = 0
    in_rsvd: int = 0
    out_rsvd: int = 0

    def __post_init__(self) -> None:
        for what, n in (("out.size", self.out_size), ("in.size", self.in_len)):
            if not 0 <= n <= MAX_PAYLOAD:
                raise ValueError(f"{what}={n} is outside 0..{MAX_PAYLOAD}")

    @property
    def in_len(self) -> int:
        return len(self.payload) if self.in_size is None else self.in_size

    def struct(self, in_ptr: int = 0, out_ptr: int = 0) -> uapi.cxl_send_command:
        s = uapi.cxl_send_command()
        s.id = self.id
        s.flags = self.flags
        if self.id == uapi.CommandId.RAW:
            s.raw.opcode = self.raw_opcode
            s.raw.rsvd = self.raw_rsvd
        if self.rsvd:
            s.rsvd = self.rsvd
        s.in_.size = self.in_len
        s.in_.rsvd = self.in_rsvd
        s.in_.payload = in_ptr
        s.out.size = self.out_size
        s.out.rsvd = self.out_rsvd
        s.out.payload = out_ptr
        return s


class SendResult(Record):
    retval: int  #: the device's mailbox return code
    out: bytes  #: the output payload, exactly ``out.size`` bytes as the kernel reported


def query(t: Transport) -> list[CommandInfo]:
    """CXL_MEM_QUERY_COMMANDS: ask for the count, then for that many entries."""
    head = uapi.query_buffer(0)
    t.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, head)
    n = int(uapi.cxl_mem_query_commands.from_buffer(head).n_commands)
    if n == 0:
        return []
    if n > 0xFFFF:  # never trust a size from the other side
        raise OSError(errno.EOVERFLOW, f"QUERY reported {n} commands")
    buf = uapi.query_buffer(n)
    t.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, buf)
    entries = (uapi.cxl_command_info * n).from_buffer(buf, uapi.QUERY_HEADER_SIZE)
    return [
        CommandInfo(i, int(e.id), int(e.flags), int(e.size_in), int(e.size_out))
        for i, e in enumerate(entries)
    ]


def send(t: Transport, req: SendRequest) -> SendResult:
    """CXL_MEM_SEND_COMMAND with bounded, process-owned payload buffers.

    The output buffer is exactly ``req.out_size`` bytes; the ``out.size`` the
    kernel writes back is checked against it before any byte is read.
    """
    n_in = max(len(req.payload), req.in_len)
    in_buf = ctypes.create_string_buffer(req.payload, n_in) if n_in else None
    out_buf = ctypes.create_string_buffer(req.out_size) if req.out_size else None
    s = req.struct(
        ctypes.addressof(in_buf) if in_buf is not None else 0,
        ctypes.addressof(out_buf) if out_buf is not None else 0,
    )
    arg = bytearray(s)
    t.ioctl(uapi.CXL_MEM_SEND_COMMAND, arg)
    done = uapi.cxl_send_command.from_buffer(arg)
    got = int(done.out.size)
    if got > req.out_size:
        raise OSError(
            errno.EOVERFLOW, f"kernel reported out.size={got} for a {req.out_size}-byte buffer"
        )
    out = out_buf.raw[:got] if out_buf is not None else b""
    return SendResult(int(done.retval), out)


_RETVAL_OFFSET = uapi.SEND_RETVAL_OFFSET
_OUT_SIZE_OFFSET = uapi.SEND_OUT_SIZE_OFFSET
#: retval, in.size, in.rsvd, in.payload, out.size: one pack before and one unpack
#: after each ioctl (the kernel writes back retval and out.size)
_EXCHANGED = struct.Struct("<IIIQI")
assert _RETVAL_OFFSET + _EXCHANGED.size == _OUT_SIZE_OFFSET + 4
_SEND = uapi.CXL_MEM_SEND_COMMAND


class PreparedCommand:
    """One kernel command, ready to be sent again and again.

    The ``struct cxl_send_command`` argument and both payload buffers are allocated once
    (the input buffer with the first input); a call packs the struct with one
    :class:`struct.Struct` (the kernel writes ``retval`` and ``out.size`` back into it),
    copies the input in, issues the ioctl and slices the output. What the kernel checks
    itself (sizes against its command table, flags, reserved fields) is not checked
    again here; what keeps this process safe is: the input never exceeds the buffer, and
    the ``out.size`` the kernel reports is checked against the buffer before a byte is
    read. Not thread-safe: one per thread (a :class:`~cxlctl.memdev.Memdev` keeps one
    per command).
    """

    __slots__ = (
        "_arg", "_blank", "_in", "_in_cap", "_in_ptr", "_ioctl", "_out_ptr", "_out_size",
        "_static",
    )  # fmt: skip

    def __init__(
        self,
        t: Transport,
        cmd_id: int,
        out_size: int,
        in_capacity: int,
        *,
        raw_opcode: int = 0,
        flags: int = 0,
    ) -> None:
        for what, n in (("out.size", out_size), ("input capacity", in_capacity)):
            if not 0 <= n <= MAX_PAYLOAD:
                raise ValueError(f"{what}={n} is outside 0..{MAX_PAYLOAD}")
        self._ioctl = t.ioctl
        self._in_cap = in_capacity
        # the input buffer: made for the first input (most commands never have one)
        self._in: ctypes.Array[ctypes.c_char] | None = None
        self._in_ptr = 0
        out = ctypes.create_string_buffer(out_size) if out_size else None
        self._out_ptr = ctypes.addressof(out) if out is not None else 0
        self._out_size = out_size
        # the struct of a call without input, packed once: a call copies it in (the
        # kernel wrote retval and out.size into the last one)
        self._blank = uapi.SEND_FORMAT.pack(
            cmd_id, flags, raw_opcode, 0, 0, 0, 0, 0, out_size, 0, self._out_ptr
        )
        self._arg = bytearray(self._blank)
        # everything but in.size: id, flags, raw, in.payload, out.size, out.payload
        self._static = (cmd_id, flags, raw_opcode, out_size, out)

    @property
    def out_size(self) -> int:
        return self._out_size

    def __call__(self, payload: bytes = b"") -> tuple[int, bytes]:
        """Send; (mailbox return code, output payload of the ``out.size`` the kernel
        reported). ``OSError`` with the ioctl's errno on failure."""
        arg = self._arg
        if payload:
            n = len(payload)
            if n > self._in_cap:
                raise ValueError(f"{n}-byte input for a {self._in_cap}-byte buffer")
            if self._in is None:
                self._in = ctypes.create_string_buffer(self._in_cap)
                self._in_ptr = ctypes.addressof(self._in)
            ctypes.memmove(self._in_ptr, payload, n)
            cid, flags, opcode, out_size, _ = self._static
            uapi.SEND_FORMAT.pack_into(
                arg, 0, cid, flags, opcode, 0, 0, n, 0, self._in_ptr, out_size, 0, self._out_ptr
            )
        else:
            arg[:] = self._blank
        self._ioctl(_SEND, arg)
        retval, _, _, _, got = _EXCHANGED.unpack_from(arg, _RETVAL_OFFSET)
        if got > self._out_size:
            raise OSError(
                errno.EOVERFLOW,
                f"kernel reported out.size={got} for a {self._out_size}-byte buffer",
            )
        return retval, (ctypes.string_at(self._out_ptr, got) if got else b"")


class Exchange:
    """One SEND command issued many times: the ``struct cxl_send_command`` and both
    payload buffers are allocated once and reused, for loops such as bulk label
    transfers (131,072 commands for a 256 MiB label area at payload_max 2048).

    Fill :attr:`input` (a writable view of the input buffer), call with the sizes,
    read the answer from :attr:`output` (valid until the next call). Same checks as
    :func:`send`: out.size from the other side is never trusted beyond the buffer.
    """

    __slots__ = (
        "_arg", "_in", "_in_cap", "_in_ptr", "_ioctl", "_out", "_out_cap", "command_id",
        "input", "output", "transport",
    )  # fmt: skip

    def __init__(self, t: Transport, command_id: int, in_capacity: int, out_capacity: int) -> None:
        for what, n in (("input", in_capacity), ("output", out_capacity)):
            if not 0 <= n <= MAX_PAYLOAD:
                raise ValueError(f"{what} capacity {n} is outside 0..{MAX_PAYLOAD}")
        self.transport = t
        self._ioctl = t.ioctl
        self.command_id = command_id
        self._in_cap, self._out_cap = in_capacity, out_capacity
        self._in = ctypes.create_string_buffer(max(in_capacity, 1))
        self._out = ctypes.create_string_buffer(max(out_capacity, 1))
        self.input = memoryview(self._in).cast("B")[:in_capacity]
        self.output = memoryview(self._out).cast("B")[:out_capacity]
        self._arg = bytearray(uapi.SEND_SIZE)
        self._in_ptr = ctypes.addressof(self._in)
        uapi.SEND_FORMAT.pack_into(
            self._arg, 0, command_id, 0, 0, 0, 0, 0, 0, self._in_ptr,
            0, 0, ctypes.addressof(self._out),
        )  # fmt: skip

    def __call__(self, in_size: int, out_size: int) -> tuple[int, int]:
        """Issue the command with ``in_size`` input bytes and room for ``out_size``
        output bytes; returns (mailbox return code, out.size)."""
        if not (0 <= in_size <= self._in_cap and 0 <= out_size <= self._out_cap):
            raise ValueError(f"sizes {in_size}/{out_size} do not fit the buffers")
        arg = self._arg
        _EXCHANGED.pack_into(arg, _RETVAL_OFFSET, 0, in_size, 0, self._in_ptr, out_size)
        self._ioctl(_SEND, arg)
        retval, _, _, _, got = _EXCHANGED.unpack_from(arg, _RETVAL_OFFSET)
        if got > out_size:
            raise OSError(
                errno.EOVERFLOW, f"kernel reported out.size={got} for a {out_size}-byte buffer"
            )
        return retval, got


class KernelTransport:
    """``/dev/cxl/memN`` through ``fcntl.ioctl``."""

    def __init__(self, name: str, *, dev_root: str = DEV_CXL, sysfs_root: str = SYSFS_CXL_DEVICES):
        self.name = name
        self.path = os.path.join(dev_root, name)
        self._fd = -1
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISCHR(st.st_mode):
                raise OSError(errno.ENODEV, f"{self.path} is not a character device")
            want = _sysfs_devnum(os.path.join(sysfs_root, name, "dev"))
            have = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if want is not None and want != have:
                raise OSError(
                    errno.ENODEV,
                    f"{self.path} is {have[0]}:{have[1]} but sysfs says {name} is "
                    f"{want[0]}:{want[1]}",
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def ioctl(self, request: int, arg: bytearray) -> int:
        # the hot path of every command: no import, no conversion (a mutable
        # buffer makes fcntl.ioctl return the ioctl's int)
        rc: int = fcntl.ioctl(self._fd, request, arg, True)
        return rc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> KernelTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sysfs_devnum(path: str) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            major, minor = f.read().strip().split(":")
        return int(major), int(minor)
    except (OSError, ValueError):
        return None
