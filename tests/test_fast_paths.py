"""The fast paths behave exactly like the slow ones they replaced.

Records instead of dataclasses, one-call struct formats instead of ctypes field
access, a prepared SEND reused per command, a memfd or process_vm_readv/writev
instead of a pipe for the simulator's user copies (all three fault alike).
Behaviour only: nothing here is timed.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import pickle
import re
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import transport as tp
from cxlctl import uapi
from cxlctl.errors import DecodeError
from cxlctl.mailbox import firmware, health, layouts, memdev
from cxlctl.record import Record, as_dict, fields
from cxlctl.sim import SimDevice, make_devices, pci_address
from cxlctl.sim.driver.mbox import UserMemory
from cxlctl.uapi import CommandId as K

# --- Record ---------------------------------------------------------------------------


class Point(Record):
    x: int
    y: int = 2


class Point3(Point):
    z: str = "z"


class Checked(Record):
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


def test_record_construction_defaults_and_order() -> None:
    assert Point(1) == Point(x=1, y=2)
    assert Point(1, 3).y == 3
    assert fields(Point3) == ("x", "y", "z")
    assert as_dict(Point3(1, z="q")) == {"x": 1, "y": 2, "z": "q"}
    assert repr(Point3(1)) == "Point3(x=1, y=2, z='z')"
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]  # the missing field is the test
    with pytest.raises(TypeError):
        Point(1, 2, 3)  # type: ignore[call-arg]  # one too many is the test


def test_record_is_frozen_slotted_hashable_and_picklable() -> None:
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]  # assigning to a frozen field is the test
    with pytest.raises(AttributeError):
        p.other = 1
    assert not hasattr(p, "__dict__")
    assert hash(p) == hash(Point(1))
    assert p != Point(2)
    assert Point(1) != Point3(1)  # a different class is never equal
    assert pickle.loads(pickle.dumps(Point3(4, 5, "w"))) == Point3(4, 5, "w")


def test_record_post_init_runs() -> None:
    assert Checked(1).n == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_send_request_still_bounds_its_sizes() -> None:
    with pytest.raises(ValueError, match=r"out\.size"):
        tp.SendRequest(1, out_size=-1)


# --- struct formats pinned against the ctypes layouts ----------------------------------


def test_send_format_is_the_struct() -> None:
    assert uapi.SEND_FORMAT.size == ctypes.sizeof(uapi.cxl_send_command)
    s = uapi.cxl_send_command()
    s.id, s.flags, s.raw.opcode, s.raw.rsvd, s.retval = 1, 2, 0x4000, 3, 4
    s.in_.size, s.in_.rsvd, s.in_.payload = 5, 6, 0x1122334455667788
    s.out.size, s.out.rsvd, s.out.payload = 7, 8, 0x99AABBCCDDEEFF00
    want = (1, 2, 0x4000, 3, 4, 5, 6, 0x1122334455667788, 7, 8, 0x99AABBCCDDEEFF00)
    assert uapi.SEND_FORMAT.unpack(bytes(s)) == want
    assert uapi.SEND_RETVAL_OFFSET == 12
    assert uapi.SEND_OUT_SIZE_OFFSET == 32


def test_decoder_formats_match_their_layouts() -> None:
    assert memdev.IDENTIFY_FORMAT.size == ctypes.sizeof(layouts.IdentifyOut) == 0x43
    assert memdev.IDENTIFY3_FORMAT.size == ctypes.sizeof(layouts.IdentifyOut3)
    assert health.HEALTH_FORMAT.size == ctypes.sizeof(layouts.HealthInfoOut) == 0x12
    assert firmware.FW_INFO_FORMAT.size == ctypes.sizeof(layouts.FwInfoOut) == 0x50


def _identify_by_fields(data: bytes) -> dict[str, object]:
    """Identify decoded field by field from the ctypes layout (the old decoder)."""
    base = layouts.IdentifyOut.from_buffer_copy(data[:0x43])
    u = 256 << 20
    caps = int(base.poison_caps)
    dc = (
        int(layouts.IdentifyOut3.from_buffer_copy(data[:0x45]).dc_event_log_size)
        if len(data) >= 0x45
        else None
    )
    return {
        "firmware_version": layouts.fixed_string(base.fw_revision),
        "total_size": int(base.total_capacity) * u,
        "volatile_only_size": int(base.volatile_capacity) * u,
        "persistent_only_size": int(base.persistent_capacity) * u,
        "partition_alignment_size": int(base.partition_align) * u,
        "info_event_log_size": int(base.info_event_log_size),
        "warning_event_log_size": int(base.warning_event_log_size),
        "failure_event_log_size": int(base.failure_event_log_size),
        "fatal_event_log_size": int(base.fatal_event_log_size),
        "label_storage_size": int(base.lsa_size),
        "poison_list_max_mer": int.from_bytes(bytes(base.poison_list_max_mer), "little"),
        "inject_poison_limit": int(base.inject_poison_limit),
        "poison_caps": caps,
        "poison_caps_injects_persistent_poison": bool(caps & 1),
        "poison_caps_scan_media": bool(caps & 2),
        "qos_telemetry_caps": int(base.qos_telemetry_caps),
        "dc_event_log_size": dc,
        "trailing_bytes": len(data) - (0x45 if dc is not None else 0x43),
    }


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0x43, max_size=0x50))
def test_identify_struct_decoder_equals_the_field_decoder(data: bytes) -> None:
    assert as_dict(memdev.decode_identify(data)) == _identify_by_fields(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0x12, max_size=0x20))
def test_health_struct_decoder_equals_the_layout(data: bytes) -> None:
    s = layouts.HealthInfoOut.from_buffer_copy(data[:0x12])
    h = health.decode_health_info(data)
    assert (h.health_status, h.media_status, h.additional_status) == (
        s.health_status,
        s.media_status,
        s.additional_status,
    )
    temp = int(s.device_temperature)
    assert h.temperature == (None if temp & 0xFFFF == 0xFFFF else temp)
    assert h.life_used_percent == (None if s.life_used == 0xFF else s.life_used)
    assert (h.dirty_shutdowns, h.volatile_errors, h.pmem_errors) == (
        s.dirty_shutdown_count,
        s.corrected_volatile_error_count,
        s.corrected_persistent_error_count,
    )
    assert h.trailing_bytes == len(data) - 0x12


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0x50, max_size=0x60))
def test_fw_info_struct_decoder_equals_the_layout(data: bytes) -> None:
    s = layouts.FwInfoOut.from_buffer_copy(data[:0x50])
    fw = firmware.decode_fw_info(data)
    n, info = int(s.fw_slots_supported), int(s.fw_slot_info)
    assert (fw.num_slots, fw.active_slot, fw.staged_slot) == (n, info & 7, (info >> 3) & 7)
    assert fw.online_activate_capable == bool(s.fw_activation_caps & 1)
    assert (fw.fw_slot_info, fw.fw_activation_caps) == (info, s.fw_activation_caps)
    assert [(x.slot, x.version, x.active, x.staged) for x in fw.slots] == [
        (
            i + 1,
            layouts.fixed_string(s.slot_fw_revision[i]),
            i + 1 == info & 7,
            i + 1 == (info >> 3) & 7,
        )
        for i in range(min(n, 4))
    ]
    assert fw.trailing_bytes == len(data) - 0x50


def test_short_payloads_still_fail_cleanly() -> None:
    with pytest.raises(DecodeError, match="identify: payload is 66 bytes, layout needs 67"):
        memdev.decode_identify(bytes(66))
    with pytest.raises(DecodeError, match="get-health-info: payload is 0 bytes"):
        health.decode_health_info(b"")
    with pytest.raises(DecodeError, match="get-fw-info: payload is 79 bytes, layout needs 80"):
        firmware.decode_fw_info(bytes(79))


# --- the prepared SEND ----------------------------------------------------------------


def test_prepared_command_reuses_its_buffers_and_matches_send() -> None:
    dev = SimDevice()
    p = tp.PreparedCommand(dev, K.IDENTIFY, 2048, 2048)
    first = p()
    assert first == p()  # the same answer from the same buffers
    res = tp.send(dev, tp.SendRequest(K.IDENTIFY, out_size=2048))
    assert first == (res.retval, res.out)
    lsa = tp.PreparedCommand(dev, K.GET_LSA, 2048, 2048)
    rc, out = lsa(struct.pack("<II", 0, 64))
    assert (rc, len(out)) == (0, 64)
    assert lsa(struct.pack("<II", 0, 16))[1] == out[:16]  # shorter answer, same buffer


def test_prepared_command_passes_kernel_errors_through() -> None:
    dev = SimDevice()  # identify takes no input: the kernel says ENOMEM
    p = tp.PreparedCommand(dev, K.IDENTIFY, 2048, 2048)
    with pytest.raises(OSError, match="Cannot allocate memory") as e:
        p(b"\0" * 4)
    assert e.value.errno == errno.ENOMEM


def test_prepared_command_refuses_an_input_larger_than_its_buffer() -> None:
    p = tp.PreparedCommand(SimDevice(), K.SET_LSA, 0, 16)
    with pytest.raises(ValueError, match="17-byte input for a 16-byte buffer"):
        p(bytes(17))
    with pytest.raises(ValueError, match="outside"):
        tp.PreparedCommand(SimDevice(), K.SET_LSA, 0, (1 << 20) + 1)


def test_prepared_command_checks_the_reported_out_size() -> None:
    class Liar:
        name = "mem0"

        def ioctl(self, request: int, arg: bytearray) -> int:
            struct.pack_into("<I", arg, uapi.SEND_OUT_SIZE_OFFSET, 65)
            return 0

        def close(self) -> None:
            pass

    with pytest.raises(OSError, match=r"out\.size=65 for a 64-byte buffer") as e:
        tp.PreparedCommand(Liar(), K.IDENTIFY, 64, 0)()
    assert e.value.errno == errno.EOVERFLOW


# --- the simulator's user copies: both methods fault the same way ----------------------


def _methods() -> list[str]:
    methods = ["pipe"]
    for method in ("vm", "memfd"):
        try:
            UserMemory(method)
            methods.append(method)
        except OSError:  # pragma: no cover - process_vm_readv or memfd_create blocked here
            pass
    return methods


@pytest.fixture(params=_methods())
def memory(request: pytest.FixtureRequest) -> UserMemory:
    m = UserMemory(request.param)
    assert m.method == request.param
    return m


class Pages:
    """Two anonymous pages: the first read-write, the second changed by the test."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mmap.restype = ctypes.c_void_p
        self.libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.libc.mmap.argtypes += [ctypes.c_int, ctypes.c_int, ctypes.c_long]
        self.libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        addr = self.libc.mmap(None, 8192, rw, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value)
        self.addr: int = addr
        self.second_mapped = True

    def protect_second(self, prot: int) -> None:
        assert self.libc.mprotect(self.addr + 4096, 4096, prot) == 0

    def unmap_second(self) -> None:
        assert self.libc.munmap(self.addr + 4096, 4096) == 0
        self.second_mapped = False

    def close(self) -> None:
        self.libc.munmap(self.addr, 8192 if self.second_mapped else 4096)


