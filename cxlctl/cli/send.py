"""Pass-through commands: send (kernel command ids) and raw (RAW opcode path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from .. import mailbox as mb
from .. import render as rd
from ..errors import UsageError
from ..memdev import MAX_PAYLOAD, RAW_ID, Memdev, SendRequest, describe_send, kernel_command_name
from . import CONTEXT, App, F, app_of, complete, fmt_of, output_option, read_payload
from .options import Size, deprecated, memdev_argument, one_memdev

# --- send / raw ---------------------------------------------------------------------


def _hex(text: str, what: str) -> bytes:
    clean = "".join(text.split()).removeprefix("0x")
    try:
        if not clean.isascii():
            raise ValueError
        return bytes.fromhex(clean)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not hex bytes") from None


def _read_input(opts: dict[str, Any]) -> bytes:
    """The input payload: -x/--hex HEX or -i/--input FILE ('-': stdin).

    Before 0.3, -i took hex and -f/--input-file a file: both still work, with a
    warning (a -i value that names no file and reads as hex is taken as hex)."""
    hex_in, file_in, old_file = opts["hex_in"], opts["input_file"], opts["input_file_old"]
    if old_file is not None:
        deprecated("-f/--input-file is now -i/--input FILE (-f is --force everywhere)")
        if file_in is not None:
            raise UsageError("give the input file once: -i/--input FILE")
        file_in = old_file
    if file_in is not None and file_in != "-" and not os.path.exists(file_in):
        try:
            data = _hex(file_in, "-i")
        except UsageError:
            data = None
        if data is not None and hex_in is None:
            deprecated(f"-i now takes a FILE; for hex bytes write -x {file_in!r}")
            hex_in, file_in = file_in, None
    if hex_in is not None and file_in is not None:
        raise UsageError("give the input payload with -x/--hex or -i/--input FILE, not both")
    if hex_in is not None:
        return _hex(hex_in, "--hex")
    if file_in is not None:
        return read_payload(file_in, "--input")
    return b""


def _int(value: str, what: str) -> int:
    from ..units import parse_int

    return parse_int(value, what, units=False)


def _swapped(memdev: str, other: str, verb: str, what: str) -> None:
    """``send identify mem0``: say the order is MEMDEV first instead of calling
    mem0 an unknown command."""
    from ..backends import memdev_name

    def is_memdev(a: str) -> bool:
        try:
            memdev_name(a)
        except UsageError:
            return False
        return not a.strip().isdigit()

    if is_memdev(other) and not is_memdev(memdev):
        raise UsageError(
            f"{verb}: MEMDEV comes first: write `cxlctl {verb} {other} {memdev}` "
            f"({other!r} is a memdev, not a {what})"
        )


_FIELDS = {
    "rsvd": "rsvd",
    "raw.rsvd": "raw_rsvd",
    "in.size": "in_size",
    "in.rsvd": "in_rsvd",
    "out.rsvd": "out_rsvd",
}


def payload_options(f: F) -> F:
    f = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Set a struct field to probe the kernel's checks: "
        + ", ".join(_FIELDS)
        + " (buffers grow to match).",
    )(f)
    f = click.option(
        "--flags", type=Size(32, units=False), help="The struct's flags field [default: 0]."
    )(f)
    f = click.option(
        "--out-size",
        type=Size(32, maximum=MAX_PAYLOAD),
        help="out.size to offer the kernel [default: payload_max; 0 for no-output commands].",
    )(f)
    f = click.option(
        "-f",
        "--input-file",
        "input_file_old",
        metavar="FILE",
        hidden=True,
        help="Old name of -i/--input FILE.",
    )(f)
    f = click.option(
        "-i",
        "--input",
        "input_file",
        metavar="FILE",
        shell_complete=complete.files,
        help="Input payload from FILE ('-' for stdin).",
    )(f)
    f = click.option(
        "-x", "--hex", "hex_in", metavar="HEX", help="Input payload as hex bytes ('00 40 00 00')."
    )(f)
    f = click.option(
        "--dry-run", is_flag=True, help="Print the struct cxl_send_command; send nothing."
    )(f)
    return f


def _overrides(req: SendRequest, flags: int | None, sets: tuple[str, ...]) -> SendRequest:
    changes: dict[str, int] = {}
    if flags is not None:
        changes["flags"] = flags
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or key not in _FIELDS:
            raise UsageError(
                f"--set {item!r}: expected FIELD=VALUE with FIELD in {', '.join(_FIELDS)}"
            )
        changes[_FIELDS[key]] = _int(value, f"--set {key}")
    for k, v in changes.items():
        limit = {"in_size": MAX_PAYLOAD, "raw_rsvd": 0xFFFF}.get(k, 0xFFFFFFFF)
        if not 0 <= v <= limit:
            raise UsageError(f"{k.replace('_', '.', 1)}={v} is out of range (0..{limit})")
    return SendRequest(
        id=req.id,
        payload=req.payload,
        out_size=req.out_size,
        raw_opcode=req.raw_opcode,
        flags=changes.get("flags", req.flags),
        in_size=changes.get("in_size", req.in_size),
        rsvd=changes.get("rsvd", req.rsvd),
        raw_rsvd=changes.get("raw_rsvd", req.raw_rsvd),
        in_rsvd=changes.get("in_rsvd", req.in_rsvd),
        out_rsvd=changes.get("out_rsvd", req.out_rsvd),
    )


def _dry_run(app: App, name: str, req: SendRequest, fmt: str) -> None:
    d = describe_send(name, req)
    if fmt == "json":  # an array, as every per-memdev command's JSON
        app.json([d])
        return
    click.echo(f"ioctl(/dev/cxl/{name}, CXL_MEM_SEND_COMMAND={d['ioctl']:#x}, {{")
    click.echo(
        f"  .id = {d['id']} ({kernel_command_name(d['id']) or '?'}), .flags = {d['flags']:#x},"
    )
    if d["id"] == RAW_ID:
        raw_f = f".opcode = {d['raw_opcode']:#06x}, .rsvd = {d['raw_rsvd']}"
        click.echo(f"  .raw = {{ {raw_f} }}, .retval = 0,")
    else:
        click.echo(f"  .rsvd = {d['rsvd']:#x}, .retval = 0,")
    click.echo(
        f"  .in  = {{ .size = {d['in_size']}, .rsvd = {d['in_rsvd']},"
        f" .payload = <{d['in_size']} bytes> }},"
    )
    click.echo(
        f"  .out = {{ .size = {d['out_size']}, .rsvd = {d['out_rsvd']},"
        f" .payload = <{d['out_size']} bytes> }} }})"
    )
    click.echo(f"struct (payload pointers shown as 0): {d['struct']}")
    if req.payload:
        click.echo("input payload:")
        click.echo(rd.hexdump(req.payload))


def _emit_result(
    app: App,
    name: str,
    what: str,
    cmd: mb.Command[Any] | None,
    retval: int,
    out: bytes,
    fmt: str,
    why: str | None = None,
) -> None:
    """The answer in ``fmt``; a non-Success return code is an error (exit 3) that
    says, where the command's record can tell, which field the device refused."""
    from ..memdev import check_retval

    if fmt == "raw":
        check_retval(name, what, retval, why)
        rd.write_stdout(out)
        return
    if fmt == "hex":
        check_retval(name, what, retval, why)
        click.echo(rd.hexdump(out) if out else "(no output payload)")
        return
    d: dict[str, Any] = {
        "memdev": name,
        "command": what,
        "retval": retval,
        "return_code": mb.return_code_name(retval),
        "out_size": len(out),
    }
    if why:
        d["explanation"] = why
    if retval == mb.ReturnCode.SUCCESS and out:
        d["decoded"] = rd.to_data(cmd.decode(out) if cmd else mb.BY_NAME["get-log"].decode(out))
    if fmt == "json":  # scripts get the return code in the JSON too
        app.json([d])
    elif retval == mb.ReturnCode.SUCCESS:
        rd.print_fields(app.style, f"{name}: {what}", d, simulated=app.backend.simulated)
    check_retval(name, what, retval, why)


