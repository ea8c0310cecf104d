"""Rules Linux 6.12 applies to userspace's mailbox inputs, beyond the spec.

One home for facts that both the simulated kernel (``sim/driver/mbox.py``, which
enforces them) and the library (``why.py``, which explains an EBUSY) need; the
per-command facts (command ids, RAW refusals, what the nvdimm bridge claims) are
fields of the catalogue records.
"""

from __future__ import annotations

from . import CLEAR_LOG, SET_PARTITION_INFO
from .names import VENDOR_DEBUG_UUID

#: CXL_SET_PARTITION_IMMEDIATE_FLAG (drivers/cxl/cxlmem.h): byte 8 of Set Partition Info
SET_PARTITION_IMMEDIATE_FLAG = 1
#: DEFINE_CXL_VENDOR_DEBUG_UUID as the 16 bytes of a Clear Log input
VENDOR_DEBUG_UUID_BYTES = bytes.fromhex(VENDOR_DEBUG_UUID.replace("-", ""))

_SET_PARTITION_INFO, _CLEAR_LOG = SET_PARTITION_INFO.opcode, CLEAR_LOG.opcode

#: why cxl_payload_from_user_allowed() refuses an input, per opcode
REFUSALS: dict[int, str] = {
    _SET_PARTITION_INFO: "the kernel refuses Set Partition Info with the immediate flag "
    "from userspace",
    _CLEAR_LOG: f"the kernel lets userspace clear only the Vendor Debug Log ({VENDOR_DEBUG_UUID})",
}


def payload_refused(opcode: int, payload: bytes) -> bool:
    """cxl_payload_from_user_allowed() says no (the kernel answers EBUSY): Set
    Partition Info with the immediate flag; Clear Log of any log but the Vendor
    Debug Log. :data:`REFUSALS` says why."""
    if opcode == _SET_PARTITION_INFO:  # no immediate repartitioning
        return len(payload) > 8 and bool(payload[8] & SET_PARTITION_IMMEDIATE_FLAG)
    if opcode == _CLEAR_LOG:  # vendor debug logs only
        return payload[:16] != VENDOR_DEBUG_UUID_BYTES
    return False