@pytest.fixture
def pages() -> Iterator[Pages]:
    p = Pages()
    yield p
    p.close()


def test_copies_round_trip(memory: UserMemory) -> None:
    buf = ctypes.create_string_buffer(b"0123456789", 10)
    assert memory.copy_from_user(ctypes.addressof(buf), 10) == b"0123456789"
    memory.copy_to_user(ctypes.addressof(buf), b"abcdefghij")
    assert buf.raw == b"abcdefghij"
    big = ctypes.create_string_buffer(bytes(range(256)) * 512)  # 128 KiB: several pipe chunks
    assert memory.copy_from_user(ctypes.addressof(big), len(big)) == big.raw


@pytest.mark.parametrize("addr", [0, 0x10, 0xFFFF_FFFF_FFFF_F000])
def test_bad_pointers_fault_both_ways(memory: UserMemory, addr: int) -> None:
    for fn in (lambda: memory.copy_from_user(addr, 8), lambda: memory.copy_to_user(addr, b"x")):
        with pytest.raises(OSError, match="Bad address") as e:
            fn()
        assert e.value.errno == errno.EFAULT
    ok = ctypes.create_string_buffer(b"still ok", 8)  # and the copier still works after
    assert memory.copy_from_user(ctypes.addressof(ok), 8) == b"still ok"


