"""write-labels, zero-labels, disable-memdev, enable-memdev, set-alert-config: golden
output on the simulator, error paths with their exit codes, and -- on the kernel
backend over a fake sysfs tree -- the exact SEND requests and sysfs writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fakesysfs import FakeSysfs, kernel_cli
from goldens import golden
from simio import Sent

from cxlctl import uapi
from cxlctl.backends import KernelBackend, SimBackend
from cxlctl.memdev import Memdev
from cxlctl.sim import make_devices

K = uapi.CommandId
ROOT = Path(__file__).resolve().parent.parent
LABELS = bytes(range(256)) * 20  # 5120 bytes: three Set LSA commands at payload_max 2048


# --- golden output on the simulator -----------------------------------------------------

GOLDEN_CASES = [
    ("write-labels.json", ["write-labels", "-y", "mem1", "-O", "100", "--verify", "--json"],
     LABELS),
    ("zero-labels.json", ["zero-labels", "-y", "mem1", "-s", "4K", "-O", "0x1000", "--json"], None),
    ("disable-memdev.json", ["disable-memdev", "mem0", "mem2", "--json"], None),
    ("enable-memdev.json", ["enable-memdev", "all", "--json"], None),
    (
        "set-alert-config.json",
        ["set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on",
         "--over-temperature-alert", "off", "-P", "100", "--pmem-err-alert", "on", "--json"],
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "stdin"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden(
    cli: Callable[..., Result], name: str, args: list[str], stdin: bytes | None
) -> None:
    r = cli(*args, input=stdin)
    assert r.exit_code == 0, r.stderr
    golden(f"admin/{name}", r.stdout)


def test_messages_go_to_stderr_and_the_report_to_stdout(cli: Callable[..., Result]) -> None:
    r = cli("write-labels", "-y", "mem1", "-O", "100", input=LABELS)
    assert r.exit_code == 0
    assert r.stderr == "cxlctl: mem1: wrote 5120 bytes at offset 100 (3 Set LSA commands)\n"
    assert "│ mem1   │ 0x1235 │ changed │" in r.stdout
    r = cli("zero-labels", "-y", "mem1", "-s", "64", "--verify")
    assert r.stderr == "cxlctl: mem1: zeroed 64 bytes at offset 0 (1 Set LSA command), verified\n"
    r = cli("disable-memdev", "mem0")
    assert (r.exit_code, r.stderr) == (0, "cxlctl: mem0: disabled\n")
    assert "│ mem0   │ 0x1234 │ changed │" in r.stdout
    r = cli("enable-memdev", "mem0")
    assert (r.exit_code, r.stderr) == (0, "cxlctl: mem0: already enabled\n")
    assert "│ mem0   │ 0x1234 │ unchanged │" in r.stdout


# --- the cxl-cli workflow across processes (CXLCTL_SIM_STATE) ---------------------------

BUSY = (
    "cxlctl: mem0: label area is owned by the nvdimm bridge; "
    "run `cxlctl disable-memdev mem0` first\n"
)


def test_labels_need_disable_memdev(cli: Callable[..., Result], tmp_path: Path) -> None:
    env = {"CXLCTL_SIM_STATE": str(tmp_path)}
    data = b"cxlctl label test" * 10
    r = cli("write-labels", "-y", "mem0", "-O", "4096", input=data, env=env)
    assert (r.exit_code, r.stderr) == (7, BUSY)
    assert cli("zero-labels", "-y", "mem0", "mem1", "-s", "64", env=env).exit_code == 7

    assert cli("disable-memdev", "mem0", env=env).exit_code == 0
    listed = json.loads(cli("list", "-i", "--json", env=env).stdout)
    assert [d.get("state") for d in listed] == ["disabled", None, None]
    hidden = cli("list", "--json", env=env)  # cxl-cli: disabled memdevs need -i
    assert [d["memdev"] for d in json.loads(hidden.stdout)] == ["mem1", "mem2"]
    query = json.loads(cli("query", "mem0", "--json", env=env).stdout)[0]["commands"]
    assert not any(c["exclusive"] for c in query)  # the bridge's claim went with it

    r = cli("write-labels", "-y", "mem0", "-O", "4096", "--verify", input=data, env=env)
    assert r.exit_code == 0, r.stderr
    back = cli("read-labels", "mem0", "-O", "4096", "-s", str(len(data)), env=env)
    assert back.stdout_bytes == data

    r = cli("disable-memdev", "mem0", "--json", env=env)
    assert json.loads(r.stdout) == [
        {"memdev": "mem0", "serial": 0x1234, "changed": False, "outcome": "unchanged",
         "state": "disabled"}
    ]  # fmt: skip
    assert cli("enable-memdev", "mem0", env=env).exit_code == 0
    assert "state" not in json.loads(cli("list", "mem0", "--json", env=env).stdout)[0]
    assert cli("write-labels", "-y", "mem0", input=data, env=env).exit_code == 7


def test_without_state_each_process_starts_fresh(cli: Callable[..., Result]) -> None:
    assert cli("disable-memdev", "mem0").exit_code == 0
    assert "state" not in json.loads(cli("list", "mem0", "--json").stdout)[0]


def test_unbound_sim_memdev_still_answers_ioctls() -> None:
    """Linux 6.12: cxl_memdev_ioctl() needs only cxlmd->cxlds (cxl_pci), so with
    cxl_mem unbound the node answers and Set LSA reaches the device (the kernel
    tier's label round trip does exactly this)."""
    (dev,) = make_devices(["pmem"])
    md = Memdev(SimBackend([dev]), "mem0")
    assert md.labels_owned()
    dev.unbind()
    assert not md.labels_owned()
    assert md.write_labels(b"\x5a" * 16, 0).commands == 1
    assert md.read_lsa(0, 16) == b"\x5a" * 16
    dev.bind()
    assert md.labels_owned()


# --- set-alert-config ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-L", "50"], "Action not specified: --life-used-threshold needs --life-used-alert on"),
        ([], "Action not specified: turn an alert on or off"),
        (["--life-used-alert", "on"], "Threshold not specified"),
        (["-P", "3", "--pmem-err-alert", "off"], "--pmem-err-alert off takes no threshold"),
        (["-L", "101", "--life-used-alert", "on"], "'101' is out of range (0..100)"),
        (["-U", "x", "--under-temperature-alert", "on"], "'x' is not a number"),
    ],
)
def test_set_alert_config_usage(cli: Callable[..., Result], args: list[str], message: str) -> None:
    r = cli("set-alert-config", "mem0", *args)
    assert r.exit_code == 2
    assert message in r.stderr


