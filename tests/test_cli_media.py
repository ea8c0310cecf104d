"""Poison, scan media and list -L: the device model, the simulated kernel, the CLI, and
the kernel backend's files checked against a fake sysfs/tracefs/debugfs tree."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fakesysfs import FakeSysfs
from goldens import golden

from cxlctl import tracefs as tf
from cxlctl.backends import KernelBackend, SimBackend
from cxlctl.errors import ExitCode, PermissionDenied, UnsupportedCommand
from cxlctl.mailbox import ReturnCode
from cxlctl.mailbox.media import decode_poison_list, decode_scan_media_results
from cxlctl.sim import SimDevice, make_devices
from cxlctl.sim.device import media as sim_media

RC = ReturnCode

Cli = Callable[..., Result]
CliJson = Callable[..., Any]
DATA = Path(__file__).parent / "data"


def _poison_in(dpa: int, nbytes: int) -> bytes:
    return struct.pack("<QQ", dpa, nbytes // 64)


# --- the device model -----------------------------------------------------------------


def test_get_poison_list_pages_with_more_flag(pmem: SimDevice) -> None:
    dev = pmem.device
    for i in range(5):
        sim_media.inject(dev, 0x10000 + i * 64)
    sim_media.state(dev).page_records = 2
    got, flags = [], []
    while True:
        rc, out = dev.execute(0x4300, _poison_in(0, 256 << 20))
        assert rc == RC.SUCCESS
        v = decode_poison_list(out)
        got += [r.dpa for r in v.records]
        flags.append(v.more_media_error_records)
        if not v.more_media_error_records:
            break
    assert got == [0x10000 + i * 64 for i in range(5)]
    assert flags == [True, True, False]


def test_poison_list_overflow_and_scan_media(pmem: SimDevice) -> None:
    dev = pmem.device
    st = sim_media.state(dev)
    st.max_records = 2
    for i in range(3):
        rc, _ = dev.execute(0x4301, struct.pack("<Q", 0x1000 + i * 64))
        assert rc == RC.SUCCESS
    v = decode_poison_list(dev.execute(0x4300, _poison_in(0, 1 << 20))[1])
    assert v.poison_list_overflow
    assert v.overflow_timestamp > 0
    assert len(v.records) == 2
    assert dev.execute(0x4304, struct.pack("<QQB", 0, (1 << 20) // 64, 0))[0] == RC.SUCCESS
    assert not decode_poison_list(
        dev.execute(0x4300, _poison_in(0, 1 << 20))[1]
    ).poison_list_overflow
    res = decode_scan_media_results(dev.execute(0x4305, b"")[1])
    assert [r.dpa for r in res.records] == [0x1000, 0x1040]
    assert not res.more_media_error_records


def test_clear_poison_splits_a_longer_entry(pmem: SimDevice) -> None:
    dev = pmem.device
    sim_media.inject(dev, 0x2000, 256, source=2)
    assert dev.execute(0x4302, struct.pack("<Q", 0x2040) + bytes(64))[0] == RC.SUCCESS
    assert sorted(sim_media.state(dev).poison.items()) == [(0x2000, (64, 2)), (0x2080, (128, 2))]


@pytest.mark.parametrize(
    ("opcode", "payload", "rc"),
    [
        (0x4300, _poison_in(0x1001, 64), RC.INVALID_INPUT),
        (0x4300, _poison_in(0, 0), RC.INVALID_INPUT),
        (0x4300, _poison_in(0, 512 << 20), RC.INVALID_PHYSICAL_ADDRESS),
        (0x4301, struct.pack("<Q", 0x1010), RC.INVALID_PHYSICAL_ADDRESS),
        (0x4301, struct.pack("<Q", 256 << 20), RC.INVALID_PHYSICAL_ADDRESS),
        (0x4302, struct.pack("<Q", 0x33) + bytes(64), RC.INVALID_PHYSICAL_ADDRESS),
        (0x4304, struct.pack("<QQB", 0, 1, 2), RC.INVALID_INPUT),
        (0x4305, b"", RC.INVALID_INPUT),
        (0x4301, b"\0" * 4, RC.INVALID_PAYLOAD_LENGTH),
    ],
)
def test_media_return_codes(pmem: SimDevice, opcode: int, payload: bytes, rc: int) -> None:
    assert pmem.device.execute(opcode, payload)[0] == rc


def test_poison_opcodes_are_on_the_raw_deny_list() -> None:
    from cxlctl.errors import PermissionDenied as Denied

    (dev,) = make_devices(["pmem"], raw_commands=True)
    md = SimBackend([dev]).memdev("mem0")
    with pytest.raises(Denied):
        md.submit(md.raw_request(0x4300, _poison_in(0, 64)), "get-poison-list")


# --- the simulated kernel ---------------------------------------------------------------


def test_sim_trigger_poison_list_walks_pmem_then_ram() -> None:
    (dev,) = make_devices(["mixed"])
    sim_media.state(dev.device).page_records = 1
    b = SimBackend([dev])
    evs = b.trigger_poison_list("mem0")
    # the mixed device: ram at 0, pmem at 256 MiB; seeded poison lies in ram
    assert [(e["dpa"], e["flags"]) for e in evs] == [(0x1000, "More"), (0x400000, "")]
    calls = [(op, p) for op, p in dev.device.calls if op == 0x4300]
    assert calls[0][1] == _poison_in(256 << 20, 256 << 20)  # pmem first
    assert calls[1][1] == _poison_in(0, 256 << 20)


def test_qemu_profile_has_no_poison_until_injected() -> None:
    (dev,) = make_devices(["pmem"], profile="qemu")
    b = SimBackend([dev])
    assert b.trigger_poison_list("mem0") == []
    b.inject_poison("mem0", 0x1000)
    assert [tf.media_error_json(e) for e in b.trigger_poison_list("mem0")] == [
        {"offset": 0x1000, "length": 64, "source": "Injected"}
    ]
    b.clear_poison("mem0", 0x1000)
    assert b.trigger_poison_list("mem0") == []


# --- the CLI on the simulator -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "env"),
    [
        ("poison-mem0.json", ["poison", "mem0", "--json"], {}),
        ("poison-mem0.txt", ["poison", "mem0"], {}),
        ("poison-range.json", ["poison", "mem0", "0x0+0x2000", "-u", "--json"], {}),
        ("poison-inject.txt", ["poison", "mem1", "--inject", "0x3000", "-y", "0x3000-0x3040"], {}),
        ("list-L-u.json", ["list", "-L", "-u", "--json"], {}),
        ("scan-media-caps.json", ["scan-media-caps", "mem0", "0x0-0x10000000", "--json"], {}),
        ("scan-media-caps.txt", ["scan-media-caps", "mem2", "0x0+4096"], {}),
    ],
)
def test_golden(cli: Cli, name: str, args: list[str], env: dict[str, str]) -> None:
    r = cli(*args, env=env)
    assert r.exit_code == 0, r.stderr
    golden(f"media/{name}", r.stdout)


def test_list_media_errors_matches_cxl_cli_reference(cli_json: CliJson) -> None:
    """The reference capture: inject 0x1000 on a fresh QEMU device, then `cxl list -L -u`."""
    env = {"CXLCTL_SIM_PROFILE": "qemu", "CXLCTL_SIM_DEVICES": "pmem"}
    assert "media_errors" not in cli_json("list", "-L", "--json", env=env)[0]
    out = cli_json("poison", "mem0", "--inject", "0x1000", "-y", "--json", env=env)
    assert out[0]["media_errors"] == [{"offset": 4096, "length": 64, "source": "Injected"}]


def test_list_media_errors_raw_ints(cli_json: CliJson) -> None:
    (d,) = cli_json("list", "-L", "mem0", "--json")
    assert d["media_errors"][0] == {"offset": 4096, "length": 64, "source": "Injected"}
    assert list(d)[list(d).index("firmware_version") + 1] == "media_errors"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["poison", "mem0", "0x2000-0x1000"], ExitCode.USAGE),
        (["poison", "mem0", "banana"], ExitCode.USAGE),
        (["poison", "mem9"], ExitCode.NOT_FOUND),
        (["poison", "mem0", "--inject", "0x1001", "-y"], ExitCode.USAGE),  # as the verb
        (["scan-media-caps", "mem0", "0x10+64"], ExitCode.USAGE),
        (["scan-media-caps", "mem0", "0x0+0x20000000"], ExitCode.DEVICE_ERROR),
    ],
)
def test_exit_codes(cli: Cli, args: list[str], code: int) -> None:
    r = cli(*args)
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output


def test_poison_unsupported_when_device_lacks_it(cli: Cli) -> None:
    # QEMU's CEL has Get Poison List; a device without it has no trigger_poison_list
    (dev,) = make_devices(["pmem"])
    dev.config.cel = tuple(op for op in dev.config.cel if op != 0x4300)
    with pytest.raises(UnsupportedCommand, match="trigger_poison_list"):
        SimBackend([dev]).trigger_poison_list("mem0")


# --- the kernel backend against a fake tree ------------------------------------------------

#: lines in the format of drivers/cxl/core/trace.h's cxl_poison TP_printk (Linux 6.12)
POISON_TRACE = (DATA / "cxl_poison.trace").read_text()


class FakeKernel:
    """A temporary sysfs + tracefs + debugfs; records every write and, like the kernel,
    appends the cxl_poison lines to the instance's trace when trigger_poison_list is
    written while the event is enabled."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.tracefs = root / "sys/kernel/tracing"
        self.debugfs = root / "sys/kernel/debug/cxl"
        self.fs = FakeSysfs(root / "sys", make_devices(["pmem"]))
        self.sysfs = self.fs.bus
        (self.tracefs / "events/cxl/cxl_poison").mkdir(parents=True)
        (self.tracefs / "events/cxl/cxl_general_media").mkdir(parents=True)
        (self.debugfs / "mem0").mkdir(parents=True)
        (self.debugfs / "mem0/inject_poison").write_text("")
        (self.debugfs / "mem0/clear_poison").write_text("")
        self.writes: list[tuple[str, str]] = []
        self.enabled = False
        real_write = tf.KernelTracing.write

        def write(tr: tf.KernelTracing, path: str, text: str) -> None:
            rel = os.path.relpath(path, root)
            self.writes.append((rel, text))
            if rel.endswith("events/cxl/cxl_poison/enable"):
                self.enabled = text.strip() == "1"
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            real_write(tr, path, text)
            if rel.endswith("trigger_poison_list") and self.enabled:
                inst = next((self.tracefs / "instances").iterdir())
                with open(inst / "trace", "a") as f:
                    f.write(POISON_TRACE)

        monkeypatch.setattr(tf.KernelTracing, "write", write)
        self.removed: list[str] = []

        def rmdir(path: str) -> None:  # tracefs lets rmdir remove a populated instance
            self.removed.append(os.path.relpath(path, root))
            os.rename(path, str(root / "removed-instance"))

        monkeypatch.setattr("cxlctl.tracefs.os.rmdir", rmdir)

    def backend(self) -> KernelBackend:
        b = KernelBackend(sysfs_root=str(self.sysfs), dev_root=str(self.root / "dev/cxl"))
        b._tracing = tf.KernelTracing(
            str(self.sysfs), tracefs_root=str(self.tracefs), debugfs_cxl=str(self.debugfs)
        )
        return b


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return FakeKernel(tmp_path, monkeypatch)


