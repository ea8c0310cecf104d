"""Label storage area: read-labels, write-labels, zero-labels."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

import click

from .. import render as rd
from ..change import Outcome, ProgressHook, Recorder, no_progress, stopped
from ..errors import PartialWrite, UsageError, file_error
from ..memdev import Memdev, label_input_length, regular_size, spool_input
from . import CONTEXT, App, app_of, complete, memdevs_argument, memdevs_required, output, selected
from .change import Change, change_options
from .options import (
    BYTE_FORMATS,
    FORMATS,
    apply_output,
    human_option,
    input_option,
    range_options,
)

F = TypeVar("F", bound=Callable[..., Any])


def parse_size(value: str, what: str) -> int:
    """``4096``, ``0x1000``, ``4K``, ``1M``, ``1GiB`` -> bytes (binary units, like cxl-cli)."""
    from ..units import parse_size as _parse

    return _parse(value, what)


def write_atomic(path: str, chunks: Iterable[bytes], what: str = "read-labels") -> int:
    """Write chunks to PATH via a temp file in the same directory and a rename, so
    an error never leaves a partial file. Non-regular targets (/dev/stdout, FIFOs,
    /dev/null) are written directly: renaming over them would replace the node.
    A failure of the file is one message naming PATH (never the temp file)."""
    try:
        return _write_atomic(path, chunks)
    except BrokenPipeError:  # -o /dev/stdout into a closed pipe: the output layer's 141
        raise
    except OSError as e:
        raise file_error(what, path, e, writing=True) from None


def _write_atomic(path: str, chunks: Iterable[bytes]) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        n = 0
        with open(path, "wb") as f:
            for c in chunks:
                f.write(c)
                n += len(c)
        return n
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        n = 0
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
                n += len(c)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else (0o666 & ~umask))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n


@click.command("read-labels", context_settings=CONTEXT)
@memdevs_argument
@range_options("bytes of the label area")
@click.option(
    "-o",
    "--output",
    "output_file",
    metavar="FILE",
    shell_complete=complete.files,
    help="Write to FILE [default: stdout]. -o is a file here, as in cxl-cli's "
    "read-labels; the format is --format.",
)
@click.option(
    "--output-file",
    "output_file2",
    metavar="FILE",
    shell_complete=complete.files,
    help="Same as -o FILE (the name every other verb uses).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["raw", "hex", "json"]),
    default="raw",
    show_default=True,
    help="raw bytes, hex (xxd dump; xxd -r reverses it), or json. Not -o: -o is "
    "cxl-cli's output FILE for this verb.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@human_option
@click.pass_context
def read_labels(
    ctx: click.Context,
    memdevs: Sequence[str],
    offset: int | None,
    size: int | None,
    output_file: str | None,
    output_file2: str | None,
    fmt: str,
    as_json: bool,
) -> None:
    """Dump the label storage area (Get LSA, opcode 0x4102) as binary.

    Read in payload_max chunks (never 0 bytes, never more than payload_max per
    command), bounded by label_storage_size. With several MEMDEVs the areas
    follow each other (as cxl-cli). Writing to a FILE goes through a temporary
    file and a rename, so an error leaves no partial file. A closed pipe ends
    the command quietly. -o is the output FILE here, kept from cxl-cli's
    read-labels so its scripts run unchanged; the output format is --format
    (raw, hex, json) or --json.

    \b
    Examples:
      cxlctl --sim read-labels mem0 -s 64 | xxd
      cxlctl --sim read-labels mem0 -s 64 --format hex
      cxlctl --sim read-labels mem0 -s 32 -O 4096 -o labels.bin
      cxlctl --sim read-labels mem0 -s 16 --json
      cxlctl read-labels mem0 -o lsa.bin
    """
    app = app_of(ctx)
    if output_file is not None and output_file2 is not None and output_file != output_file2:
        raise UsageError("give the output file once: -o FILE or --output-file FILE")
    target = output_file if output_file is not None else output_file2
    if output_file in FORMATS + BYTE_FORMATS and not os.path.exists(output_file):
        raise UsageError(
            f"read-labels: -o is the output FILE (as in cxl-cli), not a format: for "
            f"{output_file} use --format {output_file if output_file in ('hex', 'raw') else 'json'}"
            f" or --json (a file called {output_file!r}: -o ./{output_file})"
        )
    fmt = "json" if as_json else fmt
    apply_output(ctx, "json" if fmt == "json" else "table", False)
    mds = [Memdev(app.backend, n) for n in selected(ctx, memdevs)]
    try:
        plans = []
        for md in mds:  # every range is checked before anything is read
            plans.append((md, *_range(md, offset, size)))

        def chunks() -> Iterator[bytes]:
            for md, off, n in plans:
                if fmt == "raw":
                    yield from map(bytes, md.iter_labels(off, n))
                elif fmt == "hex":
                    data = md.read_labels(off, n)
                    if len(plans) > 1:
                        output.message(f"cxlctl: {md.name}: {n} bytes at offset {off:#x}")
                    yield (rd.hexdump(data, base=off) + "\n").encode()
            if fmt == "json":
                rows = [
                    {
                        "memdev": md.name,
                        "offset": off,
                        "length": n,
                        "data": md.read_labels(off, n).hex(),
                    }
                    for md, off, n in plans
                ]
                if app.human:
                    rows = rd.humanize(rows)
                yield rd.json_text(rows, lines=app.jsonl).encode()

        if target is None or target == "-":
            for c in chunks():
                rd.write_stdout(c)
        else:
            write_atomic(target, chunks())
    finally:
        for md in mds:
            md.close()


# --- writing: write-labels, zero-labels ------------------------------------------------


def read_labels_input(
    path: str | None, size: int | None, room: int, stack: contextlib.ExitStack
) -> tuple[BinaryIO, int]:
    """The labels to write, as an open file and the byte count to take from it:
    exactly SIZE bytes if given (a shorter input is an error, more is ignored, as
    cxl-cli), else the whole input, which must fit in ROOM bytes. Checked before
    anything is sent, and never held in memory: a regular file's size comes from
    ``fstat`` (nothing is read), a pipe is copied to an unlinked temporary file."""
    if path is None or path == "-":
        src: BinaryIO = output.stdin_binary("write-labels")
        if src.isatty():
            raise UsageError("write-labels: refusing to read labels from a terminal; use -i FILE")
        source = "stdin"
    else:
        source = path
        try:
            src = stack.enter_context(open(path, "rb", buffering=1 << 20))  # noqa: SIM115
        except OSError as e:
            raise file_error("write-labels", path, e, usage=True) from None
    known = regular_size(src)
    if known is not None:
        return src, label_input_length(max(known - src.tell(), 0), size, room, source)
    tmp = stack.enter_context(tempfile.TemporaryFile(prefix="cxlctl-labels-"))  # noqa: SIM115
    return tmp, spool_input(src, tmp, size, room, source)


def _range(md: Memdev, offset: int | None, size: int | None) -> tuple[int, int]:
    """(offset, length) checked against the label area (:meth:`Memdev.label_range`)."""
    if size == 0:
        raise UsageError("--size: must be at least 1")
    return md.label_range(offset or 0, size)


def _write(
    md: Memdev,
    off: int,
    length: int,
    data: BinaryIO | None,
    verify: bool,
    hook: ProgressHook = no_progress,
    what: str = "writing labels",
) -> dict[str, Any]:
    """:meth:`Memdev.write_labels` over the range, its progress on ``hook``; a
    Ctrl-C midway carries the library's report of which bytes were written."""
    hook(0, length, what)  # the bar starts before the first command
    try:
        done = md.write_labels(
            data,
            off,
            length,
            verify=verify,
            # no_progress: nobody watches, so the library calls nothing per command
            progress=None if hook is no_progress else lambda d, t: hook(d, t, what),
        )
    except PartialWrite as e:
        if isinstance(e.cause, KeyboardInterrupt):
            raise stopped(e.cause, e.report) from None
        raise
    return {
        "offset": done.offset,
        "length": done.length,
        "commands": done.commands,
        "verified": done.verified,
    }


