"""Regression tests for issue 9's inconsistencies: each old surprise, and its fix."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cxlctl import render as rd

Cli = Callable[..., Result]


def _one_line(r: Result) -> str:
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# --- global options after the verb ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--sim", "--json"],
        ["list", "--json", "--backend", "sim"],
        ["list", "--backend=sim", "--json", "--color", "never", "--debug"],
    ],
)
def test_global_options_after_the_verb(cli: Cli, args: list[str]) -> None:
    r = cli(*args, env={"CXLCTL_BACKEND": "kernel"})
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)[0]["backend"] == "sim"


def test_global_options_after_double_dash_are_arguments(cli: Cli) -> None:
    r = cli("list", "--", "--sim")
    assert r.exit_code == 2  # '--sim' is a MEMDEV argument now, and not one


def test_a_global_option_name_as_an_option_value_is_that_value(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-i --debug`` reads a file named ``--debug``: not a hoisted --debug (which
    would turn the next error into a traceback)."""
    monkeypatch.chdir(tmp_path)
    r = cli("write-labels", "mem0", "-i", "--debug", "-y")
    assert r.exit_code == 2, r.stderr
    assert _one_line(r) == "cxlctl: write-labels: --debug: No such file or directory [ENOENT]"
    assert r.exception is None or isinstance(r.exception, SystemExit)
    (tmp_path / "--sim").write_bytes(bytes(64))
    r = cli("write-labels", "mem0", "-i", "--sim", "-y")
    # the file was read (64 bytes) and reached the device, whose label area the
    # nvdimm bridge owns: not '-y: No such file'
    assert r.exit_code == 7, r.stderr
    assert "owned by the nvdimm bridge" in _one_line(r)


# --- one-line usage errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["indentify", "mem0"],
            "cxlctl: no such command 'indentify' (did you mean 'identify'?); see 'cxlctl --help'",
        ),
        (
            ["list", "--jsno"],
            "cxlctl: list: no such option '--jsno' (did you mean '--json'?); "
            "see 'cxlctl list --help'",
        ),
        (
            ["identify", "-o", "yaml"],
            "cxlctl: identify: invalid value for '-o' / '--output': 'yaml' is not one of "
            "'table', 'wide', 'plain', 'json', 'jsonl'; see 'cxlctl identify --help'",
        ),
    ],
)
def test_usage_errors_are_one_line(cli: Cli, args: list[str], line: str) -> None:
    r = cli(*args)
    assert r.exit_code == 2
    assert _one_line(r) == line


def test_swapped_send_arguments_are_named(cli: Cli) -> None:
    r = cli("send", "identify", "mem0")
    assert r.exit_code == 2
    assert "MEMDEV comes first: write `cxlctl send mem0 identify`" in _one_line(r)
    r = cli("raw", "0x4000", "mem0")
    assert "write `cxlctl raw mem0 0x4000`" in _one_line(r)


# --- argument order: MEMDEV first, the old order with a warning ----------------------


@pytest.mark.parametrize("verb", ["get-log", "log-caps"])
def test_log_verbs_take_memdev_first(cli: Cli, verb: str) -> None:
    new = cli(verb, "mem0", "cel", "--json")
    old = cli(verb, "cel", "mem0", "--json")
    assert new.exit_code == old.exit_code == 0, old.stderr
    assert new.stdout == old.stdout
    assert new.stderr == ""
    assert f"write `{verb} mem0 cel` (MEMDEV first)" in _one_line(old)
    assert json.loads(cli(verb, "cel", "--json").stdout)[0]["memdev"] == "mem0"  # all memdevs


def test_get_log_range_uses_offset_and_size(cli: Cli) -> None:
    new = json.loads(cli("get-log", "mem0", "cel", "-O", "8", "-s", "16", "--json").stdout)
    assert (new[0]["offset"], new[0]["length"]) == (8, 16)
    old = cli("get-log", "mem0", "cel", "-O", "8", "--length", "16", "--json")
    assert json.loads(old.stdout) == new
    assert "--length is now -s/--size" in old.stderr


@pytest.mark.parametrize(
    ("new", "old", "hint", "first"),
    [
        (
            ["poison", "mem0", "-O", "0x1000", "-s", "4K", "--json"],
            ["poison", "mem0", "0x1000+4096", "--json"],
            "write -O 0x1000 -s 0x1000",
            {"range": {"offset": 0x1000, "length": 4096}},
        ),
        (
            ["scan-media-caps", "mem0", "-O", "0", "-s", "4K", "--json"],
            ["scan-media-caps", "mem0", "0x0+4096", "--json"],
            "",
            {},
        ),
    ],
    ids=["poison", "scan-media-caps"],
)
def test_range_options_and_old_positional(
    cli: Cli, new: list[str], old: list[str], hint: str, first: dict[str, object]
) -> None:
    """-O/-s and the old OFFSET+LENGTH positional give the same answer."""
    n, o = cli(*new), cli(*old)
    assert n.exit_code == o.exit_code == 0, o.stderr
    assert json.loads(n.stdout) == json.loads(o.stdout)
    got = json.loads(n.stdout)[0]
    assert {k: got[k] for k in first} == first
    assert hint in o.stderr