def test_kernel_poison_list_files(fake: FakeKernel) -> None:
    evs = fake.backend().trigger_poison_list("mem0")
    inst = f"sys/kernel/tracing/instances/cxlctl-{os.getpid()}"
    assert fake.writes == [
        (f"{inst}/trace", ""),
        (f"{inst}/events/cxl/cxl_poison/enable", "1\n"),
        ("sys/bus/cxl/devices/mem0/trigger_poison_list", "1\n"),
        (f"{inst}/events/cxl/cxl_poison/enable", "0\n"),
    ]
    assert fake.removed == [inst]
    # mem1's record and the Inject event in the fixture are not mem0's list
    assert [tf.media_error_json(e) for e in evs] == [
        {"offset": 0x1000, "length": 64, "source": "Injected"},
        {
            "offset": 0x40000,
            "length": 512,
            "source": "Internal",
            "flags": "More,Overflow,",
            "overflow_t": 1732492800000000000,
        },
    ]


def test_kernel_debugfs_inject_and_clear(fake: FakeKernel) -> None:
    b = fake.backend()
    b.inject_poison("mem0", 0x1000)
    b.clear_poison("mem0", 0x2000)
    assert fake.writes == [
        ("sys/kernel/debug/cxl/mem0/inject_poison", "0x1000\n"),
        ("sys/kernel/debug/cxl/mem0/clear_poison", "0x2000\n"),
    ]


