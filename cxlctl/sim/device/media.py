"""Media and poison management of the simulated device (CXL 3.1 8.2.9.9.4).

The device keeps a poison list of (DPA, length, source) entries, at most
``max_records`` of them (Identify's Poison List Maximum Media Error Records).
Injecting into a full list sets the overflow flag and its timestamp; the list
is then frozen until a Scan Media rebuilds it.  Get Poison List returns as many
records as fit in the output and sets More Media Error Records; the next call
with the same range continues where the last stopped (a new range restarts).
Scan Media completes at once here (a real device runs it in the background) and
Get Scan Media Results hands its records out in pages the same way.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from ... import mailbox as mb
from ...mailbox import layouts as lay
from ...mailbox.names import POISON_LEN_MULT, PoisonFlag, PoisonSource, ScanFlag
from ..state import load_state, modify_state
from .model import RC, TypeThreeDevice, handles

SOURCE_INJECTED = int(PoisonSource.INJECTED)
_HDR = ctypes.sizeof(lay.PoisonListOutHeader)
_REC = ctypes.sizeof(lay.MediaErrorRecord)


class MediaState:
    """The device's poison list and scan state (a plain class: loaded on every --sim run)."""

    def __init__(self) -> None:
        #: dpa -> (length in bytes, source)
        self.poison: dict[int, tuple[int, int]] = {}
        self.max_records = 256
        #: records per output payload; None: as many as fit in payload_max
        self.page_records: int | None = None
        self.overflow_ts = 0  #: 0: no overflow
        self.cursor: tuple[int, int, int] | None = None  #: (address, length, next index)
        self.scan_results: list[tuple[int, int, int]] | None = None  #: None: no scan yet
        self.scan_cursor = 0


def state(dev: TypeThreeDevice) -> MediaState:
    """The media state of a device, created (and seeded for the full profile) on first use."""
    st: MediaState | None = getattr(dev, "_media_state", None)
    if st is None:
        st = MediaState()
        saved = load_state(dev.state_dir, dev.config.serial)
        if "poison" in saved:  # what inject/clear/sanitize left (CXLCTL_SIM_STATE)
            _load(st, saved)
        elif dev.config.profile == "full" and not getattr(dev, "media_generation", 0):
            _seed(dev, st)
        dev._media_state = st  # type: ignore[attr-defined]
    return st


def _load(st: MediaState, saved: dict[str, Any]) -> None:
    st.poison = {}
    entries = saved.get("poison")
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, list) and len(e) == 3 and all(type(x) is int for x in e):
            st.poison[e[0]] = (e[1], e[2])
    ts = saved.get("poison_overflow_ts")
    st.overflow_ts = ts if type(ts) is int else 0


def update(dev: TypeThreeDevice, op: Callable[[MediaState], None]) -> None:
    """Change the poison list: with CXLCTL_SIM_STATE, on the saved list (re-read and
    written under one hold of the lock: concurrent injectors lose nothing)."""
    st = state(dev)
    if not dev.state_dir:
        op(st)
        return

    def change(saved: dict[str, Any]) -> dict[str, Any]:
        if "poison" in saved:
            _load(st, saved)
        op(st)
        st.cursor = None
        return {
            "poison": [[d, ln, src] for d, (ln, src) in sorted(st.poison.items())],
            "poison_overflow_ts": st.overflow_ts,
        }

    modify_state(dev.state_dir, dev.config.serial, change)


def _seed(dev: TypeThreeDevice, st: MediaState) -> None:
    """Deterministic poison for the full profile: something to list on a fresh run."""
    size = capacity(dev)
    # one injected cache line near the start, one internal 512-byte error further in
    st.poison[0x1000] = (64, SOURCE_INJECTED)
    if size > 0x400000:
        st.poison[0x400000] = (512, PoisonSource.INTERNAL)


def capacity(dev: TypeThreeDevice) -> int:
    return dev.config.volatile_bytes + dev.config.persistent_bytes


def _in_range(dev: TypeThreeDevice, dpa: int, length: int = 64) -> bool:
    return dpa % 64 == 0 and dpa >= 0 and dpa + length <= capacity(dev)


def _page(dev: TypeThreeDevice, st: MediaState) -> int:
    fit = (dev.config.payload_max - _HDR) // _REC
    return max(1, min(fit, st.page_records or fit))