def test_a_range_running_into_an_unmapped_page_faults(memory: UserMemory, pages: Pages) -> None:
    pages.unmap_second()
    with pytest.raises(OSError, match="Bad address"):
        memory.copy_from_user(pages.addr + 4090, 10)
    with pytest.raises(OSError, match="Bad address"):
        memory.copy_to_user(pages.addr + 4090, bytes(10))
    assert memory.copy_from_user(pages.addr + 4086, 10) == bytes(10)  # ends on the page


def test_a_range_running_into_a_read_only_page_faults_on_write(
    memory: UserMemory, pages: Pages
) -> None:
    pages.protect_second(mmap.PROT_READ)
    with pytest.raises(OSError, match="Bad address"):
        memory.copy_to_user(pages.addr + 4090, bytes(10))
    assert memory.copy_from_user(pages.addr + 4090, 10) == bytes(10)  # reading is allowed
    pages.protect_second(0)  # PROT_NONE
    with pytest.raises(OSError, match="Bad address"):
        memory.copy_from_user(pages.addr + 4090, 10)


def test_unknown_copy_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown copy method"):
        UserMemory("mmap")


# --- simulated PCI addresses ----------------------------------------------------------


def test_pci_addresses_stay_valid_and_unique_past_bus_ff() -> None:
    import re

    hosts = [pci_address(i) for i in range(600)]
    assert hosts[:3] == ["0000:0d:00.0", "0000:0e:00.0", "0000:0f:00.0"]  # goldens
    assert hosts[242] == "0000:ff:00.0"
    assert hosts[243] == "0001:00:00.0"
    assert len(set(hosts)) == len(hosts)
    assert all(re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]", h) for h in hosts)


