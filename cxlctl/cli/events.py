"""Event records: ``events`` (per memdev, per log) and ``monitor`` (stream trace events)."""

from __future__ import annotations

import json
import select
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import click

from .. import render as rd
from ..errors import CxlError, UsageError, file_error
from ..mailbox.names import LOG_NAMES
from . import CONTEXT, app_of, fmt_of, memdevs_argument, output_option, selected
from .options import Duration, Size, deprecated

LOGS = tuple(LOG_NAMES)  #: info, warn, fail, fatal


def _row(rec: dict[str, Any]) -> tuple[Any, ...]:
    """(handle, timestamp, type, flags, dpa, what) of a record (docs/json.md's schema)."""
    what = rec.get("type") or rec.get("event_type") or rec.get("data", "")
    return (
        rec.get("hdr_handle"),
        rec.get("hdr_timestamp"),
        rec["event"].removeprefix("cxl_"),
        rec.get("hdr_flags") or "-",
        rec.get("dpa"),
        str(what)[:40],
    )


@click.command(context_settings=CONTEXT)
@memdevs_argument
@click.option(
    "--event-log",
    "logs",
    type=click.Choice(LOGS),
    multiple=True,
    help="Only this event log (repeatable; default: all four).",
)
@click.option(
    "-l",
    "--log",
    "logs_old",
    type=click.Choice(LOGS),
    multiple=True,
    hidden=True,
    help="Old name of --event-log (-l is monitor's log file, as in cxl-cli).",
)
@output_option()
@click.pass_context
def events(
    ctx: click.Context,
    memdevs: Sequence[str],
    logs: Sequence[str],
    logs_old: Sequence[str],
    output: str,
    as_json: bool,
) -> None:
    """Show event records, decoded per type (General Media, DRAM, Memory Module, other).

    Linux has no ioctl command id for Get Event Records: the driver reads each
    log itself (at probe and on event interrupts), clears it, and reports every
    record as a trace event. So cxlctl reads those events from tracefs
    ("source": "trace", needs root and the cxl events enabled when they
    happened; an overflow shows as a cxl_overflow event). On a kernel built with
    CONFIG_CXL_MEM_RAW_COMMANDS it sends Get Event Records itself through RAW
    ("source": "mailbox"), shows the device's More/Overflow flags, and clears
    nothing.

    \b
    Examples:
      cxlctl --sim events mem0
      cxlctl --sim events mem0 --event-log warn --json
      CXLCTL_SIM_RAW=1 cxlctl --sim events mem0 --json
    """
    from ..eventlog import event_logs

    app = app_of(ctx)
    if logs_old:
        deprecated("events -l/--log is now --event-log (-l is a log file, as in cxl monitor)")
    want = list(logs) + [x for x in logs_old if x not in logs] or list(LOGS)
    failed: list[CxlError] = []
    found = event_logs(
        app.backend, selected(ctx, memdevs), [LOG_NAMES[x] for x in want], failed=failed
    )
    app.keep(failed, bool(found))
    out: list[dict[str, Any]] = rd.to_data(found)
    if fmt_of(output, as_json) == "json":
        app.json(out)
        return
    for d in out:
        for lg in d["logs"]:
            flags = [
                f"more: {'yes' if lg['more_records'] else 'no'}"
                if lg["more_records"] is not None
                else "",
                f"overflow: {lg['overflow_count']} lost" if lg["overflow"] else "overflow: no",
            ]
            title = (
                f"{d['memdev']} {lg['log']} log ({d['source']}; {'; '.join(f for f in flags if f)})"
            )
            rows = [_time_row(_row(r)) for r in lg["records"]]
            if not rows:  # no empty boxes: one line says it
                sim = " [simulated]" if app.backend.simulated else ""
                rd.write_stdout(f"{title}{sim}: no records\n")
                continue
            rd.print_table(
                app.style,
                title,
                ("handle", "time", "record", "flags", "dpa", "what"),
                rows,
                simulated=app.backend.simulated,
            )


def _time_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The timestamp (ns since the epoch) as ISO-8601 UTC, to the second, in
    tables (JSON keeps the ns)."""
    from .info import iso8601

    ts = row[1]
    try:
        full = iso8601(int(ts)) if ts is not None else None
        when = f"{full[:19]}Z" if full else full
    except (TypeError, ValueError):
        when = str(ts)
    return (row[0], when, *row[2:])


# --- monitor ------------------------------------------------------------------------


def _reader_gone(stream: IO[str]) -> bool:
    """True once the reading end of a pipe on ``stream`` has closed (POLLERR on the
    writing end), so an idle monitor notices ``| head -1`` going away."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    p = select.poll()
    p.register(fd, 0)  # POLLERR/POLLHUP are always reported
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))


@click.command(context_settings=CONTEXT)
@click.option(
    "-l",
    "--log",
    "log_file",
    metavar="FILE|standard",
    help="Append the JSON lines to FILE instead of stdout ('standard': stdout).",
)
@click.option("--count", type=Size(units=False, minimum=1), help="Stop after N events.")
@click.option(
    "-t",
    "--timeout",
    type=Duration(),
    help="Stop after MS milliseconds (500, 2s, 1m; ms as in cxl-cli and nvme-cli).",
)
@click.option(
    "-m",
    "--memdev",
    "memdevs",
    multiple=True,
    metavar="MEMDEV",
    help="Only events of this memdev (repeatable).",
)
@click.pass_context
def monitor(
    ctx: click.Context,
    log_file: str | None,
    count: int | None,
    timeout: int | None,
    memdevs: Sequence[str],
) -> None:
    """Stream CXL trace events as JSON lines, like `cxl monitor`.

    On a real system cxlctl enables the cxl trace events in a private tracefs
    instance and follows its trace_pipe (needs root); on the simulator it streams
    what the simulated kernel logs from the simulated devices. Each line is one
    event: {"system": "cxl", "event": ..., "timestamp": ns, fields...}. Runs until
    --count events, --timeout milliseconds, Ctrl-C (exit 130) or a closed pipe (exit
    141), and always disables the events it enabled.

    \b
    Examples:
      cxlctl --sim monitor --count 3
      cxlctl --sim monitor -m mem1 --timeout 1000
      cxlctl monitor -l /var/log/cxl-events.jsonl
    """
    app = app_of(ctx)
    names = set(app.backend.select(memdevs)) if memdevs else None  # -m: cxl-cli's filter
    if log_file is not None and not log_file:
        raise UsageError("--log needs a file name (or 'standard')")
    to_file = log_file not in (None, "standard")
    stream: IO[str] = sys.stdout
    if to_file:
        try:
            stream = open(log_file or "", "a")  # noqa: SIM115 - closed below
        except OSError as e:
            raise file_error("monitor: --log", log_file or "", e, writing=True, usage=True) from e
    deadline = None if timeout is None else time.monotonic() + timeout / 1000
    n = 0

    def stop() -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            return True
        if count is not None and n >= count:
            return True
        if not to_file and _reader_gone(sys.stdout):
            raise BrokenPipeError
        return False

    try:
        for ev in app.backend.tracing().stream(stop=stop):
            if names is not None and ev.get("memdev") not in names:
                continue
            line = json.dumps(ev) + "\n"
            if to_file:
                stream.write(line)
                stream.flush()
            else:
                rd.write_stdout(line)
            n += 1
            if count is not None and n >= count:
                break
    finally:
        if to_file:
            stream.close()
