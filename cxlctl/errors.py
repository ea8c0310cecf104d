"""The exception tree and the exit codes.

Every failure a user can meet is a :class:`CxlError` subclass carrying the exit
code the CLI maps it to; the CLI translates them in exactly one place.  This
module imports nothing of ours so every layer can use it.
"""

from __future__ import annotations

import enum
import errno as _errno


class ExitCode(enum.IntEnum):
    """Documented process exit codes (README, man pages)."""

    OK = 0
    FAILURE = 1  #: generic failure (I/O error, unexpected errno)
    USAGE = 2  #: bad command line or input (click's own code for usage errors)
    DEVICE_ERROR = 3  #: the device answered with a mailbox return code other than Success
    NOT_SUPPORTED = 4  #: command not supported by this kernel or device (ENOTTY, unsupported)
    PERMISSION = 5  #: not allowed: EACCES on open, EPERM on RAW
    NOT_FOUND = 6  #: no such memdev, or no CXL devices at all
    BUSY = 7  #: the kernel owns the resource (EBUSY) or the device is busy
    INVALID_REQUEST = 8  #: the kernel rejected a field of the request (EINVAL, EFAULT)
    BAD_SIZE = 9  #: the kernel rejected a payload size (ENOMEM: in.size/out.size vs its table)
    HANGUP = 129  #: SIGHUP (128 + 1): the terminal went away
    INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  #: the reader of stdout went away (128 + SIGPIPE), no message
    TERMINATED = 143  #: SIGTERM (128 + 15)


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped cxlctl.  A ``KeyboardInterrupt``,
    so ``finally`` blocks run and ``except Exception`` never swallows it; code that
    changes a device catches it to say how far it got, then re-raises."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name
        self.exit_code = 128 + signum


class CxlError(Exception):
    """Base of every error cxlctl raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CxlError):
    """The user asked for something malformed (bad hex, unknown command name...)."""

    exit_code = ExitCode.USAGE


class DeviceNotFound(CxlError):
    """No such memdev, or no CXL memdevs at all."""

    exit_code = ExitCode.NOT_FOUND


class PermissionDenied(CxlError):
    """Opening the device or issuing the command is not allowed."""

    exit_code = ExitCode.PERMISSION


class UnsupportedCommand(CxlError):
    """The kernel or the device does not support the command."""

    exit_code = ExitCode.NOT_SUPPORTED


class DeviceBusy(CxlError):
    """The kernel claimed the command for exclusive use, or the device is busy."""

    exit_code = ExitCode.BUSY


class InvalidRequest(CxlError):
    """The kernel rejected the request's fields or sizes."""

    exit_code = ExitCode.INVALID_REQUEST


class InvalidSize(InvalidRequest):
    """The kernel rejected in.size or out.size for this command (ENOMEM)."""

    exit_code = ExitCode.BAD_SIZE