def test_256_devices_have_their_addresses_in_sysfs() -> None:
    devs = make_devices(["ram"] * 256)
    assert [d.sysfs()["host"] for d in devs] == [pci_address(i) for i in range(256)]


def test_the_default_platform_places_devices_where_make_devices_did() -> None:
    from cxlctl.sim.driver import platform as pf
    from cxlctl.sim.driver.cxlbus import Layout

    for n in (1, 3, 256):
        slots = Layout(pf.parse("", n), n).slots
        assert [s.pci.rsplit("/", 1)[-1] for s in slots] == [pci_address(i) for i in range(n)]


def test_the_default_platform_is_built_only_when_asked_for() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from cxlctl.backends import SimBackend; b = SimBackend();"
        "b.list_memdevs(); assert 'cxlctl.sim.driver.cxlbus' not in sys.modules;"
        "assert b.platform.host_bridges == (3,); print(b.devices['mem2'].config.host)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CXLCTL_")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0000:0f:00.0"


@pytest.mark.parametrize("profile", ["full", "qemu"])
@pytest.mark.parametrize("fw", ["BWFW VERSION 00", "", "a-revision-longer-than-16"])
def test_simulated_identify_is_the_layouts_bytes(profile: str, fw: str) -> None:
    from cxlctl.sim import DeviceConfig

    cfg = DeviceConfig(volatile_bytes=1 << 28, profile=profile, fw_revision=fw)
    dev = SimDevice("mem0", cfg)
    base = layouts.IdentifyOut()
    raw = fw.encode()[:16]
    ctypes.memmove(base.fw_revision, raw, len(raw))
    base.total_capacity, base.volatile_capacity, base.persistent_capacity = 2, 1, 1
    if profile != "qemu":
        base.info_event_log_size = base.warning_event_log_size = 32
        base.failure_event_log_size = base.fatal_event_log_size = 16
    base.lsa_size = cfg.lsa_size
    base.poison_list_max_mer[1] = 1
    want = bytes(layouts.IdentifyOut3(base=base, dc_event_log_size=8))
    assert dev.device.execute(0x4000, b"") == (0, want)


