"""The safety contract for every verb that changes a device: the CLI half.

``change_options(destructive=...)`` gives a verb its options and :class:`Change`
runs it (docs/cli-grammar.md, "Changing a device"):

* ``--dry-run`` prints every sysfs/debugfs write with its value and every ioctl
  struct a real run would make, changes nothing, exits 0;
* a data-destroying verb asks on a terminal, naming each memdev and its serial;
  without a terminal it needs ``-y/--yes`` (``--cxl-compat`` skips the question,
  for scripts ported from cxl-cli). ``-f/--force`` is something else: it
  overrides safety checks such as an active region;
* each memdev is tried and reported on its own (``changed``, ``unchanged``,
  ``failed`` with the reason) in the table and in JSON; the exit code is the worst
  outcome; every JSON object has ``changed``;
* progress of long work goes to stderr: a bar on a terminal, JSON lines with
  ``-o jsonl``, nothing otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import render as rd
from ..change import Outcome, Recorder, Result, exit_code, no_progress, run_each
from ..errors import CxlError, UsageError
from . import App, output
from .options import output_option

F = TypeVar("F", bound=Callable[..., Any])

#: what a verb does to one memdev, given the recorder (--dry-run) and a progress hook
Action = Callable[[str, Recorder | None, "Callable[[int, int, str], None]"], Any]


def change_options(
    *, destructive: bool, confirms: str | None = None, output: bool = True
) -> Callable[[F], F]:
    """--dry-run, -o table|json|jsonl (--json), and for data-destroying verbs (or
    verbs that ask for another reason: ``confirms`` says what -y confirms) -y/--yes
    and --cxl-compat. ``output=False``: the verb has its own -o (a read verb whose
    options change the device first, such as ``poison --inject``)."""

    def deco(f: F) -> F:
        if destructive:
            f = click.option(
                "--cxl-compat",
                "cxl_compat",
                is_flag=True,
                help="Behave like cxl-cli: do not ask for confirmation.",
            )(f)
            f = click.option(
                "-y",
                "--yes",
                is_flag=True,
                help=f"Do not ask: confirm {confirms} (needed without a terminal)."
                if confirms
                else "Do not ask: confirm that the data on these memdevs is to be destroyed "
                "(needed without a terminal).",
            )(f)
        f = click.option(
            "--dry-run",
            is_flag=True,
            help="Print every sysfs write and ioctl a real run would make; change nothing.",
        )(f)
        # the report is data: the grammar's -o/--json/-u (jsonl also prints
        # progress events on stderr)
        return output_option()(f) if output else f

    return deco


class Change:
    """One invocation of a change verb."""

    def __init__(
        self,
        app: App,
        verb: str,
        opts: dict[str, Any],
        *,
        destroys: str | None = None,
        asks: str | None = None,
        kind: str = "memdev",
        describe: Callable[[str], str] | None = None,
        report: bool = True,
    ) -> None:
        self.app = app
        self.verb = verb
        #: what the objects are (memdev; region, port, bus for the topology verbs)
        self.kind = kind
        #: a change that is not data-destroying but still asks (the topology verbs):
        #: what it does, as "unbind" / "create a region over"
        self.asks = asks
        #: an object as the prompt names it (default: the memdev and its serial)
        self.describe = describe
        #: False: the outcomes go to stderr only (the verb prints other data), except
        #: under --dry-run, where the plan is the output
        self.print_report = report
        self.dry_run: bool = bool(opts.pop("dry_run", False))
        self.yes: bool = bool(opts.pop("yes", False))
        self.compat: bool = bool(opts.pop("cxl_compat", False))
        fmt = opts.pop("output", "table")
        self.fmt: str = "json" if opts.pop("as_json", False) else fmt
        #: what a data-destroying verb destroys ("the label storage area"); None: nothing
        self.destroys = destroys

    # -- confirmation --
    def _serial(self, name: str) -> int | None:
        if self.kind != "memdev":
            return None
        try:
            return self.app.backend.info(name).serial
        except (CxlError, OSError, KeyError):  # no serial: only the prompt loses it
            return None

    def _who(self, name: str) -> str:
        if self.describe is not None:
            return self.describe(name)
        serial = self._serial(name)
        return f"{name} (serial {serial:#x})" if serial is not None else name

    def confirm(self, names: Sequence[str]) -> None:
        """Ask on a terminal; without one require --yes. --dry-run asks nothing."""
        if self.destroys is None and self.asks is None:
            return
        if self.dry_run or self.yes or self.compat or not names:
            return
        who = ", ".join(self._who(n) for n in names)
        if self.destroys is not None:
            does, will = f"destroys {self.destroys} of", f"destroy {self.destroys} of"
        else:
            does, will = f"would {self.asks}", str(self.asks)
        if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
            raise UsageError(
                f"{self.verb} {does} {who}: refusing without confirmation (no terminal to ask on)",
                hint="pass -y/--yes to confirm, or --dry-run to see what it would do",
            )
        output.message(f"cxlctl: {self.verb} will {will}:")
        for n in names:
            output.message(f"  {self._who(n)}")
        if not click.confirm("Continue?", default=False, err=True):
            raise click.exceptions.Exit(1)

    # -- running --
    def progress_mode(self) -> str:
        if self.fmt == "jsonl":
            return "jsonl"
        return "bar" if _isatty(sys.stderr) else "none"

    def run(self, names: Sequence[str], action: Action) -> list[Result]:
        """Confirm, run ``action`` per memdev, report, and exit with the worst outcome."""
        self.confirm(names)
        results: list[Result] = []
        mode = self.progress_mode()
        with rd.Progress(self.app.style, mode) as prog:

            def one(name: str, rec: Recorder | None) -> Any:
                def hook(done: int, total: int, what: str) -> None:
                    prog.update(name, done, total, what)

                # nobody watches ("none" shows nothing): no call per command
                return action(name, rec, hook if mode != "none" else no_progress)

            def noted(r: Result) -> None:
                results.append(r)
                self._note(r)

            try:
                results = run_each(
                    names,
                    one,
                    serial_of=self._serial,
                    dry_run=self.dry_run,
                    on_result=noted,
                    kind=self.kind,
                )
            except KeyboardInterrupt:
                prog.__exit__()
                rest = names[len(results) :]
                if rest:
                    output.message(f"cxlctl: not attempted: {', '.join(rest)}")
                self.report(results)
                raise
        self.report(results)
        code = exit_code(results)
        if code:
            raise click.exceptions.Exit(code)
        return results

    def _note(self, r: Result) -> None:
        if r.outcome is Outcome.FAILED:
            output.message(f"cxlctl: {r.message}")
        elif r.outcome is Outcome.PLANNED:
            output.message(
                f"cxlctl: {r.memdev}: dry run, nothing was changed"
                + (f" (a real run: {r.message})" if r.message else "")
            )
        elif r.message:
            output.message(f"cxlctl: {r.message}")

    def report(self, results: list[Result]) -> None:
        if not self.print_report and not self.dry_run:
            return
        if self.fmt == "json":
            self.app.json([r.json() for r in results])
            return
        if self.fmt == "jsonl":
            for r in results:
                rd.write_stdout(rd.json_line({"event": "result", **r.json()}))
            return
        for r in results:
            if r.plan or r.outcome is Outcome.PLANNED:
                rd.write_stdout(f"{r.memdev}: would do:\n")
                rd.write_stdout("".join(f"  {line}\n" for line in r.plan) or "  nothing\n")
        serials = self.kind == "memdev"
        rows = [
            (
                r.memdev,
                *((f"{r.serial:#x}" if r.serial is not None else "-",) if serials else ()),
                r.outcome.value,
                r.message,
            )
            for r in results
        ]
        rd.print_table(
            self.app.style,
            f"{self.verb}{' (dry run)' if self.dry_run else ''}",
            (self.kind, *(("serial",) if serials else ()), "outcome", "details"),
            rows,
            simulated=self.app.backend.simulated,
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, AttributeError):
        return False
