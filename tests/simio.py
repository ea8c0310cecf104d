"""Issue hand-built ``struct cxl_send_command``s to anything with ``ioctl()``.

Keeps the payload buffers alive and lets a test set every field, including the
reserved ones and deliberately bad pointers -- the way the reference capture's
C program (cxlq) probed the kernel.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from cxlctl import uapi
from cxlctl.transport import Transport


@dataclass
class Outcome:
    errno: int  #: 0 on success
    retval: int
    out_size: int
    out: bytes  #: the first out_size bytes of the output buffer


def issue(
    dev: Transport,
    cmd_id: int,
    *,
    flags: int = 0,
    rsvd: int = 0,
    raw_opcode: int = 0,
    raw_rsvd: int = 0,
    data: bytes = b"",
    in_size: int | None = None,
    in_rsvd: int = 0,
    in_ptr: int | None = None,
    out_size: int = 2048,
    out_rsvd: int = 0,
    out_ptr: int | None = None,
    request: int = uapi.CXL_MEM_SEND_COMMAND,
) -> Outcome:
    n_in = len(data) if in_size is None else in_size
    in_buf = ctypes.create_string_buffer(data, max(n_in, len(data), 1))
    # the kernel never writes more than out.size, nor more than payload_max (<= 1 MiB)
    # when out.size is huge or "negative": size the buffer for the worst case
    out_buf = ctypes.create_string_buffer(out_size if 0 < out_size <= 1 << 20 else 1 << 20)
    s = uapi.cxl_send_command()
    s.id, s.flags = cmd_id, flags
    if rsvd:
        s.rsvd = rsvd
    else:
        s.raw.opcode, s.raw.rsvd = raw_opcode, raw_rsvd
    s.in_.size, s.in_.rsvd = n_in, in_rsvd
    s.in_.payload = ctypes.addressof(in_buf) if in_ptr is None else in_ptr
    s.out.size, s.out.rsvd = out_size, out_rsvd
    s.out.payload = ctypes.addressof(out_buf) if out_ptr is None else out_ptr
    arg = bytearray(bytes(s))
    try:
        dev.ioctl(request, arg)
    except OSError as e:
        return Outcome(e.errno or -1, int(s.retval), int(s.out.size), b"")
    done = uapi.cxl_send_command.from_buffer(arg)
    n = int(done.out.size)
    return Outcome(0, int(done.retval), n, out_buf.raw[: min(n, len(out_buf))])


@dataclass(frozen=True)
class Sent:
    """One SEND request as a Recorder saw it."""

    id: int
    payload: bytes
    out_size: int
    flags: int = 0


class Recorder:
    """A Transport that records SEND requests and delegates to another (a SimDevice)."""

    def __init__(self, dev: Transport, log: list[Sent]) -> None:
        self.name = dev.name
        self.dev = dev
        self.log = log

    def ioctl(self, request: int, arg: bytearray) -> int:
        if request == uapi.CXL_MEM_SEND_COMMAND:
            s = uapi.cxl_send_command.from_buffer_copy(bytes(arg))
            n = int(s.in_.size)
            data = ctypes.string_at(int(s.in_.payload), n) if n else b""
            self.log.append(Sent(int(s.id), data, int(s.out.size), int(s.flags)))
        return self.dev.ioctl(request, arg)

    def close(self) -> None:
        self.dev.close()
