"""Get/Set Event Interrupt Policy (0x0102/0x0103): decoder, simulated device, CLI.

The command docs/adding-a-command.md walks through: a record, a layout, a typed
decoder, the device's behaviour (QEMU 10's cmd_events_get/set_interrupt_policy)
and a CLI verb that goes through RAW because Linux 6.12 has no command id for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from goldens import golden

from cxlctl import mailbox as mb
from cxlctl.errors import DecodeError, ExitCode, UnsupportedCommand
from cxlctl.mailbox.events import decode_event_interrupt_policy
from cxlctl.sim import make_devices

Cli = Callable[..., Result]
RAW = {"CXLCTL_SIM_RAW": "1"}
RC = mb.ReturnCode


def test_decode_cxl2_and_cxl3_payloads() -> None:
    v = decode_event_interrupt_policy(bytes([0x21, 0x00, 0x42, 0x5D]))
    assert (v.info.mode, v.info.message_number, v.info.settings) == ("msi_msix", 2, 0x21)
    assert v.warn.mode == "none"
    assert (v.fail.mode, v.fail.message_number) == ("fw", 4)
    assert (v.fatal.mode, v.fatal.message_number, v.fatal.reserved_bits) == ("msi_msix", 5, 3)
    assert v.dynamic_capacity is None  # a CXL 2.0 device answers 4 bytes
    assert v.trailing_bytes == 0
    v3 = decode_event_interrupt_policy(bytes([0, 0, 0, 0, 0x03, 0xAA]))
    assert v3.dynamic_capacity is not None
    assert v3.dynamic_capacity.mode == "reserved"
    assert v3.trailing_bytes == 1
    with pytest.raises(DecodeError, match="get-event-interrupt-policy: payload is 3 bytes"):
        decode_event_interrupt_policy(bytes(3))


def test_device_get_reports_what_linux_probe_enabled() -> None:
    dev = make_devices(["pmem"])[0].device
    rc, out = dev.execute(0x0102, b"")
    # MSI/MSI-X on QEMU's vectors 2..5 for the four logs, nothing for dynamic capacity
    assert (rc, out) == (RC.SUCCESS, bytes([0x21, 0x31, 0x41, 0x51, 0x00]))
    assert dev.execute(0x0102, b"\0") == (RC.INVALID_PAYLOAD_LENGTH, b"")


def test_device_set_follows_qemu() -> None:
    dev = make_devices(["pmem"])[0].device
    assert dev.execute(0x0103, bytes(3)) == (RC.INVALID_PAYLOAD_LENGTH, b"")
    # FW interrupt (2) and no interrupts (0) both turn the MSI/MSI-X interrupt off;
    # the message number asked for is ignored; a 4-byte input leaves dynamic capacity
    assert dev.execute(0x0103, bytes([0x01, 0x02, 0xF1, 0x00])) == (RC.SUCCESS, b"")
    assert dev.execute(0x0102, b"")[1] == bytes([0x21, 0x00, 0x41, 0x00, 0x00])
    assert dev.execute(0x0103, bytes([0, 0, 0, 0, 1])) == (RC.SUCCESS, b"")
    assert dev.execute(0x0102, b"")[1] == bytes([0, 0, 0, 0, 0x01])


def test_qemu_profile_answers_it_too() -> None:
    dev = make_devices(["pmem"], profile="qemu")[0].device
    assert {0x0102, 0x0103} <= set(dev.cel)
    assert dev.execute(0x0102, b"")[0] == RC.SUCCESS


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("event-interrupt-policy-mem0.txt", ["event-interrupt-policy", "mem0"]),
        ("event-interrupt-policy.json", ["event-interrupt-policy", "mem0", "mem2", "--json"]),
    ],
)
def test_golden(cli: Cli, name: str, args: list[str]) -> None:
    r = cli(*args, env=RAW)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    golden(f"info/{name}", r.stdout)


def test_without_raw_the_kernel_cannot_send_it(cli: Cli) -> None:
    r = cli("event-interrupt-policy", "mem0")
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert r.stdout == ""
    assert r.stderr.startswith(
        "cxlctl: mem0: get-event-interrupt-policy: not available on this kernel, because"
        " Linux 6.12 has no command id for Get Event Interrupt Policy (0x0102), and RAW is"
        " not enabled (CONFIG_CXL_MEM_RAW_COMMANDS)"
    )
    assert "CONFIG_CXL_MEM_RAW_COMMANDS" in r.stderr


def test_the_library_raises_unsupported_without_raw() -> None:
    from cxlctl.backends import SimBackend

    md = SimBackend(devices=make_devices(["pmem"])).memdev("mem0")
    with pytest.raises(UnsupportedCommand, match="RAW is not enabled"):
        md.event_interrupt_policy()
    raw = SimBackend(devices=make_devices(["pmem"], raw_commands=True)).memdev("mem0")
    assert raw.event_interrupt_policy().fatal.message_number == 5


def test_a_policy_set_through_raw_survives_the_process(cli: Cli, tmp_path: Path) -> None:
    env = {**RAW, "CXLCTL_SIM_STATE": str(tmp_path)}
    r = cli("raw", "mem0", "0x0103", "-i", "01000001", env=env)
    assert r.exit_code == 0, r.stderr
    r = cli("event-interrupt-policy", "mem0", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    (d,) = json.loads(r.stdout)
    assert [d[k]["mode"] for k in ("info", "warn", "fail", "fatal")] == [
        "msi_msix", "none", "none", "msi_msix",
    ]  # fmt: skip
    # another memdev and a fresh state directory keep what Linux's probe set
    (other,) = json.loads(cli("event-interrupt-policy", "mem1", "--json", env=env).stdout)
    assert other["warn"]["mode"] == "msi_msix"


def test_set_reports_before_and_after_as_the_get_verb_prints_them(cli: Cli, tmp_path: Path) -> None:
    env = {**RAW, "CXLCTL_SIM_STATE": str(tmp_path)}

    def policy() -> dict[str, Any]:
        (d,) = json.loads(cli("event-interrupt-policy", "mem0", "--json", env=env).stdout)
        del d["memdev"]
        return dict(d)

    before = policy()
    r = cli("set-event-interrupt-policy", "mem0", "--info", "none", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["changed"] is True
    assert row["before"] == before
    assert row["after"] == policy()
    assert (before["info"]["mode"], row["after"]["info"]["mode"]) == ("msi_msix", "none")
