"""Why a device refused a command: per-command explanations of mailbox return codes.

A device answers Invalid Input (0x2) without saying which field it disliked. For the
commands whose input fields have rules (the spec's, as QEMU's
``hw/cxl/cxl-mailbox-utils.c`` and the simulator check them), an explainer re-reads
the request and what the device advertises, and says which field broke which rule
and what the valid range is.  Each :class:`~cxlctl.mailbox.Command` record names its
explainer (``explain=``), imported only when a command fails.

An explainer takes the return code, the input payload and ``query`` (runs a read
command by name and returns its decoded record) and returns one sentence, or None
when it has nothing to add.  It never raises: a failing query yields the rule alone.
Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import CxlError
from . import CAPACITY_UNIT, ReturnCode

Query = Callable[[str], Any]
Explainer = Callable[[int, bytes, Query], "str | None"]

INVALID_INPUT = ReturnCode.INVALID_INPUT


def _ask(query: Query, name: str) -> Any:
    try:
        return query(name)
    except CxlError:
        return None


def set_alert_config(rc: int, payload: bytes, query: Query) -> str | None:
    """8.2.9.9.3.3 Set Alert Configuration, Table 8-137: reserved action bits are
    refused; a threshold must be programmable (Get Alert Configuration's
    Programmable Alerts); the life used warning is at most 100 and below the life
    used critical threshold; the over-temperature warning is below the
    over-temperature critical threshold and the under-temperature warning above the
    under-temperature critical threshold."""
    if rc != INVALID_INPUT:
        return None
    from .health import ALL_ALERTS, Alert, decode_set_alert_config

    try:
        req = decode_set_alert_config(payload)
    except CxlError:
        return None
    cur = _ask(query, "get-alert-config")
    on = req.valid & req.enable
    why: list[str] = []
    if (int(req.valid) | int(req.enable)) & ~int(ALL_ALERTS):
        why.append(
            f"reserved bits set in the alert action masks (valid {int(req.valid):#04x}, "
            f"enable {int(req.enable):#04x}; only bits 0-4 are defined)"
        )
    fixed: list[str] = []
    if cur is not None:
        writable = {
            Alert.LIFE_USED: cur.life_used_prog_warn_threshold_writable,
            Alert.OVER_TEMPERATURE: cur.dev_over_temperature_prog_warn_threshold_writable,
            Alert.UNDER_TEMPERATURE: cur.dev_under_temperature_prog_warn_threshold_writable,
            Alert.CORRECTED_VOLATILE: cur.corrected_volatile_mem_err_prog_warn_threshold_writable,
            Alert.CORRECTED_PERSISTENT: cur.corrected_pmem_err_prog_warn_threshold_writable,
        }
        fixed = [_ALERT_NAMES[a] for a, w in writable.items() if req.valid & a and not w]
    life = req.threshold(Alert.LIFE_USED)
    if on & Alert.LIFE_USED:
        crit = None if cur is None else cur.life_used_crit_alert_threshold
        top = 100 if crit is None else min(100, crit - 1)
        if life > top:
            bound = (
                "at most 100"
                if crit is None
                else f"below the life used critical threshold {crit} % (and at most 100)"
            )
            why.append(f"life used warning threshold {life} %: must be {bound}; valid: 0-{top} %")
    over = req.threshold(Alert.OVER_TEMPERATURE)
    under = req.threshold(Alert.UNDER_TEMPERATURE)
    if cur is not None:
        hi = cur.dev_over_temperature_crit_alert_threshold
        lo = cur.dev_under_temperature_crit_alert_threshold
        for alert, value, word in (
            (Alert.OVER_TEMPERATURE, over, "over"),
            (Alert.UNDER_TEMPERATURE, under, "under"),
        ):
            if on & alert and not lo < value < hi:
                why.append(
                    f"device {word}-temperature warning threshold {value} °C: must lie between "
                    f"the under-temperature critical threshold {lo} °C and the "
                    f"over-temperature critical threshold {hi} °C; valid: {lo + 1} to {hi - 1} °C"
                )
    elif on & (Alert.OVER_TEMPERATURE | Alert.UNDER_TEMPERATURE):
        why.append(
            "a temperature warning threshold must lie between the under- and "
            "over-temperature critical thresholds (see `cxlctl alert-config`)"
        )
    if not why and cur is not None and fixed:  # the ranges are fine: the alert is fixed
        why.append(f"the device does not make {', '.join(fixed)} programmable")
    if not why:
        return None
    return "; ".join(why) + " (CXL 3.1 8.2.9.9.3.3)"


_ALERT_NAMES = {
    1: "the life used warning",
    2: "the over-temperature warning",
    4: "the under-temperature warning",
    8: "the corrected volatile error warning",
    16: "the corrected persistent error warning",
}


def _size(n: int) -> str:
    from ..units import human_size

    h = human_size(n)
    return h.split(" (")[0] if isinstance(h, str) else f"{n} bytes"


def set_partition_info(rc: int, payload: bytes, query: Query) -> str | None:
    """8.2.9.9.2.2 Set Partition Info: the volatile capacity (256 MiB units) is a
    multiple of the partition alignment and at most the partitionable capacity
    (total minus the volatile-only and persistent-only capacity); a device with
    alignment 0 has nothing to partition."""
    if rc != INVALID_INPUT or len(payload) < 8:
        return None
    vol = int.from_bytes(payload[:8], "little") * CAPACITY_UNIT
    ident = _ask(query, "identify")
    if ident is None:
        return (
            f"volatile capacity {_size(vol)}: must be a multiple of the partition alignment "
            "and at most the partitionable capacity (CXL 3.1 8.2.9.9.2.2)"
        )
    align = ident.partition_alignment_size
    room = ident.total_size - ident.volatile_only_size - ident.persistent_only_size
    if not align:
        return (
            "the device has no partitionable capacity (partition_alignment_size 0): "
            "Set Partition Info cannot change anything (CXL 3.1 8.2.9.9.2.2)"
        )
    if vol > room or vol % align:
        return (
            f"volatile capacity {_size(vol)}: must be a multiple of the partition alignment "
            f"{_size(align)} and at most the partitionable capacity {_size(room)}; "
            f"valid: 0 to {_size(room - room % align)} in steps of {_size(align)} "
            "(CXL 3.1 8.2.9.9.2.2)"
        )
    return None


def get_log(rc: int, payload: bytes, query: Query) -> str | None:
    """8.2.9.5.2 Get Log: the log must be one Get Supported Logs lists (Invalid
    Log otherwise); the length is 1..payload_max and offset + length stays inside
    the log's advertised size (Invalid Input otherwise)."""
    if len(payload) < 0x18:
        return None
    import uuid

    want = str(uuid.UUID(bytes=bytes(payload[:16])))
    offset = int.from_bytes(payload[16:20], "little")
    length = int.from_bytes(payload[20:24], "little")
    logs = _ask(query, "get-supported-logs")
    size = None
    if logs is not None:
        size = next((e.size for e in logs.logs if e.uuid == want), None)
    if rc == ReturnCode.INVALID_LOG:
        return f"log {want} is not in the device's Get Supported Logs (CXL 3.1 8.2.9.5.2)"
    if rc != INVALID_INPUT:
        return None
    if length == 0:
        return "length 0: Get Log needs at least 1 byte (CXL 3.1 8.2.9.5.2)"
    if size is not None and offset + length > size:
        return (
            f"offset {offset} + length {length} goes past the {size}-byte log {want}; "
            f"valid: offset 0-{size - 1}, offset + length at most {size} (CXL 3.1 8.2.9.5.2)"
        )
    return (
        f"offset {offset}, length {length}: the length must be 1 to payload_max and the "
        "range inside the log's size in Get Supported Logs (CXL 3.1 8.2.9.5.2)"
    )


def set_shutdown_state(rc: int, payload: bytes, query: Query) -> str | None:
    """8.2.9.9.3.5 Set Shutdown State: only bit 0 (dirty) is defined."""
    if rc != INVALID_INPUT or not payload or not payload[0] & ~1:
        return None
    return (
        f"state byte {payload[0]:#04x}: only bit 0 (1 = dirty, 0 = clean) is defined; "
        "valid: 0 or 1 (CXL 3.1 8.2.9.9.3.5)"
    )


def set_timestamp(rc: int, payload: bytes, query: Query) -> str | None:
    """8.2.9.4.2 Set Timestamp: any 64-bit count of nanoseconds since the epoch is a
    valid timestamp; a device refusing it refuses the payload, not a field."""
    if rc != INVALID_INPUT:
        return None
    ns = int.from_bytes(payload[:8], "little") if len(payload) >= 8 else None
    what = f"timestamp {ns} ns" if ns is not None else f"a {len(payload)}-byte payload"
    return (
        f"{what}: the spec puts no range on it (8 bytes, ns since 1970-01-01 UTC); "
        "the device refused it for its own reasons (CXL 3.1 8.2.9.4.2)"
    )
