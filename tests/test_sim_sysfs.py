"""The simulated sysfs against the reference (topology.md sections 2, 3, 5, 6, 11, 14)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from functools import partial

import pytest

from cxlctl.sim import make_devices
from cxlctl.sim.driver import platform as pf
from cxlctl.sim.driver.sysfs import SimSysfs

ROOT = "devices/platform/ACPI0017:00/root0"
RD = f"{ROOT}/decoder0.0"
EP_PMEM = f"{ROOT}/port1/endpoint2/decoder2.0"  # mem0, serial 0x1234
EP_RAM = f"{ROOT}/port1/endpoint3/decoder3.0"  # mem1, serial 0x1235


def make(
    kinds: tuple[str, ...] = ("pmem", "ram"), spec: str = "", state: str | None = None
) -> SimSysfs:
    devs = make_devices(kinds, state_dir=state)
    return SimSysfs({d.name: d for d in devs}, pf.parse(spec, len(devs)), state)


@pytest.fixture
def fs() -> SimSysfs:
    return make()


def rd(fs: SimSysfs, path: str) -> str:
    return fs.read(path).decode().rstrip("\n")


def errno_of(fn: Callable[[], object]) -> int:
    with pytest.raises(OSError) as e:  # noqa: PT011 - any errno; the caller checks it
        fn()
    assert e.value.errno is not None
    return e.value.errno


def region(fs: SimSysfs, mode: str = "ram", ways: int = 1, size: int = 0x10000000) -> str:
    name = rd(fs, f"{RD}/create_{mode}_region")
    fs.write(f"{RD}/create_{mode}_region", name.encode() + b"\0")
    r = f"{RD}/{name}"
    fs.write(f"{r}/interleave_granularity", b"256\n\0")
    fs.write(f"{r}/interleave_ways", f"{ways}\n\0".encode())
    if mode == "pmem":
        fs.write(f"{r}/uuid", b"9f8b0c55-ca8c-4914-ab56-29dc188435ed\0")
    fs.write(f"{r}/size", f"{size:#x}\n\0".encode())
    return r


def reserve(fs: SimSysfs, ep: str, mode: str, size: int = 0x10000000) -> None:
    fs.write(f"{ep}/dpa_size", b"0\n\0")
    fs.write(f"{ep}/mode", mode.encode() + b"\0")
    fs.write(f"{ep}/dpa_size", f"{size:#x}\n\0".encode())


HB = f"{ROOT}/port1/decoder1.0"  # the host bridge's first decoder


def hb_reads(fs: SimSysfs, *attrs: str) -> list[str]:
    """What the host bridge's decoder1.0 attributes ATTRS read."""
    return [rd(fs, f"{HB}/{a}") for a in attrs]


def committed_ram_region(fs: SimSysfs) -> str:
    """Section 5.1 up to the commit: region0 over mem1's decoder3.0, 256 MiB."""
    r = region(fs, "ram")
    reserve(fs, EP_RAM, "ram")
    fs.write(f"{r}/target0", b"decoder3.0\0")
    fs.write(f"{r}/commit", b"1\n\0")
    return r


def test_layout_matches_the_qemu_platform(fs: SimSysfs) -> None:
    devs = sorted(fs.listdir("bus/cxl/devices"))
    assert devs == sorted(
        ["decoder0.0", *[f"decoder{p}.{i}" for p in (1, 2, 3) for i in range(4)],
         "endpoint2", "endpoint3", "mem0", "mem1", "nvdimm-bridge0", "pmem0", "port1", "root0"]
    )  # fmt: skip
    assert (
        fs.realpath("bus/cxl/devices/mem0") == "devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0"
    )
    assert fs.realpath("bus/cxl/devices/root0/port1/endpoint3/decoder3.0") == EP_RAM
    assert fs.realpath(f"{ROOT}/dport12") == "devices/pci0000:0c"
    assert fs.realpath(f"{ROOT}/port1/dport1") == "devices/pci0000:0c/0000:0c:01.0"
    assert fs.realpath(f"{ROOT}/port1/endpoint3/uport").endswith("0000:0e:00.0/mem1")
    assert not fs.exists("bus/cxl/devices/mem0/endpoint")  # no such link in Linux


