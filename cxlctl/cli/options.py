"""The grammar's building blocks: every command takes its arguments and options from here.

docs/cli-grammar.md is the rule book; tests/test_grammar.py walks the whole click
tree and fails when a command drifts from it.  In short::

    cxlctl VERB [MEMDEV...] [ARG...] [OPTIONS]

* ``memdevs_argument`` (read verbs: none or ``all`` = every memdev) and
  ``memdevs_required`` (verbs that change a device: a MEMDEV or ``all``), both with
  ``-S/--serial``; resolve them with :func:`selected` (the library's
  :meth:`cxlctl.backends.Backend.select` does the work).
* ``output_option()``: ``-o/--output table|wide|plain|json|jsonl`` (``+ hex|raw``
  where bytes are printed), ``--json`` (= ``-o json``) and ``-u/--human``.
* :class:`Size` (``SIZE``) is the one integer type: sizes, offsets, lengths,
  addresses, counts, thresholds.  ``Size(bits=16)``, ``Size(units=False)``,
  ``Size(minimum=1, maximum=100)``, ``Size(signed=True, bits=16)``.
* :class:`Duration` (``MS``): milliseconds (``500``, ``2s``), as cxl-cli/nvme-cli.
* ``input_option`` (``-i/--input FILE``, ``-`` = stdin), ``output_file_option``
  (``--output-file FILE``), ``force_option`` (``-f/--force``: override a safety
  check), ``range_options`` (``-O/--offset``, ``-s/--size``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ..errors import UsageError
from . import complete

F = TypeVar("F", bound=Callable[..., Any])

#: -o choices every data-printing command has, in this order.
FORMATS = ("table", "wide", "plain", "json", "jsonl")
#: extra -o choices where a command prints bytes.
BYTE_FORMATS = ("hex", "raw")


# --- numbers ------------------------------------------------------------------------


class Size(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """The one bounded integer type: ``0x…``, decimal, ``K/M/G/T`` (``KiB``, ``MiB``
    ...; binary, as cxl-cli), range-checked against the field width (``bits``) and
    ``minimum``/``maximum``; minus signs (unless ``signed``), non-ASCII digits,
    overflow are usage errors (exit 2, one line)."""

    name = "size"

    def __init__(
        self,
        bits: int = 64,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        units: bool = True,
        signed: bool = False,
        metavar: str | None = None,
    ) -> None:
        self.bits = bits
        self.minimum = minimum if not signed or minimum else -(1 << (bits - 1))
        self.maximum = maximum
        self.units = units
        self.signed = signed
        self.metavar = metavar or ("SIZE" if units else "N")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        what = _param_name(param)
        try:
            from ..units import parse_int

            return parse_int(
                value,
                what,
                bits=self.bits,
                minimum=self.minimum,
                maximum=self.maximum,
                units=self.units,
                signed=self.signed,
            )
        except UsageError as e:
            self.fail(e.message.removeprefix(f"{what}: "), param, ctx)

    def __repr__(self) -> str:
        return f"Size(bits={self.bits})"


class Duration(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """Milliseconds: ``500``, ``500ms``, ``2s``, ``1m`` (cxl-cli and nvme-cli take ms)."""

    name = "ms"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "MS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        what = _param_name(param)
        try:
            from ..units import parse_ms

            return parse_ms(str(value), what)
        except UsageError as e:
            self.fail(e.message.removeprefix(f"{what}: "), param, ctx)


def _param_name(param: click.Parameter | None) -> str:
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return (param.human_readable_name if param else "value") or "value"


# --- memdev selection -----------------------------------------------------------------


class MemdevArgument(click.Argument):
    """``[MEMDEV]...`` / ``MEMDEV...``; ``change`` marks verbs that change a device
    (they need an explicit MEMDEV or ``all``).  The grammar test looks for it."""

    def __init__(self, *args: Any, change: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.change = change


SERIAL_HELP = "MEMDEV arguments are serial numbers (decimal or 0x hex), as cxl-cli -S."


def _serial_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta["cxlctl.serial"] = value
    return value


serial_option = click.option(
    "-S",
    "--serial",
    "serial",
    is_flag=True,
    expose_value=False,
    callback=_serial_callback,
    help=SERIAL_HELP,
)


def _complete_memdevs(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    """Memdev names; when none fits, what the next positional (LOG, COMMAND...)
    offers, since MEMDEV... comes first and click gives it every word."""
    items = complete.memdevs(ctx, param, incomplete)
    if items or ctx.command is None:
        return items
    params = ctx.command.params
    later = params[params.index(param) + 1 :] if param in params else []
    for p in later:
        if isinstance(p, click.Argument) and not isinstance(p, MemdevArgument):
            return p.shell_complete(ctx, incomplete)
    return items


def _memdevs(change: bool, name: str = "memdevs") -> Callable[[F], F]:
    def deco(f: F) -> F:
        f = serial_option(f)
        return click.argument(
            name,
            cls=MemdevArgument,
            change=change,
            nargs=-1,
            metavar="MEMDEV..." if change else "[MEMDEV]...",
            shell_complete=_complete_memdevs,
        )(f)

    return deco


#: ``[MEMDEV]...`` for verbs that read: none or ``all`` = every memdev.
memdevs_argument = _memdevs(change=False)
#: ``MEMDEV...`` for verbs that change a device: at least one, or ``all``.
memdevs_required = _memdevs(change=True)


def _one(f: F) -> F:
    f = serial_option(f)
    return click.argument(
        "memdev", cls=MemdevArgument, shell_complete=complete.memdevs, metavar="MEMDEV"
    )(f)


#: ``MEMDEV`` for the pass-through verbs (send, raw): exactly one device.
memdev_argument = _one


def one_memdev(ctx: click.Context, memdev: str) -> str:
    """The one memdev MEMDEV (any accepted form) names; ``all`` or a list is an error."""
    backend = ctx.find_root().obj.backend
    names: list[str] = backend.select([memdev], serial=bool(ctx.meta.get("cxlctl.serial")))
    if len(names) != 1 or memdev.strip() == "all":
        verb = ctx.info_name or "this verb"
        raise UsageError(f"{verb} takes one MEMDEV ({memdev!r} selects {len(names)})")
    return names[0]


def selected(ctx: click.Context, memdevs: Sequence[str]) -> list[str]:
    """The memdev names MEMDEV... (and -S) select, through the library."""
    arg = next((p for p in _command_of(ctx).params if isinstance(p, MemdevArgument)), None)
    change = bool(arg and arg.change)
    backend = ctx.find_root().obj.backend
    names: list[str] = backend.select(
        memdevs, serial=bool(ctx.meta.get("cxlctl.serial")), explicit=change
    )
    return names


def _command_of(ctx: click.Context) -> click.Command:
    assert ctx.command is not None
    return ctx.command


# --- output -------------------------------------------------------------------------


def _output_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"cxlctl.{param.name}"] = value
    return value


#: ``-u/--human`` (output_option includes it): the command reads it from ``App.human``.
human_option = click.option(
    "-u",
    "--human",
    "human",
    is_flag=True,
    expose_value=False,
    callback=_output_callback,
    help="Human sizes (256.00 MiB) and hex numbers in JSON, as cxl -u.",
)


def output_option(*choices: str, default: str | None = "table") -> Callable[[F], F]:
    """``-o/--output FORMAT`` with the standard formats (plus ``hex``/``raw`` when
    CHOICES name them), ``--json`` (same as ``-o json``) and ``-u/--human``
    (cxl-cli's human sizes and hex numbers in JSON).

    The command receives ``output`` and ``as_json``; :func:`fmt_of` folds them
    into one format (``jsonl`` reads as ``json``: :meth:`App.json` writes one
    object per line).  The table mode (table/wide/plain) reaches render.py
    through the App's style, so every ``print_table`` honours it.
    """
    extra = tuple(c for c in choices if c not in FORMATS)
    unknown = [c for c in extra if c not in BYTE_FORMATS]
    if unknown:
        raise ValueError(f"unknown output formats {unknown}")
    allowed = FORMATS + extra

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            _apply_output(ctx, kwargs.get("output") or "table", bool(kwargs.get("as_json")))
            return f(*args, **kwargs)

        g: Any = human_option(wrapper)
        g = click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="JSON on stdout (same as -o json).",
        )(g)
        g = click.option(
            "-o",
            "--output",
            type=click.Choice(allowed),
            default=default,
            show_default=default is not None,
            help="Output format: table, wide (every column), plain (no boxes; for "
            "grep/awk), json, jsonl (one object per line)"
            + (", hex (xxd dump), raw (the bytes)" if extra else "")
            + ("." if default is not None else " [default: one line per memdev on stderr]."),
        )(g)
        out: F = g
        return out

    return deco


def apply_output(ctx: click.Context, output: str, as_json: bool) -> None:
    """Record the chosen format on the App (for commands that spell -o differently)."""
    _apply_output(ctx, output, as_json)


def _apply_output(ctx: click.Context, output: str, as_json: bool) -> None:
    app = ctx.find_root().obj
    if app is None:
        return
    fmt = "json" if as_json else output
    app.style.mode = fmt if fmt in ("table", "wide", "plain") else "table"
    app.jsonl = fmt == "jsonl"
    app.human = bool(ctx.meta.get("cxlctl.human"))


def fmt_of(output: str, as_json: bool) -> str:
    """The format asked for: ``--json`` wins; ``jsonl`` is JSON one object a line."""
    if as_json or output == "jsonl":
        return "json"
    return output


# --- files, ranges, force ------------------------------------------------------------

input_option = click.option(
    "-i",
    "--input",
    "input_file",
    metavar="FILE",
    shell_complete=complete.files,
    help="Read the input from FILE ('-': stdin).",
)

output_file_option = click.option(
    "--output-file",
    "output_file",
    metavar="FILE",
    shell_complete=complete.files,
    help="Write to FILE (through a temporary file and a rename) instead of stdout.",
)

force_option = click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Override a safety check (DANGEROUS where the help says so).",
)


def range_options(what: str = "bytes", *, size_help: str | None = None) -> Callable[[F], F]:
    """``-O/--offset SIZE`` and ``-s/--size SIZE`` (cxl-cli's letters for ranges)."""

    def deco(f: F) -> F:
        f = click.option(
            "-s",
            "--size",
            type=Size(),
            help=size_help or f"Length in {what} [default: to the end].",
        )(f)
        f = click.option(
            "-O",
            "--offset",
            type=Size(),
            help=f"Start offset in {what} [default: 0].",
        )(f)
        return f

    return deco


def deprecated(message: str) -> None:
    """A one-line deprecation warning on stderr (the old form still works)."""
    from . import output

    output.message(f"cxlctl: warning: {message}")