def _summary(row: dict[str, Any], name: str, verb: str) -> str:
    n = row["commands"]
    return (
        f"{name}: {verb} {row['length']} bytes at offset "
        f"{row['offset']} ({n} Set LSA command{'s' if n != 1 else ''})"
        f"{', verified' if row['verified'] else ''}"
    )


def _label_change(
    app: App,
    name: str,
    rec: Recorder | None,
    hook: ProgressHook,
    where: Callable[[Memdev], tuple[int, int]],
    data: BinaryIO | None,
    verify: bool,
    verb: str,
) -> Any:
    """One memdev's write-labels or zero-labels, as the change contract's outcome."""
    with Memdev(app.backend, name) as md:
        md.recorder = rec
        off, length = where(md)
        what = "writing labels" if data is not None else "zeroing labels"
        row = _write(md, off, length, data, verify and rec is None, hook, what)
    return Outcome.CHANGED, _summary(row, name, verb), row


def _label_write_options(size_help: str) -> Callable[[F], F]:
    """The range, --verify and the change contract's options of the label writers."""

    def deco(f: F) -> F:
        f = change_options(destructive=True)(f)
        f = click.option(
            "--verify", is_flag=True, help="Read the range back (Get LSA) and compare."
        )(f)
        return range_options("bytes of the label area", size_help=size_help)(f)

    return deco


