"""Event logs of the simulated device (CXL 3.1 8.2.9.2): Get/Clear Event Records.

Four logs (informational, warning, failure, fatal), each holding at most as many
records as Identify advertises.  A record added to a full log is dropped and
counted as an overflow (count, first and last timestamps), as the spec says.
Get Event Records returns the oldest records that fit in the output, with More
Event Records set when some did not fit; Clear Event Records takes handles that
must name the oldest records in order (else Invalid Handle), or Clear All.

The full profile starts with a few deterministic records, so a fresh simulator
has something to show: a Memory Module record (informational), a General Media
record (warning) and a DRAM record (failure).
"""

from __future__ import annotations

import ctypes

from ... import mailbox as mb
from ...mailbox import layouts as lay
from ...mailbox.names import InterruptMode
from ..state import load_state
from .model import RC, TypeThreeDevice, handles

# cxlctl.mailbox.events (the decoders) is imported only when a record is built:
# every --sim run imports this module, and start-up time matters.

MSI_MSIX = int(InterruptMode.MSI_MSIX)
_HDR = ctypes.sizeof(lay.GetEventRecordsOutHeader)
_REC = ctypes.sizeof(lay.EventRecord)
#: 2025-11-25 00:00:00 UTC in ns: the seeded records' timestamps start here.
SEED_TS = 1_764_028_800_000_000_000


