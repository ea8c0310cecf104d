"""Event logs: the device model, the simulated kernel's trace events, `events`, `monitor`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from goldens import CLI_ENV, golden

from cxlctl import tracefs as tf
from cxlctl.backends import SimBackend
from cxlctl.errors import UnsupportedCommand
from cxlctl.mailbox import ReturnCode
from cxlctl.mailbox.events import decode_event_records
from cxlctl.sim import SimDevice, make_devices
from cxlctl.sim.device import events as sim_events

RC = ReturnCode
Cli = Callable[..., Result]
CliJson = Callable[..., Any]


def _clear(log: int, handles: list[int], flags: int = 0) -> bytes:
    return bytes([log, flags, len(handles), 0, 0, 0]) + b"".join(
        h.to_bytes(2, "little") for h in handles
    )


@pytest.fixture
def full() -> SimDevice:
    (dev,) = make_devices(["pmem"])
    return dev


# --- the device model ------------------------------------------------------------------


def test_seeded_records_one_per_log(full: SimDevice) -> None:
    kinds = []
    for log in range(4):
        rc, out = full.device.execute(0x0100, bytes([log]))
        assert rc == RC.SUCCESS
        kinds.append([r.header.record_type for r in decode_event_records(out).records])
    assert kinds == [["memory_module"], ["general_media"], ["dram"], []]


def test_more_records_and_clear_by_handle(full: SimDevice) -> None:
    dev = full.device
    for i in range(4):
        sim_events.add_record(dev, 3, sim_events.general_media(0x1000 * i, severity=3), i + 1)
    sim_events.state(dev).page_records = 3
    v = decode_event_records(dev.execute(0x0100, b"\x03")[1])
    assert v.more_records
    handles = [r.header.handle for r in v.records]
    assert handles == [1, 2, 3]
    # a handle that is not the oldest, and one that does not exist
    assert dev.execute(0x0101, _clear(3, [2]))[0] == RC.INVALID_HANDLE
    assert dev.execute(0x0101, _clear(3, [99]))[0] == RC.INVALID_HANDLE
    assert dev.execute(0x0101, _clear(3, handles))[0] == RC.SUCCESS
    v = decode_event_records(dev.execute(0x0100, b"\x03")[1])
    assert [r.header.handle for r in v.records] == [4]
    assert not v.more_records


def test_overflow_counts_and_timestamps(full: SimDevice) -> None:
    dev = full.device
    lg = sim_events.state(dev).logs[2]
    while len(lg.records) < lg.capacity:
        sim_events.add_record(dev, 2, sim_events.dram(0), 1)
    assert sim_events.add_record(dev, 2, sim_events.dram(0), 100) == 0
    assert sim_events.add_record(dev, 2, sim_events.dram(0), 200) == 0
    v = decode_event_records(dev.execute(0x0100, b"\x02")[1])
    assert v.overflow
    assert (v.overflow_error_count, v.first_overflow_timestamp, v.last_overflow_timestamp) == (
        2,
        100,
        200,
    )
    assert dev.execute(0x0101, _clear(2, [], flags=1))[0] == RC.SUCCESS
    assert not decode_event_records(dev.execute(0x0100, b"\x02")[1]).overflow


@pytest.mark.parametrize(
    ("opcode", "payload", "rc"),
    [
        (0x0100, b"\x04", RC.INVALID_INPUT),  # no dynamic capacity log
        (0x0100, b"\x00\x00", RC.INVALID_PAYLOAD_LENGTH),
        (0x0101, b"\x00\x00\x02\x00\x00\x00\x01\x00", RC.INVALID_PAYLOAD_LENGTH),
        (0x0101, _clear(0, [1], flags=1), RC.INVALID_INPUT),  # clear all with handles
        (0x0101, _clear(7, []), RC.INVALID_INPUT),
        (0x0101, b"\x00", RC.INVALID_PAYLOAD_LENGTH),
    ],
)
def test_event_return_codes(full: SimDevice, opcode: int, payload: bytes, rc: int) -> None:
    assert full.device.execute(opcode, payload)[0] == rc


def test_qemu_profile_logs_are_empty(pmem: SimDevice) -> None:
    v = decode_event_records(pmem.device.execute(0x0100, b"\x00")[1])
    assert v.records == ()


# --- the simulated kernel ----------------------------------------------------------------


def test_sim_kernel_drains_and_clears_like_linux(full: SimDevice) -> None:
    dev = full.device
    for i in range(20):  # more than one page (15 records fit in 2048 bytes)
        sim_events.add_record(dev, 0, sim_events.general_media(i * 64, severity=0), i)
    tr = SimBackend([full]).tracing()
    evs = tr.snapshot()
    info = [e for e in evs if e.get("log") == "Informational"]
    assert len(info) == 21
    assert all(not sim_events.state(dev).logs[i].records for i in range(4))
    clears = [p for op, p in dev.calls if op == 0x0101]
    assert clears[0][:3] == bytes([0, 0, 15])  # log 0, 15 handles


def test_sim_kernel_traces_overflow(full: SimDevice) -> None:
    dev = full.device
    lg = sim_events.state(dev).logs[1]
    while len(lg.records) < lg.capacity:
        sim_events.add_record(dev, 1, sim_events.general_media(0), 1)
    sim_events.add_record(dev, 1, sim_events.general_media(0), 7)
    evs = SimBackend([full]).tracing().snapshot()
    (ov,) = [e for e in evs if e["event"] == "cxl_overflow"]
    assert (ov["log"], ov["count"], ov["first_ts"], ov["last_ts"]) == ("Warning", 1, 7, 7)


def test_trace_text_roundtrips_every_decoded_field(full: SimDevice) -> None:
    evs = SimBackend([full]).tracing().snapshot()
    gm = next(e for e in evs if e["event"] == "cxl_general_media")
    assert gm["hdr_uuid"] == "fbcd0a77-c260-417f-85a9-088b1621eba6"
    assert (gm["dpa"], gm["type"], gm["transaction_type"]) == (0x2000, "ECC Error", "Host Read")
    assert (gm["validity_flags"], gm["cme_count"], gm["hdr_flags"]) == (
        "CHANNEL|RANK",
        12,
        "MAINTENANCE_NEEDED",
    )
    dram = next(e for e in evs if e["event"] == "cxl_dram")
    assert (dram["row"], dram["column"], dram["nibble_mask"]) == (0x1234, 0x1F0, 0x10F)


def test_parse_real_kernel_general_media_line() -> None:
    line = (
        "     kworker/u9:0-123     [002] .....    41.882714: cxl_general_media: memdev=mem0 "
        "host=0000:0d:00.0 serial=4660 log=Warning : time=1764028801000000000 "
        "uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 len=128 flags='MAINTENANCE_NEEDED' "
        "handle=1a related_handle=0 maint_op_class=0 maint_op_sub_class=0 : dpa=2000 "
        "dpa_flags='' descriptor='THRESHOLD_EVENT' type='ECC Error' sub_type='Not Reported' "
        "transaction_type='Host Read' channel=1 rank=0 device=0 validity_flags='CHANNEL|RANK' "
        "comp_id=00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 comp_id_pldm_valid_flags='' "
        "pldm_entity_id=0x00 pldm_resource_id=0x00 hpa=ffffffffffffffff region= "
        "region_uuid=00000000-0000-0000-0000-000000000000 cme_threshold_ev_flags='' cme_count=0"
    )
    e = tf.parse_line(line)
    assert e is not None
    assert (e["event"], e["timestamp"], e["log"], e["hdr_handle"], e["dpa"]) == (
        "cxl_general_media",
        41_882714000,
        "Warning",
        0x1A,
        0x2000,
    )
    assert e["comp_id"] == " ".join(["00"] * 16)
    assert e["region_name"] == ""


# --- events ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "env"),
    [
        ("events-mem0.json", ["events", "mem0", "--json"], {}),
        ("events-mem0.txt", ["events", "mem0"], {}),
        ("events-warn.json", ["events", "--event-log", "warn", "--json"], {}),
        ("events-raw-mem0.json", ["events", "mem0", "--json"], {"CXLCTL_SIM_RAW": "1"}),
        ("events-raw-fail.txt", ["events", "mem2", "--event-log", "fail"], {"CXLCTL_SIM_RAW": "1"}),
    ],
)
def test_golden(cli: Cli, name: str, args: list[str], env: dict[str, str]) -> None:
    r = cli(*args, env=env)
    assert r.exit_code == 0, r.stderr
    golden(f"events/{name}", r.stdout)


def test_events_sources(cli_json: CliJson) -> None:
    (d,) = cli_json("events", "mem1", "--json")
    assert d["source"] == "trace"
    assert [lg["log"] for lg in d["logs"]] == ["info", "warn", "fail", "fatal"]
    (d,) = cli_json("events", "mem1", "--json", env={"CXLCTL_SIM_RAW": "1"})
    assert d["source"] == "mailbox"
    assert d["logs"][1]["records"][0]["event"] == "cxl_general_media"
    assert d["logs"][1]["more_records"] is False


@pytest.mark.parametrize("memdev", ["mem0", "mem1", "mem2"])
def test_events_one_schema_whatever_the_source(cli_json: CliJson, memdev: str) -> None:
    """The same device's records read from tracefs and through RAW Get Event Records
    are the same objects with the same keys: only the trace clock differs."""
    (trace,) = cli_json("events", memdev, "--json")
    (mbox,) = cli_json("events", memdev, "--json", env={"CXLCTL_SIM_RAW": "1"})
    assert (trace["source"], mbox["source"]) == ("trace", "mailbox")
    assert [set(lg) for lg in trace["logs"]] == [set(lg) for lg in mbox["logs"]]
    traced = [r for lg in trace["logs"] for r in lg["records"]]
    read = [r for lg in mbox["logs"] for r in lg["records"]]
    assert traced, "the simulated devices log events"
    assert all(isinstance(r["timestamp"], int) for r in traced)
    assert all(r["timestamp"] is None for r in read)
    assert [{**r, "timestamp": None} for r in traced] == read
    assert not any("header" in r for r in read)


def test_event_logs_library_shape() -> None:
    from cxlctl.eventlog import EventLogRecords, MemdevEvents, event_logs
    from cxlctl.mailbox.names import EventLog

    (found,) = event_logs(SimBackend(), ["mem1"], [EventLog.WARN])
    assert isinstance(found, MemdevEvents)
    assert found.memdev == "mem1"
    (warn,) = found.logs
    assert isinstance(warn, EventLogRecords)
    assert warn.log == "warn"
    assert [r["event"] for r in warn.records] == ["cxl_general_media"]


def test_events_bad_log(cli: Cli) -> None:
    assert cli("events", "mem0", "--event-log", "dcd").exit_code == 2


def test_kernel_events_without_tracefs_is_unsupported(tmp_path: Path) -> None:
    tr = tf.KernelTracing(str(tmp_path), tracefs_root=str(tmp_path))
    with pytest.raises(UnsupportedCommand, match="cxl_general_media"):
        tr.snapshot()


# --- monitor --------------------------------------------------------------------------------


def test_monitor_count(cli: Cli) -> None:
    r = cli("monitor", "--count", "2")
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["cxl_memory_module", "cxl_general_media"]
    assert all(x["system"] == "cxl" for x in lines)


def test_monitor_memdev_filter_and_log_file(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    r = cli("monitor", "-m", "mem2", "--count", "3", "-l", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {x["memdev"] for x in lines} == {"mem2"}
    assert len(lines) == 3


def test_monitor_timeout(cli: Cli) -> None:
    t = time.monotonic()
    r = cli("monitor", "--timeout", "300")
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 9
    assert time.monotonic() - t < 5


def test_kernel_monitor_reads_trace_pipe(tmp_path: Path) -> None:
    root = tmp_path / "tracing"
    (root / "events/cxl/cxl_poison").mkdir(parents=True)
    inst = root / f"instances/cxlctl-monitor-{os.getpid()}"
    (inst / "events/cxl").mkdir(parents=True)
    (inst / "trace_pipe").write_text((Path(__file__).parent / "data/cxl_poison.trace").read_text())
    tr = tf.KernelTracing(str(tmp_path), tracefs_root=str(root))
    got: list[dict[str, Any]] = []
    for ev in tr.stream(stop=lambda: len(got) >= 4, poll_interval=0.01):
        got.append(ev)
    assert [e["dpa"] for e in got] == [0x1000, 0x40000, 0x2000, 0x5000]
    assert (inst / "events/cxl/enable").read_text() == "0\n"  # disabled again


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **CLI_ENV, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cxlctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_monitor_ctrl_c_ends_cleanly() -> None:
    p = _spawn("monitor")
    assert p.stdout is not None
    first = p.stdout.readline()
    assert json.loads(first)["system"] == "cxl"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    assert p.returncode == 130
    assert b"Traceback" not in err


def test_monitor_closed_pipe_ends_cleanly() -> None:
    """The reader goes away while the monitor is idle: it notices and exits 141."""
    p = _spawn("monitor")
    assert p.stdout is not None
    p.stdout.readline()
    time.sleep(0.3)  # let it go idle after the seeded events
    p.stdout.close()
    rc = p.wait(timeout=10)
    assert p.stderr is not None
    err = p.stderr.read()
    assert rc == 141
    assert err == b""