def test_attribute_formats_and_modes(fs: SimSysfs) -> None:
    assert rd(fs, f"{RD}/size") == "0x100000000"
    assert rd(fs, f"{RD}/start") == "0x490000000"
    assert fs.mode(f"{RD}/start") == 0o400
    assert rd(fs, f"{RD}/target_list") == "12"
    assert rd(fs, f"{RD}/create_pmem_region") == "region0"
    assert fs.mode(f"{RD}/delete_region") == 0o200
    assert errno_of(lambda: fs.read(f"{RD}/delete_region")) == errno.EACCES
    assert errno_of(lambda: fs.write(f"{RD}/size", b"0\n")) == errno.EACCES
    assert not fs.exists(f"{RD}/region")
    assert rd(fs, f"{EP_PMEM}/dpa_resource") == "0xffffffffffffffff"
    assert rd(fs, f"{EP_PMEM}/dpa_size") == "0x0000000000000000"
    assert rd(fs, f"{EP_PMEM}/mode") == "none"
    assert not fs.exists(f"{EP_PMEM}/target_list")
    assert rd(fs, f"{ROOT}/port1/decoder1.0/target_list") == "0"
    assert rd(fs, f"{ROOT}/port1/decoder1.0/region") == ""
    assert rd(fs, "bus/cxl/devices/mem0/serial") == "0x1234"
    assert rd(fs, "bus/cxl/devices/mem1/ram/size") == "0x10000000"
    assert fs.mode("bus/cxl/flush") == 0o200
    fs.write("bus/cxl/flush", b"1\n\0")


def test_ram_region_sequence_of_section_5_1(fs: SimSysfs) -> None:
    r = committed_ram_region(fs)
    assert errno_of(lambda: fs.write("bus/cxl/drivers/cxl_port/bind", b"region0\0")) == errno.ENODEV
    assert errno_of(lambda: fs.write("bus/cxl/drivers/cxl_mem/bind", b"region0\0")) == errno.ENODEV
    fs.write("bus/cxl/drivers/cxl_region/bind", b"region0\0")
    assert rd(fs, f"{r}/resource") == "0x490000000"
    assert rd(fs, f"{r}/uuid") == ""
    assert rd(fs, f"{RD}/create_ram_region") == "region1"
    assert hb_reads(fs, "region", "size", "start", "target_list") == [
        "region0", "0x10000000", "0x490000000", "1"]  # fmt: skip
    assert rd(fs, f"{ROOT}/port1/decoders_committed") == "1"
    assert rd(fs, f"{ROOT}/port1/endpoint3/decoders_committed") == "1"
    assert rd(fs, f"{EP_RAM}/dpa_resource") == "0x0"
    assert rd(fs, f"{EP_RAM}/dpa_size") == "0x0000000010000000"
    assert fs.exists("bus/cxl/devices/dax_region0")
    assert fs.exists("bus/dax/devices/dax0.0")
    assert rd(fs, "devices/system/memory/memory146/state") == "online"
    assert rd(fs, "devices/system/memory/memory147/state") == "online"
    assert fs.islink(f"{r}/driver")


def test_teardown_keeps_mode_and_stale_hb_range(fs: SimSysfs) -> None:
    r = committed_ram_region(fs)
    fs.write("bus/cxl/drivers/cxl_region/bind", b"region0\0")
    for b in (146, 147):
        fs.write(f"devices/system/memory/memory{b}/state", b"offline\0")
    fs.write("bus/cxl/drivers/cxl_region/unbind", b"region0\0")
    assert not fs.exists("bus/dax/devices/dax0.0")
    assert not fs.exists("devices/system/memory/memory146")
    assert rd(fs, f"{r}/commit") == "1"
    fs.write(f"{r}/commit", b"0\n\0")
    fs.write(f"{r}/target0", b"\0")
    fs.write(f"{EP_RAM}/dpa_size", b"0\n\0")
    fs.write(f"{RD}/delete_region", b"region0\0")
    assert rd(fs, f"{EP_RAM}/mode") == "ram"
    assert rd(fs, f"{EP_RAM}/dpa_resource") == "0xffffffffffffffff"
    assert hb_reads(fs, "region", "size", "start", "target_list") == [
        "", "0x10000000", "0x490000000", "1"]  # fmt: skip
    assert rd(fs, f"{ROOT}/port1/decoders_committed") == "0"
    assert rd(fs, f"{RD}/create_ram_region") == "region0"