class TransportError(CxlError):
    """An ioctl or open failed with an errno that has no better class."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, err: int, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = err


class MailboxError(CxlError):
    """The device completed the command with a non-Success mailbox return code."""

    exit_code = ExitCode.DEVICE_ERROR

    def __init__(self, message: str, rc: int, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rc = rc


class DecodeError(CxlError):
    """A payload could not be decoded (too short, malformed)."""

    exit_code = ExitCode.DEVICE_ERROR


class DeviceWarning(UserWarning):
    """The device answered, but not as the specification says (an output longer
    than the command's layout that filled the whole buffer, ...): the value was
    decoded anyway.  The library issues it with :func:`warnings.warn`; the CLI
    shows it as one ``cxlctl: warning:`` line on stderr."""


def write_report(
    offset: int,
    written: int,
    length: int,
    *,
    commands: int | None = None,
    command: str = "command",
    in_doubt: int = 0,
) -> str:
    """The one way cxlctl says how far a write of many commands got: which bytes
    were written, which command (after an interrupt) may or may not have been, and
    which bytes were not."""
    if not written and not in_doubt:
        return f"nothing was written ({length} bytes at {offset:#x} unchanged)"
    end = offset + written
    n = "" if commands is None else f", {commands} {command}{'' if commands == 1 else 's'}"
    out = f"{written} of {length} bytes were written ({offset:#x}..{end:#x}{n})"
    if in_doubt:
        out += (
            f"; the command for {end:#x}..{end + in_doubt:#x} was interrupted and may or "
            "may not have been written"
        )
    if end + in_doubt < offset + length:
        out += f"; {end + in_doubt:#x}..{offset + length:#x} was not written"
    return out


class PartialWrite(CxlError):
    """A write of many commands stopped midway.

    Exactly ``written`` bytes from ``offset`` reached the device; the rest of the
    ``length``-byte range did not, except, after an interrupt, possibly the one
    command in flight (``in_doubt`` bytes at ``offset + written``). ``cause`` is
    what stopped it (a :class:`CxlError`, an ``OSError`` or ``KeyboardInterrupt``);
    the exit code is the cause's. The message is the cause's, then :attr:`report`
    (:func:`write_report`).
    """

    def __init__(
        self,
        what: str,
        *,
        offset: int,
        written: int,
        length: int,
        cause: BaseException,
        in_doubt: int = 0,
        commands: int | None = None,
        command: str = "command",
    ) -> None:
        #: how far it got, without the cause
        self.report = write_report(
            offset, written, length, commands=commands, command=command, in_doubt=in_doubt
        )
        if isinstance(cause, KeyboardInterrupt):
            why = f"{what}: interrupted"
        elif isinstance(cause, CxlError):
            why = cause.message
        else:
            why = f"{what}: {cause}"
        super().__init__(
            f"{why}; {self.report}",
            hint=cause.hint if isinstance(cause, CxlError) else None,
        )
        self.offset = offset
        self.written = written
        self.length = length
        self.in_doubt = in_doubt
        self.commands = commands
        self.cause = cause
        if isinstance(cause, CxlError):
            self.exit_code = cause.exit_code
        elif isinstance(cause, KeyboardInterrupt):
            self.exit_code = ExitCode.INTERRUPTED


# errno -> (class, cause, hint) for failures of open() and the two ioctls.
_ERRNO_MAP: dict[int, tuple[type[CxlError], str, str]] = {
    _errno.ENOTTY: (
        UnsupportedCommand,
        "not supported by this kernel or device",
        "see `cxlctl query` for what is enabled",
    ),
    _errno.EPERM: (
        PermissionDenied,
        "not permitted",
        "RAW commands need a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS, "
        "and the kernel refuses some opcodes even then",
    ),
    _errno.EACCES: (
        PermissionDenied,
        "permission denied",
        "the memdev node is root-only; run as root",
    ),
    _errno.EBUSY: (
        DeviceBusy,
        "busy: the kernel has claimed the command or the device is busy",
        "",
    ),
    _errno.EINVAL: (
        InvalidRequest,
        "rejected by the kernel: a reserved field, flag or size is invalid",
        "",
    ),
    _errno.ENOMEM: (
        InvalidSize,
        "rejected by the kernel: in.size or out.size does not fit the command",
        "see size_in/size_out in `cxlctl query`",
    ),
    _errno.EFAULT: (InvalidRequest, "bad payload address", ""),
    _errno.ENXIO: (DeviceNotFound, "the device went away", "was the driver unbound?"),
    _errno.ENOENT: (DeviceNotFound, "no such device node", "is cxl_mem loaded?"),
    _errno.ENODEV: (DeviceNotFound, "no such device", "is cxl_mem loaded?"),
    _errno.ETIMEDOUT: (
        TransportError,
        "the device did not answer within the kernel's mailbox timeout",
        "the device may be hung or gone; see the kernel log (dmesg)",
    ),
}


def from_errno(err: int, what: str, detail: str | None = None) -> CxlError:
    """Build the right :class:`CxlError` for an errno: ``WHAT: CAUSE [ENAME]``."""
    name = _errno.errorcode.get(err, f"errno {err}")
    cls, cause, hint = _ERRNO_MAP.get(err, (TransportError, "", ""))
    msg = f"{what}: {detail or cause or _strerror(err)} [{name}]"
    if cls is TransportError:
        return TransportError(msg, err, hint=hint or None)
    return cls(msg, hint=hint or None)


class FileError(CxlError):
    """A file the user named (``-o FILE``, a state directory...) could not be used."""

    exit_code = ExitCode.FAILURE


#: errno -> hint for a file the user named: (reading it, writing it)
_FILE_HINTS: dict[int, tuple[str, str]] = {
    _errno.ENOENT: ("", "the directory {dir} does not exist"),
    _errno.ENOTDIR: ("a part of the path is not a directory",) * 2,
    _errno.EACCES: ("you may not read it", "you may not write there"),
    _errno.EPERM: ("you may not read it", "you may not write there"),
    _errno.EROFS: ("", "the file system is read-only"),
    _errno.EISDIR: ("it is a directory: name a file",) * 2,
    _errno.ENOSPC: ("", "the file system is full"),
    _errno.EDQUOT: ("", "your disk quota is used up"),
    _errno.ELOOP: ("it is a symbolic link cxlctl does not follow",) * 2,
}


def file_error(
    what: str, path: str, e: OSError, *, writing: bool = False, usage: bool = False
) -> CxlError:
    """The one message for a file the user named: ``WHAT: PATH: CAUSE [ENAME]``
    with a hint that fits the errno (``the directory /no/such does not exist``).
    ``usage``: a bad input on the command line (UsageError, exit 2); else exit 1."""
    import os

    err = e.errno or _errno.EIO
    name = _errno.errorcode.get(err, f"errno {err}")
    msg = f"{what}: {path}: {e.strerror or _strerror(err)} [{name}]"
    hint = _FILE_HINTS.get(err, ("", ""))[writing]
    hint = hint.format(dir=os.path.dirname(os.path.abspath(path)) or "/")
    if usage:
        return UsageError(msg, hint=hint or None)
    return FileError(msg, hint=hint or None)


def _strerror(err: int) -> str:
    import os

    try:
        return os.strerror(err)
    except ValueError:  # pragma: no cover - os.strerror accepts any int on Linux
        return "unknown error"