def test_set_alert_config_needs_a_memdev(cli: Callable[..., Result]) -> None:
    r = cli("set-alert-config", "-L", "50", "--life-used-alert", "on")
    assert r.exit_code == 2
    assert "name the memdevs to change (MEMDEV..., or `all` for every memdev)" in r.stderr


def test_set_alert_config_not_enabled_on_qemu(cli: Callable[..., Result]) -> None:
    r = cli("set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on",
            env={"CXLCTL_SIM_PROFILE": "qemu"})  # fmt: skip
    assert r.exit_code == 4
    assert "Set Alert Configuration (opcode 0x4202) is not enabled for this device [ENOTTY]" in (
        r.stderr
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-O", "90", "--over-temperature-alert", "on"],  # above the 85 C critical threshold
        ["-U", "-20", "--under-temperature-alert", "on"],  # below the -10 C critical one
        ["-L", "95", "--life-used-alert", "on"],  # not below the 95 % critical one
    ],
)
def test_set_alert_config_invalid_input(cli: Callable[..., Result], args: list[str]) -> None:
    r = cli("set-alert-config", "mem0", *args)
    assert r.exit_code == 3
    assert "device returned Invalid Input" in r.stderr


def test_alert_config_shows_the_change(cli: Callable[..., Result], tmp_path: Path) -> None:
    env = {"CXLCTL_SIM_STATE": str(tmp_path)}
    r = cli("set-alert-config", "mem1", "-V", "7", "--volatile-mem-err-alert", "on", env=env)
    assert r.exit_code == 0, r.stderr
    (after,) = json.loads(cli("alert-config", "mem1", "--json", env=env).stdout)
    assert after["corrected_volatile_mem_err_prog_warn_threshold_valid"] is True
    assert after["corrected_volatile_mem_err_prog_warn_threshold"] == 7
    assert after["life_used_prog_warn_threshold"] == 75  # untouched
    r = cli("set-alert-config", "mem1", "--volatile-mem-err-alert", "off", env=env)
    (after,) = json.loads(cli("alert-config", "mem1", "--json", env=env).stdout)
    assert after["corrected_volatile_mem_err_prog_warn_threshold_valid"] is False
    (fresh,) = json.loads(cli("alert-config", "mem1", "--json").stdout)
    assert fresh["corrected_volatile_mem_err_prog_warn_threshold"] == 0


