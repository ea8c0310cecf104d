"""`cxlctl --help` lists the commands from summaries.json without importing them.

The listing must be exactly what click prints once every command is imported, and
summaries.json must cover every registered command (tools/gen_docs.py writes it;
tests/test_docs.py checks it is up to date).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cxlctl.cli import COMMANDS

SUMMARIES = Path(__file__).parent.parent / "cxlctl" / "cli" / "summaries.json"

PRINT_HELP = """
import sys
from click.testing import CliRunner
from cxlctl.cli import main, COMMANDS
if sys.argv[1] == "loaded":
    import click
    ctx = click.Context(main, info_name="cxlctl", **main.context_settings)
    for name in COMMANDS:
        main.get_command(ctx, name)
print(CliRunner().invoke(main, ["--help"]).stdout)
print(sorted(m for m in sys.modules if m.startswith("cxlctl.cli.")))
"""


def help_text(mode: str, columns: str) -> tuple[str, str]:
    env = {**os.environ, "COLUMNS": columns}
    r = subprocess.run(
        [sys.executable, "-c", PRINT_HELP, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    text, _, modules = r.stdout.rpartition("\n[")
    return text, modules


def test_every_command_has_a_summary() -> None:
    assert set(json.loads(SUMMARIES.read_text())) == set(COMMANDS)


def test_help_from_summaries_is_clicks_own_listing() -> None:
    for columns in ("60", "80", "120"):
        static, modules = help_text("static", columns)
        loaded, _ = help_text("loaded", columns)
        assert static == loaded
        assert "cxlctl.cli.basic" not in modules  # no command module was imported
    assert "identify" in static
