"""Background operations of the simulated device, firmware update and sanitize.

As QEMU 10's ``hw/cxl/cxl-mailbox-utils.c``: a command with the Background
Operation effect answers Background Command Started and runs for a while (QEMU:
Transfer FW 10 s for a one-piece transfer, 2 s per part; Sanitize 4 s up to 512
MiB); while one runs, another background command is Busy, and during a Sanitize
the media is disabled (the media commands answer Media Disabled).  Completion is
computed from the wall clock when the device is next touched, so it also happens
"while nobody looks" between two cxlctl processes (``CXLCTL_SIM_STATE`` keeps the
operation, the firmware slots and the transfer state).

Transfer FW (CXL 3.1 8.2.9.3.2) with QEMU's rules: FULL/INITIATE/CONTINUE/END/ABORT
actions, offsets in 128-byte units, a 32 MiB image limit (Invalid Input beyond it),
INITIATE only at offset 0, CONTINUE/END without INITIATE Invalid Input, FULL or
INITIATE during a transfer FW Transfer In Progress, an overlapping part FW Transfer
Out Of Order, a target slot of 0, the active slot or beyond the slots Invalid Slot,
more than 30 s between parts ends the transfer (Invalid Input).  Activate FW
(8.2.9.3.3): online makes the slot active, offline (on the next reset) stages it;
an empty slot is Invalid Slot.
"""

from __future__ import annotations

import ctypes
import struct
import time
from typing import TYPE_CHECKING, Any

from ... import mailbox as mb
from ...mailbox import layouts as lay
from .model import RC, MiB, handles

if TYPE_CHECKING:
    from .model import DeviceConfig, TypeThreeDevice

SLOTS = 2
FW_SIZE = 32 * MiB  #: QEMU's CXL_FW_SIZE
XFER_ALIGN = 128
XFER_HEADER = 128  #: Transfer FW input header (action, slot, offset, reserved)
FULL, INIT, CONTINUE, END, ABORT = range(5)
#: what QEMU refuses with Media Disabled while a sanitize runs
MEDIA_OPCODES = frozenset(
    c.opcode
    for c in (
        mb.GET_EVENT_RECORDS,
        mb.GET_PARTITION_INFO,
        mb.SET_LSA,
        mb.GET_LSA,
        mb.GET_LOG,
        mb.GET_POISON_LIST,
        mb.INJECT_POISON,
        mb.CLEAR_POISON,
        mb.SANITIZE,
        mb.SECURE_ERASE,
        mb.TRANSFER_FW,
        mb.ACTIVATE_FW,
    )
)
#: the commands that wipe the media (Sanitize, Secure Erase)
_WIPES = (mb.SANITIZE.opcode, mb.SECURE_ERASE.opcode)
#: commands with the Background Operation effect
BACKGROUND = frozenset(
    c.opcode for c in (mb.TRANSFER_FW, mb.SANITIZE, mb.SECURE_ERASE, mb.SCAN_MEDIA)
)


class FwState:
    """The firmware slots and the transfer state machine (plain class: no dataclass
    on the start-up path)."""

    FIELDS = ("active_slot", "staged_slot", "transferring", "prev_offset", "prev_len",
              "last_partxfer", "received")  # fmt: skip
    __slots__ = ("slots", *FIELDS)  # one per memdev, made with it

    def __init__(self, slots: dict[int, str] | None = None, staged_slot: int = 0) -> None:
        self.active_slot = 1
        self.staged_slot = staged_slot
        #: slot -> firmware revision of the image it holds
        self.slots: dict[int, str] = dict(slots) if slots else {}
        self.transferring = False
        self.prev_offset = 0
        self.prev_len = 0
        self.last_partxfer = 0.0
        self.received = 0  #: bytes of the current transfer accepted so far

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("slots", *self.FIELDS))
        return f"FwState({inner})"

    @classmethod
    def initial(cls, config: DeviceConfig) -> FwState:
        revs = config.slot_fw_revisions
        if config.profile == "full" and len(revs) == 1:
            # a newer image waits in slot 2, staged for the next cold reset
            return cls({1: revs[0], 2: "BWFW VERSION 1"}, staged_slot=2)
        return cls(dict(enumerate(revs, 1)))  # slot -> revision

    @classmethod
    def load(cls, d: Any) -> FwState:
        try:
            st = cls({int(k): str(v) for k, v in d.get("slots", {}).items()})
            for k in cls.FIELDS:
                if k in d:
                    setattr(st, k, type(getattr(st, k))(d[k]))
            return st
        except (TypeError, AttributeError, ValueError):
            return cls({1: "BWFW VERSION 0"})

    def dump(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.FIELDS}
        d["slots"] = {str(k): v for k, v in self.slots.items()}
        return d


