#!/usr/bin/env python3
"""Regenerate completions/ and man/ from the click command tree.

    python tools/gen_docs.py            # rewrite completions/ and man/ in the checkout
    python tools/gen_docs.py --check    # exit 1 if they differ from a fresh generation
    python tools/gen_docs.py --out DIR  # write DIR/completions and DIR/man instead

Completion scripts are click's own (they call back into ``cxlctl`` with
``_CXLCTL_COMPLETE``).  Man pages are written from the same help text as
``--help``; their EXAMPLES run each command's ``Examples:`` lines on the
simulator in a pinned environment and include the output.  Only plain
``[VAR=value ...] cxlctl --sim ...`` lines run (no pipes or redirections, which
would depend on jq or write files); output that changes between two runs
(timestamps) or is binary is left out.  Run this after adding or changing a
command: tests/test_docs.py fails until the files match.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import inspect
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cxlctl import __version__  # noqa: E402
from cxlctl.cli import COMMANDS, main  # noqa: E402
from cxlctl.cli.completion import SHELLS, script  # noqa: E402

#: Date on every page, for byte-identical output.  Bump it with a release;
#: SOURCE_DATE_EPOCH overrides it (reproducible-builds.org convention).
MAN_DATE = "2025-11-26"
PROG = "cxlctl"
MAX_OUTPUT_LINES = 40
EXAMPLE_TIMEOUT = 60

#: completions/<file> -> shell; the wheel installs them (pyproject shared-data)
COMPLETION_FILES = {"cxlctl.bash": "bash", "_cxlctl": "zsh", "cxlctl.fish": "fish"}

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (
        "CXLCTL_BACKEND",
        "Where memdevs come from: kernel (the default) or sim. "
        "The --backend and --sim options take precedence.",
    ),
    (
        "CXLCTL_SIM_DEVICES",
        "Comma-separated kinds of simulated memdevs: pmem, ram, mixed "
        "(default: pmem,ram,mixed, which makes mem0, mem1 and mem2).",
    ),
    (
        "CXLCTL_SIM_PROFILE",
        "Simulated device profile: full (every command, the default) or qemu "
        "(what QEMU's emulated type-3 device implements).",
    ),
    (
        "CXLCTL_SIM_RAW",
        "Set to 1 to simulate a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS.",
    ),
    (
        "CXLCTL_SIM_STATE",
        "A directory in which the simulator keeps the label storage area between "
        "runs; unset, every run starts from a fresh device.",
    ),
    ("CXLCTL_DEBUG", "When set and not empty, show tracebacks (like --debug)."),
    ("NO_COLOR", "When set, no colour in tables (https://no-color.org)."),
    (
        "COLUMNS",
        "Width of tables; by default the terminal's width, or 80 when standard "
        "output is not a terminal.",
    ),
)

FILES: tuple[tuple[str, str], ...] = (
    ("/dev/cxl/memN", "Memdev character devices; the CXL_MEM_QUERY_COMMANDS and "
     "CXL_MEM_SEND_COMMAND ioctls go here (usually root only)."),
    ("/sys/bus/cxl/devices/memN/", "Memdev attributes read by list: serial, "
     "firmware_version, payload_max, label_storage_size, numa_node, ram/size, "
     "pmem/size, security/state."),
)  # fmt: skip

SEE_ALSO_EXTERNAL = ("cxl(1)", "cxl-list(1)", "ndctl(1)")


# --- roff --------------------------------------------------------------------------


def _ascii(ch: str) -> str:
    """A non-ASCII character in roff: box drawing as ASCII art (groff's PostScript
    fonts lack most of it), anything else as a \\[uXXXX] escape."""
    if ch == "\u2026":
        return "..."
    name = unicodedata.name(ch, "")
    if name.startswith("BOX DRAWINGS"):
        if " AND " in name:
            return "+"
        return "-" if name.endswith("HORIZONTAL") else "|" if name.endswith("VERTICAL") else "+"
    return f"\\[u{ord(ch):04X}]"


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (as \\- so they render as
    typed in commands and options), non-ASCII; a leading . or ' is protected."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ord(ch) > 126 or (ord(ch) < 32 and ch != "\t"):
            out.append(_ascii(ch) if ord(ch) > 126 else "")
        else:
            out.append(ch)
    s = "".join(out)
    if s.startswith((".", "'")):
        s = "\\&" + s
    return s


def prose(text: str, lead: str = "") -> str:
    """Escaped running text after roff ``lead``, filled to short input lines;
    `code` spans become bold."""
    s = lead + re.sub(r"`([^`]+)`", r"\\fB\1\\fR", esc(text))
    lines = textwrap.wrap(s, 78, break_long_words=False, break_on_hyphens=False)
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in lines)


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def verbatim(lines: list[str]) -> list[str]:
    """A no-fill block, indented."""
    out = [".RS 4", ".nf"]
    for line in lines:
        line = line.expandtabs().rstrip()
        out.append(esc(line) if line else "\\&")
    out += [".fi", ".RE"]
    return out


# --- help text ---------------------------------------------------------------------


@dataclass
class Help:
    paragraphs: list[tuple[bool, list[str]]] = field(default_factory=list)  # (no-wrap, lines)
    examples: list[str] = field(default_factory=list)
    has_examples_block: bool = False


def parse_help(text: str | None) -> Help:
    """Split click help text into paragraphs (``\\b`` ones keep their lines) and
    the lines of its ``Examples:`` block."""
    h = Help()
    text = inspect.cleandoc(text or "").split("\f")[0]
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        nowrap = bool(lines) and lines[0].strip() == "\b"
        if nowrap:
            lines = lines[1:]
        if not lines:
            continue
        if lines[0].strip() == "Examples:":
            h.has_examples_block = True
            cmds: list[str] = []
            for line in lines[1:]:
                line = line.strip()
                if cmds and cmds[-1].endswith("\\"):
                    cmds[-1] = cmds[-1][:-1].rstrip() + " " + line
                elif line:
                    cmds.append(line)
            h.examples += cmds
            continue
        h.paragraphs.append((nowrap, lines))
    return h


# --- running examples --------------------------------------------------------------


_ENV_WORD = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_OPERATORS = set("|&;<>()$`")


def runnable(example: str) -> tuple[dict[str, str], list[str]] | None:
    """``(env, args)`` for a plain ``[VAR=v ...] cxlctl ARGS`` line on the simulator,
    else None (pipes, redirections, substitutions, or the kernel backend)."""
    try:
        lex = shlex.shlex(example, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words = list(lex)
    except ValueError:
        return None
    if any(w and set(w) <= _OPERATORS for w in words) or "$" in example:
        return None
    env: dict[str, str] = {}
    while words and _ENV_WORD.match(words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    if not words or words[0] != PROG:
        return None
    args = words[1:]
    sim = (
        "--sim" in args
        or "--backend=sim" in args
        or any(a == "--backend" and b == "sim" for a, b in itertools.pairwise(args))
        or env.get("CXLCTL_BACKEND") == "sim"
    )
    return (env, args) if sim else None


def pinned_env(home: str, state: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "NO_COLOR": "1",
        "COLUMNS": "100",
        "LINES": "50",
        "TERM": "dumb",
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "CXLCTL_SIM_STATE": state,
    }
    return env


@dataclass
class Example:
    command: str
    output: list[str] | None  # None: not run, or output not shown
    note: str = ""


Result = tuple[int, bytes, bytes]


def _run_sequence(examples: list[str]) -> list[Result | None]:
    """Run the runnable examples in order on one fresh simulator state."""
    with tempfile.TemporaryDirectory(prefix="cxlctl-doc-") as tmp:
        state = os.path.join(tmp, "state")
        os.mkdir(state)
        results: list[Result | None] = []
        for ex in examples:
            r = runnable(ex)
            if r is None:
                results.append(None)
                continue
            env, args = r
            p = subprocess.run(
                [sys.executable, "-m", "cxlctl", *args],
                env={**pinned_env(tmp, state), **env},
                cwd=tmp,
                capture_output=True,
                timeout=EXAMPLE_TIMEOUT,
                check=False,
            )
            results.append((p.returncode, p.stdout, p.stderr))
    return results


def run_examples(examples: list[str], warn: list[str]) -> list[Example]:
    """Run the examples of one page twice, each time in order on a fresh
    simulator state; keep output that is text and the same both times."""
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(_run_sequence, [examples, examples]))
    out = []
    for ex, a, b in zip(examples, runs[0], runs[1], strict=True):
        if a is None or b is None:
            out.append(Example(ex, None))
            continue
        if a[0] != 0:
            warn.append(f"example exits {a[0]}: {ex}: {a[2].decode(errors='replace').strip()}")
        if a != b:
            out.append(Example(ex, None, "output varies between runs"))
            continue
        rc, stdout, stderr = a
        try:
            text = (stdout + (stderr if rc else b"")).decode()
        except UnicodeDecodeError:
            out.append(Example(ex, None, "binary output"))
            continue
        if any(ord(c) < 32 and c not in "\n\t" for c in text):
            out.append(Example(ex, None, "binary output"))
            continue
        lines = text.rstrip("\n").splitlines() if text.strip() else []
        if len(lines) > MAX_OUTPUT_LINES:
            more = len(lines) - MAX_OUTPUT_LINES
            lines = [*lines[:MAX_OUTPUT_LINES], f"[... {more} more lines]"]
        out.append(Example(ex, lines))
    return out


# --- pages -------------------------------------------------------------------------


def man_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%d")
    return MAN_DATE


def exit_codes() -> list[tuple[int, str]]:
    """ExitCode values with the ``#:`` comments of cxlctl/errors.py."""
    from cxlctl.errors import ExitCode

    src = (ROOT / "cxlctl" / "errors.py").read_text()
    notes = dict(re.findall(r"^\s+([A-Z_]+) = \d+\s+#: (.*)$", src, re.M))
    notes.setdefault("OK", "success")
    return [(int(c), notes.get(c.name, c.name.lower().replace("_", " "))) for c in ExitCode]