def _record(dpa: int, length: int, source: int) -> bytes:
    return bytes(
        lay.MediaErrorRecord(address=dpa | source, length=length // POISON_LEN_MULT, reserved=0)
    )


def inject(dev: TypeThreeDevice, dpa: int, length: int = 64, source: int = SOURCE_INJECTED) -> None:
    """Add an entry (the device half of Inject Poison, also used to seed tests)."""
    _add(dev, state(dev), dpa, length, source)


def _add(
    dev: TypeThreeDevice, st: MediaState, dpa: int, length: int = 64, source: int = SOURCE_INJECTED
) -> None:
    if dpa in st.poison:
        return
    if st.overflow_ts or len(st.poison) >= st.max_records:
        if not st.overflow_ts:
            st.overflow_ts = dev.now_ns()
        return
    st.poison[dpa] = (length, source)
    st.cursor = None


@handles(mb.GET_POISON_LIST)
def _get_poison_list(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = lay.PoisonListIn.from_buffer_copy(p)
    addr, units = int(req.address), int(req.length)
    if units == 0 or addr & 0x3F:
        return RC.INVALID_INPUT, b""
    end = addr + units * POISON_LEN_MULT
    if end > capacity(dev):
        return RC.INVALID_PHYSICAL_ADDRESS, b""
    st = state(dev)
    hits = [(d, ln, src) for d, (ln, src) in sorted(st.poison.items()) if d < end and d + ln > addr]
    start = st.cursor[2] if st.cursor and st.cursor[:2] == (addr, units) else 0
    chunk = hits[start : start + _page(dev, st)]
    more = start + len(chunk) < len(hits)
    st.cursor = (addr, units, start + len(chunk)) if more else None
    flags = (PoisonFlag.MORE if more else 0) | (PoisonFlag.OVERFLOW if st.overflow_ts else 0)
    hdr = lay.PoisonListOutHeader(flags=flags, overflow_timestamp=st.overflow_ts, count=len(chunk))
    return RC.SUCCESS, bytes(hdr) + b"".join(_record(*h) for h in chunk)


@handles(mb.INJECT_POISON)
def _inject_poison(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    dpa = int(lay.InjectPoisonIn.from_buffer_copy(p).address)
    if not _in_range(dev, dpa):
        return RC.INVALID_PHYSICAL_ADDRESS, b""
    update(dev, lambda st: _add(dev, st, dpa))
    return RC.SUCCESS, b""


def clear(dev: TypeThreeDevice, dpa: int) -> None:
    """Remove 64 bytes at ``dpa`` from the list, splitting a longer entry."""
    _remove(state(dev), dpa)


def _remove(st: MediaState, dpa: int) -> None:
    for start, (length, source) in sorted(st.poison.items()):
        if start <= dpa < start + length:
            del st.poison[start]
            if dpa > start:
                st.poison[start] = (dpa - start, source)
            if dpa + 64 < start + length:
                st.poison[dpa + 64] = (start + length - dpa - 64, source)
            st.cursor = None
            return


@handles(mb.CLEAR_POISON)
def _clear_poison(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    dpa = int(lay.ClearPoisonIn.from_buffer_copy(p).address)
    if not _in_range(dev, dpa):
        return RC.INVALID_PHYSICAL_ADDRESS, b""
    update(dev, lambda st: _remove(st, dpa))
    return RC.SUCCESS, b""


@handles(mb.SCAN_MEDIA)
def _scan_media(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    req = lay.ScanMediaIn.from_buffer_copy(p)
    addr, units = int(req.address), int(req.length)
    if int(req.flags) & ~1:
        return RC.INVALID_INPUT, b""
    if units == 0 or not _in_range(dev, addr, units * POISON_LEN_MULT):
        return RC.INVALID_PHYSICAL_ADDRESS, b""
    st = state(dev)
    end = addr + units * POISON_LEN_MULT
    st.scan_results = [
        (d, ln, src) for d, (ln, src) in sorted(st.poison.items()) if d < end and d + ln > addr
    ]
    st.scan_cursor = 0
    # the scan has seen the media: the poison list is complete again
    if len(st.poison) <= st.max_records:
        st.overflow_ts = 0
    return RC.SUCCESS, b""


@handles(mb.GET_SCAN_MEDIA_RESULTS)
def _scan_media_results(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    st = state(dev)
    if st.scan_results is None:
        return RC.INVALID_INPUT, b""  # no Scan Media has run
    chunk = st.scan_results[st.scan_cursor : st.scan_cursor + _page(dev, st)]
    st.scan_cursor += len(chunk)
    more = st.scan_cursor < len(st.scan_results)
    hdr = lay.ScanMediaResultsHeader(flags=ScanFlag.MORE if more else 0, count=len(chunk))
    return RC.SUCCESS, bytes(hdr) + b"".join(_record(*h) for h in chunk)
