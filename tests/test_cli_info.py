"""health, partition, fw-info, alert-config, shutdown-state, timestamp, security-state,
logs, cel, get-log, log-caps, read-labels, decode and list -H/-A on the simulator."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import procs
import pytest
from click.testing import Result
from goldens import golden

from cxlctl.errors import ExitCode
from cxlctl.sim.device.model import vendor_debug_log

Cli = Callable[..., Result]
CliJson = Callable[..., Any]
QEMU = {"CXLCTL_SIM_PROFILE": "qemu"}


def _mask_time(text: str) -> str:
    text = re.sub(r'"timestamp": \d+', '"timestamp": 0', text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", "YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ", text)
    return re.sub(r"│ timestamp\s+│ \d+\s+│", "│ timestamp │ <ns> │", text)


GOLDEN = [
    ("health.json", ["health", "--json"]),
    ("health-mem0.txt", ["health", "mem0"]),
    ("partition.json", ["partition", "--json"]),
    ("partition-u.json", ["partition", "mem2", "-u", "--json"]),
    ("partition-mem2.txt", ["partition", "mem2"]),
    ("fw-info.json", ["fw-info", "mem0", "--json"]),
    ("fw-info-mem0.txt", ["fw-info", "mem0"]),
    ("alert-config.json", ["alert-config", "mem0", "--json"]),
    ("alert-config-mem0.txt", ["alert-config", "mem0"]),
    ("shutdown-state.json", ["shutdown-state", "--json"]),
    ("shutdown-state.txt", ["shutdown-state"]),
    ("timestamp.json", ["timestamp", "--json"]),
    ("timestamp-mem0.txt", ["timestamp", "mem0"]),
    ("security-state.json", ["security-state", "--json"]),
    ("security-state.txt", ["security-state"]),
    ("qemu-logs.json", ["logs", "mem0", "--json"]),
    ("qemu-logs-mem0.txt", ["logs", "mem0"]),
    ("qemu-cel-mem0.json", ["cel", "mem0", "--json"]),
    ("qemu-cel-mem0.txt", ["cel", "mem0"]),
    ("qemu-get-log-cel.txt", ["get-log", "mem0", "cel"]),
    (
        "qemu-get-log-cel.json",
        ["get-log", "mem0", "cel", "-O", "8", "-s", "16", "--json"],
    ),
    ("log-caps.json", ["log-caps", "vendor-debug", "--json"]),
    ("log-caps-cel.txt", ["log-caps", "mem0", "cel"]),
    ("list-HAIF-u.json", ["list", "-H", "-A", "-I", "-F", "-u", "--json"]),
]


@pytest.mark.parametrize(("name", "args"), GOLDEN)
def test_golden(cli: Cli, name: str, args: list[str]) -> None:
    # the full profile's CEL grows with every handler the simulator gains: logs and
    # CEL goldens use the QEMU profile, which mirrors the reference device
    r = cli(*args, env=QEMU if name.startswith("qemu-") else None)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    golden(f"info/{name}", _mask_time(r.stdout))


@pytest.mark.parametrize(("name", "args"), GOLDEN[:4])
def test_golden_qemu_profile_reference(cli: Cli, name: str, args: list[str]) -> None:
    """QEMU 10 has no Get Health Info: exit 4, a message naming device and command."""
    r = cli(*args, env=QEMU)
    if args[0] == "health":
        assert r.exit_code == ExitCode.NOT_SUPPORTED
        assert "mem0: get-health-info" in r.stderr
        assert "ENOTTY" in r.stderr
    else:
        assert r.exit_code == 0


# --- cxl-cli 81's list blocks ------------------------------------------------------------

# ndctl v81 cxl/json.c: util_cxl_memdev_health_to_json / _alert_config_to_json /
# _partition_to_json / _fw_to_json; types as json-c creates them (int, bool, string;
# sizes become strings with -u).  Keys cxl-cli adds only conditionally are marked.
CXL_CLI_81: dict[str, dict[str, type | tuple[type, ...]]] = {
    "memdev": {
        "memdev": str,
        "pmem_size": (int, str),
        "ram_size": (int, str),
        "serial": (int, str),
        "host": str,
        "firmware_version": str,
        "health": dict,
        "alert_config": dict,
        "partition_info": dict,
        "firmware": dict,
    },
    "health": {
        "maintenance_needed": bool,
        "performance_degraded": bool,
        "hw_replacement_needed": bool,
        "media_normal": bool,
        "media_not_ready": bool,
        "media_persistence_lost": bool,
        "media_data_lost": bool,
        "media_powerloss_persistence_loss": bool,
        "media_shutdown_persistence_loss": bool,
        "media_persistence_loss_imminent": bool,
        "media_powerloss_data_loss": bool,
        "media_shutdown_data_loss": bool,
        "media_data_loss_imminent": bool,
        "ext_life_used": str,
        "ext_temperature": str,
        "ext_corrected_volatile": str,
        "ext_corrected_persistent": str,
        "life_used_percent": int,
        "temperature": int,
        "dirty_shutdowns": int,
        "volatile_errors": int,
        "pmem_errors": int,
    },
    "alert_config": {
        **{
            f"{k}_{s}": bool
            for s in ("valid", "writable")
            for k in (
                "life_used_prog_warn_threshold",
                "dev_over_temperature_prog_warn_threshold",
                "dev_under_temperature_prog_warn_threshold",
                "corrected_volatile_mem_err_prog_warn_threshold",
                "corrected_pmem_err_prog_warn_threshold",
            )
        },
        "life_used_crit_alert_threshold": int,
        "life_used_prog_warn_threshold": int,
        "dev_over_temperature_crit_alert_threshold": int,
        "dev_under_temperature_crit_alert_threshold": int,
        "dev_over_temperature_prog_warn_threshold": int,
        "dev_under_temperature_prog_warn_threshold": int,
        "corrected_volatile_mem_err_prog_warn_threshold": int,
        "corrected_pmem_err_prog_warn_threshold": int,
    },
    "partition_info": {
        "total_size": (int, str),
        "volatile_only_size": (int, str),
        "persistent_only_size": (int, str),
        "partition_alignment_size": (int, str),
    },
    "firmware": {
        "num_slots": int,
        "active_slot": int,
        "online_activate_capable": bool,
        "slot_1_version": str,
        "fw_update_in_progress": bool,
    },
}
CONDITIONAL = {"pmem_size", "ram_size"}  # cxl-cli prints a size only when non-zero


def _check_types(block: str, obj: dict[str, Any]) -> None:
    for key, typ in CXL_CLI_81[block].items():
        if key in CONDITIONAL and key not in obj:
            continue
        assert key in obj, f"{block}: cxl-cli 81 prints {key!r}"
        value = obj[key]
        assert isinstance(value, typ), (block, key, value)
        if typ is int:
            assert not isinstance(value, bool), (block, key)


def test_list_has_every_cxl_cli_81_key_with_its_type(cli_json: CliJson) -> None:
    out = cli_json("list", "-H", "-A", "-I", "-F", "-u", "--json")
    assert len(out) == 3
    for dev in out:
        _check_types("memdev", dev)
        for block in ("health", "alert_config", "partition_info", "firmware"):
            _check_types(block, dev[block])
        assert list(dev)[: list(dev).index("serial")][-2:] == ["health", "alert_config"]


def test_list_qemu_profile_leaves_out_what_the_device_lacks(cli_json: CliJson) -> None:
    """Same as `cxl list -M -H -A -I -F -u` on the reference VM."""
    (dev,) = cli_json("list", "mem0", "-H", "-A", "-I", "-F", "-u", "--json", env=QEMU)
    assert "health" not in dev
    assert "alert_config" not in dev
    assert dev["partition_info"] == {
        "total_size": "256.00 MiB (268.44 MB)",
        "volatile_only_size": 0,
        "persistent_only_size": "256.00 MiB (268.44 MB)",
        "partition_alignment_size": 0,
    }
    assert dev["firmware"] == {
        "num_slots": 2,
        "active_slot": 1,
        "online_activate_capable": True,
        "slot_1_version": "BWFW VERSION 0",
        "fw_update_in_progress": False,
    }


def test_list_without_flags_has_no_blocks(cli_json: CliJson) -> None:
    for dev in cli_json("list", "--json"):
        assert not {"health", "alert_config", "partition_info", "firmware"} & set(dev)


# --- values and exit codes -------------------------------------------------------------


def test_health_full_profile_state(cli_json: CliJson) -> None:
    h = {d["memdev"]: d for d in cli_json("health", "--json")}
    assert h["mem0"]["pmem_errors"] == 5
    assert h["mem0"]["volatile_errors"] == 0
    assert h["mem1"]["volatile_errors"] == 2
    assert h["mem1"]["pmem_errors"] == 0
    assert h["mem2"]["dirty_shutdowns"] == 1
    assert h["mem0"]["temperature"] == 37


@pytest.mark.parametrize(
    "args",
    [
        ["health", "mem0"],
        ["alert-config", "mem0"],
        ["shutdown-state", "mem0"],
        ["log-caps", "mem0", "cel"],
    ],
)
def test_qemu_lacks_command_exit_4(cli: Cli, args: list[str]) -> None:
    r = cli(*args, env=QEMU)
    assert r.exit_code == ExitCode.NOT_SUPPORTED, r.stderr
    assert "mem0:" in r.stderr
    assert "Errno" not in r.stderr


def test_security_state_needs_no_kernel_id_but_reads_sysfs(cli_json: CliJson) -> None:
    assert cli_json("security-state", "--json") == [
        {"memdev": f"mem{i}", "security_state": "disabled"} for i in range(3)
    ]


def test_command_without_kernel_id_exits_4(cli: Cli) -> None:
    r = cli("send", "mem0", "get-security-state")
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "Linux has no command id" in r.stderr


def test_timestamp_iso_matches_ns(cli_json: CliJson) -> None:
    import datetime as dt

    (d,) = cli_json("timestamp", "mem0", "--json")
    sec = d["timestamp"] // 10**9
    want = dt.datetime.fromtimestamp(sec, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert d["iso8601"].startswith(want)
    assert d["iso8601"].endswith(f".{d['timestamp'] % 10**9:09d}Z")


def test_unknown_memdev_exit_6(cli: Cli) -> None:
    assert cli("health", "mem9").exit_code == ExitCode.NOT_FOUND


# --- logs -------------------------------------------------------------------------------


def test_cel_lists_every_opcode_in_the_qemu_order(cli_json: CliJson) -> None:
    from cxlctl.sim import QEMU_CEL

    (d,) = cli_json("cel", "mem0", "--json", env=QEMU)
    assert [e["opcode"] for e in d["entries"]] == list(QEMU_CEL)
    sanitize = d["entries"][-2]
    assert sanitize["name"] == "sanitize"
    assert sanitize["effects"]["background_operation"] is True


def test_get_log_pages_by_payload_max(cli: Cli) -> None:
    r = cli("get-log", "mem0", "vendor-debug", "-o", "raw")
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == vendor_debug_log(0x1234)


@pytest.mark.parametrize(
    ("opts", "what"),
    [
        (["-O", "3000"], "outside"),
        (["-O", "2990", "-s", "11"], "outside"),
        (["-s", "0"], "at least 1"),
        (["-O", "-1"], "negative"),
    ],
)
def test_get_log_range_checked_before_sending(cli: Cli, opts: list[str], what: str) -> None:
    r = cli("get-log", "mem0", "vendor-debug", *opts)
    assert r.exit_code == ExitCode.USAGE
    assert what in r.stderr


def test_get_log_unknown_log(cli: Cli) -> None:
    r = cli("get-log", "mem0", "vendor-debug", env=QEMU)
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "Get Supported Logs" in r.stderr
    assert cli("get-log", "mem0", "nope").exit_code == ExitCode.USAGE


def test_get_log_raw_needs_one_memdev(cli: Cli) -> None:
    assert cli("get-log", "cel", "-o", "raw").exit_code == ExitCode.USAGE


# --- read-labels --------------------------------------------------------------------------


def test_read_labels_stdout(cli: Cli) -> None:
    r = cli("read-labels", "mem0", "-s", "5000", "-O", "4K")
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == bytes(5000)


def test_read_labels_file_and_size_bounds(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "lsa.bin"
    r = cli("read-labels", "mem0", "-s", "0x100", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == bytes(256)
    assert r.stdout_bytes == b""
    lsa = 256 << 20
    r = cli("read-labels", "mem0", "-O", str(lsa - 10), "-s", "11", "-o", str(out))
    assert r.exit_code == ExitCode.USAGE
    assert out.read_bytes() == bytes(256)  # untouched on error
    assert cli("read-labels", "mem0", "-s", "0").exit_code == ExitCode.USAGE
    assert cli("read-labels", "mem0", "-O", str(lsa)).exit_code == ExitCode.USAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lsa.bin"]


def test_read_labels_error_midway_leaves_no_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxlctl.sim.device.model import HANDLERS, RC, FileSlice, TypeThreeDevice

    calls = {"n": 0}
    real = HANDLERS[0x4102]

    def flaky(dev: TypeThreeDevice, payload: bytes) -> tuple[int, bytes | FileSlice]:
        calls["n"] += 1
        if calls["n"] == 3:  # the device fails the third Get LSA
            return RC.INTERNAL_ERROR, b""
        return real(dev, payload)

    monkeypatch.setitem(HANDLERS, 0x4102, flaky)
    out = tmp_path / "lsa.bin"
    r = cli("read-labels", "mem0", "-s", "8K", "-o", str(out))
    assert r.exit_code == ExitCode.DEVICE_ERROR
    assert "mem0: get-lsa: device returned Internal Error" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_labels_closed_pipe_ends_quietly() -> None:
    env = {**os.environ, "CXLCTL_BACKEND": "sim", "CXLCTL_SIM_PROFILE": ""}
    p = procs.popen("read-labels", "mem0", env=env, stderr=True)
    assert p.stdout is not None
    assert p.stderr is not None
    p.stdout.read(4096)
    p.stdout.close()
    rc = p.wait(timeout=60)
    assert rc == ExitCode.BROKEN_PIPE
    assert p.stderr.read() == b""


# --- decode -------------------------------------------------------------------------------


def test_decode_round_trip_with_send_raw(cli: Cli, tmp_path: Path) -> None:
    raw = cli("send", "mem0", "identify", "-o", "raw").stdout_bytes
    f = tmp_path / "id.bin"
    f.write_bytes(raw)
    r = cli("decode", "identify", str(f), "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["command"] == "identify"
    assert d["length"] == len(raw)
    assert d["decoded"]["firmware_version"] == "BWFW VERSION 00"
    r = cli("decode", "fw-info", input=raw[:10])
    assert r.exit_code == ExitCode.USAGE  # the input is the user's, not the device's
    assert "get-fw-info" in r.stderr


def test_decode_cel_from_stdin(cli: Cli) -> None:
    raw = cli("get-log", "mem0", "cel", "-o", "raw", env=QEMU).stdout_bytes
    r = cli("decode", "cel", "--json", input=raw)
    assert r.exit_code == 0
    assert len(json.loads(r.stdout)["decoded"]["entries"]) == 26


def test_decode_table_and_errors(cli: Cli) -> None:
    r = cli("decode", "timestamp", input=bytes(8))
    assert r.exit_code == 0
    assert "timestamp" in r.stdout
    assert cli("decode", "set-lsa", input=b"").exit_code == ExitCode.USAGE
    assert cli("decode", "bogus", input=b"").exit_code == ExitCode.USAGE
    assert cli("decode", "identify", "/nonexistent").exit_code == ExitCode.USAGE
