"""``cxlctl completion SHELL``: print the shell completion script.

The scripts are click's own: they call back into ``cxlctl`` with
``_CXLCTL_COMPLETE=<shell>_complete`` and click answers from the command tree
and the ``shell_complete`` callbacks in :mod:`cxlctl.cli.complete`.  The copies
in ``completions/`` (installed by the wheel) are generated from :func:`script`
by ``tools/gen_docs.py``.
"""

from __future__ import annotations

import click

from . import CONTEXT

SHELLS = ("bash", "zsh", "fish")
PROG = "cxlctl"
COMPLETE_VAR = "_CXLCTL_COMPLETE"


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    from click.shell_completion import get_completion_class

    from . import main

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click.Choice already refused it
        raise click.BadParameter(f"unsupported shell {shell!r}")
    comp = cls(main, {}, PROG, COMPLETE_VAR)
    # the template directly: BashComplete.source() would run bash to check its version
    text: str = cls.source_template % comp.source_vars()
    return text


@click.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    Installed packages already ship these scripts (bash-completion, zsh
    site-functions, fish vendor_completions.d); use this command for a
    checkout or a user-level install. Candidates are live: memdev names come
    from the backend chosen on the command line (--sim, --backend,
    CXLCTL_BACKEND), command names from the catalogue.

    \b
    Examples:
      eval "$(cxlctl completion bash)"
      cxlctl completion bash > ~/.local/share/bash-completion/completions/cxlctl
      cxlctl completion zsh > "${fpath[1]}/_cxlctl"
      cxlctl completion fish > ~/.config/fish/completions/cxlctl.fish
    """
    click.echo(script(shell), nl=False)
