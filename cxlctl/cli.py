"""The command line: click commands, options, and the one error -> exit code place."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from . import __version__, uapi
from . import mailbox as mb
from . import render as rd
from .device import Backend, Memdev, open_backend
from .errors import CxlError, ExitCode, UsageError

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """Per-invocation state on ``ctx.obj``: backend (lazily), style, debug."""

    def __init__(self, backend_name: str | None, color: str, debug: bool) -> None:
        self.backend_name = backend_name
        self.style = rd.Style(color)
        self.debug = debug
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = open_backend(self.backend_name)
        return self._backend


def _fail(message: str, code: int, hint: str | None = None) -> NoReturn:
    line = f"cxlctl: {message}"
    if hint:
        line += f" (hint: {hint})"
    click.echo(line, err=True)
    raise click.exceptions.Exit(code)


class CxlGroup(click.Group):
    """Translates every :class:`CxlError` into one stderr line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv[1:] or bool(os.environ.get("CXLCTL_DEBUG"))
        try:
            rv = super().invoke(ctx)
            sys.stdout.flush()
            return rv
        except CxlError as e:
            if debug:
                raise
            _fail(e.message, int(e.exit_code), e.hint)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except OSError as e:  # anything the library did not classify
            if debug:
                raise
            _fail(f"{e.strerror or e}", int(ExitCode.FAILURE))


def _quiet_broken_pipe() -> NoReturn:
    # the reader went away (`| head`): stop quietly, like a SIGPIPE'd C tool
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise click.exceptions.Exit(int(ExitCode.BROKEN_PIPE))


