"""Faults a CXL device could have, for ``CXLCTL_SIM_FAULTS`` (the device half).

A fault is ``[memN:][COMMAND:]KIND[=ARG]``; a comma-separated list of them is the
configuration.  ``memN`` limits it to one memdev, ``COMMAND`` (a catalogue name such
as ``identify`` or ``get-poison-list``, or a 16-bit opcode such as ``0x4300``) to one
command; either can be ``*`` (the default).  Only what a device can do is
simulated here; what Linux makes of it is the driver's business
(:mod:`cxlctl.sim.driver.mbox`, as ``__cxl_pci_mbox_send_cmd()`` in ``drivers/cxl/pci.c``).

=====================  ===================================================================
``overlong``            the output payload length the device reports is the register's
                        largest (21 bits: 2 MiB - 1), past the layout, ``out.size`` and
                        payload_max; the kernel copies ``min3(out.size, payload_max, len)``
``short[=N]``           N bytes of output (default: half of what it would return)
``garbage``             the output is noise of the right length (the same noise every time)
``rc=N``                mailbox return code N (0..0xffff; ``rc=1`` is Background Command
                        Started, which Linux waits zero polls for: ETIMEDOUT)
``busy[=N]``            Busy the first N times (default 1), then the real answer
``retry[=N]``           Retry Required the first N times (default 1), then the real answer
``background``          a background operation is in progress: every command but
                        Identify and Get Health Info answers Busy
``media-disabled``      every command that touches the media answers Media Disabled
``vanish[=N]``          the device goes away during the Nth command (default 1): the
                        doorbell never clears (the kernel's 2 s mailbox timeout,
                        ETIMEDOUT), then the PCI removal detaches it (ENXIO from then on)
``slow=MS``             every command takes MS milliseconds (times CXLCTL_SIM_TIME_SCALE);
                        past the kernel's 2 s mailbox timeout it is ETIMEDOUT, and the
                        mailbox stays busy (EBUSY) until the device has finished
``lsa-readback``        Get LSA returns one flipped bit (for ``--verify`` to catch)
=====================  ===================================================================
"""

from __future__ import annotations

import hashlib

from ... import mailbox as mb
from ...record import Record

#: the largest length the Command Register's Payload Length field can say (21 bits)
PAYLOAD_LENGTH_MAX = (1 << 21) - 1
#: fault kinds -> does it take ``=ARG`` ("no", "optional", "required")
KINDS: dict[str, str] = {
    "overlong": "no",
    "short": "optional",
    "garbage": "no",
    "rc": "required",
    "busy": "optional",
    "retry": "optional",
    "background": "no",
    "media-disabled": "no",
    "vanish": "optional",
    "slow": "required",
    "lsa-readback": "no",
}
_ARG_RANGE: dict[str, tuple[int, int]] = {
    "short": (0, PAYLOAD_LENGTH_MAX),
    "rc": (0, 0xFFFF),
    "busy": (1, 1_000_000),
    "retry": (1, 1_000_000),
    "vanish": (1, 1_000_000),
    "slow": (0, 3_600_000),
}
SYNTAX = "[memN:][COMMAND:]KIND[=N]"


class Fault(Record):
    """One parsed ``CXLCTL_SIM_FAULTS`` item."""

    kind: str
    arg: int | None = None
    memdev: str | None = None  #: ``mem0``; None: every memdev
    opcode: int | None = None  #: None: every command
    text: str = ""  #: as the user wrote it


def _number(text: str, item: str) -> int:
    t = text.strip().lower()
    if not t.isascii() or not t:
        raise ValueError(f"fault {item!r}: {text!r} is not a number")
    try:
        return int(t, 16) if t.startswith("0x") else int(t, 10)
    except ValueError:
        raise ValueError(f"fault {item!r}: {text!r} is not a number") from None


RC = mb.ReturnCode
#: what a device answers while a background operation runs (the rest: Busy)
_ANSWERED_IN_BACKGROUND = (mb.IDENTIFY.opcode, mb.GET_HEALTH_INFO.opcode)


def _opcode(text: str, item: str) -> int | None:
    if text in ("", "*"):
        return None
    if text.lower().startswith("0x"):
        op = _number(text, item)
        if not 0 <= op <= 0xFFFF:
            raise ValueError(f"fault {item!r}: opcode {text} does not fit in 16 bits")
        return op
    try:
        return mb.lookup(text).opcode
    except Exception:  # UsageError: an unknown name
        raise ValueError(
            f"fault {item!r}: unknown command {text!r} (a name from `cxlctl query`, "
            "or an opcode like 0x4300)"
        ) from None


