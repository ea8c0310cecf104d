"""SimDevice.ioctl behaves like fcntl.ioctl for bad arguments, and is fork-safe."""

from __future__ import annotations

import array
import errno
import os

import pytest
from simio import issue

from cxlctl import uapi
from cxlctl.sim import SimDevice, make_devices

K = uapi.CommandId


@pytest.fixture
def dev() -> SimDevice:
    (d,) = make_devices(["pmem"])
    return d


@pytest.mark.parametrize(
    ("arg", "err"),
    [
        (None, errno.EFAULT),
        (0, errno.EFAULT),
        (0xDEAD0000, errno.EFAULT),
        (bytes(uapi.SEND_SIZE), errno.EFAULT),
        (memoryview(bytes(uapi.SEND_SIZE)), errno.EFAULT),
        ("a string", errno.EINVAL),
        (3.5, errno.EINVAL),
        (object(), errno.EINVAL),
        (bytearray(4), errno.EFAULT),
    ],
    ids=["None", "int0", "int", "bytes", "ro-view", "str", "float", "object", "short"],
)
@pytest.mark.parametrize("request_", [uapi.CXL_MEM_SEND_COMMAND, uapi.CXL_MEM_QUERY_COMMANDS])
def test_bad_ioctl_arguments_are_oserror(
    dev: SimDevice, arg: object, err: int, request_: int
) -> None:
    if request_ == uapi.CXL_MEM_QUERY_COMMANDS and isinstance(arg, bytearray):
        err = errno.EFAULT  # shorter than the query header
    with pytest.raises(OSError, match=os.strerror(err)) as e:
        dev.ioctl(request_, arg)
    assert e.value.errno == err


def test_other_writable_buffers_work_like_a_bytearray(dev: SimDevice) -> None:
    q = bytearray(uapi.QUERY_HEADER_SIZE)
    assert dev.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, q) == 0
    a = array.array("B", bytes(uapi.QUERY_HEADER_SIZE))
    assert dev.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, a) == 0
    assert bytes(a) == bytes(q)
    m = memoryview(bytearray(uapi.QUERY_HEADER_SIZE))
    assert dev.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, m) == 0
    assert bytes(m) == bytes(q)


def test_a_failed_ioctl_leaves_the_buffer_resizable(dev: SimDevice) -> None:
    arg = bytearray(uapi.SEND_SIZE)
    arg[0] = 0xFF  # an id the kernel does not have: ENOTTY
    with pytest.raises(OSError, match="Inappropriate ioctl") as e:
        dev.ioctl(uapi.CXL_MEM_SEND_COMMAND, arg)
    assert e.value.errno == errno.ENOTTY
    arg.extend(b"x")  # BufferError if a ctypes view of it were still alive
    assert len(arg) == uapi.SEND_SIZE + 1
    q = bytearray(uapi.QUERY_HEADER_SIZE)
    q[0] = 200  # more commands than fit: EFAULT
    with pytest.raises(OSError, match="Bad address"):
        dev.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, q)
    q.extend(b"x")


def test_fork_gives_the_child_its_own_user_memory(dev: SimDevice) -> None:
    """Parent and child issue commands at the same time through one SimDevice made
    before fork(): neither sees the other's payloads."""
    want = issue(dev, K.IDENTIFY).out  # the parent made its pipe before forking
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        os.close(r)
        ok = all(issue(dev, K.IDENTIFY).out == want for _ in range(300))
        labels = all(
            issue(dev, K.GET_LSA, data=(0).to_bytes(4, "little") + (64).to_bytes(4, "little")).out
            == bytes(64)
            for _ in range(50)
        )
        os._exit(0 if ok and labels else 1)
    os.close(w)
    try:
        got = [issue(dev, K.GET_HEALTH_INFO).out for _ in range(300)]
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(set(got)) == 1
