"""Operations Linux runs itself, driven through sysfs exactly as cxl-cli does:
firmware upload (the firmware-upload class), sanitize and secure erase
(``security/sanitize``, ``security/erase``, ``security/state``).

Everything goes through the backend's sysfs seam (:mod:`cxlctl.sysfs`): the real
``/sys`` on the kernel backend, the simulated kernel's tree on ``--sim``, so the
same writes are made on both (``../shared/reference/topology.md`` 8 and 9):

* update-firmware: ``loading`` <- ``"1\\n\\0"``, the image into ``data`` in 4096-byte
  writes, ``loading`` <- ``"0\\n\\0"``; ``cancel`` <- ``"1\\n\\0"``; progress from
  ``status`` and ``remaining_size``;
* sanitize / secure-erase: ``security/sanitize`` (``erase``) <- ``"1\\n"``;
  wait-sanitize polls ``security/state`` until it leaves ``sanitize``.

With a :class:`~cxlctl.change.Recorder` the writes are recorded, not made.  Nothing
here prints.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import sysfs as sf
from .change import ProgressHook, midway, no_progress, stopped
from .errors import CxlError, DeviceBusy, PermissionDenied, UnsupportedCommand, from_errno

if TYPE_CHECKING:
    from .backends import Backend
    from .change import Recorder

#: cxl-cli's write size for the firmware image (libcxl: 4096-byte writes to ``data``)
DATA_CHUNK = 4096
POLL_S = 0.1


def memdev_path(backend: Backend, name: str) -> str:
    """``devices/pci.../memN``: where cxl-cli writes (it resolves the bus link)."""
    return backend.sysfs_seam.realpath(f"bus/cxl/devices/{name}")


def _oserror(e: OSError, name: str, what: str) -> CxlError:
    err = e.errno or errno.EIO
    if err in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{name}: {what}: permission denied", hint="run as root")
    return from_errno(err, f"{name}: {what}", e.strerror)


@dataclass(frozen=True, slots=True)
class FwUploadState:
    status: str  #: idle, transferring (the kernel also has receiving, preparing, programming)
    remaining_size: int
    error: str  #: "" or "<phase>:<error>"; None while an upload runs (EBUSY)

    @property
    def in_progress(self) -> bool:
        return self.status != "idle"


class FirmwareUpload:
    """One memdev's firmware-upload device (``memN/firmware/memN``)."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.name = name
        self.seam = backend.sysfs_seam
        self.dir = f"{memdev_path(backend, name)}/firmware/{name}"

    def available(self) -> bool:
        return self.seam.exists(f"{self.dir}/loading")

    def require(self) -> None:
        if not self.available():
            raise UnsupportedCommand(
                f"{self.name}: no firmware-upload device ({self.dir} is missing)",
                hint="the kernel creates it when the device supports Transfer FW "
                "(Linux 6.4+, CONFIG_FW_UPLOAD)",
            )

    def _abs(self, attr: str) -> str:
        return f"/sys/{self.dir}/{attr}"

    def write(self, attr: str, data: bytes, rec: Recorder | None) -> None:
        if rec is not None:
            rec.write(self._abs(attr), data)
            return
        try:
            self.seam.write(f"{self.dir}/{attr}", data)
        except OSError as e:
            raise _oserror(e, self.name, f"writing {self._abs(attr)}") from e

    def state(self) -> FwUploadState:
        try:
            status = sf.text(self.seam.read(f"{self.dir}/status")).strip()
            remaining = sf.number(self.seam.read(f"{self.dir}/remaining_size"))
        except OSError as e:
            raise _oserror(e, self.name, "reading the firmware-upload state") from e
        except ValueError as e:
            raise CxlError(f"{self.name}: firmware upload: {e}") from e
        error = ""
        if status == "idle":
            try:
                error = sf.text(self.seam.read(f"{self.dir}/error")).strip()
            except OSError:
                error = ""
        return FwUploadState(status, remaining, error)

    def start(self, image: bytes, rec: Recorder | None, hook: ProgressHook = no_progress) -> None:
        """cxl_memdev_update_fw(): loading <- 1, the image into data, loading <- 0."""
        self.require()
        if not image:
            raise CxlError(f"{self.name}: the firmware image is empty: nothing to send")
        if rec is None and self.state().in_progress:
            raise DeviceBusy(
                f"{self.name}: a firmware update is already in progress",
                hint=f"wait for it (`cxlctl update-firmware {self.name} -w`) or cancel it (-c)",
            )
        self.write("loading", b"1\n\0", rec)
        done = 0
        hook(0, len(image), "writing the image")
        try:
            for off in range(0, len(image), DATA_CHUNK):
                chunk = image[off : off + DATA_CHUNK]
                self.write("data", chunk, rec)
                done += len(chunk)
                hook(done, len(image), "writing the image")
        except CxlError as e:
            self._discard(rec)
            raise midway(
                e,
                f"{done} of {len(image)} image bytes had been written to {self._abs('data')}; "
                "the upload was discarded (loading <- -1): the device was not changed",
            ) from None
        except KeyboardInterrupt as e:
            self._discard(rec)
            raise stopped(
                e,
                f"{done} of {len(image)} image bytes written, upload discarded: "
                "the device was not changed",
            ) from None
        self.write("loading", b"0\n\0", rec)

    def _discard(self, rec: Recorder | None) -> None:
        with contextlib.suppress(CxlError):
            self.write("loading", b"-1\n\0", rec)

    def wait(
        self, size: int, hook: ProgressHook = no_progress, timeout_s: float | None = None
    ) -> FwUploadState:
        """Poll status/remaining_size until the upload ends (the kernel's worker sends
        the parts); raise when it ended with an error."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        st = self.state()
        while st.in_progress:
            if size:
                hook(max(0, size - st.remaining_size), size, "transferring")
            if deadline is not None and time.monotonic() > deadline:
                raise CxlError(
                    f"{self.name}: firmware update still {st.status} after {timeout_s:g} s "
                    f"({st.remaining_size} bytes left)"
                )
            time.sleep(POLL_S)
            st = self.state()
        if size:
            hook(size - st.remaining_size if st.error else size, size, "transferring")
        if st.error:
            raise CxlError(
                f"{self.name}: firmware update failed: {st.error} "
                f"({st.remaining_size} bytes had not been transferred; the staged slot "
                "was not changed)"
            )
        return st

    def cancel(self, rec: Recorder | None) -> bool:
        """cancel <- 1; False when no upload was running (the kernel says ENODEV)."""
        self.require()
        if rec is not None:
            self.write("cancel", b"1\n\0", rec)
            return True
        try:
            self.seam.write(f"{self.dir}/cancel", b"1\n\0")
        except OSError as e:
            if e.errno == errno.ENODEV:
                return False
            raise _oserror(e, self.name, f"writing {self._abs('cancel')}") from e
        return True


# --- sanitize / secure erase -------------------------------------------------------------


def security_state(backend: Backend, name: str) -> str:
    path = f"{memdev_path(backend, name)}/security/state"
    try:
        return sf.text(backend.sysfs_seam.read(path)).strip()
    except OSError as e:
        raise _oserror(e, name, f"reading /sys/{path}") from e


def start_sanitize(backend: Backend, name: str, erase: bool, rec: Recorder | None) -> None:
    """``security/sanitize`` (or ``erase``) <- 1, after the kernel's own checks."""
    attr = "erase" if erase else "sanitize"
    what = "Secure Erase" if erase else "Sanitize"
    path = f"{memdev_path(backend, name)}/security/{attr}"
    seam = backend.sysfs_seam
    if not seam.exists(path):
        raise UnsupportedCommand(
            f"{name}: {what} is not available: /sys/{path} does not exist",
            hint=f"the kernel creates it only when the device lists {what} in its CEL"
            + (" (QEMU 10's cxl-type3 does not)" if erase else ""),
        )
    committed = backend.decoders_committed(name)
    if committed:
        raise DeviceBusy(
            f"{name} is part of an active region ({committed} committed endpoint decoders): "
            f"the kernel refuses {what} [EBUSY]",
            hint="destroy or disable the region first",
        )
    if rec is not None:
        rec.write(f"/sys/{path}", b"1\n")
        return
    if security_state(backend, name) == "sanitize":
        raise DeviceBusy(f"{name}: a sanitize is already running")
    try:
        seam.write(path, b"1\n")
    except OSError as e:
        raise _oserror(e, name, f"writing 1 to /sys/{path}") from e


def wait_sanitize(
    backend: Backend,
    name: str,
    timeout_ms: int | None = None,
    hook: ProgressHook = no_progress,
) -> bool:
    """Poll ``security/state`` until it leaves ``sanitize`` (cxl-cli's wait-sanitize);
    False on timeout. Returns at once when no sanitize runs."""
    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    t0 = time.monotonic()
    while security_state(backend, name) == "sanitize":
        waited = int((time.monotonic() - t0) * 1000)
        hook(waited, max(waited, timeout_ms or 0), "sanitizing")
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True