def test_two_way_interleave_and_teardown() -> None:
    fs = make(("pmem", "pmem"))
    r = region(fs, "pmem", ways=2, size=0x20000000)
    assert errno_of(lambda: fs.write(f"{r}/target2", b"decoder2.0\0")) == errno.ENOENT
    reserve(fs, EP_PMEM, "pmem")
    reserve(fs, EP_RAM, "pmem")  # the second device's endpoint3, persistent here
    fs.write(f"{r}/target1", b"decoder3.0\0")
    fs.write(f"{r}/target0", b"decoder2.0\0")
    fs.write(f"{r}/commit", b"1\n\0")
    assert hb_reads(fs, "target_list", "interleave_ways", "size") == ["0,1", "2", "0x20000000"]
    assert rd(fs, f"{ROOT}/port1/decoders_committed") == "1"
    assert rd(fs, f"{EP_PMEM}/interleave_ways") == "2"
    fs.write(f"{r}/commit", b"0\n\0")
    fs.write(f"{r}/target0", b"\0")
    fs.write(f"{r}/target1", b"\0")
    # after a 2-way teardown the HB decoder reads size 0 but keeps ways and targets
    assert hb_reads(fs, "start", "size", "interleave_ways", "target_list") == [
        "0x0", "0x0", "2", "0,1"]  # fmt: skip


def test_region_errnos_of_section_11_2(fs: SimSysfs) -> None:
    w = fs.write
    assert errno_of(lambda: w(f"{RD}/create_ram_region", b"region5\0")) == errno.EBUSY
    assert errno_of(lambda: w(f"{RD}/create_ram_region", b"garbage\0")) == errno.EINVAL
    assert errno_of(lambda: w(f"{RD}/delete_region", b"region9\0")) == errno.ENODEV
    assert errno_of(lambda: w(f"{RD}/delete_region", b"garbage\0")) == errno.EINVAL
    w(f"{RD}/create_pmem_region", b"region0\0")
    assert errno_of(lambda: w(f"{RD}/create_pmem_region", b"region0\0")) == errno.EBUSY
    r = f"{RD}/region0"
    assert rd(fs, f"{r}/resource") == "0xffffffffffffffff"
    assert rd(fs, f"{r}/uuid") == "00000000-0000-0000-0000-000000000000"
    assert rd(fs, f"{r}/interleave_ways") == "0"
    assert not fs.exists(f"{r}/target0")
    assert errno_of(lambda: w(f"{r}/commit", b"1\n")) == errno.ENXIO
    assert errno_of(lambda: w(f"{r}/commit", b"garbage\n")) == errno.EINVAL
    for bad in (b"0\n", b"100\n", b"128\n", b"32768\n"):
        assert errno_of(partial(w, f"{r}/interleave_granularity", bad)) == errno.EINVAL
    for bad in (b"0\n", b"3\n", b"5\n", b"17\n"):
        assert errno_of(partial(w, f"{r}/interleave_ways", bad)) == errno.EINVAL
    w(f"{r}/interleave_ways", b"16\n")
    assert fs.exists(f"{r}/target15")
    w(f"{r}/interleave_ways", b"1\n")
    assert not fs.exists(f"{r}/target1")
    w(f"{r}/interleave_granularity", b"256\n")
    assert errno_of(lambda: w(f"{r}/size", b"0x10000000\n")) == errno.ENXIO  # pmem, no uuid
    assert errno_of(lambda: w(f"{r}/uuid", b"garbage\n")) == errno.EINVAL
    assert (
        errno_of(lambda: w(f"{r}/uuid", b"00000000-0000-0000-0000-000000000000\n")) == errno.EINVAL
    )
    w(f"{r}/uuid", b"9f8b0c55-ca8c-4914-ab56-29dc188435ed\n")
    w(f"{ROOT}/port1/endpoint2/decoder2.1/mode", b"pmem\0")
    assert errno_of(lambda: w(f"{r}/target0", b"decoder2.1\0")) == errno.ENXIO  # no size
    for bad in (b"0x1000\n", b"0x8000000\n"):
        assert errno_of(partial(w, f"{r}/size", bad)) == errno.EINVAL
    assert errno_of(lambda: w(f"{r}/size", b"0x200000000\n")) == errno.ERANGE
    w(f"{r}/size", b"0x100000000\n")
    w(f"{r}/size", b"0x100000000\n")
    assert errno_of(lambda: w(f"{r}/size", b"0x10000000\n")) == errno.EBUSY
    assert errno_of(lambda: w(f"{r}/interleave_ways", b"2\n")) == errno.EBUSY
    assert errno_of(lambda: w(f"{r}/interleave_granularity", b"512\n")) == errno.EBUSY
    w(f"{r}/size", b"0\n")
    assert rd(fs, f"{r}/resource") == "0xffffffffffffffff"
    w(f"{r}/size", b"0x10000000\n")
    # targets
    assert errno_of(lambda: w(f"{r}/target0", b"decoder2.0\0")) == errno.EINVAL  # mode none
    w(f"{EP_RAM}/mode", b"ram\0")
    assert errno_of(lambda: w(f"{r}/target0", b"decoder3.0\0")) == errno.EINVAL  # other mode
    w(f"{EP_PMEM}/mode", b"pmem\0")
    assert errno_of(lambda: w(f"{r}/target0", b"decoder2.0\0")) == errno.ENXIO  # no DPA
    assert errno_of(lambda: w(f"{r}/target0", b"decoder1.0\0")) == errno.EINVAL
    assert errno_of(lambda: w(f"{r}/target0", b"decoder0.0\0")) == errno.EINVAL
    assert errno_of(lambda: w(f"{r}/target0", b"decoder9.9\0")) == errno.ENODEV
    assert errno_of(lambda: w(f"{r}/target0", b"garbage\0")) == errno.ENODEV
    w(f"{EP_PMEM}/dpa_size", b"0x10000000\n\0")
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_region/bind", b"region0\0")) == errno.ENXIO
    w(f"{r}/target0", b"decoder2.0\0")
    assert rd(fs, f"{EP_PMEM}/region") == "region0"
    assert errno_of(lambda: w(f"{r}/target0", b"decoder2.0\0")) == errno.EBUSY
    assert errno_of(lambda: w(f"{EP_PMEM}/dpa_size", b"0\n")) == errno.EBUSY  # in a region
    w(f"{r}/commit", b"1\n")
    w(f"{r}/commit", b"1\n")  # no-op
    assert (
        errno_of(lambda: w(f"{r}/uuid", b"08b830ad-a6c6-4a9e-8cea-fe1f1acaed0b\n")) == errno.EBUSY
    )
    w("bus/cxl/drivers/cxl_region/bind", b"region0\n")
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_region/bind", b"region0\0")) == errno.EBUSY
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_region/bind", b"region9\0")) == errno.ENODEV
    assert errno_of(lambda: w(f"{r}/size", b"0\n")) == errno.EBUSY
    assert fs.exists("bus/cxl/devices/pmem_region0")
    # commit 0 on a bound region unbinds it too
    w(f"{r}/commit", b"0\n")
    assert not fs.islink(f"{r}/driver")
    assert not fs.exists("bus/cxl/devices/pmem_region0")
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_region/unbind", b"region0\0")) == errno.ENODEV
    assert errno_of(lambda: w(f"{r}/resource", b"0\n")) == errno.EACCES


