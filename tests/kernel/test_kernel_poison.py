"""Poison on the real kernel: cxlctl's tracefs path against Linux 6.12 and cxl-cli 81.

The simulator writes the kernel's cxl_poison trace text itself; this is where the
parser meets the real thing. Inject through debugfs, list with both tools, clear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import Memdev, cxl, cxlctl

DPA = 0x1000


@pytest.fixture
def poisoned(pmem: Memdev) -> Iterator[Memdev]:
    r = cxlctl("poison", pmem.name, "--inject", hex(DPA), "-y", "--json")
    assert r.returncode == 0, r.stderr
    try:
        yield pmem
    finally:
        done = cxlctl("poison", pmem.name, "--clear", hex(DPA), "--json")
        assert done.returncode == 0, done.stderr


def test_poison_lists_the_injected_record(poisoned: Memdev) -> None:
    r = cxlctl("poison", poisoned.name, "--json")
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads(r.stdout)
    assert entry["memdev"] == poisoned.name
    records = [(p["offset"], p["length"], p["source"]) for p in entry["media_errors"]]
    assert (DPA, 64, "Injected") in records


def test_list_media_errors_agrees_with_cxl_cli(poisoned: Memdev) -> None:
    for human in ((), ("-u",)):
        mine = cxlctl("list", poisoned.name, "-L", *human, "--json")
        theirs = cxl("list", "-M", "-m", poisoned.name, "-L", *human)
        assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
        (a,) = json.loads(mine.stdout)
        b = json.loads(theirs.stdout)
        b = b[0] if isinstance(b, list) else b
        assert a["media_errors"] == b["media_errors"], (a, b)


def test_cleared_poison_is_gone(pmem: Memdev) -> None:
    assert cxlctl("poison", pmem.name, "--inject", hex(DPA), "-y").returncode == 0
    assert cxlctl("poison", pmem.name, "--clear", hex(DPA)).returncode == 0
    r = cxlctl("list", pmem.name, "-L", "--json")
    assert r.returncode == 0, r.stderr
    assert "media_errors" not in json.loads(r.stdout)[0]
