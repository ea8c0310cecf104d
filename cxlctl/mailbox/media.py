"""Media and poison management (CXL 3.1 8.2.9.9.4): Get Poison List, Get Scan Media Results.

Both outputs are a header followed by Media Error Records (Table 8-142): a DPA
whose low bits carry the error source, and a length in 64-byte units (decoded
here to bytes).
"""

from __future__ import annotations

import ctypes

from ..record import Record
from .layouts import MediaErrorRecord, PoisonListOutHeader, ScanMediaResultsHeader, parse_table
from .names import POISON_LEN_MULT, PoisonFlag, ScanFlag, poison_source_name

DPA_MASK = ~0x3F & 0xFFFF_FFFF_FFFF_FFFF  #: address bits 63:6
SOURCE_MASK = 0x7  #: address bits 2:0


class MediaError(Record):
    """One Media Error Record."""

    dpa: int  #: device physical address (bits 63:6 of the address field)
    length: int  #: bytes (the record holds 64-byte units)
    source: int  #: bits 2:0 of the address field
    source_name: str
    address_reserved: int  #: bits 5:3 of the address field (reserved, kept to show it)


_RECORD = ctypes.sizeof(MediaErrorRecord)


def _records(data: bytes, off: int, count: int) -> tuple[MediaError, ...]:
    size = _RECORD
    out = []
    for i in range(count):
        r = MediaErrorRecord.from_buffer_copy(data, off + i * size)
        addr = int(r.address)
        src = addr & SOURCE_MASK
        out.append(
            MediaError(
                dpa=addr & DPA_MASK,
                length=int(r.length) * POISON_LEN_MULT,
                source=src,
                source_name=poison_source_name(src),
                address_reserved=(addr >> 3) & 0x7,
            )
        )
    return tuple(out)


class PoisonList(Record):
    """Get Poison List output (Table 8-141)."""

    flags: int
    more_media_error_records: bool
    poison_list_overflow: bool
    scan_media_in_progress: bool
    overflow_timestamp: int  #: ns since the epoch; meaningful only with the overflow flag
    records: tuple[MediaError, ...]
    trailing_bytes: int


def decode_poison_list(data: bytes) -> PoisonList:
    hdr, n, off, trailing = parse_table(
        PoisonListOutHeader, data, "count", _RECORD, "get-poison-list", "media error records"
    )
    records = _records(data, off, n)
    flags = int(hdr.flags)
    return PoisonList(
        flags=flags,
        more_media_error_records=bool(flags & PoisonFlag.MORE),
        poison_list_overflow=bool(flags & PoisonFlag.OVERFLOW),
        scan_media_in_progress=bool(flags & PoisonFlag.SCANNING),
        overflow_timestamp=int(hdr.overflow_timestamp),
        records=records,
        trailing_bytes=trailing,
    )


class ScanMediaResults(Record):
    """Get Scan Media Results output (Table 8-148)."""

    restart_address: int  #: where a stopped scan would resume (DPA)
    restart_length: int  #: bytes left to scan (the field holds 64-byte units)
    flags: int
    more_media_error_records: bool
    scan_stopped_prematurely: bool
    records: tuple[MediaError, ...]
    trailing_bytes: int


def decode_scan_media_results(data: bytes) -> ScanMediaResults:
    hdr, n, off, trailing = parse_table(
        ScanMediaResultsHeader, data, "count", _RECORD, "get-scan-media-results",
        "media error records",
    )  # fmt: skip
    records = _records(data, off, n)
    flags = int(hdr.flags)
    return ScanMediaResults(
        restart_address=int(hdr.restart_address) & DPA_MASK,
        restart_length=int(hdr.restart_length) * POISON_LEN_MULT,
        flags=flags,
        more_media_error_records=bool(flags & ScanFlag.MORE),
        scan_stopped_prematurely=bool(flags & ScanFlag.STOPPED_PREMATURELY),
        records=records,
        trailing_bytes=trailing,
    )


def scan_media_caps_input(dpa: int, length: int) -> bytes:
    """Get Scan Media Capabilities input (Table 8-145) for ``length`` bytes at ``dpa``."""
    from .layouts import ScanMediaCapsIn

    return bytes(ScanMediaCapsIn(dpa=dpa, length=length // POISON_LEN_MULT))
