"""Offline decoding: decode a saved output payload (what ``send -o raw`` wrote)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import mailbox as mb
from .. import render as rd
from ..errors import DecodeError, UsageError
from . import CONTEXT, app_of, complete, fmt_of, output_option, read_payload
from .options import input_option


def _decoder(command: str) -> tuple[str, Callable[[bytes], Any]]:
    if command.strip().lower() in ("cel", "command-effects-log"):
        from ..mailbox.logs import decode_cel

        return "cel", decode_cel
    cmd = mb.lookup(command)
    if not cmd.has_decoder:
        raise UsageError(
            f"{cmd.name}: cxlctl has no decoder for {cmd.title}",
            hint="`cxlctl send ... -o hex` shows the bytes",
        )
    return cmd.name, cmd.decode


@click.command(context_settings=CONTEXT)
@click.argument("command", shell_complete=complete.catalogue_commands)
@click.argument("file", required=False, shell_complete=complete.files)
@input_option
@output_option()
@click.pass_context
def decode(
    ctx: click.Context,
    command: str,
    file: str | None,
    input_file: str | None,
    output: str,
    as_json: bool,
) -> None:
    """Decode a saved output payload of COMMAND from FILE (stdin if none).

    The same decoders as the live commands; COMMAND is a catalogue name or alias
    (identify, get-fw-info, health, ...) or "cel" for a Command Effects Log read
    with get-log. A short payload is an error; extra bytes are counted in
    trailing_bytes.

    \b
    Examples:
      cxlctl --sim send mem0 identify -o raw > id.bin && cxlctl decode identify id.bin
      cxlctl --sim get-log cel mem0 -o raw | cxlctl decode cel --json
    """
    app = app_of(ctx)
    name, fn = _decoder(command)
    if file is not None and input_file is not None:
        raise UsageError("give the payload once: FILE or -i/--input FILE")
    source = file if file is not None else input_file
    data = read_payload(source, "decode")
    try:
        value = fn(data)
    except DecodeError as e:  # the user's input, not the device: a usage error (exit 2)
        raise UsageError(
            f"decode: {source if source not in (None, '-') else 'stdin'}: {e.message}"
        ) from None
    d = {"command": name, "length": len(data), "decoded": rd.to_data(value)}
    if fmt_of(output, as_json) == "json":
        app.json(d)
        return
    rd.print_fields(app.style, f"decoded {name} ({len(data)} bytes)", d["decoded"])
