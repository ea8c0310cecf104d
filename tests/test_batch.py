"""`cxlctl batch`: JSON lines in, one result per line out, in one process."""

from __future__ import annotations

import json
import os
import selectors
from collections.abc import Callable
from typing import Any

import procs
import pytest
from click.testing import Result

Run = Callable[..., Result]


def batch(cli: Run, *requests: Any, args: tuple[str, ...] = ()) -> tuple[list[Any], Result]:
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    r = cli("--sim", "batch", *args, input=lines)
    return [json.loads(line) for line in r.stdout.splitlines()], r


@pytest.mark.parametrize(
    "verb", ["identify", "health", "partition", "fw-info", "alert-config", "shutdown-state"]
)
def test_fast_path_results_are_the_cli_json(
    cli: Run, cli_json: Callable[..., Any], verb: str
) -> None:
    for name in ("mem0", "mem1", "mem2"):
        (row,), r = batch(cli, {"id": name, "memdev": name, "command": verb})
        assert r.exit_code == 0
        assert row["ok"] is True
        assert row["exit_code"] == 0
        assert row["result"] == cli_json("--sim", verb, name, "--json")


@pytest.mark.parametrize(
    ("request_", "argv"),
    [
        ({"command": "list"}, ["list", "--json"]),
        (
            {"command": "list", "memdev": "mem1", "partition": True},
            ["list", "mem1", "-I", "--json"],
        ),
        ({"command": "query", "memdev": "mem0"}, ["query", "mem0", "--json"]),
        (
            {"command": "partition", "memdev": "mem2", "human": True},
            ["partition", "mem2", "-u", "--json"],
        ),
        ({"command": "logs", "memdev": ["mem0", "mem1"]}, ["logs", "mem0", "mem1", "--json"]),
        ({"command": "security-state", "memdev": "mem0"}, ["security-state", "mem0", "--json"]),
        (
            {
                "command": "send",
                "memdev": "mem0",
                "kernel_command": "get-lsa",
                "payload": "00000000 10000000",
            },
            ["send", "mem0", "get-lsa", "-i", "00000000 10000000", "--json"],
        ),
    ],
)
def test_any_read_verb_with_its_options(
    cli: Run, cli_json: Callable[..., Any], request_: dict[str, Any], argv: list[str]
) -> None:
    (row,), _ = batch(cli, request_)
    assert row["ok"] is True, row
    assert row["result"] == cli_json("--sim", *argv)


def test_results_are_in_order_tagged_and_errors_do_not_stop(cli: Run) -> None:
    rows, r = batch(
        cli,
        {"id": "a", "memdev": "mem0", "command": "identify"},
        "this is not json",
        "",
        ["not", "an", "object"],
        {"id": 4},
        {"id": 5, "memdev": "mem9", "command": "health"},
        {"id": 6, "memdev": "mem0", "command": "frobnicate"},
        {"id": 7, "memdev": "mem0", "command": "health", "no_such_option": 1},
        {"id": {"any": "json"}, "memdev": "mem1", "command": "health"},
    )
    assert [row["line"] for row in rows] == [1, 2, 4, 5, 6, 7, 8, 9]  # the blank line is skipped
    assert [row.get("id") for row in rows] == ["a", None, None, 4, 5, 6, 7, {"any": "json"}]
    assert [row["exit_code"] for row in rows] == [0, 2, 2, 2, 6, 2, 2, 0]
    assert [row["ok"] for row in rows] == [True, False, False, False, False, False, False, True]
    assert rows[1]["error"]["type"] == "UsageError"
    assert "not JSON" in rows[1]["error"]["message"]
    assert rows[4]["error"] == {
        "type": "DeviceNotFound",
        "message": "mem9: no such memdev on the sim backend",
        "hint": "available: mem0, mem1, mem2",
    }
    assert rows[-1]["result"][0]["memdev"] == "mem1"
    assert r.exit_code == 2  # the first failure's exit code


def test_hostile_lines_are_one_error_each_and_the_batch_goes_on(cli: Run) -> None:
    """Deep nesting (RecursionError in json), a UTF-16 BOM (json.loads of bytes would
    decode it), a line over the bound (never held whole): each an error row, exit 2."""
    from cxlctl.cli.batch import MAX_LINE

    ok = '{"memdev": "mem0", "command": "identify"}'
    data = (
        ("[" * 100_000 + "]" * 100_000 + "\n" + ok + "\n").encode()
        + b"\xff\xfe{\x00}\x00\n"
        + b"a" * (MAX_LINE + 10)
        + b"\n"
        + ok.encode()
        + b"\n"
    )
    r = cli("--sim", "batch", input=data)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4, 5]
    assert [row["exit_code"] for row in rows] == [2, 0, 2, 2, 0]
    assert rows[0]["error"]["message"] == "line 1: JSON nested too deeply"
    assert rows[2]["error"]["message"] == "line 3: not UTF-8 (invalid start byte)"
    assert rows[3]["error"]["message"] == f"line 4: longer than {MAX_LINE} bytes: not a request"
    assert r.exit_code == 2


def test_fail_fast_stops_at_the_first_failure(cli: Run) -> None:
    rows, r = batch(
        cli,
        {"id": 1, "memdev": "mem0", "command": "health"},
        {"id": 2, "memdev": "mem7", "command": "health"},
        {"id": 3, "memdev": "mem0", "command": "health"},
        args=("--fail-fast",),
    )
    assert [row["id"] for row in rows] == [1, 2]
    assert r.exit_code == 6


