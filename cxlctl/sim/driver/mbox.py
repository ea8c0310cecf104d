"""The driver half: what ``drivers/cxl/core/mbox.c`` (Linux 6.12) does with a request.

``cxl_query_cmd()`` and ``cxl_send_cmd()``: the command table, the enabled bits
from the device's CEL, the exclusive bits the nvdimm bridge claims, every
size/flag/reserved-field rule in the kernel's order, the RAW policy, and the
copy_from_user/copy_to_user of payloads (a bad pointer is ``EFAULT``, never a crash).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import mailbox as mb
from ... import uapi
from ...mailbox.linux import REFUSALS, payload_refused
from ...record import Record
from ...uapi import CXL_VARIABLE_PAYLOAD as VAR
from ...uapi import CommandId as K
from ..device.model import RC, FileSlice, TypeThreeDevice, cel_opcodes

# --- copy_from_user / copy_to_user without crashing on bad pointers ----------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.read.restype = ctypes.c_ssize_t
_libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.write.restype = ctypes.c_ssize_t
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
_libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.munmap.restype = ctypes.c_int
_PROT_READ, _PROT_WRITE, _MAP_SHARED = 0x1, 0x2, 0x01  # <sys/mman.h> (no mmap module)
_MAP_FAILED = ctypes.c_void_p(-1).value
_F_ADD_SEALS, _F_SEAL_SHRINK = 1033, 0x0002  # <fcntl.h>: the bounce file never shrinks
_CHUNK = 32 * 1024  # half the default pipe capacity


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _untyped(name: str) -> Any:
    """A libc function called with ctypes instances only (no ``argtypes``: their
    per-call conversion costs more than the system call); ``None`` if missing."""
    try:
        fn = _libc[name]
    except AttributeError:
        return None
    fn.restype = ctypes.c_ssize_t
    return fn


_process_vm_readv = _untyped("process_vm_readv")
_process_vm_writev = _untyped("process_vm_writev")
_ONE, _NO_FLAGS = ctypes.c_ulong(1), ctypes.c_ulong(0)  # liovcnt/riovcnt, flags
#: the local and the remote ``struct iovec``, packed in one call
_IOV_PAIR = struct.Struct("@PNPN")
assert _IOV_PAIR.size == 2 * ctypes.sizeof(_IoVec)

#: (address, length) -> a one-element iovec tuple for ``os.preadv``/``os.pwritev``: a
#: ctypes array over that user range (made without touching it: only the kernel
#: reads or writes it, and checks it). A command's buffers stay where they are from
#: one call to the next (PreparedCommand, Exchange), so each is made once
_RANGES: dict[tuple[int, int], tuple[ctypes.Array[ctypes.c_char]]] = {}
_RANGES_MAX = 256


def _user_range(addr: int, n: int) -> tuple[ctypes.Array[ctypes.c_char]]:
    key = (addr, n)
    got = _RANGES.get(key)
    if got is None:
        if len(_RANGES) >= _RANGES_MAX:
            _RANGES.clear()
        got = _RANGES[key] = ((ctypes.c_char * n).from_address(addr),)
    return got


#: this process's pid, updated in a child after ``fork()`` (``os.register_at_fork``):
#: what :meth:`UserMemory._ensure` compares, with no system call per copy (a fork
#: outside Python, without its at-fork hooks, would not be seen)
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class UserMemory:
    """Reads and writes this process's memory so that the kernel does the access
    check, as copy_from_user/copy_to_user: an unmapped or read-only address gives
    ``EFAULT``, never a crash.

    Three ways, the first that works (or ``method``):

    * ``memfd``: a private memfd is the bounce buffer, mapped read-write into this
      process. copy_from_user is one ``pwritev(2)`` from the user address into it,
      read back through the mapping; copy_to_user stores our bytes into the mapping
      (a memory copy, no system call), then one ``preadv(2)`` copies them to the user
      address (the iovec: a ctypes array over the user range, which nothing but the
      kernel touches). The kernel checks the user address in that one call as in
      copy_from_user/copy_to_user (``EFAULT``, or a short count where a range runs
      into a bad page). The file's pages are allocated (``pwrite`` of zeros, where
      a full memory is a clean ``OSError``) before it is mapped, and sealed against
      shrinking, so touching the mapping cannot raise SIGBUS.
    * ``vm``: ``process_vm_readv``/``process_vm_writev`` on our own pid: one system
      call per copy, which fails (or comes back short) exactly where the page
      tables say no (a little dearer: the kernel looks the process up and pins its
      pages).
    * ``pipe``: ``write(2)`` from the user address into a pipe, ``read(2)`` to it,
      two system calls that check the same way.

    Every simulated command copies through here (a bulk label transfer is 131,072
    of them): the calls take prepared ctypes arguments, the bounce buffers are
    reused while they are large enough.
    """

    def __init__(self, method: str = "auto") -> None:
        if method not in ("auto", "memfd", "vm", "pipe"):
            raise ValueError(f"unknown copy method {method!r} (auto, memfd, vm, pipe)")
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._iov = (_IoVec * 2)()  # [local, remote]
        self._lp = ctypes.c_void_p(ctypes.addressof(self._iov))
        self._rp = ctypes.c_void_p(ctypes.addressof(self._iov) + ctypes.sizeof(_IoVec))
        self._cap = 0
        self._scratch = bytearray()
        self._view = memoryview(self._scratch)  # keeps the bytearray from moving
        self._addr = 0
        self._fd = -1  # the memfd, its read-write mapping and a view of it
        self._map = self._map_cap = 0
        self._map_view = memoryview(b"")
        self.method = "pipe"
        if method in ("auto", "memfd"):
            self.method = self._probe("memfd", self._memfd_open)
        if method in ("auto", "vm") and self.method == "pipe":
            self.method = self._probe("vm", lambda: _process_vm_readv and _process_vm_writev)
        if method not in ("auto", "pipe") and self.method != method:
            raise OSError(errno.ENOSYS, f"{method} copies are not available")

    def _probe(self, method: str, setup: Callable[[], Any]) -> str:
        """``method`` if its set-up works and it copies a probe, else "pipe"."""
        probe = ctypes.create_string_buffer(b"cxl", 3)
        try:
            if setup():
                self.method = method
                if self.copy_from_user(ctypes.addressof(probe), 3) == b"cxl":
                    return method
        except (OSError, AttributeError):  # no os.memfd_create, seccomp, ...
            pass
        self._memfd_close()
        return "pipe"

    def _memfd_open(self, cap: int = 65536) -> bool:
        self._memfd_close()
        self._fd = os.memfd_create("cxlctl-sim-user-copy", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        fcntl.fcntl(self._fd, _F_ADD_SEALS, _F_SEAL_SHRINK)
        self._memfd_grow(cap)
        return True

    def _memfd_grow(self, n: int) -> None:
        """At least ``n`` bytes, allocated (written) before they are mapped."""
        cap = max(n, 2 * self._map_cap)
        os.pwrite(self._fd, bytes(cap - self._map_cap), self._map_cap)
        self._memfd_unmap()
        addr = _libc.mmap(None, cap, _PROT_READ | _PROT_WRITE, _MAP_SHARED, self._fd, 0)
        if addr in (None, _MAP_FAILED):
            raise _err(ctypes.get_errno() or errno.ENOMEM)
        self._map, self._map_cap = addr, cap
        self._map_view = memoryview((ctypes.c_char * cap).from_address(addr)).cast("B")

    def _memfd_unmap(self) -> None:
        if self._map:
            self._map_view.release()
            _libc.munmap(self._map, self._map_cap)
            self._map = 0

    def _memfd_close(self) -> None:
        self._memfd_unmap()
        self._map_cap = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _grow(self, n: int) -> None:
        self._view.release()
        self._scratch = bytearray(max(n, 4096))
        self._view = memoryview(self._scratch)
        self._cap = len(self._scratch)
        self._addr = ctypes.addressof(ctypes.c_char.from_buffer(self._scratch))

    def _vm_write(self, addr: int, data: bytes) -> None:
        n = len(data)
        if n > self._cap:
            self._grow(n)
        self._view[:n] = data
        _IOV_PAIR.pack_into(self._iov, 0, self._addr, n, addr, n)
        if _process_vm_writev(self._pid, self._lp, _ONE, self._rp, _ONE, _NO_FLAGS) != n:
            raise _fault()

    def _drain(self) -> None:
        try:
            while os.read(self._r, 65536):
                pass
        except BlockingIOError:
            pass

    def _ensure(self) -> None:
        """Fork safety: the pipe, the lock and the pid (process_vm_readv's target!)
        belong to the process that made them.  A child after ``fork()`` makes its own
        on first use: a shared pipe would mix two processes' payloads, and the
        parent's pid would make the child copy the parent's memory. A fork is
        seen through ``_pid``, which ``os.register_at_fork`` updates in the child
        (every fork Python makes: ``os.fork``, multiprocessing, a subprocess's
        preexec_fn), so a copy costs no ``getpid()``."""
        if self._pid == _pid:  # no fork since
            return
        for fd in (self._r, self._w):  # our inherited copies; the parent keeps its own
            with contextlib.suppress(OSError):
                os.close(fd)
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()  # one held by another thread at fork() stays held
        self._pid = os.getpid()
        _after_fork()  # the module's pid agrees (already, after a fork Python made)
        if self._fd >= 0:  # the memfd is shared with the parent: a new one of our own
            self._memfd_open(self._map_cap)

    def copy_from_user(self, addr: int, n: int) -> bytes:
        if self._pid != _pid:  # forked since (the check of _ensure(), without a call)
            self._ensure()
        with self._lock:
            method = self.method
            if method == "memfd":
                if n > self._map_cap:
                    self._memfd_grow(n)
                try:  # the kernel reads the user range (EFAULT if it cannot)
                    got = os.pwritev(self._fd, _user_range(addr, n), 0)
                except OSError as e:
                    raise _copy_error(e) from None
                if got != n:
                    raise _fault()
                return bytes(self._map_view[:n])
            if method == "vm":
                if n > self._cap:
                    self._grow(n)
                _IOV_PAIR.pack_into(self._iov, 0, self._addr, n, addr, n)
                got = _process_vm_readv(self._pid, self._lp, _ONE, self._rp, _ONE, _NO_FLAGS)
                if got != n:
                    if got < 0 and ctypes.get_errno() not in (errno.EFAULT, errno.ESRCH):
                        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                    raise _fault()
                return bytes(self._view[:n])
            out = bytearray()
            while len(out) < n:
                want = min(_CHUNK, n - len(out))
                got = _libc.write(self._w, ctypes.c_void_p(addr + len(out)), want)
                if got != want:
                    self._drain()
                    raise _fault()
                out += os.read(self._r, want)
        return bytes(out)

    def copy_to_user(self, addr: int, data: bytes) -> None:
        if self._pid != _pid:
            self._ensure()
        with self._lock:
            if self.method == "memfd":
                n = len(data)
                if n > self._map_cap:
                    self._memfd_grow(n)
                self._map_view[:n] = data  # into the bounce buffer: no system call
                iov = _RANGES.get((addr, n)) or _user_range(addr, n)
                try:  # the kernel writes the user range (EFAULT if it cannot)
                    got = os.preadv(self._fd, iov, 0)
                except OSError as e:
                    raise _copy_error(e) from None
                if got != n:
                    raise _fault()
                return
            if self.method == "vm":
                self._vm_write(addr, data)
                return
            for pos in range(0, len(data), _CHUNK):
                chunk = data[pos : pos + _CHUNK]
                os.write(self._w, chunk)
                got = _libc.read(self._r, ctypes.c_void_p(addr + pos), len(chunk))
                if got != len(chunk):
                    self._drain()
                    raise _fault()

    def copy_file_to_user(self, addr: int, src: FileSlice) -> None:
        """copy_to_user of bytes still in a file: one ``preadv(2)`` straight into the
        user address, which the kernel checks (``EFAULT``) as it would the copy."""
        try:
            got = os.preadv(src.fd, _user_range(addr, src.n), src.offset)
        except OSError as e:
            raise _copy_error(e) from None
        if got < src.n:  # the file ends early (truncated meanwhile): the rest is zeros
            self.copy_to_user(addr + got, bytes(src.n - got))

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)
        self._memfd_close()


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


def _copy_error(e: OSError) -> OSError:
    """A failed preadv/pwritev of a user range: EFAULT as the driver says it."""
    return _fault() if e.errno == errno.EFAULT else _err(e.errno or errno.EIO)


SEND_FORMAT = uapi.SEND_FORMAT
_U32 = struct.Struct("<I")
_RETVAL_OFFSET = uapi.SEND_RETVAL_OFFSET
_OUT_SIZE_OFFSET = uapi.SEND_OUT_SIZE_OFFSET

# --- the driver ------------------------------------------------------------------


class MemCommand(Record):
    """One ``CXL_CMD()`` entry of ``cxl_mem_commands[]`` in Linux 6.12."""

    id: int
    opcode: int
    size_in: int
    size_out: int


#: ``cxl_mem_commands[]`` as compiled without CONFIG_CXL_MEM_RAW_COMMANDS, from the
#: catalogue's records with a kernel id (their kernel sizes); unlisted indices (RAW,
#: the deprecated ids) are zeroed entries.
MEM_COMMANDS: tuple[MemCommand, ...] = tuple(
    MemCommand(
        c.kernel_id, c.opcode, mb.kernel_size(c.kernel_size_in), mb.kernel_size(c.kernel_size_out)
    )
    for c in mb.CATALOGUE
    if c.kernel_id is not None
)
_RAW_ENTRY = MemCommand(K.RAW, 0, VAR, VAR)
_ZERO = MemCommand(0, 0, 0, 0)

#: ``cxl_disabled_raw_commands[]``, from the records (``raw_disabled``)
DISABLED_RAW_OPCODES: frozenset[int] = frozenset(c.opcode for c in mb.CATALOGUE if c.raw_disabled)
#: ``security_command_sets[]``: Sanitize, PMem security, security passthrough.
SECURITY_COMMAND_SETS: frozenset[int] = frozenset({0x44, 0x45, 0x46})
#: CXL_MAILBOX_TIMEOUT_MS (drivers/cxl/cxlmem.h): how long the driver waits for the doorbell
MAILBOX_TIMEOUT_MS = 2000
#: CXL_CMD_FLAG_FORCE_ENABLE entries of cxl_mem_commands[]
FORCE_ENABLED: frozenset[int] = frozenset(
    c.kernel_id for c in mb.CATALOGUE if c.kernel_id is not None and c.kernel_force_enable
)
#: what cxl_pmem's cxl_nvdimm_probe() claims (set_exclusive_cxl_commands()), from the
#: records (``bridge_exclusive``)
BRIDGE_EXCLUSIVE: frozenset[int] = frozenset(
    c.kernel_id for c in mb.CATALOGUE if c.bridge_exclusive and c.kernel_id is not None
)

_NONE: frozenset[int] = frozenset()


def _table(raw_commands: bool) -> tuple[MemCommand, ...]:
    table = [_ZERO] * K.MAX
    for c in MEM_COMMANDS:
        table[c.id] = c
    if raw_commands:
        table[K.RAW] = _RAW_ENTRY
    return tuple(table)


#: ``cxl_mem_commands[]`` indexed by id, without and with RAW: built once, shared by
#: every driver (its entries are immutable records)
_TABLES: dict[bool, tuple[MemCommand, ...]] = {False: _table(False), True: _table(True)}
#: CEL -> the ids it enables (plus the force-enabled ones): a run of many memdevs
#: has a few distinct CELs (one per profile), each walked once
_ENABLED: dict[tuple[int, ...], frozenset[int]] = {}
#: the last (CEL, ids) looked up, by identity
_ENABLED_LAST: list[tuple[tuple[int, ...], frozenset[int]]] = [((), FORCE_ENABLED)]


def enabled_ids(cel: tuple[int, ...]) -> frozenset[int]:
    """The command ids cxl_walk_cel() and cxl_enumerate_cmds() enable for ``cel``."""
    last_cel, last = _ENABLED_LAST[0]
    if last_cel is cel:  # the CEL make_devices() gave every memdev: no hashing
        return last
    key = cel if type(cel) is tuple else tuple(cel)
    got = _ENABLED.get(key)
    if got is None:
        ops = cel_opcodes(key)
        got = frozenset(c.id for c in MEM_COMMANDS if c.opcode in ops) | FORCE_ENABLED
        if len(_ENABLED) < 64:  # CELs a test makes up: a bounded cache
            _ENABLED[key] = got
    if key is cel:  # a tuple (immutable): the same object gives the same ids
        _ENABLED_LAST[0] = (cel, got)
    return got


#: opcodes the driver treats specially (module constants: looked up on every ioctl)
_SANITIZE, _GET_HEALTH_INFO = mb.SANITIZE.opcode, mb.GET_HEALTH_INFO.opcode
#: the opcodes cxl_payload_from_user_allowed() looks at (the others always pass)
_REFUSING: frozenset[int] = frozenset(REFUSALS)
# what every SEND compares against, as plain ints (no enum or module attribute lookup)
_QUERY, _SEND = uapi.CXL_MEM_QUERY_COMMANDS, uapi.CXL_MEM_SEND_COMMAND
_K_RAW, _K_MAX = int(K.RAW), int(K.MAX)
_FLAG_MASK = uapi.CXL_MEM_COMMAND_FLAG_MASK
_SEND_SIZE = uapi.SEND_SIZE
_SUCCESS, _BG_STARTED = int(RC.SUCCESS), int(RC.BACKGROUND_COMMAND_STARTED)


class SimDriver:
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
        # cxl_pci holds the char device: while it is attached (cxlmd->cxlds set) the
        # ioctls work; without it they fail with ENXIO (cxl_memdev_ioctl())
        self.attached = True
        # cxl_mem bound to the memdev (`cxl disable-memdev` unbinds it). The ioctls
        # do not depend on it: only the nvdimm bridge below it claims commands
        self.bound = True
        self.mem = memory or _user_memory()
        #: the doorbell stays set until then (time.monotonic()): a slow device
        self.doorbell_busy_until = 0.0
        #: the command table, shared by every driver with this RAW setting (immutable)
        self.table: tuple[MemCommand, ...] = _TABLES[bool(raw_commands)]
        #: cxl_walk_cel(): what the device's CEL lists; cxl_enumerate_cmds()
        #: force-enables the commands the driver itself needs, CEL or not (shared by
        #: every driver over the same CEL: immutable)
        self.enabled: frozenset[int] = enabled_ids(device.cel)
        # cxl_pmem's nvdimm bridge claims the label area and the shutdown state
        if nvdimm_bridge is None:
            nvdimm_bridge = device.config.persistent_bytes > 0
        self.nvdimm_bridge = nvdimm_bridge
        #: the bits the bridge claims (immutable: unbind/bind rebind it, never mutate)
        self.exclusive: frozenset[int] = BRIDGE_EXCLUSIVE if nvdimm_bridge else _NONE

    def _mbox_wait(
        self, opcode: int, rc: int, out: bytes | FileSlice
    ) -> tuple[int, bytes | FileSlice]:
        """__cxl_pci_mbox_send_cmd() #4-#8 after the device answered ``rc``, ``out``:
        wait for the doorbell to clear (at most the mailbox timeout), handle
        Background Command Started (userspace commands get no polls: done at once, or
        ETIMEDOUT). :meth:`_send` rings the doorbell (runs the device) and calls
        this only for a slow device or a background start: the common case inline."""
        dev = self.device
        latency = dev.latency_ms
        if latency:  # cxl_pci_mbox_wait_for_doorbell()
            scale = dev.config.time_scale
            waited = min(latency, MAILBOX_TIMEOUT_MS)
            if waited * scale:
                time.sleep(waited * scale / 1000)
            if latency > MAILBOX_TIMEOUT_MS:
                if latency == float("inf"):
                    # the device is gone: pciehp removes it, cxl_memdev_ioctl()
                    # finds no cxlds from now on (ENXIO)
                    self.attached = False
                else:  # it still works on it: the doorbell stays set meanwhile
                    rest = (latency - MAILBOX_TIMEOUT_MS) * scale / 1000
                    self.doorbell_busy_until = time.monotonic() + rest
                raise _err(errno.ETIMEDOUT)  # "mailbox timeout"
        if rc == _BG_STARTED and opcode != _SANITIZE:
            # mbox_cmd->poll_count is 0 for a command from userspace
            if not dev.background_complete():
                raise _err(errno.ETIMEDOUT)  # "timeout waiting for background (0 ms)"
            rc = dev.bg_last[1]
        return rc, out

    # -- cxl_mem unbind/bind (sysfs drivers/cxl_mem/unbind, bind) --
    def unbind(self) -> None:
        """cxl_mem unbound: its devm actions remove the cxl_nvdimm child, whose
        remove clears the exclusive bits (clear_exclusive_cxl_commands())."""
        self.bound = False
        self.exclusive = _NONE

    def bind(self) -> None:
        """cxl_mem_probe(): a device with pmem gets its cxl_nvdimm again, whose
        probe claims the label and shutdown-state commands."""
        self.bound = True
        self.exclusive = BRIDGE_EXCLUSIVE if self.nvdimm_bridge else _NONE

    # -- ioctl entry (cxl_memdev_ioctl) --
    def ioctl(self, request: int, arg: Any) -> int:
        """``fcntl.ioctl(fd, request, arg, True)``: ``arg`` must be a writable buffer
        (the kernel writes the struct back).  Anything else fails as the kernel's
        copy_from_user/copy_to_user would, with ``OSError``, never ``TypeError``:
        an int or None is a bad address (``EFAULT``), a read-only buffer such as
        ``bytes`` cannot take the answer (``EFAULT``), a non-buffer is ``EINVAL``.

        The driver works on a private copy that is copied back, so no exception
        (which keeps the frame alive) can leave the caller's bytearray locked
        against resizing (``BufferError``)."""
        if not self.attached:
            raise _err(errno.ENXIO)
        if request != _SEND and request != _QUERY:
            raise _err(errno.ENOTTY)
        if type(arg) is bytearray:  # the common case: no view, one copy
            buf = bytearray(arg)
            try:
                return self._send(buf) if request == _SEND else self._query(buf)
            finally:
                arg[: len(buf)] = buf
        if arg is None or isinstance(arg, (int, bytes)):
            raise _fault()
        try:
            view = memoryview(arg)
        except TypeError:
            raise _err(errno.EINVAL) from None
        with view:
            if view.readonly:
                raise _fault()
            if not view.c_contiguous:
                raise _err(errno.EINVAL)
            with view.cast("B") as flat:
                buf = bytearray(flat)
                try:
                    return self._dispatch(request, buf)
                finally:
                    flat[: len(buf)] = buf

    def _dispatch(self, request: int, buf: bytearray) -> int:
        return self._send(buf) if request == _SEND else self._query(buf)

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

    def _validate(self, f: tuple[int, ...]) -> tuple[int, int, int]:
        """cxl_validate_cmd_from_user(): (opcode, size_in, size_out) or raise.
        ``f`` is the struct's fields in :data:`SEND_FORMAT` order."""
        cid, flags, raw_opcode, raw_rsvd, _, in_size, in_rsvd, _, out_size, out_rsvd, _ = f
        if cid == 0 or cid >= _K_MAX:
            raise _err(errno.ENOTTY)
        if in_size > self.payload_size:
            raise _err(errno.EINVAL)
        if cid == _K_RAW:  # cxl_to_mem_cmd_raw()
            if raw_rsvd:
                raise _err(errno.EINVAL)
            if out_size > self.payload_size:
                raise _err(errno.EINVAL)
            if not self._raw_allowed(raw_opcode):
                raise _err(errno.EPERM)
            return raw_opcode, in_size, out_size
        c = self.table[cid]  # cxl_to_mem_cmd()
        if flags & ~_FLAG_MASK:
            raise _err(errno.EINVAL)
        if raw_opcode or raw_rsvd:  # the union's u32 rsvd
            raise _err(errno.EINVAL)
        if in_rsvd or out_rsvd:
            raise _err(errno.EINVAL)
        if c.id not in self.enabled:
            raise _err(errno.ENOTTY)
        if c.id in self.exclusive:
            raise _err(errno.EBUSY)
        if c.size_in != VAR and c.size_in != in_size:
            raise _err(errno.ENOMEM)
        if c.size_out != VAR and out_size < c.size_out:
            raise _err(errno.ENOMEM)
        return c.opcode, in_size, out_size

    def _send(self, arg: bytearray) -> int:
        if len(arg) < _SEND_SIZE:
            raise _fault()
        f = SEND_FORMAT.unpack_from(arg)
        opcode, size_in, size_out = self._validate(f)
        # cxl_mbox_cmd_ctor() (still in cxl_validate_cmd_from_user())
        mem = self.mem
        payload = mem.copy_from_user(f[7], size_in) if size_in else b""
        if payload and opcode in _REFUSING and payload_refused(opcode, payload):
            raise _err(errno.EBUSY)  # cxl_payload_from_user_allowed()
        # #1 of __cxl_pci_mbox_send_cmd(): the doorbell of a command the device has not
        # finished yet ("mailbox queue busy")
        if self.doorbell_busy_until and time.monotonic() < self.doorbell_busy_until:
            raise _err(errno.EBUSY)
        # a sanitize owns the mailbox: every command but Get Health Info is EBUSY
        # (__cxl_pci_mbox_send_cmd() while security.poll_tmo_secs is set); only a
        # device with a background operation can be sanitizing
        dev = self.device
        if opcode != _GET_HEALTH_INFO and dev.bg is not None and dev.sanitizing():
            raise _err(errno.EBUSY)
        if size_out == VAR:
            size_out = self.payload_size
        # the bounce buffer never exceeds payload_max, whatever out.size says
        # (Linux 6.12 on QEMU: out.size -2 or payload_max+1 -> at most payload_max)
        if size_out > self.payload_size:
            size_out = self.payload_size
        # mbox_send: the device runs, the driver copies at most what fits
        rc, out = dev.execute_out(opcode, payload)  # the doorbell rung
        if dev.latency_ms or rc == _BG_STARTED:
            rc, out = self._mbox_wait(opcode, rc, out)
        if rc == _SUCCESS:
            if len(out) > size_out:
                out = out[:size_out]
            size_out = len(out) if size_out else 0
        else:
            out = bytes(size_out)  # the zeroed bounce buffer, length unchanged
        if size_out:
            if isinstance(out, FileSlice):  # Get LSA: from the label area's file
                mem.copy_file_to_user(f[10], out)
            else:
                mem.copy_to_user(f[10], out)
        # the kernel writes back out.size and retval
        _U32.pack_into(arg, _OUT_SIZE_OFFSET, size_out)
        _U32.pack_into(arg, _RETVAL_OFFSET, rc)
        return 0
