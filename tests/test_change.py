"""The safety contract of every verb that changes a device (docs/cli-grammar.md):
--dry-run changes nothing, data-destroying verbs need a terminal's yes or -y, each
memdev is reported on its own with the worst exit code, progress goes to stderr,
a failure midway says what was written, --verify catches a read-back fault."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import Result

if TYPE_CHECKING:
    import pexpect

Cli = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent


def snapshot(state: Path) -> dict[str, str]:
    """Every file of a CXLCTL_SIM_STATE directory, hashed (of a 256 MiB label area
    the first and the last MiB: what the tests write)."""
    out = {}
    for p in sorted(state.iterdir()):
        if p.name.endswith(".lock") or not p.is_file():
            continue
        with open(p, "rb") as f:
            head = f.read(1 << 20)
            f.seek(max(0, p.stat().st_size - (1 << 20)))
            tail = f.read()
        out[p.name] = hashlib.sha256(head + tail).hexdigest()
    return out


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    return {"CXLCTL_SIM_STATE": str(tmp_path)}


def _prepare(cli: Cli, env: dict[str, str]) -> Path:
    """A state directory with mem0 disabled and some labels on mem0 and mem1."""
    assert cli("disable-memdev", "mem0", env=env).exit_code == 0
    for m in ("mem0", "mem1"):
        r = cli("write-labels", m, "-y", "-s", "4096", input=b"\xa5" * 4096, env=env)
        assert r.exit_code == 0, r.stderr
    return Path(env["CXLCTL_SIM_STATE"])


DRY_RUNS = [
    ["zero-labels", "mem0", "mem1", "-s", "1M"],
    ["zero-labels", "mem1", "-O", "4K", "-s", "4K"],
    ["write-labels", "mem1", "-O", "64", "-s", "8"],
    ["disable-memdev", "mem1", "mem2"],
    ["enable-memdev", "mem0"],
    ["set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on"],
]


@pytest.mark.parametrize("args", DRY_RUNS, ids=[" ".join(a) for a in DRY_RUNS])
def test_dry_run_changes_nothing(cli: Cli, state: dict[str, str], args: list[str]) -> None:
    d = _prepare(cli, state)
    before = snapshot(d)
    listed = cli("list", "--json", env=state).stdout
    r = cli(*args, "--dry-run", "--json", input=b"\x5a" * 8, env=state)
    assert r.exit_code == 0, r.stderr
    assert snapshot(d) == before
    assert cli("list", "--json", env=state).stdout == listed
    report = json.loads(r.stdout)
    assert report
    assert all(not x["changed"] for x in report)
    assert {x["outcome"] for x in report} <= {"planned", "unchanged"}
    assert all(x["plan"] for x in report if x["outcome"] == "planned")


def test_dry_run_reports_what_would_fail(cli: Cli, state: dict[str, str]) -> None:
    d = _prepare(cli, state)
    before = snapshot(d)
    r = cli("zero-labels", "mem1", "mem2", "-s", "4K", "--dry-run", "--json", env=state)
    assert r.exit_code == 7  # mem2's labels belong to the nvdimm bridge
    assert [x["outcome"] for x in json.loads(r.stdout)] == ["planned", "failed"]
    assert snapshot(d) == before


def test_dry_run_prints_each_write_and_ioctl(cli: Cli) -> None:
    r = cli("zero-labels", "mem1", "-s", "4K", "--dry-run")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "mem1: would do:"
    assert lines[1].startswith(
        "  ioctl /dev/cxl/mem1 CXL_MEM_SEND_COMMAND id 10 Set Label Storage Area "
        "(opcode 0x4103) flags=0x0 in.size=2048 out.size=0 in.payload=0000000000000000"
    )
    assert "in.size=24 out.size=0 in.payload=f00f0000" in lines[3]  # the last: 16 bytes at 0xff0
    r = cli("disable-memdev", "mem0", "--dry-run", "--json")
    (row,) = json.loads(r.stdout)
    assert row["plan"] == [
        {
            "kind": "sysfs",
            "target": "/sys/bus/cxl/devices/mem0/driver/unbind",
            "value": "'mem0'",
            "length": 4,
        }
    ]
    r = cli("set-alert-config", "mem0", "-L", "80", "--life-used-alert", "on", "--dry-run")
    assert "id 12 Set Alert Configuration (opcode 0x4202) flags=0x0 in.size=12" in r.stdout
    assert "in.payload=0101500000000000" in r.stdout


def test_destroying_needs_yes_without_a_terminal(cli: Cli, state: dict[str, str]) -> None:
    d = _prepare(cli, state)
    before = snapshot(d)
    r = cli("zero-labels", "mem0", "mem1", env=state)
    assert r.exit_code == 2
    assert r.stderr == (
        "cxlctl: zero-labels destroys the label storage area of mem0 (serial 0x1234), "
        "mem1 (serial 0x1235): refusing without confirmation (no terminal to ask on) "
        "(hint: pass -y/--yes to confirm, or --dry-run to see what it would do)\n"
    )
    assert cli("write-labels", "mem1", input=b"x", env=state).exit_code == 2
    assert snapshot(d) == before
    assert cli("zero-labels", "mem1", "--cxl-compat", "-s", "64", env=state).exit_code == 0
    assert snapshot(d) != before


def test_each_memdev_is_reported_and_the_worst_outcome_wins(cli: Cli) -> None:
    # mem0's labels belong to the nvdimm bridge; mem1's do not
    r = cli("zero-labels", "mem0", "mem1", "-s", "64", "-y", "--json")
    assert r.exit_code == 7
    rows = {x["memdev"]: x for x in json.loads(r.stdout)}
    assert rows["mem1"]["outcome"] == "changed"
    assert rows["mem1"]["changed"] is True
    assert rows["mem0"]["outcome"] == "failed"
    assert rows["mem0"]["exit_code"] == 7
    assert "owned by the nvdimm bridge" in rows["mem0"]["reason"]
    r = cli("zero-labels", "mem0", "mem1", "-s", "64", "-y")
    assert "│ mem0   │ 0x1234 │ failed  │" in r.stdout
    assert "│ mem1   │ 0x1235 │ changed │" in r.stdout
    r = cli("enable-memdev", "all", "--json")
    assert [x["outcome"] for x in json.loads(r.stdout)] == ["unchanged"] * 3


def test_verify_catches_a_read_back_fault(cli: Cli) -> None:
    env = {"CXLCTL_SIM_FAULTS": "lsa-readback"}
    r = cli("zero-labels", "mem1", "-s", "4K", "--verify", "-y", "--json", env=env)
    assert r.exit_code == 1
    (row,) = json.loads(r.stdout)
    assert row["outcome"] == "failed"
    assert "verify failed" in row["reason"]
    assert "at offset 0x0" in row["reason"]
    assert "all 4096 bytes at 0x0 were written" in row["reason"]
    assert cli("zero-labels", "mem1", "-s", "4K", "-y", env=env).exit_code == 0
    assert cli("list", env={"CXLCTL_SIM_FAULTS": "nonsense"}).exit_code == 2


def test_jsonl_progress_on_stderr_results_on_stdout(cli: Cli) -> None:
    r = cli("zero-labels", "mem1", "-s", "1M", "-y", "-o", "jsonl")
    assert r.exit_code == 0
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert events[0] == {
        "event": "progress",
        "memdev": "mem1",
        "what": "zeroing labels",
        "done": 0,
        "total": 1 << 20,
        "percent": 0,
    }
    assert events[-1]["done"] == events[-1]["total"] == 1 << 20
    assert [e["percent"] for e in events] == sorted({e["percent"] for e in events})
    (result,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert result["event"] == "result"
    assert result["changed"] is True
    r = cli("zero-labels", "mem1", "-s", "1M", "-y", "--json")
    assert "progress" not in r.stderr  # not a terminal, not jsonl: no progress at all


def _spawn(args: list[str], env: dict[str, str]) -> pexpect.spawn:
    spawn: type[pexpect.spawn] = pytest.importorskip("pexpect").spawn
    return spawn(
        sys.executable,
        ["-m", "cxlctl", "--sim", *args],
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1", **env},
        cwd=str(ROOT),
        timeout=240,
        encoding="utf-8",
        dimensions=(40, 100),
    )


@pytest.mark.parametrize("answer", ["n", "y"])
def test_terminal_prompt_names_memdev_and_serial(
    cli: Cli, state: dict[str, str], answer: str
) -> None:
    d = _prepare(cli, state)
    before = snapshot(d)
    child = _spawn(["zero-labels", "mem1", "-s", "4K"], state)
    child.expect_exact("zero-labels will destroy the label storage area of:")
    child.expect_exact("mem1 (serial 0x1235)")
    child.expect_exact("Continue? [y/N]:")
    child.sendline(answer)
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    if answer == "n":
        assert child.exitstatus == 1
        assert snapshot(d) == before
    else:
        assert child.exitstatus == 0
        assert snapshot(d) != before
        back = cli("read-labels", "mem1", "-s", "4K", env=state).stdout_bytes
        assert back == bytes(4096)


def test_progress_bar_on_a_terminal(state: dict[str, str]) -> None:
    child = _spawn(["zero-labels", "mem1", "-s", "2M", "-y"], state)
    child.expect_exact("mem1: zeroing labels")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0
    out: str = child.before or ""
    assert "2.0/2.0 MiB" in out or "2.1/2.1 MB" in out or "MiB" in out