# --- the pretty JSON writer --------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=True),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.text(max_size=5), kids, max_size=4)
        | st.tuples(kids, kids)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_pretty_json_is_json_dumps_indent_2(data: object) -> None:
    import json

    from cxlctl.render import pretty_json

    assert pretty_json(data) == json.dumps(data, indent=2)


def test_pretty_json_hands_unusual_values_to_json() -> None:
    import enum
    import json

    from cxlctl.render import pretty_json

    class Level(enum.IntEnum):
        HIGH = 2

    for data in ({1: "int key"}, [Level.HIGH], {"x": [1.5, {"y": Level.HIGH}]}, "\u202e\x1b"):
        assert pretty_json(data) == json.dumps(data, indent=2)


# --- sysfs number attributes ----------------------------------------------------------

_ATTR_TEXT = st.one_of(
    st.integers(-(2**65), 2**65).map(str),
    st.integers(0, 2**65).map(hex),
    st.from_regex(r"\A[-+ 0xX]{0,3}[0-9a-fA-F_]{0,6}[\n ]?\Z"),
    st.text(st.characters(codec="utf-8"), max_size=6),
)


@given(text=_ATTR_TEXT, key=st.sampled_from(["serial", "payload_max", "numa_node"]))
@settings(max_examples=400)
def test_attr_number_agrees_with_the_sysfs_parser(text: str, key: str) -> None:
    """backends.attr_number parses plain decimal and 0x hex itself; any string gives
    the value or the error cxlctl.sysfs.number gives (leading zeros, signs, spaces,
    underscores, non-ASCII digits, out of range)."""
    from cxlctl.backends import ATTR_RANGES, attr_number
    from cxlctl.sysfs import number

    lo, hi = ATTR_RANGES.get(key, (0, 2**64 - 1))
    try:
        want: int | None = number(text.encode("utf-8", "surrogateescape"), lo=lo, hi=hi)
    except ValueError:
        want = None
    if not text:
        want = -7  # a missing or empty attribute is the default
    if want is None:
        with pytest.raises(DecodeError, match=re.escape(f"mem0: sysfs {key} is {text!r}")):
            attr_number("mem0", {key: text}, key, -7)
    else:
        assert attr_number("mem0", {key: text}, key, -7) == want


def test_list_health_media_flags_are_one_per_media_status() -> None:
    """cxl-cli's ten media_* booleans: exactly the one named by the Media Status byte is
    true (none for a reserved value), in MEDIA_STATUS order, from the prebuilt table."""
    from cxlctl.cli.info import _media_flags
    from cxlctl.mailbox.health import MEDIA_STATUS

    for code in range(256):
        flags = _media_flags(code)
        assert list(flags) == [f"media_{n}" for n in MEDIA_STATUS.values()]
        assert [k for k, v in flags.items() if v] == (
            [f"media_{MEDIA_STATUS[code]}"] if code in MEDIA_STATUS else []
        )
