"""Pieces of the topology reference (tests/data/reference/topology.md, from
Linux 6.12.117 + QEMU 10.0.13 + cxl-cli 81) for the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REF = (Path(__file__).parent / "data" / "reference" / "topology.md").read_text()


def json_after(marker: str, nth: int = 0) -> Any:
    """The JSON block after the ``nth`` occurrence of ``marker``."""
    i = -1
    for _ in range(nth + 1):
        i = REF.index(marker, i + 1)
    j = REF.index("```json", i)
    k = REF.index("```", j + 7)
    return json.loads(REF[j + 7 : k])


def writes_after(marker: str) -> list[tuple[str, bytes, str]]:
    """The numbered 'sysfs writes, in order' list after ``marker``: (path, bytes,
    result) with the bus/cxl/flush lines left out."""
    i = REF.index(marker)
    j = REF.index("sysfs writes, in order:", i)
    j = REF.index("```", j) + 3
    k = REF.index("```", j)
    out = []
    for line in REF[j:k].splitlines():
        m = re.match(r"\s*\d+\s+(\S+) <- \"(.*)\"\s+-> (\S+)", line)
        if not m:
            continue
        data = m.group(2).encode().decode("unicode_escape").encode("latin-1")
        out.append((m.group(1), data, m.group(3)))
    return out


#: the topology verbs that change something: they ask first (-y without a terminal)
CHANGE_VERBS = frozenset(
    {"create-region", "enable-region", "disable-region", "destroy-region", "reserve-dpa",
     "free-dpa", "set-partition", "enable-port", "disable-port", "disable-bus"}
)  # fmt: skip


def confirmed(args: tuple[str, ...] | list[str]) -> list[str]:
    """``args`` with -y after a change verb (the tests run without a terminal)."""
    out = list(args)
    if out and out[0] in CHANGE_VERBS and "-y" not in out and "--dry-run" not in out:
        out.insert(1, "-y")
    return out