def test_endpoint_decoder_errnos_of_section_11_3(fs: SimSysfs) -> None:
    w = fs.write
    d1 = f"{ROOT}/port1/endpoint2/decoder2.1"
    assert errno_of(lambda: w(f"{EP_PMEM}/dpa_size", b"0x10000000\n")) == errno.EINVAL
    for bad in (b"foo\n", b"none\n", b"mixed\n"):
        assert errno_of(partial(w, f"{EP_PMEM}/mode", bad)) == errno.EINVAL
    assert errno_of(lambda: w(f"{EP_PMEM}/mode", b"ram\n")) == errno.ENXIO
    assert errno_of(lambda: w(f"{EP_RAM}/mode", b"pmem\n")) == errno.ENXIO
    w(f"{EP_PMEM}/mode", b"pmem\n")
    for bad in (b"0x1000\n", b"0x8000000\n", b"garbage\n"):
        assert errno_of(partial(w, f"{EP_PMEM}/dpa_size", bad)) == errno.EINVAL
    assert errno_of(lambda: w(f"{EP_PMEM}/dpa_size", b"0x20000000\n")) == errno.ENOSPC
    w(f"{d1}/mode", b"pmem\n")
    assert errno_of(lambda: w(f"{d1}/dpa_size", b"0x10000000\n")) == errno.EBUSY  # out of order
    w(f"{EP_PMEM}/dpa_size", b"0x10000000\n")
    assert rd(fs, f"{EP_PMEM}/dpa_resource") == "0x0"
    w(f"{EP_PMEM}/dpa_size", b"0x10000000\n")  # the current size
    w(f"{EP_PMEM}/mode", b"pmem\n")  # the current mode, allocated
    assert errno_of(lambda: w(f"{d1}/dpa_size", b"0x10000000\n")) == errno.ENOSPC  # exhausted
    w(f"{EP_PMEM}/dpa_size", b"0\n")
    assert rd(fs, f"{EP_PMEM}/mode") == "pmem"
    w(f"{EP_PMEM}/dpa_size", b"0\n")  # unallocated


