"""Shared fixtures: a CLI runner pinned for reproducible output, simulated devices."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cxlctl.cli import main
from cxlctl.sim import SimDevice, make_devices

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("CXLCTL_REGEN_GOLDEN") == "1"

CLI_ENV = {
    "NO_COLOR": "1",
    "COLUMNS": "120",
    "CXLCTL_BACKEND": "sim",
    "CXLCTL_SIM_DEVICES": "",
    "CXLCTL_SIM_PROFILE": "",
    "CXLCTL_SIM_RAW": "",
    "CXLCTL_SIM_STATE": "",
    "CXLCTL_DEBUG": "",
}


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``cxlctl ARGS`` in process on the simulator; returns click's Result."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: bytes | str | None = None
    ) -> Result:
        runner = CliRunner()
        return runner.invoke(main, list(args), env={**CLI_ENV, **(env or {})}, input=input)

    return run


@pytest.fixture
def cli_json(cli: Callable[..., Result]) -> Callable[..., Any]:
    """Run a command that must succeed and return its parsed JSON stdout."""

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        r = cli(*args, env=env)
        assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
        return json.loads(r.stdout)

    return run


def golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME (CXLCTL_REGEN_GOLDEN=1 rewrites it)."""
    path = GOLDEN / name
    if REGEN or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not REGEN:
            pytest.fail(f"golden file {name} was missing and has been written; re-run")
    assert text == path.read_text(), f"output differs from tests/golden/{name}"


@pytest.fixture
def pmem() -> SimDevice:
    """A simulated persistent device configured like the reference QEMU 10 device."""
    (dev,) = make_devices(["pmem"], profile="qemu")
    return dev
