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


def _oserror(
    e: OSError, name: str, what: str, backend: Backend | None = None, opcode: int | None = None
) -> CxlError:
    err = e.errno or errno.EIO
    if err in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{name}: {what}: permission denied", hint="run as root")
    if err == errno.EBUSY and backend is not None:
        from . import why

        cause, hint = why.busy(backend, name, opcode=opcode)
        return DeviceBusy(f"{name}: {what}: {cause} [EBUSY]", hint=hint)
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
        self._dir: str | None = None
        #: the same directory through the memdev's bus link, for reads: the seam
        #: resolves the link as open(2) does, without a realpath first
        self._via = f"bus/cxl/devices/{name}/firmware/{name}"

    @property
    def dir(self) -> str:
        """``devices/.../memN/firmware/memN``: where cxl-cli writes (and what messages
        and --dry-run show), resolved when first needed."""
        if self._dir is None:
            self._dir = f"{memdev_path(self.backend, self.name)}/firmware/{self.name}"
        return self._dir

    def available(self) -> bool:
        return self.seam.exists(f"{self._via}/loading")

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
            raise _oserror(e, self.name, f"writing {self._abs(attr)}", self.backend, 0x0201) from e

    def status(self) -> str:
        """``status`` alone: idle, or the phase of an upload (what ``cxl list -F`` reads
        first; :meth:`remaining_size` only while busy)."""
        try:
            return sf.text(self.seam.read(f"{self._via}/status")).strip()
        except OSError as e:
            raise _oserror(e, self.name, "reading the firmware-upload state") from e

    def remaining_size(self) -> int:
        try:
            return sf.number(self.seam.read(f"{self._via}/remaining_size"))
        except OSError as e:
            raise _oserror(e, self.name, "reading the firmware-upload state") from e
        except ValueError as e:
            raise CxlError(f"{self.name}: firmware upload: {e}") from e

    def state(self) -> FwUploadState:
        status = self.status()
        remaining = self.remaining_size()
        error = ""
        if status == "idle":
            try:
                error = sf.text(self.seam.read(f"{self._via}/error")).strip()
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
        raise DeviceBusy(
            f"{name}: a sanitize is already running",
            hint=f"wait for it: `cxlctl wait-sanitize {name}`",
        )
    opcode = 0x4401 if erase else 0x4400
    try:
        seam.write(path, b"1\n")
    except OSError as e:
        raise _oserror(e, name, f"writing 1 to /sys/{path}", backend, opcode) from e


@dataclass(frozen=True, slots=True)
class SanitizeWait:
    """What :func:`wait_sanitize` saw."""

    finished: bool  #: False: still sanitizing when the timeout passed
    waited: bool  #: a sanitize was running when the wait began
    ms: int  #: how long it waited
    state: str  #: ``security/state`` at the end

    def __bool__(self) -> bool:
        return self.finished

    def summary(self, name: str) -> str:
        if not self.waited:
            return f"{name}: no sanitize running (security/state: {self.state})"
        if not self.finished:
            return f"{name}: still sanitizing after {self.ms} ms"
        return (
            f"{name}: waited {self.ms} ms for the running sanitize to finish: it has "
            f"finished (security/state now reads {self.state!r})"
        )


def wait_sanitize(
    backend: Backend,
    name: str,
    timeout_ms: int | None = None,
    hook: ProgressHook = no_progress,
) -> SanitizeWait:
    """Poll ``security/state`` until it leaves ``sanitize`` (cxl-cli's wait-sanitize);
    falsy on timeout. Returns at once when no sanitize runs."""
    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    t0 = time.monotonic()
    state = security_state(backend, name)
    waited = state == "sanitize"
    while state == "sanitize":
        ms = int((time.monotonic() - t0) * 1000)
        hook(ms, max(ms, timeout_ms or 0), "sanitizing")
        if deadline is not None and time.monotonic() >= deadline:
            return SanitizeWait(False, True, timeout_ms or ms, state)
        time.sleep(POLL_S)
        state = security_state(backend, name)
    return SanitizeWait(True, waited, int((time.monotonic() - t0) * 1000), state)


# --- CXL protocol error injection (ACPI EINJ) --------------------------------------------

#: cxl-cli 85's ``-p mem|cache -s correctable|uncorrectable|fatal`` -> the ACPI EINJ
#: error type (ACPI 6.5 Table 18.30; Documentation/ABI/testing/debugfs-cxl)
PROTOCOL_ERRORS: dict[tuple[str, str], int] = {
    ("cache", "correctable"): 0x1000,
    ("cache", "uncorrectable"): 0x2000,
    ("cache", "fatal"): 0x4000,
    ("mem", "correctable"): 0x8000,
    ("mem", "uncorrectable"): 0x10000,
    ("mem", "fatal"): 0x20000,
}
EINJ_TYPES = "/sys/kernel/debug/cxl/einj_types"


def einj_types(backend: Backend) -> dict[int, str]:
    """The CXL protocol error types the platform offers (debugfs ``cxl/einj_types``:
    ``0x<type>\\t<name>`` lines). UnsupportedCommand, saying why, when the kernel
    offers none."""
    text = backend.tracing().einj_types()
    if text is None:
        raise UnsupportedCommand(
            "inject-protocol-error: not available on this kernel, because "
            f"{EINJ_TYPES} does not exist: Linux (6.9+) creates it only when it is built "
            "with CONFIG_ACPI_APEI_EINJ_CXL and the platform's ACPI EINJ table offers CXL "
            "error types (QEMU's does not)",
            hint="on a real system: modprobe einj, and check that the firmware offers EINJ",
        )
    out: dict[int, str] = {}
    for line in text.splitlines():
        word, _, name = line.strip().partition("\t")
        try:
            out[int(word, 16)] = name.strip()
        except ValueError:
            continue
    return out


def inject_protocol_error(
    backend: Backend, dport: str, error_type: int, rec: Recorder | None
) -> str:
    """``cxl/DPORT/einj_inject`` <- ``error_type``, after checking that the platform
    offers it; returns the type's name."""
    offered = einj_types(backend)
    if error_type not in offered:
        have = ", ".join(f"{t:#x} {n}" for t, n in sorted(offered.items())) or "none"
        raise UnsupportedCommand(
            f"{dport}: the platform does not offer error type {error_type:#x} (einj_types: {have})"
        )
    if rec is not None:
        rec.write(
            f"/sys/kernel/debug/cxl/{dport}/einj_inject", f"{error_type:#x}\n".encode(), "debugfs"
        )
    else:
        backend.tracing().einj_inject(dport, error_type)
    return offered[error_type]
