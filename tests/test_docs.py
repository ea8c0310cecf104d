"""Docs never drift from the code: completions/ and man/ are what tools/gen_docs.py
makes today, every command has examples, a man page and a README mention, and
every page is lint-clean for groff and mandoc.

After adding or changing a command: ``python tools/gen_docs.py`` (or ``make regen``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from cxlctl.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
REGEN = "run `python tools/gen_docs.py` (make regen) and commit the result"


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gen_docs = _gen_docs()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SOURCE_DATE_EPOCH", raising=False)
        gen_docs.generate(out)
    return out


@pytest.mark.slow
def test_regeneration_is_byte_identical(fresh: Path) -> None:
    assert gen_docs.differences(ROOT, fresh) == [], REGEN


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_committed_script(shell: str) -> None:
    fname = {v: k for k, v in gen_docs.COMPLETION_FILES.items()}[shell]
    r = CliRunner().invoke(main, ["completion", shell])
    assert r.exit_code == 0
    assert r.stdout == (ROOT / "completions" / fname).read_text(), REGEN


def _help(name: str) -> str:
    ctx = main.make_context("cxlctl", [], resilient_parsing=True)
    cmd = main.get_command(ctx, name)
    assert cmd is not None
    return cmd.help or ""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_has_examples(name: str) -> None:
    h = gen_docs.parse_help(_help(name))
    assert h.has_examples_block, f"{name}: add an 'Examples:' block (after a \\b line) to its help"
    assert h.examples, f"{name}: the Examples block is empty"
    for ex in h.examples:
        assert re.match(r"^([A-Z_]+=\S* )*(cxlctl |eval |source )", ex), f"{name}: {ex!r}"


#: label verbs whose runnable examples must name a --size: the simulated label area
#: is 256 MiB (131,072 commands), and gen_docs runs every example twice
_BULK = ("read-labels", "zero-labels")


@pytest.mark.parametrize("name", _BULK)
def test_runnable_label_examples_are_cheap(name: str) -> None:
    for ex in gen_docs.parse_help(_help(name)).examples:
        r = gen_docs.runnable(ex)
        if r is not None and name in r[1]:
            args = r[1]
            assert "-s" in args or "--size" in args or any(a.startswith("--size=") for a in args), (
                f"{name}: {ex!r} transfers the whole simulated label area; give -s"
            )


def test_main_help_has_examples() -> None:
    assert gen_docs.parse_help(main.help).examples


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_a_man_page(name: str) -> None:
    page = MAN / f"cxlctl-{name}.1"
    assert page.is_file(), f"man/{page.name} is missing: {REGEN}"
    assert f"\n.SH NAME\n{gen_docs.esc(f'cxlctl-{name}')} \\- " in page.read_text()


def _readme_mentions(readme: str, name: str) -> bool:
    """``cxlctl [global options] NAME`` anywhere, or NAME as a code span."""
    glob = r"(?:\s+--?[\w-]+(?:[ =](?:kernel|sim|auto|always|never))?)*"
    return bool(
        re.search(rf"\bcxlctl{glob}\s+{re.escape(name)}(?![\w-])", readme)
        or re.search(rf"`{re.escape(name)}`", readme)
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_readme_mentions_command(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert _readme_mentions(readme, name), f"README.md does not mention `cxlctl {name}`"


def _pages() -> list[Path]:
    return sorted(MAN.glob("*.1"))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_man_page_is_groff_clean(page: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    p = subprocess.run(
        ["groff", "-ww", "-z", "-man", str(page)], capture_output=True, text=True, check=False
    )
    assert (p.returncode, p.stderr) == (0, "")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_man_page_is_mandoc_clean(page: Path) -> None:
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (apt-get install mandoc)")
    p = subprocess.run(["mandoc", "-Tlint", str(page)], capture_output=True, text=True, check=False)
    assert (p.returncode, p.stdout + p.stderr) == (0, "")


def test_man_pages_have_every_section() -> None:
    for page in _pages():
        text = page.read_text()
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                        "ENVIRONMENT", "FILES", "SEE ALSO"):  # fmt: skip
            assert f"\n.SH {section}\n" in text, (page.name, section)
        assert "\n.SH EXAMPLES\n" in text, page.name


def test_main_page_lists_every_command() -> None:
    text = (MAN / "cxlctl.1").read_text()
    for name in COMMANDS:
        assert gen_docs.bold(f"cxlctl-{name}") + "(1)" in text, name


def test_examples_show_real_output() -> None:
    text = (MAN / "cxlctl-list.1").read_text()
    assert "$ cxlctl \\-\\-sim list\\fR\nCXL memdevs [simulated]" in text


def test_runnable_examples() -> None:
    r = gen_docs.runnable
    assert r("cxlctl --sim list") == ({}, ["--sim", "list"])
    assert r("CXLCTL_SIM_RAW=1 cxlctl --sim raw mem0 0x4000") == (
        {"CXLCTL_SIM_RAW": "1"},
        ["--sim", "raw", "mem0", "0x4000"],
    )
    assert r("cxlctl --sim identify --json | jq '.[0]'") is None
    assert r("cxlctl --sim send mem0 identify -o raw > id.bin") is None
    assert r("cxlctl list mem0") is None  # the kernel backend: machine-dependent
    assert r("cxlctl --sim send mem0 get-lsa -x '00 | 01'") == (
        {},
        ["--sim", "send", "mem0", "get-lsa", "-x", "00 | 01"],
    )


def test_roff_escaping() -> None:
    assert gen_docs.esc(".x -y \\z") == "\\&.x \\-y \\ez"
    assert gen_docs.esc("\u250f\u2501\u2503\u2502") == "+-||"
    assert gen_docs.esc("\u00e9") == "\\[u00E9]"
    assert gen_docs.prose("see `cxlctl query`") == "see \\fBcxlctl query\\fR"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    """README's set-up line ends in the test command; .ci/run runs exactly that line."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    m = re.search(
        r"^python3 -m venv \.venv && .* && (\.venv/bin/python -m pytest.*)$", readme, re.M
    )
    assert m, "README's install-and-test line is missing"
    ci = (root / ".ci" / "run").read_text().splitlines()
    assert m.group(1) in ci, f".ci/run does not run README's test command {m.group(1)!r}"
