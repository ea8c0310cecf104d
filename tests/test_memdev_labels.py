"""Memdev's one label-area routine: range check, streamed chunks, verify, the
partial-write report and the progress hook, as a library user meets them."""

from __future__ import annotations

import io
import os
import re
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from cxlctl.backends import SimBackend
from cxlctl.errors import CxlError, DeviceBusy, ExitCode, MailboxError, PartialWrite, UsageError
from cxlctl.memdev import Memdev
from cxlctl.sim import make_devices
from cxlctl.sim.device.model import CALL_LOG, HANDLERS, RC, FileSlice, TypeThreeDevice

DATA = bytes(range(256)) * 20  # 5120 bytes: three Set LSA commands (2040 data bytes each)


def _memdev(kind: str = "ram") -> Memdev:
    return Memdev(SimBackend(make_devices([kind])), "mem0")


def _calls(md: Memdev) -> deque[tuple[int, bytes]]:
    """The commands mem0's simulated device has executed."""
    assert isinstance(md.backend, SimBackend)
    return md.backend.devices["mem0"].device.calls


def test_round_trip_with_progress_and_verify() -> None:
    seen: list[tuple[int, int]] = []
    with _memdev() as md:
        res = md.write_labels(DATA, 100, verify=True, progress=lambda d, t: seen.append((d, t)))
        assert (res.offset, res.length, res.commands, res.verified) == (100, 5120, 3, True)
        assert seen == [(2040, 5120), (4080, 5120), (5120, 5120)]
        assert md.read_labels(100, len(DATA)) == DATA
        out = io.BytesIO()
        assert md.read_labels_into(out, 100, len(DATA)) == len(DATA)
        assert out.getvalue() == DATA


@pytest.mark.parametrize(
    ("offset", "length", "message"),
    [
        (256 << 20, None, "offset 268435456 is beyond the 268435456-byte label area"),
        (-1, 4, "offset -1 is beyond"),
        (0, 0, "label size 0: must be at least 1"),
        (16, 256 << 20, "offset 16 + size 268435456 goes past the 268435456-byte label area"),
    ],
)
def test_one_range_check(offset: int, length: int | None, message: str) -> None:
    md = _memdev()
    for call in (
        lambda: md.label_range(offset, length),
        lambda: md.read_labels(offset, length),
        lambda: md.zero_labels(offset, length),
        lambda: md.write_labels(b"x", offset, length),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            call()
    assert not _calls(md)


class _Unreadable(io.RawIOBase):
    """A pipe-like source that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        raise AssertionError("the input was read")


def test_refused_before_a_byte_of_input_is_read() -> None:
    md = _memdev("pmem")  # the nvdimm bridge owns the labels
    with pytest.raises(DeviceBusy, match="owned by the nvdimm bridge"):
        md.write_labels(io.BufferedReader(_Unreadable()), 0)


def test_regular_file_size_is_checked_with_fstat_first(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    with open(f, "wb") as w:
        w.truncate(4097)
    md = _memdev()
    with open(f, "rb") as src, pytest.raises(UsageError, match="larger than the 4096 bytes"):
        md.write_labels(src, (256 << 20) - 4096)
    assert not _calls(md)


def test_pipe_input_is_spooled_not_held(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.write(w, DATA)
    os.close(w)
    with _memdev() as md, os.fdopen(r, "rb") as src:
        assert md.write_labels(src, 0, source_name="stdin").length == len(DATA)
        assert md.read_labels(0, len(DATA)) == DATA


def _fail_set_lsa_at(monkeypatch: pytest.MonkeyPatch, n: int, exc: BaseException | None) -> None:
    real = HANDLERS[0x4103]
    calls = {"n": 0}

    def handler(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes | FileSlice]:
        calls["n"] += 1
        if calls["n"] == n:
            if exc is not None:
                raise exc
            return RC.INTERNAL_ERROR, b""
        return real(dev, p)

    monkeypatch.setitem(HANDLERS, 0x4103, handler)


def test_partial_write_says_what_was_written(monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_set_lsa_at(monkeypatch, 3, None)
    md = _memdev()
    with pytest.raises(PartialWrite) as ei:
        md.write_labels(DATA, 0x100)
    e = ei.value
    assert (e.offset, e.written, e.length, e.in_doubt) == (0x100, 4080, 5120, 0)
    assert isinstance(e.cause, MailboxError)
    assert e.exit_code == ExitCode.DEVICE_ERROR
    assert str(e).startswith("mem0: set-lsa: device returned Internal Error")
    assert str(e).endswith(
        "; 4080 of 5120 bytes were written (0x100..0x10f0, 2 Set LSA commands); "
        "0x10f0..0x1500 was not written"
    )
    assert e.report in str(e)
    assert md.read_labels(0x100, 4080) == DATA[:4080]
    assert md.read_labels(0x100 + 4080, 1040) == bytes(1040)


def test_first_command_failing_is_the_plain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_set_lsa_at(monkeypatch, 1, None)
    with pytest.raises(MailboxError):
        _memdev().write_labels(DATA, 0)


def test_interrupt_midway_marks_the_command_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C lands while the second command is in the kernel: it may or may not
    have been applied, and the report says exactly that."""
    _fail_set_lsa_at(monkeypatch, 2, KeyboardInterrupt())
    with pytest.raises(PartialWrite) as ei:
        _memdev().write_labels(DATA, 0)
    e = ei.value
    assert (e.written, e.in_doubt, e.exit_code) == (2040, 2040, ExitCode.INTERRUPTED)
    assert "the command for 0x7f8..0xff0 was interrupted and may or may not have been" in str(e)


def test_interrupt_in_the_progress_hook_is_exact() -> None:
    def hook(done: int, total: int) -> None:
        if done == 4080:
            raise KeyboardInterrupt

    with pytest.raises(PartialWrite) as ei:
        _memdev().zero_labels(0, 5120, progress=hook)
    assert (ei.value.written, ei.value.in_doubt) == (4080, 0)


def test_verify_reports_the_first_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    real = HANDLERS[0x4103]

    def lossy(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes | FileSlice]:
        rc, out = real(dev, p)
        dev.lsa[300:301] = b"\xee"  # the device drops a byte
        return rc, out

    monkeypatch.setitem(HANDLERS, 0x4103, lossy)
    with pytest.raises(CxlError, match=r"verify failed: .* at offset 0x12c"):
        _memdev().write_labels(DATA, 0, verify=True)


def test_the_call_log_is_a_ring() -> None:
    with _memdev() as md:
        md.zero_labels(0, 2040 * (CALL_LOG + 10))
        calls = _calls(md)
        assert len(calls) == CALL_LOG


def test_dry_run_records_and_sends_nothing() -> None:
    from cxlctl.change import Recorder

    with _memdev() as md:
        md.recorder = Recorder()
        assert md.write_labels(DATA, 0).commands == 3
        md.recorder = None
        assert md.read_labels(0, len(DATA)) == bytes(len(DATA))