def parse_one(item: str) -> Fault:
    """``mem0:identify:overlong`` -> Fault; ValueError (one line) otherwise."""
    text = item.strip()
    parts = text.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise ValueError(f"fault {item!r}: expected {SYNTAX}")
    kind, eq, arg_text = parts[-1].partition("=")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"fault {item!r}: unknown kind {kind!r} ({', '.join(KINDS)})")
    takes = KINDS[kind]
    arg: int | None = None
    if eq:
        if takes == "no":
            raise ValueError(f"fault {item!r}: {kind} takes no value")
        arg = _number(arg_text, item)
        lo, hi = _ARG_RANGE[kind]
        if not lo <= arg <= hi:
            raise ValueError(f"fault {item!r}: {arg_text.strip()} is outside {lo}..{hi:#x}")
    elif takes == "required":
        raise ValueError(f"fault {item!r}: {kind} needs a value ({kind}=N)")
    memdev: str | None = None
    command = ""
    scope = parts[:-1]
    if scope and (scope[0] == "*" or scope[0].startswith("mem")):
        m = scope.pop(0)
        if m != "*":
            if not (m[3:].isascii() and m[3:].isdigit()):
                raise ValueError(f"fault {item!r}: {m!r} is not a memdev name (memN)")
            memdev = f"mem{int(m[3:])}"
    if scope:
        command = scope.pop(0)
    if scope:
        raise ValueError(f"fault {item!r}: expected {SYNTAX}")
    return Fault(kind, arg, memdev, _opcode(command.strip(), item), text)


def parse(items: str | list[str] | tuple[str, ...]) -> tuple[Fault, ...]:
    """A comma-separated list (or its items) -> faults; empty items are ignored."""
    if isinstance(items, str):
        items = items.split(",")
    return tuple(parse_one(i) for i in items if i.strip())


class Injector:
    """The faults of one device and their counters (one per process: the device's
    state before a fault fires is not kept between processes)."""

    __slots__ = ("_seen", "claimed_background", "faults", "vanished")

    def __init__(self, faults: tuple[Fault, ...]) -> None:
        self.faults = faults
        self._seen: dict[int, int] = {}  # fault index -> commands it applied to
        self.vanished = False
        #: the last command answered Background Command Started (``rc=1``) with no
        #: background operation behind it: its completion never comes
        self.claimed_background = False

    def _active(self, opcode: int) -> list[tuple[int, Fault]]:
        return [(i, f) for i, f in enumerate(self.faults) if f.opcode is None or f.opcode == opcode]

    def has(self, kind: str, opcode: int) -> bool:
        return any(f.kind == kind for _, f in self._active(opcode))

    def before(self, opcode: int, media: frozenset[int]) -> int | None:
        """A return code the device answers with instead of running the command,
        or None.  Counts the command for the ``busy``/``retry``/``vanish`` faults."""
        self.claimed_background = False
        for i, f in self._active(opcode):
            n = self._seen[i] = self._seen.get(i, 0) + 1
            if f.kind == "vanish" and n >= (f.arg or 1):
                self.vanished = True
            elif f.kind == "rc":
                self.claimed_background = f.arg == 0x01
                return f.arg
            elif f.kind in ("busy", "retry") and n <= (f.arg or 1):
                return int(RC.BUSY if f.kind == "busy" else RC.RETRY_REQUIRED)
            elif f.kind == "background" and opcode not in _ANSWERED_IN_BACKGROUND:
                return int(RC.BUSY)
            elif f.kind == "media-disabled" and opcode in media:
                return int(RC.MEDIA_DISABLED)
        return None

    def after(self, opcode: int, serial: int, out: bytes) -> bytes:
        """The output payload as the faulty device presents it."""
        for _, f in self._active(opcode):
            if f.kind == "overlong":
                out = (out + _noise(serial, opcode, PAYLOAD_LENGTH_MAX))[:PAYLOAD_LENGTH_MAX]
            elif f.kind == "short":
                out = out[: len(out) // 2 if f.arg is None else f.arg]
            elif f.kind == "garbage":
                out = _noise(serial, opcode, len(out))
        return out

    def latency_ms(self, opcode: int) -> int:
        """How long the device takes (``slow``), 0 for at once."""
        return max((f.arg or 0 for _, f in self._active(opcode) if f.kind == "slow"), default=0)


def _noise(serial: int, opcode: int, n: int) -> bytes:
    """N deterministic pseudo-random bytes (shake-256 of the device and opcode)."""
    return hashlib.shake_256(f"cxlctl-fault {serial:#x} {opcode:#06x}".encode()).digest(n)
