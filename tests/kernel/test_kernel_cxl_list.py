"""``cxlctl list --json`` against cxl-cli 81's ``cxl list -M`` on the same devices.

cxl-cli prints a bare object for one match and an array for several; cxlctl always
prints an array.  After normalising that, every key both print must agree, value
for value, with and without -u and each of -H -I -F -L -A that both have.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from .conftest import SUMMARY, Memdev, cxl, cxlctl

WANTED = ("-I", "-F", "-H", "-L", "-A")
BASIC = {"memdev", "serial", "host", "firmware_version"}
#: Get Alert Configuration's temperatures are two's complement (CXL 3.1 Table 8-136);
#: libcxl reads them with cmd_get_field_u16, so cxl-cli prints the 16-bit pattern
#: unsigned (-1 as 65535) where cxlctl prints the signed value. Seen on QEMU 11 (7.3
#: stack), whose Set Alert Configuration stores any 16-bit value.
UNSIGNED_IN_CXL_CLI = {
    "alert_config.dev_over_temperature_crit_alert_threshold",
    "alert_config.dev_under_temperature_crit_alert_threshold",
    "alert_config.dev_over_temperature_prog_warn_threshold",
    "alert_config.dev_under_temperature_prog_warn_threshold",
}


def _list_options() -> set[str]:
    r = cxlctl("list", "--help")
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"(?<![\w-])(-[A-Za-z])\b", r.stdout))


def normalise(text: str) -> list[dict[str, Any]]:
    data = json.loads(text) if text.strip() else []
    return data if isinstance(data, list) else [data]


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between a and b on the keys both have."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(a.keys() & b.keys()):
            out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")
        ]
    if path.lstrip(".") in UNSIGNED_IN_CXL_CLI and isinstance(a, int) and -(1 << 15) <= a < 0:
        a &= 0xFFFF  # the documented difference: compare the 16-bit patterns
    return [] if a == b else [f"{path}: cxlctl {a!r} != cxl {b!r}"]


def _variants() -> list[tuple[str, ...]]:
    have = _list_options() & set(WANTED)
    out: list[tuple[str, ...]] = []
    for human in ((), ("-u",)):
        if human and "-u" not in _list_options():
            continue
        out.append(human)
        out.append((*sorted(have), *human))  # every block at once: each key is compared
    return list(dict.fromkeys(out))


def _compare(opts: tuple[str, ...], memdevs: list[str]) -> tuple[int, set[str]]:
    mine = cxlctl("list", *memdevs, *opts, "--json")
    assert mine.returncode == 0, mine.stderr
    sel = list(itertools.chain.from_iterable(("-m", m) for m in memdevs))
    theirs = cxl("list", "-M", *sel, *opts)
    assert theirs.returncode == 0, theirs.stderr
    a = {d["memdev"]: d for d in normalise(mine.stdout)}
    b = {d["memdev"]: d for d in normalise(theirs.stdout)}
    assert sorted(a) == sorted(b)
    problems: list[str] = []
    only_cxl: set[str] = set()
    keys = 0
    for name in a:
        assert a[name].keys() & b[name].keys() >= BASIC, (name, a[name].keys(), b[name].keys())
        problems += [f"{name}{p}" for p in diff(a[name], b[name])]
        keys += len(a[name].keys() & b[name].keys())
        only_cxl |= b[name].keys() - a[name].keys()
    assert not problems, f"cxlctl list {' '.join(opts)} vs cxl list -M: {problems}"
    return keys, only_cxl


@pytest.mark.parametrize("one", [True, False], ids=["one-memdev", "all-memdevs"])
def test_list_agrees_with_cxl_cli(memdevs: list[Memdev], one: bool) -> None:
    names = [memdevs[0].name] if one else []
    total = 0
    missing: set[str] = set()
    variants = _variants()
    for opts in variants:
        keys, only_cxl = _compare(opts, names)
        total += keys
        missing |= only_cxl
    SUMMARY.append(
        f"cxl list cross-check ({'one memdev' if one else 'all memdevs'}): "
        f"{len(variants)} option sets, {total} shared keys agree"
        + (f"; keys only cxl-cli prints: {', '.join(sorted(missing))}" if missing else "")
    )


def test_cxl_cli_sees_the_same_serials(memdevs: list[Memdev]) -> None:
    got = sorted(d["serial"] for d in normalise(cxl("list", "-M").stdout))
    assert got == [m.serial for m in memdevs]
