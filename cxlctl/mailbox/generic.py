"""Generic decoders: timestamps, scan media capabilities, opaque bytes."""

from __future__ import annotations

from dataclasses import dataclass

from .layouts import ScanMediaCapsOut, TimestampOut, parse


@dataclass(frozen=True, slots=True)
class Timestamp:
    timestamp: int  #: ns since the Unix epoch (0: never set)
    trailing_bytes: int


def decode_timestamp(data: bytes) -> Timestamp:
    s, trailing = parse(TimestampOut, data, "get-timestamp")
    return Timestamp(int(s.timestamp), trailing)


@dataclass(frozen=True, slots=True)
class ScanMediaCaps:
    estimated_scan_media_time_ms: int
    trailing_bytes: int


def decode_scan_media_caps(data: bytes) -> ScanMediaCaps:
    s, trailing = parse(ScanMediaCapsOut, data, "get-scan-media-caps")
    return ScanMediaCaps(int(s.estimated_scan_media_time), trailing)


@dataclass(frozen=True, slots=True)
class RawBytes:
    """Output of a command without a structured decoder."""

    length: int
    hex: str


def decode_bytes(data: bytes) -> RawBytes:
    return RawBytes(len(data), data.hex())
