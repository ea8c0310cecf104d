"""Shell-completion candidates for click's ``shell_complete`` callbacks.

Each function has click's callback signature ``(ctx, param, incomplete)`` and
returns the candidates that start with ``incomplete``.  They run only while a
shell asks for completions (``_CXLCTL_COMPLETE=bash_complete cxlctl ...``), so
this module imports nothing heavy at import time, and every callback swallows
errors: completion must never print a traceback or hang the shell.

Attach them with ``shell_complete=``::

    @click.argument("memdev", shell_complete=complete.memdevs)
    @click.argument("command", shell_complete=complete.kernel_commands)
    @click.option("--log", shell_complete=complete.logs)

``memdevs_argument`` in :mod:`cxlctl.cli` already carries :func:`memdevs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from click.shell_completion import CompletionItem

    Candidates = list[CompletionItem]


def _safe(
    fn: Callable[[click.Context, click.Parameter, str], Candidates],
) -> Callable[[click.Context, click.Parameter, str], Candidates]:
    """Any error while completing means "no candidates", never a traceback."""

    def wrapper(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
        try:
            return fn(ctx, param, incomplete)
        except Exception:
            return []

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _items(pairs: Iterable[tuple[str, str | None]], incomplete: str) -> Candidates:
    from click.shell_completion import CompletionItem

    return [CompletionItem(v, help=h) for v, h in pairs if v.startswith(incomplete)]


def backend_name(ctx: click.Context) -> str | None:
    """The backend the command line selects so far: ``--sim``, ``--backend``
    (click has already applied ``CXLCTL_BACKEND`` to it), else the default."""
    root = ctx.find_root()
    if root.params.get("sim"):
        return "sim"
    name = root.params.get("backend")
    return str(name) if name else None


@_safe
def memdevs(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Memdev names of the selected backend (sysfs or the simulator), minus
    those already on the command line; ``/dev/cxl/m`` completes to device paths."""
    from ..backends import open_backend

    names = open_backend(backend_name(ctx)).names()
    given = ctx.params.get(param.name or "")
    seen = set(given) if isinstance(given, (list, tuple)) else set()
    prefix = "/dev/cxl/" if incomplete.startswith("/") else ""
    return _items(((prefix + n, None) for n in names if n not in seen), incomplete)


def _commands(incomplete: str, *, kernel_only: bool) -> Candidates:
    from .. import mailbox as mb

    def ok(c: mb.Command[Any]) -> bool:
        return c.kernel_id is not None or not kernel_only

    pairs = [(c.name, c.title) for c in mb.CATALOGUE if ok(c)]
    pairs += [
        (alias, f"= {target}")
        for alias, target in mb.ALIASES.items()
        if target in mb.BY_NAME and ok(mb.BY_NAME[target])
    ]
    return _items(sorted(pairs), incomplete.lower())


@_safe
def kernel_commands(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Catalogue names and aliases of commands Linux has a command id for (``send``)."""
    return _commands(incomplete, kernel_only=True)


@_safe
def catalogue_commands(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Every catalogue name and alias (``decode``: no kernel involved)."""
    return _commands(incomplete, kernel_only=False)


@_safe
def opcodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Mailbox opcodes as ``0x4000``, with the command's spec name as help (``raw``)."""
    from .. import mailbox as mb

    pairs = sorted((f"{c.opcode:#06x}", c.title) for c in mb.CATALOGUE)
    return _items(pairs, incomplete.lower())


@_safe
def logs(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Log names (``cel``, ``vendor-debug``...) and known log UUIDs, with the log's
    spec name as help.  A word that prefixes neither matches the spec names
    instead (``effects`` completes to the CEL's UUID)."""
    from .. import mailbox as mb

    names = sorted((a, mb.KNOWN_LOGS.get(u, u)) for a, u in mb.LOG_ALIASES.items())
    pairs = names + sorted(mb.KNOWN_LOGS.items())
    found = _items(pairs, incomplete.lower())
    if found or not incomplete:
        return found
    word = incomplete.lower()
    return _items(((u, n) for u, n in mb.KNOWN_LOGS.items() if word in n.lower()), "")


@_safe
def files(ctx: click.Context, param: click.Parameter, incomplete: str) -> Candidates:
    """Let the shell complete file names (what ``click.Path`` does)."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]
