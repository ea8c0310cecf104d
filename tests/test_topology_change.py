"""The change contract on the topology verbs (cxlctl/cli/change.py): -y or a
terminal's yes naming the object (and the memdevs with their serials), refusal
without a terminal, --dry-run recording the exact sysfs writes and changing
nothing, one outcome per object with ``changed``; and Set Partition Info sent for
real on a partitionable simulated device."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_change import _spawn

from cxlctl.cli import main


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "pmem,ram")
    monkeypatch.setenv("CXLCTL_SIM_STATE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CXLCTL_SIM_TOPOLOGY", raising=False)
    return tmp_path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["--sim", *args], catch_exceptions=False)


def ok(*args: str) -> Result:
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    return r


def snapshot(d: Path) -> dict[str, str]:
    """Every state file (not the lsa areas, which these verbs never touch), hashed."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.iterdir())
        if p.is_file() and not p.name.endswith((".lock", ".lsa"))
    }


def listing() -> object:
    return json.loads(ok("list", "-B", "-P", "-E", "-D", "-R", "-M", "-i", "--json").stdout)


#: (set-up, the verb): every topology verb, from a state where it changes something
VERBS: list[tuple[list[list[str]], list[str]]] = [
    ([], ["create-region", "-t", "ram", "mem1"]),
    ([["create-region", "-y", "-t", "ram", "--no-enable", "mem1"]], ["enable-region", "region0"]),
    ([["create-region", "-y", "-t", "ram", "mem1"]], ["disable-region", "region0"]),
    ([["create-region", "-y", "-t", "pmem", "mem0"]], ["destroy-region", "-f", "region0"]),
    ([], ["reserve-dpa", "mem0", "-t", "pmem"]),
    ([["reserve-dpa", "-y", "mem0", "-t", "pmem"]], ["free-dpa", "mem0"]),
    ([], ["disable-port", "port1"]),
    ([["disable-port", "-y", "-e", "endpoint2"]], ["enable-port", "-e", "endpoint2"]),
    ([], ["disable-bus", "root0"]),
]
IDS = [v[1][0] for v in VERBS]


def prepared(state: Path, setup: list[list[str]]) -> tuple[object, dict[str, str]]:
    """Run the set-up; then the listing and the state files to compare against."""
    for s in setup:
        ok(*s)
    seen = listing()  # (the simulated topology is saved when first read)
    return seen, snapshot(state)


@pytest.mark.parametrize(("setup", "verb"), VERBS, ids=IDS)
def test_dry_run_records_the_writes_and_changes_nothing(
    state: Path, setup: list[list[str]], verb: list[str]
) -> None:
    seen, before = prepared(state, setup)
    r = ok(*verb, "--dry-run", "--json")
    (row,) = json.loads(r.stdout)
    assert row["outcome"] == "planned"
    assert row["changed"] is False
    assert row["plan"], "a dry run that plans no write"
    assert all(p["kind"] == "sysfs" and p["target"].startswith("/sys/") for p in row["plan"])
    assert snapshot(state) == before
    assert listing() == seen
    # and a real run does change it
    r = ok(*verb, "-y", "--json")
    (done,) = json.loads(r.stdout)
    assert done["changed"] is True
    assert done["outcome"] == "changed"
    assert snapshot(state) != before


@pytest.mark.parametrize(("setup", "verb"), VERBS, ids=IDS)
def test_refused_without_yes_when_there_is_no_terminal(
    state: Path, setup: list[list[str]], verb: list[str]
) -> None:
    seen, before = prepared(state, setup)
    r = cli(*verb)
    assert r.exit_code == 2, r.stderr
    assert "refusing without confirmation (no terminal to ask on)" in r.stderr
    assert "-y/--yes" in r.stderr
    assert snapshot(state) == before
    assert listing() == seen


def test_refusal_names_the_region_and_its_memdevs_serials(state: Path) -> None:
    ok("create-region", "-y", "-t", "ram", "mem1")
    r = cli("destroy-region", "-f", "region0")
    assert r.exit_code == 2
    assert "destroy-region would tear down and delete region0 (ram, 256.00 MiB, over mem1 " \
        "(serial 0x1235))" in r.stderr  # fmt: skip
    r = cli("reserve-dpa", "mem0", "-t", "pmem")
    assert "reserve-dpa would reserve DPA on mem0 (serial 0x1234)" in r.stderr
    r = cli("disable-port", "port1")
    assert "disable-port would disable (everything below goes away) port1 (memdevs below: " \
        "mem0 (serial 0x1234), mem1 (serial 0x1235))" in r.stderr  # fmt: skip


