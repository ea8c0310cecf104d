"""The command line: the click group, shared options, and the one error -> exit code place.

Subcommands live in sibling modules and are imported only when invoked (or when
help lists them), so a pipeline calling ``cxlctl identify --json`` never pays for
the code of forty other commands.  Register a new command in :data:`COMMANDS`.

Shell completion comes from the parameters themselves (click ``shell_complete``
callbacks in :mod:`cxlctl.cli.complete`): take MEMDEV arguments with the shared
:data:`memdevs_argument` (or ``click.argument("memdev",
shell_complete=complete.memdevs)`` for a single one) and they complete to the
memdevs of the backend selected on the command line; ``complete.kernel_commands``,
``complete.catalogue_commands``, ``complete.opcodes`` and ``complete.logs`` do the
same for mailbox command names, opcodes and log UUIDs; ``click.Choice`` completes
itself.  Give every command an ``Examples:`` block in its help, then run
``python tools/gen_docs.py`` to regenerate completions/ and man/ (tests/test_docs.py
fails until you do).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from .. import __version__
from ..errors import CxlError, ExitCode, UsageError, file_error
from . import complete, output
from .options import (
    fmt_of,
    memdevs_argument,
    memdevs_required,
    output_option,
    selected,
)

__all__ = [
    "CONTEXT",
    "App",
    "F",
    "app_of",
    "complete",
    "fmt_of",
    "memdevs_argument",
    "memdevs_required",
    "output_option",
    "read_payload",
    "selected",
]

if TYPE_CHECKING:  # the library is imported when a command needs it, not for --help/TAB
    from ..backends import Backend
    from ..render import Style

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """Per-invocation state on ``ctx.obj``: backend (lazily), style, debug.

    ``debug`` is the one place the CLI knows whether to show tracebacks and the
    details it otherwise leaves out: ``--debug`` or a non-empty ``CXLCTL_DEBUG``.
    ``jsonl``/``human`` and ``style.mode`` are what ``-o``/``-u`` chose (options.py).
    """

    def __init__(self, backend_name: str | None, color: str, debug: bool) -> None:
        self.backend_name = backend_name
        self.color = color
        self.debug = debug or bool(os.environ.get("CXLCTL_DEBUG"))
        self.jsonl = False
        self.human = False
        self._backend: Backend | None = None
        self._style: Style | None = None
        #: failures of some memdevs of a command over several (:meth:`each`),
        #: reported after the others' results (CxlGroup.invoke)
        self.failures: list[CxlError] = []

    def each(self, names: Iterable[str], fn: Callable[[str], _T]) -> list[_T]:
        """``[fn(name) for name in names]``, but one memdev's :class:`CxlError` does
        not lose the others' results: it is kept, the rest run, their results are
        printed, then one line per failed memdev and the first failure's exit code
        (:meth:`CxlGroup.invoke`).  When none succeeded it is raised at once, so a
        failure prints no (empty) result, as with one memdev."""
        out: list[_T] = []
        failed: list[CxlError] = []
        for name in names:
            try:
                out.append(fn(name))
            except CxlError as e:
                failed.append(e)
        self.keep(failed, bool(out))
        return out

    def keep(self, failed: Sequence[CxlError], succeeded: bool) -> None:
        """:meth:`each`'s rule for failures a library loop collected: kept for the
        end when some memdev succeeded, else the first is raised now."""
        if not failed:
            return
        self.failures.extend(failed if succeeded else failed[1:])
        if not succeeded:
            raise failed[0]

    @property
    def style(self) -> Style:
        if self._style is None:
            from ..render import Style

            self._style = Style(self.color)
        return self._style

    def json(self, data: Any) -> None:
        """Data on stdout as JSON (``-o jsonl``: one array element a line), human
        formatted with ``-u``."""
        from .. import render as rd

        if self.human:
            data = rd.humanize(data)
        rd.dump_json(data, lines=self.jsonl)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from ..backends import open_backend

            self._backend = open_backend(self.backend_name)
            resume_gc()  # the library is loaded: what follows is the command's work
        return self._backend


def _fail_all(errors: Sequence[CxlError]) -> NoReturn:
    """One line per failure, in the order they happened; the first one's exit code."""
    for e in errors:
        output.message(f"cxlctl: {e.message}" + (f" (hint: {e.hint})" if e.hint else ""))
    raise click.exceptions.Exit(int(errors[0].exit_code))


