"""Generic decoders: timestamps, scan media capabilities, opaque bytes."""

from __future__ import annotations

from ..record import Record
from .layouts import ScanMediaCapsOut, SecurityStateOut, TimestampOut, parse


class Timestamp(Record):
    timestamp: int  #: ns since the Unix epoch (0: never set)
    trailing_bytes: int


def decode_timestamp(data: bytes) -> Timestamp:
    s, trailing = parse(TimestampOut, data, "get-timestamp")
    return Timestamp(int(s.timestamp), trailing)


class ScanMediaCaps(Record):
    estimated_scan_media_time_ms: int
    trailing_bytes: int


def decode_scan_media_caps(data: bytes) -> ScanMediaCaps:
    s, trailing = parse(ScanMediaCapsOut, data, "get-scan-media-caps")
    return ScanMediaCaps(int(s.estimated_scan_media_time), trailing)


class SecurityState(Record):
    """Get Security State (8.2.9.9.6.1): the device's view."""

    security_state: int  #: raw 32-bit field
    user_passphrase_set: bool
    master_passphrase_set: bool
    locked: bool
    frozen: bool
    user_passphrase_attempt_count_reached: bool
    master_passphrase_attempt_count_reached: bool
    trailing_bytes: int


def decode_security_state(data: bytes) -> SecurityState:
    s, trailing = parse(SecurityStateOut, data, "get-security-state")
    v = int(s.security_state)
    b = [bool(v & (1 << i)) for i in range(6)]
    return SecurityState(v, b[0], b[1], b[2], b[3], b[4], b[5], trailing)


class RawBytes(Record):
    """Output of a command without a structured decoder."""

    length: int
    hex: str


def decode_bytes(data: bytes) -> RawBytes:
    return RawBytes(len(data), data.hex())
