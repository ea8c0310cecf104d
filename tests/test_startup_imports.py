"""What each fast CLI path imports (start-up cost is imports): checked in a subprocess.

Each fast path has a list of the modules it may import beyond its floor (the
interpreter plus ``click, ctypes, fcntl, json, ioctl_opt``, what benchmarks/run.py
compares with). A new import on one of these paths fails here with the chain that
imported it. Fix it by importing the module inside the function that needs it
(``import tempfile`` in the function that saves, ``from .. import render as rd``
in the command body), or by not constructing things at import time. If the path
genuinely needs the module, add it to the path's list below and measure with
``python benchmarks/run.py --only cli`` (README, Performance). Behaviour, not timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: the floor benchmarks/run.py measures the JSON, help and completion paths against
FLOOR = "import click, ctypes, fcntl, json, ioctl_opt"

#: Runs ``cxlctl ARGS`` through the console script's entry point and reports every
#: module it imported with the module that imported it first, and whether the
#: garbage collector was running again (and frozen) at the end.
RUN = """
import gc, json, sys

importers = {}


class Who:
    def find_spec(self, name, path=None, target=None):
        f = sys._getframe(1)
        while f is not None and f.f_globals.get("__name__", "").startswith(
            ("importlib", "_frozen_importlib")
        ):
            f = f.f_back
        importers.setdefault(name, f.f_globals.get("__name__", "?") if f else "?")
        return None


sys.meta_path.insert(0, Who())
sys.argv = ["cxlctl", *json.loads(sys.argv[1])]
from cxlctl.__main__ import main
try:
    main()
except SystemExit:
    pass
finally:
    sys.stdout.flush()
    report = {
        "modules": sorted(sys.modules),
        "importers": importers,
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count(),
    }
    sys.stderr.write("\\nREPORT=" + json.dumps(report) + "\\n")
