"""Simulator state kept between processes (``CXLCTL_SIM_STATE``), handled like a database.

The state directory holds, per simulated device, ``<serial>.json`` (small settings:
the alert configuration, whether cxl_mem is bound) and ``<serial>.lsa`` (the label
storage area).  Whatever is in that directory is untrusted, and several cxlctl
processes may use it at once, so:

* the directory must be an absolute path, a real directory (not a symlink), owned
  by the user running cxlctl and not writable by group or others; it is created
  (mode 0700) when missing;
* every file is opened relative to the directory's fd with ``O_NOFOLLOW`` (a
  symlink planted as ``0x1234.lsa`` is refused, never followed) and
  ``O_NONBLOCK`` (a FIFO cannot hang cxlctl), then checked: a regular file, owned
  by the user; anything else is refused with a message naming it;
* a JSON state file is parsed with bounds: at most :data:`MAX_STATE_BYTES` bytes
  and :data:`MAX_DEPTH` levels of nesting;
* every read-modify-write holds an exclusive fcntl lock (``lockf``) on ``.lock`` in the
  directory, writes a ``mkstemp`` temporary file (an unpredictable name, created
  ``O_EXCL``) in the directory, ``fsync``\\ s it, renames it over the old file
  and ``fsync``\\ s the directory; a failed write removes its temporary file.

Failures are :class:`StateError` (exit 1) naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CxlError, UsageError

#: A state file is a few hundred bytes; anything much larger is not ours.
MAX_STATE_BYTES = 64 * 1024
#: Nesting of a state file (it is one flat object).
MAX_DEPTH = 8
ENV = "CXLCTL_SIM_STATE"


class StateError(CxlError):
    """The simulator's state directory or one of its files cannot be used."""

    def __init__(self, path: str, why: str, *, setting: bool = False) -> None:
        # SETTING: PATH is the directory CXLCTL_SIM_STATE names; say so in the one line
        where = f"{ENV}={path}" if setting else f"simulator state: {path}"
        super().__init__(
            f"{where}: {why}",
            hint=f"fix or remove it, or point {ENV} at another directory",
        )
        self.path = path


def check_dir_setting(value: str) -> str:
    """``CXLCTL_SIM_STATE`` as given: it must be absolute (a relative one would
    depend on, and write into, whatever directory cxlctl happens to run in)."""
    if not os.path.isabs(value):
        raise UsageError(
            f"{ENV}={value!r} is a relative path; give an absolute one (e.g. {ENV}=$PWD/{value})"
        )
    return os.path.normpath(value)


def _why(e: OSError) -> str:
    err = e.errno or errno.EIO
    return f"{e.strerror or os.strerror(err)} [{errno.errorcode.get(err, '?')}]"


