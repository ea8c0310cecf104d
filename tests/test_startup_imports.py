"""What each CLI path imports (start-up cost is imports): checked in a subprocess.

`--help` and a completion request import nothing of the library (only click,
cxlctl.cli, its completion helpers and the exception tree); the JSON paths never
import rich nor build dataclasses; a table imports rich. Behaviour, not timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

RUN = """
import json, sys
sys.argv = ["cxlctl", *json.loads(sys.argv[1])]
from cxlctl.cli import run
try:
    run()
except SystemExit:
    pass
finally:
    sys.stdout.flush()
    sys.stderr.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""

#: the library and everything only a command needs
LIBRARY = (
    "cxlctl.backends",
    "cxlctl.memdev",
    "cxlctl.device",
    "cxlctl.transport",
    "cxlctl.uapi",
    "cxlctl.mailbox",
    "cxlctl.render",
    "cxlctl.sim",
    "cxlctl.record",
    "ctypes",
    "rich",
)


def modules_of(args: list[str], **env: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **env},
        timeout=120,
    )
    marker = r.stderr.rpartition("MODULES=")[2]
    assert marker, r.stderr
    return set(json.loads(marker))


def library_modules(mods: set[str]) -> set[str]:
    return {m for m in mods if m.startswith(LIBRARY)}


def test_help_imports_no_library_module() -> None:
    mods = modules_of(["--help"])
    assert "cxlctl.cli" in mods
    assert library_modules(mods) == set()
    # no command module (options.py: the grammar's building blocks, light as complete.py)
    helpers = {"cxlctl.cli.complete", "cxlctl.cli.output", "cxlctl.cli.options"}
    assert not {m for m in mods if m.startswith("cxlctl.cli.") and m not in helpers}


def test_a_command_completion_request_imports_no_library_module() -> None:
    env = {"_CXLCTL_COMPLETE": "bash_complete", "COMP_WORDS": "cxlctl ", "COMP_CWORD": "1"}
    mods = modules_of([], **env)
    assert library_modules(mods) == set()
    # and it answered from summaries.json, with every command
    out = subprocess.run(
        [sys.executable, "-m", "cxlctl"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    ).stdout
    assert "plain,identify" in out.splitlines()


def test_option_completion_imports_no_library_module() -> None:
    env = {"_CXLCTL_COMPLETE": "bash_complete", "COMP_WORDS": "cxlctl --", "COMP_CWORD": "1"}
    assert library_modules(modules_of([], **env)) == set()


@pytest.mark.parametrize(
    "args",
    [
        ["--sim", "identify", "--json"],
        ["--sim", "list", "--json"],
        ["--sim", "health", "--json"],
    ],
)
def test_json_paths_import_neither_rich_nor_dataclasses(args: list[str]) -> None:
    mods = modules_of(args)
    assert "cxlctl.memdev" in mods  # it did run the command
    assert not {m for m in mods if m.startswith("rich")}
    assert "dataclasses" not in mods, "a dataclass on the JSON path costs start-up time"


def test_a_table_imports_rich() -> None:
    assert "rich.table" in modules_of(["--sim", "list"])
