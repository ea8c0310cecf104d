"""The catalogue and the decoders: pinned layout sizes, reference byte vectors,
spec tables, trailing bytes, and fuzzing (a value or DecodeError, nothing else)."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl.errors import DecodeError
from cxlctl.mailbox import layouts as lay
from cxlctl.mailbox.firmware import decode_fw_info
from cxlctl.mailbox.generic import decode_security_state, decode_timestamp
from cxlctl.mailbox.health import (
    ALERT_FIELDS,
    Alert,
    SetAlertConfig,
    decode_alert_config,
    decode_health_info,
    decode_set_alert_config,
    decode_shutdown_state,
    encode_set_alert_config,
    set_alert_config_request,
)
from cxlctl.mailbox.logs import CEL_EFFECTS, decode_cel, decode_log_caps, decode_supported_logs
from cxlctl.mailbox.memdev import decode_identify, decode_partition_info

MiB = 1 << 20


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# Byte vectors from /work/shared/reference/linux-6.12-qemu-10-one-pmem-device.txt
IDENTIFY_69 = _hex(
    """42 57 46 57 20 56 45 52 53 49 4f 4e 20 30 30 00 01 00 00 00 00 00 00 00
       00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
       00 00 00 00 00 00 00 00 00 00 00 10 00 01 00 00 00 00 00 08 00"""
)
PARTITION_32 = _hex("00" * 8 + "01" + "00" * 23)
FW_INFO_80 = _hex(
    "02 01 01" + " 00" * 13 + " 42 57 46 57 20 56 45 52 53 49 4f 4e 20 30 00 00" + " 00" * 48
)
SUPPORTED_LOGS_28 = _hex(
    """01 00 00 00 00 00 00 00 0d a9 c0 b5 bf 41 4b 78
       8f 79 96 b1 62 3b 3f 17 68 00 00 00"""
)
CEL_104 = _hex(
    """00 01 00 00 01 01 10 00 02 01 00 00 03 01 02 00 00 02 00 00 01 02 40 00
       02 02 40 00 00 03 00 00 01 03 08 00 00 04 00 00 01 04 00 00 00 05 00 00
       01 05 00 00 02 05 3e 00 00 40 00 00 00 41 00 00 02 41 00 00 03 41 06 00
       00 43 00 00 01 43 00 00 02 43 00 00 03 43 00 00 04 43 40 00 05 43 00 00
       00 44 64 00 00 45 00 00"""
)
TIMESTAMP_8 = _hex("34 d4 c2 cf 3e 21 eb 18")


# --- layout sizes (CXL 3.1 tables) ------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "size"),
    [
        (lay.IdentifyOut, 0x43),
        (lay.IdentifyOut3, 0x45),
        (lay.FwInfoOut, 0x50),
        (lay.PartitionInfoOut, 0x20),
        (lay.SetPartitionInfoIn, 0x0A),
        (lay.GetLsaIn, 8),
        (lay.SetLsaIn, 8),
        (lay.HealthInfoOut, 0x12),
        (lay.AlertConfigOut, 0x10),
        (lay.SetAlertConfigIn, 0x0C),
        (lay.ShutdownStateOut, 1),
        (lay.SupportedLogsHeader, 8),
        (lay.SupportedLogEntry, 20),
        (lay.GetLogIn, 0x18),
        (lay.CelEntry, 4),
        (lay.LogUuidIn, 0x10),
        (lay.LogCapsOut, 4),
        (lay.SupLogSublistIn, 2),
        (lay.TimestampOut, 8),
        (lay.ScanMediaCapsIn, 0x10),
        (lay.ScanMediaCapsOut, 4),
        (lay.SecurityStateOut, 4),
        # media and poison
        (lay.PoisonListIn, 16),
        (lay.PoisonListOutHeader, 32),
        (lay.MediaErrorRecord, 16),
        (lay.InjectPoisonIn, 8),
        (lay.ClearPoisonIn, 0x48),
        (lay.ScanMediaIn, 0x11),
        (lay.ScanMediaResultsHeader, 32),
        # events
        (lay.GetEventRecordsOutHeader, 32),
        (lay.EventRecordHeader, 48),
        (lay.EventRecord, 128),
        (lay.GeneralMediaRecord, 128),
        (lay.DramRecord, 128),
        (lay.MemoryModuleRecord, 128),
        (lay.ClearEventRecordsIn, 6),
    ],
)
def test_layout_size(layout: type[ctypes.Structure], size: int) -> None:
    assert ctypes.sizeof(layout) == size


def test_catalogue_fixed_sizes_match_their_layouts() -> None:
    pairs = {
        "identify": lay.IdentifyOut,
        "get-fw-info": lay.FwInfoOut,
        "get-partition-info": lay.PartitionInfoOut,
        "get-health-info": lay.HealthInfoOut,
        "get-alert-config": lay.AlertConfigOut,
        "get-shutdown-state": lay.ShutdownStateOut,
        "get-timestamp": lay.TimestampOut,
        "get-log-caps": lay.LogCapsOut,
        "get-scan-media-caps": lay.ScanMediaCapsOut,
        "get-security-state": lay.SecurityStateOut,
    }
    for name, layout in pairs.items():
        assert mb.BY_NAME[name].size_out == ctypes.sizeof(layout), name
    assert mb.BY_NAME["get-log"].size_in == ctypes.sizeof(lay.GetLogIn)
    assert mb.BY_NAME["get-lsa"].size_in == ctypes.sizeof(lay.GetLsaIn)
    assert mb.BY_NAME["get-log-caps"].size_in == ctypes.sizeof(lay.LogUuidIn)


def test_catalogue_is_consistent() -> None:
    assert len(mb.BY_NAME) == len(mb.CATALOGUE)
    assert len(mb.BY_OPCODE) == len(mb.CATALOGUE)
    for alias, target in mb.ALIASES.items():
        assert target in mb.BY_NAME, alias
    for uuid in mb.LOG_ALIASES.values():
        assert uuid in mb.KNOWN_LOGS


# --- reference vectors --------------------------------------------------------------


def test_identify_reference_69_bytes() -> None:
    v = decode_identify(IDENTIFY_69)
    assert v.firmware_version == "BWFW VERSION 00"
    assert (v.total_size, v.volatile_only_size) == (256 * MiB, 0)
    assert v.persistent_only_size == 256 * MiB
    assert v.partition_alignment_size == 0
    assert v.label_storage_size == 256 * MiB
    assert v.poison_list_max_mer == 256
    assert v.dc_event_log_size == 8
    assert v.trailing_bytes == 0
    short = decode_identify(IDENTIFY_69[:67])  # what the kernel returns with out.size=67
    assert short.dc_event_log_size is None
    assert short.trailing_bytes == 0


def test_partition_info_reference() -> None:
    v = decode_partition_info(PARTITION_32)
    assert v.active_volatile_size == 0
    assert v.active_persistent_size == 256 * MiB
    assert v.next_volatile_size == v.next_persistent_size == 0


def test_fw_info_reference() -> None:
    v = decode_fw_info(FW_INFO_80)
    assert (v.num_slots, v.active_slot, v.staged_slot) == (2, 1, 0)
    assert v.online_activate_capable
    assert v.fw_slot_info == 1
    assert v.fw_activation_caps == 1
    assert [(s.slot, s.version, s.active) for s in v.slots] == [
        (1, "BWFW VERSION 0", True),
        (2, "", False),
    ]


def test_fw_info_staged_slot() -> None:
    raw = bytearray(FW_INFO_80)
    raw[1] = 1 | (2 << 3)
    v = decode_fw_info(bytes(raw))
    assert v.staged_slot == 2
    assert v.slots[1].staged
    assert not v.slots[0].staged


def test_supported_logs_reference() -> None:
    v = decode_supported_logs(SUPPORTED_LOGS_28)
    assert [(e.uuid, e.size) for e in v.logs] == [(mb.CEL_UUID, 104)]
    assert v.logs[0].name == "Command Effects Log (CEL)"


def test_supported_logs_entry_count_beyond_payload() -> None:
    raw = bytearray(SUPPORTED_LOGS_28)
    raw[0] = 2
    with pytest.raises(DecodeError, match="get-supported-logs"):
        decode_supported_logs(bytes(raw))


def test_cel_reference() -> None:
    v = decode_cel(CEL_104)
    assert len(v.entries) == 26
    assert v.trailing_bytes == 0
    by_op = {e.opcode: e for e in v.entries}
    assert by_op[0x4000].name == "identify"
    sanitize = by_op[0x4400]
    assert sanitize.effect == 0x64
    assert sanitize.effects.data_change_immediate
    assert sanitize.effects.security_state_change
    assert sanitize.effects.background_operation
    assert not sanitize.effects.config_change_cold_reset
    assert by_op[0x0502].effect == 0x3E
    assert by_op[0x0101].effects.log_change_immediate


def test_cel_effect_bits_and_reserved() -> None:
    for bit, name in enumerate(CEL_EFFECTS):
        e = decode_cel((0x4000).to_bytes(2, "little") + (1 << bit).to_bytes(2, "little"))
        on = [k for k in CEL_EFFECTS if getattr(e.entries[0].effects, k)]
        assert on == [name]
    e = decode_cel(bytes([0x34, 0x12, 0x00, 0xF0]) + b"\x01")
    assert e.entries[0].effects.reserved_bits == 0xF
    assert e.entries[0].name is None
    assert e.entries[0].title == "Opcode 0x1234"
    assert e.trailing_bytes == 1


def test_timestamp_reference() -> None:
    assert decode_timestamp(TIMESTAMP_8).timestamp == 1795565430094615604


# --- spec tables --------------------------------------------------------------------


def _health(
    hs: int = 0, ms: int = 0, add: int = 0, life: int = 3, temp: int = 37, extra: bytes = b""
) -> bytes:
    out = lay.HealthInfoOut(
        health_status=hs,
        media_status=ms,
        additional_status=add,
        life_used=life,
        device_temperature=temp,
        dirty_shutdown_count=7,
        corrected_volatile_error_count=8,
        corrected_persistent_error_count=9,
    )
    return bytes(out) + extra


def test_health_info_every_field() -> None:
    v = decode_health_info(_health(hs=5, ms=6, add=0b111001, temp=-5))
    assert v.maintenance_needed
    assert not v.performance_degraded
    assert v.hw_replacement_needed
    assert (v.media_status, v.media_status_name) == (6, "persistence_loss_imminent")
    assert v.ext_life_used == "warning"
    assert v.ext_temperature == "critical"
    assert v.ext_corrected_volatile == "warning"
    assert v.ext_corrected_persistent == "warning"
    assert v.temperature == -5
    assert (v.dirty_shutdowns, v.volatile_errors, v.pmem_errors) == (7, 8, 9)


def test_health_info_not_implemented_and_reserved() -> None:
    v = decode_health_info(_health(ms=0x20, add=0b1111, life=0xFF, temp=-1))
    assert v.life_used_percent is None
    assert v.temperature is None
    assert v.media_status_name == "reserved(32)"
    assert v.ext_life_used == "unknown"
    assert v.ext_temperature == "unknown"


def test_alert_config_fields() -> None:
    a = lay.AlertConfigOut(
        valid_alerts=0b10101,
        programmable_alerts=0b01010,
        life_used_critical_threshold=90,
        device_under_temperature_critical_threshold=-20,
        corrected_persistent_mem_error_programmable_warning_threshold=300,
    )
    v = decode_alert_config(bytes(a))
    assert v.life_used_prog_warn_threshold_valid
    assert not v.dev_over_temperature_prog_warn_threshold_valid
    assert v.corrected_pmem_err_prog_warn_threshold_valid
    assert v.dev_over_temperature_prog_warn_threshold_writable
    assert not v.life_used_prog_warn_threshold_writable
    assert v.life_used_crit_alert_threshold == 90
    assert v.dev_under_temperature_crit_alert_threshold == -20
    assert v.corrected_pmem_err_prog_warn_threshold == 300


def test_set_alert_config_request_bytes() -> None:
    """The typed builder: on with a threshold, off (valid, not enabled), untouched."""
    req = set_alert_config_request(
        {
            Alert.LIFE_USED: 80,
            Alert.OVER_TEMPERATURE: None,
            Alert.UNDER_TEMPERATURE: -5,
            Alert.CORRECTED_PERSISTENT: 258,
        }
    )
    assert req.valid == 0b10111
    assert req.enable == 0b10101
    assert req.threshold(Alert.UNDER_TEMPERATURE) == -5
    assert req.threshold(Alert.OVER_TEMPERATURE) == 0
    payload = bytes([0b10111, 0b10101, 80, 0]) + (0).to_bytes(2, "little")
    payload += (-5).to_bytes(2, "little", signed=True) + bytes(2) + (258).to_bytes(2, "little")
    assert encode_set_alert_config(req) == payload
    assert decode_set_alert_config(payload) == req


def test_set_alert_config_fields_are_the_layouts() -> None:
    names = {f[0] for f in lay.SetAlertConfigIn._fields_} & {
        f[0] for f in lay.AlertConfigOut._fields_
    }
    assert set(ALERT_FIELDS.values()) == names
    assert [a.field for a in Alert] == list(ALERT_FIELDS.values())


@pytest.mark.parametrize(
    ("alert", "value"),
    [(Alert.LIFE_USED, 256), (Alert.LIFE_USED, -1), (Alert.OVER_TEMPERATURE, 0x8000),
     (Alert.UNDER_TEMPERATURE, -0x8001), (Alert.CORRECTED_VOLATILE, 0x10000)],
)  # fmt: skip
def test_set_alert_config_request_range(alert: Alert, value: int) -> None:
    with pytest.raises(ValueError, match=alert.field):
        set_alert_config_request({alert: value})


def test_decode_set_alert_config_keeps_reserved_bits_and_checks_length() -> None:
    req = decode_set_alert_config(bytes([0xE1, 0x21]) + bytes(10))
    assert int(req.valid) == 0xE1
    assert int(req.enable) == 0x21
    for bad in (bytes(11), bytes(13)):
        with pytest.raises(DecodeError, match="set-alert-config"):
            decode_set_alert_config(bad)


@given(st.binary(min_size=12, max_size=12))
@settings(max_examples=50, deadline=None)
def test_set_alert_config_round_trip(data: bytes) -> None:
    data = data[:3] + b"\0" + data[4:]  # the reserved byte is not carried
    req = decode_set_alert_config(data)
    assert isinstance(req, SetAlertConfig)
    assert encode_set_alert_config(req) == data


def test_shutdown_security_logcaps() -> None:
    assert decode_shutdown_state(b"\x01").dirty
    assert decode_shutdown_state(b"\x00").state == "clean"
    s = decode_security_state(bytes([0b101100, 0, 0, 0]))
    assert s.locked
    assert s.frozen
    assert s.master_passphrase_attempt_count_reached
    assert not s.user_passphrase_set
    c = decode_log_caps(bytes([0b1010, 0, 0, 0]))
    assert c.populate_log_supported
    assert c.persistent_across_cold_reset
    assert not c.clear_log_supported


# --- short and long payloads ---------------------------------------------------------


DECODERS: Mapping[str, Callable[[bytes], object]] = {
    c.name: c.decode for c in mb.CATALOGUE if c.has_decoder
} | {"cel": decode_cel}


@pytest.mark.parametrize(
    "cmd", [c for c in mb.CATALOGUE if c.has_decoder and c.size_out], ids=lambda c: c.name
)
def test_short_payload_names_command_and_lengths(cmd: mb.Command[Any]) -> None:
    assert cmd.size_out is not None
    with pytest.raises(DecodeError) as ei:
        cmd.decode(bytes(cmd.size_out - 1))
    msg = str(ei.value)
    assert cmd.name in msg
    assert str(cmd.size_out - 1) in msg


@pytest.mark.parametrize(
    "cmd",
    [
        c
        for c in mb.CATALOGUE
        if c.has_decoder and c.size_out and c not in (mb.IDENTIFY, mb.GET_EVENT_INTERRUPT_POLICY)
    ],
    ids=lambda c: c.name,
)
def test_long_payload_reports_trailing_bytes(cmd: mb.Command[Any]) -> None:
    assert cmd.size_out is not None
    assert cmd.decode(bytes(cmd.size_out + 5)).trailing_bytes == 5


def test_identify_trailing_after_the_cxl3_field() -> None:
    assert decode_identify(IDENTIFY_69 + b"\0\0\0").trailing_bytes == 3
    assert decode_identify(IDENTIFY_69[:68]).trailing_bytes == 1


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_decoders_value_or_decode_error(name: str, data: bytes) -> None:
    fn = DECODERS[name]
    with contextlib.suppress(DecodeError):
        fn(data)
