"""Label storage area: read-labels."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable

import click

from .. import render as rd
from ..device import Memdev
from ..errors import UsageError
from . import CONTEXT, app_of, complete

_SIZE_RE = re.compile(r"^(0x[0-9a-f]+|\d+)([kmg]?)(i?b)?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: str, what: str) -> int:
    """``4096``, ``0x1000``, ``4K``, ``1M``, ``1GiB`` -> bytes (binary units, like cxl-cli)."""
    m = _SIZE_RE.match(value.strip().lower())
    if not m:
        raise UsageError(f"{what}: {value!r} is not a size (e.g. 4096, 0x1000, 4K, 1M)")
    return int(m.group(1), 0) * _UNITS[m.group(2)]


def write_atomic(path: str, chunks: Iterable[bytes]) -> int:
    """Write chunks to PATH via a temp file in the same directory and a rename, so
    an error never leaves a partial file. Non-regular targets (/dev/stdout, FIFOs,
    /dev/null) are written directly: renaming over them would replace the node."""
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
@click.argument("memdev", shell_complete=complete.memdevs)
@click.option("-s", "--size", metavar="SIZE", help="Bytes to read [default: to the end].")
@click.option("-O", "--offset", metavar="OFFSET", default="0", help="Start offset [default: 0].")
@click.option(
    "-o", "--output", "output_file", metavar="FILE", help="Write to FILE [default: stdout]."
)
@click.pass_context
def read_labels(
    ctx: click.Context, memdev: str, size: str | None, offset: str, output_file: str | None
) -> None:
    """Dump the label storage area (Get LSA, opcode 0x4102) as binary.

    Read in payload_max chunks (never 0 bytes, never more than payload_max per
    command), bounded by label_storage_size. Writing to a FILE goes through a
    temporary file and a rename, so an error leaves no partial file. A closed
    pipe ends the command quietly.

    \b
    Examples:
      cxlctl --sim read-labels mem0 -s 64 | xxd
      cxlctl --sim read-labels mem0 -s 32 -O 4096 -o labels.bin
      cxlctl --sim read-labels mem0 -o lsa.bin
    """
    app = app_of(ctx)
    name = app.backend.memdev(memdev).name
    md = Memdev(app.backend, name)
    try:
        lsa = md.info.label_storage_size
        if lsa == 0:
            raise UsageError(f"{name}: the device has no label storage area")
        off = parse_size(offset, "--offset")
        if off >= lsa:
            raise UsageError(f"{name}: --offset {off} is beyond the {lsa}-byte label area")
        n = parse_size(size, "--size") if size is not None else lsa - off
        if n == 0:
            raise UsageError("--size: must be at least 1")
        chunks = md.iter_lsa(off, n)  # validates the range before sending anything
        if output_file is None or output_file == "-":
            for c in chunks:
                rd.write_stdout(c)
        else:
            write_atomic(output_file, chunks)
    finally:
        md.close()
