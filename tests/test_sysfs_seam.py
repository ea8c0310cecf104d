"""The sysfs seam: bounded byte reads, safe text, range-checked numbers, no escapes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from fakesysfs import FakeSysfs

from cxlctl.sim import make_devices
from cxlctl.sysfs import ATTR_MAX, HostSysfs, number, text

MEM0 = "devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0"


@pytest.fixture
def tree(tmp_path: Path) -> HostSysfs:
    """Linux 6.12's /sys for one pmem memdev, with a non-UTF-8 firmware version and
    an attribute larger than a page."""
    fs = FakeSysfs(tmp_path / "sys", make_devices(["pmem"]))
    fs.set("bus/cxl/devices/mem0/firmware_version", b"FW\xff\n")
    fs.set("bus/cxl/devices/mem0/big", b"x" * (ATTR_MAX + 1))
    return HostSysfs(str(fs.root))


def test_read_is_bytes_and_text_never_raises(tree: HostSysfs) -> None:
    raw = tree.read("bus/cxl/devices/mem0/firmware_version")
    assert raw == b"FW\xff\n"
    assert text(raw) == "FW\\xff"


def test_read_is_bounded(tree: HostSysfs) -> None:
    with pytest.raises(OSError, match="larger than a sysfs attribute") as e:
        tree.read("bus/cxl/devices/mem0/big")
    assert e.value.errno == errno.EFBIG


@pytest.mark.parametrize("bad", ["/etc/passwd", "bus/../../etc", "bus//cxl", "./bus"])
def test_paths_cannot_escape(tree: HostSysfs, bad: str) -> None:
    with pytest.raises(OSError, match="not a relative sysfs path") as e:
        tree.read(bad)
    assert e.value.errno == errno.EINVAL


def test_links_and_realpath(tree: HostSysfs) -> None:
    assert tree.islink("bus/cxl/devices/mem0")
    assert not tree.islink(f"{MEM0}/serial")
    assert tree.realpath("bus/cxl/devices/mem0") == MEM0
    assert tree.realpath("bus/cxl/devices/mem0/pmem/size") == f"{MEM0}/pmem/size"
    assert sorted(tree.listdir("bus/cxl/devices")) == [
        "decoder0.0", "decoder1.0", "decoder1.1", "decoder1.2", "decoder1.3",
        "decoder2.0", "decoder2.1", "decoder2.2", "decoder2.3",
        "endpoint2", "mem0", "nvdimm-bridge0", "pmem0", "port1", "root0",
    ]  # fmt: skip


@pytest.mark.parametrize(("raw", "want"), [(b"0x1234\n", 0x1234), (b"42\n", 42), (b"-1\n", -1)])
def test_number(raw: bytes, want: int) -> None:
    assert number(raw, lo=-1) == want


@pytest.mark.parametrize("raw", [b"\xd9\xa3\n", b"1_0\n", b"0x\n", b"", b"12abc"])
def test_number_refuses_non_numbers(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a number"):
        number(raw)


def test_number_range(tree: HostSysfs) -> None:
    with pytest.raises(ValueError, match="outside"):
        number(b"0x10000000000000000")
    assert number(tree.read("bus/cxl/devices/mem0/serial")) == 0x1234
