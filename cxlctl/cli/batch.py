"""``cxlctl batch``: JSON lines in, one JSON result per line out, one process.

The protocol is documented in docs/batch.md. Each request names a verb and its
options as JSON keys; the result is what ``cxlctl VERB MEMDEV OPTIONS --json``
prints, tagged with the request's ``id`` and its input line. One backend serves
the whole stream: memdevs stay open, their prepared commands and ``payload_max``
are reused. The hot read verbs (identify, health, partition, fw-info,
alert-config, shutdown-state without options) are answered directly; every other
verb runs the CLI's own command in process, so its options, checks and safety
rules are exactly the CLI's.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..errors import CxlError, ExitCode, UsageError, file_error
from . import CONTEXT, App, app_of, complete, output

Row = dict[str, Any]

#: request keys that are not options of the verb
#: the longest request line: a 1 MiB payload as spaced hex ("00 01 ..."), and room
MAX_LINE = 4 << 20
RESERVED = frozenset({"id", "command", "memdev", "memdevs", "yes"})
#: verbs a batch cannot run: they read stdin or never end
REFUSED = {
    "batch": "a batch cannot contain a batch",
    "monitor": "monitor never ends; run it on its own",
    "completion": "not a device command",
}
#: request keys spelled for JSON, mapped to the verb's parameter names
#: ("command" is the verb, so send's COMMAND argument is "kernel_command")
KEY_ALIASES = {"payload": "hex_in", "kernel_command": "command"}

#: verb -> the Memdev method whose decoded value is the verb's JSON (fast path)
FAST: dict[str, str] = {
    "identify": "identify",
    "health": "health",
    "partition": "partition_info",
    "fw-info": "fw_info",
    "alert-config": "alert_config",
    "shutdown-state": "shutdown_state",
}


def exit_code_of(e: BaseException) -> int:
    """The exit code the CLI gives for an exception (the rule of
    :meth:`cxlctl.cli.CxlGroup.invoke`): a CxlError's own, 1 for any OSError."""
    if isinstance(e, CxlError):
        return int(e.exit_code)
    if isinstance(e, click.ClickException):
        return int(e.exit_code)
    return int(ExitCode.FAILURE)


