"""cxlctl's commands against the real Linux driver and QEMU's cxl-type3 (both stacks).

Run as ``python3 -m cxlctl`` subprocesses, the way a user runs them: exit codes
and messages are part of what is checked.  Commands other engineers are still
adding are tested when ``cxlctl --help`` lists them and skipped otherwise.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cxlctl import transport as tp
from cxlctl import uapi
from cxlctl.uapi import CommandId as K

from .conftest import STACK, Memdev, cli_commands, cxlctl, cxlctl_bytes


def need(cmd: str) -> None:
    if cmd not in cli_commands():
        pytest.skip(f"`cxlctl {cmd}` does not exist (yet)")


def ok_json(*args: str) -> Any:
    r = cxlctl(*args, "--json")
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def test_list_matches_sysfs(memdevs: list[Memdev]) -> None:
    got = {d["serial"]: d for d in ok_json("list")}
    assert sorted(got) == [m.serial for m in memdevs]
    for m in memdevs:
        d = got[m.serial]
        assert d["memdev"] == m.name
        assert d["host"] == m.host
        assert d.get("pmem_size", 0) == m.pmem_size
        assert d.get("ram_size", 0) == m.ram_size
        assert d["firmware_version"] == "BWFW VERSION 00"


def test_list_table(memdevs: list[Memdev]) -> None:
    r = cxlctl("list")
    assert r.returncode == 0, r.stderr
    for m in memdevs:
        assert m.name in r.stdout


def test_query_is_the_kernel_table(pmem: Memdev) -> None:
    (d,) = ok_json("query", pmem.name)
    with tp.KernelTransport(pmem.name) as t:
        table = tp.query(t)
    assert len(d["commands"]) == len(table) == 25
    for row, info in zip(d["commands"], table, strict=True):
        sizes = [
            uapi.CXL_VARIABLE_PAYLOAD if n is None else n for n in (row["size_in"], row["size_out"])
        ]
        assert (row["id"], row["flags"], *sizes) == (
            info.id,
            info.flags,
            info.size_in,
            info.size_out,
        )
    by_id = {c.id: c for c in table}
    assert by_id[K.IDENTIFY].enabled
    assert by_id[K.IDENTIFY].size_out == 67
    assert by_id[K.SET_LSA].exclusive  # the nvdimm bridge holds the label area
    assert not by_id[K.GET_HEALTH_INFO].enabled  # QEMU's CEL lacks it (10 and 11)
    # QEMU 11 lists Get/Set Alert Configuration in its CEL, QEMU 10 does not
    assert by_id[K.GET_ALERT_CONFIG].enabled is STACK.alert_config
    assert by_id[K.SET_ALERT_CONFIG].enabled is STACK.alert_config


def test_identify(memdevs: list[Memdev]) -> None:
    for m in memdevs:
        (d,) = ok_json("identify", m.name)
        assert d["memdev"] == m.name
        assert d["firmware_version"] == "BWFW VERSION 00"
        assert d["total_size"] == m.pmem_size + m.ram_size
        assert d["persistent_only_size"] == m.pmem_size
        assert d["volatile_only_size"] == m.ram_size
        assert d["label_storage_size"] == m.lsa_size
        assert d["poison_list_max_mer"] == 256


def test_identify_table(pmem: Memdev) -> None:
    r = cxlctl("identify", pmem.name)
    assert r.returncode == 0, r.stderr
    assert "BWFW VERSION 00" in r.stdout


#: Read-only commands: (name, extra args, expected exit code on this stack's cxl-type3).
READS: list[tuple[str, tuple[str, ...], int]] = [
    ("partition", (), 0),
    ("fw-info", (), 0),
    ("timestamp", (), 0),
    ("logs", (), 0),
    ("cel", (), 0),
    ("security-state", (), 0),
    ("health", (), 4),  # Get Health Info is not in QEMU's CEL: ENOTTY
    ("alert-config", (), 0 if STACK.alert_config else 4),  # QEMU 11 has it
    ("shutdown-state", (), 4),
]


@pytest.mark.parametrize(("cmd", "extra", "code"), READS, ids=[r[0] for r in READS])
def test_read_command(pmem: Memdev, cmd: str, extra: tuple[str, ...], code: int) -> None:
    need(cmd)
    r = cxlctl(cmd, *extra, pmem.name, "--json")
    assert "Traceback" not in r.stderr
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    if code == 0:
        (d,) = json.loads(r.stdout)
        assert d["memdev"] == pmem.name
    elif code == 4:
        # the CEL is why the kernel left the command disabled, and the message says so
        assert ": not available on this device: its Command Effects Log does not list" in r.stderr
        assert "[ENOTTY]" in r.stderr
        assert r.stderr.startswith(f"cxlctl: {pmem.name}: ")


def test_partition_values(pmem: Memdev) -> None:
    need("partition")
    (d,) = ok_json("partition", pmem.name)
    flat = json.dumps(d)
    assert str(pmem.pmem_size) in flat


def _sim_cel() -> bytes:
    """The CEL of the simulator profile that models this stack's QEMU."""
    from cxlctl.sim import DeviceConfig, TypeThreeDevice

    return TypeThreeDevice(DeviceConfig(profile=STACK.sim_profile, lsa_size=0)).cel_bytes()