def _issue(
    ctx: click.Context,
    memdev: str,
    build: Callable[[Memdev], SendRequest],
    what: str,
    cmd: mb.Command[Any] | None,
    opts: dict[str, Any],
) -> None:
    app = app_of(ctx)
    fmt = fmt_of(opts["output"], opts["as_json"])
    name = one_memdev(ctx, memdev)
    md = Memdev(app.backend, name)
    try:
        req = _overrides(build(md), opts["flags"], opts["sets"])
        if opts["dry_run"]:
            _dry_run(app, name, req, fmt)
            return
        res = md.submit(req, what)
        why = None
        if res.retval != mb.ReturnCode.SUCCESS and cmd is not None and cmd.opcode:
            why = md.explain(cmd, res.retval, req.payload)
    finally:
        md.close()
    _emit_result(app, name, what, cmd, res.retval, res.out, fmt, why)


def _out_size(opts: dict[str, Any]) -> int | None:
    v: int | None = opts["out_size"]
    return v


def _command(spec: str) -> mb.Command[Any]:
    """A catalogue command, or a bare numeric kernel id passed through unchecked."""
    try:
        return mb.lookup(spec)
    except UsageError as unknown:
        try:
            n = int(spec, 0)
        except ValueError:
            raise unknown from None
        if not 0 <= n <= 0xFFFFFFFF:
            raise unknown from None
        return mb.Command(
            f"id {n}", kernel_command_name(n) or "unknown", 0, n, None, None, mb.undecoded
        )


