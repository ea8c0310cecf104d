"""Features (CXL 3.1 8.2.9.6) of the simulated device, as QEMU 10 implements them:
Get Supported Features, Get Feature and Set Feature for the two features its
cxl-type3 has, Device Patrol Scrub Control (8.2.9.9.11.1) and DDR5 Error Check
Scrub Control (8.2.9.9.11.2), with QEMU's defaults, sizes and return codes
(a Set Feature transfer in progress for another feature is Feature Transfer In
Progress; only the current value can be read; a wrong version is Unsupported)."""

from __future__ import annotations

import struct
import uuid as _uuid

from ... import mailbox as mb
from .model import RC, TypeThreeDevice, handles

PATROL_SCRUB = _uuid.UUID("96dad7d6-fde8-482b-a733-75774e06db8a").bytes
ECS = _uuid.UUID("e5b13f22-2328-4a14-b8ba-b9691e893386").bytes
ECS_FRUS = 3
HDR = 8  #: Get Supported Features output header
ENTRY = 48  #: one Supported Feature Entry
SET_HDR = 32  #: Set Feature input header
FLAG_CHANGEABLE = 1
SFE_IMMEDIATE_CONFIG_CHANGE, SFE_CEL_VALID = 1 << 1, 1 << 9
FULL, INITIATE, CONTINUE, FINISH, ABORT = range(5)


class FeatureState:
    """QEMU's defaults for the two features (plain class: no dataclass at start-up)."""

    def __init__(self) -> None:
        # patrol scrub read attributes: cycle capability, cycle (current | min << 8), flags
        self.ps_cap = 0x3
        self.ps_cycle = 12 | (1 << 8)
        self.ps_flags = 0
        self.ecs_log_cap = 0x01
        #: per media FRU: (ecs_cap, ecs_config = threshold 3 | mode 0 << 3, ecs_flags)
        self.ecs_fru: list[tuple[int, int, int]] = [(1, 3, 0)] * ECS_FRUS
        self.transfer_uuid = bytes(16)
        self.pending = bytearray(16)

    def ps_read(self) -> bytes:
        return struct.pack("<BHB", self.ps_cap, self.ps_cycle, self.ps_flags)

    def ecs_read(self) -> bytes:
        out = bytes([self.ecs_log_cap])
        for cap, cfg, flags in self.ecs_fru:
            out += struct.pack("<BHB", cap, cfg, flags)
        return out


PS_READ, PS_WRITE = 4, 2
ECS_READ, ECS_WRITE = 1 + 4 * ECS_FRUS, 1 + 2 * ECS_FRUS


def state(dev: TypeThreeDevice) -> FeatureState:
    st: FeatureState | None = getattr(dev, "_feature_state", None)
    if st is None:
        st = FeatureState()
        dev._feature_state = st  # type: ignore[attr-defined]
    return st


def _entry(uuid: bytes, index: int, get_size: int, set_size: int) -> bytes:
    return (
        uuid
        + struct.pack(
            "<HHHIBBH",
            index,
            get_size,
            set_size,
            FLAG_CHANGEABLE,
            1,
            1,
            SFE_IMMEDIATE_CONFIG_CHANGE | SFE_CEL_VALID,
        )
        + bytes(18)
    )


FEATURES = ((PATROL_SCRUB, PS_READ, PS_WRITE), (ECS, ECS_READ, ECS_WRITE))


@handles(mb.GET_SUPPORTED_FEATURES)
def _get_supported(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if len(p) < 8:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    count, start = struct.unpack_from("<IH", p)
    if count < HDR or start >= len(FEATURES):
        return RC.INVALID_INPUT, b""
    n = min((count - HDR) // ENTRY, len(FEATURES) - start)
    entries = b"".join(_entry(u, i, g, s) for i, (u, g, s) in enumerate(FEATURES) if i >= start)
    return RC.SUCCESS, struct.pack("<HHI", n, len(FEATURES), 0) + entries[: n * ENTRY]


@handles(mb.GET_FEATURE)
def _get_feature(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if len(p) < 21:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    uuid = p[:16]
    offset, count = struct.unpack_from("<HH", p, 16)
    selection = p[20]
    st = state(dev)
    if uuid == st.transfer_uuid:
        return RC.FEATURE_TRANSFER_IN_PROGRESS, b""
    if selection != 0:
        return RC.UNSUPPORTED, b""
    if offset + count > dev.config.payload_max:
        return RC.INVALID_INPUT, b""
    if uuid == PATROL_SCRUB:
        data = st.ps_read()
    elif uuid == ECS:
        data = st.ecs_read()
    else:
        return RC.UNSUPPORTED, b""
    if offset >= len(data):
        return RC.INVALID_INPUT, b""
    return RC.SUCCESS, data[offset : offset + count]


@handles(mb.SET_FEATURE)
def _set_feature(dev: TypeThreeDevice, p: bytes) -> tuple[int, bytes]:
    if len(p) < SET_HDR:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    st = state(dev)
    uuid = p[:16]
    flags, offset, version = struct.unpack_from("<IHB", p, 16)
    if st.transfer_uuid != bytes(16) and uuid != st.transfer_uuid:
        return RC.FEATURE_TRANSFER_IN_PROGRESS, b""
    xfer = flags & 0x7
    if xfer == INITIATE:
        st.transfer_uuid = uuid
        st.pending = bytearray(16)
    data = p[SET_HDR:]
    if not data:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    if uuid not in (PATROL_SCRUB, ECS):
        return RC.UNSUPPORTED, b""
    if version != 1:
        return RC.UNSUPPORTED, b""
    size = PS_WRITE if uuid == PATROL_SCRUB else ECS_WRITE
    if offset + len(data) > size:
        return RC.INVALID_PAYLOAD_LENGTH, b""
    st.pending[offset : offset + len(data)] = data
    if xfer in (FULL, FINISH):
        w = bytes(st.pending)
        if uuid == PATROL_SCRUB:
            st.ps_cycle = (st.ps_cycle & ~0xFF) | w[0]
            st.ps_flags = (st.ps_flags & ~1) | (w[1] & 1)
        else:
            st.ecs_log_cap = w[0]
            st.ecs_fru = [
                (cap, struct.unpack_from("<H", w, 1 + 2 * i)[0] & 0x1F, fl)
                for i, (cap, _cfg, fl) in enumerate(st.ecs_fru)
            ]
    if xfer in (FULL, FINISH, ABORT):
        st.transfer_uuid = bytes(16)
        st.pending = bytearray(16)
    return RC.SUCCESS, b""