def _fail(message: str, code: int, hint: str | None = None) -> NoReturn:
    line = f"cxlctl: {message}"
    if hint:
        line += f" (hint: {hint})"
    output.message(line)
    raise click.exceptions.Exit(code)


#: command name -> "module:function" in this package, imported on demand.
COMMANDS: dict[str, str] = {
    "list": "basic:list_cmd",
    "query": "basic:query",
    "identify": "basic:identify",
    "send": "send:send",
    "raw": "send:raw",
    "health": "info:health",
    "partition": "info:partition",
    "fw-info": "info:fw_info",
    "alert-config": "info:alert_config",
    "shutdown-state": "info:shutdown_state",
    "timestamp": "info:timestamp",
    "security-state": "info:security_state",
    "event-interrupt-policy": "info:event_interrupt_policy",
    "logs": "logs:logs",
    "cel": "logs:cel",
    "get-log": "logs:get_log",
    "log-caps": "logs:log_caps",
    "read-labels": "labels:read_labels",
    "write-labels": "labels:write_labels",
    "zero-labels": "labels:zero_labels",
    "disable-memdev": "admin:disable_memdev",
    "enable-memdev": "admin:enable_memdev",
    "set-alert-config": "admin:set_alert_config",
    "update-firmware": "device:update_firmware",
    "sanitize": "device:sanitize",
    "secure-erase": "device:secure_erase",
    "wait-sanitize": "device:wait_sanitize",
    "inject-media-poison": "device:inject_media_poison",
    "clear-media-poison": "device:clear_media_poison",
    "inject-protocol-error": "device:inject_protocol_error",
    "set-timestamp": "settings:set_timestamp",
    "set-shutdown-state": "settings:set_shutdown_state",
    "clear-log": "settings:clear_log",
    "set-event-interrupt-policy": "settings:set_event_interrupt_policy",
    "decode": "decode:decode",
    "completion": "completion:completion",
    "poison": "media:poison",
    "scan-media-caps": "media:scan_media_caps",
    "events": "events:events",
    "create-region": "regions:create_region",
    "enable-region": "regions:enable_region",
    "disable-region": "regions:disable_region",
    "destroy-region": "regions:destroy_region",
    "reserve-dpa": "regions:reserve_dpa",
    "free-dpa": "regions:free_dpa",
    "enable-port": "regions:enable_port",
    "disable-port": "regions:disable_port",
    "disable-bus": "regions:disable_bus",
    "set-partition": "regions:set_partition",
    "monitor": "events:monitor",
    "batch": "batch:batch",
}