def output_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``-o/--output`` plus ``--json`` as a shorthand for ``-o json``."""

    def deco(f: F) -> F:
        f = click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="JSON on stdout (same as -o json).",
        )(f)
        f = click.option(
            "-o",
            "--output",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(f)
        return f

    return deco


def _fmt(output: str, as_json: bool) -> str:
    return "json" if as_json else output


memdevs_argument = click.argument("memdevs", nargs=-1, metavar="[MEMDEV]...")


@click.group(cls=CxlGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="cxlctl")
@click.option(
    "--sim", is_flag=True, help="Use the bundled simulated devices (same as --backend sim)."
)
@click.option(
    "--backend",
    type=click.Choice(["kernel", "sim"]),
    envvar="CXLCTL_BACKEND",
    help="Where memdevs come from [env CXLCTL_BACKEND; default: kernel].",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour in tables (NO_COLOR is honoured).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, sim: bool, backend: str | None, color: str, debug: bool) -> None:
    """Administer Linux CXL memory devices (/dev/cxl/memN).

    Tables for people, stable JSON for scripts (--json), and a bundled simulator
    (--sim) that answers exactly like Linux 6.12 and a CXL type-3 device.

    \b
    Examples:
      cxlctl --sim list
      cxlctl --sim identify --json | jq '.[0].fw_revision'
      cxlctl query mem0
    """
    ctx.obj = App("sim" if sim else backend, color, debug)


def _app(ctx: click.Context) -> App:
    app: App = ctx.find_object(App)  # type: ignore[assignment]
    return app


# --- list -------------------------------------------------------------------------


def memdev_json(app: App, name: str, *, partition: bool, firmware: bool) -> dict[str, Any]:
    """One memdev as ``cxl list -M`` prints it (raw integers)."""
    info = app.backend.info(name)
    d: dict[str, Any] = {"memdev": info.memdev}
    if info.pmem_size:
        d["pmem_size"] = info.pmem_size
    if info.ram_size:
        d["ram_size"] = info.ram_size
    d["serial"] = info.serial
    if info.numa_node >= 0:
        d["numa_node"] = info.numa_node
    d["host"] = info.host
    d["firmware_version"] = info.firmware_version
    md = Memdev(app.backend, name)
    try:
        if partition:
            _optional(d, "partition_info", lambda: _partition_json(md))
        if firmware:
            _optional(d, "firmware", lambda: _firmware_json(md))
    finally:
        md.close()
    d["payload_max"] = info.payload_max
    d["label_storage_size"] = info.label_storage_size
    d["backend"] = info.backend
    return d


def _optional(d: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """cxl-cli leaves a block out when the device cannot answer; so do we."""
    try:
        d[key] = fn()
    except CxlError as e:
        if os.environ.get("CXLCTL_DEBUG"):
            click.echo(f"cxlctl: {key} left out: {e}", err=True)


def _partition_json(md: Memdev) -> dict[str, Any]:
    ident = md.identify()
    part = md.partition_info()
    return {
        "total_size": ident.total_capacity,
        "volatile_only_size": ident.volatile_only_capacity,
        "persistent_only_size": ident.persistent_only_capacity,
        "partition_alignment_size": ident.partition_align,
        **(
            {
                "active_volatile_size": part.active_volatile_capacity,
                "active_persistent_size": part.active_persistent_capacity,
                "next_volatile_size": part.next_volatile_capacity,
                "next_persistent_size": part.next_persistent_capacity,
            }
            if ident.partition_align
            else {}
        ),
    }


def _firmware_json(md: Memdev) -> dict[str, Any]:
    fw = md.fw_info()
    d: dict[str, Any] = {
        "num_slots": fw.num_slots,
        "active_slot": fw.active_slot,
    }
    if fw.staged_slot:
        d["staged_slot"] = fw.staged_slot
    d["online_activate_capable"] = fw.online_activate_capable
    for s in fw.slots:
        if s.version:
            d[f"slot_{s.slot}_version"] = s.version
    d["fw_update_in_progress"] = False
    return d


@main.command("list", context_settings=CONTEXT)
@memdevs_argument
@click.option("-I", "--partition", is_flag=True, help="Include partition information.")
@click.option("-F", "--firmware", is_flag=True, help="Include firmware information.")
@click.option("-u", "--human", is_flag=True, help="Human sizes and hex serials, as cxl -u.")
@output_option("table", "json")
@click.pass_context
def list_cmd(
    ctx: click.Context,
    memdevs: Sequence[str],
    partition: bool,
    firmware: bool,
    human: bool,
    output: str,
    as_json: bool,
) -> None:
    """List memdevs with size, serial, host and firmware.

    With no MEMDEV, lists every memdev. JSON is always an array of objects with
    cxl-cli's keys (memdev, pmem_size, ram_size, serial, host, firmware_version).

    \b
    Examples:
      cxlctl --sim list
      cxlctl --sim list -I -F -u --json
      cxlctl list mem0 --json | jq '.[].serial'
    """
    app = _app(ctx)
    names = app.backend.select(memdevs)
    data = [memdev_json(app, n, partition=partition, firmware=firmware) for n in names]
    if human:
        data = rd.humanize(data)
    if _fmt(output, as_json) == "json":
        rd.dump_json(data)
        return
    cols = ("memdev", "ram_size", "pmem_size", "serial", "host", "firmware_version", "backend")
    rows = [[d.get(c, 0 if c.endswith("size") else "") for c in cols] for d in data]
    rd.print_table(app.style, "CXL memdevs", cols, rows, simulated=app.backend.simulated)


# --- query ------------------------------------------------------------------------


def _var(n: int) -> int | None:
    return None if n == uapi.CXL_VARIABLE_PAYLOAD else n


@main.command(context_settings=CONTEXT)
@memdevs_argument
@output_option("table", "json")
@click.pass_context
def query(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Show the kernel's command table for a memdev (CXL_MEM_QUERY_COMMANDS).

    One row per entry the kernel returns, with its name, enabled/exclusive flags
    and payload sizes ("var" and JSON null mean variable length).

    \b
    Examples:
      cxlctl --sim query mem0
      cxlctl --sim query mem0 --json | jq '.[0].commands[] | select(.enabled) | .name'
    """
    app = _app(ctx)
    out: list[dict[str, Any]] = []
    for name in app.backend.select(memdevs):
        md = Memdev(app.backend, name)
        try:
            infos = md.query()
        finally:
            md.close()
        cmds: list[dict[str, Any]] = []
        for ci in infos:
            cat = mb.BY_KERNEL_ID.get(ci.id) if ci.id else None
            cmds.append(
                {
                    "index": ci.index,
                    "id": ci.id,
                    "name": cat.name if cat else None,
                    "kernel_name": uapi.COMMAND_NAMES.get(ci.id, f"id {ci.id}"),
                    "opcode": cat.opcode if cat else None,
                    "flags": ci.flags,
                    "enabled": ci.enabled,
                    "exclusive": ci.exclusive,
                    "size_in": _var(ci.size_in),
                    "size_out": _var(ci.size_out),
                }
            )
        out.append({"memdev": name, "commands": cmds})
    if _fmt(output, as_json) == "json":
        rd.dump_json(out)
        return
    for entry in out:
        rows = [
            (
                c["index"],
                c["id"],
                c["kernel_name"],
                f"{c['opcode']:#06x}" if c["opcode"] is not None else "-",
                " ".join(
                    f for f, on in (("ENABLED", c["enabled"]), ("EXCLUSIVE", c["exclusive"])) if on
                )
                or "-",
                "var" if c["size_in"] is None else c["size_in"],
                "var" if c["size_out"] is None else c["size_out"],
            )
            for c in entry["commands"]
        ]
        rd.print_table(
            app.style,
            f"{entry['memdev']}: kernel command table",
            ("index", "id", "name", "opcode", "flags", "size_in", "size_out"),
            rows,
            simulated=app.backend.simulated,
        )