def open_dir(path: str, *, create: bool = True) -> int:
    """An ``O_DIRECTORY`` fd for the state directory, after the checks above."""
    path = check_dir_setting(path)
    if create:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except FileExistsError:
            raise StateError(path, "exists and is not a directory", setting=True) from None
        except NotADirectoryError:
            raise StateError(
                path, "a component of the path is not a directory", setting=True
            ) from None
        except OSError as e:
            raise StateError(
                path, f"cannot create the directory: {_why(e)}", setting=True
            ) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateError(
                path, "is a symbolic link; give the real directory", setting=True
            ) from None
        if e.errno == errno.ENOTDIR:
            if os.path.islink(path):
                raise StateError(
                    path, "is a symbolic link; give the real directory", setting=True
                ) from None
            raise StateError(path, "is not a directory", setting=True) from None
        raise StateError(path, f"cannot open the directory: {_why(e)}", setting=True) from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise StateError(
                path, f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})", setting=True
            )
        if st.st_mode & 0o022:
            raise StateError(
                path,
                f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); chmod go-w it",
                setting=True,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_file(fd: int, path: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise StateError(path, f"is {kind}, not a state file")
    if st.st_uid != os.geteuid():
        raise StateError(path, f"is owned by uid {st.st_uid}, not by you")
    return st


def open_file(dir_fd: int, dir_path: str, name: str, *, create: bool) -> int | None:
    """``name`` in the state directory, read-write; ``None`` when it does not exist
    and ``create`` is false.  Never follows a symlink, never blocks on a FIFO."""
    path = os.path.join(dir_path, name)
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(name, flags | (os.O_CREAT if create else 0), 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateError(path, "is a symbolic link; cxlctl does not follow it") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):
            raise StateError(path, "is not a regular file") from None
        raise StateError(path, f"cannot open: {_why(e)}") from None
    try:
        _check_file(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_lsa(state_dir: str, serial: int, size: int) -> int:
    """The label storage file ``<serial>.lsa``: see :func:`open_sized`."""
    return open_sized(state_dir, f"{serial:#x}.lsa", size)


def open_sized(state_dir: str, name: str, size: int) -> int:
    """``name`` in the state directory (created, sparse, ``size`` bytes), read-write,
    after the checks of :func:`open_file`.  Only a file that passed them is ever
    resized (a planted symlink is refused, its target never truncated)."""
    dfd = open_dir(state_dir)
    try:
        fd = open_file(dfd, state_dir, name, create=True)
        assert fd is not None
    finally:
        os.close(dfd)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)  # sparse: costs no disk until written
    except OSError as e:
        os.close(fd)
        raise StateError(os.path.join(state_dir, name), f"cannot size: {_why(e)}") from None
    return fd


def io_error(path: str, what: str, e: OSError) -> StateError:
    """A read or write of a state file failed (ENOSPC on a full disk...)."""
    return StateError(path, f"cannot {what}: {_why(e)}")


def _depth_ok(text: str) -> bool:
    depth = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _parse(data: bytes, path: str, max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise StateError(path, f"is larger than {max_bytes} bytes: not a state file")
    if not data.strip():
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(path, "is not UTF-8 JSON") from None
    if not _depth_ok(text):
        raise StateError(path, f"is nested more than {MAX_DEPTH} levels deep: not a state file")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise StateError(path, f"is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise StateError(path, "is not a JSON object")
    return obj


def _json_name(serial: int) -> str:
    return f"{serial:#x}.json"


def _read_fd(fd: int, max_bytes: int) -> bytes:
    out = bytearray()
    while len(out) <= max_bytes:
        chunk = os.read(fd, max_bytes + 1 - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def read_json(state_dir: str, name: str, *, max_bytes: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """The JSON object in ``name`` of the state directory (``{}`` when missing),
    after every check above."""
    dfd = open_dir(state_dir)
    try:
        return _read_json(dfd, state_dir, name, max_bytes)
    finally:
        os.close(dfd)


def _read_json(dfd: int, state_dir: str, name: str, max_bytes: int) -> dict[str, Any]:
    fd = open_file(dfd, state_dir, name, create=False)
    if fd is None:
        return {}
    try:
        return _parse(_read_fd(fd, max_bytes), os.path.join(state_dir, name), max_bytes)
    finally:
        os.close(fd)


#: updates :func:`deferred` holds back, per (state dir, serial); None: none held
_pending: dict[tuple[str, int], dict[str, Any]] | None = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold every :func:`save_state` back until the block ends, then write each
    memdev's merged updates once (under the lock, atomically, as always).

    For a loop that saves at every step (a firmware upload's kernel worker sends
    thousands of Transfer FW parts, and device and upload each save their progress
    with every one): each step's updates describe a consistent state, so writing
    only the last is the same state on disk, without thousands of fsyncs. A process
    killed inside the block leaves the state as it was before the block: still
    consistent, the work redone by the next process. Reads inside the block
    (:func:`load_state`) see the held updates. Nested blocks write at the
    outermost end; the held updates are written even when the block raises."""
    global _pending
    if _pending is not None:
        yield
        return
    _pending = {}
    try:
        yield
    finally:
        held, _pending = _pending, None
        for (state_dir, serial), updates in held.items():
            save_state(state_dir, serial, **updates)


def load_state(state_dir: str | None, serial: int) -> dict[str, Any]:
    """The saved state of one simulated memdev (``{}`` without a state directory
    or before anything was saved)."""
    if not state_dir:
        return {}
    saved = read_json(state_dir, _json_name(serial))
    if _pending is not None and (state_dir, serial) in _pending:
        saved.update(_pending[state_dir, serial])
    return saved


@contextlib.contextmanager
def locked(state_dir: str) -> Iterator[int]:
    """The state directory's fd, with its ``.lock`` held exclusively (an fcntl
    record lock: released when the fd is closed, or the process dies)."""
    dfd = open_dir(state_dir)
    try:
        lfd = open_file(dfd, state_dir, ".lock", create=True)
        assert lfd is not None
        try:
            os.lockf(lfd, os.F_LOCK, 0)  # an fcntl (POSIX) lock
            yield dfd
        finally:
            os.close(lfd)  # releases the lock
    finally:
        os.close(dfd)


def _replace(dfd: int, state_dir: str, name: str, data: bytes) -> None:
    """``name`` := ``data`` (caller holds the lock): mkstemp, fsync, rename, fsync
    the directory; a failure leaves the old file and no temporary file."""
    import tempfile  # not at import: with shutil, random and the compressors it costs
    # more than the rest of a --sim start-up; only a save needs it

    path = os.path.join(state_dir, name)
    try:
        # mkstemp: O_EXCL with a random name, so nothing can be planted in its place
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{name}.", suffix=".tmp")
    except OSError as e:
        raise StateError(path, f"cannot save: {_why(e)}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(os.path.basename(tmp), name, src_dir_fd=dfd, dst_dir_fd=dfd)
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(os.path.basename(tmp), dir_fd=dfd)
        if isinstance(e, OSError):
            raise StateError(path, f"cannot save: {_why(e)}") from None
        raise


def write_bytes(state_dir: str, name: str, data: bytes) -> None:
    """Replace ``name`` with ``data`` under the lock (see :func:`_replace`)."""
    with locked(state_dir) as dfd:
        _replace(dfd, state_dir, name, data)


def read_bytes(state_dir: str, name: str, *, max_bytes: int) -> bytes:
    """The contents of ``name`` (``b""`` when missing), after every check above;
    a file larger than ``max_bytes`` is an error, never read whole."""
    dfd = open_dir(state_dir)
    try:
        fd = open_file(dfd, state_dir, name, create=False)
        if fd is None:
            return b""
        try:
            data = _read_fd(fd, max_bytes)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
    if len(data) > max_bytes:
        raise StateError(os.path.join(state_dir, name), f"larger than {max_bytes} bytes")
    return data


def write_json(state_dir: str, name: str, data: dict[str, Any]) -> None:
    """Replace ``name`` with ``data`` under the lock (see :func:`_replace`)."""
    with locked(state_dir) as dfd:
        _replace(dfd, state_dir, name, json.dumps(data, sort_keys=True).encode())


def save_state(state_dir: str | None, serial: int, **updates: Any) -> None:
    """Merge ``updates`` into the saved state: read, merge and replace all under the
    lock, so concurrent writers never lose an update."""
    if not state_dir:
        return
    if _pending is not None:  # inside deferred(): written when the block ends
        _pending.setdefault((state_dir, serial), {}).update(updates)
        return
    name = _json_name(serial)
    with locked(state_dir) as dfd:
        data = {**_read_json(dfd, state_dir, name, MAX_STATE_BYTES), **updates}
        _replace(dfd, state_dir, name, json.dumps(data, sort_keys=True).encode())


def modify_state(
    state_dir: str | None, serial: int, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Read-modify-write under one hold of the lock: ``change(saved)`` returns the
    updates, computed from what is saved now (so an update of a list another process
    changed meanwhile is never lost)."""
    if not state_dir:
        return
    name = _json_name(serial)
    with locked(state_dir) as dfd:
        data = _read_json(dfd, state_dir, name, MAX_STATE_BYTES)
        if _pending is not None:  # inside deferred(): what is held goes first
            data.update(_pending.pop((state_dir, serial), {}))
        data.update(change(data))
        _replace(dfd, state_dir, name, json.dumps(data, sort_keys=True).encode())