def _th(name: str) -> str:
    return f'.TH {esc(name.upper())} 1 {man_date()} "{PROG} {__version__}" "cxlctl Manual"'


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out: list[str] = []
    for p in cmd.get_params(ctx):
        if not isinstance(p, click.Option):  # arguments are in the SYNOPSIS (and
            continue  # click >= 8.5 would give them help records of their own)
        rec = p.get_help_record(ctx)
        if rec is None:
            continue
        opts, help_ = rec
        out += [".TP", bold(opts), prose(help_) if help_ else "\\&"]
    return out


def _description(h: Help) -> list[str]:
    out: list[str] = []
    for i, (nowrap, lines) in enumerate(h.paragraphs):
        if i:
            out.append(".PP")
        if nowrap:
            out += [".nf", *(prose(line.rstrip()) or "\\&" for line in lines), ".fi"]
        else:
            out.append(prose(" ".join(line.strip() for line in lines)))
    return out


def _examples(examples: list[Example]) -> list[str]:
    out: list[str] = []
    for i, ex in enumerate(examples):
        if i:
            out.append(".PP")
        out += [".RS 4", ".nf", f"\\fB$ {esc(ex.command)}\\fR"]
        for line in ex.output or []:
            line = line.expandtabs().rstrip()
            out.append(esc(line) if line else "\\&")
        out += [".fi", ".RE"]
    return out