def test_hb_decoder_order_rules_of_section_5_6(fs: SimSysfs) -> None:
    w = fs.write
    r0 = region(fs, "ram")
    reserve(fs, EP_RAM, "ram")
    w(f"{r0}/target0", b"decoder3.0\0")
    w(f"{r0}/commit", b"1\n\0")
    r1 = region(fs, "pmem")
    reserve(fs, EP_PMEM, "pmem")
    w(f"{r1}/target0", b"decoder2.0\0")
    w(f"{r1}/commit", b"1\n\0")
    port = f"{ROOT}/port1"
    assert rd(fs, f"{port}/decoder1.1/start") == "0x4a0000000"
    assert rd(fs, f"{port}/decoders_committed") == "2"
    w(f"{r0}/commit", b"0\n")  # out of order reset: decoder1.0 stays counted
    assert rd(fs, f"{port}/decoders_committed") == "2"
    assert rd(fs, f"{port}/decoder1.0/region") == "region0"
    assert errno_of(lambda: w(f"{r0}/commit", b"1\n")) == errno.EBUSY  # out of order commit
    w(f"{r1}/commit", b"0\n")  # reaps both
    assert rd(fs, f"{port}/decoders_committed") == "0"
    w(f"{r0}/commit", b"1\n")
    w(f"{r1}/commit", b"1\n")
    assert rd(fs, f"{port}/decoders_committed") == "2"
    # tear region0 down while region1 lives: a new region below it is an HPA order violation
    w(f"{r0}/commit", b"0\n")
    w(f"{r0}/target0", b"\0")
    w(f"{EP_RAM}/dpa_size", b"0\n")
    w(f"{RD}/delete_region", b"region0\0")
    assert rd(fs, f"{port}/decoders_committed") == "2"
    r = region(fs, "ram")
    assert r.endswith("region0")
    w(f"{EP_RAM}/dpa_size", b"0x10000000\n\0")
    assert errno_of(lambda: w(f"{r}/target0", b"decoder3.0\0")) == errno.EBUSY
    w(f"{RD}/delete_region", b"region0\0")
    assert rd(fs, f"{EP_RAM}/dpa_size") == "0x0000000010000000"  # delete keeps the DPA


def test_delete_region_in_any_state_and_id_reuse(fs: SimSysfs) -> None:
    w = fs.write
    r0 = region(fs, "ram")
    reserve(fs, EP_RAM, "ram")
    w(f"{r0}/target0", b"decoder3.0\0")
    w(f"{r0}/commit", b"1\n\0")
    w("bus/cxl/drivers/cxl_region/bind", b"region0\0")
    w(f"{RD}/create_pmem_region", b"region1\0")
    w(f"{RD}/delete_region", b"region0\n")
    assert not fs.exists(r0)
    assert rd(fs, f"{EP_RAM}/dpa_size") == "0x0000000010000000"
    assert rd(fs, f"{EP_RAM}/region") == ""
    assert rd(fs, f"{RD}/create_ram_region") == "region0"
    # the online memory could not be hot-removed: it stays until a reboot
    assert rd(fs, "devices/system/memory/memory146/state") == "online"


def test_memdev_and_port_binding(fs: SimSysfs) -> None:
    w = fs.write
    w("bus/cxl/drivers/cxl_mem/unbind", b"mem1\0")
    assert not fs.exists("bus/cxl/devices/endpoint3")
    assert not fs.islink("bus/cxl/devices/mem1/driver")
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_mem/unbind", b"mem1\0")) == errno.ENODEV
    w("bus/cxl/drivers/cxl_mem/bind", b"mem1\0")
    assert fs.exists("bus/cxl/devices/endpoint3")  # the freed id comes back
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_mem/bind", b"mem1\0")) == errno.EBUSY
    assert errno_of(lambda: w("bus/cxl/drivers/cxl_port/bind", b"mem1\0")) == errno.ENODEV
    w("bus/cxl/drivers/cxl_port/unbind", b"port1\0")
    assert sorted(fs.listdir("bus/cxl/devices")) == [
        "decoder0.0", "mem0", "mem1", "nvdimm-bridge0", "port1", "root0"]  # fmt: skip
    w("bus/cxl/drivers/cxl_port/bind", b"port1\0")
    assert not fs.exists("bus/cxl/devices/endpoint2")  # memdevs stay unbound
    w("bus/cxl/drivers/cxl_mem/bind", b"mem0\0")
    w("bus/cxl/drivers/cxl_mem/bind", b"mem1\0")
    assert fs.exists("bus/cxl/devices/endpoint3")
    w("bus/platform/drivers/cxl_acpi/unbind", b"ACPI0017:00\0")
    assert sorted(fs.listdir("bus/cxl/devices")) == ["mem0", "mem1"]
    w("bus/platform/drivers/cxl_acpi/bind", b"ACPI0017:00\0")
    assert fs.exists("bus/cxl/devices/endpoint3")


