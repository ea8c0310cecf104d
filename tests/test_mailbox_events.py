"""Get Event Records and the event record types: layouts, byte vectors, fuzzing."""

from __future__ import annotations

import ctypes
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl.errors import DecodeError, UsageError
from cxlctl.mailbox import events as ev
from cxlctl.mailbox import layouts as lay
from cxlctl.mailbox.names import EventLog


@pytest.mark.parametrize(
    ("layout", "field", "offset"),
    [
        (lay.GeneralMediaRecord, "phys_addr", 0x30),
        (lay.GeneralMediaRecord, "validity_flags", 0x3B),
        (lay.GeneralMediaRecord, "device", 0x3F),
        (lay.GeneralMediaRecord, "component_id", 0x42),
        (lay.GeneralMediaRecord, "cme_threshold_ev_flags", 0x52),
        (lay.GeneralMediaRecord, "sub_type", 0x56),
        (lay.DramRecord, "nibble_mask", 0x3F),
        (lay.DramRecord, "column", 0x47),
        (lay.DramRecord, "correction_mask", 0x49),
        (lay.DramRecord, "component_id", 0x69),
        (lay.DramRecord, "sub_type", 0x7E),
        (lay.MemoryModuleRecord, "event_type", 0x30),
        (lay.MemoryModuleRecord, "validity_flags", 0x43),
        (lay.MemoryModuleRecord, "event_sub_type", 0x55),
    ],
)
def test_field_offsets(layout: type[ctypes.Structure], field: str, offset: int) -> None:
    assert getattr(layout, field).offset == offset


def _hdr(u: str, flags: int, handle: int, ts: int, related: int = 0) -> bytes:
    # Table 8-43: UUID, length, flags (3 bytes), handle, related handle, timestamp,
    # maint op class, maint op sub-class, LD-ID, head ID, 11 reserved bytes
    return (
        uuid.UUID(u).bytes
        + bytes([128])
        + flags.to_bytes(3, "little")
        + struct.pack("<HHQBBHB", handle, related, ts, 2, 1, 0, 0)
        + bytes(11)
    )


