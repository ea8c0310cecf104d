"""docs/json.md and the JSON the commands print name the same keys, both ways."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

DOC = Path(__file__).parent.parent / "docs" / "json.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|")
COMMAND = re.compile(r"^Command: `((?:\w+=\S+ )*)cxlctl ([^`]+)`")


def _sections() -> list[tuple[str, list[str], dict[str, bool]]]:
    """(title, args, {key: optional}) per section of the doc; args start with the
    section's environment (``CXLCTL_SIM_RAW=1``), if any."""
    out: list[tuple[str, list[str], dict[str, bool]]] = []
    for block in DOC.read_text().split("\n## ")[1:]:
        title = block.splitlines()[0].strip()
        m = next((COMMAND.match(line) for line in block.splitlines() if COMMAND.match(line)), None)
        assert m, f"section {title!r} has no Command: line"
        keys = {}
        for line in block.splitlines():
            r = ROW.match(line)
            if r:
                keys[r.group(1)] = "optional" in r.group(2)
        out.append((title, shlex.split(m.group(1)) + shlex.split(m.group(2)), keys))
    return out


def _flatten(obj: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            keys |= _flatten(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                keys |= _flatten(x, key + "[].")
        else:
            keys.add(key)
    return keys


SECTIONS = _sections()


def test_every_new_command_is_documented() -> None:
    titles = {t.split()[0] for t, _, _ in SECTIONS}
    for cmd in [
        "health",
        "partition",
        "fw-info",
        "alert-config",
        "shutdown-state",
        "timestamp",
        "security-state",
        "logs",
        "cel",
        "get-log",
        "log-caps",
        "decode",
        "list",
    ]:
        assert cmd in titles


@pytest.mark.parametrize(("title", "args", "keys"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_doc_keys_match_output(
    cli: Callable[..., Result], title: str, args: list[str], keys: dict[str, bool]
) -> None:
    n = next(i for i, a in enumerate(args) if not re.match(r"^\w+=", a))
    env = dict(a.split("=", 1) for a in args[:n])
    args = args[n:]
    stdin = bytes(8) if args[0] in ("decode", "write-labels") else None
    r = cli(*args, input=stdin, env=env)
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    printed: set[str] = set()
    for obj in data if isinstance(data, list) else [data]:
        printed |= _flatten(obj)
    documented = set(keys)
    required = {k for k, optional in keys.items() if not optional}
    assert printed - documented == set(), f"{title}: printed but not documented"
    assert required - printed == set(), f"{title}: documented but not printed"
