"""CXLCTL_SIM_FAULTS: every read verb x every fault class a device can have ends
clean (a documented exit code, one line, no traceback, bounded time) or decodes
with a warning; the simulated driver reacts as Linux's __cxl_pci_mbox_send_cmd()
does.  docs/hostile-input.md."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Any

import pytest
from test_hostile_output import Run, every_command, run_many

from cxlctl import mailbox as mb
from cxlctl import uapi
from cxlctl.backends import SimBackend
from cxlctl.cli import COMMANDS
from cxlctl.errors import (
    DecodeError,
    DeviceWarning,
    ExitCode,
    MailboxError,
    TransportError,
    UnsupportedCommand,
)
from cxlctl.mailbox.health import set_alert_config_request
from cxlctl.memdev import Memdev
from cxlctl.sim import SimDevice, make_devices
from cxlctl.sim.device.faults import PAYLOAD_LENGTH_MAX, parse, parse_one
from cxlctl.sim.driver.mbox import MAILBOX_TIMEOUT_MS

#: the verbs that only read a device (the matrix runs each one under every fault)
READ_VERBS = (
    "list", "query", "identify", "send", "health", "partition", "fw-info", "alert-config",
    "shutdown-state", "timestamp", "security-state", "logs", "cel", "get-log", "log-caps",
    "read-labels", "poison", "scan-media-caps", "events", "event-interrupt-policy",
    "monitor", "batch", "wait-sanitize",
)  # fmt: skip
#: the others: they change something, or never reach a device
NOT_READ = {
    "raw",  # --dry-run in the invocation: sends nothing
    "decode", "completion", "write-labels", "zero-labels", "disable-memdev",
    "enable-memdev", "set-alert-config", "create-region", "enable-region",
    "disable-region", "destroy-region", "reserve-dpa", "free-dpa", "enable-port",
    "disable-port", "disable-bus", "set-partition", "update-firmware", "sanitize",
    "secure-erase", "inject-media-poison", "clear-media-poison", "inject-protocol-error",
    "set-timestamp", "set-shutdown-state", "clear-log", "set-event-interrupt-policy",
}  # fmt: skip
#: one of each fault class (rc: a failure, and Background Command Started)
FAULT_CLASSES = (
    "overlong", "short", "garbage", "rc=4", "rc=1", "busy",
    "busy=100", "retry", "background", "media-disabled", "vanish", "vanish=2", "slow=5",
    "slow=3000",
)  # fmt: skip
DOCUMENTED_EXIT = {int(c) for c in ExitCode}
#: no real sleeping beyond a few ms: slow=3000 waits the 2 s mailbox timeout x 0.001
FAST = {"CXLCTL_SIM_TIME_SCALE": "0.001"}


def test_every_command_is_classified() -> None:
    assert set(READ_VERBS) | NOT_READ == set(COMMANDS)
    assert not set(READ_VERBS) & NOT_READ


@pytest.fixture(scope="module")
def payload_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("faults")
    (d / "requests.jsonl").write_text('{"id": 1, "memdev": "mem0", "command": "health"}\n')
    return str(d)


@pytest.fixture(scope="module")
def matrix(payload_dir: str) -> dict[tuple[str, str, str], Run]:
    argvs = every_command(payload_dir)
    keys: list[tuple[str, str, str]] = []
    cases: list[dict[str, Any]] = []
    for verb in READ_VERBS:
        for fault in FAULT_CLASSES:
            env = {**FAST, "CXLCTL_SIM_FAULTS": fault}
            if verb == "event-interrupt-policy":
                env["CXLCTL_SIM_RAW"] = "1"
            for fmt in ("table", "json"):
                argv = list(argvs[verb])
                if fmt == "json" and verb not in ("batch", "monitor"):
                    argv.append("--json")
                keys.append((verb, fault, fmt))
                cases.append({"argv": argv, "env": env, "stdout": "pipe"})
    return dict(zip(keys, run_many(cases), strict=True))


def _clean(r: Run) -> list[str]:
    err: str = r["stderr"].decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert r["rc"] in DOCUMENTED_EXIT, (r["rc"], err)
    lines = err.splitlines()
    warnings = [x for x in lines if x.startswith("cxlctl: warning: ")]
    others = [x for x in lines if x not in warnings]
    if r["rc"] == 0:
        assert len(others) <= 1, err  # success: warnings, a note (wait-sanitize)
    elif b'"ok":false' in r["stdout"] and not others:
        pass  # batch: each request's failure is a record of its own (docs/batch.md)
    else:
        assert len(others) == 1, err  # one line says why
        assert others[0].startswith("cxlctl: "), err
    return lines


@pytest.mark.parametrize("fault", FAULT_CLASSES)
@pytest.mark.parametrize("verb", READ_VERBS)
def test_every_read_verb_under_every_fault_ends_clean(
    verb: str, fault: str, matrix: dict[tuple[str, str, str], Run]
) -> None:
    for fmt in ("table", "json"):
        _clean(matrix[(verb, fault, fmt)])


@pytest.mark.parametrize("verb", ["identify", "health", "partition", "fw-info", "timestamp"])
def test_a_transient_busy_or_retry_is_retried_and_succeeds(
    verb: str, matrix: dict[tuple[str, str, str], Run]
) -> None:
    for fault in ("busy", "retry"):
        r = matrix[(verb, fault, "json")]
        assert r["rc"] == 0, r
        assert r["stdout"].startswith(b"[")


def test_a_persistent_busy_is_exit_3_naming_the_return_code(
    matrix: dict[tuple[str, str, str], Run],
) -> None:
    r = matrix[("identify", "busy=100", "json")]
    assert r["rc"] == int(ExitCode.DEVICE_ERROR)
    line = b"cxlctl: mem0: identify: device returned Busy (0x6) (hint: the device is busy"
    assert r["stderr"].startswith(line)  # with the hint for that cause (cxlctl/why.py)
    assert r["stderr"].count(b"\n") == 1


def test_a_vanished_device_is_a_timeout_then_gone(
    matrix: dict[tuple[str, str, str], Run],
) -> None:
    first = matrix[("identify", "vanish", "json")]
    assert first["rc"] == int(ExitCode.FAILURE)
    assert b"mailbox timeout [ETIMEDOUT]" in first["stderr"]
    # the device answers read-labels' first command, then goes during the second
    later = matrix[("read-labels", "vanish=2", "json")]
    assert later["rc"] == int(ExitCode.FAILURE), later
    assert later["stderr"].startswith(b"cxlctl: mem0: get-lsa: the device did not answer")


def test_overlong_output_decodes_with_a_warning(
    matrix: dict[tuple[str, str, str], Run],
) -> None:
    r = matrix[("identify", "overlong", "json")]
    assert r["rc"] == 0
    assert r["stderr"].decode().startswith("cxlctl: warning: mem0: identify: the device returned")
    assert b'"firmware_version": "BWFW VERSION 00"' in r["stdout"]


def test_short_output_names_the_memdev(matrix: dict[tuple[str, str, str], Run]) -> None:
    r = matrix[("identify", "short", "json")]
    assert r["rc"] == int(ExitCode.DEVICE_ERROR)
    assert r["stderr"].startswith(b"cxlctl: mem0: identify: payload is 34 bytes")


# --- the driver's reaction, at the ioctl seam ---------------------------------------


def _one(fault: str, **kw: Any) -> SimDevice:
    return make_devices(["pmem"], faults=[fault], **kw)[0]


def _memdev(fault: str, **kw: Any) -> Memdev:
    return Memdev(SimBackend(make_devices(["pmem"], faults=[fault], **kw)), "mem0")


def test_overlong_is_cut_to_min3_out_size_payload_max_length() -> None:
    """min3(mbox_cmd->size_out, payload_size, out_len): never past out.size, never
    past payload_max, whatever length the device's register says."""
    from cxlctl import transport as tp

    dev = _one("identify:overlong")
    for out_size in (67, 100, 2048):
        res = tp.send(dev, tp.SendRequest(uapi.CommandId.IDENTIFY, b"", out_size))
        assert len(res.out) == min(out_size, dev.config.payload_max, PAYLOAD_LENGTH_MAX)