def general_media_bytes() -> bytes:
    body = (
        struct.pack("<Q", 0x2000 | 0x1)  # DPA 0x2000, volatile
        + bytes([0b011, 0x00, 0x01])  # uncorrectable|threshold, ECC Error, Host Read
        + struct.pack("<H", 0b10011)  # channel, rank, PLDM component id valid
        + bytes([3, 1])  # channel, rank
        + (0x0A0B0C).to_bytes(3, "little")  # device
        + bytes([0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        + bytes(5)  # component id
        + bytes([0x02])  # cme threshold flags
        + (17).to_bytes(3, "little")  # cme count
        + bytes([0x05])  # sub type
        + bytes(41)
    )
    return _hdr(ev.GENERAL_MEDIA_UUID, 0x1 | 0x8, 7, 1_700_000_000_000_000_000) + body


def dram_bytes() -> bytes:
    body = (
        struct.pack("<Q", 0x8000 | 0x2)
        + bytes([0b001, 0x01, 0x05])  # uncorrectable, Scrub Media ECC, Internal Media Scrub
        + struct.pack("<H", 0x07F)
        + bytes([1, 2])
        + (0x00F00F).to_bytes(3, "little")  # nibble mask
        + bytes([5, 2])  # bank group, bank
        + (0x1234).to_bytes(3, "little")  # row
        + struct.pack("<H", 0xADDE)  # column
        + bytes(range(32))  # correction mask
        + bytes(16)  # component id
        + bytes([4, 0, 0, 0, 0, 6, 0])  # sub channel, cme flags, cvme count, sub type, rsvd
    )
    return _hdr(ev.DRAM_UUID, 0x2 | 0x4, 8, 5, related=7) + body


def memory_module_bytes() -> bytes:
    health = struct.pack("<BBBBhIII", 0b0001, 0, 0b010001, 33, -5, 2, 10, 11)
    body = bytes([0x03]) + health + struct.pack("<H", 0) + bytes(16) + bytes([2]) + bytes(42)
    return _hdr(ev.MEMORY_MODULE_UUID, 0, 9, 6) + body


def test_general_media_vector() -> None:
    r = ev.decode_event_record(general_media_bytes())
    assert isinstance(r, ev.GeneralMediaEvent)
    h = r.header
    assert (h.record_type, h.severity, h.flag_names) == (
        "general_media",
        "warning",
        ("MAINTENANCE_NEEDED",),
    )
    assert (h.handle, h.timestamp, h.length, h.maint_op_class, h.maint_op_sub_class) == (
        7,
        1_700_000_000_000_000_000,
        128,
        2,
        1,
    )
    assert (r.dpa, r.dpa_flag_names) == (0x2000, ("VOLATILE",))
    assert r.descriptor_names == ("UNCORRECTABLE_EVENT", "THRESHOLD_EVENT")
    assert (r.type_name, r.transaction_type_name) == ("ECC Error", "Host Read")
    assert r.validity_names == ("CHANNEL", "RANK", "COMPONENT PLDM FORMAT")
    assert (r.channel, r.rank, r.device) == (3, 1, 0x0A0B0C)
    assert r.component_id.pldm_entity_id == "010203040506"
    assert r.component_id.pldm_resource_id == "0708090a"
    assert r.cme_threshold_ev_names == ("Exceeded Programmable Threshold",)
    assert (r.cme_count, r.sub_type_name) == (17, "Media Link CRC Error")


def test_dram_vector() -> None:
    r = ev.decode_event_record(dram_bytes())
    assert isinstance(r, ev.DramEvent)
    assert r.header.severity == "failure"
    assert r.header.flag_names == ("PERMANENT_CONDITION",)
    assert r.header.related_handle == 7
    assert (r.dpa, r.dpa_flag_names) == (0x8000, ("NOT_REPAIRABLE",))
    assert (r.type_name, r.transaction_type_name) == (
        "Scrub Media ECC Error",
        "Internal Media Scrub",
    )
    assert r.validity_names == (
        "CHANNEL",
        "RANK",
        "NIBBLE",
        "BANK GROUP",
        "BANK",
        "ROW",
        "COLUMN",
    )
    assert (r.nibble_mask, r.bank_group, r.bank, r.row, r.column) == (0xF00F, 5, 2, 0x1234, 0xADDE)
    assert r.correction_mask == bytes(range(32)).hex()
    assert (r.sub_channel, r.sub_type, r.component_id.pldm_entity_id) == (4, 6, None)


def test_memory_module_vector() -> None:
    r = ev.decode_event_record(memory_module_bytes())
    assert isinstance(r, ev.MemoryModuleEvent)
    assert r.event_type_name == "Temperature Change"
    assert r.event_sub_type_name == "Unsupported Config Data"
    hl = r.health
    assert hl.health_status_names == ("MAINTENANCE_NEEDED",)
    assert (hl.life_used_status, hl.corrected_volatile_error_count_status) == ("Warning", "Warning")
    assert (hl.life_used, hl.device_temperature, hl.dirty_shutdown_count) == (33, -5, 2)
    assert (hl.corrected_volatile_error_count, hl.corrected_persistent_error_count) == (10, 11)


def test_generic_record() -> None:
    data = _hdr("11111111-2222-3333-4444-555555555555", 3, 1, 0) + bytes(range(80))
    r = ev.decode_event_record(data)
    assert isinstance(r, ev.GenericEvent)
    assert (r.header.record_type, r.header.severity) == ("generic", "fatal")
    assert r.data == bytes(range(80)).hex()


def test_event_records_vector() -> None:
    hdr = struct.pack("<BBHQQH", 0b11, 0, 4, 10, 20, 3) + bytes(10)
    v = mb.BY_NAME["get-event-records"].decode(
        hdr + general_media_bytes() + dram_bytes() + memory_module_bytes() + b"\0"
    )
    assert v.overflow
    assert v.more_records
    assert (v.overflow_error_count, v.first_overflow_timestamp, v.last_overflow_timestamp) == (
        4,
        10,
        20,
    )
    assert [r.header.record_type for r in v.records] == ["general_media", "dram", "memory_module"]
    assert v.trailing_bytes == 1


def test_event_records_short() -> None:
    with pytest.raises(DecodeError, match=r"payload is 3 bytes, layout needs 32"):
        ev.decode_event_records(b"abc")
    hdr = struct.pack("<BBHQQH", 0, 0, 0, 0, 0, 2) + bytes(10)
    with pytest.raises(DecodeError, match=r"2 records need 288"):
        ev.decode_event_records(hdr + bytes(128))
    with pytest.raises(DecodeError, match=r"event record: payload is 127 bytes"):
        ev.decode_event_record(bytes(127))


def test_log_names() -> None:
    assert ev.log_by_name("WARN") is EventLog.WARN
    with pytest.raises(UsageError):
        ev.log_by_name("dcd")


@settings(max_examples=300)
@given(st.binary(max_size=450))
def test_fuzz_event_records(data: bytes) -> None:
    try:
        v = ev.decode_event_records(data)
    except DecodeError:
        return
    assert v.trailing_bytes >= 0


_UUIDS = st.sampled_from(
    [ev.GENERAL_MEDIA_UUID, ev.DRAM_UUID, ev.MEMORY_MODULE_UUID, str(uuid.UUID(int=0))]
)


@settings(max_examples=300)
@given(_UUIDS, st.binary(min_size=112, max_size=140))
def test_fuzz_each_record_type(u: str, rest: bytes) -> None:
    try:
        r = ev.decode_event_record(uuid.UUID(u).bytes + rest)
    except DecodeError:
        assert len(rest) < 112
        return
    assert r.header.uuid == u
