"""Pass-through commands: send (kernel command ids) and raw (RAW opcode path)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import mailbox as mb
from .. import render as rd
from .. import uapi
from ..device import Memdev
from ..errors import UsageError
from . import CONTEXT, App, F, app_of, fmt_of, output_option

# --- send / raw ---------------------------------------------------------------------


def _read_input(hex_in: str | None, file_in: str | None) -> bytes:
    if hex_in is not None and file_in is not None:
        raise UsageError("give the input payload with --input or --input-file, not both")
    if hex_in is not None:
        text = "".join(hex_in.split()).removeprefix("0x")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise UsageError(f"--input: {hex_in!r} is not hex bytes") from None
    if file_in is not None:
        limit = 1 << 20  # no payload exceeds 1 MiB (payload_max's maximum)
        if file_in == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            try:
                with open(file_in, "rb") as f:
                    data = f.read(limit + 1)
            except OSError as e:
                raise UsageError(f"--input-file: {file_in}: {e.strerror}") from None
        if len(data) > limit:
            raise UsageError(f"--input-file: {file_in}: larger than 1 MiB")
        return data
    return b""


def _int(value: str, what: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise UsageError(f"{what}: {value!r} is not a number") from None


def payload_options(f: F) -> F:
    f = click.option(
        "--out-size",
        metavar="BYTES",
        help="out.size to offer the kernel [default: payload_max; 0 for no-output commands].",
    )(f)
    f = click.option(
        "-f", "--input-file", metavar="FILE", help="Input payload from FILE ('-' for stdin)."
    )(f)
    f = click.option("-i", "--input", "hex_in", metavar="HEX", help="Input payload as hex bytes.")(
        f
    )
    f = click.option(
        "--dry-run", is_flag=True, help="Print the struct cxl_send_command; send nothing."
    )(f)
    return f


def _dry_run(name: str, req: Any, fmt: str) -> None:
    s = req.struct()
    d = {
        "memdev": name,
        "ioctl": uapi.CXL_MEM_SEND_COMMAND,
        "id": int(s.id),
        "flags": int(s.flags),
        "raw_opcode": int(s.raw.opcode),
        "rsvd": int(s.rsvd),
        "in_size": int(s.in_.size),
        "in_payload": req.payload.hex(),
        "out_size": int(s.out.size),
        "struct": bytes(s).hex(),
    }
    if fmt == "json":
        rd.dump_json(d)
        return
    click.echo(f"ioctl(/dev/cxl/{name}, CXL_MEM_SEND_COMMAND={uapi.CXL_MEM_SEND_COMMAND:#x}, {{")
    click.echo(
        f"  .id = {d['id']} ({uapi.COMMAND_NAMES.get(d['id'], '?')}), .flags = {d['flags']:#x},"
    )
    click.echo(f"  .raw.opcode = {d['raw_opcode']:#06x}, .retval = 0,")
    click.echo(f"  .in  = {{ .size = {d['in_size']}, .payload = <{d['in_size']} bytes> }},")
    click.echo(f"  .out = {{ .size = {d['out_size']}, .payload = <{d['out_size']} bytes> }} }})")
    click.echo(f"struct (payload pointers shown as 0): {d['struct']}")
    if req.payload:
        click.echo("input payload:")
        click.echo(rd.hexdump(req.payload))


def _emit_result(
    app: App, name: str, what: str, cmd: mb.Command | None, retval: int, out: bytes, fmt: str
) -> None:
    from ..device import check_retval

    if fmt == "raw":
        check_retval(name, what, retval)
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
        return
    if fmt == "hex":
        check_retval(name, what, retval)
        click.echo(rd.hexdump(out) if out else "(no output payload)")
        return
    d: dict[str, Any] = {
        "memdev": name,
        "command": what,
        "retval": retval,
        "return_code": mb.return_code_name(retval),
        "out_size": len(out),
    }
    if retval == mb.ReturnCode.SUCCESS and out:
        d["decoded"] = rd.to_data(cmd.decode(out) if cmd else mb.BY_NAME["get-log"].decode(out))
    if fmt == "json":
        rd.dump_json([d])
    else:
        rd.print_fields(app.style, f"{name}: {what}", d, simulated=app.backend.simulated)
    check_retval(name, what, retval)


@click.command(context_settings=CONTEXT)
@click.argument("memdev")
@click.argument("command", metavar="COMMAND")
@payload_options
@output_option("table", "json", "hex", "raw")
@click.pass_context
def send(
    ctx: click.Context,
    memdev: str,
    command: str,
    hex_in: str | None,
    input_file: str | None,
    out_size: str | None,
    dry_run: bool,
    output: str,
    as_json: bool,
) -> None:
    """Send a kernel command (CXL_MEM_SEND_COMMAND) by name or id.

    COMMAND is a name from `cxlctl query` (identify, get-fw-info, get-lsa, ...),
    a kernel enum name (GET_LSA) or a numeric id. Output is decoded (table/json),
    a hex dump, or the raw bytes (-o raw) to save and `decode` later.

    \b
    Examples:
      cxlctl --sim send mem0 identify
      cxlctl --sim send mem0 identify -o raw > id.bin
      cxlctl --sim send mem0 get-lsa -i '00000000 40000000' -o hex
      cxlctl --sim send mem0 get-timestamp --dry-run
    """
    app = app_of(ctx)
    fmt = fmt_of(output, as_json)
    cmd = mb.lookup(command)
    payload = _read_input(hex_in, input_file)
    name = app.backend.memdev(memdev).name
    md = Memdev(app.backend, name)
    try:
        req = md.request(cmd, payload, None if out_size is None else _int(out_size, "--out-size"))
        if dry_run:
            _dry_run(name, req, fmt)
            return
        res = md.submit(req, cmd.name)
    finally:
        md.close()
    _emit_result(app, name, cmd.name, cmd, res.retval, res.out, fmt)


@click.command(context_settings=CONTEXT)
@click.argument("memdev")
@click.argument("opcode")
@payload_options
@output_option("table", "json", "hex", "raw", default="hex")
@click.pass_context
def raw(
    ctx: click.Context,
    memdev: str,
    opcode: str,
    hex_in: str | None,
    input_file: str | None,
    out_size: str | None,
    dry_run: bool,
    output: str,
    as_json: bool,
) -> None:
    """Send any mailbox OPCODE through the kernel's RAW command.

    Stock kernels are built without CONFIG_CXL_MEM_RAW_COMMANDS and answer EPERM;
    even with it, the kernel refuses opcodes that would bypass it (Set LSA, Set
    Partition Info, Activate FW, poison and security commands...).

    \b
    Examples:
      cxlctl --sim raw mem0 0x4000 --dry-run
      CXLCTL_SIM_RAW=1 cxlctl --sim raw mem0 0x4000 -o json
    """
    app = app_of(ctx)
    fmt = fmt_of(output, as_json)
    op = _int(opcode, "OPCODE")
    payload = _read_input(hex_in, input_file)
    name = app.backend.memdev(memdev).name
    md = Memdev(app.backend, name)
    cat = mb.BY_OPCODE.get(op) if 0 <= op <= 0xFFFF else None
    what = f"raw {op:#06x}" + (f" ({cat.name})" if cat else "")
    try:
        req = md.raw_request(
            op, payload, None if out_size is None else _int(out_size, "--out-size")
        )
        if dry_run:
            _dry_run(name, req, fmt)
            return
        res = md.submit(req, what)
    finally:
        md.close()
    _emit_result(app, name, what, cat, res.retval, res.out, fmt)