@click.command(context_settings=CONTEXT)
@memdev_argument
@click.argument("command", metavar="COMMAND", shell_complete=complete.kernel_commands)
@payload_options
@output_option("hex", "raw")
@click.pass_context
def send(ctx: click.Context, /, memdev: str, command: str, **opts: Any) -> None:
    """Send a kernel command (CXL_MEM_SEND_COMMAND) by name or id.

    COMMAND is a name from `cxlctl query` (identify, get-fw-info, get-lsa, ...),
    a kernel enum name (GET_LSA) or a numeric id (any number is passed to the
    kernel as is). Output is decoded (table/json), a hex dump, or the raw bytes
    (-o raw) to save and `decode` later. --flags and --set write the struct's
    other fields, to see what the kernel says.

    \b
    Examples:
      cxlctl --sim send mem0 identify
      cxlctl --sim send mem0 identify -o raw > id.bin
      cxlctl --sim send mem0 get-lsa -x '00000000 40000000' -o hex
      cxlctl --sim send mem0 get-timestamp --dry-run
      cxlctl --sim send mem0 identify --set in.rsvd=1
    """
    _swapped(memdev, command, "send", "COMMAND")
    cmd = _command(command)
    payload = _read_input(opts)
    _issue(ctx, memdev, lambda md: md.request(cmd, payload, _out_size(opts)), cmd.name, cmd, opts)


@click.command(context_settings=CONTEXT)
@memdev_argument
@click.argument("opcode", shell_complete=complete.opcodes)
@payload_options
@output_option("hex", "raw", default="hex")
@click.pass_context
def raw(ctx: click.Context, /, memdev: str, opcode: str, **opts: Any) -> None:
    """Send any mailbox OPCODE through the kernel's RAW command.

    Stock kernels are built without CONFIG_CXL_MEM_RAW_COMMANDS and answer EPERM;
    even with it, the kernel refuses opcodes that would bypass it (Set LSA, Set
    Partition Info, Activate FW, poison and security commands...).

    \b
    Examples:
      cxlctl --sim raw mem0 0x4000 --dry-run
      CXLCTL_SIM_RAW=1 cxlctl --sim raw mem0 0x4000 -o json
    """
    _swapped(memdev, opcode, "raw", "OPCODE")
    op = _int(opcode, "OPCODE")
    if not 0 <= op <= 0xFFFF:
        raise UsageError(f"OPCODE {opcode} does not fit in 16 bits")
    payload = _read_input(opts)
    cat = mb.BY_OPCODE.get(op)
    what = f"raw {op:#06x}" + (f" ({cat.name})" if cat else "")
    _issue(ctx, memdev, lambda md: md.raw_request(op, payload, _out_size(opts)), what, cat, opts)
