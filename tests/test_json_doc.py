"""docs/json.md and the JSON the commands print name the same keys, both ways.

Each section's ``Command:`` line runs on the simulator in a fresh state directory
(``CXLCTL_SIM_STATE``), after its ``Setup:`` lines, if any, in the same state. The
command gets 8 zero bytes on stdin, and ``$INPUT`` names a file holding the same
bytes. A ``Command (kernel only):`` section is not run. A row ``parent.*`` stands
for every key under ``parent`` (an object whose keys vary).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import Result

from cxlctl.cli import main

DOC = Path(__file__).parent.parent / "docs" / "json.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|")
COMMAND = re.compile(r"^Command( \(kernel only\))?: `((?:\w+=\S+ )*)cxlctl ([^`]+)`")
SETUP = re.compile(r"^Setup: `cxlctl ([^`]+)`")
ENV = re.compile(r"^(\w+)=(.*)$")
#: what the command reads on stdin, and what the file ``$INPUT`` holds
INPUT = bytes(8)


@dataclass(frozen=True)
class Section:
    title: str
    env: dict[str, str]
    args: list[str]
    setup: list[list[str]]
    kernel_only: bool
    keys: dict[str, bool]  #: documented key -> optional


def _sections() -> list[Section]:
    out: list[Section] = []
    for block in DOC.read_text().split("\n## ")[1:]:
        lines = block.splitlines()
        title = lines[0].strip()
        m = next((c for line in lines if (c := COMMAND.match(line))), None)
        assert m, f"section {title!r} has no Command: line"
        env = {}
        for word in shlex.split(m.group(2)):
            e = ENV.match(word)
            assert e, word
            env[e.group(1)] = e.group(2)
        keys = {}
        for line in lines:
            r = ROW.match(line)
            if r:
                keys[r.group(1)] = "optional" in r.group(2)
        setup = [shlex.split(s.group(1)) for line in lines if (s := SETUP.match(line))]
        out.append(
            Section(title, env, shlex.split(m.group(3)), setup, m.group(1) is not None, keys)
        )
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


def _covers(documented: str, printed: str) -> bool:
    """A documented key names a printed one: the same, or ``parent.*`` over it."""
    if documented.endswith(".*"):
        return printed.startswith(documented[:-1])
    return documented == printed


SECTIONS = _sections()


def set_up(
    cli: Callable[..., Result], tmp_path: Path, section: Section, **env: str
) -> tuple[dict[str, str], Callable[[list[str]], list[str]]]:
    """A fresh state directory below ``tmp_path`` and the section's environment (plus
    ``env``), its Setup: lines run; and the function that puts the input file in for
    ``$INPUT`` (a file of INPUT, which stdin also gets)."""
    state = tmp_path / "state"
    state.mkdir()
    full = {"CXLCTL_SIM_STATE": str(state), **env, **section.env}
    (tmp_path / "input").write_bytes(INPUT)

    def args(words: list[str]) -> list[str]:
        return [str(tmp_path / "input") if w == "$INPUT" else w for w in words]

    for setup in section.setup:
        r = cli(*args(setup), input=INPUT, env=full)
        assert r.exit_code == 0, (setup, r.stderr)
    return full, args


def _json_commands() -> list[str]:
    """Every command of the click tree that has a --json option."""
    ctx = click.Context(main)
    names = []
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None, name
        if any("--json" in getattr(p, "opts", ()) for p in cmd.params):
            names.append(name)
    return names


def test_every_command_with_json_is_documented() -> None:
    """No command with --json can skip docs/json.md."""
    titles = {s.title.split()[0] for s in SECTIONS}
    commands = _json_commands()
    assert {"identify", "send", "create-region"} <= set(commands)  # the walk sees --json
    assert [c for c in commands if c not in titles] == []


def test_every_section_names_a_command() -> None:
    commands = set(_json_commands())
    assert [s.title for s in SECTIONS if s.title.split()[0] not in commands] == []
    assert [s.title for s in SECTIONS if s.args[0] != s.title.split()[0]] == []


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_doc_keys_match_output(
    cli: Callable[..., Result], tmp_path: Path, section: Section
) -> None:
    if section.kernel_only:
        pytest.skip(f"{section.title}: kernel only: the simulator cannot run it")
    env, args = set_up(cli, tmp_path, section)
    r = cli(*args(section.args), input=INPUT, env=env)
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    printed: set[str] = set()
    for obj in data if isinstance(data, list) else [data]:
        printed |= _flatten(obj)
    assert printed, f"{section.title}: printed no keys"
    documented = section.keys
    required = [k for k, optional in documented.items() if not optional]
    undocumented = {p for p in printed if not any(_covers(d, p) for d in documented)}
    missing = {k for k in required if not any(_covers(k, p) for p in printed)}
    assert undocumented == set(), f"{section.title}: printed but not documented"
    assert missing == set(), f"{section.title}: documented but not printed"
