"""Media errors: poison (trigger_poison_list + cxl_poison trace events), scan-media-caps,
and the ``media_errors`` block of ``list -L``."""

from __future__ import annotations

import re
from typing import Any

import click

from .. import render as rd
from ..errors import UsageError
from ..memdev import Memdev
from ..tracefs import media_error_json, poison_flags
from . import CONTEXT, App, app_of, complete, fmt_of, output_option

_RANGE = re.compile(r"^\s*(\w+)\s*([-+])\s*(\w+)\s*$")


def parse_range(text: str) -> tuple[int, int]:
    """``0x1000-0x2000`` (end exclusive) or ``0x1000+4096`` -> (start, length in bytes)."""
    m = _RANGE.match(text)
    try:
        if not m:
            raise ValueError
        a, op, b = int(m.group(1), 0), m.group(2), int(m.group(3), 0)
    except ValueError:
        raise UsageError(
            f"bad range {text!r}: expected START-END or START+LENGTH (e.g. 0x1000-0x2000)"
        ) from None
    length = b - a if op == "-" else b
    if a < 0 or length <= 0:
        raise UsageError(f"bad range {text!r}: it is empty")
    return a, length


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"bad address {text!r}: expected a number like 0x1000") from None


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
@click.argument("memdev", shell_complete=complete.memdevs)
@click.argument("range_", metavar="[RANGE]", required=False)
@click.option(
    "--inject", "inject", metavar="DPA", multiple=True, help="Inject poison at DPA first (debugfs)."
)
@click.option(
    "--clear", "clear", metavar="DPA", multiple=True, help="Clear poison at DPA first (debugfs)."
)
@click.option("-u", "--human", is_flag=True, help="Hex offsets in JSON, as cxl -u.")
@output_option("table", "json")
@click.pass_context
def poison(
    ctx: click.Context,
    memdev: str,
    range_: str | None,
    inject: tuple[str, ...],
    clear: tuple[str, ...],
    human: bool,
    output: str,
    as_json: bool,
) -> None:
    """List a memdev's poison (Get Poison List), optionally only within RANGE.

    Linux has no ioctl for Get Poison List: as `cxl list -L` does, cxlctl writes 1
    to /sys/bus/cxl/devices/MEMDEV/trigger_poison_list, and the kernel pages
    through the list (while the device sets More Media Error Records) and reports
    each record as a cxl_poison trace event, which cxlctl reads from tracefs.
    "more" and "overflow" are the device's flags as the kernel saw them; an
    overflowed list is incomplete until a Scan Media. RANGE is START-END (end
    exclusive) or START+LENGTH, in bytes of device physical address.
    --inject/--clear write a DPA to debugfs inject_poison/clear_poison first
    (they change the device: test systems only). Needs root on a real system.

    \b
    Examples:
      cxlctl --sim poison mem0
      cxlctl --sim poison mem0 0x0-0x100000 --json
      cxlctl --sim poison mem0 --inject 0x3000 0x3000+64
    """
    app = app_of(ctx)
    (name,) = app.backend.select([memdev])
    rng = parse_range(range_) if range_ else None
    for dpa in inject:
        app.backend.inject_poison(name, _int(dpa))
    for dpa in clear:
        app.backend.clear_poison(name, _int(dpa))
    d = poison_json(app, name, rng)
    if fmt_of(output, as_json) == "json":
        rd.dump_json(rd.humanize([d]) if human else [d])
        return
    flags = ", ".join(f for f in ("more", "overflow", "scanning") if d[f]) or "none"
    title = f"{name} poison list (flags: {flags})"
    if d["overflow"]:
        title += f" overflowed at {d['overflow_timestamp']}: incomplete"
    rows = [(e["offset"], e["length"], e["source"]) for e in d["media_errors"]]
    rd.print_table(
        app.style, title, ("offset", "length", "source"), rows, simulated=app.backend.simulated
    )


@click.command("scan-media-caps", context_settings=CONTEXT)
@click.argument("memdev", shell_complete=complete.memdevs)
@click.argument("range_", metavar="RANGE")
@output_option("table", "json")
@click.pass_context
def scan_media_caps(
    ctx: click.Context, memdev: str, range_: str, output: str, as_json: bool
) -> None:
    """Estimate how long a Scan Media of RANGE would take (Get Scan Media Capabilities).

    Sent through the kernel's GET_SCAN_MEDIA_CAPS command (id 18). RANGE is
    START-END or START+LENGTH in bytes; both must be multiples of 64.

    \b
    Examples:
      cxlctl --sim scan-media-caps mem0 0x0-0x10000000
      cxlctl --sim scan-media-caps mem0 0x0+4096 --json
    """
    from ..mailbox.media import scan_media_caps_input

    app = app_of(ctx)
    (name,) = app.backend.select([memdev])
    start, length = parse_range(range_)
    if start % 64 or length % 64:
        raise UsageError(f"range {range_!r}: start and length must be multiples of 64 bytes")
    md = Memdev(app.backend, name)
    try:
        caps = md.decoded("get-scan-media-caps", scan_media_caps_input(start, length))
    finally:
        md.close()
    d = {"memdev": name, "offset": start, "length": length, **rd.to_data(caps)}
    if fmt_of(output, as_json) == "json":
        rd.dump_json([d])
        return
    rd.print_fields(
        app.style, f"{name}: Scan Media capabilities", d, simulated=app.backend.simulated
    )
