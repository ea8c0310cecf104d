"""A memdev's event logs, in one shape whatever the source.

Linux has no ioctl command id for Get Event Records: the driver reads each log
itself, clears it and reports every record as a trace event
(``drivers/cxl/core/trace.h``). So a memdev's records come either from tracefs
(``source`` ``trace``) or, on a kernel with CONFIG_CXL_MEM_RAW_COMMANDS, from
Get Event Records sent through RAW (``source`` ``mailbox``; nothing is cleared).

Either way each record is the kernel's trace event for it: the ``TP_STRUCT``
field names (``hdr_uuid``, ``hdr_handle``, ``dpa``, ...), as ``cxl monitor``
names them, with the values as the kernel's ``TP_printk`` prints them. A record
read from the mailbox is put through the very formatter the simulated kernel
traces with (:func:`cxlctl.tracefs.format_event_record`) and the parser that
reads a real trace buffer (:func:`cxlctl.tracefs.parse_body`), so the two
sources cannot drift apart. Only ``timestamp`` (the trace clock) tells them
apart: it is None for a record that was never traced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .mailbox.names import EVENT_LOGS, LOG_CLI_NAMES, EventLog
from .record import Record
from .tracefs import RECORD_EVENTS, format_event_record, parse_body

if TYPE_CHECKING:
    from .backends import Backend
    from .errors import CxlError
    from .mailbox.events import EventRecords

#: Fields of a trace event that name the memdev or the log, not the record.
_NOT_RECORD = ("system", "memdev", "host", "serial", "log")

Event = dict[str, Any]


class EventLogRecords(Record):
    """One event log of one memdev (Get Event Records output, Table 8-50)."""

    log: str  #: info, warn, fail, fatal
    more_records: bool | None  #: None from tracefs: the kernel reads until the log is empty
    overflow: bool
    overflow_count: int  #: records lost
    first_overflow_timestamp: int  #: ns since the epoch, 0: none
    last_overflow_timestamp: int
    records: tuple[Event, ...]  #: oldest first, each as the kernel traces it


class MemdevEvents(Record):
    """What :func:`event_logs` found for one memdev."""

    memdev: str
    source: str  #: ``trace`` or ``mailbox``
    logs: tuple[EventLogRecords, ...]


def trace_record(event: Event) -> Event:
    """A parsed trace event without the fields that name the memdev and log."""
    return {k: v for k, v in event.items() if k not in _NOT_RECORD}


def mailbox_log(
    memdev: str, host: str, serial: int, log: EventLog, out: EventRecords
) -> EventLogRecords:
    """One Get Event Records answer, each record as the kernel would trace it."""
    records = []
    for rec in out.records:
        event, body = format_event_record(memdev, host, serial, int(log), rec)
        records.append({"event": event, "timestamp": None, **trace_record(parse_body(event, body))})
    return EventLogRecords(
        log.cli_name,
        out.more_records,
        out.overflow,
        out.overflow_error_count,
        out.first_overflow_timestamp,
        out.last_overflow_timestamp,
        tuple(records),
    )


def trace_logs(
    memdev: str, logs: Sequence[EventLog], events: Sequence[Event]
) -> tuple[EventLogRecords, ...]:
    """The records the kernel read, cleared and traced for ``memdev`` (``cxl_*``
    events of a trace snapshot); an overflow is a ``cxl_overflow`` event."""
    out = []
    for log in logs:
        mine = [
            e
            for e in events
            if e.get("memdev") == memdev
            and LOG_CLI_NAMES.get(str(e.get("log", ""))) == log.cli_name
        ]
        over = [e for e in mine if e["event"] == "cxl_overflow"]
        out.append(
            EventLogRecords(
                log.cli_name,
                None,
                bool(over),
                sum(int(e.get("count", 0)) for e in over),
                int(over[0].get("first_ts", 0)) if over else 0,
                int(over[-1].get("last_ts", 0)) if over else 0,
                tuple(trace_record(e) for e in mine if e["event"] in RECORD_EVENTS),
            )
        )
    return tuple(out)


def event_logs(
    backend: Backend,
    memdevs: Sequence[str],
    logs: Sequence[EventLog] = EVENT_LOGS,
    *,
    failed: list[CxlError] | None = None,
) -> list[MemdevEvents]:
    """Each memdev's event logs: through RAW Get Event Records where the kernel
    allows it (nothing is cleared), else from the kernel's trace events (read once
    for all memdevs). The records have one shape either way (module docstring).
    With ``failed``, a memdev whose mailbox fails is appended there and left out,
    and the others are still read."""
    from .errors import CxlError, PermissionDenied
    from .memdev import Memdev

    out: list[MemdevEvents] = []
    snapshot: list[Event] | None = None
    for name in memdevs:
        entry: tuple[EventLogRecords, ...] | None = None
        try:
            with Memdev(backend, name) as md:
                if md.raw_available():
                    try:
                        entry = tuple(md.event_records(log) for log in logs)
                    except PermissionDenied:  # RAW compiled in but refused (lockdown)
                        entry = None
        except CxlError as e:
            if failed is None:
                raise
            failed.append(e)
            continue
        if entry is not None:
            out.append(MemdevEvents(name, "mailbox", entry))
            continue
        if snapshot is None:
            snapshot = backend.tracing().snapshot()
        out.append(MemdevEvents(name, "trace", trace_logs(name, logs, snapshot)))
    return out
