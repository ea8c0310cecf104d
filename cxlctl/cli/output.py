"""The output layer: the one owner of stdin, stdout, stderr and the signals.

Everything cxlctl writes goes through here, whichever format and command:

* **Untrusted text is made visible-safe** by one sanitiser, :func:`sanitize`:
  C0/C1 controls (ESC and so every CSI/OSC sequence, OSC 52 clipboard writes
  included), DEL, bidi overrides and isolates, line separators and lone
  surrogates become visible escapes (``\\x1b``, ``\\u202e``).  Tables
  (:mod:`cxlctl.render`) and messages (:func:`message`) both use it; JSON escapes
  by itself.
* **stdout/stderr are guarded** (:func:`prepare`, for the real process): a closed
  fd (``>&-``, ``2>&-``) never makes Python crash or a later ``open()`` land on
  fd 1/2; a failed write to stdout is an :class:`OutputError`; a failed write to
  stderr is dropped (a full disk behind ``2>`` never changes the exit code); an
  encoding that cannot show a character (``PYTHONIOENCODING=ascii``, the C locale,
  ISO-8859-*) gets an escape or an ASCII stand-in, never a ``UnicodeEncodeError``.
* **One translation to exit codes** (:func:`exit_code_for`): EPIPE -> 141
  quietly; any other stdout write error (ENOSPC, EBADF) -> one line, exit 1;
  SIGINT/SIGTERM/SIGHUP -> 130/143/129 with one line.

This module imports neither click nor rich (render.py uses it for tables).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import io
import os
import re
import signal
import sys
from types import FrameType
from typing import IO, Any, BinaryIO

from ..errors import ExitCode, Interrupted, UsageError

# --- the sanitiser ----------------------------------------------------------------------

#: Characters that change what a terminal shows or does rather than being shown:
#: C0 controls but tab/newline handled by the caller, DEL, C1 controls, the Arabic
#: letter mark, LRM/RLM, line/paragraph separators, bidi embeddings/overrides and
#: isolates, BOM/ZWNBSP, and lone surrogates (undecodable bytes, surrogateescape).
_UNSAFE_CHARS = (
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    "\ufff9-\ufffb\ud800-\udfff]"
)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(unsafe characters, non-ASCII), compiled on first use: a --json run that
    prints no message never needs them (compiling costs more than 0.5 ms)."""
    return re.compile(_UNSAFE_CHARS), re.compile("[^\x00-\x7f]")


def _escape(ch: str) -> str:
    n = ord(ch)
    if 0xDC80 <= n <= 0xDCFF:  # a byte that surrogateescape carried through
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def sanitize(text: str, encoding: str | None = None, *, keep: str = "") -> str:
    """``text`` with everything a terminal would act on shown as an escape.

    ``encoding``: the target stream's; characters it cannot represent are escaped
    too, so the width a table measured is the width printed.  ``keep``: control
    characters to leave alone (``"\\n"`` for multi-line messages).  Idempotent,
    linear, and a no-op for plain ASCII text.
    """
    unsafe, non_ascii = _patterns()
    if keep:
        out = unsafe.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)
    else:
        out = unsafe.sub(lambda m: _escape(m.group()), text)
    if encoding and not _is_utf(encoding) and non_ascii.search(out):
        out = non_ascii.sub(lambda m: _escape_unencodable(m.group(), encoding), out)
    return out


def _is_utf(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith("utf")


def _escape_unencodable(ch: str, encoding: str) -> str:
    try:
        ch.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _escape(ch)
    return ch


def stream_encoding(stream: Any) -> str:
    enc = getattr(stream, "encoding", None)
    try:
        return codecs.lookup(enc).name if isinstance(enc, str) else "utf-8"
    except LookupError:
        return "ascii"


# --- what an encoding cannot show (rich's own ellipsis, box characters) -------------------

_STAND_INS = {
    "\u2026": ".",  # rich's ellipsis: one cell, so columns stay aligned
    "\u2500": "-",
    "\u2502": "|",
}


def _stand_in(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start : exc.end]:
        if ch in _STAND_INS:
            out.append(_STAND_INS[ch])
        elif _east_asian_width(ch) in "WF":
            out.append("??")  # a double-width character: keep the width
        else:
            out.append("?")
    return "".join(out), exc.end


codecs.register_error("cxlctl-stand-in", _stand_in)


# --- the streams ---------------------------------------------------------------------------


class OutputError(Exception):
    """Writing to stdout failed: EPIPE, ENOSPC, EIO, EBADF for a closed stdout...

    Not an ``OSError`` on purpose: no ``except OSError`` on the way up (click's
    EPIPE handler, which exits 1; a library's file handling) may mistake it for
    something else or swallow it."""

    def __init__(self, err: int, strerror: str | None = None) -> None:
        super().__init__(err, strerror or os.strerror(err))
        self.errno = err
        self.strerror = strerror or os.strerror(err)


class _Fd(io.RawIOBase):
    """fd 1 or 2 as a raw stream whose write errors say which stream failed."""

    def __init__(self, fd: int, name: str, *, closed_fd: bool, quiet: bool) -> None:
        super().__init__()
        self.fd = fd
        self.stream_name = name
        self.closed_fd = closed_fd  # was closed when cxlctl started (>&-)
        self.quiet = quiet  # stderr: a failure to say something is not an error

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return not self.closed_fd and os.isatty(self.fd)

    def write(self, b: Any) -> int:
        data = memoryview(b).cast("B")
        if self.closed_fd:
            if self.quiet:
                return len(data)
            raise OutputError(errno.EBADF, f"{self.stream_name} is closed")
        try:
            return os.write(self.fd, data)
        except OSError as e:
            if self.quiet:
                return len(data)
            raise OutputError(e.errno or errno.EIO, e.strerror) from None


def _guard(fd: int, name: str, old: Any, *, closed_fd: bool, quiet: bool) -> IO[str]:
    encoding = stream_encoding(old) if old is not None else "utf-8"
    raw = _Fd(fd, name, closed_fd=closed_fd, quiet=quiet)
    line = bool(old is not None and getattr(old, "line_buffering", False)) or name == "stderr"
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=encoding,
        errors="backslashreplace" if quiet else "cxlctl-stand-in",
        line_buffering=line,
        write_through=name == "stderr",
    )