def test_state_persists_atomically(tmp_path: os.PathLike[str]) -> None:
    state = str(tmp_path)
    fs = make(state=state)
    r = region(fs, "ram")
    reserve(fs, EP_RAM, "ram")
    fs.write(f"{r}/target0", b"decoder3.0\0")
    fs.write(f"{r}/commit", b"1\n\0")
    again = make(state=state)
    assert rd(again, f"{r}/commit") == "1"
    assert rd(again, f"{EP_RAM}/region") == "region0"
    assert [f for f in os.listdir(state) if f.endswith(".tmp")] == []
    with open(os.path.join(state, "topology.json")) as f:
        assert json.load(f)["regions"]
    other = make(("pmem", "ram", "ram"), state=state)  # another platform: fresh
    assert not other.exists(r)


def test_configurable_platform_two_host_bridges() -> None:
    fs = make(("pmem", "pmem"), "hb=1,1;cfmws=8G:hb=0+1:ig=256")
    assert rd(fs, f"{RD}/interleave_ways") == "2"
    assert rd(fs, f"{RD}/target_list") == "12,14"
    assert fs.realpath("bus/cxl/devices/mem1").startswith("devices/pci0000:0e/0000:0e:00.0/")
    r = region(fs, "pmem", ways=2, size=0x20000000)
    e2, e3 = f"{ROOT}/port1/endpoint3/decoder3.0", f"{ROOT}/port2/endpoint4/decoder4.0"
    reserve(fs, e2, "pmem")
    reserve(fs, e3, "pmem")
    # position 0 must be below host bridge 0 (root decoder target 0)
    assert errno_of(lambda: fs.write(f"{r}/target0", b"decoder4.0\0")) == errno.ENXIO
    fs.write(f"{r}/target0", b"decoder3.0\0")
    fs.write(f"{r}/target1", b"decoder4.0\0")
    fs.write(f"{r}/commit", b"1\n")
    assert rd(fs, f"{ROOT}/port1/decoders_committed") == "1"
    assert rd(fs, f"{ROOT}/port2/decoders_committed") == "1"


def test_switch_topology() -> None:
    fs = make(("pmem", "pmem"), "hb=1;switch=0.0:2")
    devs = fs.listdir("bus/cxl/devices")
    assert {"port2", "endpoint3", "endpoint4"} <= set(devs)
    assert fs.realpath("bus/cxl/devices/endpoint3") == f"{ROOT}/port1/port2/endpoint3"
    assert rd(fs, f"{ROOT}/port1/port2/decoder2.0/target_list") == "0"


@pytest.mark.parametrize(
    "spec", ["hb=0", "cfmws=3G:hb=0+1", "cfmws=1G:hb=4", "switch=0.5:2", "bogus=1", "cfmws=1G:ig=3"]
)
def test_bad_topologies_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        pf.parse(spec, 2)


def test_too_many_devices_for_the_slots() -> None:
    fs = make(("pmem", "ram", "ram"), "hb=2")  # the bus is built on first use
    with pytest.raises(ValueError, match="downstream ports"):
        fs.read("bus/cxl/devices/mem0/serial")


