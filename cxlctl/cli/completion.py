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


# click 8.4.0 and 8.4.1 ship a fish script that cannot work (pallets/click#3502:
# its unquoted \n splits the script, and fish flattens the newline-separated
# records); this is the protocol click 8.4.2 went back to.  Registering it under
# "fish" makes every click version produce and answer the same, working script.
_SOURCE_FISH = """\
function %(complete_func)s;
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \\
COMP_CWORD=(commandline -t) %(prog_name)s);

    for completion in $response;
        set -l metadata (string split -m 1 "," $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command %(prog_name)s --arguments \\
"(%(complete_func)s)";
"""


def register() -> None:
    """Install the fixed fish support; call before click answers a completion
    request (``run()`` does when ``_CXLCTL_COMPLETE`` is set)."""
    from click.shell_completion import CompletionItem, FishComplete, add_completion_class

    class Fish(FishComplete):
        source_template = _SOURCE_FISH

        def format_completion(self, item: CompletionItem) -> str:
            # one line per candidate: "type,value" then a tab and the description
            value = str(item.value).replace("\n", " ")
            if item.help:
                return f"{item.type},{value}\t{' '.join(item.help.split())}"
            return f"{item.type},{value}"

    add_completion_class(Fish, "fish")


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    from click.shell_completion import get_completion_class

    from . import main

    register()
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
