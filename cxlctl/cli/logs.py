"""Log commands: logs (Get Supported Logs), cel, get-log, log-caps."""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Sequence
from typing import Any

import click

from .. import mailbox as mb
from .. import render as rd
from ..errors import UsageError
from ..memdev import Memdev
from . import CONTEXT, app_of, complete, fmt_of, memdevs_argument, output_option, selected
from .info import Row, each_memdev, emit
from .options import Size, deprecated, range_options


def resolve_log(spec: str) -> str:
    """``cel``, ``vendor-debug``, ``component-state-dump`` or a UUID -> canonical UUID."""
    key = spec.strip().lower()
    if key in mb.LOG_ALIASES:
        return mb.LOG_ALIASES[key]
    try:
        return str(_uuid.UUID(key))
    except ValueError:
        names = ", ".join(mb.LOG_ALIASES)
        raise UsageError(f"{spec!r} is not a log UUID or name ({names})") from None


def _log_name(log_uuid: str) -> str:
    return mb.KNOWN_LOGS.get(log_uuid, "unknown")


log_argument = click.argument("log", metavar="LOG", shell_complete=complete.logs)


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def logs(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """List the logs a device keeps (Get Supported Logs, opcode 0x0400).

    Each log with its UUID, its spec name ("unknown" for vendor logs) and the
    size in bytes the device advertises.

    \b
    Examples:
      cxlctl --sim logs
      cxlctl --sim logs mem0 --json | jq '.[0].logs[].name'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: rd.to_data(md.supported_logs()))
    fmt = fmt_of(output, as_json)
    if fmt == "json":
        app.json(rows)
        return
    for d in rows:
        rd.print_table(
            app.style,
            f"{d['memdev']}: supported logs",
            ("uuid", "name", "size"),
            [(e["uuid"], e["name"], e["size"]) for e in d["logs"]],
            simulated=app.backend.simulated,
        )


def _read_log(md: Memdev, log_uuid: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join(md.iter_log(log_uuid, offset, length))


def _cel(md: Memdev) -> Row:
    from ..mailbox.logs import decode_cel

    cel = decode_cel(_read_log(md, mb.CEL_UUID))
    d: Row = rd.to_data(cel)
    return d


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def cel(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode the Command Effects Log: every opcode the device supports.

    Read with Get Log in payload_max pages (the size comes from Get Supported
    Logs). Each entry: opcode, cxlctl's command name, the spec title, the raw
    effect field and every effect bit by name.

    \b
    Examples:
      cxlctl --sim cel mem0
      cxlctl --sim cel mem0 --json | jq '.[0].entries[] | select(.effects.background_operation)'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, _cel)
    fmt = fmt_of(output, as_json)
    if fmt == "json":
        app.json(rows)
        return
    for d in rows:
        table = []
        for e in d["entries"]:
            on = [k for k, v in e["effects"].items() if v is True]
            table.append((f"{e['opcode']:#06x}", e["name"] or "-", e["title"], e["effect"], on))
        rd.print_table(
            app.style,
            f"{d['memdev']}: Command Effects Log",
            ("opcode", "name", "title", "effect", "effects"),
            table,
            simulated=app.backend.simulated,
        )


def _log_and_memdevs(log: str, memdevs: Sequence[str], verb: str) -> tuple[str, list[str]]:
    """MEMDEV... LOG; the old order (LOG MEMDEV..., before 0.3) still works with a
    warning when the last argument is a memdev and the first a log."""
    from ..backends import memdev_name

    def is_memdev(a: str) -> bool:
        try:
            memdev_name(a.split(",")[0])
        except UsageError:
            return a.strip() == "all"
        return True

    def is_log(a: str) -> bool:
        try:
            resolve_log(a)
        except UsageError:
            return False
        return True

    if memdevs and is_memdev(log) and not is_log(log) and is_log(memdevs[0]):
        old = [memdevs[0], *memdevs[1:], log]
        deprecated(
            f"`{verb} {' '.join(old)}` is the old argument order; "
            f"write `{verb} {' '.join(old[1:])} {old[0]}` (MEMDEV first)"
        )
        return memdevs[0], [*memdevs[1:], log]
    return log, list(memdevs)


@click.command("get-log", context_settings=CONTEXT)
@memdevs_argument
@log_argument
@range_options("bytes of the log")
@click.option("--length", "length_old", type=Size(), hidden=True, help="Old name of --size.")
@output_option("hex", "raw", default="hex")
@click.pass_context
def get_log(
    ctx: click.Context,
    memdevs: Sequence[str],
    log: str,
    offset: int | None,
    size: int | None,
    length_old: int | None,
    output: str,
    as_json: bool,
) -> None:
    """Read a log (Get Log, opcode 0x0401) by UUID or name.

    LOG is a UUID or one of cel, vendor-debug, component-state-dump. The range
    (-O/--offset, -s/--size) is checked against the size Get Supported Logs
    advertises before anything is sent (devices misbehave on ranges they never
    advertised); the log is read in payload_max pages. -o hex is an xxd dump
    (reversible with xxd -r); -o raw writes the bytes (one MEMDEV).

    \b
    Examples:
      cxlctl --sim get-log mem0 cel
      cxlctl --sim get-log mem0 vendor-debug -o raw > debug.bin
      cxlctl --sim get-log mem0 cel -O 8 -s 16 --json
    """
    app = app_of(ctx)
    fmt = fmt_of(output, as_json)
    log, memdevs = _log_and_memdevs(log, memdevs, "get-log")
    log_uuid = resolve_log(log)
    if length_old is not None:
        deprecated("--length is now -s/--size")
        size = size if size is not None else length_old
    off = offset or 0
    ln = size
    if ln == 0:
        raise UsageError("--size: must be at least 1")
    names = selected(ctx, memdevs)
    if fmt == "raw":
        if len(names) != 1:
            raise UsageError("-o raw needs exactly one MEMDEV")
        md = Memdev(app.backend, names[0])
        try:
            for chunk in md.iter_log(log_uuid, off, ln):
                rd.write_stdout(chunk)
        finally:
            md.close()
        return

    def read(md: Memdev) -> Row:
        data = _read_log(md, log_uuid, off, ln)
        return {
            "uuid": log_uuid,
            "name": _log_name(log_uuid),
            "offset": off,
            "length": len(data),
            "data": data.hex(),
        }

    rows = each_memdev(app, names, read, names=True)
    if fmt == "json":
        app.json(rows)
        return
    for d in rows:
        if fmt != "hex":
            rd.print_fields(
                app.style,
                f"{d['memdev']}: {d['name']} log",
                {k: v for k, v in d.items() if k not in ("memdev", "data")},
                simulated=app.backend.simulated,
            )
        elif len(rows) > 1:
            click.echo(
                f"cxlctl: {d['memdev']}: {d['name']} ({d['uuid']}), {d['length']} bytes "
                f"at offset {d['offset']}",
                err=True,
            )
        click.echo(rd.hexdump(bytes.fromhex(d["data"]), base=d["offset"]))


def _log_caps(md: Memdev, log_uuid: str) -> Row:
    d: dict[str, Any] = {"uuid": log_uuid, "name": _log_name(log_uuid)}
    d.update(rd.to_data(md.log_caps(log_uuid)))
    return d


@click.command("log-caps", context_settings=CONTEXT)
@memdevs_argument
@log_argument
@output_option()
@click.pass_context
def log_caps(
    ctx: click.Context, memdevs: Sequence[str], log: str, output: str, as_json: bool
) -> None:
    """Decode Get Log Capabilities (opcode 0x0402) for one log.

    Whether the log can be cleared or populated, populates itself, and survives
    a cold reset. LOG is a UUID or cel, vendor-debug, component-state-dump.

    \b
    Examples:
      cxlctl --sim log-caps mem0 cel
      cxlctl --sim log-caps vendor-debug --json
    """
    app = app_of(ctx)
    log, memdevs = _log_and_memdevs(log, memdevs, "log-caps")
    log_uuid = resolve_log(log)
    rows = each_memdev(app, memdevs, lambda md: _log_caps(md, log_uuid))
    emit(app, rows, fmt_of(output, as_json), "Log Capabilities")
