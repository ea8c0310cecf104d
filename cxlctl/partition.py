"""Set Partition Info, checked the way cxl-cli's ``validate_partition()`` does, and more.

:func:`plan_partition` turns ``-t ram|pmem [-s SIZE] [-a]`` into the volatile
capacity to send, from Identify (total, volatile-only, persistent-only, alignment)
and Get Partition Info (active and next), before anything is sent;
:func:`apply_partition` sends it.  Linux refuses immediate repartitioning from
userspace (EBUSY for the immediate flag), so the new layout takes effect after the
next cold reset (a reboot that power-cycles the device); Get Partition Info shows
it as "next" until then.  Nothing here prints.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import DeviceBusy
from .mailbox import layouts as lay
from .mailbox.memdev import Identify, PartitionInfo
from .regions import TopologyError

if TYPE_CHECKING:
    from .memdev import Memdev

CAPACITY_UNIT = 256 << 20


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    memdev: str
    volatile_size: int  #: what Set Partition Info will ask for, bytes
    before: dict[str, int]
    after: dict[str, int]


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n:#x}"


def plan_partition(
    memdev: str,
    ident: Identify,
    part: PartitionInfo,
    mode: str,
    size: int | None,
    *,
    align: bool = False,
) -> PartitionPlan:
    """The volatile capacity for ``mode`` getting ``size`` (None: all of the
    partitionable capacity), aligned up (ram) or down (pmem) with ``align``."""
    if mode not in ("ram", "pmem"):
        raise TopologyError(f"type {mode!r}: ram or pmem", errno.EINVAL)
    alignment = ident.partition_alignment_size
    if not alignment:
        raise TopologyError(
            f"{memdev}: no capacity can be repartitioned (partition alignment 0: "
            f"{_mib(ident.volatile_only_size)} volatile-only, "
            f"{_mib(ident.persistent_only_size)} persistent-only)",
            errno.ENXIO,
        )
    available = ident.total_size - ident.volatile_only_size - ident.persistent_only_size
    if size is not None and size > available:
        raise TopologyError(
            f"{memdev}: {_mib(size)} exceeds the partitionable capacity ({_mib(available)})",
            errno.ENOSPC,
        )
    if size is None:
        volatile = available if mode == "ram" else 0
    else:
        volatile = size if mode == "ram" else available - size
    if volatile % alignment:
        if not align:
            raise TopologyError(
                f"{memdev}: {_mib(volatile)} of volatile capacity is not a multiple of the "
                f"partition alignment {_mib(alignment)}",
                errno.EINVAL,
                hint="-a aligns it (up for ram, down for pmem)",
            )
        volatile = (
            -(-volatile // alignment) * alignment
            if mode == "ram"
            else volatile // alignment * alignment
        )
        if volatile > available:
            raise TopologyError(
                f"{memdev}: aligned to {_mib(volatile)}, more than the partitionable "
                f"{_mib(available)}",
                errno.ENOSPC,
            )
    before = {
        "active_volatile_size": part.active_volatile_size,
        "active_persistent_size": part.active_persistent_size,
        "next_volatile_size": part.next_volatile_size,
        "next_persistent_size": part.next_persistent_size,
    }
    vol = ident.volatile_only_size + volatile
    after = {
        **before,
        "next_volatile_size": vol,
        "next_persistent_size": ident.total_size - vol,
    }
    return PartitionPlan(memdev, volatile, before, after)


#: Set Partition Info's flags bit 0: change the active partitions now
IMMEDIATE = 0x01


def set_partition_payload(plan: PartitionPlan, *, immediate: bool = False) -> bytes:
    """Set Partition Info's input; without ``immediate`` (Linux refuses it) the new
    layout is "next": active after the next cold reset."""
    return bytes(
        lay.SetPartitionInfoIn(
            volatile_capacity=plan.volatile_size // CAPACITY_UNIT,
            flags=IMMEDIATE if immediate else 0,
        )
    )


def pending(plan: PartitionPlan, *, immediate: bool = False) -> bool:
    """Whether sending the plan changes anything: the "next" layout (or, with
    ``immediate``, the active one) is not already what it asks for."""
    b, a = plan.before, plan.after
    active = (b["active_volatile_size"], b["active_persistent_size"])
    nxt = (b["next_volatile_size"], b["next_persistent_size"])
    want = (a["next_volatile_size"], a["next_persistent_size"])
    if immediate:
        return active != want or nxt not in ((0, 0), want)
    # next 0/0: no change pending, the active layout stays after a reset
    return (active if nxt == (0, 0) else nxt) != want


def apply_partition(md: Memdev, plan: PartitionPlan, *, immediate: bool = False) -> PartitionInfo:
    """Send Set Partition Info (0x4101) and read Get Partition Info back.  Linux
    refuses the immediate flag from user space with EBUSY (mbox.c
    cxl_payload_from_user_allowed(): the driver uses the capacity while the
    memdev is active); that refusal is reported as the rule it is."""
    try:
        md.run("set-partition-info", set_partition_payload(plan, immediate=immediate))
    except DeviceBusy as e:
        if not immediate:
            raise
        raise DeviceBusy(
            f"{plan.memdev}: Linux refuses Set Partition Info's immediate flag from user "
            "space (the driver uses the active partitions while the memdev is active; "
            f"EBUSY): {e.message}",
            hint="leave out --immediate: the new split then takes effect on the next cold reset",
        ) from e
    return md.partition_info()