"""

#: modules of ours on every path: the entry point, the click group, its helpers
CLI = {
    "cxlctl",
    "cxlctl.__main__",
    "cxlctl.errors",
    "cxlctl.cli",
    "cxlctl.cli.complete",
    "cxlctl.cli.options",
    "cxlctl.cli.output",
}
#: what a command on the simulator needs: the library, the simulated kernel and device
SIM_COMMAND = CLI | {
    "cxlctl.backends",
    "cxlctl.mailbox",
    "cxlctl.mailbox.layouts",
    "cxlctl.mailbox.linux",  # Linux's input rules (a few constants, no imports)
    "cxlctl.mailbox.names",
    "cxlctl.memdev",
    "cxlctl.record",
    "cxlctl.render",
    "cxlctl.sim",
    "cxlctl.sim.device",
    "cxlctl.sim.device.background",
    "cxlctl.sim.device.commands",
    "cxlctl.sim.device.events",
    "cxlctl.sim.device.features",
    "cxlctl.sim.device.media",
    "cxlctl.sim.device.model",
    "cxlctl.sim.driver",
    "cxlctl.sim.driver.mbox",
    "cxlctl.sim.state",
    "cxlctl.sysfs",
    "cxlctl.transport",
    "cxlctl.uapi",
    "cxlctl.units",
}
#: modules outside cxlctl and the floor any path may import: click's gettext looks
#: the locale up; cli.output installs the signal handlers; click wraps help text;
#: the entry point pauses the garbage collector (gc is built in)
OTHERS = {"gc", "locale", "_locale", "signal", "textwrap", "click._textwrap"}

#: args -> every module of ours the path may import
FAST_PATHS: dict[tuple[str, ...], set[str]] = {
    ("--help",): CLI,
    ("--sim", "identify", "--json"): SIM_COMMAND
    | {"cxlctl.cli.basic", "cxlctl.cli.topology", "cxlctl.mailbox.memdev"},
    ("--sim", "list", "--json"): SIM_COMMAND | {"cxlctl.cli.basic", "cxlctl.cli.topology"},
    ("--sim", "health", "--json"): SIM_COMMAND | {"cxlctl.cli.info", "cxlctl.mailbox.health"},
}


def run_report(args: list[str], **env: str) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **env},
        timeout=120,
    )
    marker = r.stderr.rpartition("REPORT=")[2]
    assert marker, r.stderr
    report: dict[str, object] = json.loads(marker)
    return report


def modules_of(args: list[str], **env: str) -> set[str]:
    mods = run_report(args, **env)["modules"]
    assert isinstance(mods, list)
    return set(mods)


def floor_modules() -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{FLOOR}; import sys, json; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(json.loads(out))


def chain(importers: dict[str, str], module: str) -> str:
    """``cxlctl.cli.basic -> cxlctl.render -> tempfile``: who pulled MODULE in."""
    path = [module]
    while path[-1] in importers and importers[path[-1]] not in path and len(path) < 12:
        path.append(importers[path[-1]])
    return " <- ".join(path)


@pytest.mark.parametrize("args", list(FAST_PATHS), ids=" ".join)
def test_a_fast_path_imports_only_its_modules(args: tuple[str, ...]) -> None:
    report = run_report(list(args))
    mods = report["modules"]
    importers = report["importers"]
    assert isinstance(mods, list)
    assert isinstance(importers, dict)
    extra = set(mods) - floor_modules()
    allowed = FAST_PATHS[args]
    unexpected = sorted(
        m
        for m in extra
        if m not in allowed
        and m not in OTHERS
        and not (m.startswith("_") and m.lstrip("_") in extra)  # C halves: _bisect
        and not m.startswith("encodings.")
    )
    assert not unexpected, (
        f"`cxlctl {' '.join(args)}` now imports {len(unexpected)} module(s) it did not "
        "before; every one costs start-up time on a path scripts call thousands of "
        "times. Import them lazily (inside the function that needs them), or add "
        "them to FAST_PATHS in tests/test_startup_imports.py after measuring with "
        "`python benchmarks/run.py --only cli`:\n  "
        + "\n  ".join(chain(importers, m) for m in unexpected)
    )


@pytest.mark.parametrize("args", [a for a in FAST_PATHS if "--json" in a], ids=" ".join)
def test_json_paths_import_neither_rich_nor_dataclasses(args: tuple[str, ...]) -> None:
    mods = modules_of(list(args))
    assert "cxlctl.memdev" in mods  # it did run the command
    assert not {m for m in mods if m.startswith("rich")}
    assert "dataclasses" not in mods, "a dataclass on the JSON path costs start-up time"
    assert "tempfile" not in mods, "tempfile (shutil, random, bz2, lzma) costs ~2.5 ms"


def test_the_collector_is_paused_for_start_up_and_resumed_frozen() -> None:
    """The entry point pauses the garbage collector for the imports; the command
    runs with it enabled again, the start-up's objects frozen (never rescanned)."""
    report = run_report(["--sim", "identify", "--json"])
    assert report["gc_enabled"] is True
    frozen = report["gc_frozen"]
    assert isinstance(frozen, int)
    assert frozen > 1000
    help_report = run_report(["--help"])  # no command ran: nothing to resume for
    assert help_report["gc_frozen"] == 0


def test_help_imports_no_library_module() -> None:
    mods = modules_of(["--help"])
    assert "cxlctl.cli" in mods
    assert not {m for m in mods if m.startswith("cxlctl.") and m not in CLI}


def test_a_command_completion_request_imports_no_library_module() -> None:
    env = {"_CXLCTL_COMPLETE": "bash_complete", "COMP_WORDS": "cxlctl ", "COMP_CWORD": "1"}
    mods = modules_of([], **env)
    assert not {m for m in mods if m.startswith("cxlctl.") and m not in CLI} - {
        "cxlctl.cli.completion"
    }
    assert not {m for m in mods if m.startswith(("rich", "ctypes"))}
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
    mods = modules_of([], **env)
    assert not {m for m in mods if m.startswith("cxlctl.") and m not in CLI} - {
        "cxlctl.cli.completion"
    }


def test_a_table_imports_rich() -> None:
    assert "rich.table" in modules_of(["--sim", "list"])
