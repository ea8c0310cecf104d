"""Issue 13, defects 20 and 21 as classes.

20: every message about a file the user named says which file, the errno and a hint
    that fits (``errors.file_error``), for every command with a file option.
21: a command over several memdevs where some fail still prints the others' results
    (table or --json), then one line per failed memdev and the first failure's exit
    code (``App.each``/``App.keep``), for every such command.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from cxlctl.errors import ExitCode, FileError, MailboxError, UsageError, file_error

Cli = Callable[..., Result]

# --- 21: partial multi-memdev failures -----------------------------------------------

#: every command that runs over several memdevs and reads each one (argv without memdevs)
MULTI = {
    "identify": ["identify"],
    "query": ["query"],
    "health": ["health"],
    "partition": ["partition"],
    "fw-info": ["fw-info"],
    "alert-config": ["alert-config"],
    "shutdown-state": ["shutdown-state"],
    "timestamp": ["timestamp"],
    "security-state": ["security-state"],
    "event-interrupt-policy": ["event-interrupt-policy"],
    "logs": ["logs"],
    "cel": ["cel"],
    "get-log": ["get-log", "cel"],
    "log-caps": ["log-caps", "cel"],
    "poison": ["poison"],
    "scan-media-caps": ["scan-media-caps", "-s", "0x40"],
    "events": ["events"],
}
#: the mailbox fault that makes mem1 fail every command it is sent
MEM1_FAILS = {"CXLCTL_SIM_FAULTS": "mem1:rc=4", "CXLCTL_SIM_RAW": "1"}


@pytest.fixture
def mem1_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """mem1 fails also where no mailbox command is sent: QUERY and sysfs."""
    from cxlctl.cli import info
    from cxlctl.memdev import Memdev

    real_query = Memdev.query
    real_security = info._security_state

    def query(self: Memdev) -> Any:
        if self.name == "mem1":
            raise MailboxError("mem1: query: refused", 4)
        return real_query(self)

    def security(app: Any, name: str) -> Any:
        if name == "mem1":
            raise MailboxError("mem1: security/state: refused", 4)
        return real_security(app, name)

    monkeypatch.setattr(Memdev, "query", query)
    monkeypatch.setattr(info, "_security_state", security)


def _memdevs(data: Any) -> list[str]:
    return sorted({d["memdev"] for d in data})


@pytest.mark.usefixtures("mem1_fails")
@pytest.mark.parametrize("verb", sorted(MULTI))
def test_the_successes_json_survives_a_partial_failure(cli: Cli, verb: str) -> None:
    r = cli(*MULTI[verb], "--json", env=MEM1_FAILS)
    assert r.exit_code == int(ExitCode.DEVICE_ERROR), (r.stdout, r.stderr)
    assert _memdevs(json.loads(r.stdout)) == ["mem0", "mem2"]
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cxlctl: mem1: ")


@pytest.mark.usefixtures("mem1_fails")
@pytest.mark.parametrize("verb", sorted(set(MULTI) - {"get-log"}))  # get-log: a hex dump
def test_the_successes_table_survives_a_partial_failure(cli: Cli, verb: str) -> None:
    r = cli(*MULTI[verb], env=MEM1_FAILS)
    assert r.exit_code == int(ExitCode.DEVICE_ERROR), (r.stdout, r.stderr)
    assert "mem0" in r.stdout
    assert "mem2" in r.stdout
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("cxlctl: mem1: ")


def test_when_every_memdev_fails_nothing_is_printed_and_each_is_named(cli: Cli) -> None:
    r = cli("health", "--json", env={"CXLCTL_SIM_FAULTS": "rc=4"})
    assert r.exit_code == int(ExitCode.DEVICE_ERROR)
    assert r.stdout == ""
    assert [x.split(":")[1].strip() for x in r.stderr.splitlines()] == ["mem0", "mem1", "mem2"]


def test_one_memdev_failing_alone_prints_no_empty_result(cli: Cli) -> None:
    r = cli("identify", "mem1", "--json", env=MEM1_FAILS)
    assert r.exit_code == int(ExitCode.DEVICE_ERROR)
    assert r.stdout == ""
    assert r.stderr == "cxlctl: mem1: identify: device returned Internal Error (0x4)\n"


def test_the_first_failures_exit_code_wins(cli: Cli) -> None:
    env = {"CXLCTL_SIM_FAULTS": "mem0:identify:short,mem2:identify:vanish"}
    r = cli("identify", "--json", env={**env, "CXLCTL_SIM_TIME_SCALE": "0"})
    assert r.exit_code == int(ExitCode.DEVICE_ERROR)  # mem0's short answer, not mem2's
    assert _memdevs(json.loads(r.stdout)) == ["mem1"]
    assert len(r.stderr.splitlines()) == 2


# --- 20: messages name the file ----------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "labels.bin").write_bytes(bytes(64))
    return {"dir": str(tmp_path), "missing": str(tmp_path / "no" / "such"), "ok": str(tmp_path)}


def _file_cases(f: dict[str, str]) -> dict[str, tuple[list[str], str, int]]:
    """Every file option: argv, the path the message must name, the exit code."""
    miss, d = f["missing"], f["dir"]
    return {
        "read-labels -o (no directory)": (
            ["read-labels", "mem0", "-s", "64", "-o", f"{miss}/x"],
            f"{miss}/x",
            1,
        ),
        "read-labels -o (a directory)": (["read-labels", "mem0", "-s", "64", "-o", d], d, 1),
        "read-labels --output-file": (
            ["read-labels", "mem0", "-s", "64", "--output-file", f"{miss}/x"],
            f"{miss}/x",
            1,
        ),
        "write-labels -i": (["write-labels", "mem1", "-y", "-i", miss], miss, 2),
        "write-labels -i (a directory)": (["write-labels", "mem1", "-y", "-i", d], d, 2),
        "decode FILE": (["decode", "identify", miss], miss, 2),
        "decode -i": (["decode", "identify", "-i", miss], miss, 2),
        "send -i": (["send", "mem0", "identify", "-i", miss], miss, 2),
        "raw -i": (["raw", "mem0", "0x4000", "-i", miss], miss, 2),
        "batch -i": (["batch", "-i", miss], miss, 2),
        "update-firmware -F": (["update-firmware", "mem1", "-F", miss, "-y"], miss, 2),
        "update-firmware -F (a directory)": (["update-firmware", "mem1", "-F", d, "-y"], d, 2),
        "monitor -l": (["monitor", "-l", f"{miss}/log", "--timeout", "0"], f"{miss}/log", 2),
    }


def test_every_file_message_names_the_file_and_the_errno(
    cli: Cli, files: dict[str, str], tmp_path: Path
) -> None:
    for case, (argv, path, code) in _file_cases(files).items():
        r = cli(*argv)
        assert r.exit_code == code, (case, r.exit_code, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1, (case, r.stderr)
        assert f": {path}: " in lines[0], (case, lines[0])
        assert "[ENOENT]" in lines[0] or "[EISDIR]" in lines[0], (case, lines[0])
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))  # nothing left


def test_the_missing_directory_is_the_hint(cli: Cli, files: dict[str, str]) -> None:
    target = f"{files['missing']}/x"
    r = cli("read-labels", "mem0", "-s", "64", "-o", target)
    assert r.stderr == (
        f"cxlctl: read-labels: {target}: No such file or directory [ENOENT] "
        f"(hint: the directory {files['missing']} does not exist)\n"
    )


def test_the_topology_file_is_named(cli: Cli, files: dict[str, str]) -> None:
    missing = files["missing"] + ".json"
    r = cli("list", "-R", env={"CXLCTL_SIM_TOPOLOGY": missing})
    assert r.exit_code == 2
    assert r.stderr == (
        "cxlctl: simulator topology (CXLCTL_SIM_TOPOLOGY): "
        f"{missing}: No such file or directory [ENOENT]\n"
    )


@pytest.mark.parametrize(
    ("err", "writing", "hint"),
    [
        (errno.ENOENT, True, "the directory /a/b does not exist"),
        (errno.ENOENT, False, None),
        (errno.EACCES, True, "you may not write there"),
        (errno.EACCES, False, "you may not read it"),
        (errno.EROFS, True, "the file system is read-only"),
        (errno.ENOSPC, True, "the file system is full"),
        (errno.EISDIR, False, "it is a directory: name a file"),
        (errno.EIO, True, None),
    ],
)
def test_file_error_hints(err: int, writing: bool, hint: str | None) -> None:
    e = file_error("read-labels", "/a/b/c", OSError(err, os.strerror(err)), writing=writing)
    assert isinstance(e, FileError)
    assert e.message == f"read-labels: /a/b/c: {os.strerror(err)} [{errno.errorcode[err]}]"
    assert e.hint == hint
    assert isinstance(file_error("x", "/a", OSError(err, "x"), usage=True), UsageError)


def test_an_unclassified_os_error_names_its_file(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's last resort for an OSError the library did not classify."""
    from cxlctl.memdev import Memdev

    def boom(self: Memdev) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", "/sys/bus/cxl/x")

    monkeypatch.setattr(Memdev, "identify", boom)
    r = cli("identify", "mem0")
    assert r.exit_code == 1
    assert r.stderr == (
        "cxlctl: identify: /sys/bus/cxl/x: Permission denied [EACCES] (hint: you may not read it)\n"
    )