# --- identify ---------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@memdevs_argument
@click.option("-u", "--human", is_flag=True, help="Human sizes in JSON.")
@output_option("table", "json")
@click.pass_context
def identify(
    ctx: click.Context, memdevs: Sequence[str], human: bool, output: str, as_json: bool
) -> None:
    """Decode Identify Memory Device (opcode 0x4000), every field.

    Capacities are in bytes (the device reports 256 MiB units).

    \b
    Examples:
      cxlctl --sim identify mem0
      cxlctl --sim identify --json | jq '.[] | {memdev, total_capacity}'
    """
    app = _app(ctx)
    out = []
    for name in app.backend.select(memdevs):
        md = Memdev(app.backend, name)
        try:
            out.append({"memdev": name, **rd.to_data(md.identify())})
        finally:
            md.close()
    if human:
        out = rd.humanize(out)
    if _fmt(output, as_json) == "json":
        rd.dump_json(out)
        return
    for d in out:
        rd.print_fields(app.style, f"{d['memdev']}: Identify", d, simulated=app.backend.simulated)


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
    app: App, name: str, what: str, decoder: Any, retval: int, out: bytes, fmt: str
) -> None:
    from .device import check_retval

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
        d["decoded"] = rd.to_data(decoder(out)) if decoder else rd.to_data(mb.decode_bytes(out))
    if fmt == "json":
        rd.dump_json([d])
    else:
        rd.print_fields(app.style, f"{name}: {what}", d, simulated=app.backend.simulated)
    check_retval(name, what, retval)


@main.command(context_settings=CONTEXT)
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
    app = _app(ctx)
    fmt = _fmt(output, as_json)
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
    _emit_result(app, name, cmd.name, cmd.decoder, res.retval, res.out, fmt)


@main.command(context_settings=CONTEXT)
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
    app = _app(ctx)
    fmt = _fmt(output, as_json)
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
    _emit_result(app, name, what, cat.decoder if cat else None, res.retval, res.out, fmt)


def run() -> None:
    """Console-script entry point."""
    try:
        main(prog_name="cxlctl")
    except BrokenPipeError:  # pragma: no cover - raised while click writes usage
        _quiet_broken_pipe()