def test_cel_is_qemus(pmem: Memdev) -> None:
    need("cel")
    (d,) = ok_json("cel", pmem.name)
    from cxlctl.sim import QEMU11_CEL, QEMU_CEL

    assert len(d["entries"]) == STACK.cel_entries
    assert [e["opcode"] for e in d["entries"]] == list(
        QEMU11_CEL if STACK.sim_profile == "qemu11" else QEMU_CEL
    )
    cel = _sim_cel()
    effects = [int.from_bytes(cel[i + 2 : i + 4], "little") for i in range(0, len(cel), 4)]
    assert [e["effect"] for e in d["entries"]] == effects


def test_get_log_cel(pmem: Memdev) -> None:
    need("get-log")
    raw = cxlctl_bytes("get-log", "cel", pmem.name, "-o", "raw")  # binary: not UTF-8
    assert raw == _sim_cel()
    assert len(raw) == 4 * STACK.cel_entries
    r = cxlctl("get-log", "cel", pmem.name, "--offset", "8", "--length", "16", "--json")
    assert r.returncode == 0, r.stderr


def test_read_labels(pmem: Memdev) -> None:
    need("read-labels")
    r = cxlctl("read-labels", pmem.name, "-s", "64", "-O", "4096")
    assert r.returncode == 0, r.stderr


def test_other_read_commands_do_not_crash(pmem: Memdev) -> None:
    """Commands added after this test was written: run them and demand a clean answer."""
    known = {c for c, _, _ in READS} | {
        "list", "query", "identify", "get-log", "read-labels", "send", "raw",
        "completion", "decode", "log-caps", "help",
    }  # fmt: skip
    writes = re.compile(r"set|clear|inject|write|update|sanit|activ|transfer|delete|disable|enable|"
                        r"scan|erase|zero|create|destroy|reset|wait|monitor|watch")  # fmt: skip
    tried = []
    for cmd in cli_commands():
        if cmd in known or writes.search(cmd):
            continue
        r = cxlctl(cmd, pmem.name, "--json")
        assert "Traceback" not in r.stderr, (cmd, r.stderr)
        assert r.returncode in (0, 2, 4), (cmd, r.returncode, r.stderr)
        tried.append(cmd)
    if not tried:
        pytest.skip("no further read commands in `cxlctl --help`")


# --- errors a user meets ---------------------------------------------------------


def test_non_root_open_is_exit_5(pmem: Memdev) -> None:
    r = cxlctl("identify", pmem.name, user=65534)
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "run as root" in r.stderr
    assert "[EACCES]" in r.stderr


def test_raw_is_eperm_exit_5(pmem: Memdev) -> None:
    r = cxlctl("raw", pmem.name, "0x4000")
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "[EPERM]" in r.stderr
    assert "CONFIG_CXL_MEM_RAW_COMMANDS" in r.stderr


def test_health_is_enotty_exit_4(pmem: Memdev) -> None:
    r = cxlctl("send", pmem.name, "get-health-info")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "[ENOTTY]" in r.stderr


def test_send_identify_bad_reserved_is_exit_8(pmem: Memdev) -> None:
    r = cxlctl("send", pmem.name, "identify", "--set", "in.rsvd=1")
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert "[EINVAL]" in r.stderr


def test_send_identify_short_out_is_exit_9(pmem: Memdev) -> None:
    r = cxlctl("send", pmem.name, "identify", "--out-size", "66")
    assert r.returncode == 9, (r.returncode, r.stderr)
    assert "[ENOMEM]" in r.stderr


def test_unknown_memdev_is_exit_6() -> None:
    r = cxlctl("identify", "mem99")
    assert r.returncode == 6, (r.returncode, r.stderr)


def test_identify_69_bytes_through_library(pmem: Memdev) -> None:
    """QEMU 10 and 11 return 69 bytes for Identify when out.size allows (size_out is 67)."""
    with tp.KernelTransport(pmem.name) as t:
        res = tp.send(t, tp.SendRequest(K.IDENTIFY, out_size=pmem.payload_max))
        assert len(res.out) == 69
        assert res.retval == 0
        res = tp.send(t, tp.SendRequest(K.IDENTIFY, out_size=67))
        assert len(res.out) == 67
    assert uapi.CXL_MEM_SEND_COMMAND