def test_exit_codes_are_the_clis(cli: Run) -> None:
    rows, _ = batch(
        cli,
        {"memdev": "mem0", "command": "raw", "opcode": "0x4000"},  # no RAW: EPERM
        {"memdev": "mem0", "command": "send", "kernel_command": "identify", "payload": "00"},
        {"memdev": "mem0", "command": "send", "kernel_command": "get-lsa", "payload": "zz"},
    )
    assert [row["exit_code"] for row in rows] == [5, 9, 2]
    assert rows[0]["error"]["type"] == "PermissionDenied"


def test_change_verbs_need_yes(cli: Run) -> None:
    rows, r = batch(
        cli,
        {"id": 1, "memdev": "mem1", "command": "zero-labels", "size": "4K"},
        {"id": 2, "memdev": "mem0", "command": "disable-memdev"},
        {"id": 3, "memdev": "mem0", "command": "send", "kernel_command": "set-lsa",
         "payload": "0000000000000000"},
        {"id": 4, "command": "list", "memdev": "mem0"},
        {"id": 5, "memdev": "mem0", "command": "disable-memdev", "dry_run": True},
        {"id": 6, "memdev": "mem0", "command": "disable-memdev", "yes": True},
        {"id": 7, "command": "list", "memdev": "mem0", "idle": True},  # disabled: needs -i
        {"id": 8, "memdev": "mem0", "command": "zero-labels", "size": "4K", "yes": True},
    )  # fmt: skip
    assert [row["exit_code"] for row in rows[:3]] == [2, 2, 2]
    assert all('"yes": true' in row["error"]["message"] for row in rows[:3])
    assert "state" not in rows[3]["result"][0]  # nothing was changed
    assert rows[4]["result"][0]["outcome"] == "planned"
    assert rows[5]["result"][0]["outcome"] == "changed"
    assert rows[6]["result"][0]["state"] == "disabled"  # the same simulated system
    assert rows[7]["result"][0]["outcome"] == "changed"  # the bridge is gone now
    assert r.exit_code == 2


def test_a_failing_change_reports_its_result_and_exit_code(cli: Run) -> None:
    (row,), r = batch(cli, {"memdev": "mem0", "command": "zero-labels", "size": "4K", "yes": True})
    assert row["ok"] is False
    assert row["exit_code"] == 7  # the nvdimm bridge owns mem0's labels
    assert row["result"][0]["outcome"] == "failed"
    assert r.exit_code == 7


def test_verbs_never_read_the_request_stream(cli: Run) -> None:
    rows, _ = batch(
        cli,
        {"id": 1, "memdev": "mem1", "command": "write-labels", "yes": True},  # stdin input
        {"id": 2, "memdev": "mem1", "command": "health"},
    )
    assert rows[0]["exit_code"] == 2
    assert rows[1]["ok"] is True


def test_binary_output_comes_as_hex(cli: Run, cli_json: Callable[..., Any]) -> None:
    rows, _ = batch(
        cli,
        {"memdev": "mem0", "command": "read-labels", "size": "16"},
        {"memdev": "mem0", "command": "read-labels", "size": "16", "format": "raw"},
    )
    assert rows[0]["result"] == cli_json("--sim", "read-labels", "mem0", "-s", "16", "--json")
    assert rows[1]["result"] == {"hex": "00" * 16}


def test_refused_verbs(cli: Run) -> None:
    rows, _ = batch(cli, {"command": "batch"}, {"command": "monitor"})
    assert [row["exit_code"] for row in rows] == [2, 2]


def test_results_stream_line_by_line() -> None:
    """Each result is flushed before the next request is read (an agent's loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    p = procs.popen("--sim", "batch", env=env, stdin=True)
    assert p.stdin is not None
    assert p.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        for i in range(3):
            p.stdin.write(json.dumps({"id": i, "memdev": "mem0", "command": "health"}).encode())
            p.stdin.write(b"\n")
            p.stdin.flush()
            assert sel.select(timeout=120), "no result while the batch waits for more input"
            row = json.loads(p.stdout.readline())
            assert row["id"] == i
        p.stdin.close()
        assert p.wait(timeout=120) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize(
    ("change", "reopened"), [({"yes": True}, True), ({"dry_run": True}, False)]
)
def test_a_change_verb_makes_the_next_request_reread_the_memdev(
    cli: Run, monkeypatch: pytest.MonkeyPatch, change: dict[str, bool], reopened: bool
) -> None:
    """The fast path keeps each memdev open (payload_max, prepared commands read
    once); a change verb may change what they were read from, so after one the
    next request opens the memdev afresh. A dry run changes nothing."""
    from cxlctl.memdev import Memdev

    served: list[Memdev] = []
    identify = Memdev.identify

    def spy(self: Memdev) -> Any:
        served.append(self)
        return identify(self)

    monkeypatch.setattr(Memdev, "identify", spy)
    rows, r = batch(
        cli,
        {"memdev": "mem0", "command": "identify"},
        {"memdev": "mem0", "command": "identify"},
        {"memdev": "mem0", "command": "disable-memdev", **change},
        {"memdev": "mem0", "command": "identify"},
    )
    assert r.exit_code == 0, rows
    assert [row["ok"] for row in rows] == [True] * 4
    first, second, after = served
    assert first is second  # kept open between reads
    assert (after is not first) is reopened
    assert rows[3]["result"] == rows[0]["result"]
