"""Large tables render in linear time (render._plain_rows), drawn exactly like rich's."""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st

from cxlctl import render as rd

Cli = Callable[..., Result]


def poison_payload(n: int) -> bytes:
    """A Get Poison List output with N records (65,534 fill 1 MiB)."""
    hdr = bytes(2) + bytes(8) + struct.pack("<H", n) + bytes(20)
    return hdr + b"".join(struct.pack("<QI4x", (i * 64) | 1, 1) for i in range(n))


def _both(
    columns: list[str], rows: list[list[str]], width: int, ascii_only: bool
) -> tuple[str, str]:
    from rich.console import Console
    from rich.table import Table

    def console(buf: io.TextIOWrapper) -> Console:
        return Console(
            file=buf,
            width=width,
            markup=False,
            highlight=False,
            emoji=False,
            no_color=True,
            soft_wrap=False,
            color_system=None,
            legacy_windows=False,
            force_terminal=False,
            _environ={},
        )

    raw_a, raw_b = io.BytesIO(), io.BytesIO()
    enc = "ascii" if ascii_only else "utf-8"
    a, b = io.TextIOWrapper(raw_a, encoding=enc), io.TextIOWrapper(raw_b, encoding=enc)
    t = Table(title="t", title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    console(a).print(t)
    rd._plain_rows(console(b), "t", columns, rows)
    a.flush()
    b.flush()
    return raw_a.getvalue().decode(), raw_b.getvalue().decode()


cells = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12)


@given(
    columns=st.lists(cells, min_size=1, max_size=4),
    data=st.data(),
    ascii_only=st.booleans(),
)
def test_the_linear_table_is_drawn_like_richs(
    columns: list[str], data: st.DataObject, ascii_only: bool
) -> None:
    # rich strips trailing spaces of a cell and wraps on spaces: compare without them
    columns = [c.replace(" ", "_") for c in columns]
    rows = data.draw(
        st.lists(
            st.lists(
                cells.map(lambda s: s.replace(" ", "_")),
                min_size=len(columns),
                max_size=len(columns),
            ),
            max_size=6,
        )
    )
    mine, richs = _both(columns, rows, 200, ascii_only)
    assert mine == richs


def test_a_one_mib_poison_list_never_builds_a_rich_table(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`decode get-poison-list` of 65,534 records: linear (took > 300 s with rich)."""
    import rich.table

    def no_table(*a: object, **k: object) -> None:
        raise AssertionError("a 327,000-row table must not go through rich's Table")

    monkeypatch.setattr(rich.table, "Table", no_table)
    p = tmp_path / "poison.bin"
    p.write_bytes(poison_payload(65534))
    assert p.stat().st_size == 1 << 20
    r = cli("decode", "get-poison-list", str(p))
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "records[65533].address" in r.stdout
    assert len(lines) > 65534 * 4
    assert len({len(x) for x in lines[1:]}) == 1  # every line of the box as wide


def test_a_small_poison_list_still_uses_rich(cli: Cli, tmp_path: Path) -> None:
    p = tmp_path / "poison.bin"
    p.write_bytes(poison_payload(3))
    r = cli("decode", "get-poison-list", str(p))
    assert r.exit_code == 0, r.stderr
    assert "records[2].address" in r.stdout


def test_tree_labels_are_escape_safe() -> None:
    """The topology tree carries sysfs values (names, modes, hosts): the one sanitiser
    shows a hostile one visibly, as in a table cell."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rd.print_tree(
            rd.Style("never"),
            "CXL \x1b]52;c;Y2F0IC9ldGMvcGFzc3dk\x07topology",
            [("root0 (\x1b[2Jevil)", [("region0 ra\x9bm [commit]", [])])],
        )
    text = out.getvalue()
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in text
    for shown in ("\\x1b]52;c;", "\\x1b[2Jevil", "ra\\x9bm [commit]"):
        assert shown in text