@click.command("write-labels", context_settings=CONTEXT)
@memdevs_required
@input_option
@_label_write_options("Bytes to write [default: the whole input].")
@click.pass_context
def write_labels(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    input_file: str | None,
    offset: int | None,
    size: int | None,
    verify: bool,
    **opts: Any,
) -> None:
    """DESTRUCTIVE: overwrite the label storage area (Set LSA, opcode 0x4103).

    Overwrites namespace labels: keep a copy first (read-labels). Reads FILE or
    stdin, all of it before anything is sent: an input larger than the label area
    from the offset, a short input (fewer than --size bytes), an empty input or a
    closed stdin is a usage error (exit 2). Writes in Set LSA commands of at most
    payload_max bytes (8-byte header + data), bounded by label_storage_size.
    Refused while the kernel owns the labels (exit 7): the nvdimm bridge of a
    memdev with persistent capacity claims Set LSA, so run `disable-memdev`
    first and `enable-memdev` after, as with cxl-cli. Asks for confirmation on a
    terminal (naming the memdev and its serial); without one, pass -y/--yes.
    --dry-run prints the Set LSA commands and sends none; --verify reads the range
    back. A failure midway says which bytes were written and which were not.

    \b
    Examples:
      cxlctl --sim read-labels mem1 -s 4K -o labels.bin
      cxlctl --sim write-labels mem1 -i labels.bin --verify -y --json
      cxlctl --sim write-labels mem1 -O 0x10000 -s 256 -i labels.bin --dry-run
      cxlctl disable-memdev mem0 && cxlctl write-labels mem0 -i labels.bin
    """
    app = app_of(ctx)
    change = Change(app, "write-labels", opts, destroys="the label storage area")
    names = selected(ctx, memdevs)
    if len(names) != 1:
        raise UsageError(
            f"write-labels writes one memdev ({len(names)} selected), as cxl-cli's write-labels"
        )
    (name,) = names
    md = Memdev(app.backend, name)
    stack = contextlib.ExitStack()
    try:
        off, room = _range(md, offset, size)  # room: exactly --size, or the rest of the area
        data, length = read_labels_input(input_file, size, room, stack)
    except BaseException:
        stack.close()
        raise
    finally:
        md.close()

    def action(name: str, rec: Recorder | None, hook: ProgressHook) -> Any:
        return _label_change(app, name, rec, hook, lambda _md: (off, length), data, verify, "wrote")

    with stack:
        change.run([name], action)


@click.command("zero-labels", context_settings=CONTEXT)
@memdevs_required
@_label_write_options("Bytes to zero [default: to the end].")
@click.pass_context
def zero_labels(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    offset: int | None,
    size: int | None,
    verify: bool,
    **opts: Any,
) -> None:
    """DESTRUCTIVE: zero the label storage area (Set LSA, opcode 0x4103).

    Erases namespace labels, from --offset for --size bytes (default: the whole
    area). Each memdev is tried and reported on its own (changed or failed, with
    the reason); the exit code is the worst outcome. Refused while the kernel
    owns the labels (exit 7), so run `disable-memdev` first, as with cxl-cli.
    Written in Set LSA commands of at most payload_max bytes; the whole 256 MiB
    area of a simulated device is about 130000 commands, with a progress bar on a
    terminal. Asks for confirmation on a terminal (naming each memdev and its
    serial); without one, pass -y/--yes. --dry-run sends nothing. `all` selects
    every memdev.

    \b
    Examples:
      cxlctl --sim zero-labels mem1 -s 4K --dry-run
      cxlctl --sim zero-labels mem1 -O 0x10000 -s 64K --verify -y --json
      cxlctl disable-memdev mem0 && cxlctl zero-labels mem0 && cxlctl enable-memdev mem0
    """
    app = app_of(ctx)
    change = Change(app, "zero-labels", opts, destroys="the label storage area")

    def where(md: Memdev) -> tuple[int, int]:  # checked against each memdev's area
        return _range(md, offset, size)

    def action(name: str, rec: Recorder | None, hook: ProgressHook) -> Any:
        return _label_change(app, name, rec, hook, where, None, verify, "zeroed")

    change.run(selected(ctx, memdevs), action)
