"""Formatting for people and for pipelines: the only module that imports rich.

JSON holds raw integers; human strings (``256.00 MiB (268.44 MB)``, hex serials)
appear only with ``-u/--human`` or in tables.  rich is imported lazily, so a
``--json`` run never pays for it.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from .record import Record
from .units import human_size as human_size  # re-exported: tables and -u

SIZE_KEYS = frozenset(
    {
        "pmem_size",
        "ram_size",
        "total_size",
        "volatile_only_size",
        "persistent_only_size",
        "partition_alignment_size",
        "next_persistent_size",
        "next_volatile_size",
        "active_persistent_size",
        "active_volatile_size",
        "label_storage_size",
        "align_size",
    }
)
HEX_KEYS = frozenset({"serial", "offset", "opcode", "dpa"})


#: values JSON takes as they are (exact types: an IntEnum is converted)
_PLAIN = frozenset({int, str, bool, float, type(None)})


def to_data(obj: Any) -> Any:
    """Records (and frozen dataclasses), tuples and enums -> JSON-able dicts/lists/scalars."""
    if isinstance(obj, Record):
        out = {}
        for f in obj._fields:
            v = getattr(obj, f)
            out[f] = v if type(v) in _PLAIN else to_data(v)
        return out
    fields = getattr(type(obj), "__dataclass_fields__", None)
    if fields is not None:
        return {f: to_data(getattr(obj, f)) for f in fields}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_data(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def human_hex(n: int) -> str:
    """cxl-cli's ``-u`` hex format: ``%#llx`` (so 0 is ``0``)."""
    return f"{n:#x}" if n else "0"


def humanize(data: Any) -> Any:
    """Apply ``-u`` formatting to the keys cxl-cli formats."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for k, v in data.items():
            if isinstance(v, int) and not isinstance(v, bool) and k in SIZE_KEYS:
                out[k] = human_size(v)
            elif isinstance(v, int) and not isinstance(v, bool) and k in HEX_KEYS:
                out[k] = human_hex(v)
            else:
                out[k] = humanize(v)
        return out
    if isinstance(data, list):
        return [humanize(x) for x in data]
    return data


def write_stdout(data: bytes | str) -> None:
    """Write everything to stdout (see :func:`cxlctl.cli.output.write_stdout`)."""
    from .cli import output

    output.write_stdout(data)


def json_text(data: Any, *, lines: bool = False) -> str:
    """The text dump_json writes."""
    if lines:
        items = data if isinstance(data, list) else [data]
        return "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in items)
    return pretty_json(data) + "\n"


class _Unusual(Exception):
    """A value pretty_json leaves to the json module (floats, subclasses...)."""


def pretty_json(data: Any) -> str:
    """Exactly ``json.dumps(data, indent=2)``, faster: the json module encodes
    indented output in pure Python, token by token; this builds it from the C
    string encoder in one recursive pass. Anything but dict/list/tuple with str
    keys, str, int, bool and None goes to the json module."""
    out: list[str] = []
    try:
        _pretty(data, out, "\n")
    except _Unusual:
        return json.dumps(data, indent=2)
    return "".join(out)


_encode_str = json.encoder.encode_basestring_ascii  # C; what json.dumps uses
#: the value types a flat object may hold for the C encoder (exact types: a subclass,
#: a float, goes the general way)
_SCALARS = frozenset((str, int, bool, type(None)))
#: the newline-and-indent of a level -> a C encoder of a flat object for that level
_flat: dict[str, Callable[[Any, int], Sequence[str]]] = {}


def _flat_encoder(inner: str) -> Callable[[Any, int], Sequence[str]] | None:
    """The C encoder json.dumps uses, with ``",{inner}"`` between items: a flat object
    encoded exactly as json.dumps(indent=2) writes it, less its first and last line
    break (None without the C accelerator)."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed; None without _json
    if make is None:
        return None
    enc: Callable[[Any, int], Sequence[str]] = make(
        None, None, _encode_str, None, ": ", "," + inner, False, False, True
    )
    _flat[inner] = enc
    return enc


