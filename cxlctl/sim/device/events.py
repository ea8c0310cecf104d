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

from ...mailbox import layouts as lay
from .model import RC, TypeThreeDevice, handles

# cxlctl.mailbox.events (the decoders) is imported only when a record is built:
# every --sim run imports this module, and start-up time matters.

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


class EventState:
    """The four logs; plain classes, not dataclasses: this module loads on every --sim run."""

    def __init__(self, logs: dict[int, EventLogState]) -> None:
        self.logs = logs
        #: records per output payload; None: as many as fit in payload_max
        self.page_records: int | None = None


def state(dev: TypeThreeDevice) -> EventState:
    st: EventState | None = getattr(dev, "_event_state", None)
    if st is None:
        full = dev.config.profile == "full"
        # the sizes Identify reports (info/warn 32, fail/fatal 16; QEMU's are 0)
        caps = (32, 32, 16, 16) if full else (0, 0, 0, 0)
        st = EventState({i: EventLogState(c) for i, c in enumerate(caps)})
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


@handles(0x0100)
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


@handles(0x0101)
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
