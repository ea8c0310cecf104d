"""The simulated kernel's firmware upload (``drivers/cxl/core/memdev.c``, Linux 6.12)
and sanitize (``security/sanitize``, ``security/erase``, ``security/state``).

The firmware-upload class device ``memN/firmware/memN`` follows the kernel's
protocol (``../shared/reference/topology.md`` 8.5): ``loading`` <- 1 opens an
upload, ``data`` accumulates the image, ``loading`` <- 0 starts it (``-1``
discards it), ``status`` reads ``idle`` or ``transferring``, ``remaining_size`` the
bytes not yet transferred, ``error`` ``<phase>:<error>`` (``EBUSY`` while an upload
runs), ``cancel`` <- 1 aborts a running upload (``ENODEV`` when none runs).

The kernel's worker (``cxl_fw_prepare``/``cxl_fw_write``) is modelled lazily: each
time the upload is looked at, it sends the Transfer FW parts whose time has come
-- slices of payload_max minus the 128-byte header, FULL for an image that fits
one command, else INITIATE/CONTINUE/END, to the slot after the active one -- and
after the last part Activate FW (offline) for that slot, so ``staged_slot`` moves
and ``active_slot`` stays.  The device's background-operation clock decides when
each part is done, so the upload also progresses between two cxlctl processes
(``CXLCTL_SIM_STATE`` keeps the upload and its image).
"""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, Any

from ... import mailbox as mb
from ..device import background as bgm
from ..device.model import RC
from ..state import deferred, load_state, read_bytes, save_state, write_bytes

if TYPE_CHECKING:
    from .. import SimDevice

#: The largest image the simulated upload buffers (4 x QEMU's 32 MiB device limit):
#: bounded like every state file; the kernel's buffer growth fails with ENOMEM.
IMAGE_MAX = 4 * bgm.FW_SIZE


class Upload:
    """The kernel's view of one upload (fw_upload status, remaining_size, error)."""

    FIELDS = ("status", "size", "offset", "remaining", "error", "cancel", "next_slot",
              "oneshot", "in_flight")  # fmt: skip

    def __init__(self, **kw: Any) -> None:
        self.status = "idle"  #: idle or transferring
        self.size = 0
        self.offset = 0  #: bytes the device has accepted
        self.remaining = 0  #: remaining_size as the kernel shows it
        self.error = ""
        self.cancel = False
        self.next_slot = 0
        self.oneshot = False
        self.in_flight = 0  #: bytes of the part the device is working on
        for k, v in kw.items():
            if k in self.FIELDS:
                setattr(self, k, v)

    def dump(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}


def _err(e: int, what: str) -> OSError:
    return OSError(e, f"{what}: {os.strerror(e)}")


