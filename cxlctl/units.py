"""Numbers from people: the one parser for every size, offset, length, address and count.

>>> parse_size("4K")
4096
>>> parse_size("1MiB")
1048576

Accepted: decimal (``4096``), hex (``0x1000``), with an optional binary unit
(``K``/``M``/``G``/``T``, also written ``KB``/``KiB``..., always powers of 1024 as
in cxl-cli).  Refused with a one-line :class:`~cxlctl.errors.UsageError`: a minus
sign, anything above the field's width (``bits``) or the caller's ``maximum``,
non-ASCII digits (``٣`` is a digit to Python's ``int()``, not to a C tool),
empty strings, ``nan``/``inf``, underscores and spaces inside the number.
"""

from __future__ import annotations

import re

from .errors import UsageError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NUM = r"(0x[0-9a-f]+|[0-9]+)([kmgt]?)(?:i?b)?"  # compiled on first use (re's cache):
_MS = r"([0-9]+)(ms|s|m|h)?"  # a run that parses no size or duration never compiles them
_MS_UNITS = {None: 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_int(
    text: str,
    what: str = "value",
    *,
    bits: int = 64,
    minimum: int = 0,
    maximum: int | None = None,
    units: bool = True,
    signed: bool = False,
) -> int:
    """TEXT as an integer that fits an unsigned (or, with ``signed``, two's
    complement) field of BITS bits, and MINIMUM..MAXIMUM when given."""
    if not isinstance(text, str):  # click may hand us an int default
        text = str(text)
    raw = text
    t = text.strip().lower()
    neg = False
    if signed and t.startswith("-"):
        neg, t = True, t[1:]
    m = re.fullmatch(_NUM, t, re.ASCII) if t.isascii() else None
    if m is None or (not units and m.group(2)) or (not units and t != m.group(1)):
        if not raw.isascii():
            raise UsageError(f"{what}: {raw!r} is not a number (only ASCII digits 0-9 are)")
        if raw.strip().startswith("-") and not signed:
            raise UsageError(f"{what}: {raw!r} must not be negative")
        example = "4096, 0x1000, 4K, 1MiB" if units else "16, 0x10"
        raise UsageError(f"{what}: {raw!r} is not a number (e.g. {example})")
    n = int(m.group(1), 0) * _UNITS[m.group(2)]
    if neg:
        n = -n
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if n < lo or n > hi:
        raise UsageError(f"{what}: {raw!r} does not fit in {bits} bits (at most {hi:#x})")
    if n < minimum or (maximum is not None and n > maximum):
        top = hi if maximum is None else maximum
        raise UsageError(f"{what}: {raw!r} is out of range ({minimum}..{top})")
    return n


def parse_size(text: str, what: str = "size", *, bits: int = 64) -> int:
    """A size/offset/length/address in bytes (see the module docstring)."""
    return parse_int(text, what, bits=bits)


def parse_ms(text: str, what: str = "--timeout") -> int:
    """A duration in milliseconds, as cxl-cli and nvme-cli take timeouts: ``500``
    (ms), ``500ms``, ``2s``, ``1m``, ``1h``. Refuses negatives, fractions, nan."""
    raw = text
    t = text.strip().lower()
    m = re.fullmatch(_MS, t, re.ASCII) if t.isascii() else None
    if m is None:
        why = f"{what}: {raw!r} is not a duration in ms (e.g. 500, 2s, 1m)"
        if "." in t and t.replace(".", "", 1).isdigit() and t.isascii():
            why += f"; it counts milliseconds, as in cxl-cli: {t} s is {round(float(t) * 1000)}"
        raise UsageError(why)
    n = int(m.group(1)) * _MS_UNITS[m.group(2)]
    if n >= 1 << 63:
        raise UsageError(f"{what}: {raw!r} is too long")
    return n


def parse_range(text: str, what: str = "RANGE", *, bits: int = 64) -> tuple[int, int]:
    """``START-END`` (END exclusive) or ``START+LENGTH`` -> (start, length)."""
    m = re.fullmatch(r"\s*([^+\-\s]+)\s*([-+])\s*([^+\-\s]+)\s*", text, re.ASCII)
    if m is None or not text.isascii():
        raise UsageError(
            f"{what}: {text!r} is not a range: expected START-END or START+LENGTH "
            "(e.g. 0x1000-0x2000, 0x1000+4K)"
        )
    start = parse_int(m.group(1), what, bits=bits)
    other = parse_int(m.group(3), what, bits=bits)
    length = other - start if m.group(2) == "-" else other
    if length <= 0:
        raise UsageError(f"{what}: {text!r} is empty")
    if start + length > 1 << bits:
        raise UsageError(f"{what}: {text!r} ends beyond {bits} bits")
    return start, length


def looks_like_range(text: str) -> bool:
    """A positional argument that is a range (``0x1000-0x2000``, ``0+64``), not a name."""
    return bool(re.fullmatch(r"\s*(0x[0-9a-fA-F]+|[0-9]+)[kmgtKMGT]?\s*[-+]\s*\S+", text, re.ASCII))


def human_size(n: int) -> int | str:
    """cxl-cli's ``-u`` size format (ndctl util/json.c display_size)."""
    if n < 5000 * 1024:
        return n
    if n < 2 * 1024**3:
        cmib = (n * 200 // (1 << 20) + 1) // 2
        cmb = (n // (1000000 // 200) + 1) // 2
        return f"{cmib // 100}.{cmib % 100:02d} MiB ({cmb // 100}.{cmb % 100:02d} MB)"
    if n < 2 * 1024**4:
        cgib = (n * 200 // (1 << 30) + 1) // 2
        cgb = (n // (1000000000 // 200) + 1) // 2
        return f"{cgib // 100}.{cgib % 100:02d} GiB ({cgb // 100}.{cgb % 100:02d} GB)"
    ctib = (n * 200 // (1 << 40) + 1) // 2
    ctb = (n // (1000000000000 // 200) + 1) // 2
    return f"{ctib // 100}.{ctib % 100:02d} TiB ({ctb // 100}.{ctb % 100:02d} TB)"
