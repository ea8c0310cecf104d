"""The simulator's user copies keep the kernel's check on every call: a range that
copied fine once faults once its page is made read-only or unmapped (the memfd
method remembers the range's iovec, never whether it was good), and a label-area
read (Get LSA, straight from the file) faults the same way."""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Iterator

import pytest

from cxlctl import mailbox as mb
from cxlctl.sim import SimDevice
from cxlctl.sim.device.model import FileSlice
from cxlctl.sim.driver.mbox import UserMemory

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mmap.argtypes += [ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@pytest.fixture
def page() -> Iterator[int]:
    """One anonymous read-write page (unmapped at the end whatever the test did)."""
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    addr = _libc.mmap(None, 4096, rw, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value)
    yield addr
    _libc.munmap(addr, 4096)


@pytest.fixture
def memory() -> UserMemory:
    try:
        return UserMemory("memfd")
    except OSError:  # pragma: no cover - memfd_create blocked here
        pytest.skip("no memfd copies on this system")


def _faults(fn: object) -> None:
    with pytest.raises(OSError, match="Bad address") as e:
        fn()  # type: ignore[operator]
    assert e.value.errno == errno.EFAULT


def test_a_range_that_copied_faults_after_mprotect(memory: UserMemory, page: int) -> None:
    for _ in range(3):  # the same (address, length) again and again
        memory.copy_to_user(page + 100, b"abcdefgh")
        assert memory.copy_from_user(page + 100, 8) == b"abcdefgh"
    assert _libc.mprotect(page, 4096, mmap.PROT_READ) == 0
    _faults(lambda: memory.copy_to_user(page + 100, b"ABCDEFGH"))
    assert memory.copy_from_user(page + 100, 8) == b"abcdefgh"  # reading still works
    assert _libc.mprotect(page, 4096, 0) == 0  # PROT_NONE
    _faults(lambda: memory.copy_from_user(page + 100, 8))
    assert _libc.mprotect(page, 4096, mmap.PROT_READ | mmap.PROT_WRITE) == 0
    memory.copy_to_user(page + 100, b"12345678")  # and back
    assert ctypes.string_at(page + 100, 8) == b"12345678"


def test_copies_of_many_ranges_stay_exact(memory: UserMemory, page: int) -> None:
    """More distinct ranges than the iovec cache holds, each written and read back."""
    for off in range(0, 4000, 7):
        n = 1 + off % 61
        data = bytes((off + i) & 0xFF for i in range(min(n, 4096 - off)))
        memory.copy_to_user(page + off, data)
        assert ctypes.string_at(page + off, len(data)) == data
        assert memory.copy_from_user(page + off, len(data)) == data


def test_a_label_read_faults_on_a_read_only_buffer(memory: UserMemory, page: int) -> None:
    dev = SimDevice("mem0")
    dev.device.lsa.write(0, b"label bytes")
    got = dev.device.lsa.file_slice(0, 11)
    assert isinstance(got, FileSlice)
    memory.copy_file_to_user(page, got)
    assert ctypes.string_at(page, 11) == b"label bytes"
    assert _libc.mprotect(page, 4096, mmap.PROT_READ) == 0
    _faults(lambda: memory.copy_file_to_user(page, got))
    assert mb.GET_LSA.opcode in dev.device.cel