def test_kernel_missing_pieces_say_which(fake: FakeKernel) -> None:
    b = fake.backend()
    fake.fs.remove("bus/cxl/devices/mem0/trigger_poison_list")
    with pytest.raises(UnsupportedCommand, match="trigger_poison_list is missing"):
        b.trigger_poison_list("mem0")
    fake.fs.set("bus/cxl/devices/mem0/trigger_poison_list", b"")
    (fake.tracefs / "events/cxl/cxl_poison").rmdir()
    with pytest.raises(UnsupportedCommand, match=r"no cxl:cxl_poison trace event"):
        b.trigger_poison_list("mem0")
    (fake.debugfs / "mem0/inject_poison").unlink()
    with pytest.raises(UnsupportedCommand, match="inject_poison is missing"):
        b.inject_poison("mem0", 0)


def test_kernel_no_tracefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tr = tf.KernelTracing(str(tmp_path))
    tr._tracefs = None
    monkeypatch.setattr(tf, "TRACEFS_ROOTS", (str(tmp_path / "nope"),))
    with pytest.raises((UnsupportedCommand, PermissionDenied)):
        _ = tr.tracefs


def test_kernel_permission_denied_is_exit_5(
    fake: FakeKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(tr: tf.KernelTracing, path: str, text: str) -> None:
        raise tf.KernelTracing._error(PermissionError(13, "Permission denied"), f"write {path}")

    monkeypatch.setattr(tf.KernelTracing, "write", denied)
    with pytest.raises(PermissionDenied) as ei:
        fake.backend().trigger_poison_list("mem0")
    assert ei.value.exit_code == ExitCode.PERMISSION
    assert ei.value.hint == "run as root"


def test_parse_the_fixture_lines() -> None:
    evs = [e for e in map(tf.parse_line, POISON_TRACE.splitlines()) if e]
    assert [e["trace_type"] for e in evs] == ["List", "List", "Inject", "List"]
    first = evs[0]
    assert first["timestamp"] == 1234_567890000
    assert (first["memdev"], first["host"], first["serial"]) == ("mem0", "0000:0d:00.0", 4660)
    assert (first["region"], first["hpa"]) == ("", 0xFFFFFFFFFFFFFFFF)
    assert tf.parse_line("# tracer: nop") is None
    assert tf.parse_line("bash-1 [000] ..... 1.000000: sched_switch: a=b") is None