# --- -i / -f / -l / -o mean one thing ---------------------------------------------------


def test_send_input_file_and_hex(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "in.bin"
    f.write_bytes(bytes.fromhex("00000000 08000000"))
    a = cli("send", "mem0", "get-lsa", "-i", str(f), "-o", "hex")
    b = cli("send", "mem0", "get-lsa", "-x", "00000000 08000000", "-o", "hex")
    c = cli("send", "mem0", "get-lsa", "-i", "00000000 08000000", "-o", "hex")  # old -i HEX
    d = cli("send", "mem0", "get-lsa", "-f", str(f), "-o", "hex")  # old -f FILE
    assert a.exit_code == b.exit_code == c.exit_code == d.exit_code == 0
    assert a.stdout == b.stdout == c.stdout == d.stdout
    assert (a.stderr, b.stderr) == ("", "")
    assert "-i now takes a FILE; for hex bytes write -x" in c.stderr
    assert "-f/--input-file is now -i/--input FILE" in d.stderr


def test_events_log_option_renamed(cli: Cli) -> None:
    new = cli("events", "mem0", "--event-log", "warn", "--json")
    old = cli("events", "mem0", "-l", "warn", "--json")
    assert new.exit_code == old.exit_code == 0
    assert new.stdout == old.stdout
    assert "--event-log" in old.stderr


def test_read_labels_o_json_is_not_a_silent_file(cli: Cli, tmp_path: Path) -> None:
    r = cli("read-labels", "mem0", "-s", "64", "-o", "json")
    assert r.exit_code == 2
    assert "--json" in _one_line(r)
    assert not Path("json").exists()
    out = tmp_path / "lsa.bin"
    assert cli("read-labels", "mem0", "-s", "64", "-o", str(out)).exit_code == 0
    assert out.read_bytes() == bytes(64)
    d = json.loads(cli("read-labels", "mem0", "-s", "16", "--json").stdout)
    assert d == [{"memdev": "mem0", "offset": 0, "length": 16, "data": "00" * 16}]


def test_read_labels_takes_several_memdevs(cli: Cli) -> None:
    r = cli("read-labels", "mem0", "mem1", "-s", "64")
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == bytes(128)


# --- one size type --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["poison", "mem0", "--inject", "0x10000000000003000"], "does not fit in 64 bits"),
        (["scan-media-caps", "mem0", "0x10000000000000000+0x40"], "does not fit in 64 bits"),
        (["read-labels", "mem0", "-s", "٣"], "only ASCII digits"),
        (["read-labels", "mem0", "-s", "-1"], "must not be negative"),
        (["get-log", "mem0", "cel", "-s", "1x"], "is not a number"),
        (["identify", "mem٣"], "is not a memdev"),
        (["monitor", "--timeout", "nan"], "is not a duration in ms"),
        (["monitor", "--timeout", "0.3"], "0.3 s is 300"),
        (["monitor", "--count", "0"], "out of range"),
        (["send", "mem0", "identify", "--out-size", "-1"], "must not be negative"),
    ],
)
def test_bad_numbers_are_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    r = cli(*args)
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert message in _one_line(r)


def test_sizes_take_units(cli: Cli) -> None:
    a = cli("read-labels", "mem0", "-O", "4K", "-s", "0x40").stdout_bytes
    b = cli("read-labels", "mem0", "-O", "4096", "-s", "64").stdout_bytes
    assert a == b == bytes(64)


# --- exit codes and JSON shapes ------------------------------------------------------


def test_decode_of_an_empty_payload_is_a_usage_error(cli: Cli) -> None:
    r = cli("decode", "identify", input=b"")
    assert r.exit_code == 2
    assert "payload is 0 bytes" in _one_line(r)


def test_send_dry_run_json_is_an_array(cli: Cli) -> None:
    d = json.loads(cli("send", "mem0", "identify", "--dry-run", "--json").stdout)
    assert isinstance(d, list)
    assert d[0]["memdev"] == "mem0"


def test_jsonl_is_one_object_per_line(cli: Cli) -> None:
    r = cli("identify", "-o", "jsonl")
    lines = r.stdout.splitlines()
    assert [json.loads(x)["memdev"] for x in lines] == ["mem0", "mem1", "mem2"]


def test_human_everywhere_json_is_printed(cli: Cli) -> None:
    d = json.loads(cli("identify", "mem0", "-u", "--json").stdout)[0]
    assert d["total_size"] == "256.00 MiB (268.44 MB)"
    d = json.loads(cli("partition", "mem2", "-u", "--json").stdout)[0]
    assert isinstance(d["active_volatile_size"], str)


# --- hex dumps are xxd's ------------------------------------------------------------


def test_hexdump_is_xxd_format() -> None:
    data = bytes(range(20))
    assert rd.hexdump(data).splitlines() == [
        "00000000: 0001 0203 0405 0607 0809 0a0b 0c0d 0e0f  ................",
        "00000010: 1011 1213                                ....",
    ]
    assert rd.hexdump(b"AB", base=0x1000) == "00001000: 4142" + " " * 35 + "  AB"


