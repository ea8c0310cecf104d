"""The CLI's core commands on the simulator: golden output, exit codes, pipes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from goldens import golden

from cxlctl import uapi

Cli = Callable[..., Result]
CliJson = Callable[..., Any]
QEMU = {"CXLCTL_SIM_PROFILE": "qemu"}


# --- golden output ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("list.json", ["list", "--json"]),
        ("list-u.json", ["list", "-u", "--json"]),
        ("list.txt", ["list"]),
        ("identify.json", ["identify", "--json"]),
        ("identify-mem0.txt", ["identify", "mem0"]),
        ("query-mem0.json", ["query", "mem0", "--json"]),
        ("query-mem0.txt", ["query", "mem0"]),
        ("send-fw-info.txt", ["send", "mem0", "get-fw-info"]),
        ("send-lsa-hex.txt", ["send", "mem0", "get-lsa", "-x", "00000000 20000000", "-o", "hex"]),
        ("dry-run.txt", ["send", "mem1", "get-lsa", "-x", "00100000 40000000", "--dry-run"]),
        ("dry-run-raw.json", ["raw", "mem0", "0x4303", "-x", "00" * 16, "--dry-run", "--json"]),
    ],
)
def test_golden(cli: Cli, name: str, args: list[str]) -> None:
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    golden(f"core/{name}", r.stdout)


def test_table_output_is_marked_simulated(cli: Cli) -> None:
    assert "[simulated]" in cli("list").stdout
    assert "[simulated]" not in cli("list", "--json").stdout


# --- JSON contracts -----------------------------------------------------------------


def test_identify_json_matches_the_device(cli_json: CliJson) -> None:
    out = cli_json("identify", "--json")
    assert [d["memdev"] for d in out] == ["mem0", "mem1", "mem2"]
    mem0, mem1, mem2 = out
    assert mem0["firmware_version"] == "BWFW VERSION 00"
    assert (mem0["total_size"], mem0["persistent_only_size"]) == (256 << 20, 256 << 20)
    assert (mem1["volatile_only_size"], mem1["persistent_only_size"]) == (256 << 20, 0)
    assert mem2["total_size"] == 512 << 20
    assert mem0["label_storage_size"] == 256 << 20
    assert mem0["poison_list_max_mer"] == 256


def test_json_shape_does_not_depend_on_the_count(cli_json: CliJson) -> None:
    one = cli_json("identify", "mem1", "--json")
    assert isinstance(one, list)
    assert len(one) == 1
    assert one[0]["memdev"] == "mem1"
    assert isinstance(cli_json("list", "mem0", "--json"), list)


def test_memdev_accepts_dev_path(cli_json: CliJson) -> None:
    assert cli_json("list", "/dev/cxl/mem2", "--json")[0]["memdev"] == "mem2"


def test_query_json_is_the_kernel_table_with_qemu_flags(cli_json: CliJson) -> None:
    (entry,) = cli_json("query", "mem0", "--json", env=QEMU)
    cmds = entry["commands"]
    assert len(cmds) == uapi.CommandId.MAX
    enabled = {c["id"] for c in cmds if c["enabled"]}
    exclusive = {c["id"] for c in cmds if c["exclusive"]}
    # from tests/data/reference: the QUERY table of Linux 6.12 on QEMU 10
    assert enabled == {1, 3, 4, 5, 6, 8, 10, 18, 21}
    assert exclusive == {10, 14}
    by_id = {c["id"]: c for c in cmds}
    assert by_id[1]["size_out"] == 67
    assert by_id[3]["size_out"] is None  # variable
    assert by_id[6]["name"] == "get-lsa"
    assert by_id[6]["opcode"] == 0x4102


def test_query_full_profile_enables_what_the_cel_lists(cli_json: CliJson) -> None:
    (entry,) = cli_json("query", "mem0", "--json")
    enabled = {c["id"] for c in entry["commands"] if c["enabled"]}
    assert {7, 11, 12, 13, 14, 22, 23, 24} <= enabled


def test_send_decodes_and_reports_return_code(cli_json: CliJson) -> None:
    (out,) = cli_json("send", "mem0", "get-partition-info", "--json")
    assert (out["retval"], out["return_code"], out["out_size"]) == (0, "Success", 32)
    assert out["decoded"]["active_persistent_size"] == 256 << 20


def test_send_raw_output_round_trips(cli: Cli, tmp_path: Path) -> None:
    r = cli("send", "mem0", "identify", "-o", "raw")
    assert r.exit_code == 0
    assert len(r.stdout_bytes) == 69
    assert r.stdout_bytes.startswith(b"BWFW VERSION 00\0")


def test_send_input_from_file_and_stdin(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "in.bin"
    f.write_bytes(bytes.fromhex("00000000 08000000"))
    a = cli("send", "mem0", "get-lsa", "-i", str(f), "-o", "hex")
    b = cli("send", "mem0", "get-lsa", "-i", "-", "-o", "hex", input=f.read_bytes())
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout == "00000000: 0000 0000 0000 0000" + " " * 20 + "  ........\n"


def test_raw_with_a_raw_kernel(cli_json: CliJson) -> None:
    (out,) = cli_json("raw", "mem0", "0x4000", "--json", env={"CXLCTL_SIM_RAW": "1"})
    assert out["command"] == "raw 0x4000 (identify)"
    assert out["out_size"] == 69
    assert out["decoded"]["firmware_version"] == "BWFW VERSION 00"


# --- errors: one line, the right exit code ---------------------------------------------

#: The reference capture's invalid requests, as a user reaches them from the CLI.
ERROR_CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    (
        "RAW opcode",
        ["raw", "mem0", "0x4000"],
        {},
        5,
        r"raw 0x4000 \(identify\): not permitted \[EPERM\].*CONFIG_CXL_MEM_RAW_COMMANDS",
    ),
    ("unknown id", ["send", "mem0", "9999"], {}, 4, r"mem0: id 9999: not supported .*\[ENOTTY\]"),
    ("id 0", ["send", "mem0", "0"], {}, 4, r"\[ENOTTY\]"),
    ("id MAX", ["send", "mem0", "25"], {}, 4, r"\[ENOTTY\]"),
    ("deprecated", ["send", "mem0", "15", "-x", "00" * 16], {}, 4, r"\[ENOTTY\]"),
    (
        "flags",
        ["send", "mem0", "identify", "--flags", "4"],
        {},
        8,
        r"identify: rejected .*\[EINVAL\]",
    ),
    ("rsvd", ["send", "mem0", "identify", "--set", "rsvd=1"], {}, 8, r"\[EINVAL\]"),
    ("in.rsvd", ["send", "mem0", "identify", "--set", "in.rsvd=1"], {}, 8, r"\[EINVAL\]"),
    ("out.rsvd", ["send", "mem0", "identify", "--set", "out.rsvd=1"], {}, 8, r"\[EINVAL\]"),
    (
        "in.size 4",
        ["send", "mem0", "identify", "-x", "00000000"],
        {},
        9,
        r"in.size or out.size .*\[ENOMEM\]",
    ),
    ("in.size big", ["send", "mem0", "identify", "--set", "in.size=2049"], {}, 8, r"\[EINVAL\]"),
    ("out.size 0x42", ["send", "mem0", "identify", "--out-size", "0x42"], {}, 9, r"\[ENOMEM\]"),
    ("out.size 0", ["send", "mem0", "identify", "--out-size", "0"], {}, 9, r"\[ENOMEM\]"),
    ("get-lsa 4", ["send", "mem0", "get-lsa", "-x", "00000000"], {}, 9, r"get-lsa: .*\[ENOMEM\]"),
    (
        "set-lsa",
        ["send", "mem0", "set-lsa", "-x", "00" * 16],
        {},
        7,
        r"set-lsa: the kernel has claimed .*\[EBUSY\].*disable the memdev",
    ),
    (
        "set-partition",
        ["send", "mem0", "set-partition-info", "-x", "00" * 10],
        QEMU,
        4,
        r"set-partition-info: not available on this device: its Command Effects Log .*\[ENOTTY\]",
    ),
    (
        "health on qemu",
        ["send", "mem0", "get-health-info"],
        QEMU,
        4,
        r"get-health-info: .*\[ENOTTY\]",
    ),
    (
        "mailbox error",
        ["send", "mem0", "get-lsa", "-x", "f0ffff0f 40000000"],
        {},
        3,
        r"get-lsa: device returned Invalid Input \(0x2\)",
    ),
    (
        "no such memdev",
        ["identify", "mem9"],
        {},
        6,
        r"mem9: no such memdev on the sim backend .*available: mem0, mem1, mem2",
    ),
    ("bad memdev", ["identify", "nvme0"], {}, 2, r"'nvme0' is not a memdev"),
    ("bad hex", ["send", "mem0", "get-lsa", "-x", "zz"], {}, 2, r"--hex: 'zz' is not hex"),
    ("unknown name", ["send", "mem0", "frobnicate"], {}, 2, r"unknown command 'frobnicate'"),
    (
        "no kernel id",
        ["send", "mem0", "get-poison-list"],
        {},
        4,
        r"Linux has no command id for Get Poison List",
    ),
    (
        "out-size cap",
        ["send", "mem0", "identify", "--out-size", "0x200000"],
        {},
        2,
        r"out of range \(0\.\.1048576\)",
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "code", "pattern"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_errors(cli: Cli, args: list[str], env: dict[str, str], code: int, pattern: str) -> None:
    r = cli(*args, env=env)
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cxlctl: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in r.stderr


def test_kernel_backend_without_devices_suggests_sim(cli: Cli) -> None:
    if os.path.isdir("/sys/bus/cxl/devices") and any(
        n.startswith("mem") for n in os.listdir("/sys/bus/cxl/devices")
    ):
        pytest.skip("this machine has CXL memdevs")
    r = cli("list", env={"CXLCTL_BACKEND": "kernel"})
    assert r.exit_code == 0  # an empty inventory, like cxl-cli
    assert "no CXL memdevs found in /sys/bus/cxl/devices" in r.stderr
    assert "--sim" in r.stderr
    r = cli("identify", env={"CXLCTL_BACKEND": "kernel"})
    assert r.exit_code == 6  # a verb that reads from devices has nothing to read
    assert "no CXL memdevs found in /sys/bus/cxl/devices" in r.stderr


def test_backend_option_overrides_environment(cli: Cli) -> None:
    r = cli("--backend", "sim", "list", "--json", env={"CXLCTL_BACKEND": "kernel"})
    assert r.exit_code == 0
    assert json.loads(r.stdout)[0]["backend"] == "sim"


def test_bad_sim_configuration_is_a_usage_error(cli: Cli) -> None:
    r = cli("list", env={"CXLCTL_SIM_DEVICES": "pmem,floppy"})
    assert r.exit_code == 2
    assert "unknown simulated device kind 'floppy'" in r.stderr


# --- real processes: pipes, tracebacks, entry points ---------------------------------------


def run(*args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "CXLCTL_BACKEND": "sim"}
    env.update(kw.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "cxlctl", *args], capture_output=True, env=env, timeout=60, **kw
    )


def test_closed_pipe_ends_quietly() -> None:
    # `cxlctl --sim list --json | head -c1`, with a pipe closed after one byte
    p = subprocess.Popen(
        [sys.executable, "-m", "cxlctl", "--sim", "identify", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CXLCTL_SIM_DEVICES": ",".join(["pmem"] * 200)},
    )
    assert p.stdout is not None
    assert p.stderr is not None
    assert p.stdout.read(1) == b"["
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141
    assert err == b""


def test_shell_pipeline_into_head() -> None:
    r = subprocess.run(
        f"{sys.executable} -m cxlctl --sim list --json | head -c1",
        shell=True,
        capture_output=True,
        timeout=60,
    )
    assert r.stdout == b"["
    assert r.stderr == b""


def test_debug_shows_the_traceback() -> None:
    quiet = run("send", "mem0", "get-lsa", "-x", "00000000")
    loud = run("--debug", "send", "mem0", "get-lsa", "-x", "00000000")
    assert quiet.returncode == 9
    assert b"Traceback" not in quiet.stderr
    assert b"Traceback" in loud.stderr
    assert b"InvalidSize" in loud.stderr


def test_debug_is_one_flag_in_process(cli: Cli) -> None:
    """--debug and CXLCTL_DEBUG both reach App.debug, in process too (no argv sniffing)."""
    from cxlctl.errors import CxlError

    quiet = cli("send", "mem0", "get-lsa", "-i", "00000000")
    assert quiet.exit_code == 9
    assert isinstance(
        cli("--debug", "send", "mem0", "get-lsa", "-i", "00000000").exception, CxlError
    )
    loud = cli("send", "mem0", "get-lsa", "-i", "00000000", env={"CXLCTL_DEBUG": "1"})
    assert isinstance(loud.exception, CxlError)


def test_debug_says_why_list_left_a_block_out(cli: Cli) -> None:
    quiet = cli("list", "-A", "mem0", "--json", env=QEMU)  # QEMU 10 has no Get Alert Config
    loud = cli("--debug", "list", "-A", "mem0", "--json", env=QEMU)
    assert quiet.exit_code == loud.exit_code == 0
    assert quiet.stdout == loud.stdout
    assert "alert_config" not in json.loads(quiet.stdout)[0]
    assert "left out" not in quiet.stderr
    assert "cxlctl: alert_config left out: mem0: get-alert-config" in loud.stderr


def test_python_m_and_version() -> None:
    from cxlctl import __version__

    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.decode().strip() == f"cxlctl, version {__version__}"
    assert (
        b"Usage: python -m cxlctl" in run("--help").stdout
        or b"Usage: cxlctl" in run("--help").stdout
    )