def test_every_return_code_is_a_clean_library_error() -> None:
    """rc=N for every return code the spec names, and a few it does not."""
    codes = [int(c) for c in mb.ReturnCode if c] + [0x21, 0x7FFF, 0xFFFF]
    for rc in codes:
        md = _memdev(f"identify:rc={rc:#x}", time_scale=0)
        if rc == mb.ReturnCode.BACKGROUND_COMMAND_STARTED:
            with pytest.raises(TransportError) as t:
                md.identify()
            assert t.value.errno == errno.ETIMEDOUT
        elif rc in (mb.ReturnCode.BUSY, mb.ReturnCode.RETRY_REQUIRED):
            with pytest.raises(MailboxError) as m:
                md.identify()  # every retry gets the same answer
            assert m.value.rc == rc
        else:
            with pytest.raises(MailboxError) as m:
                md.identify()
            assert m.value.rc == rc
            assert f"({rc:#x})" in m.value.message


def test_a_failed_return_code_leaves_out_size_as_requested() -> None:
    """Not Success: __cxl_pci_mbox_send_cmd() returns before it sets size_out; the
    zeroed bounce buffer goes back with out.size unchanged."""
    from cxlctl import transport as tp

    dev = _one("identify:rc=4")
    res = tp.send(dev, tp.SendRequest(uapi.CommandId.IDENTIFY, b"", 100))
    assert (res.retval, res.out) == (4, bytes(100))


