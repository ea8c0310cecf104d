"""Device return codes explained per command: which field, which rule, which range."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from cxlctl import mailbox as mb
from cxlctl.errors import CxlError, MailboxError
from cxlctl.mailbox import explain
from cxlctl.mailbox.health import Alert, encode_set_alert_config, set_alert_config_request
from cxlctl.mailbox.memdev import Identify
from cxlctl.mailbox.names import CEL_UUID

Cli = Callable[..., Result]
RC = mb.ReturnCode


def test_set_alert_config_life_used_above_critical_names_field_and_range(
    cli: Cli, tmp_path: Path
) -> None:
    r = cli("set-alert-config", "mem0", "-L", "99", "--life-used-alert", "on",
            env={"CXLCTL_SIM_STATE": str(tmp_path)})  # fmt: skip
    assert r.exit_code == 3
    assert r.stderr == (
        "cxlctl: mem0: set-alert-config: device returned Invalid Input (0x2): "
        "life used warning threshold 99 %: must be below the life used critical "
        "threshold 95 % (and at most 100); valid: 0-94 % (CXL 3.1 8.2.9.9.3.3)\n"
    )


def test_set_alert_config_temperature_outside_the_critical_band(cli: Cli, tmp_path: Path) -> None:
    env = {"CXLCTL_SIM_STATE": str(tmp_path)}
    r = cli("set-alert-config", "mem0", "-O", "90", "--over-temperature-alert", "on", env=env)
    assert r.exit_code == 3
    assert "over-temperature warning threshold 90 °C" in r.stderr
    assert "valid: -9 to 84 °C" in r.stderr
    ok = cli("set-alert-config", "mem0", "-O", "84", "--over-temperature-alert", "on", env=env)
    assert ok.exit_code == 0, ok.stderr


def _alert_config(**over: Any) -> Any:
    base: dict[str, Any] = dict.fromkeys(
        [f"{a}_writable" for a in (
            "life_used_prog_warn_threshold", "dev_over_temperature_prog_warn_threshold",
            "dev_under_temperature_prog_warn_threshold",
            "corrected_volatile_mem_err_prog_warn_threshold",
            "corrected_pmem_err_prog_warn_threshold")],
        True,
    )  # fmt: skip
    base.update(
        life_used_crit_alert_threshold=95,
        dev_over_temperature_crit_alert_threshold=85,
        dev_under_temperature_crit_alert_threshold=-10,
    )
    base.update(over)
    return type("Cfg", (), base)()


def _payload(changes: dict[Alert, int | None]) -> bytes:
    return encode_set_alert_config(set_alert_config_request(changes))


def test_alert_explainer_says_when_a_threshold_is_not_programmable() -> None:
    cfg = _alert_config(corrected_pmem_err_prog_warn_threshold_writable=False)
    why = explain.set_alert_config(
        RC.INVALID_INPUT, _payload({Alert.CORRECTED_PERSISTENT: 10}), lambda _n: cfg
    )
    assert why == (
        "the device does not make the corrected persistent error warning programmable "
        "(CXL 3.1 8.2.9.9.3.3)"
    )


def test_alert_explainer_reserved_bits_and_other_codes() -> None:
    reserved = bytes([0x20, 0x20]) + bytes(10)
    why = explain.set_alert_config(RC.INVALID_INPUT, reserved, lambda _n: _alert_config())
    assert why is not None
    assert "reserved bits set in the alert action masks (valid 0x20, enable 0x20" in why
    assert explain.set_alert_config(RC.BUSY, reserved, lambda _n: _alert_config()) is None
    # a rule that holds is no explanation: the device refused for another reason
    assert (
        explain.set_alert_config(
            RC.INVALID_INPUT, _payload({Alert.LIFE_USED: 50}), lambda _n: _alert_config()
        )
        is None
    )


def test_alert_explainer_without_the_current_configuration_states_the_rule() -> None:
    def fails(_n: str) -> Any:
        raise CxlError("no")

    why = explain.set_alert_config(RC.INVALID_INPUT, _payload({Alert.LIFE_USED: 120}), fails)
    assert why == (
        "life used warning threshold 120 %: must be at most 100; valid: 0-100 % "
        "(CXL 3.1 8.2.9.9.3.3)"
    )


def _ident(align: int, total: int = 1 << 30) -> Identify:
    return Identify("FW", total, 0, 0, align, 0, 0, 0, 0, 0, 0, 0, 0, False, False, 0, None, 0)


def test_set_partition_explainer_alignment_and_room() -> None:
    payload = struct.pack("<QB", 3, 0)  # 768 MiB volatile (256 MiB units)
    why = explain.set_partition_info(RC.INVALID_INPUT, payload, lambda _n: _ident(512 << 20))
    assert why == (
        "volatile capacity 768.00 MiB: must be a multiple of the partition alignment "
        "512.00 MiB and at most the partitionable capacity 1024.00 MiB; valid: 0 to "
        "1024.00 MiB in steps of 512.00 MiB (CXL 3.1 8.2.9.9.2.2)"
    )
    none = explain.set_partition_info(RC.INVALID_INPUT, payload, lambda _n: _ident(0))
    assert none is not None
    assert none.startswith("the device has no partitionable capacity")


def test_get_log_explainer_offsets_and_unknown_logs() -> None:
    logs = type("L", (), {"logs": [type("E", (), {"uuid": CEL_UUID, "size": 144})()]})()
    import uuid

    head = uuid.UUID(CEL_UUID).bytes
    past = head + struct.pack("<II", 140, 16)
    why = explain.get_log(RC.INVALID_INPUT, past, lambda _n: logs)
    assert why == (
        f"offset 140 + length 16 goes past the 144-byte log {CEL_UUID}; valid: offset "
        "0-143, offset + length at most 144 (CXL 3.1 8.2.9.5.2)"
    )
    zero = explain.get_log(RC.INVALID_INPUT, head + struct.pack("<II", 0, 0), lambda _n: logs)
    assert zero == "length 0: Get Log needs at least 1 byte (CXL 3.1 8.2.9.5.2)"
    other = uuid.UUID(int=1).bytes + struct.pack("<II", 0, 16)
    assert explain.get_log(RC.INVALID_LOG, other, lambda _n: logs) == (
        f"log {uuid.UUID(int=1)} is not in the device's Get Supported Logs (CXL 3.1 8.2.9.5.2)"
    )


def test_set_shutdown_state_explainer() -> None:
    assert explain.set_shutdown_state(RC.INVALID_INPUT, b"\x02", lambda _n: None) == (
        "state byte 0x02: only bit 0 (1 = dirty, 0 = clean) is defined; valid: 0 or 1 "
        "(CXL 3.1 8.2.9.9.3.5)"
    )
    assert explain.set_shutdown_state(RC.INVALID_INPUT, b"\x01", lambda _n: None) is None


def test_memdev_run_explains_a_refused_get_log() -> None:
    """The library's one send path adds the explanation (CLI verbs, batch, api)."""
    import uuid

    from cxlctl.backends import open_backend

    with open_backend("sim").memdev("mem0") as md:
        bad = uuid.UUID(CEL_UUID).bytes + struct.pack("<II", 0, 0)  # length 0
        with pytest.raises(MailboxError) as e:
            md.run("get-log", bad)
    assert e.value.rc == RC.INVALID_INPUT
    assert str(e.value.message) == (
        "mem0: get-log: device returned Invalid Input (0x2): length 0: Get Log needs at "
        "least 1 byte (CXL 3.1 8.2.9.5.2)"
    )


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("set-alert-config", "set_alert_config"),
        ("set-partition-info", "set_partition_info"),
        ("get-log", "get_log"),
        ("set-shutdown-state", "set_shutdown_state"),
        ("set-timestamp", "set_timestamp"),
    ],
)
def test_each_explainer_is_named_by_its_catalogue_record(name: str, fn: str) -> None:
    cmd = mb.lookup(name)
    assert cmd.explain is not None
    assert cmd.explain() is getattr(explain, fn)