class BgOp:
    """The running background operation: opcode, start (wall clock), duration."""

    FIELDS = ("opcode", "started", "duration", "action", "slot", "length")

    def __init__(
        self,
        opcode: int,
        started: float,
        duration: float,
        action: int = 0,
        slot: int = 0,
        length: int = 0,
    ) -> None:
        self.opcode, self.started, self.duration = opcode, started, duration
        self.action, self.slot, self.length = action, slot, length

    @classmethod
    def load(cls, d: Any) -> BgOp | None:
        if not isinstance(d, dict):
            return None
        try:
            return cls(**{k: d[k] for k in cls.FIELDS if k in d})
        except TypeError:
            return None

    def dump(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    def done_at(self) -> float:
        return self.started + self.duration

    def percent(self, now: float) -> int:
        if self.duration <= 0:
            return 100
        return max(0, min(100, int((now - self.started) * 100 / self.duration)))


def _save(dev: TypeThreeDevice) -> None:
    dev.persist(
        fw=dev.fw.dump(),
        bg=dev.bg.dump() if dev.bg else None,
        bg_last=list(dev.bg_last),
    )


def _duration(dev: TypeThreeDevice, qemu_s: float, full_s: float) -> float:
    base = qemu_s if dev.config.profile == "qemu" else full_s
    return base * dev.config.time_scale


def start(dev: TypeThreeDevice, op: BgOp) -> tuple[int, bytes]:
    dev.bg = op
    _save(dev)
    poll(dev)  # a zero-length operation ends at once
    return RC.BACKGROUND_COMMAND_STARTED, b""


def poll(dev: TypeThreeDevice, now: float | None = None) -> None:
    """Complete the running operation if its time has come."""
    op = dev.bg
    if op is None:
        return
    now = time.time() if now is None else now
    if now < op.done_at():
        return
    dev.bg = None
    if op.opcode == mb.TRANSFER_FW.opcode:
        _transfer_done(dev, op)
    elif op.opcode in _WIPES:
        wipe(dev)
    dev.bg_last = (op.opcode, int(RC.SUCCESS))
    _save(dev)


def admit(dev: TypeThreeDevice, opcode: int) -> int | None:
    """Busy for a second background command, Media Disabled during a sanitize."""
    if dev.bg is None:
        return None
    if dev.bg.opcode in _WIPES and opcode in MEDIA_OPCODES:
        return int(RC.MEDIA_DISABLED)
    if opcode in BACKGROUND:
        return int(RC.BUSY)
    return None


def status(dev: TypeThreeDevice) -> dict[str, Any]:
    """Background Operation Status (8.2.9.1.2) as values."""
    poll(dev)
    now = time.time()
    if dev.bg is not None:
        return {
            "running": True,
            "opcode": dev.bg.opcode,
            "percent": dev.bg.percent(now),
            "return_code": 0,
        }
    return {"running": False, "opcode": dev.bg_last[0], "percent": 100 if dev.bg_last[0] else 0,
            "return_code": dev.bg_last[1]}  # fmt: skip


# --- firmware ------------------------------------------------------------------------


#: Get FW Info output (FwInfoOut) as one struct (tests/test_sim_packers.py)
_FW_INFO = struct.Struct("<BBB13x16s16s16s16s")
assert _FW_INFO.size == ctypes.sizeof(lay.FwInfoOut)


@handles(mb.GET_FW_INFO)
def _fw_info(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    fw = dev.fw
    revs = [b"", b"", b"", b""]  # "16s" pads with zeros and cuts at 16 bytes
    for slot, rev in fw.slots.items():
        if 1 <= slot <= 4:
            revs[slot - 1] = rev.encode()
    out = _FW_INFO.pack(
        SLOTS,  # fw_slots_supported
        (fw.active_slot & 7) | ((fw.staged_slot & 7) << 3),  # fw_slot_info
        1,  # fw_activation_caps: online activation supported
        revs[0],  # not *revs: a call with unpacking costs more than the pack
        revs[1],
        revs[2],
        revs[3],
    )
    return RC.SUCCESS, out


@handles(mb.TRANSFER_FW)
def _transfer_fw(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if len(p) < XFER_HEADER:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    action, slot = p[0], p[1]
    fw = dev.fw
    if action == ABORT:
        fw.transferring = False
        fw.received = 0
        _save(dev)
        return RC.SUCCESS, b""
    offset = int.from_bytes(p[4:8], "little") * XFER_ALIGN
    length = len(p) - XFER_HEADER
    if offset + length > FW_SIZE:
        return RC.INVALID_INPUT, b""
    if fw.transferring:
        if action in (FULL, INIT):
            return RC.FW_TRANSFER_IN_PROGRESS, b""
        if time.time() - fw.last_partxfer > 30.0 * max(dev.config.time_scale, 1.0):
            fw.transferring = False
            _save(dev)
            return RC.INVALID_INPUT, b""
    elif action in (CONTINUE, END):
        return RC.INVALID_INPUT, b""
    moved = offset != fw.prev_offset or length != fw.prev_len  # a retransmission is fine
    if moved and action in (CONTINUE, END) and offset < fw.prev_offset + fw.prev_len:
        return RC.FW_TRANSFER_OUT_OF_ORDER, b""
    if action in (FULL, END):
        if slot == 0 or slot == fw.active_slot or slot > SLOTS:
            return RC.INVALID_SLOT, b""
    elif action == INIT:
        if offset != 0:
            return RC.INVALID_INPUT, b""
        fw.transferring = True
        fw.received = 0
        fw.prev_offset, fw.prev_len = offset, length
    elif action == CONTINUE:
        fw.prev_offset, fw.prev_len = offset, length
    else:
        return RC.INVALID_INPUT, b""
    secs = _duration(dev, 10.0 if action == FULL else 2.0, 0.0)
    return start(dev, BgOp(mb.TRANSFER_FW.opcode, time.time(), secs, action, slot, length))


def _transfer_done(dev: TypeThreeDevice, op: BgOp) -> None:
    fw = dev.fw
    fw.received += op.length
    if op.action in (FULL, END):
        # the slot holds the new image; QEMU names it after the slot
        fw.slots[op.slot] = f"BWFW VERSION {op.slot - 1}"
        fw.transferring = False
    else:
        fw.last_partxfer = op.done_at()


@handles(mb.ACTIVATE_FW)
def _activate_fw(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    action, slot = p[0], p[1]
    fw = dev.fw
    if slot == 0 or slot == fw.active_slot or slot > SLOTS or slot not in fw.slots:
        return RC.INVALID_SLOT, b""
    if action == 0:  # online
        fw.active_slot = slot
        if fw.staged_slot == slot:
            fw.staged_slot = 0
    elif action == 1:  # on the next cold reset
        fw.staged_slot = slot
    else:
        return RC.INVALID_INPUT, b""
    _save(dev)
    return RC.SUCCESS, b""


# --- sanitize and secure erase (8.2.9.9.5) ---------------------------------------------


def _sanitize_seconds(dev: TypeThreeDevice) -> float:
    size = dev.config.volatile_bytes + dev.config.persistent_bytes
    # QEMU: 1 s up to 128 MiB ... 4 s up to 512 MiB, more for larger devices
    qemu = 1 if size <= 128 * MiB else 4 if size <= 512 * MiB else 20
    return _duration(dev, float(qemu), 1.0)


@handles(mb.SANITIZE)
def _sanitize(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return start(dev, BgOp(mb.SANITIZE.opcode, time.time(), _sanitize_seconds(dev)))


@handles(mb.SECURE_ERASE)
def _secure_erase(dev: TypeThreeDevice, _p: bytes) -> tuple[int, bytes]:
    return start(dev, BgOp(mb.SECURE_ERASE.opcode, time.time(), _sanitize_seconds(dev)))


def wipe(dev: TypeThreeDevice) -> None:
    """What a finished Sanitize / Secure Erase leaves: zeroed labels, no poison, no
    event records, and a media generation count that says the user data is gone."""
    from . import media

    size = dev.lsa.size
    step = 16 * MiB
    for off in range(0, size, step):
        n = min(step, size - off)
        if any(dev.lsa[off : off + n]):
            dev.lsa[off : off + n] = bytes(n)

    def gone(st: media.MediaState) -> None:
        st.poison.clear()
        st.scan_results = None
        st.overflow_ts = 0

    media.update(dev, gone)
    dev.media_generation = getattr(dev, "media_generation", 0) + 1
    dev.persist(media_generation=dev.media_generation)