# --- write-labels input errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], b"", "stdin is empty: nothing to write"),
        (["-s", "100"], b"x" * 10, "short input: stdin has 10 of 100 bytes"),
        (["-O", str((256 << 20) - 16)], b"x" * 17, "is larger than the 16 bytes of label area"),
        (["-O", "256M"], b"x", "beyond the 268435456-byte label area"),
        (["-O", "0x100", "-s", "256M"], b"x", "goes past the 268435456-byte label area"),
        (["-s", "0"], b"x", "--size: must be at least 1"),
        (["-i", "/nonexistent/labels.bin"], None, "/nonexistent/labels.bin: No such file"),
    ],
)
def test_write_labels_input_errors(
    cli: Callable[..., Result], args: list[str], stdin: bytes | None, message: str
) -> None:
    r = cli("write-labels", "-y", "mem1", *args, input=stdin)
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr


def test_write_labels_size_takes_a_prefix_like_cxl_cli(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    f = tmp_path / "in.bin"
    f.write_bytes(LABELS)
    r = cli("write-labels", "-y", "mem1", "-i", str(f), "-s", "300", "--json")
    assert json.loads(r.stdout)[0]["length"] == 300


def test_write_labels_closed_stdin() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CXLCTL_BACKEND": "sim", "NO_COLOR": "1"}
    env.pop("CXLCTL_SIM_STATE", None)
    p = subprocess.run(
        ["bash", "-c", f'exec "{sys.executable}" -m cxlctl write-labels mem1 <&-'],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert p.returncode == 2
    assert "no input: stdin is closed" in p.stderr


def test_zero_labels_needs_a_memdev(cli: Callable[..., Result]) -> None:
    r = cli("zero-labels")
    assert r.exit_code == 2
    assert "name the memdevs to change (MEMDEV..., or `all` for every memdev)" in r.stderr


# --- the kernel backend over a fake sysfs tree ----------------------------------------


CXL_MEM = "bus/cxl/drivers/cxl_mem"


class Kernel:
    """The cxl_mem driver over a fake /sys (tests/fakesysfs.py) for one pmem memdev:
    bind/unbind are plain files, and writing one applies the change synchronously,
    as the kernel does (no thread: a thread serving a FIFO would let the writer run
    on before the change is complete)."""

    def __init__(self, fs: FakeSysfs) -> None:
        self.fs = fs
        self.dev = fs.devices["mem0"]
        self.sent = fs.sent
        self.writes: list[tuple[str, str]] = []

    @property
    def mem(self) -> Path:
        return self.fs.real("mem0")

    def kernel_write(self, path: Path) -> None:
        """What the kernel does when ``path`` is written: bind/unbind of cxl_mem finish
        before write() returns, and the tree shows the whole change at once (the
        nvdimm bridge's exclusive bits included)."""
        rel = self.fs.relpath(path)  # memN/driver/unbind is the driver's own unbind
        data = (self.fs.root / rel).read_text()
        self.writes.append((rel, data))
        if data == "mem0" and rel in (
            "bus/cxl/drivers/cxl_mem/bind",
            "bus/cxl/drivers/cxl_mem/unbind",
        ):
            if rel.endswith("/bind"):
                self.dev.bind()
            else:
                self.dev.unbind()
            self.fs.refresh()


@pytest.fixture
def fake(
    fake_sysfs: Callable[..., FakeSysfs], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Kernel]:
    """``fake(bridge=, committed=, profile=)``: mem0 bound to cxl_mem, with (``bridge``)
    or without an nvdimm bridge owning its labels, and ``committed`` endpoint decoders
    (None: no endpoint port at all)."""

    def make(*, bridge: bool = True, committed: int | None = 0, profile: str = "full") -> Kernel:
        (dev,) = make_devices(["pmem"], profile=profile)
        dev.driver.nvdimm_bridge = bridge
        dev.driver.bind()
        fs = fake_sysfs(devices=[dev])
        if not bridge:
            fs.remove("bus/cxl/devices/mem0/pmem0")
            fs.remove("bus/cxl/devices/pmem0")
        if committed is None:
            fs.remove("bus/cxl/devices/endpoint2")
            fs.remove("devices/platform/ACPI0017:00/root0/port1/endpoint2")
        else:
            fs.set("bus/cxl/devices/endpoint2/decoders_committed", str(committed))
        k = Kernel(fs)
        write_attr = KernelBackend._write_attr

        def write_attr_(self: KernelBackend, name: str, path: str) -> None:
            write_attr(self, name, path)  # the library's own write, to a plain file
            k.kernel_write(Path(path))

        monkeypatch.setattr(KernelBackend, "_write_attr", write_attr_)
        return k

    return make


def kernel(*args: str, input: bytes | None = None) -> Result:
    return kernel_cli(*args, input=input)


def _set_lsa(offset: int, data: bytes) -> Sent:
    return Sent(K.SET_LSA, offset.to_bytes(4, "little") + bytes(4) + data, 0)


def test_seam_write_labels_chunks(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=False)
    r = kernel("write-labels", "-y", "mem0", "-O", "100", input=LABELS)
    assert r.exit_code == 0, r.stderr
    assert fs.sent == [
        _set_lsa(100, LABELS[:2040]),
        _set_lsa(2140, LABELS[2040:4080]),
        _set_lsa(4180, LABELS[4080:]),
    ]
    assert all(len(s.payload) <= 2048 for s in fs.sent)
    assert fs.dev.device.lsa[100 : 100 + len(LABELS)] == LABELS


def test_seam_write_labels_verify_reads_back(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=False)
    r = kernel("write-labels", "-y", "mem0", "-s", "3000", "--verify", input=LABELS)
    assert r.exit_code == 0, r.stderr
    assert [s.id for s in fs.sent] == [K.SET_LSA, K.SET_LSA, K.GET_LSA, K.GET_LSA]
    assert fs.sent[2:] == [
        Sent(K.GET_LSA, (0).to_bytes(4, "little") + (2048).to_bytes(4, "little"), 2048),
        Sent(K.GET_LSA, (2048).to_bytes(4, "little") + (952).to_bytes(4, "little"), 2048),
    ]


def test_seam_zero_labels_chunks(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=False)
    fs.dev.device.lsa[0:8192] = b"\xff" * 8192
    r = kernel("zero-labels", "-y", "mem0", "-s", "5000", "-O", "0x10")
    assert r.exit_code == 0, r.stderr
    assert fs.sent == [
        _set_lsa(0x10, bytes(2040)),
        _set_lsa(0x10 + 2040, bytes(2040)),
        _set_lsa(0x10 + 4080, bytes(920)),
    ]
    assert fs.dev.device.lsa[0:0x10] == b"\xff" * 0x10
    assert fs.dev.device.lsa[0x10 : 0x10 + 5000] == bytes(5000)


def test_seam_labels_refused_while_the_bridge_is_bound(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=True)
    r = kernel("write-labels", "-y", "mem0", input=LABELS)
    assert (r.exit_code, r.stderr) == (7, BUSY)
    r = kernel("zero-labels", "-y", "mem0", "-s", "64")
    assert (r.exit_code, r.stderr) == (7, BUSY)
    assert fs.sent == []  # refused up front: nothing reached the kernel


def test_seam_labels_refused_when_query_says_exclusive(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=True)
    fs.fs.remove("bus/cxl/devices/mem0/pmem0/driver")  # sysfs does not show it; QUERY does
    r = kernel("write-labels", "-y", "mem0", input=LABELS)
    assert (r.exit_code, r.stderr) == (7, BUSY)
    assert fs.sent == []


def test_seam_ebusy_from_set_lsa(
    fake: Callable[..., Kernel], monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = fake(bridge=True)
    monkeypatch.setattr(Memdev, "labels_owned", lambda self: False)  # a race: bound meanwhile
    r = kernel("write-labels", "-y", "mem0", input=LABELS)
    assert (r.exit_code, r.stderr) == (
        7,
        BUSY[:-1] + "; nothing was written (5120 bytes at 0x0 unchanged)\n",
    )
    assert [s.id for s in fs.sent] == [K.SET_LSA]  # the kernel said EBUSY to the first


def test_seam_partial_write_is_reported(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=False)
    fs.dev.config.lsa_size = 4096  # the device's area is smaller than sysfs claims
    r = kernel("write-labels", "-y", "mem0", "-O", "100", input=LABELS)
    assert r.exit_code == 3
    assert "2040 of 5120 bytes were written (0x64..0x85c, 1 Set LSA command); " in r.stderr
    assert "0x85c..0x1464 was not written" in r.stderr
    assert "set-lsa: device returned Invalid Input" in r.stderr
    assert len(fs.sent) == 2


def test_seam_input_larger_than_the_area_sends_nothing(fake: Callable[..., Kernel]) -> None:
    fs = fake(bridge=False)
    r = kernel("write-labels", "-y", "mem0", "-O", str((256 << 20) - 100), input=bytes(101))
    assert r.exit_code == 2
    assert fs.sent == []


def test_seam_disable_and_enable_write_sysfs(fake: Callable[..., Kernel]) -> None:
    fs = fake()
    r = kernel("disable-memdev", "mem0", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"memdev": "mem0", "serial": 0x1234, "changed": True, "outcome": "changed",
         "state": "disabled"}
    ]  # fmt: skip
    assert fs.writes == [("bus/cxl/drivers/cxl_mem/unbind", "mem0")]
    assert json.loads(kernel("list", "--json").stdout) == []  # hidden without -i
    (listed,) = json.loads(kernel("list", "-i", "--json").stdout)
    assert listed["state"] == "disabled"
    # the bridge is gone: labels can be written now
    r = kernel("write-labels", "-y", "mem0", "-s", "16", input=LABELS)
    assert r.exit_code == 0, r.stderr
    assert kernel("disable-memdev", "mem0").stderr == "cxlctl: mem0: already disabled\n"

    r = kernel("enable-memdev", "mem0")
    assert (r.exit_code, r.stderr) == (0, "cxlctl: mem0: enabled\n")
    assert fs.writes[1:] == [("bus/cxl/drivers/cxl_mem/bind", "mem0")]
    assert "state" not in json.loads(kernel("list", "--json").stdout)[0]
    assert kernel("enable-memdev", "mem0").stderr == "cxlctl: mem0: already enabled\n"
    assert len(fs.writes) == 2


def test_seam_disable_refuses_an_active_region(fake: Callable[..., Kernel]) -> None:
    fs = fake(committed=1)
    r = kernel("disable-memdev", "mem0")
    assert r.exit_code == 7
    assert "mem0 is part of an active region (1 committed endpoint decoders)" in r.stderr
    assert "--force" in r.stderr
    assert fs.writes == []
    r = kernel("disable-memdev", "mem0", "-f")
    assert r.exit_code == 0, r.stderr
    assert "DANGEROUS: disabling anyway (--force)" in r.stderr
    assert fs.writes == [("bus/cxl/drivers/cxl_mem/unbind", "mem0")]


def test_seam_disable_refuses_without_an_endpoint(fake: Callable[..., Kernel]) -> None:
    fs = fake(committed=None)
    r = kernel("disable-memdev", "mem0")
    assert r.exit_code == 7
    assert "no endpoint port found" in r.stderr
    assert fs.writes == []


def test_seam_set_alert_config_request(fake: Callable[..., Kernel]) -> None:
    fs = fake()
    r = kernel("set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on",
               "--over-temperature-alert", "off", "-U", "-5", "--under-temperature-alert", "on",
               "-P", "258", "--pmem-err-alert", "on")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    payload = bytes([0b10111, 0b10101, 80, 0]) + (0).to_bytes(2, "little")
    payload += (-5).to_bytes(2, "little", signed=True) + bytes(2) + (258).to_bytes(2, "little")
    assert fs.sent[0] == Sent(K.SET_ALERT_CONFIG, payload, 0)
    assert [s.id for s in fs.sent[1:]] == [K.GET_ALERT_CONFIG]


def test_seam_set_alert_config_enotty_on_qemu(fake: Callable[..., Kernel]) -> None:
    fs = fake(profile="qemu")
    r = kernel("set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on")
    assert r.exit_code == 4
    assert "[ENOTTY]" in r.stderr
    assert [s.id for s in fs.sent] == [K.SET_ALERT_CONFIG]