def _common_tail(see_also: list[str]) -> list[str]:
    out = [".SH EXIT STATUS"]
    for code, note in exit_codes():
        out += [".TP", f"\\fB{code}\\fR", prose(note[:1].upper() + note[1:] + ".")]
    out.append(".SH ENVIRONMENT")
    for var, text in ENVIRONMENT:
        out += [".TP", bold(var), prose(text)]
    out.append(".SH FILES")
    for path, text in FILES:
        out += [".TP", f"\\fI{esc(path)}\\fR", prose(text)]
    out.append(".SH SEE ALSO")
    refs = [*see_also, *SEE_ALSO_EXTERNAL]
    out.append(",\n".join(_xref(r) for r in refs))
    return out


def _xref(ref: str) -> str:
    name, sec = ref[:-1].split("(")
    return f"\\fB{esc(name)}\\fR({sec})"


def _header(name: str, summary: str) -> list[str]:
    return [
        '.\\" Generated by tools/gen_docs.py from the click help text; do not edit.',
        _th(name),
        ".SH NAME",
        prose(summary, lead=f"{esc(name)} \\- "),
    ]


def _summary(cmd: click.Command) -> str:
    s = cmd.get_short_help_str(limit=200).rstrip(".")
    return s[:1].lower() + s[1:] if s[1:2].islower() else s


def main_page(warn: list[str]) -> str:
    ctx = click.Context(main, info_name=PROG, **main.context_settings)
    h = parse_help(main.help)
    lines = _header(PROG, _summary(main))
    lines += [
        ".SH SYNOPSIS",
        f"\\fB{PROG}\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *_description(h),
        ".SH OPTIONS",
        *_options(main, ctx),
        ".SH COMMANDS",
    ]
    for name in sorted(COMMANDS):
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        lines += [".TP", f"\\fB{esc(name)}\\fR", prose(cmd.get_short_help_str(limit=200))]
        lines.append(f"See {_xref(f'{PROG}-{name}(1)')}.")
    if h.examples:
        lines += [".SH EXAMPLES", *_examples(run_examples(h.examples, warn))]
    lines += _common_tail([f"{PROG}-{n}(1)" for n in sorted(COMMANDS)])
    return "\n".join(lines) + "\n"