def test_busy_n_times_then_success() -> None:
    md = _memdev("identify:busy=3")
    assert md.identify().firmware_version == "BWFW VERSION 00"  # three retries
    md = _memdev("identify:busy=4")
    with pytest.raises(MailboxError):
        md.identify()


def test_a_write_is_not_retried() -> None:
    md = _memdev("set-alert-config:busy")
    with pytest.raises(MailboxError):
        md.set_alert_config(set_alert_config_request({}))


def test_media_disabled_only_for_media_commands() -> None:
    md = _memdev("media-disabled")
    assert md.identify().firmware_version
    with pytest.raises(MailboxError) as m:
        md.read_lsa(0, 64)
    assert m.value.rc == mb.ReturnCode.MEDIA_DISABLED


def test_background_in_progress_is_busy_except_identify_and_health() -> None:
    md = _memdev("background")
    md.identify()
    md.health()
    with pytest.raises(MailboxError) as m:
        md.fw_info()
    assert m.value.rc == mb.ReturnCode.BUSY


def test_a_slow_device_past_the_mailbox_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """ETIMEDOUT after the 2 s mailbox timeout; the doorbell stays busy (EBUSY)
    until the device finished; then it answers again."""
    import time

    slept: list[float] = []
    clock = [1000.0]
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    md = _memdev(f"identify:slow={MAILBOX_TIMEOUT_MS + 1000}")
    with pytest.raises(TransportError) as t:
        md.identify()
    assert t.value.errno == errno.ETIMEDOUT
    assert slept == [MAILBOX_TIMEOUT_MS / 1000]  # the timeout, not the device's time
    with pytest.raises(Exception, match="EBUSY"):
        md.health()  # the doorbell is still set
    clock[0] += 1.0
    assert md.health().life_used_percent == 3


def test_a_slow_device_within_the_timeout_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    md = _memdev("slow=40", time_scale=0.5)
    assert md.identify().firmware_version
    assert slept == [0.02]


def test_a_vanished_device_gives_enxio_after_its_timeout() -> None:
    md = _memdev("vanish=2", time_scale=0)
    md.identify()
    with pytest.raises(TransportError) as t:
        md.health()
    assert t.value.errno == errno.ETIMEDOUT
    with pytest.raises(Exception, match="ENXIO"):
        md.identify()


def test_garbage_never_escapes_decode_error() -> None:
    for cmd in mb.CATALOGUE:
        if cmd.kernel_id is None or cmd.destructive or cmd.size_in:
            continue
        md = _memdev(f"{cmd.name}:garbage")
        with contextlib.suppress(DecodeError, MailboxError, UnsupportedCommand):
            md.decoded(cmd)


def test_overlong_warns_in_the_library() -> None:
    md = _memdev("identify:overlong")
    with pytest.warns(DeviceWarning, match="the whole buffer"):
        md.identify()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus", "unknown kind 'bogus'"),
        ("mem0:identify:short:x", "expected [memN:][COMMAND:]KIND[=N]"),
        ("nosuch:short", "unknown command 'nosuch'"),
        ("memx:short", "'memx' is not a memdev name"),
        ("mem٣:short", "'mem٣' is not a memdev name"),
        ("rc", "rc needs a value"),
        ("overlong=3", "overlong takes no value"),
        ("rc=0x10000", "outside 0..0xffff"),
        ("busy=0", "outside 1.."),
        ("slow=-1", "-1 is outside 0.."),
        ("short=\u0661", "is not a number"),
        ("0x10000:short", "does not fit in 16 bits"),
    ],
)
def test_fault_syntax_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^fault ") as e:
        parse_one(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_fault_syntax() -> None:
    f = parse("mem1:get-poison-list:short=8, identify:overlong,,0x4300:rc=0x11")
    assert [(x.memdev, x.opcode, x.kind, x.arg) for x in f] == [
        ("mem1", 0x4300, "short", 8),
        (None, 0x4000, "overlong", None),
        (None, 0x4300, "rc", 0x11),
    ]


def test_a_bad_fault_is_exit_2_with_one_line(tmp_path: Path) -> None:
    r = run_many(
        [
            {"argv": ["identify"], "env": {"CXLCTL_SIM_FAULTS": "mem0:identify:nope"}},
            {"argv": ["list"], "env": {"CXLCTL_SIM_FAULTS": "mem7:vanish"}},
        ]
    )
    for x in r:
        assert x["rc"] == 2
        assert len(x["stderr"].splitlines()) == 1
        assert x["stderr"].startswith(b"cxlctl: simulator configuration: fault ")