class Batch:
    """One batch run: the group's context, the memdevs kept open, the fast paths."""

    def __init__(self, ctx: click.Context) -> None:
        self.app: App = app_of(ctx)
        self.group_ctx = ctx.parent or ctx
        self._memdevs: dict[str, Any] = {}
        from .. import render

        self._to_data = render.to_data

    def close(self) -> None:
        """Close the open memdevs and forget what was read once per memdev
        (``payload_max``, prepared commands): after a change verb, the next request
        reopens and rereads."""
        for md in self._memdevs.values():
            md.close()
        self._memdevs.clear()

    # -- one request ------------------------------------------------------------------
    def handle(self, line_no: int, line: bytes) -> tuple[Row, int]:
        """The result object for one input line and its exit code."""
        head: Row = {"line": line_no}
        if len(line) > MAX_LINE:
            return self._error(
                head,
                UsageError(f"line {line_no}: longer than {MAX_LINE} bytes: not a request"),
            )
        try:
            req = json.loads(line.decode("utf-8"))  # bytes would also take UTF-16/32
        except UnicodeDecodeError as e:
            return self._error(head, UsageError(f"line {line_no}: not UTF-8 ({e.reason})"))
        except RecursionError:
            return self._error(head, UsageError(f"line {line_no}: JSON nested too deeply"))
        except ValueError as e:
            return self._error(head, UsageError(f"line {line_no}: not JSON: {e}"))
        if not isinstance(req, dict):
            return self._error(head, UsageError(f"line {line_no}: a request is a JSON object"))
        if "id" in req:
            head["id"] = req["id"]
        command = req.get("command")
        if not isinstance(command, str) or not command:
            return self._error(head, UsageError(f'line {line_no}: "command" is missing'))
        head["command"] = command
        memdevs = req.get("memdev", req.get("memdevs"))
        if memdevs is not None:
            head["memdev"] = memdevs
        try:
            if memdevs is not None and not (
                isinstance(memdevs, str)
                or (isinstance(memdevs, list) and all(isinstance(m, str) for m in memdevs))
            ):
                raise UsageError('"memdev" is a name or a list of names')
            method = FAST.get(command)
            md = None
            if method is not None and isinstance(memdevs, str) and len(req) == len(head) - 1:
                md = self._memdev(memdevs)  # None: the spec selects several memdevs
            if md is not None:
                value = getattr(md, FAST[command])()
                result: Any = [{"memdev": md.name, **self._to_data(value)}]
                code, messages = 0, list[str]()
            else:
                result, code, messages = self._generic(command, req, memdevs)
        except (CxlError, OSError) as e:  # OSError: what the library did not classify
            partial = getattr(e, "batch_result", None)
            return self._error(head, e, None if partial is None else {"result": partial})
        head["ok"] = code == 0
        head["exit_code"] = code
        head["result"] = result
        if code:  # the verb reported per-memdev failures and exited non-zero
            head["error"] = {
                "type": "Failed",
                "message": messages[-1] if messages else f"{command} exited {code}",
            }
        if messages:
            head["messages"] = messages
        return head, code

    def _error(self, head: Row, e: BaseException, extra: Row | None = None) -> tuple[Row, int]:
        code = exit_code_of(e)
        err: Row = {"type": type(e).__name__}
        if isinstance(e, CxlError):
            err["message"] = e.message
            if e.hint:
                err["hint"] = e.hint
        elif isinstance(e, OSError):
            err["message"] = f"{e.strerror or e}"
        else:
            err["message"] = str(e)
        head["ok"] = False
        head["exit_code"] = code
        head["error"] = err
        if extra:
            head.update(extra)
        return head, code

    def _memdev(self, spec: str) -> Any:
        """The open Memdev a MEMDEV spec names, or None if it selects several."""
        md = self._memdevs.get(spec)
        if md is None:
            from ..memdev import Memdev

            names = self.app.backend.select([spec])
            if len(names) != 1:
                return None
            md = self._memdevs.get(names[0]) or Memdev(self.app.backend, names[0])
            self._memdevs[spec] = self._memdevs[names[0]] = md
        return md

    # -- any verb, through the CLI's own command ------------------------------------------
    def _generic(
        self, command: str, req: Row, memdevs: str | list[str] | None
    ) -> tuple[Any, int, list[str]]:
        if command in REFUSED:
            raise UsageError(f"{command}: {REFUSED[command]}")
        group = self.group_ctx.command
        assert isinstance(group, click.Group)
        cmd = group.get_command(self.group_ctx, command)
        if cmd is None or command == "batch":
            raise UsageError(f"unknown command {command!r}", hint="see `cxlctl --help`")
        argv = self._argv(cmd, req, memdevs)
        changes = _changes(cmd, req) and req.get("dry_run") is not True
        out, err = io.BytesIO(), io.StringIO()
        saved = sys.stdin, sys.stdout, sys.stderr
        # the verb gets no stdin (that is the request stream) and no terminal
        sys.stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        wrapper = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        sys.stdout = wrapper
        sys.stderr = err
        code = 0
        failure: BaseException | None = None
        try:
            with cmd.make_context(command, argv, parent=self.group_ctx) as sub:
                cmd.invoke(sub)
        except click.exceptions.Exit as e:
            code = int(e.exit_code)
        except (CxlError, OSError, click.ClickException) as e:
            failure = e
        finally:
            try:
                sys.stdout.flush()
            finally:
                sys.stdin, sys.stdout, sys.stderr = saved
                if changes:  # payload_max, the commands, the device may have changed
                    self.close()
        messages = [m for m in err.getvalue().splitlines() if m]
        result = _result(out.getvalue())  # before the wrapper goes (it closes out)
        del wrapper
        if failure is not None:
            if result is not None:
                failure.batch_result = result  # type: ignore[attr-defined]
            raise _as_cxl_error(failure)
        return result, code, messages

    def _argv(self, cmd: click.Command, req: Row, memdevs: str | list[str] | None) -> list[str]:
        params = {p.name: p for p in cmd.params if p.name}
        names = set(params)
        if _changes(cmd, req) and not (req.get("yes") is True or req.get("dry_run") is True):
            raise UsageError(
                f'{cmd.name} changes the device: a batch request needs "yes": true '
                "(there is no terminal to ask on)",
                hint='or "dry_run": true to see what it would do',
            )
        opts: list[str] = []
        positional: dict[str, list[str]] = {}
        if memdevs is not None:
            target = "memdevs" if "memdevs" in names else "memdev"
            if target not in names:
                raise UsageError(f"{cmd.name} takes no memdev")
            positional[target] = [memdevs] if isinstance(memdevs, str) else list(memdevs)
        for key, value in req.items():
            if key in RESERVED:
                continue
            pname = KEY_ALIASES.get(key, key.replace("-", "_"))
            p = params.get(pname) or next(
                (q for q in cmd.params if f"--{key}" in getattr(q, "opts", ())), None
            )
            if p is None or p.name is None:
                raise UsageError(f"{cmd.name}: unknown option {key!r}")
            if isinstance(p, click.Argument):
                positional[p.name] = (
                    [str(v) for v in value] if isinstance(value, list) else [str(value)]
                )
                continue
            assert isinstance(p, click.Option)
            flag = next((o for o in p.opts if o.startswith("--")), p.opts[0])
            if p.is_flag:
                if value is True:
                    opts.append(flag)
                elif value not in (False, None):
                    raise UsageError(f"{cmd.name}: {key!r} is a flag: true or false")
            elif p.multiple and isinstance(value, list):
                for v in value:
                    opts += [flag, _text(v)]
            elif value is not None:
                opts += [flag, _text(value)]
        if "yes" in names and req.get("yes") is True:
            opts.append("--yes")
        if "as_json" in names and not {"output", "format", "json", "as_json"} & set(req):
            opts.append("--json")
        args = [a for p in cmd.params if isinstance(p, click.Argument) and p.name
                for a in positional.get(p.name, [])]  # fmt: skip
        return [*opts, "--", *args] if args else opts