#: a verb run twice: changed the first time, unchanged the second
TWICE: list[tuple[list[list[str]], list[str], str]] = [
    ([["create-region", "-y", "-t", "ram", "mem1"]], ["disable-region", "region0"], "region"),
    (
        [["create-region", "-y", "-t", "ram", "mem1"], ["disable-region", "-y", "region0"]],
        ["enable-region", "region0"],
        "region",
    ),
    ([["reserve-dpa", "-y", "mem0", "-t", "pmem"]], ["free-dpa", "mem0"], "memdev"),
    ([], ["disable-port", "-e", "endpoint2"], "port"),
    ([["disable-port", "-y", "port1"]], ["enable-port", "port1"], "port"),
]


@pytest.mark.parametrize(("setup", "verb", "kind"), TWICE, ids=[t[1][0] for t in TWICE])
def test_second_identical_run_is_unchanged(
    state: Path, setup: list[list[str]], verb: list[str], kind: str
) -> None:
    for s in setup:
        ok(*s)
    (first,) = json.loads(ok(*verb, "-y", "--json").stdout)
    after = snapshot(state)
    (second,) = json.loads(ok(*verb, "-y", "--json").stdout)
    assert (first["changed"], first["outcome"]) == (True, "changed")
    assert (second["changed"], second["outcome"]) == (False, "unchanged")
    assert first[kind] == second[kind] == verb[-1]
    assert snapshot(state) == after


def test_each_object_is_tried_and_reported_on_its_own(state: Path) -> None:
    ok("create-region", "-y", "-t", "ram", "mem1")
    ok("create-region", "-y", "-t", "pmem", "mem0")
    # both are active and there is no -f: each fails on its own, exit 7 (EBUSY)
    r = cli("destroy-region", "-y", "all", "--json")
    assert r.exit_code == 7
    rows = json.loads(r.stdout)
    assert [(x["region"], x["outcome"]) for x in rows] == [
        ("region0", "failed"),
        ("region1", "failed"),
    ]
    ok("disable-region", "-y", "region1")
    r = cli("destroy-region", "-y", "all", "--json")
    assert r.exit_code == 7
    rows = json.loads(r.stdout)
    assert [(x["region"], x["changed"]) for x in rows] == [("region0", False), ("region1", True)]
    assert "active: disable it first, or use --force" in rows[0]["reason"]


def test_table_report_names_the_objects(state: Path) -> None:
    r = ok("disable-port", "-y", "-e", "endpoint2")
    assert "disable-port" in r.stdout
    assert "endpoint2" in r.stdout
    assert "changed" in r.stdout
    r = ok("disable-port", "-y", "-e", "endpoint2")
    assert "unchanged" in r.stdout


@pytest.mark.parametrize("answer", ["n", "y"])
def test_terminal_prompt_names_the_region_memdev_and_serial(state: Path, answer: str) -> None:
    ok("create-region", "-y", "-t", "ram", "mem1")
    before = snapshot(state)
    env = {"CXLCTL_SIM_STATE": str(state), "CXLCTL_SIM_DEVICES": "pmem,ram"}
    child = _spawn(["disable-region", "region0"], env)
    child.expect_exact("disable-region will disable (a ram region's memory is offlined first):")
    child.expect_exact("region0 (ram, 256.00 MiB, over mem1 (serial 0x1235))")
    child.expect_exact("Continue? [y/N]:")
    child.sendline(answer)
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    (region,) = json.loads(ok("list", "-R", "-i", "--json").stdout)
    if answer == "n":
        assert child.exitstatus == 1
        assert snapshot(state) == before
        assert region.get("state") != "disabled"
    else:
        assert child.exitstatus == 0
        assert region["state"] == "disabled"


# --- set-partition: Set Partition Info sent ----------------------------------------------