@pytest.mark.skipif(shutil.which("xxd") is None, reason="needs xxd")
def test_hexdump_reverses_with_xxd_r(cli: Cli) -> None:
    data = cli("get-log", "mem0", "cel", "-o", "raw").stdout_bytes
    dump = cli("get-log", "mem0", "cel", "-o", "hex").stdout
    back = subprocess.run(["xxd", "-r"], input=dump.encode(), capture_output=True, timeout=60)
    assert back.stdout == data
    assert len(data) > 16
    # what xxd itself prints is what cxlctl prints
    ref = subprocess.run(["xxd"], input=data, capture_output=True, timeout=60).stdout.decode()
    assert dump == ref


# --- tables people can read: goldens at 80 and 120 columns ---------------------------

#: realistic 64-bit serials and a 16-character firmware string
WIDE_IDS = {
    "CXLCTL_SIM_SERIALS": "0x1122334455667788,0xfedcba9876543210,0x8000000000000001",
    "CXLCTL_SIM_FIRMWARE": "FW-2026.11.30-ab",
    "CXLCTL_SIM_HEALTH": "mem1:critical,mem2:warning",
}
SERIALS = ("0x1122334455667788", "0xfedcba9876543210", "0x8000000000000001")
TABLES = {
    "list": ["list"],
    "list-HIF": ["list", "-H", "-I", "-F"],
    "health": ["health"],
    "events": ["events", "mem0"],
    "cel": ["cel", "mem0"],
    "query": ["query", "mem0"],
}


@pytest.mark.parametrize("columns", ["80", "120"])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_keep_identifiers_whole(cli: Cli, name: str, columns: str) -> None:
    from goldens import golden

    # the full profile's CEL and command table grow with the simulator: QEMU's are fixed
    qemu = {"CXLCTL_SIM_PROFILE": "qemu"} if name in ("cel", "query") else {}
    r = cli(*TABLES[name], env={**WIDE_IDS, "COLUMNS": columns, **qemu})
    assert r.exit_code == 0, r.stderr
    golden(f"tables/{name}-{columns}.txt", r.stdout)
    assert "…" not in r.stdout
    assert all(len(line) <= int(columns) for line in r.stdout.splitlines()), r.stdout
    if name in ("list", "list-HIF", "health"):
        for serial in SERIALS:
            assert serial in r.stdout
        if name != "health":
            assert r.stdout.count("FW-2026.11.30-ab") == 3
            assert r.stdout.count("0000:0") == 3


def test_health_flags_unhealthy_devices_in_words(cli: Cli) -> None:
    r = cli("health", env={**WIDE_IDS, "COLUMNS": "80"})
    rows = {line.split()[1]: line for line in r.stdout.splitlines() if line.startswith("│ mem")}
    assert "CRITICAL" in rows["mem1"]
    assert "WARNING" in rows["mem2"]
    assert " OK " in rows["mem0"]
    d = json.loads(cli("health", "mem1", "--json", env=WIDE_IDS).stdout)[0]
    assert (d["hw_replacement_needed"], d["media_status_name"]) == (
        True,
        "persistence_loss_imminent",
    )


def test_plain_has_no_box_characters(cli: Cli) -> None:
    r = cli("list", "-o", "plain", env=WIDE_IDS)
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "memdev", "serial", "state", "ram_size", "pmem_size", "host", "firmware_version",
    ]  # fmt: skip
    assert not set(r.stdout) & set("┃│┏━─┼|+")
    cols = [line.split("  ")[0].strip() for line in lines[1:]]
    assert cols == ["mem0", "mem1", "mem2"]


def test_wide_shows_every_column(cli: Cli) -> None:
    narrow = cli("list", "-H", "-I", "-F", env={**WIDE_IDS, "COLUMNS": "80"}).stdout
    wide = cli("list", "-H", "-I", "-F", "-o", "wide", env={**WIDE_IDS, "COLUMNS": "80"}).stdout
    assert "more columns: -o wide)" in narrow.splitlines()[0]
    for col in ("total_size", "slots", "life_%", "temp_C", "errors"):
        assert col in wide
    assert "-o wide" not in wide


def test_events_show_iso_times_hex_dpa_and_no_empty_boxes(cli: Cli) -> None:
    r = cli("events", "mem0", "-o", "wide")
    assert "2025-11-25T00:00:01Z" in r.stdout
    assert "0x2000" in r.stdout
    assert "mem0 fatal log (trace; overflow: no) [simulated]: no records" in r.stdout


def test_sim_configuration_errors_are_usage_errors(cli: Cli) -> None:
    for env in (
        {"CXLCTL_SIM_HEALTH": "mem1:dying"},
        {"CXLCTL_SIM_SERIALS": "0x10000000000000000"},
        {"CXLCTL_SIM_FIRMWARE": "X" * 17},
    ):
        r = cli("list", env=env)
        assert r.exit_code == 2, (env, r.stderr)
        assert _one_line(r).startswith("cxlctl: simulator configuration: ")