def test_a_memdev_file_is_read_without_rendering_the_ports_and_the_same_either_way() -> None:
    """The ports, decoders and endpoints are rendered only when a path needs them;
    every path reads, resolves and lists the same as from the whole tree."""
    whole = make(("pmem", "ram", "mixed"))
    tree = whole.tree()

    def paths(node: object, prefix: str) -> list[str]:
        out = []
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{prefix}/{k}" if prefix else k
                out.append(p)
                out += paths(v, p)
        return out

    lazy = make(("pmem", "ram", "mixed"))
    assert rd(lazy, "bus/cxl/devices/mem1/serial") == rd(whole, "bus/cxl/devices/mem1/serial")
    assert lazy._tree is None  # a memdev's own file: no port was rendered
    assert lazy._base is not None
    base = paths(lazy._base, "")
    rest = [p for p in paths(tree, "") if p not in set(base)]
    assert base
    assert rest  # the ports, decoders, endpoints
    for n, p in enumerate(base + rest):
        if n == len(base):
            assert lazy._tree is None  # everything so far came from the memdevs' part
        assert lazy.exists(p), p
        assert lazy.islink(p) == whole.islink(p), p
        assert lazy.realpath(p) == whole.realpath(p), p
        if whole.islink(p):
            assert lazy.link_target(p) == whole.link_target(p), p
        elif not isinstance(whole._node(p), dict) and whole.mode(p) & 0o444:
            assert lazy.read(p) == whole.read(p), p
    assert lazy.listdir("bus/cxl/devices") == whole.listdir("bus/cxl/devices")
    assert lazy._tree is not None  # listing a directory renders the whole tree


# --- the nd bus, its nvdimms and the firmware-upload class (topology.md 2.3, 3, 8) --------


NDBUS = f"{ROOT}/nvdimm-bridge0/ndbus0"


def test_nd_bus_and_nmem_of_the_reference(fs: SimSysfs) -> None:
    # the p,v boot: the persistent mem0 has nmem0, the volatile mem1 none
    assert sorted(fs.listdir("bus/nd/devices")) == ["ndbus0", "nmem0"]
    assert fs.realpath("bus/nd/devices/ndbus0") == NDBUS
    assert fs.realpath("bus/nd/devices/nmem0") == f"{NDBUS}/nmem0"
    assert sorted(fs.listdir(NDBUS)) == [
        "commands", "driver", "firmware", "nd", "nmem0", "provider", "subsystem", "uevent",
        "wait_probe",
    ]  # fmt: skip
    assert rd(fs, f"{NDBUS}/provider") == "CXL"
    assert rd(fs, f"{NDBUS}/wait_probe") == "1"
    assert rd(fs, f"{NDBUS}/uevent") == "DRIVER=nd_bus\nMODALIAS=nd:t0"
    assert fs.realpath(f"{NDBUS}/driver") == "bus/nd/drivers/nd_bus"
    nm = f"{NDBUS}/nmem0"
    # the reference's entries but available_slots (the nd label index is not modelled)
    assert sorted(fs.listdir(nm)) == [
        "commands", "cxl", "dev", "devtype", "driver", "firmware", "flags", "frozen",
        "modalias", "security", "state", "subsystem", "uevent",
    ]  # fmt: skip
    want = {
        "commands": "get_size get_data set_data ",
        "cxl/id": "4660",
        "cxl/provider": "pmem0",
        "dev": "243:0",
        "devtype": "nvdimm",
        "flags": "label ",
        "frozen": "0",
        "modalias": "nd:t1",
        "security": "disabled",
        "state": "idle",
        "uevent": "MAJOR=243\nMINOR=0\nDEVNAME=nmem0\nDEVTYPE=nvdimm\nDRIVER=nvdimm\n"
        "MODALIAS=nd:t1",
    }
    assert {k: rd(fs, f"{nm}/{k}") for k in want} == want
    assert fs.realpath(f"{nm}/driver") == "bus/nd/drivers/nvdimm"


def test_nmem_is_active_while_a_pmem_region_uses_it_and_goes_with_cxl_mem(fs: SimSysfs) -> None:
    from cxlctl import regions as rg
    from cxlctl.topology import read_topology

    plan = rg.plan_region(read_topology(fs), root_decoder="decoder0.0", mode="pmem",
                          targets=["mem0"])  # fmt: skip
    rg.create_region(fs, plan, enable=False)
    r = "region0"
    assert rd(fs, f"{NDBUS}/nmem0/state") == "idle"  # committed, not bound yet
    fs.write("bus/cxl/drivers/cxl_region/bind", f"{r}\0".encode())
    assert rd(fs, f"{NDBUS}/nmem0/state") == "active"
    fs.write("bus/cxl/drivers/cxl_region/unbind", f"{r}\0".encode())
    assert rd(fs, f"{NDBUS}/nmem0/state") == "idle"
    fs.write("bus/cxl/drivers/cxl_mem/unbind", b"mem0")
    assert fs.listdir("bus/nd/devices") == ["ndbus0"]  # cxl_nvdimm went with cxl_mem


