"""Golden-file comparison and the pinned CLI environment, shared by the test modules.

A plain module (not conftest.py) so test files import it by a name no other
directory's conftest can shadow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME (CXLCTL_REGEN_GOLDEN=1 rewrites it)."""
    path = GOLDEN / name
    if REGEN or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not REGEN:
            pytest.fail(f"golden file {name} was missing and has been written; re-run")
    assert text == path.read_text(), f"output differs from tests/golden/{name}"