def _summaries() -> dict[str, str]:
    import json

    try:
        with open(os.path.join(os.path.dirname(__file__), "summaries.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class CxlGroup(click.Group):
    """Lazy subcommands; translates every :class:`CxlError` into one stderr line
    and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The Commands section of --help from summaries.json (written by
        tools/gen_docs.py, drift-tested), importing no command module; falls back
        to click's own way if a command has no summary."""
        names = self.list_commands(ctx)
        summaries = _summaries()
        if not names or any(n not in summaries and n not in self.commands for n in names):
            super().format_commands(ctx, formatter)
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for n in names:
            # a stand-in Command shortens the summary exactly as click would
            cmd = self.commands.get(n) or click.Command(n, help=summaries[n])
            rows.append((n, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # click sizes help with shutil.get_terminal_size(), whose import (with zlib,
        # bz2, lzma) costs more than the rest of --help; the same width, computed here
        if parent is None and "terminal_width" not in extra:
            limit = extra.get("max_content_width") or self.context_settings.get(
                "max_content_width", 80
            )
            width = _help_width(int(limit))
            if width is not None:
                extra["terminal_width"] = width
        return super().make_context(info_name, args, parent, **extra)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Subcommand names with their summaries from summaries.json (as click
        would give them), importing no command module; options as click does."""
        from click.shell_completion import CompletionItem

        summaries = _summaries()
        names = [n for n in self.list_commands(ctx) if n.startswith(incomplete)]
        if any(n not in summaries and n not in self.commands for n in names):
            return super().shell_complete(ctx, incomplete)
        items = []
        for n in names:
            cmd = self.commands.get(n) or click.Command(n, help=summaries[n])
            if not cmd.hidden:
                items.append(CompletionItem(n, help=cmd.get_short_help_str()))
        # click.Command.shell_complete: the group's own options
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attr = COMMANDS[cmd_name].split(":")
            cmd = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
            self.add_command(cmd, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            name = args[0] if args else ""
            if getattr(e, "command_name", name) != name or name.startswith("-"):
                raise
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            msg = f"no such command {name!r}"
            if close:
                msg += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
            raise click.UsageError(msg, ctx) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        def takes_value(name: str) -> frozenset[str]:
            return _value_options(self.get_command(ctx, name))

        return super().parse_args(ctx, hoist_global_options(args, takes_value))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's main, with every usage error as one line (click prints a usage
        block): ``cxlctl: list: no such option '--jsno' (did you mean '--json'?);
        see 'cxlctl list --help'``."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as e:
            output.message(_click_message(e))
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            output.message("cxlctl: interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _device_warnings():
                rv = super().invoke(ctx)
            sys.stdout.flush()
            failures = ctx.obj.failures if isinstance(ctx.obj, App) else []
            if failures:  # some memdevs failed, the others' results are out
                _fail_all(failures)
            return rv
        except CxlError as e:
            if _debug(ctx):
                raise
            _fail_all([e, *(ctx.obj.failures if isinstance(ctx.obj, App) else [])])
        except (BrokenPipeError, output.OutputError) as e:
            raise click.exceptions.Exit(output.report_output_error(e)) from None
        except KeyboardInterrupt as e:
            raise click.exceptions.Exit(_interrupted(e)) from None
        except OSError as e:  # anything the library did not classify
            if _debug(ctx):
                raise
            sub = ctx.invoked_subcommand or "cxlctl"
            if e.filename is not None:  # name the file, always
                err = file_error(sub, os.fsdecode(e.filename), e)
                _fail(err.message, int(ExitCode.FAILURE), err.hint)
            name = errno.errorcode.get(e.errno or 0, "")
            _fail(f"{sub}: {e.strerror or e}" + (f" [{name}]" if name else ""), 1)


@contextlib.contextmanager
def _device_warnings() -> Iterator[None]:
    """The library's :class:`~cxlctl.errors.DeviceWarning` (a device answered oddly,
    the value was decoded anyway) as one visible-safe ``cxlctl: warning:`` line on
    stderr, every time; other warnings as Python shows them."""
    import warnings

    from ..errors import DeviceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DeviceWarning)
        shown = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, DeviceWarning):
                output.message(f"cxlctl: warning: {message}")
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _help_width(max_width: int) -> int | None:
    """What click.HelpFormatter computes from ``shutil.get_terminal_size()``:
    COLUMNS, else the terminal of stdout, else 80; clamped to max_width - 2 and at
    least 50. None when click's FORCED_WIDTH is set (click then decides)."""
    import click.formatting

    if click.formatting.FORCED_WIDTH is not None:
        return None
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, max_width) - 2, 50)


def _debug(ctx: click.Context) -> bool:
    """App.debug; before the group callback made the App, nothing can have failed
    that --debug is about, so False."""
    return isinstance(ctx.obj, App) and ctx.obj.debug


def _interrupted(e: KeyboardInterrupt) -> int:
    """A signal stopped the command: one line, 128 + the signal's number."""
    output.stop_signals()
    name = getattr(e, "name", "SIGINT")
    output.message(f"cxlctl: interrupted by {name}")
    return output.interrupted_code(e)


#: Global options accepted after the subcommand too (``cxlctl list --sim``):
#: name -> takes a value.
GLOBAL_OPTIONS = {"--sim": False, "--debug": False, "--backend": True, "--color": True}


def hoist_global_options(
    args: list[str], takes_value: Callable[[str], frozenset[str]] | None = None
) -> list[str]:
    """Move the group's options that follow the subcommand in front of it, so
    ``cxlctl list --sim`` means ``cxlctl --sim list`` (up to a ``--``).

    ``takes_value(command)`` names the subcommand's options that take a value: the
    token after one of them is that value, never a global option
    (``write-labels mem0 -i --debug`` reads a file named ``--debug``)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    command: str | None = None
    valued: frozenset[str] = frozenset()
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        name = a.split("=", 1)[0]
        if command is not None and name in GLOBAL_OPTIONS:
            if GLOBAL_OPTIONS[name] and "=" not in a and i + 1 < len(args):
                front += [a, args[i + 1]]
                i += 2
                continue
            front.append(a)
        elif command is not None and a in valued:
            rest += args[i : i + 2]  # the option and its value, whatever it looks like
            i += 2
            continue
        else:
            if not a.startswith("-"):
                if command is None:
                    command = a
                    valued = takes_value(a) if takes_value is not None else frozenset()
            elif command is None and GLOBAL_OPTIONS.get(name) and "=" not in a:
                # a value-taking global option before the command: keep its value
                rest.append(a)
                i += 1
                if i < len(args):
                    rest.append(args[i])
                i += 1
                continue
            rest.append(a)
        i += 1
    if not front:
        return args
    return front + rest


def _value_options(cmd: click.Command | None) -> frozenset[str]:
    """The option strings of ``cmd`` that take a value (``-i``, ``--input``)."""
    if cmd is None:
        return frozenset()
    return frozenset(
        o
        for p in cmd.params
        if isinstance(p, click.Option) and not p.is_flag and not p.count and p.nargs != 0
        for o in p.opts
    )


def usage_line(e: click.UsageError) -> str:
    """One line for a usage error, with click's "did you mean" and a --help pointer."""
    ctx = e.ctx
    msg = e.format_message().strip()
    poss = getattr(e, "possibilities", None)
    if isinstance(e, click.NoSuchOption):
        msg = f"no such option {e.option_name!r}"
        if poss:
            msg += " (did you mean " + " or ".join(repr(p) for p in poss) + "?)"
    msg = " ".join(msg.split())
    if msg[:1].isupper() and not msg[1:2].isupper():
        msg = msg[0].lower() + msg[1:]
    msg = msg.rstrip(".")
    where = ""
    see = "cxlctl --help"
    if ctx is not None:
        sub = ctx.command_path.partition(" ")[2]
        path = f"cxlctl {sub}" if sub else "cxlctl"
        if sub:
            where = f"{sub}: "
        see = f"{path} --help"
    return f"cxlctl: {where}{msg}; see '{see}'"


#: No mailbox payload exceeds 1 MiB (the largest payload_max the spec allows).
PAYLOAD_LIMIT = 1 << 20


def read_payload(path: str | None, what: str) -> bytes:
    """A payload from PATH, or stdin for ``None``/``-``; at most 1 MiB."""
    if path is None or path == "-":
        data = output.stdin_binary(what).read(PAYLOAD_LIMIT + 1)
        source = "stdin"
    else:
        try:
            with open(path, "rb") as f:
                data = f.read(PAYLOAD_LIMIT + 1)
        except OSError as e:
            raise file_error(what, path, e, usage=True) from None
        source = path
    if len(data) > PAYLOAD_LIMIT:
        raise UsageError(f"{what}: {source}: larger than 1 MiB, not a mailbox payload")
    return data


@click.group(cls=CxlGroup, context_settings=CONTEXT)
@click.version_option(
    # message given: click's default is looked up with gettext at import (locale, .mo files)
    __version__,
    "-V",
    "--version",
    prog_name="cxlctl",
    message="%(prog)s, version %(version)s",
)
@click.option(
    "--sim", is_flag=True, help="Use the bundled simulated devices (same as --backend sim)."
)
@click.option(
    "--backend",
    type=click.Choice(["kernel", "sim"]),
    envvar="CXLCTL_BACKEND",
    help="Where memdevs come from [env CXLCTL_BACKEND; default: kernel].",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour in tables (NO_COLOR is honoured).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, sim: bool, backend: str | None, color: str, debug: bool) -> None:
    """Administer Linux CXL memory devices (/dev/cxl/memN).

    Tables for people, stable JSON for scripts (--json), and a bundled simulator
    (--sim) that answers exactly like Linux 6.12 and a CXL type-3 device.

    \b
    Examples:
      cxlctl --sim list
      cxlctl --sim identify --json | jq '.[0].firmware_version'
      cxlctl query mem0
    """
    if sim and backend == "kernel":
        source = ctx.get_parameter_source("backend")
        if source is not None and source.name == "COMMANDLINE":
            raise click.UsageError("--sim and --backend kernel contradict each other", ctx=ctx)
    ctx.obj = App("sim" if sim else backend, color, debug)


def app_of(ctx: click.Context) -> App:
    app: App = ctx.find_object(App)  # type: ignore[assignment]
    return app


#: True while the garbage collector is paused for the start-up (:func:`run`)
_gc_paused = False


def resume_gc() -> None:
    """End the start-up's pause of the garbage collector: what start-up imported
    is frozen (never scanned again), later garbage is collected as usual. Long
    commands (batch, monitor, label transfers) open a backend first, which calls this."""
    global _gc_paused
    if _gc_paused:
        import gc

        _gc_paused = False
        gc.freeze()
        # a youngest generation of 10,000 objects, not 700: a command over many
        # memdevs builds a few hundred long-lived objects per memdev, which the
        # default rescans ~7 times (10 ms of 256 simulated memdevs' 70); garbage
        # cycles are still collected, a little later
        gc.set_threshold(10_000, 10, 10)
        gc.enable()


def run(gc_paused: bool = False) -> NoReturn:
    """Console-script entry point: the whole process's exit code is decided here
    (and in :meth:`CxlGroup.invoke` for what a command raises). ``gc_paused``: the
    caller disabled the garbage collector for the imports (``cxlctl.__main__``);
    it is resumed when a command opens its backend."""
    global _gc_paused
    _gc_paused = gc_paused
    output.prepare()
    rc = _run()
    if gc_paused and not _gc_paused:
        # The interpreter's exit runs full collections over every object the command
        # left (~100 µs per simulated memdev, at 256); frozen like start-up's, they
        # are left to the end of the process (output is flushed: nothing is lost).
        import gc

        gc.freeze()
    sys.exit(rc)


def _run() -> int:
    completing = "_CXLCTL_COMPLETE" in os.environ
    try:
        if completing:  # a shell asks for completions
            from .completion import register

            register()
        rv = main(prog_name="cxlctl", standalone_mode=False)
        sys.stdout.flush()
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.Exit as e:  # --help, --version, completion
        sys.stdout.flush()
        return int(e.exit_code)
    except click.ClickException as e:
        output.message(_click_message(e))
        return int(e.exit_code)
    except click.Abort as e:  # click turns Ctrl-C (and EOF) while parsing into Abort
        if isinstance(e.__cause__, KeyboardInterrupt):
            return _interrupted(e.__cause__)
        return int(ExitCode.INTERRUPTED)
    except (BrokenPipeError, output.OutputError) as e:
        return output.report_output_error(e)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except SystemExit as e:  # click's completion exits itself
        try:
            sys.stdout.flush()
        except OSError as oe:
            return output.report_output_error(oe)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:
        if completing and not os.environ.get("CXLCTL_DEBUG"):
            return 1  # a shell's odd completion request (COMP_CWORD=abc): no completions
        raise


def _click_message(e: click.ClickException) -> str:
    """One line for click's errors (usage errors: with click's "did you mean" and
    the --help pointer); output.message makes it visible-safe (it echoes arguments)."""
    if isinstance(e, click.UsageError):
        return usage_line(e)
    return f"cxlctl: {' '.join(e.format_message().split())}"
