"""The second seam: sysfs (and debugfs), as bytes.

cxl-cli does most of its work through sysfs, not ioctls.  Everything above this
module (memdev attributes, the topology, regions, firmware upload, sanitize) talks
to a :class:`Sysfs`: read an attribute as bytes, write bytes, list a directory,
resolve a link.  :class:`HostSysfs` is the running kernel's ``/sys``; the simulator
provides its own implementation with the kernel's ABI rules (attribute formats,
modes, write errnos), so the code above runs unchanged on both backends, exactly
as the mailbox code does over the ioctl seam.

Paths are relative to the sysfs mount (``bus/cxl/devices/mem0/serial``), always
with ``/`` separators; an absolute path or one with ``..`` components is refused
(``EINVAL``) so a name taken from the other side cannot escape the tree.

Bytes from the kernel are untrusted: :func:`text` decodes them without ever
raising (``errors="backslashreplace"``), and :func:`number` range-checks.  Reads
are bounded (:data:`ATTR_MAX`: sysfs attributes are at most one page).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from typing import Protocol

#: A sysfs attribute is at most one page (PAGE_SIZE); read one byte more to notice.
ATTR_MAX = 4096
_NUMBER = r"-?(?:0x[0-9a-fA-F]+|[0-9]+)"  # compiled on first use (re's cache)
_number_match: Callable[[str], re.Match[str] | None] | None = None


def _check(path: str) -> str:
    # an empty, "." or ".." component (a leading or trailing "/" makes an empty one)
    p = f"/{path}/"
    if "//" in p or "/./" in p or "/../" in p:
        raise OSError(errno.EINVAL, f"not a relative sysfs path: {path!r}")
    return path


class Sysfs(Protocol):
    """What the code above needs from sysfs.  Errors are ``OSError`` with the
    errno the kernel would give (``ENOENT``, ``EACCES``, ``EINVAL``, ``EBUSY``, ...)."""

    def read(self, path: str) -> bytes:
        """An attribute's contents (at most :data:`ATTR_MAX` bytes)."""
        ...

    def write(self, path: str, data: bytes) -> None:
        """One ``write(2)`` of ``data`` to an attribute."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Entry names of a directory, unsorted."""
        ...

    def realpath(self, path: str) -> str:
        """The path with every link resolved, relative to the mount
        (``bus/cxl/devices/mem0`` -> ``devices/platform/ACPI0017:00/root0/.../mem0``)."""
        ...

    def islink(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...


class HostSysfs:
    """The running kernel's sysfs under ``root`` (``/sys``; tests pass a directory)."""

    def __init__(self, root: str = "/sys") -> None:
        self.root = os.path.abspath(root)

    def _abs(self, path: str) -> str:
        return os.path.join(self.root, _check(path)) if path else self.root

    def read(self, path: str) -> bytes:
        fd = os.open(self._abs(path), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            data = os.read(fd, ATTR_MAX + 1)
        finally:
            os.close(fd)
        if len(data) > ATTR_MAX:
            raise OSError(errno.EFBIG, f"{path}: larger than a sysfs attribute")
        return data

    def write(self, path: str, data: bytes) -> None:
        fd = os.open(self._abs(path), os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
        if n != len(data):
            raise OSError(errno.EIO, f"{path}: short write ({n} of {len(data)} bytes)")

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self._abs(path))

    def realpath(self, path: str) -> str:
        real = os.path.realpath(self._abs(path))
        rel = os.path.relpath(real, self.root)
        if rel == "." or rel.startswith(".."):
            return rel if rel == "." else real
        return rel

    def islink(self, path: str) -> bool:
        return os.path.islink(self._abs(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._abs(path))


def text(data: bytes) -> str:
    """An attribute as text: one trailing newline removed, never raises on bad bytes
    (``b"FW\\xff"`` -> ``"FW\\\\xff"``)."""
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.decode("utf-8", errors="backslashreplace")


def number(data: bytes, *, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
    """An integer attribute (decimal or ``0x`` hex, as the kernel prints), range-checked;
    ``ValueError`` naming the value when it is not a number in ``lo..hi``."""
    global _number_match
    s = text(data).strip()
    if _number_match is None:  # compiled once, on first use: not at import
        _number_match = re.compile(_NUMBER, re.ASCII).fullmatch
    if not _number_match(s):
        raise ValueError(f"not a number: {s!r}")
    v = int(s, 0)
    if not lo <= v <= hi:
        raise ValueError(f"{v} is outside {lo}..{hi}")
    return v