def test_two_persistent_memdevs_have_two_nmems() -> None:
    fs = make(("pmem", "pmem"))
    assert sorted(fs.listdir("bus/nd/devices")) == ["ndbus0", "nmem0", "nmem1"]
    assert rd(fs, f"{NDBUS}/nmem1/cxl/provider") == "pmem1"
    assert rd(fs, f"{NDBUS}/nmem1/cxl/id") == "4661"


def test_firmware_class_of_the_reference(fs: SimSysfs) -> None:
    assert sorted(fs.listdir("class/firmware")) == ["mem0", "mem1", "timeout"]
    assert fs.realpath("class/firmware/mem0") == fs.realpath("bus/cxl/devices/mem0") + (
        "/firmware/mem0"
    )
    fw = "class/firmware/mem1"
    assert {a: rd(fs, f"{fw}/{a}") for a in ("loading", "status", "remaining_size", "error")} == {
        "loading": "0",
        "status": "idle",
        "remaining_size": "0",
        "error": "",
    }
    assert rd(fs, f"{fw}/uevent") == "FIRMWARE=mem1\nTIMEOUT=60\nASYNC=0"
    assert fs.mode(f"{fw}/cancel") == 0o200


def test_firmware_upload_reads_without_the_tree_read_as_the_tree_does() -> None:
    """list -F reads memN/firmware/memN/status of every memdev through the bus link;
    the seam answers it from the upload device without rendering the tree, with
    the bytes and errnos the tree gives, idle, mid-upload and after one; a memdev
    whose CEL lacks Get FW Info has no upload device (ENOENT) either way."""
    devs = make_devices(("pmem", "ram", "mixed"), profile="qemu")  # uploads take a while
    # no Get FW Info: devm_cxl_setup_fw_upload() registers no upload device
    devs[2].config.cel = tuple(op for op in devs[2].config.cel if op != 0x0200)
    # without Transfer FW it is there all the same (the kernel asks for Get FW Info only)
    devs[1].config.cel = tuple(op for op in devs[1].config.cel if op != 0x0201)
    by_name = {d.name: d for d in devs}
    whole = SimSysfs(by_name, pf.parse("", len(devs)))
    whole.tree()
    attrs = ("status", "remaining_size", "error", "loading", "data", "cancel", "uevent", "nope")

    def reads(fs: SimSysfs) -> dict[str, bytes | int]:
        out: dict[str, bytes | int] = {}
        for a in attrs:
            for m, f in (("mem0", "mem0"), ("mem1", "mem1"), ("mem2", "mem2"), ("mem0", "mem1"),
                         ("mem7", "mem7")):  # fmt: skip
                p = f"bus/cxl/devices/{m}/firmware/{f}/{a}"
                try:
                    out[p] = fs.read(p)
                except OSError as e:
                    out[p] = e.errno or -1
        return out

    def check() -> dict[str, bytes | int]:
        lazy = SimSysfs(by_name, pf.parse("", len(devs)))
        for m in ("mem0", "mem1"):
            for a in attrs[:4]:
                with contextlib.suppress(OSError):  # error: EBUSY mid-upload
                    lazy.read(f"bus/cxl/devices/{m}/firmware/{m}/{a}")
        assert lazy._tree is None  # nothing was rendered for these
        assert lazy._bus is None  # nor the bus built
        got = reads(lazy)  # the rest (missing, write-only...) from the tree
        assert got == reads(whole)
        return got

    idle = check()
    assert idle["bus/cxl/devices/mem1/firmware/mem1/status"] == b"idle\n"
    assert idle["bus/cxl/devices/mem2/firmware/mem2/status"] == errno.ENOENT
    assert idle["bus/cxl/devices/mem0/firmware/mem0/cancel"] == errno.EACCES
    fw = "class/firmware/mem0"
    whole.write(f"{fw}/loading", b"1")
    whole.write(f"{fw}/data", bytes(4096))
    mid = check()
    whole.write(f"{fw}/loading", b"0")
    after = check()
    p = "bus/cxl/devices/mem0/firmware/mem0"
    assert (mid[f"{p}/loading"], mid[f"{p}/status"]) == (b"1\n", b"idle\n")
    assert after[f"{p}/loading"] == b"0\n"
    assert after[f"{p}/status"] != b"idle\n"  # programming, slowly (time_scale)
    assert after[f"{p}/error"] == errno.EBUSY  # the kernel's, while it runs