class FwUpload:
    """One memdev's firmware-upload device and its kernel worker."""

    def __init__(self, dev: SimDevice) -> None:
        self.dev = dev
        self.loading = False
        self.buffer = bytearray()
        saved = load_state(dev.state_dir, dev.config.serial).get("fwupload")
        self.up = Upload(**saved) if isinstance(saved, dict) else Upload()
        self._image: bytes | None = None

    # -- persistence --
    def _image_name(self) -> str:
        return f"{self.dev.config.serial:#x}.fwimage"

    def image(self) -> bytes:
        if self._image is None:
            d = self.dev.state_dir
            # through the state module: no symlinks followed, bounded like the upload
            self._image = read_bytes(d, self._image_name(), max_bytes=IMAGE_MAX) if d else b""
        return self._image

    def _save(self) -> None:
        save_state(self.dev.state_dir, self.dev.config.serial, fwupload=self.up.dump())

    # -- the sysfs attributes --
    def read_loading(self) -> str:
        return "1\n" if self.loading else "0\n"

    def write_loading(self, value: str) -> None:
        v = value.strip()
        if v == "1":
            if self.up.status == "idle":
                self.loading = True
                self.buffer = bytearray()
            return
        if v == "-1":
            self.loading = False
            self.buffer = bytearray()
            return
        if v == "0" and self.loading:
            self.loading = False
            if self.buffer:
                self._start(bytes(self.buffer))
            self.buffer = bytearray()
        # anything else: the kernel logs "unexpected value" and returns the count

    def write_data(self, data: bytes) -> None:
        if self.loading:
            if len(self.buffer) + len(data) > IMAGE_MAX:
                raise _err(errno.ENOMEM, "data")
            self.buffer += data

    def read_status(self) -> str:
        self.advance()
        return self.up.status + "\n"

    def read_remaining(self) -> str:
        self.advance()
        return f"{self.up.remaining}\n"

    def read_error(self) -> str:
        self.advance()
        if self.up.status != "idle":
            raise _err(errno.EBUSY, "error")
        return self.up.error + ("\n" if self.up.error else "")

    def write_cancel(self, value: str) -> None:
        if value.strip() != "1":
            raise _err(errno.EINVAL, "cancel")
        self.advance()
        if self.up.status == "idle":
            raise _err(errno.ENODEV, "cancel")
        self.up.cancel = True
        self._save()
        self.advance()

    # -- the kernel's worker --
    def _start(self, image: bytes) -> None:
        dev = self.dev.device
        fw = dev.fw
        payload = self.dev.config.payload_max
        # cxl_fw_prepare(): the next slot after the active one, one shot if it fits
        nxt = fw.active_slot % bgm.SLOTS + 1
        self.up = Upload(
            status="transferring",
            size=len(image),
            remaining=len(image),
            next_slot=nxt,
            oneshot=bgm.XFER_HEADER + len(image) < payload,
        )
        self._image = image
        if self.dev.state_dir:
            # kept for the worker of a later process: locked, atomic, mkstemp names
            write_bytes(self.dev.state_dir, self._image_name(), image)
        if dev.bg is not None and dev.bg.opcode in (mb.SANITIZE.opcode, mb.SECURE_ERASE.opcode):
            # the device is sanitizing: the transfer fails at once (topology.md 8.4)
            self.up.status, self.up.error = "idle", "preparing:hw-error"
        self._save()
        self.advance()

    def _part(self) -> bytes:
        up = self.up
        step = self.dev.config.payload_max - bgm.XFER_HEADER
        n = min(step, up.size - up.offset)
        if up.oneshot:
            action = bgm.FULL
        elif up.offset == 0:
            action = bgm.INIT
        elif up.offset + n == up.size:
            action = bgm.END
        else:
            action = bgm.CONTINUE
        hdr = bytes([action, up.next_slot, 0, 0]) + (up.offset // 128).to_bytes(4, "little")
        hdr += bytes(bgm.XFER_HEADER - len(hdr))
        return hdr + self.image()[up.offset : up.offset + n]

    def advance(self) -> None:
        """Send every part whose time has come (each starts when the last ended)."""
        if self.up.status != "transferring":
            return
        # device and upload save their progress with every part: written once, at
        # the end (a kill meanwhile leaves both as they were: the parts are resent)
        with deferred():
            self._advance()

    def _advance(self) -> None:
        up = self.up
        dev = self.dev.device
        now = time.time()
        changed = False
        while up.status == "transferring":
            last_done = dev.bg.done_at() if dev.bg is not None else now
            bgm.poll(dev, now)
            if dev.bg is not None:
                break  # a part (or something else) still runs
            if up.in_flight:
                up.offset += up.in_flight
                up.remaining = up.size - up.offset
                up.in_flight = 0
                changed = True
            if up.cancel:
                dev.execute(mb.TRANSFER_FW.opcode, bytes([bgm.ABORT]) + bytes(bgm.XFER_HEADER - 1))
                up.status, up.error, up.cancel = "idle", "transferring:user-abort", False
                changed = True
                break
            if up.offset >= up.size:
                rc, _ = dev.execute(
                    mb.ACTIVATE_FW.opcode, bytes([1, up.next_slot])
                )  # activate offline
                up.status, up.remaining = "idle", 0
                up.error = "" if rc == RC.SUCCESS else "programming:hw-error"
                changed = True
                break
            part = self._part()
            rc, _ = dev.execute(mb.TRANSFER_FW.opcode, part)
            if rc == RC.BACKGROUND_COMMAND_STARTED and dev.bg is not None:
                dev.bg.started = min(last_done, now)  # it began when the last one ended
                up.in_flight = len(part) - bgm.XFER_HEADER
                # saved with every part, as the device saves its own progress: a
                # process killed here leaves an upload that resumes where the device is
                self._save()
                continue
            if rc in (RC.SUCCESS, RC.BACKGROUND_COMMAND_STARTED):  # finished at once
                up.offset += len(part) - bgm.XFER_HEADER
                up.remaining = up.size - up.offset
                self._save()
                continue
            up.status = "idle"
            up.error = "transferring:" + ("busy" if rc == RC.BUSY else "hw-error")
            changed = True
            break
        if changed:
            self._save()
            bgm._save(dev)

    # -- for list -F --
    def in_progress(self) -> bool:
        self.advance()
        return self.up.status != "idle"

    def json(self) -> dict[str, Any]:
        return self.up.dump()


# --- security/sanitize, security/erase, security/state ---------------------------------

#: cxl_mbox_cmd_rc2errno() for the codes a sanitize can meet
_RC_ERRNO = {RC.BUSY: errno.EBUSY, RC.MEDIA_DISABLED: errno.ENXIO, RC.UNSUPPORTED: errno.ENXIO}


def security_state(dev: SimDevice) -> str:
    """``security/state``: ``sanitize`` while one runs, else ``disabled`` (no passphrase)."""
    return "sanitize\n" if dev.device.sanitizing() else "disabled\n"


def sanitize(dev: SimDevice, value: str, committed: int, opcode: int = mb.SANITIZE.opcode) -> None:
    """``security/sanitize`` (or ``erase``) <- 1: cxl_mem_sanitize() in Linux 6.12."""
    if value.strip() != "1":
        raise _err(errno.EINVAL, "sanitize")
    if dev.device.sanitizing():
        raise _err(errno.EBUSY, "sanitize")
    if committed:
        # "attempted to sanitize with a committed decoder": the memory is in use
        raise _err(errno.EBUSY, "sanitize")
    dev.device.execute(
        mb.GET_SECURITY_STATE.opcode, b""
    )  # the kernel reads the security state first
    rc, _ = dev.device.execute(opcode, b"")
    if rc not in (RC.SUCCESS, RC.BACKGROUND_COMMAND_STARTED):
        raise _err(_RC_ERRNO.get(RC(rc), errno.EIO), "sanitize")
