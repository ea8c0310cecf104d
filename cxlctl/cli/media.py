"""Media errors: poison (trigger_poison_list + cxl_poison trace events), scan-media-caps,
and the ``media_errors`` block of ``list -L``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .. import render as rd
from ..errors import UsageError
from ..memdev import Memdev
from ..tracefs import media_error_json, poison_flags
from . import CONTEXT, App, app_of, fmt_of, memdevs_argument, output_option, selected
from .change import change_options
from .options import Size, deprecated, range_options


def parse_range(text: str) -> tuple[int, int]:
    """``0x1000-0x2000`` (end exclusive) or ``0x1000+4096`` -> (start, length in bytes)."""
    from ..units import parse_range as _parse

    return _parse(text, "RANGE")


def _range(
    memdevs: Sequence[str], offset: int | None, size: int | None
) -> tuple[list[str], tuple[int, int] | None]:
    """-O/-s, or the old positional RANGE after the MEMDEVs (with a warning)."""
    from ..units import looks_like_range

    args = list(memdevs)
    rng: tuple[int, int] | None = None
    if args and looks_like_range(args[-1]):
        old = args.pop()
        rng = parse_range(old)
        deprecated(f"a positional RANGE is the old form: write -O {rng[0]:#x} -s {rng[1]:#x}")
        if offset is not None or size is not None:
            raise UsageError("give the range with -O/--offset and -s/--size, not both forms")
    elif offset is not None or size is not None:
        if size == 0:
            raise UsageError("--size: must be at least 1")
        start = offset or 0
        rng = (start, size if size is not None else (1 << 64) - start)
    return args, rng


def poison_events(app: App, name: str) -> list[dict[str, Any]]:
    return app.backend.trigger_poison_list(name)


def media_errors_json(app: App, name: str) -> list[dict[str, Any]]:
    """``cxl list -L``'s ``media_errors``: offset, length, source (flags when set)."""
    return [media_error_json(e) for e in poison_events(app, name)]


def poison_json(app: App, name: str, rng: tuple[int, int] | None) -> dict[str, Any]:
    events = poison_events(app, name)
    if rng:
        start, length = rng
        events = [
            e for e in events if e["dpa"] < start + length and e["dpa"] + e["dpa_length"] > start
        ]
    flags = 0
    overflow_ts = 0
    for e in events:
        f = poison_flags(e.get("flags"))
        flags |= f
        if f & 2:
            overflow_ts = e.get("overflow_ts", 0)
    d: dict[str, Any] = {"memdev": name}
    if rng:
        d["range"] = {"offset": rng[0], "length": rng[1]}
    d["more"] = bool(flags & 1)
    d["overflow"] = bool(flags & 2)
    d["overflow_timestamp"] = overflow_ts if flags & 2 else None
    d["scanning"] = bool(flags & 4)
    d["media_errors"] = [
        {"offset": e["dpa"], "length": e["dpa_length"], "source": e["source"]} for e in events
    ]
    return d


