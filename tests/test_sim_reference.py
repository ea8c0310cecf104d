"""The simulator against what real Linux 6.12 + QEMU 10 did (tests/data/reference).

Every invalid-request row of the capture is replayed through ``SimDevice.ioctl``
and must give the same errno (or the same success); the QUERY table and the
payload bytes of every enabled command must match byte for byte, timestamps aside.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import pytest
from ioctl_opt import IO
from simio import issue

from cxlctl import transport as tp
from cxlctl import uapi
from cxlctl.sim import SimDevice, make_devices
from cxlctl.uapi import CommandId as K

REF = Path(__file__).parent / "data" / "reference"
ONE = (REF / "linux-6.12-qemu-10-one-pmem-device.txt").read_text()
TWO = (REF / "linux-6.12-qemu-10-pmem-and-ram-devices.txt").read_text()
PAYLOAD_MAX = 2048


def ref_invalid_rows(text: str) -> dict[str, tuple[int, int | None, int | None]]:
    """label -> (errno, retval, out.size) from the '== invalid requests' section."""
    rows: dict[str, tuple[int, int | None, int | None]] = {}
    section = text.split("== invalid requests", 1)[1].split("###", 1)[0]
    for line in section.splitlines():
        m = re.match(r"^  (.+?)\s+-> (?:errno=(\d+) \w+|ok, retval=(\d+) out\.size=(\d+))$", line)
        if m:
            label, err, rv, osz = m.groups()
            if err:
                rows[label] = (int(err), None, None)
            else:
                rows[label] = (0, int(rv), int(osz))
    return rows


#: How each row of the capture was built (the capture's labels, verbatim).
BUILDERS: dict[str, dict[str, Any]] = {
    "RAW (id 2) opcode 0x4000 (Identify)": {"cmd_id": K.RAW, "raw_opcode": 0x4000},
    "unknown id 9999": {"cmd_id": 9999},
    "id 0 (INVALID)": {"cmd_id": 0},
    "id CXL_MEM_COMMAND_ID_MAX": {"cmd_id": K.MAX},
    "deprecated GET_POISON (id 15)": {"cmd_id": K.GET_POISON, "data": bytes(16)},
    "IDENTIFY flags=0x4 (undefined flag)": {"cmd_id": K.IDENTIFY, "flags": 4},
    "IDENTIFY rsvd=1": {"cmd_id": K.IDENTIFY, "rsvd": 1},
    "IDENTIFY in.rsvd=1": {"cmd_id": K.IDENTIFY, "in_rsvd": 1},
    "IDENTIFY out.rsvd=1": {"cmd_id": K.IDENTIFY, "out_rsvd": 1},
    "IDENTIFY in.size=4 (size_in is 0)": {"cmd_id": K.IDENTIFY, "data": bytes(4)},
    "IDENTIFY in.size=payload_max+1": {"cmd_id": K.IDENTIFY, "data": bytes(PAYLOAD_MAX + 1)},
    "IDENTIFY out.size=0x42 (< size_out 0x43)": {"cmd_id": K.IDENTIFY, "out_size": 0x42},
    "IDENTIFY out.size=0": {"cmd_id": K.IDENTIFY, "out_size": 0},
    "IDENTIFY out.size=payload_max+4096 (larger is fine?)": {
        "cmd_id": K.IDENTIFY,
        "out_size": PAYLOAD_MAX + 4096,
    },
    "IDENTIFY out.payload=NULL-ish (0x10)": {"cmd_id": K.IDENTIFY, "out_ptr": 0x10},
    "GET_LSA in.size=4 (size_in is 8)": {"cmd_id": K.GET_LSA, "data": bytes(4)},
    "SET_LSA (exclusive while the nvdimm bridge owns labels?)": {
        "cmd_id": K.SET_LSA,
        "data": bytes(8 + 64),
    },
    "SET_PARTITION_INFO": {"cmd_id": K.SET_PARTITION_INFO, "data": bytes(10)},
    "unknown ioctl number _IO(0xCE, 99)": {"cmd_id": K.IDENTIFY, "request": IO(0xCE, 99)},
}

ROWS = ref_invalid_rows(ONE)


def test_every_reference_row_has_a_builder() -> None:
    assert set(ROWS) == set(BUILDERS)
    assert len(ROWS) == 19


def test_both_captures_agree() -> None:
    assert ref_invalid_rows(TWO) == ROWS


@pytest.mark.parametrize("label", sorted(ROWS))
def test_invalid_request_matches_linux(pmem: SimDevice, label: str) -> None:
    want_errno, want_retval, want_size = ROWS[label]
    got = issue(pmem, **BUILDERS[label])
    assert got.errno == want_errno, errno.errorcode.get(got.errno, got.errno)
    if want_errno == 0:
        assert (got.retval, got.out_size) == (want_retval, want_size)


def ref_query_table(text: str) -> list[tuple[int, int, int, int, int]]:
    """(idx, id, flags, size_in, size_out) rows of the first QUERY table."""
    rows = []
    block = text.split("QUERY_COMMANDS(n_commands=25) -> n_commands=25", 1)[1]
    for line in block.splitlines()[2:]:
        m = re.match(
            r"^\s+(\d+)\s+(\d+)\s+.+?\s(0x[0-9a-f]{4})\b.*?\s+(var\(~0\)|\d+)\s+(var\(~0\)|\d+)$",
            line,
        )
        if not m:
            break
        idx, cid, flags, sin, sout = m.groups()

        def size(v: str) -> int:
            return uapi.CXL_VARIABLE_PAYLOAD if v.startswith("var") else int(v)

        rows.append((int(idx), int(cid), int(flags, 16), size(sin), size(sout)))
    return rows


def test_query_count_and_table_match_linux(pmem: SimDevice) -> None:
    head = uapi.query_buffer(0)
    pmem.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, head)
    assert uapi.cxl_mem_query_commands.from_buffer(head).n_commands == 25
    want = ref_query_table(ONE)
    assert len(want) == 25
    got = [(c.index, c.id, c.flags, c.size_in, c.size_out) for c in tp.query(pmem)]
    assert got == want


def test_query_with_fewer_entries_fills_that_many(pmem: SimDevice) -> None:
    buf = uapi.query_buffer(3)
    pmem.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, buf)
    assert uapi.cxl_mem_query_commands.from_buffer(buf).n_commands == 3  # not rewritten
    entries = (uapi.cxl_command_info * 3).from_buffer(buf, 8)
    assert [e.id for e in entries] == [0, 1, 0]
    assert entries[1].size_out == 0x43


def test_query_buffer_shorter_than_the_header_faults(pmem: SimDevice) -> None:
    with pytest.raises(OSError, match="Bad address") as e:
        pmem.ioctl(uapi.CXL_MEM_QUERY_COMMANDS, bytearray(4))
    assert e.value.errno == errno.EFAULT


def hexdump_bytes(text: str, title: str) -> bytes:
    """The payload bytes printed under '== TITLE (id N): ...' in a capture."""
    block = text.split(f"== {title}", 1)[1]
    out = bytearray()
    for line in block.splitlines()[1:]:
        m = re.match(r"^\s{4}[0-9a-f]{4}: ((?:[0-9a-f]{2} )+)", line)
        if not m:
            break
        out += bytes.fromhex(m.group(1))
    return bytes(out)


@pytest.mark.parametrize(
    ("title", "cmd_id", "data"),
    [
        ("Identify Command (id 1)", K.IDENTIFY, b""),
        ("Get Partition Information (id 5)", K.GET_PARTITION_INFO, b""),
        ("Get FW Info (id 4)", K.GET_FW_INFO, b""),
        ("Get Supported Logs (id 3)", K.GET_SUPPORTED_LOGS, b""),
        (
            "Get Log (id 8)",
            K.GET_LOG,
            bytes.fromhex("0da9c0b5bf414b788f7996b1623b3f17")
            + (0).to_bytes(4, "little")
            + (104).to_bytes(4, "little"),
        ),
        (
            "Get Label Storage Area (id 6)",
            K.GET_LSA,
            (0).to_bytes(4, "little") + (64).to_bytes(4, "little"),
        ),
    ],
)
def test_payload_bytes_match_linux(pmem: SimDevice, title: str, cmd_id: int, data: bytes) -> None:
    want = hexdump_bytes(ONE, title)
    got = issue(pmem, cmd_id, data=data)
    assert (got.errno, got.retval) == (0, 0)
    assert got.out == want


def test_get_health_info_is_not_enabled_on_the_qemu_device(pmem: SimDevice) -> None:
    got = issue(pmem, K.GET_HEALTH_INFO)
    assert got.errno == errno.ENOTTY
    assert "ioctl=-25 ENOTTY" in ONE.split("== Get Health Info (id 7)", 1)[1].splitlines()[0]


def test_timestamp_is_set_at_probe_and_advances(pmem: SimDevice) -> None:
    import time

    a = int.from_bytes(issue(pmem, K.GET_TIMESTAMP).out, "little")
    b = int.from_bytes(issue(pmem, K.GET_TIMESTAMP).out, "little")
    assert abs(a - time.time_ns()) < 60 * 10**9
    assert b >= a


def test_identify_out_size_67_returns_67_bytes(pmem: SimDevice) -> None:
    # "SEND_COMMAND(IDENTIFY): ok retval=0 out.size=67" in the capture
    got = issue(pmem, K.IDENTIFY, out_size=67)
    assert (got.errno, got.out_size) == (0, 67)
    assert got.out == hexdump_bytes(ONE, "Identify Command (id 1)")[:67]


def test_volatile_device_does_not_claim_labels() -> None:
    # no pmem -> no nvdimm bridge -> SET_LSA is not exclusive and reaches the device
    (ram,) = make_devices(["ram"], profile="qemu")
    flags = {c.id: c.flags for c in tp.query(ram)}
    assert flags[K.SET_LSA] == uapi.CXL_MEM_COMMAND_FLAG_ENABLED
    got = issue(ram, K.SET_LSA, data=bytes(8) + b"label!")
    assert (got.errno, got.retval) == (0, 0)
    back = issue(ram, K.GET_LSA, data=(0).to_bytes(4, "little") + (14).to_bytes(4, "little"))
    assert back.out == b"label!" + bytes(8)
