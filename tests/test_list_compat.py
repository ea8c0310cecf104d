"""`list` as cxl-cli's `cxl list`: no devices, hidden disabled memdevs, --cxl-compat."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cxlctl.listing import cxl_cli_json

Cli = Callable[..., Result]
NONE = {"CXLCTL_SIM_DEVICES": "none"}


# --- no devices: an empty inventory, exit 0 ------------------------------------------


def test_list_without_devices_prints_an_empty_array(cli: Cli) -> None:
    r = cli("list", "--json", env=NONE)
    assert (r.exit_code, r.stdout) == (0, "[]\n")
    assert json.loads(r.stdout) == []


@pytest.mark.parametrize("fmt", ["jsonl", "plain"])
def test_list_without_devices_prints_no_lines(cli: Cli, fmt: str) -> None:
    r = cli("list", "-o", fmt, env=NONE)
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")


def test_list_table_without_devices_says_so_on_stderr(cli: Cli) -> None:
    r = cli("list", env=NONE)
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == "cxlctl: no CXL memdevs found\n"


@pytest.mark.parametrize("verb", ["identify", "health", "fw-info", "partition"])
def test_read_verbs_without_devices_exit_6(cli: Cli, verb: str) -> None:
    """Verbs that read from devices have nothing to read: exit 6 (README)."""
    r = cli(verb, "--json", env=NONE)
    assert (r.exit_code, r.stdout) == (6, "")
    assert r.stderr == "cxlctl: no CXL memdevs found\n"


def test_a_named_memdev_that_does_not_exist_is_still_exit_6(cli: Cli) -> None:
    r = cli("list", "mem0", "--json", env=NONE)
    assert r.exit_code == 6


# --- disabled memdevs are hidden unless -i -------------------------------------------


def test_list_hides_disabled_memdevs_unless_idle(cli: Cli, tmp_path: Path) -> None:
    env = {"CXLCTL_SIM_STATE": str(tmp_path)}
    assert cli("disable-memdev", "mem1", env=env).exit_code == 0
    shown = json.loads(cli("list", "--json", env=env).stdout)
    assert [d["memdev"] for d in shown] == ["mem0", "mem2"]
    idle = json.loads(cli("list", "-i", "--json", env=env).stdout)
    assert [(d["memdev"], d.get("state")) for d in idle] == [
        ("mem0", None),
        ("mem1", "disabled"),
        ("mem2", None),
    ]
    named = cli("list", "mem1", "--json", env=env)  # cxl list -m mem1: nothing
    assert (named.exit_code, json.loads(named.stdout)) == (0, [])
    table = cli("list", env=env)
    assert "mem1" not in table.stdout
    assert table.stderr == "cxlctl: 1 disabled memdev not shown (mem1); -i shows it\n"
    plain = cli("list", "-i", "-o", "plain", env=env)
    assert "mem1    0x1235  disabled" in plain.stdout
    # the topology walk and --cxl-compat follow cxl-cli: an unbound memdev is "anon"
    compat = json.loads(cli("list", "-i", "--cxl-compat", env=env).stdout)
    assert compat[0] == {
        "anon memdevs": [
            {
                "memdev": "mem1",
                "ram_size": 256 << 20,
                "serial": 0x1235,
                "host": "0000:0e:00.0",
                "firmware_version": "BWFW VERSION 00",
                "state": "disabled",
            }
        ]
    }
    assert [d["memdev"] for d in json.loads(cli("list", "--cxl-compat", env=env).stdout)] == [
        "mem0",
        "mem2",
    ]


# --- --cxl-compat: util_display_json_array --------------------------------------------


def test_display_json_array_unwraps_one_object_only_when_human() -> None:
    one = [{"memdev": "mem0"}]
    two = [{"memdev": "mem0"}, {"memdev": "mem1"}]
    assert cxl_cli_json(one, human=True) == {"memdev": "mem0"}
    assert cxl_cli_json(one, human=False) == one
    assert cxl_cli_json(two, human=True) == two
    assert cxl_cli_json([], human=False) == []
    assert cxl_cli_json([], human=True) is None


def test_compat_unwraps_a_single_memdev_under_u(cli: Cli) -> None:
    r = cli("list", "-m", "mem0", "-u", "--cxl-compat")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {
        "memdev": "mem0",
        "pmem_size": "256.00 MiB (268.44 MB)",
        "serial": "0x1234",
        "host": "0000:0d:00.0",
        "firmware_version": "BWFW VERSION 00",
    }


def test_compat_without_u_stays_an_array_and_default_is_always_an_array(cli: Cli) -> None:
    compat = json.loads(cli("list", "-m", "mem0", "--cxl-compat").stdout)
    assert isinstance(compat, list)
    assert compat[0]["serial"] == 0x1234
    ours = json.loads(cli("list", "mem0", "-u", "--json").stdout)
    assert isinstance(ours, list)
    assert ours[0]["backend"] == "sim"


def test_compat_with_no_devices(cli: Cli) -> None:
    assert cli("list", "--cxl-compat", env=NONE).stdout == "[]\n"
    r = cli("list", "-u", "--cxl-compat", env=NONE)  # cxl-cli prints nothing at all
    assert (r.exit_code, r.stdout) == (0, "")


# --- CXLCTL_SIM_STATE pointing at a file ---------------------------------------------


def test_sim_state_naming_a_file_is_one_line_naming_variable_and_path(
    cli: Cli, tmp_path: Path
) -> None:
    f = tmp_path / "state"
    f.write_text("")
    r = cli("list", env={"CXLCTL_SIM_STATE": str(f)})
    assert r.exit_code == 1  # README: exit codes, 1
    assert r.stderr == (
        f"cxlctl: CXLCTL_SIM_STATE={f}: exists and is not a directory "
        "(hint: fix or remove it, or point CXLCTL_SIM_STATE at another directory)\n"
    )
    assert "File exists" not in r.stderr


# --- list -I: util_cxl_memdev_partition_to_json() -------------------------------------


def test_list_partition_asks_get_partition_info_only_of_a_partitionable_device(cli: Cli) -> None:
    """cxl-cli sends Get Partition Info only when IDENTIFY's partition alignment is
    non-zero, and a failed one keeps the IDENTIFY keys; a failed IDENTIFY drops the
    block. A fault on Get Partition Info shows which devices were asked."""
    env = {"CXLCTL_SIM_DEVICES": "split,ram"}
    ok = {
        d["memdev"]: d["partition_info"]
        for d in json.loads(cli("list", "-I", "--json", env=env).stdout)
    }
    assert set(ok["mem0"]) >= {"active_volatile_size", "next_persistent_size"}
    assert ok["mem0"]["partition_alignment_size"] == 256 << 20
    assert ok["mem1"] == {
        "total_size": 256 << 20,
        "volatile_only_size": 256 << 20,
        "persistent_only_size": 0,
        "partition_alignment_size": 0,
    }
    failing = {**env, "CXLCTL_SIM_FAULTS": "get-partition-info:rc=3"}
    got = {
        d["memdev"]: d["partition_info"]
        for d in json.loads(cli("list", "-I", "--json", env=failing).stdout)
    }
    assert got["mem0"] == {k: ok["mem0"][k] for k in ok["mem1"]}  # IDENTIFY's keys stay
    assert got["mem1"] == ok["mem1"]  # never asked
    no_identify = {**env, "CXLCTL_SIM_FAULTS": "identify:rc=3"}
    assert all(
        "partition_info" not in d
        for d in json.loads(cli("list", "-I", "--json", env=no_identify).stdout)
    )