class EventLogState:
    """One event log: its records (oldest first), next handle and overflow record."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[bytearray] = []  #: 128-byte records, oldest first
        self.next_handle = 1
        self.overflow_count = 0
        self.first_overflow_ts = 0
        self.last_overflow_ts = 0


#: QEMU 10's MSI/MSI-X vectors of the info, warn, fail and fatal logs
#: (CXL_T3_MSIX_EVENT_START = 2); the dynamic capacity log borrows info's.
IRQ_VECTORS = (2, 3, 4, 5)
#: The interrupts Linux 6.12's probe leaves enabled (cxl_event_config(): MSI/MSI-X
#: for the four logs it reads, with native CXL error handling; none for dynamic
#: capacity, whose settings byte it does not send).
PROBE_IRQ_ENABLED = (True, True, True, True, False)


class EventState:
    """The logs and their interrupt policy; plain classes, not dataclasses: this
    module loads on every --sim run."""

    def __init__(self, logs: dict[int, EventLogState]) -> None:
        self.logs = logs
        #: records per output payload; None: as many as fit in payload_max
        self.page_records: int | None = None
        #: per log (info, warn, fail, fatal, dynamic capacity): MSI/MSI-X enabled
        self.irq_enabled = list(PROBE_IRQ_ENABLED)


def state(dev: TypeThreeDevice) -> EventState:
    st: EventState | None = getattr(dev, "_event_state", None)
    if st is None:
        full = dev.config.profile == "full"
        # the sizes Identify reports (info/warn 32, fail/fatal 16; QEMU's are 0)
        caps = (32, 32, 16, 16) if full else (0, 0, 0, 0)
        st = EventState({i: EventLogState(c) for i, c in enumerate(caps)})
        saved = load_state(dev.state_dir, dev.config.serial).get("event_irq_enabled")
        if isinstance(saved, list) and len(saved) == len(st.irq_enabled):
            st.irq_enabled = [bool(b) for b in saved]  # Set Event Interrupt Policy's
        dev._event_state = st  # type: ignore[attr-defined]
        if full:
            _seed(dev)
    return st


def add_record(dev: TypeThreeDevice, log: int, record: bytes, timestamp: int | None = None) -> int:
    """Append a 128-byte record to a log; set its handle (and timestamp). 0: it overflowed."""
    lg = state(dev).logs[log]
    ts = dev.now_ns() if timestamp is None else timestamp
    if len(lg.records) >= lg.capacity:
        lg.overflow_count = min(lg.overflow_count + 1, 0xFFFF)
        lg.first_overflow_ts = lg.first_overflow_ts or ts
        lg.last_overflow_ts = ts
        return 0
    rec = lay.EventRecord.from_buffer_copy(record.ljust(_REC, b"\0")[:_REC])
    handle = lg.next_handle
    lg.next_handle = lg.next_handle % 0xFFFF + 1
    rec.hdr.handle = handle
    rec.hdr.timestamp = ts
    rec.hdr.length = _REC
    lg.records.append(bytearray(bytes(rec)))
    return handle


def _hdr(u: str, severity: int, flags: int = 0) -> lay.EventRecordHeader:
    import uuid as _uuid

    h = lay.EventRecordHeader()
    ctypes.memmove(h.uuid, _uuid.UUID(u).bytes, 16)
    f = severity | flags
    h.flags[0], h.flags[1], h.flags[2] = f & 0xFF, (f >> 8) & 0xFF, f >> 16
    return h


def general_media(dpa: int, severity: int = 1, descriptor: int = 0b10) -> bytes:
    """A General Media record: a corrected ECC threshold event on a host read."""
    from ...mailbox.events import GENERAL_MEDIA_UUID

    r = lay.GeneralMediaRecord(hdr=_hdr(GENERAL_MEDIA_UUID, severity, 0x08))
    r.phys_addr = dpa
    r.descriptor, r.type, r.transaction_type = descriptor, 0x00, 0x01
    r.validity_flags = 0b00011  # channel, rank
    r.channel, r.rank = 1, 0
    r.cme_threshold_ev_flags = 0x02
    r.cme_count[0] = 12
    return bytes(r)


def dram(dpa: int, severity: int = 2) -> bytes:
    """A DRAM record: an uncorrectable ECC error found by the media scrubber."""
    from ...mailbox.events import DRAM_UUID

    r = lay.DramRecord(hdr=_hdr(DRAM_UUID, severity, 0x04 | 0x20))
    r.phys_addr = dpa
    r.descriptor, r.type, r.transaction_type = 0b01, 0x01, 0x05
    r.validity_flags = 0b1111111  # channel, rank, nibble, bank group, bank, row, column
    r.channel, r.rank, r.bank_group, r.bank, r.column = 2, 1, 3, 5, 0x1F0
    r.nibble_mask[0], r.nibble_mask[1] = 0x0F, 0x01
    r.row[0], r.row[1] = 0x34, 0x12
    return bytes(r)


def memory_module(dev: TypeThreeDevice, severity: int = 0) -> bytes:
    """A Memory Module record: a temperature change, with the health info of the moment."""
    from ...mailbox.events import MEMORY_MODULE_UUID

    r = lay.MemoryModuleRecord(hdr=_hdr(MEMORY_MODULE_UUID, severity))
    r.event_type = 0x03
    r.health = lay.HealthInfoOut(
        life_used=dev.life_used,
        device_temperature=dev.temperature,
        dirty_shutdown_count=dev.dirty_shutdown_count,
    )
    return bytes(r)


def _seed(dev: TypeThreeDevice) -> None:
    add_record(dev, 0, memory_module(dev), SEED_TS)
    add_record(dev, 1, general_media(0x2000), SEED_TS + 1_000_000_000)
    add_record(dev, 2, dram(0x8000), SEED_TS + 2_000_000_000)


def _page(dev: TypeThreeDevice, st: EventState) -> int:
    fit = (dev.config.payload_max - _HDR) // _REC
    return max(1, min(fit, st.page_records or fit))


@handles(mb.GET_EVENT_RECORDS)
def _get_event_records(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    from ...mailbox.events import EVENT_FLAG_MORE_RECORDS, EVENT_FLAG_OVERFLOW

    st = state(dev)
    lg = st.logs.get(p[0])
    if lg is None:
        return RC.INVALID_INPUT, b""  # no such log (the dynamic capacity log is not modelled)
    chunk = lg.records[: _page(dev, st)]
    flags = EVENT_FLAG_MORE_RECORDS if len(lg.records) > len(chunk) else 0
    if lg.overflow_count:
        flags |= EVENT_FLAG_OVERFLOW
    hdr = lay.GetEventRecordsOutHeader(
        flags=flags,
        overflow_error_count=lg.overflow_count,
        first_overflow_timestamp=lg.first_overflow_ts,
        last_overflow_timestamp=lg.last_overflow_ts,
        record_count=len(chunk),
    )
    return RC.SUCCESS, bytes(hdr) + b"".join(bytes(r) for r in chunk)


@handles(mb.CLEAR_EVENT_RECORDS)
def _clear_event_records(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    size = ctypes.sizeof(lay.ClearEventRecordsIn)
    if len(p) < size:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    req = lay.ClearEventRecordsIn.from_buffer_copy(p[:size])
    n, clear_all = int(req.count), bool(int(req.flags) & 1)
    if len(p) != size + 2 * n:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    lg = state(dev).logs.get(int(req.event_log))
    if lg is None or int(req.flags) & ~1 or (clear_all and n):
        return RC.INVALID_INPUT, b""
    if clear_all:
        lg.records.clear()
    else:
        want = [int.from_bytes(p[size + 2 * i : size + 2 * i + 2], "little") for i in range(n)]
        have = [int(lay.EventRecord.from_buffer_copy(r).hdr.handle) for r in lg.records[:n]]
        if want != have:
            # a handle that does not exist, or one that would leave an older record behind
            return RC.INVALID_HANDLE, b""
        del lg.records[:n]
    if len(lg.records) < lg.capacity:
        lg.overflow_count = lg.first_overflow_ts = lg.last_overflow_ts = 0
    return RC.SUCCESS, b""


@handles(mb.GET_EVENT_INTERRUPT_POLICY)
def _get_interrupt_policy(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    """QEMU 10's cmd_events_get_interrupt_policy(): MSI/MSI-X and the log's vector
    where enabled (dynamic capacity: MSI/MSI-X without a vector), else 0."""
    on = state(dev).irq_enabled
    out = lay.EventInterruptPolicy3(dcd_settings=MSI_MSIX if on[4] else 0)
    b = out.base
    b.info_settings, b.warn_settings, b.failure_settings, b.fatal_settings = (
        (vec << 4) | MSI_MSIX if en else 0 for vec, en in zip(IRQ_VECTORS, on, strict=False)
    )
    return RC.SUCCESS, bytes(out)


@handles(mb.SET_EVENT_INTERRUPT_POLICY)
def _set_interrupt_policy(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    """QEMU 10's cmd_events_set_interrupt_policy(): at least the four CXL 2.0 bytes
    (else Invalid Payload Length); a log's interrupt is on when its mode is
    MSI/MSI-X, off for any other mode (the vector asked for is ignored); the dynamic
    capacity byte is optional. Kept between processes (CXLCTL_SIM_STATE)."""
    if len(p) < ctypes.sizeof(lay.EventInterruptPolicy):
        return RC.INVALID_PAYLOAD_LENGTH, b""
    st = state(dev)
    for i, b in enumerate(p[: len(st.irq_enabled)]):
        st.irq_enabled[i] = b & 0x3 == MSI_MSIX
    dev.persist(event_irq_enabled=st.irq_enabled)
    return RC.SUCCESS, b""
