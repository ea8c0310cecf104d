"""Why the kernel (or the device) refused a command, and what to do: one place.

Linux 6.12 answers ``EBUSY`` for several unrelated reasons, and a hint that is
right for one ("disable the memdev first") is wrong for another (during a
sanitize). :func:`busy` knows the command and asks the system for its state, in
the order the kernel itself checks (``drivers/cxl/core/mbox.c``,
``drivers/cxl/pci.c``):

1. the command is claimed for exclusive kernel use (``cxl_to_mem_cmd()``: while
   cxl_pmem's nvdimm bridge is bound it owns SET_LSA and SET_SHUTDOWN_STATE);
2. the kernel refuses the payload (``cxl_payload_from_user_allowed()``: Set
   Partition Info with the immediate flag, Clear Log of any log but the Vendor
   Debug Log);
3. a sanitize is running (``__cxl_pci_mbox_send_cmd()``: every command but Get
   Health Info is refused until it ends);
4. a background operation is running on the device (a firmware transfer; the
   device answers Busy, which the kernel's sysfs paths turn into EBUSY);
5. the memdev is part of an active region (security/sanitize, security/erase).

:func:`unavailable` says why a command cannot be sent at all on this kernel.
Nothing here prints or raises for the state it cannot read: a check that fails
is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import mailbox as mb
from .errors import CxlError
from .mailbox import linux

if TYPE_CHECKING:
    from .backends import Backend
    from .transport import CommandInfo

#: Why Linux 6.12 has no command id for a command userspace may want (opcode -> why)
NO_KERNEL_ID: dict[int, str] = {
    mb.SET_EVENT_INTERRUPT_POLICY.opcode: "the kernel configures the event interrupts "
    "itself when the driver probes (cxl_event_config()) and exposes no command id for "
    "Set Event Interrupt Policy",
    mb.SET_TIMESTAMP.opcode: "the kernel sets the device's timestamp itself when the "
    "driver probes (cxl_set_timestamp()) and exposes no command id for Set Timestamp",
}
#: what to do instead, per opcode of :data:`~.mailbox.linux.REFUSALS`
_REFUSAL_HINTS: dict[int, str] = {
    mb.SET_PARTITION_INFO.opcode: "leave the immediate flag out: the new partition then "
    "takes effect at the next reset",
    mb.CLEAR_LOG.opcode: "this log cannot be cleared from userspace on Linux",
}
_WIPES = (mb.SANITIZE.opcode, mb.SECURE_ERASE.opcode)


def busy(
    backend: Backend,
    name: str,
    *,
    opcode: int | None = None,
    kernel_id: int | None = None,
    kernel_name: str = "",
    payload: bytes = b"",
    query: Callable[[], Sequence[CommandInfo]] | None = None,
    device_busy: bool = False,
) -> tuple[str, str]:
    """(cause, hint) for an EBUSY (or, with ``device_busy``, a mailbox Busy) of
    ``opcode`` on memdev ``name``."""
    if kernel_id is not None and query is not None and _exclusive(query, kernel_id):
        what = kernel_name or f"command id {kernel_id}"
        return (
            f"the kernel has claimed {what} for exclusive use: cxl_pmem's nvdimm bridge "
            "owns it while the memdev is enabled",
            f"disable the memdev first (`cxlctl disable-memdev {name}`); "
            f"`cxlctl enable-memdev {name}` gives it back to the kernel",
        )
    if opcode is not None and payload and linux.payload_refused(opcode, payload):
        return linux.REFUSALS[opcode], _REFUSAL_HINTS[opcode]
    if _sanitizing(backend, name):
        return (
            "a sanitize (or secure erase) is running: until it ends the kernel refuses "
            "every mailbox command but Get Health Info",
            f"wait for it: `cxlctl wait-sanitize {name}`",
        )
    if _fw_transfer(backend, name):
        return (
            "a firmware transfer is running on the device (a background operation)",
            f"wait for it (`cxlctl update-firmware {name} -w`) or cancel it (`-c`)",
        )
    if opcode in _WIPES:
        committed = _committed(backend, name)
        if committed:
            return (
                f"the memdev is part of an active region ({committed} committed endpoint decoders)",
                "destroy or disable the region first",
            )
    if device_busy:
        return (
            "the device is busy with a background operation",
            "retry when it has finished (`cxlctl list -F` shows a firmware transfer)",
        )
    return (
        "the kernel or the device is busy",
        f"`cxlctl query {name}` shows commands the kernel claimed (exclusive); "
        f"`cxlctl security-state {name}` shows a running sanitize",
    )


def unavailable(opcode: int, title: str) -> str:
    """Why a command without a Linux command id cannot be sent without RAW."""
    why = NO_KERNEL_ID.get(opcode, f"Linux 6.12 has no command id for {title}")
    return f"{why}, and RAW is not enabled (CONFIG_CXL_MEM_RAW_COMMANDS)"


def _exclusive(query: Callable[[], Sequence[CommandInfo]], kernel_id: int) -> bool:
    with contextlib.suppress(CxlError, OSError):
        return any(c.id == kernel_id and c.exclusive for c in query())
    return False


def _sanitizing(backend: Backend, name: str) -> bool:
    from .devops import security_state

    with contextlib.suppress(CxlError, OSError, ValueError):
        return security_state(backend, name) == "sanitize"
    return False


def _fw_transfer(backend: Backend, name: str) -> bool:
    from .devops import FirmwareUpload

    with contextlib.suppress(CxlError, OSError, ValueError):
        up = FirmwareUpload(backend, name)
        return up.available() and up.state().in_progress
    return False


def _committed(backend: Backend, name: str) -> int:
    with contextlib.suppress(CxlError, OSError, ValueError):
        return backend.decoders_committed(name) or 0
    return 0
