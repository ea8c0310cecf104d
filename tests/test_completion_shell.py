"""The committed completion scripts, driven for real: a shell in a pseudo-terminal
sources completions/<script>, we type a command line and press TAB, and the
candidates must come back from the installed ``cxlctl`` console script."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pexpect
else:
    pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()=>][0-9A-Z]?|[\r\x07]")
PROMPT = "RDY> "

pytestmark = pytest.mark.slow


def _cxlctl_bin() -> Path | None:
    """The installed console script (next to this interpreter, else on PATH)."""
    here = Path(sys.executable).parent / "cxlctl"
    if here.exists():
        return here
    found = shutil.which("cxlctl")
    return Path(found) if found else None


CXLCTL = _cxlctl_bin()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    assert CXLCTL is not None
    env.update(
        PATH=f"{CXLCTL.parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        TERM="xterm",
        NO_COLOR="1",
        PS1=PROMPT,
    )
    return env


class Shell:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child

    def read_until_quiet(self, quiet: float = 0.8, limit: float = 15.0) -> str:
        """Everything the shell prints until it is silent for ``quiet`` seconds."""
        buf, end, last = "", time.monotonic() + limit, time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
            buf += chunk
            last = time.monotonic()
        return ANSI.sub("", buf)

    def run(self, line: str) -> str:
        self.child.sendline(line)
        return self.read_until_quiet()

    def complete(self, line: str, wanted: list[str], max_tabs: int = 3) -> str:
        """Type ``line``, press TAB until every wanted candidate was shown (readline
        rings the bell on the TAB after one that inserted a common prefix, so a
        list can take a third TAB), then clear the line with Ctrl-C."""
        self.child.send(line)
        seen = self.read_until_quiet(0.3)
        for _ in range(max_tabs):
            self.child.send("\t")
            seen += self.read_until_quiet()
            if all(w in seen for w in wanted):
                break
        self.child.send("\x03")
        self.read_until_quiet(0.5)
        return seen

    def close(self) -> None:
        self.child.terminate(force=True)


def _spawn(shell: str, tmp_path: Path) -> Shell:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed (Debian: apt-get install {shell})")
    if CXLCTL is None:
        pytest.skip("the cxlctl console script is not installed (pip install -e .)")
    env = _env(tmp_path)
    if shell == "bash":
        args, setup = ["--norc", "--noprofile"], f"source {COMPLETIONS / 'cxlctl.bash'}"
    elif shell == "zsh":
        args = ["-f"]
        setup = (
            f"PS1='{PROMPT}'; unsetopt PROMPT_SP; autoload -Uz compinit && compinit -u -D"
            f" && source {COMPLETIONS / '_cxlctl'}"
        )
    else:
        args = ["--no-config"]
        setup = f"function fish_prompt; echo -n '{PROMPT}'; end; source {COMPLETIONS}/cxlctl.fish"
    child = pexpect.spawn(
        exe, args, env=env, cwd=str(tmp_path), encoding="utf-8", dimensions=(60, 220)
    )
    sh = Shell(child)
    sh.read_until_quiet()
    sh.run(setup)
    return sh


SHELLS = ["bash", "zsh", "fish"]


@pytest.mark.parametrize("shell", SHELLS)
def test_memdev_names_complete_from_the_simulator(shell: str, tmp_path: Path) -> None:
    sh = _spawn(shell, tmp_path)
    try:
        out = sh.complete("cxlctl --sim identify m", ["mem0", "mem1", "mem2"])
    finally:
        sh.close()
    for name in ("mem0", "mem1", "mem2"):
        assert name in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("shell", SHELLS)
def test_send_completes_catalogue_names(shell: str, tmp_path: Path) -> None:
    # fish's pager shows as many as fit on a row; any three names prove the path
    wanted = ["get-fw-info", "get-health-info", "get-lsa"] if shell != "fish" else []
    sh = _spawn(shell, tmp_path)
    try:
        out = sh.complete("cxlctl --sim send mem0 get-", wanted)
    finally:
        sh.close()
    from cxlctl import mailbox as mb

    shown = {c.name for c in mb.CATALOGUE if c.kernel_id is not None and c.name in out}
    assert set(wanted) <= shown, out
    assert len(shown) >= 3, out
    assert "Traceback" not in out


@pytest.mark.parametrize("shell", SHELLS)
def test_subcommand_names_complete(shell: str, tmp_path: Path) -> None:
    sh = _spawn(shell, tmp_path)
    try:
        out = sh.complete("cxlctl ident", ["identify"])
    finally:
        sh.close()
    assert "identify" in out, out
