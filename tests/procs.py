"""cxlctl as a process of its own, for what only a process shows: closed pipes,
streaming, signals, hangs, shell completion."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

#: ``cxlctl`` from this checkout, with the test's own interpreter
CXLCTL = [sys.executable, "-m", "cxlctl"]


def popen(
    *args: str, env: Mapping[str, str], stdin: bool = False, stderr: bool = False
) -> subprocess.Popen[bytes]:
    """``cxlctl ARGS`` started, stdout (and, if asked, stdin and stderr) piped; the
    caller checks the pipes are there, as mypy wants."""
    pipe = subprocess.PIPE
    return subprocess.Popen(
        [*CXLCTL, *args],
        stdin=pipe if stdin else None,
        stdout=pipe,
        stderr=pipe if stderr else None,
        env=dict(env),
    )


def bash_complete(
    words: str, cword: str, env: Mapping[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """One bash completion request (click's ``_CXLCTL_COMPLETE=bash_complete``)."""
    return subprocess.run(
        CXLCTL,
        capture_output=True,
        env={**env, "_CXLCTL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword},
        timeout=120,
    )
