"""update-firmware, sanitize, secure-erase, wait-sanitize, inject/clear-media-poison:
the simulated device's rules (Transfer/Activate FW, Sanitize, Features as QEMU 10),
the simulated kernel's sysfs protocol, the verbs on --sim under the safety
contract, and at a fake-sysfs seam the writes cxl-cli makes
(../shared/reference/topology.md 8-10)."""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result
from fakesysfs import FakeSysfs, kernel_cli

from cxlctl.sim import make_devices
from cxlctl.sim.device import background as bg
from cxlctl.sim.device import features as ft
from cxlctl.sim.device.model import RC, TypeThreeDevice
from cxlctl.sysfs import HostSysfs

if TYPE_CHECKING:
    import pexpect

Cli = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent
QEMU = {"CXLCTL_SIM_PROFILE": "qemu", "CXLCTL_SIM_TIME_SCALE": "0"}


def _xfer(action: int, slot: int, offset: int, data: bytes) -> bytes:
    hdr = bytes([action, slot, 0, 0]) + (offset // 128).to_bytes(4, "little")
    return hdr + bytes(128 - len(hdr)) + data


@pytest.fixture
def dev() -> TypeThreeDevice:
    (d,) = make_devices(["pmem"], profile="qemu", time_scale=0)
    return d.device


# --- the device ---------------------------------------------------------------------


def test_transfer_fw_rules_as_qemu(dev: TypeThreeDevice) -> None:
    x = dev.execute
    assert x(0x0201, b"\0" * 10)[0] == RC.INVALID_PAYLOAD_LENGTH
    assert x(0x0201, _xfer(bg.CONTINUE, 2, 0, b"a" * 128))[0] == RC.INVALID_INPUT  # no INIT
    assert x(0x0201, _xfer(bg.FULL, 1, 0, b"a" * 128))[0] == RC.INVALID_SLOT  # the active one
    assert x(0x0201, _xfer(bg.FULL, 3, 0, b"a" * 128))[0] == RC.INVALID_SLOT
    assert x(0x0201, _xfer(bg.INIT, 2, 128, b"a" * 128))[0] == RC.INVALID_INPUT  # not at 0
    assert x(0x0201, _xfer(bg.INIT, 2, bg.FW_SIZE, b"a"))[0] == RC.INVALID_INPUT
    assert x(0x0201, _xfer(bg.INIT, 2, 0, b"a" * 256))[0] == RC.BACKGROUND_COMMAND_STARTED
    assert x(0x0201, _xfer(bg.FULL, 2, 0, b"a"))[0] == RC.FW_TRANSFER_IN_PROGRESS
    assert x(0x0201, _xfer(bg.CONTINUE, 2, 128, b"a" * 128))[0] == RC.FW_TRANSFER_OUT_OF_ORDER
    assert x(0x0201, _xfer(bg.END, 1, 256, b"a" * 128))[0] == RC.INVALID_SLOT
    assert 2 not in dev.fw.slots
    assert x(0x0202, bytes([1, 2]))[0] == RC.INVALID_SLOT  # nothing in slot 2 yet
    assert x(0x0201, _xfer(bg.END, 2, 256, b"a" * 128))[0] == RC.BACKGROUND_COMMAND_STARTED
    assert dev.fw.slots[2] == "BWFW VERSION 1"
    assert x(0x0202, bytes([2, 2]))[0] == RC.INVALID_INPUT
    assert x(0x0202, bytes([1, 2]))[0] == RC.SUCCESS
    info = x(0x0200, b"")[1]
    assert (info[0], info[1] & 7, info[1] >> 3 & 7) == (2, 1, 2)  # staged, active 1
    assert x(0x0202, bytes([0, 2]))[0] == RC.SUCCESS  # online
    assert x(0x0200, b"")[1][1] & 7 == 2
    assert x(0x0201, _xfer(bg.ABORT, 0, 0, b""))[0] == RC.SUCCESS


def test_background_operations_are_busy_and_sanitize_disables_media() -> None:
    (d,) = make_devices(["pmem"], profile="qemu", time_scale=1000)
    dev = d.device
    dev.lsa[0:4] = b"LBL!"
    assert dev.execute(0x4400, b"")[0] == RC.BACKGROUND_COMMAND_STARTED
    assert dev.sanitizing()
    assert dev.execute(0x4102, bytes(8))[0] == RC.MEDIA_DISABLED
    assert dev.execute(0x0201, _xfer(bg.FULL, 2, 0, b"a"))[0] == RC.MEDIA_DISABLED
    assert dev.execute(0x4304, bytes(17))[0] in (RC.BUSY, RC.UNSUPPORTED)
    assert dev.execute(0x4000, b"")[0] == RC.SUCCESS
    assert bg.status(dev)["running"] is True
    assert dev.bg is not None
    bg.poll(dev, now=dev.bg.done_at())
    assert not dev.sanitizing()
    assert bytes(dev.lsa[0:4]) == bytes(4)  # the labels are gone
    assert bg.status(dev) == {"running": False, "opcode": 0x4400, "percent": 100,
                              "return_code": 0}  # fmt: skip


def test_features_as_qemu(dev: TypeThreeDevice) -> None:
    rc, out = dev.execute(0x0500, struct.pack("<IHH", 8 + 2 * 48, 0, 0))
    assert rc == RC.SUCCESS
    assert struct.unpack_from("<HH", out) == (2, 2)
    assert out[8:24] == ft.PATROL_SCRUB
    assert out[56:72] == ft.ECS
    assert dev.execute(0x0500, struct.pack("<IHH", 4, 0, 0))[0] == RC.INVALID_INPUT
    get = ft.PATROL_SCRUB + struct.pack("<HHB", 0, 4, 0)
    assert dev.execute(0x0501, get) == (RC.SUCCESS, bytes([3, 12, 1, 0]))
    assert dev.execute(0x0501, ft.PATROL_SCRUB + struct.pack("<HHB", 0, 4, 1))[0] == RC.UNSUPPORTED
    hdr = ft.PATROL_SCRUB + struct.pack("<IHB", 0, 0, 1) + bytes(9)
    assert dev.execute(0x0502, hdr + bytes([24, 1])) == (RC.SUCCESS, b"")
    assert dev.execute(0x0501, get)[1] == bytes([3, 24, 1, 1])
    bad = ft.PATROL_SCRUB + struct.pack("<IHB", 0, 0, 2) + bytes(9)
    assert dev.execute(0x0502, bad + bytes(2))[0] == RC.UNSUPPORTED
    init = ft.ECS + struct.pack("<IHB", ft.INITIATE, 0, 1) + bytes(9)
    assert dev.execute(0x0502, init + bytes([1]))[0] == RC.SUCCESS
    assert dev.execute(0x0502, hdr + bytes([24, 1]))[0] == RC.FEATURE_TRANSFER_IN_PROGRESS


def test_every_cel_command_of_the_qemu_profile_is_implemented(dev: TypeThreeDevice) -> None:
    from cxlctl.sim.device.model import HANDLERS, QEMU_CEL

    missing = [hex(op) for op in QEMU_CEL if op not in HANDLERS]
    assert missing in ([], ["0x102", "0x103"])  # event interrupt policy: the catalogue issue


# --- the verbs on --sim -----------------------------------------------------------------


def test_update_firmware_stages_the_next_slot(cli: Cli, tmp_path: Path) -> None:
    env = {**QEMU, "CXLCTL_SIM_STATE": str(tmp_path / "state")}
    img = tmp_path / "fw.bin"
    img.write_bytes(os.urandom(5000))
    before = cli("fw-info", "mem0", "--json", env=env).stdout
    assert json.loads(before)[0]["staged_slot"] == 0
    r = cli("update-firmware", "mem0", "-F", str(img), "-w", "--dry-run", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    (plan,) = json.loads(r.stdout)
    fw = "/sys/devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0/firmware/mem0"
    assert [(s["target"], s["value"]) for s in plan["plan"]] == [
        (f"{fw}/loading", "'1\\n\\x00'"),
        (f"{fw}/data", "<4096 bytes>"),
        (f"{fw}/data", "<904 bytes>"),
        (f"{fw}/loading", "'0\\n\\x00'"),
    ]
    assert cli("fw-info", "mem0", "--json", env=env).stdout == before
    assert cli("update-firmware", "mem0", "-F", str(img), env=env).exit_code == 2  # no -y
    r = cli("update-firmware", "mem0", "-F", str(img), "-w", "-y", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["changed"] is True
    assert row["firmware"]["staged_slot"] == 2
    assert row["firmware"]["slot_2_version"] == "BWFW VERSION 1"
    after = json.loads(cli("fw-info", "mem0", "--json", env=env).stdout)[0]
    assert (after["active_slot"], after["staged_slot"]) == (1, 2)
    r = cli("update-firmware", "mem0", "--cancel", "--json", env=env)
    assert json.loads(r.stdout)[0]["outcome"] == "unchanged"


def test_an_update_with_a_state_dir_writes_the_state_a_few_times_not_per_part(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 MiB is ~540 Transfer FW parts; device and upload each save their progress with
    every part, but the worker's loop writes the state once (an 8 MiB update took 21 s
    of fsyncs, 0.3 s without them), and the result is the same as without a state dir."""
    from cxlctl.sim import state

    writes: list[str] = []
    real = state._replace

    def counting(dfd: int, state_dir: str, name: str, data: bytes) -> None:
        writes.append(name)
        real(dfd, state_dir, name, data)

    monkeypatch.setattr(state, "_replace", counting)
    env = {**QEMU, "CXLCTL_SIM_STATE": str(tmp_path / "state")}
    img = tmp_path / "fw.bin"
    img.write_bytes(os.urandom(1 << 20))
    r = cli("update-firmware", "mem0", "-F", str(img), "-w", "-y", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)[0]["firmware"]["staged_slot"] == 2
    assert len(writes) < 20, writes
    # a later process sees the finished update
    after = json.loads(cli("fw-info", "mem0", "--json", env=env).stdout)[0]
    assert (after["active_slot"], after["staged_slot"]) == (1, 2)


def test_list_firmware_shows_a_running_update(cli: Cli, tmp_path: Path) -> None:
    env = {**QEMU, "CXLCTL_SIM_STATE": str(tmp_path), "CXLCTL_SIM_TIME_SCALE": "1000"}
    img = tmp_path / "fw.bin"
    img.write_bytes(bytes(4096))
    assert cli("update-firmware", "mem0", "-F", str(img), "-y", env=env).exit_code == 0
    (m,) = json.loads(cli("list", "-F", "mem0", "--json", env=env).stdout)
    assert m["firmware"]["fw_update_in_progress"] is True
    assert m["firmware"]["remaining_size"] == 4096
    r = cli("update-firmware", "mem0", "-F", str(img), "-y", env=env)
    assert r.exit_code == 7  # one at a time
    # the part in flight (2000 s here) ends first, then the kernel sends the abort
    r = cli("update-firmware", "mem0", "-c", "--json", env=env)
    assert json.loads(r.stdout)[0]["outcome"] == "changed"
    (m,) = json.loads(cli("list", "-F", "mem0", "--json", env=env).stdout)
    assert "staged_slot" not in m["firmware"]


def test_sanitize_wipes_the_labels_and_wait_sanitize(cli: Cli, tmp_path: Path) -> None:
    env = {**QEMU, "CXLCTL_SIM_STATE": str(tmp_path)}
    assert cli("disable-memdev", "mem0", env=env).exit_code == 0
    r = cli("write-labels", "mem0", "-y", "-s", "64", input=b"\xee" * 64, env=env)
    assert r.exit_code == 0
    assert cli("sanitize", "mem0", env=env).exit_code == 2  # no -y, no terminal
    assert cli("sanitize", "mem0", "--dry-run", env=env).exit_code == 0
    back = cli("read-labels", "mem0", "-s", "64", env=env).stdout_bytes
    assert back == b"\xee" * 64
    r = cli("sanitize", "mem0", "-y", "-w", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    assert cli("read-labels", "mem0", "-s", "64", env=env).stdout_bytes == bytes(64)
    assert cli("wait-sanitize", "mem0", env=env).exit_code == 0
    r = cli("secure-erase", "mem0", "-y", env=env)
    assert r.exit_code == 4  # QEMU 10 has no Secure Erase: no security/erase
    assert cli("secure-erase", "mem0", "-y", "-w").exit_code == 0  # the full profile has it


def test_during_a_sanitize_the_mailbox_is_busy(cli: Cli, tmp_path: Path) -> None:
    env = {**QEMU, "CXLCTL_SIM_STATE": str(tmp_path), "CXLCTL_SIM_TIME_SCALE": "1000"}
    assert cli("sanitize", "mem0", "-y", env=env).exit_code == 0
    assert cli("identify", "mem0", env=env).exit_code == 7  # EBUSY, as Linux
    assert cli("sanitize", "mem0", "-y", env=env).exit_code == 7
    r = cli("wait-sanitize", "mem0", "-t", "50", "--json", env=env)
    assert r.exit_code == 1
    assert "still sanitizing after 50 ms" in json.loads(r.stdout)[0]["reason"]
    (m,) = json.loads(cli("list", "-F", "-I", "mem0", "--json", env=env).stdout)
    assert "firmware" not in m  # as cxl-cli during a sanitize
    assert "partition_info" not in m


def test_sanitize_is_refused_in_an_active_region(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxlctl.backends import SimBackend

    monkeypatch.setattr(SimBackend, "decoders_committed", lambda self, name: 1)
    r = cli("sanitize", "mem0", "-y")
    assert r.exit_code == 7
    assert "part of an active region" in r.stderr


def test_media_poison_verbs(cli: Cli) -> None:
    assert cli("inject-media-poison", "mem0", "-a", "0x2000").exit_code == 2  # no -y
    r = cli("inject-media-poison", "mem0", "-a", "0x2000", "-y", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)[0]["address"] == 0x2000
    r = cli("clear-media-poison", "mem0", "-a", "0x1000", "--json")  # no prompt for clear
    assert r.exit_code == 0, r.stderr
    assert cli("inject-media-poison", "mem0", "-a", "0x2001", "-y").exit_code == 2


# --- the kernel backend at a fake-sysfs seam -------------------------------------------


def test_kernel_writes_equal_cxl_clis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sysfs: Callable[..., FakeSysfs]
) -> None:
    """topology.md 8.1 and 9: the firmware-upload and sanitize writes, in order."""
    fs = fake_sysfs(["pmem", "pmem"])
    writes: list[tuple[str, bytes]] = []
    real = HostSysfs.write

    def record(self: HostSysfs, path: str, data: bytes) -> None:
        writes.append((path, data))
        real(self, path, data)

    monkeypatch.setattr(HostSysfs, "write", record)
    img = tmp_path / "fw.bin"
    img.write_bytes(bytes(range(256)) * 16 + b"x" * 100)  # 4196 bytes: two data writes
    monkeypatch.setattr("cxlctl.transport.SYSFS_CXL_DEVICES", str(fs.bus))
    r = kernel_cli("update-firmware", "mem1", "-F", str(img), "-y")
    assert r.exit_code == 0, r.output
    p = "devices/pci0000:0c/0000:0c:01.0/0000:0e:00.0/mem1"
    assert writes == [
        (f"{p}/firmware/mem1/loading", b"1\n\0"),
        (f"{p}/firmware/mem1/data", img.read_bytes()[:4096]),
        (f"{p}/firmware/mem1/data", img.read_bytes()[4096:]),
        (f"{p}/firmware/mem1/loading", b"0\n\0"),
    ]
    writes.clear()
    r = kernel_cli("update-firmware", "mem1", "--cancel")
    assert writes == [(f"{p}/firmware/mem1/cancel", b"1\n\0")]
    writes.clear()
    r = kernel_cli("sanitize", "mem1", "-y")
    assert r.exit_code == 0, r.output
    assert writes == [(f"{p}/security/sanitize", b"1\n")]
    writes.clear()
    r = kernel_cli("wait-sanitize", "mem1")
    assert (r.exit_code, writes) == (0, [])  # cxl-cli writes nothing either


# --- a 32 MiB image on a terminal ---------------------------------------------------------


def test_32_mib_update_shows_a_progress_bar_and_ends_staged(tmp_path: Path) -> None:
    spawn: type[pexpect.spawn] = pytest.importorskip("pexpect").spawn
    img = tmp_path / "fw32.bin"
    img.write_bytes(os.urandom(1 << 20) * 32)
    child = spawn(
        sys.executable,
        ["-m", "cxlctl", "--sim", "update-firmware", "mem0", "-F", str(img), "-w", "-y"],
        env={**os.environ, **QEMU, "COLUMNS": "100", "NO_COLOR": "1"},
        cwd=str(ROOT),
        timeout=600,
        encoding="utf-8",
        dimensions=(40, 100),
    )
    child.expect_exact("mem0: writing the image")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    out = child.before or ""
    assert "32.0 MiB" in out or "MiB" in out
    assert "slot 2 staged for the next reset" in out


def _signalled_mid_wait(
    args: list[str], env: dict[str, str], what: str
) -> tuple[int, str, dict[str, Any]]:
    """``cxlctl --sim ARGS -o jsonl`` in a process, SIGTERM once a progress event of
    WHAT arrives; (exit code, stderr without the JSON lines, that event)."""
    import signal
    import subprocess

    p = subprocess.Popen(
        [sys.executable, "-m", "cxlctl", "--sim", *args, "-o", "jsonl"],
        cwd=str(ROOT),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert p.stderr is not None
    try:
        while True:  # an empty line (the process ended first) is not JSON: fails
            event = json.loads(p.stderr.readline())
            if event.get("what") == what:
                break
        p.send_signal(signal.SIGTERM)
        err = p.stderr.read().decode()
        p.wait(timeout=120)
    finally:
        p.kill()
    text = "\n".join(x for x in err.splitlines() if not x.startswith("{"))
    return p.returncode, text, event


def test_a_signal_while_waiting_for_an_update_says_it_goes_on(tmp_path: Path) -> None:
    """SIGTERM during `update-firmware -w`: the kernel's worker owns the transfer, so
    the message says the update goes on, how much is left, and how to wait or
    cancel; exit 143. (QEMU's timing: 10 s per Transfer FW part, so it is mid-way.)"""
    import subprocess

    state = tmp_path / "state"
    img = tmp_path / "fw.bin"
    img.write_bytes(os.urandom(64 << 10))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env |= {"CXLCTL_SIM_PROFILE": "qemu", "CXLCTL_SIM_STATE": str(state), "NO_COLOR": "1"}
    rc, err, _ = _signalled_mid_wait(
        ["update-firmware", "mem0", "-F", str(img), "-w", "-y"], env, "transferring"
    )
    assert rc == 143, err
    assert err.splitlines() == [
        "cxlctl: mem0: interrupted: stopped waiting; the image was handed to the kernel and "
        f"the update goes on without cxlctl, {64 << 10} bytes left: `cxlctl update-firmware "
        "mem0 -w` waits for it, `-c` cancels it",
        "cxlctl: interrupted by SIGTERM",
    ], err
    listed = subprocess.run(
        [sys.executable, "-m", "cxlctl", "--sim", "list", "-F", "mem0", "--json"],
        cwd=str(ROOT), env=env, capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert json.loads(listed)[0]["firmware"]["fw_update_in_progress"] is True
    cancel = subprocess.run(
        [sys.executable, "-m", "cxlctl", "--sim", "update-firmware", "mem0", "-c", "--json"],
        cwd=str(ROOT), env=env, capture_output=True,
    )  # fmt: skip
    assert cancel.returncode == 0, cancel.stderr
    assert json.loads(cancel.stdout)[0]["outcome"] == "changed"


def test_a_signal_while_waiting_for_a_sanitize_says_it_goes_on(tmp_path: Path) -> None:
    """SIGTERM during `sanitize -w`: the device cannot be stopped; the message says so
    and how to wait; the progress of a sanitize has no measure (percent null)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env |= {"CXLCTL_SIM_PROFILE": "qemu", "CXLCTL_SIM_STATE": str(tmp_path), "NO_COLOR": "1"}
    rc, err, event = _signalled_mid_wait(["sanitize", "mem1", "-y", "-w"], env, "sanitizing")
    assert (event["total"], event["percent"]) == (0, None)
    assert rc == 143, err
    assert err.splitlines() == [
        "cxlctl: mem1: interrupted: stopped waiting; sanitize goes on in the device (it cannot "
        "be stopped; until it ends the kernel refuses every mailbox command but Get Health "
        "Info): `cxlctl wait-sanitize mem1` waits for it",
        "cxlctl: interrupted by SIGTERM",
    ], err