@pytest.fixture
def split(state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One partitionable device: 256 MiB ram + 256 MiB pmem active, alignment 256 MiB."""
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "split")
    return state


def test_set_partition_sends_and_takes_effect_on_the_next_reset(split: Path) -> None:
    r = ok("set-partition", "-y", "mem0", "-t", "ram", "-s", "512M", "--json")
    (row,) = json.loads(r.stdout)
    assert (row["memdev"], row["changed"], row["takes_effect"]) == ("mem0", True, "next reset")
    assert row["before"] == {
        "active_volatile_size": 256 << 20,
        "active_persistent_size": 256 << 20,
        "next_volatile_size": 0,
        "next_persistent_size": 0,
    }
    assert row["after"] == {
        "active_volatile_size": 256 << 20,  # active until the next cold reset
        "active_persistent_size": 256 << 20,
        "next_volatile_size": 512 << 20,
        "next_persistent_size": 0,
    }
    assert "taking effect on the next cold reset" in r.stderr
    # the device keeps the pending split (CXLCTL_SIM_STATE) and a second run is a no-op
    (again,) = json.loads(ok("set-partition", "-y", "mem0", "-t", "ram", "-s", "512M",
                             "--json").stdout)  # fmt: skip
    assert (again["changed"], again["outcome"]) == (False, "unchanged")
    (back,) = json.loads(ok("set-partition", "-y", "mem0", "-t", "pmem", "-s", "256M",
                            "--json").stdout)  # fmt: skip
    assert back["changed"] is True
    assert (back["after"]["next_volatile_size"], back["after"]["next_persistent_size"]) == (
        256 << 20,
        256 << 20,
    )


def test_set_partition_dry_run_records_the_ioctl_and_sends_nothing(split: Path) -> None:
    listing()
    before = snapshot(split)
    (row,) = json.loads(ok("set-partition", "mem0", "-t", "pmem", "--dry-run", "--json").stdout)
    assert row["outcome"] == "planned"
    (step,) = row["plan"]
    assert (step["kind"], step["opcode"], step["name"]) == (
        "ioctl",
        0x4101,
        "Set Partition Information",
    )
    assert step["in_payload_head"] == "0000000000000000" + "0000"  # 0 volatile, no flags
    assert snapshot(split) == before
    (row,) = json.loads(ok("set-partition", "-y", "mem0", "-t", "pmem", "--json").stdout)
    assert row["after"]["next_persistent_size"] == 512 << 20


def test_set_partition_is_validated_before_sending(split: Path) -> None:
    r = cli("set-partition", "-y", "mem0", "-t", "ram", "-s", "100M")
    assert r.exit_code == 8
    assert "not a multiple of the partition alignment 256 MiB" in r.stderr
    r = cli("set-partition", "-y", "mem0", "-t", "ram", "-s", "1G")
    assert r.exit_code == 8
    assert "exceeds the partitionable capacity (512 MiB)" in r.stderr
    r = ok("set-partition", "-y", "mem0", "-t", "ram", "-s", "100M", "-a", "--json")
    assert json.loads(r.stdout)[0]["after"]["next_volatile_size"] == 256 << 20


def test_the_kernel_refuses_the_immediate_flag_while_the_memdev_is_active(split: Path) -> None:
    r = cli("set-partition", "-y", "mem0", "-t", "ram", "-s", "512M", "--immediate", "--json")
    assert r.exit_code == 7  # EBUSY: cxl_payload_from_user_allowed()
    (row,) = json.loads(r.stdout)
    assert row["outcome"] == "failed"
    assert "Linux refuses Set Partition Info's immediate flag from user space" in row["reason"]
    assert "EBUSY" in row["reason"]
    assert "leave out --immediate" in r.stderr
    assert _partition_unchanged()


def _partition_unchanged() -> bool:
    (row,) = json.loads(ok("set-partition", "-y", "mem0", "-t", "ram", "-s", "256M",
                           "--json").stdout)  # fmt: skip
    return row["changed"] is False


@pytest.mark.usefixtures("state")
def test_every_region_verb_honours_human_sizes() -> None:
    """-u reaches the region object of create-, disable- and enable-region alike."""
    for args in (
        ["create-region", "-y", "-t", "ram", "mem1"],
        ["disable-region", "-y", "region0"],
        ["enable-region", "-y", "region0"],
    ):
        (row,) = json.loads(ok(*args, "-u", "--json").stdout)
        region = row if "size" in row else row["region"]
        assert region["size"] == "256.00 MiB (268.44 MB)", (args, row)
        assert region["resource"] == "0x490000000", (args, row)