_prepared = False
_stdin_closed = False


def prepare() -> None:
    """Take over fds 0-2 and the signals for a real cxlctl process (not in tests
    that run the CLI in process: click's runner brings its own streams)."""
    global _prepared, _stdin_closed
    if _prepared:
        return
    _prepared = True
    closed = {}
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            closed[fd] = False
        except OSError:
            closed[fd] = True
            # hold the number, so no file cxlctl opens later becomes "stdout"
            with contextlib.suppress(OSError, ValueError):
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
    _stdin_closed = closed[0]
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush() if sys.stdout is not None else None
    sys.stdout = _guard(1, "stdout", sys.stdout, closed_fd=closed[1], quiet=False)
    sys.stderr = _guard(2, "stderr", sys.stderr, closed_fd=closed[2], quiet=True)
    install_signals()


def stdin_binary(what: str) -> BinaryIO:
    """stdin's bytes, or a usage error naming WHAT when stdin is closed (``<&-``)."""
    if _stdin_closed or sys.stdin is None or getattr(sys.stdin, "closed", False):
        raise UsageError(f"{what}: no input: stdin is closed (give a FILE)")
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:  # pragma: no cover - a text-only stdin someone installed
        raise UsageError(f"{what}: stdin has no byte stream")
    return buf  # type: ignore[no-any-return]


def write_stdout(data: bytes | str) -> None:
    """Write everything to stdout, or raise BrokenPipeError/:class:`OutputError`.

    With ``PYTHONUNBUFFERED=1`` stdout's binary layer is unbuffered and a short
    write (the reader went away mid-way) is silently dropped by ``TextIOWrapper``;
    looping on the byte stream turns that into the EPIPE it really is.
    """
    raw = data.encode() if isinstance(data, str) else data
    if sys.stdout is None:
        raise OutputError(errno.EBADF, "stdout is closed")
    sys.stdout.flush()
    out = sys.stdout.buffer
    view = memoryview(raw)
    while view:
        n = out.write(view)
        view = view[n if n is not None else 0 :]
    out.flush()


def message(line: str, *, lines: bool = False) -> None:
    """A message on stderr, made visible-safe (with ``lines``, the newlines of a
    multi-line text such as click's usage are kept); never raises."""
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(sanitize(line, stream_encoding(err), keep="\n" if lines else "") + "\n")
        err.flush()
    except (OSError, ValueError):
        pass


def discard_stdout() -> None:
    """After stdout failed: drop whatever is still buffered, so neither cxlctl nor
    the interpreter's exit tries (and reports failing) again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")


def _east_asian_width(ch: str) -> str:
    import unicodedata  # only for the rare wide character: start-up matters

    return unicodedata.east_asian_width(ch)


# --- signals ------------------------------------------------------------------------------

SIGNALS: dict[int, str] = {
    signal.SIGINT: "SIGINT",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum, SIGNALS.get(signum, f"signal {signum}"))


def install_signals() -> None:
    """SIGINT, SIGTERM, SIGHUP raise :class:`~cxlctl.errors.Interrupted` (a
    KeyboardInterrupt), so ``finally`` blocks run: temp files are removed and a
    change in progress reports how far it got."""
    for sig in SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(sig) is not signal.SIG_IGN or sig == signal.SIGINT:
                signal.signal(sig, _raise)


def stop_signals() -> None:
    """While exiting: a second signal must not interrupt the report of the first."""
    for sig in SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)


# --- one translation to exit codes ----------------------------------------------------------


def interrupted_code(e: BaseException) -> int:
    return int(e.exit_code) if isinstance(e, Interrupted) else int(ExitCode.INTERRUPTED)


def report_output_error(e: OSError | OutputError) -> int:
    """A failed write to stdout: one line, exit 1 (a broken pipe: none, 141)."""
    discard_stdout()
    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
        return int(ExitCode.BROKEN_PIPE)
    name = errno.errorcode.get(e.errno or 0, "")
    message(
        f"cxlctl: cannot write to stdout: {e.strerror or os.strerror(e.errno or errno.EIO)}"
        + (f" [{name}]" if name else "")
    )
    return int(ExitCode.FAILURE)
