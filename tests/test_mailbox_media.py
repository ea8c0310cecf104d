"""Get Poison List / Get Scan Media Results: layouts, byte vectors, fuzzing."""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl.errors import DecodeError
from cxlctl.mailbox import layouts as lay
from cxlctl.mailbox.media import (
    PoisonList,
    ScanMediaResults,
    decode_poison_list,
    decode_scan_media_results,
)


def test_catalogue_sizes_match_layouts() -> None:
    assert mb.BY_OPCODE[0x4300].size_in == ctypes.sizeof(lay.PoisonListIn)
    assert mb.BY_OPCODE[0x4301].size_in == ctypes.sizeof(lay.InjectPoisonIn)
    assert mb.BY_OPCODE[0x4302].size_in == ctypes.sizeof(lay.ClearPoisonIn)
    assert mb.BY_OPCODE[0x4304].size_in == ctypes.sizeof(lay.ScanMediaIn)


def _record(dpa: int, source: int, units: int) -> bytes:
    # Table 8-142: address (bits 2:0 source, 63:6 DPA), length (64-byte units), reserved
    return struct.pack("<QII", dpa | source, units, 0)


def test_poison_list_vector() -> None:
    # Table 8-141: flags, rsvd, overflow timestamp, count, 20 reserved bytes
    hdr = struct.pack("<BBQH", 0b011, 0, 0x1122334455667788, 2) + bytes(20)
    data = hdr + _record(0x1000, 3, 1) + _record(0x40000, 7, 8)
    v = mb.BY_NAME["get-poison-list"].decode(data)
    assert v.more_media_error_records
    assert v.poison_list_overflow
    assert not v.scan_media_in_progress
    assert v.overflow_timestamp == 0x1122334455667788
    assert [(r.dpa, r.length, r.source_name) for r in v.records] == [
        (0x1000, 64, "Injected"),
        (0x40000, 512, "Vendor"),
    ]
    assert v.trailing_bytes == 0


def test_poison_list_reserved_source_and_bits() -> None:
    data = struct.pack("<BBQH", 4, 0, 0, 1) + bytes(20) + _record(0x2000 | 0x28, 5, 1)
    v = decode_poison_list(data)
    assert v.scan_media_in_progress
    (r,) = v.records
    assert (r.dpa, r.source, r.source_name, r.address_reserved) == (0x2000, 5, "Reserved", 5)


def test_poison_list_short_and_long() -> None:
    with pytest.raises(DecodeError, match=r"get-poison-list: payload is 31 bytes, layout needs 32"):
        decode_poison_list(bytes(31))
    hdr = struct.pack("<BBQH", 0, 0, 0, 2) + bytes(20)
    with pytest.raises(DecodeError, match=r"2 media error records need 64"):
        decode_poison_list(hdr + _record(0, 0, 1))
    v = decode_poison_list(struct.pack("<BBQH", 0, 0, 0, 0) + bytes(20) + b"\xff" * 5)
    assert v.records == ()
    assert v.trailing_bytes == 5


def test_scan_media_results_vector() -> None:
    hdr = struct.pack("<QQBBH", 0x10000, 4, 0b11, 0, 1) + bytes(12)
    v = decode_scan_media_results(hdr + _record(0x3000, 2, 2))
    assert v.restart_address == 0x10000
    assert v.restart_length == 256
    assert v.more_media_error_records
    assert v.scan_stopped_prematurely
    assert [(r.dpa, r.length, r.source_name) for r in v.records] == [(0x3000, 128, "Internal")]


@pytest.mark.parametrize(
    "decode", [decode_poison_list, decode_scan_media_results], ids=["poison-list", "scan-media"]
)
@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_media_error_lists(
    decode: Callable[[bytes], PoisonList | ScanMediaResults], data: bytes
) -> None:
    """Any bytes: a DecodeError, or records of whole 64-byte units at aligned DPAs."""
    try:
        v = decode(data)
    except DecodeError:
        return
    assert v.trailing_bytes >= 0
    assert all(r.length % 64 == 0 and r.dpa % 64 == 0 for r in v.records)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 2**58 - 1), st.integers(0, 7), st.integers(0, 2**32 - 1))))
def test_poison_list_roundtrip(recs: list[tuple[int, int, int]]) -> None:
    data = struct.pack("<BBQH", 0, 0, 0, len(recs)) + bytes(20)
    data += b"".join(_record(dpa << 6, src, n) for dpa, src, n in recs)
    v = decode_poison_list(data)
    assert [(r.dpa, r.source, r.length) for r in v.records] == [
        (dpa << 6, src, n * 64) for dpa, src, n in recs
    ]