def _pretty(o: Any, out: list[str], nl: str) -> None:
    t = type(o)
    if t is str:
        out.append(_encode_str(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif t is int:
        out.append(int.__repr__(o))
    elif t is dict:
        if not o:
            out.append("{}")
            return
        inner = nl + "  "
        for k, v in o.items():
            if type(k) is not str or type(v) not in _SCALARS:
                break
        else:  # str keys, scalar values: the C encoder, its item separator indented
            enc = _flat.get(inner) or _flat_encoder(inner)
            if enc is not None:
                out.append("{" + inner)
                out.append("".join(enc(o, 0))[1:-1])
                out.append(nl + "}")
                return
        sep = "{" + inner
        for k, v in o.items():
            if type(k) is not str:
                raise _Unusual
            head = sep + _encode_str(k) + ": "
            sep = "," + inner
            tv = type(v)  # the scalars here, not by a call each
            if tv is str:
                out.append(head + _encode_str(v))
            elif tv is int:
                out.append(head + int.__repr__(v))
            elif tv is bool:
                out.append(head + ("true" if v else "false"))
            elif v is None:
                out.append(head + "null")
            else:
                out.append(head)
                _pretty(v, out, inner)
        out.append(nl + "}")
    elif t is list or t is tuple:
        if not o:
            out.append("[]")
            return
        inner = nl + "  "
        sep = "[" + inner
        for v in o:
            out.append(sep)
            _pretty(v, out, inner)
            sep = "," + inner
        out.append(nl + "]")
    else:
        raise _Unusual


def dump_json(data: Any, stream: IO[str] | None = None, *, lines: bool = False) -> None:
    """JSON, indented; with ``lines`` (``-o jsonl``) one compact object per line
    (the elements of an array, or the one object)."""
    text = json_text(data, lines=lines)
    if stream is not None:
        stream.write(text)
    else:
        write_stdout(text)


# --- tables ------------------------------------------------------------------------


class Style:
    """Per-invocation console settings (``--color``, ``NO_COLOR``, TTY)."""

    def __init__(self, color: str = "auto", mode: str = "table") -> None:
        self.color = color
        #: table (boxes, fitted to the terminal), wide (every column, never
        #: shortened), plain (aligned columns, no box characters: grep/awk)
        self.mode = mode

    def console(self, stream: IO[str] | None = None) -> Any:
        no_color = self.color == "never" or (
            self.color == "auto" and bool(os.environ.get("NO_COLOR"))
        )
        return _console_class()(
            file=stream or sys.stdout,
            markup=False,
            highlight=False,
            emoji=False,
            no_color=no_color,
            force_terminal=True if self.color == "always" else None,
            soft_wrap=False,
        )


def _console_class() -> Any:
    from rich.console import Console

    class GuardedConsole(Console):
        """rich's Console, but a closed pipe is the BrokenPipeError it is (rich's own
        handler exits 1), so the output layer can end with 141 like every format."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(32, "Broken pipe")

    return GuardedConsole


def cell(key: str, value: Any) -> str:
    """One value as a table cell, human formatted."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key in SIZE_KEYS:
        if value == 0:
            return "-"
        h = human_size(value)
        return h.split(" (")[0] if isinstance(h, str) else str(value)
    if isinstance(value, int) and key in HEX_KEYS:
        return f"{value:#x}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


#: Tables with more rows than this are drawn by :func:`_plain_rows`: rich's Table
#: costs milliseconds per row (a 65,534-record poison list took minutes).
LARGE_TABLE = 500


#: columns whose values are never shortened: other columns give way (or go) first
IDENTIFIER_COLUMNS = frozenset(
    {
        "memdev",
        "serial",
        "host",
        "firmware",
        "firmware_version",
        "region",
        "decoder",
        "port",
        "endpoint",
        "bus",
        "uuid",
        "field",
        "time",
    }
)


#: non-identifier columns left out only after all the others
LAST_TO_GO = frozenset({"state", "verdict", "memdevs"})

#: a verdict cell's colour (the word itself says it too, for NO_COLOR)
VERDICT_STYLES = {"OK": "green", "WARNING": "yellow", "CRITICAL": "bold red"}


def _styled(value: str) -> Any:
    from rich.text import Text

    return Text(value, style=VERDICT_STYLES.get(value, ""))


def _plain(console: Any, columns: Sequence[str], cells: list[list[str]]) -> None:
    """Aligned columns, no box characters: one header line, then the rows."""
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = []
    for row in [list(columns), *cells]:
        parts = [v.ljust(w) for v, w in zip(row, widths, strict=True)]
        lines.append("  ".join(parts).rstrip())
    console.file.write("\n".join(lines) + "\n")
    console.file.flush()


def print_table(
    style: Style,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    simulated: bool = False,
) -> None:
    """A table in the style's mode: ``table`` (boxed, fitted to the terminal:
    identifier columns are never shortened, the other columns wrap or, when even
    that does not fit, are left out from the right), ``wide`` (every column at
    full width) or ``plain`` (aligned, no boxes, no title). The title is printed
    on its own line and never wraps. More than LARGE_TABLE rows are drawn in
    linear time by :func:`_plain_rows`."""

    from .cli.output import sanitize, stream_encoding

    console = style.console()
    enc = stream_encoding(console.file)
    cols = [sanitize(c, enc) for c in columns]
    cells = [[sanitize(cell(c, v), enc) for c, v in zip(columns, r, strict=True)] for r in rows]
    mode = getattr(style, "mode", "table")
    if mode == "plain":
        _plain(console, cols, cells)
        return
    if len(cells) > LARGE_TABLE:
        _plain_rows(
            console, sanitize(title, enc) + (" [simulated]" if simulated else ""), cols, cells
        )
        return
    from rich.table import Table

    full = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    word = [
        max([len(c)] + [len(w) for r in cells for w in (r[i].split() or [""])])
        for i, c in enumerate(cols)
    ]
    keep = list(range(len(cols)))
    if mode != "wide":

        def need(idx: list[int]) -> int:
            return sum(full[i] if cols[i] in IDENTIFIER_COLUMNS else word[i] for i in idx) + (
                3 * len(idx) + 1
            )

        while need(keep) > console.width:
            drop = [i for i in keep if cols[i] not in IDENTIFIER_COLUMNS]
            # the state and the verdict go last
            drop.sort(key=lambda i: (cols[i] not in LAST_TO_GO, i))
            if not drop:
                break
            keep.remove(drop[-1])
    t = Table(title=None)
    # a column of one-word cells (an address, a number) cannot wrap: like an
    # identifier it keeps its width; the columns that wrap share the rest, each at
    # least its longest word (so no word is ever cut), the left ones first
    fixed = {
        i for i in keep if cols[i] in IDENTIFIER_COLUMNS or mode == "wide" or word[i] == full[i]
    }
    wraps = [i for i in keep if i not in fixed]
    spare = console.width - sum(full[i] for i in fixed) - 3 * len(keep) - 1
    given = {i: word[i] for i in wraps}
    spare -= sum(given.values())
    for i in wraps:
        more = max(0, min(spare, full[i] - given[i]))
        given[i] += more
        spare -= more
    for i in keep:
        if i in fixed:
            t.add_column(cols[i], no_wrap=True, min_width=full[i])
        else:
            t.add_column(cols[i], width=given[i])
    verdict = cols.index("verdict") if "verdict" in cols else None
    for r in cells:
        t.add_row(*(_styled(r[i]) if i == verdict else r[i] for i in keep))
    width = sum(full[i] for i in keep) + 3 * len(keep) + 1
    if mode == "wide" or (
        width > console.width and all(cols[i] in IDENTIFIER_COLUMNS for i in keep)
    ):
        console.width = max(console.width, width)
    left_out = [cols[i] for i in range(len(cols)) if i not in keep]
    head = sanitize(title, enc) + (" [simulated]" if simulated else "")
    if left_out:
        more = ", ".join(left_out)
        if len(head) + len(more) + 14 > console.width:
            more = f"{len(left_out)} more column{'s' if len(left_out) > 1 else ''}"
        head += f" ({more}: -o wide)"
    console.print(head, soft_wrap=True)
    console.print(t)


def _plain_rows(console: Any, title: str, columns: list[str], rows: list[list[str]]) -> None:
    """The same box as rich's Table (HEAVY_HEAD, or its ASCII stand-in), drawn in
    linear time: every column as wide as its widest cell, no wrapping; when the
    console is too narrow the widest columns are cut with an ellipsis."""
    from rich import box
    from rich.cells import cell_len, set_cell_size

    b = box.HEAVY_HEAD.substitute(console.options)
    widths = [cell_len(c) for c in columns]
    for r in rows:
        for i, v in enumerate(r):
            n = cell_len(v)
            if n > widths[i]:
                widths[i] = n
    room = console.width - (3 * len(widths) + 1)
    while sum(widths) > room and max(widths) > 1:
        i = widths.index(max(widths))
        widths[i] -= 1
    ell = "…" if not console.options.ascii_only else "."

    def line(cells: list[str], left: str, mid: str, right: str) -> str:
        out = []
        for v, w in zip(cells, widths, strict=True):
            if cell_len(v) > w:
                v = set_cell_size(v, w - 1) + ell
            out.append(" " + set_cell_size(v, w) + " ")
        return left + mid.join(out) + right

    total = sum(widths) + 3 * len(widths) + 1
    lines = [set_cell_size(title, total) if cell_len(title) <= total else title]
    lines.append(b.get_top([w + 2 for w in widths]))
    lines.append(line(columns, b.head_left, b.head_vertical, b.head_right))
    lines.append(b.get_row([w + 2 for w in widths], "head"))
    for r in rows:
        lines.append(line(r, b.mid_left, b.mid_vertical, b.mid_right))
    lines.append(b.get_bottom([w + 2 for w in widths]))
    f = console.file
    for i in range(0, len(lines), 4096):
        f.write("\n".join(lines[i : i + 4096]) + "\n")
    f.flush()


def flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested mappings/lists -> ``a.b[0].c`` rows for a field/value table."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, Any]] = []
        for k, v in value.items():
            rows += flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    if isinstance(value, list) and value and isinstance(value[0], (Mapping, list)):
        rows = []
        for i, item in enumerate(value):
            rows += flatten(f"{prefix}[{i}]", item)
        return rows
    return [(prefix, value)]


def print_fields(
    style: Style, title: str, fields: Mapping[str, Any], *, simulated: bool = False
) -> None:
    """A two-column field/value table for one decoded structure."""
    rows = [(k, cell(k.rsplit(".", 1)[-1], v)) for k, v in flatten("", fields)]
    if getattr(style, "mode", "table") == "plain":
        style.console().file.write(f"# {title}\n")
    print_table(style, title, ("field", "value"), rows, simulated=simulated)


def hexdump(data: bytes, base: int = 0) -> str:
    """``xxd``'s default format (``xxd -r`` turns it back into the bytes): an
    8-digit hex offset from BASE, 16 bytes in groups of two, the printable ASCII."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hx = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{base + off:08x}: {hx:<39}  {asc}")
    return "\n".join(lines)


# --- progress (stderr only, never stdout) ---------------------------------------------


class Progress:
    """Progress of long changes, on stderr: a rich bar when stderr is a terminal
    (``mode="bar"``), one JSON object per line (``mode="jsonl"``), or nothing.

    A bar appears only for work that is big enough to take a while (``total`` at
    least :attr:`BAR_MIN` units) or has already taken more than a second, so quick
    changes do not flash one. JSON-lines events are emitted at the start, whenever
    the whole percentage changes, and at the end: deterministic, not timed.
    """

    BAR_MIN = 1 << 20

    def __init__(self, style: Style, mode: str) -> None:
        self.style = style
        self.mode = mode
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._pct: dict[str, int | None] = {}
        self._t0: dict[str, float] = {}

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _event(self, d: dict[str, Any]) -> None:
        sys.stderr.write(json.dumps(d) + "\n")
        sys.stderr.flush()

    def update(self, memdev: str, done: int, total: int, what: str) -> None:
        if self.mode == "jsonl":
            # total 0: the work has no measure (a sanitize: the device says nothing)
            pct = None if total <= 0 else done * 100 // total
            key = f"{memdev}\0{what}"
            if key not in self._pct or self._pct[key] != pct:
                self._pct[key] = pct
                self._event(
                    {
                        "event": "progress",
                        "memdev": memdev,
                        "what": what,
                        "done": done,
                        "total": total,
                        "percent": pct,
                    }
                )
            return
        if self.mode != "bar":
            return
        import time

        key = f"{memdev}\0{what}"
        now = time.monotonic()
        t0 = self._t0.setdefault(key, now)
        if key not in self._tasks:
            if total < self.BAR_MIN and now - t0 < 1.0 and done < total:
                return
            if self._bar is None:
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    TextColumn,
                    TimeRemainingColumn,
                )
                from rich.progress import Progress as RichProgress

                self._bar = RichProgress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(binary_units=True),
                    TimeRemainingColumn(),
                    console=self.style.console(sys.stderr),
                )
                self._bar.start()
            self._tasks[key] = self._bar.add_task(f"{memdev}: {what}", total=max(total, 1))
        self._bar.update(self._tasks[key], completed=done, total=max(total, 1))


def json_line(data: Any) -> str:
    """One compact JSON object and a newline (``-o jsonl``)."""
    return json.dumps(data, separators=(",", ":")) + "\n"


# --- trees ---------------------------------------------------------------------------

#: One node of a tree view: (label, children).
TreeNode = tuple[str, list["TreeNode"]]


def print_tree(
    style: Style, title: str, roots: Sequence[TreeNode], *, simulated: bool = False
) -> None:
    """An indented tree (rich Tree): the CXL topology for people. Labels carry
    sysfs values: escape-safe through the one sanitiser, like table cells."""
    from rich.tree import Tree

    from .cli.output import sanitize, stream_encoding

    console = style.console()
    enc = stream_encoding(console.file)
    tree = Tree(sanitize(title, enc) + (" [simulated]" if simulated else ""))

    def add(parent: Any, node: TreeNode) -> None:
        label, children = node
        branch = parent.add(sanitize(label, enc))
        for c in children:
            add(branch, c)

    for r in roots:
        add(tree, r)
    console.print(tree)