@click.command(context_settings=CONTEXT)
@memdevs_argument
@range_options("bytes of device physical address", size_help="Only records within SIZE bytes.")
@click.option(
    "--inject",
    "inject",
    type=Size(metavar="DPA"),
    multiple=True,
    help="Inject poison at DPA first (debugfs; changes the device: needs MEMDEV).",
)
@click.option(
    "--clear",
    "clear",
    type=Size(metavar="DPA"),
    multiple=True,
    help="Clear poison at DPA first (debugfs; changes the device: needs MEMDEV).",
)
@change_options(destructive=True, output=False)
@output_option()
@click.pass_context
def poison(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    offset: int | None,
    size: int | None,
    inject: tuple[int, ...],
    clear: tuple[int, ...],
    output: str,
    as_json: bool,
    **opts: Any,
) -> None:
    """List memdevs' poison (Get Poison List), optionally only within a range.

    Linux has no ioctl for Get Poison List: as `cxl list -L` does, cxlctl writes 1
    to /sys/bus/cxl/devices/MEMDEV/trigger_poison_list, and the kernel pages
    through the list (while the device sets More Media Error Records) and reports
    each record as a cxl_poison trace event, which cxlctl reads from tracefs.
    "more" and "overflow" are the device's flags as the kernel saw them; an
    overflowed list is incomplete until a Scan Media. -O/--offset and -s/--size
    select a range of device physical address (the old positional START-END or
    START+LENGTH still works, with a warning). --inject/--clear are
    `inject-media-poison`/`clear-media-poison` first (debugfs
    inject_poison/clear_poison), under the same contract: they change the device
    (test systems only), so they need an explicit MEMDEV (or `all`); --inject
    asks on a terminal and otherwise needs -y/--yes; --dry-run prints the writes
    and lists nothing. Needs root on a real system.

    \b
    Examples:
      cxlctl --sim poison mem0
      cxlctl --sim poison mem0 -O 0 -s 1M --json
      cxlctl --sim poison mem0 --inject 0x3000 -y -O 0x3000 -s 64
    """
    app = app_of(ctx)
    args, rng = _range(memdevs, offset, size)
    changes = bool(inject or clear)
    names = app.backend.select(args, serial=bool(ctx.meta.get("cxlctl.serial")), explicit=changes)
    if changes:
        from .device import run_poison

        fmt = fmt_of(output, as_json)
        for on, dpas in ((True, inject), (False, clear)):
            if dpas:
                run_poison(app, names, on, dpas, {**opts, "output": fmt}, report=False)
        if opts.get("dry_run"):
            return
    rows = app.each(names, lambda name: poison_json(app, name, rng))
    if fmt_of(output, as_json) == "json":
        app.json(rows)
        return
    for d in rows:
        flags = ", ".join(f for f in ("more", "overflow", "scanning") if d[f]) or "none"
        title = f"{d['memdev']} poison list (flags: {flags})"
        if d["overflow"]:
            title += f" overflowed at {d['overflow_timestamp']}: incomplete"
        table = [(e["offset"], e["length"], e["source"]) for e in d["media_errors"]]
        rd.print_table(
            app.style,
            title,
            ("offset", "length", "source"),
            table,
            simulated=app.backend.simulated,
        )


@click.command("scan-media-caps", context_settings=CONTEXT)
@memdevs_argument
@range_options("bytes of device physical address", size_help="Bytes to scan.")
@output_option()
@click.pass_context
def scan_media_caps(
    ctx: click.Context,
    memdevs: Sequence[str],
    offset: int | None,
    size: int | None,
    output: str,
    as_json: bool,
) -> None:
    """Estimate how long a Scan Media of a range would take (Get Scan Media Capabilities).

    Sent through the kernel's GET_SCAN_MEDIA_CAPS command (id 18). The range is
    -O/--offset and -s/--size in bytes (the old positional START-END or
    START+LENGTH still works, with a warning); both must be multiples of 64.

    \b
    Examples:
      cxlctl --sim scan-media-caps mem0 -O 0 -s 256M
      cxlctl --sim scan-media-caps mem0 -s 4096 --json
    """
    from .. import mailbox as mb
    from ..mailbox.media import scan_media_caps_input

    app = app_of(ctx)
    args, rng = _range(memdevs, offset, size)
    if rng is None or (size is None and offset is not None):
        raise UsageError("scan-media-caps needs a range: -s/--size SIZE [-O/--offset START]")
    start, length = rng
    if start % 64 or length % 64:
        raise UsageError(
            f"range {start:#x}+{length:#x}: start and length must be multiples of 64 bytes"
        )
    if start + length > 1 << 64:
        raise UsageError(f"range {start:#x}+{length:#x} ends beyond 64 bits")

    def one(name: str) -> dict[str, Any]:
        with Memdev(app.backend, name) as md:
            caps = md.decoded(mb.GET_SCAN_MEDIA_CAPS, scan_media_caps_input(start, length))
        return {"memdev": name, "offset": start, "length": length, **rd.to_data(caps)}

    out = app.each(selected(ctx, args), one)
    if fmt_of(output, as_json) == "json":
        app.json(out)
        return
    for d in out:
        rd.print_fields(
            app.style,
            f"{d['memdev']}: Scan Media capabilities",
            d,
            simulated=app.backend.simulated,
        )