def command_page(name: str, warn: list[str]) -> str:
    root = click.Context(main, info_name=PROG, **main.context_settings)
    cmd = main.get_command(root, name)
    assert cmd is not None, name
    ctx = click.Context(cmd, info_name=name, parent=root, **cmd.context_settings)
    h = parse_help(cmd.help)
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    usage = re.sub(r"([A-Z][A-Z_]+)", r"\\fI\1\\fR", esc(pieces))
    lines = _header(f"{PROG}-{name}", _summary(cmd))
    lines += [
        ".SH SYNOPSIS",
        f"\\fB{PROG}\\fR [\\fIGLOBAL OPTIONS\\fR] \\fB{esc(name)}\\fR {usage}",
        ".SH DESCRIPTION",
        *_description(h),
        ".SH OPTIONS",
        *_options(cmd, ctx),
        ".PP",
        "The global options (\\fB\\-\\-sim\\fR, \\fB\\-\\-backend\\fR, \\fB\\-\\-color\\fR,",
        f"\\fB\\-\\-debug\\fR) go before the command name; see {_xref(f'{PROG}(1)')}.",
    ]
    if h.examples:
        lines += [".SH EXAMPLES", *_examples(run_examples(h.examples, warn))]
    lines += _common_tail([f"{PROG}(1)"])
    return "\n".join(lines) + "\n"


# --- driver ------------------------------------------------------------------------


def completion_text(filename: str) -> str:
    shell = COMPLETION_FILES[filename]
    assert shell in SHELLS
    return script(shell)


def generate(out: Path) -> list[str]:
    """Write ``out/completions`` and ``out/man``; return warnings.  Files of
    commands that no longer exist are removed."""
    warn: list[str] = []
    comp = out / "completions"
    man = out / "man"
    comp.mkdir(parents=True, exist_ok=True)
    man.mkdir(parents=True, exist_ok=True)
    for fname in COMPLETION_FILES:
        (comp / fname).write_text(completion_text(fname))
    root = click.Context(main, info_name=PROG, **main.context_settings)
    for name in COMMANDS:  # import every command before the threads start
        main.get_command(root, name)
    # pages are independent and mostly wait on example subprocesses: build in parallel
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        jobs = {f"{PROG}.1": pool.submit(main_page, warn)}
        for name in sorted(COMMANDS):
            jobs[f"{PROG}-{name}.1"] = pool.submit(command_page, name, warn)
        pages = {fname: job.result() for fname, job in jobs.items()}
    for stale in man.glob("*.1"):
        if stale.name not in pages:
            stale.unlink()
    for fname, text in pages.items():
        (man / fname).write_text(text)
    summaries = out / SUMMARIES
    summaries.parent.mkdir(parents=True, exist_ok=True)
    summaries.write_text(summaries_text(root))
    return warn


#: First help paragraph of every command, so `cxlctl --help` lists the commands
#: without importing all of them (cxlctl/cli/__init__.py: CxlGroup.format_commands).
SUMMARIES = Path("cxlctl") / "cli" / "summaries.json"


def summaries_text(root: click.Context) -> str:
    out: dict[str, str] = {}
    for name in sorted(COMMANDS):
        cmd = main.get_command(root, name)
        assert cmd is not None, name
        text = cmd.short_help or cmd.help or ""
        out[name] = text.split("\n\n", 1)[0].strip()
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def differences(a: Path, b: Path) -> list[str]:
    """Files under completions/ and man/, and the summaries, that differ between trees."""
    bad = [] if _same(a / SUMMARIES, b / SUMMARIES) else [str(SUMMARIES)]
    for sub in ("completions", "man"):
        names = {p.name for p in (a / sub).glob("*")} | {p.name for p in (b / sub).glob("*")}
        for n in sorted(names):
            pa, pb = a / sub / n, b / sub / n
            if not _same(pa, pb):
                bad.append(f"{sub}/{n}")
    return bad


def _same(pa: Path, pb: Path) -> bool:
    return pa.is_file() and pb.is_file() and filecmp.cmp(pa, pb, shallow=False)


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=ROOT, help="write DIR/completions and DIR/man")
    ap.add_argument("--check", action="store_true", help="compare with the checkout; write nothing")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            warn = generate(Path(tmp))
            bad = differences(ROOT, Path(tmp))
        for w in warn:
            print(f"gen_docs: warning: {w}", file=sys.stderr)
        for b in bad:
            print(f"gen_docs: out of date: {b} (run python tools/gen_docs.py)", file=sys.stderr)
        return 1 if bad else 0
    warn = generate(args.out)
    for w in warn:
        print(f"gen_docs: warning: {w}", file=sys.stderr)
    print(f"gen_docs: wrote {args.out / 'completions'} and {args.out / 'man'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