def _changes(cmd: click.Command, req: Row) -> bool:
    """The request may change a device: a change verb (it has the change contract's
    --dry-run), or send/raw of a command not known to be a pure read."""
    if cmd.name == "send":
        from .. import mailbox as mb

        try:
            return mb.lookup(str(req.get("kernel_command", ""))).destructive
        except CxlError:
            return True  # a bare numeric id: anything
    if cmd.name == "raw":
        from .. import mailbox as mb

        try:
            known = mb.BY_OPCODE.get(int(str(req.get("opcode", "")), 0))
        except ValueError:
            return True
        return known is None or known.destructive
    return any(p.name == "dry_run" for p in cmd.params)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _result(data: bytes) -> Any:
    """What a verb printed: its JSON, else text, else hex (binary output)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": data.hex()}
    if "\0" in text:
        return {"hex": data.hex()}
    return {"text": text}


def _as_cxl_error(e: BaseException) -> BaseException:
    if isinstance(e, click.ClickException):
        err = UsageError(e.format_message())
        err.exit_code = e.exit_code  # type: ignore[assignment]
        if hasattr(e, "batch_result"):
            err.batch_result = e.batch_result  # type: ignore[attr-defined]
        return err
    return e


@click.command(context_settings=CONTEXT)
@click.option(
    "-i",
    "--input",
    "input_file",
    metavar="FILE",
    shell_complete=complete.files,
    help="Read the requests from FILE ('-': stdin) [default: stdin].",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first request that fails.")
@click.pass_context
def batch(ctx: click.Context, input_file: str | None, fail_fast: bool) -> None:
    """Run JSON-lines requests from stdin in one process; one JSON result per line.

    Each line is a request such as {"id": 1, "memdev": "mem0", "command":
    "health"}: "command" is any verb, other keys are its options (long names,
    "payload" for send/raw input hex). Each result line carries the request's
    "id" and "line", "ok", "exit_code" and the verb's JSON ("result") or an
    "error" with the exit code the verb would have exited with. A failure is
    reported and the batch goes on, unless --fail-fast. A verb that changes the
    device needs "yes": true in its request (there is no terminal to ask on).
    Results are written in order and flushed line by line. Exit status: 0 when
    every request succeeded, else the exit code of the first that failed.
    See docs/batch.md.

    \b
    Examples:
      cxlctl --sim batch < requests.jsonl
      cxlctl --sim batch --fail-fast -i requests.jsonl > results.jsonl
      cxlctl batch < checks.jsonl | jq -c 'select(.ok | not)'
    """
    if input_file is None or input_file == "-":
        run_batch(ctx, output.stdin_binary("batch"), fail_fast)
        return
    try:
        f = open(input_file, "rb")  # noqa: SIM115 - closed below, after the loop
    except OSError as e:
        raise file_error("batch", input_file, e, usage=True) from None
    with f:
        run_batch(ctx, f, fail_fast)


def _lines(stream: Any) -> Iterator[bytes]:
    """The input's lines, each read with a bound: a line longer than MAX_LINE is
    yielded as its first MAX_LINE + 1 bytes (an error for its request) and the rest
    of it skipped in bounded reads, so a huge line is never held in memory."""
    while True:
        line: bytes = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
        yield line


def run_batch(ctx: click.Context, stream: Any, fail_fast: bool) -> None:
    """The loop: read, answer, write and flush, line by line."""
    b = Batch(ctx)
    dumps: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode
    first_failure = 0
    try:
        for n, raw in enumerate(_lines(stream), 1):
            if not raw.strip():
                continue
            row, code = b.handle(n, raw)
            output.write_stdout(dumps(row) + "\n")
            if code:
                first_failure = first_failure or code
                if fail_fast:
                    break
    finally:
        b.close()
    if first_failure:
        raise click.exceptions.Exit(first_failure)
