"""KernelTransport and KernelBackend with the OS patched: runs anywhere, no CXL needed."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakesysfs import FakeSysfs

from cxlctl import transport as tp
from cxlctl import uapi
from cxlctl.backends import KernelBackend
from cxlctl.errors import DeviceNotFound, ExitCode, PermissionDenied, UnsupportedCommand
from cxlctl.memdev import Memdev
from cxlctl.sim import SimDevice, make_devices


class FakeKernel:
    """Patches os.open/fstat/close and fcntl.ioctl to route into a SimDevice."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, dev: SimDevice, rdev: tuple[int, int]):
        self.dev = dev
        self.opened: list[tuple[str, int]] = []
        self.requests: list[int] = []
        real_open = os.open

        def fake_open(path: str, flags: int, *a: Any) -> int:
            if str(path).startswith("/dev/cxl/"):
                self.opened.append((path, flags))
                return 999
            return real_open(path, flags, *a)

        real_fstat, real_close = os.fstat, os.close

        def fake_fstat(fd: int) -> Any:
            if fd == 999:
                return os.stat_result((stat.S_IFCHR | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
            return real_fstat(fd)

        def fake_close(fd: int) -> None:
            if fd != 999:
                real_close(fd)

        def fake_ioctl(fd: int, request: int, arg: bytearray, mutate: bool = True) -> int:
            assert fd == 999
            assert mutate is True
            self.requests.append(request)
            return dev.ioctl(request, arg)

        import fcntl

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "fstat", fake_fstat)
        monkeypatch.setattr(os, "close", fake_close)
        monkeypatch.setattr(os, "major", lambda _r: rdev[0])
        monkeypatch.setattr(os, "minor", lambda _r: rdev[1])
        monkeypatch.setattr(fcntl, "ioctl", fake_ioctl)


@pytest.fixture
def backend(tmp_path: Path) -> KernelBackend:
    """Over a fake /sys with one pmem memdev; /dev/cxl is FakeKernel's."""
    fs = FakeSysfs(tmp_path / "sys", make_devices(["pmem"]))
    return KernelBackend(sysfs_root=str(fs.bus), dev_root="/dev/cxl")


def test_backend_reads_sysfs_like_cxl_list(backend: KernelBackend) -> None:
    (info,) = backend.list_memdevs()
    assert info.memdev == "mem0"
    assert (info.pmem_size, info.ram_size, info.serial) == (256 << 20, 0, 0x1234)
    assert info.host == "0000:0d:00.0"
    assert (info.payload_max, info.label_storage_size, info.numa_node) == (2048, 256 << 20, -1)
    assert info.backend == "kernel"


def test_no_memdevs_suggests_the_simulator(tmp_path: Path) -> None:
    b = KernelBackend(sysfs_root=str(tmp_path / "nothing"))
    with pytest.raises(DeviceNotFound) as e:
        b.select([])
    assert "--sim" in (e.value.hint or "")
    assert e.value.exit_code == ExitCode.NOT_FOUND


def test_memdev_spec_forms(backend: KernelBackend) -> None:
    assert backend.select(["/dev/cxl/mem0", "mem0"]) == ["mem0"]
    with pytest.raises(DeviceNotFound):
        backend.select(["mem7"])


def test_kernel_transport_issues_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, backend: KernelBackend, pmem: SimDevice
) -> None:
    fk = FakeKernel(monkeypatch, pmem, (250, 0))
    md = Memdev(backend, "mem0")
    ident = md.identify()
    assert ident.firmware_version == "BWFW VERSION 00"
    assert fk.opened == [("/dev/cxl/mem0", os.O_RDWR | os.O_CLOEXEC)]
    assert fk.requests == [uapi.CXL_MEM_SEND_COMMAND]
    assert len(md.query()) == 25
    assert fk.requests[1:] == [uapi.CXL_MEM_QUERY_COMMANDS] * 2


def test_kernel_transport_refuses_a_node_sysfs_does_not_name(
    monkeypatch: pytest.MonkeyPatch, backend: KernelBackend, pmem: SimDevice
) -> None:
    FakeKernel(monkeypatch, pmem, (250, 7))  # /dev/cxl/mem0 is 250:7, sysfs says 250:0
    with pytest.raises(DeviceNotFound, match="sysfs says mem0 is 250:0"):
        Memdev(backend, "mem0").identify()


def test_open_eacces_says_run_as_root(
    monkeypatch: pytest.MonkeyPatch, backend: KernelBackend
) -> None:
    def denied(path: str, flags: int, *a: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(PermissionDenied) as e:
        Memdev(backend, "mem0").identify()
    assert "mem0: cannot open /dev/cxl/mem0" in e.value.message
    assert e.value.hint == "the memdev node is root-only; run as root"
    assert e.value.exit_code == ExitCode.PERMISSION


def test_enotty_from_the_kernel_is_not_supported(
    monkeypatch: pytest.MonkeyPatch, backend: KernelBackend, pmem: SimDevice
) -> None:
    FakeKernel(monkeypatch, pmem, (250, 0))
    with pytest.raises(UnsupportedCommand, match=r"mem0: get-health-info: .*\[ENOTTY\]"):
        Memdev(backend, "mem0").health()


class Liar:
    """A transport that claims more output than the buffer it was given."""

    name = "mem0"

    def __init__(self, patch: Callable[[uapi.cxl_send_command], None]) -> None:
        self.patch = patch

    def ioctl(self, request: int, arg: bytearray) -> int:
        self.patch(uapi.cxl_send_command.from_buffer(arg))
        return 0

    def close(self) -> None:
        pass


def test_send_never_trusts_out_size_from_the_other_side() -> None:
    def grow(s: uapi.cxl_send_command) -> None:
        s.out.size = s.out.size + 1

    with pytest.raises(OSError, match=r"out\.size=65 for a 64-byte buffer") as e:
        tp.send(Liar(grow), tp.SendRequest(1, out_size=64))
    assert e.value.errno == errno.EOVERFLOW


def test_query_never_trusts_a_huge_count() -> None:
    class Huge:
        name = "mem0"

        def ioctl(self, request: int, arg: bytearray) -> int:
            uapi.cxl_mem_query_commands.from_buffer(arg).n_commands = 0xFFFFFFFF
            return 0

        def close(self) -> None:
            pass

    with pytest.raises(OSError, match="QUERY reported"):
        tp.query(Huge())


def test_request_sizes_are_bounded() -> None:
    with pytest.raises(ValueError, match=r"out\.size"):
        tp.SendRequest(1, out_size=(1 << 20) + 1)
    with pytest.raises(ValueError, match=r"in\.size"):
        tp.SendRequest(1, in_size=(1 << 20) + 1)
    # in.size larger than the payload: the buffer grows, the kernel reads zeros
    req = tp.SendRequest(6, payload=b"\x01", in_size=8)
    assert req.in_len == 8
