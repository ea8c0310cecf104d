"""The safety contract, checked for every verb that changes a device (issue 11).

Found by walking the click tree (a command with ``--dry-run``), so a new change verb
cannot skip it; each is run the way docs/json.md's section runs it (its ``Setup:``
lines first, the same environment), on a fresh simulator state:

* ``--dry-run`` exits 0 and changes nothing (every state file compared);
* a verb that asks (``-y/--yes``) refuses without it when there is no terminal:
  exit 2, one line naming what it would change, nothing changed;
* on a terminal (a pseudo-terminal) it asks, naming the objects (memdevs with their
  serials), and "n" changes nothing (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import Result
from test_change import _spawn, snapshot
from test_json_doc import INPUT, SECTIONS, set_up

from cxlctl.cli import main

Cli = Callable[..., Result]

#: a section whose Command: line reads instead of changing (poison lists): the
#: changing form of the same verb
CHANGING_FORM = {"poison": ["poison", "mem0", "--inject", "0x40", "-y", "--json"]}
#: on the simulator the platform offers no EINJ (exit 4 even under --dry-run: the
#: kernel's debugfs file is read first); the fake-debugfs tests cover it
KERNEL_ONLY = {"inject-protocol-error"}


def _change_verbs() -> dict[str, bool]:
    """Every command with --dry-run -> whether it asks (has -y/--yes)."""
    ctx = click.Context(main)
    out = {}
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        opts = {o for p in cmd.params for o in getattr(p, "opts", ())}
        if "--dry-run" in opts:
            out[name] = "-y" in opts
    return out


VERBS = _change_verbs()
BY_VERB = {s.title.split()[0]: s for s in SECTIONS if "--dry-run" not in s.args}


def test_the_walk_sees_every_kind_of_change_verb() -> None:
    assert {"zero-labels", "update-firmware", "create-region", "set-timestamp"} <= set(VERBS)
    assert VERBS["zero-labels"]
    assert not VERBS["set-timestamp"]
    assert [v for v in VERBS if v not in BY_VERB] == []  # each has its json.md section


def _prepared(cli: Cli, tmp_path: Path, verb: str) -> tuple[list[str], dict[str, str], Path]:
    """The verb's invocation (its section's, ``$INPUT`` a file of INPUT), its
    environment with a fresh state directory, after the section's set-up ran."""
    env, args = set_up(cli, tmp_path, BY_VERB[verb], CXLCTL_SIM_TIME_SCALE="0")
    # a look first: the simulated kernel writes what its first probe found (the
    # endpoints, topology.json) when something first looks, a read-only `list` too
    assert cli("list", "-i", "-D", env=env).exit_code == 0
    return args(CHANGING_FORM.get(verb, BY_VERB[verb].args)), env, Path(env["CXLCTL_SIM_STATE"])


def _without(args: list[str], *drop: str) -> list[str]:
    return [a for a in args if a not in drop]


@pytest.mark.parametrize("verb", sorted(set(VERBS) - KERNEL_ONLY))
def test_dry_run_changes_nothing(cli: Cli, tmp_path: Path, verb: str) -> None:
    args, env, state = _prepared(cli, tmp_path, verb)
    before = snapshot(state)
    r = cli(*_without(args, "-y", "--yes"), "--dry-run", input=INPUT, env=env)
    assert r.exit_code == 0, r.stderr
    assert snapshot(state) == before
    r = cli(*args, input=INPUT, env=env)  # and the real run does change something
    assert r.exit_code == 0, r.stderr


ASKING = sorted(v for v, asks in VERBS.items() if asks and v not in KERNEL_ONLY)


@pytest.mark.parametrize("verb", ASKING)
def test_without_yes_and_a_terminal_nothing_changes(cli: Cli, tmp_path: Path, verb: str) -> None:
    args, env, state = _prepared(cli, tmp_path, verb)
    before = snapshot(state)
    r = cli(*_without(args, "-y", "--yes"), input=INPUT, env=env)
    assert r.exit_code == 2, r.stderr
    (line,) = r.stderr.splitlines()
    assert "refusing without confirmation (no terminal to ask on)" in line
    assert "pass -y/--yes" in line
    assert snapshot(state) == before


@pytest.mark.slow
@pytest.mark.parametrize("verb", ASKING)
def test_on_a_terminal_it_asks_and_no_changes_nothing(cli: Cli, tmp_path: Path, verb: str) -> None:
    args, env, state = _prepared(cli, tmp_path, verb)
    before = snapshot(state)
    argv = _without(args, "-y", "--yes", "--json")
    if "-i" in argv and argv[argv.index("-i") + 1] == "-":  # stdin is the terminal now
        argv[argv.index("-i") + 1] = str(tmp_path / "input")
    child = _spawn(argv, env)
    child.expect(r"cxlctl: [a-z-]+ will ")  # poison --inject is inject-media-poison
    child.expect_exact("Continue? [y/N]:")
    asked = str(child.before)
    child.sendline("n")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 1
    assert "(serial 0x" in asked, asked  # the memdevs it touches, by serial too
    assert snapshot(state) == before
