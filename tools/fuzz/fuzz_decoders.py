"""Coverage-guided fuzz target (atheris): every payload decoder, and the simulated
kernel's struct parser (``SimDevice.ioctl`` on ``CXL_MEM_SEND_COMMAND`` and
``CXL_MEM_QUERY_COMMANDS`` argument bytes).

A crash is any exception but the documented ones: ``DecodeError`` from a decoder,
``OSError`` (an errno, as ``fcntl.ioctl`` would raise) from the ioctl.

    python tools/fuzz/fuzz_decoders.py -max_total_time=60 NEW_DIR tools/fuzz/corpus

(libFuzzer writes new inputs into the first directory: give it a scratch one, the
committed corpus second.)  ``.ci/run`` runs it for 60 s and fails on a crash;
tests/test_fuzz_corpus.py replays the committed corpus without atheris.

The payload pointers of a fuzzed SEND are replaced by one of: a buffer of ours of
the right size, NULL, an unmapped address, a kernel address -- never a random
address that might be valid memory of this process (the kernel would write there,
as it would into any program that passed it; here that would corrupt the fuzzer).
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Callable
from typing import Any

from cxlctl import mailbox as mb
from cxlctl import uapi
from cxlctl.errors import DecodeError
from cxlctl.mailbox.logs import decode_cel

DECODERS: list[tuple[str, Callable[[bytes], Any]]] = sorted(
    [(c.name, c.decode) for c in mb.CATALOGUE if c.has_decoder] + [("cel", decode_cel)]
)
#: the first byte of an input: < len(DECODERS) a decoder; then SEND; then QUERY
SEND, QUERY = len(DECODERS), len(DECODERS) + 1
_IN_PTR = struct.calcsize("<IIHHIIIQ") - 8  # offset of in.payload in the struct
_OUT_PTR = uapi.SEND_SIZE - 8  # offset of out.payload
_UNMAPPED = 0x10  # the zero page is never mapped
_KERNEL = 0xFFFF_8880_0000_0000
_DEVICE: Any = None


def _device() -> Any:
    global _DEVICE
    if _DEVICE is None:
        from cxlctl.sim import DeviceConfig, SimDevice

        _DEVICE = SimDevice("mem0", DeviceConfig(time_scale=0), raw_commands=True)
    return _DEVICE


def _pointer(choice: int, buf: Any) -> int:
    return (ctypes.addressof(buf), 0, _UNMAPPED, _KERNEL)[choice % 4]


def one_input(data: bytes) -> None:
    """The fuzz target (also called on the committed corpus by the tests)."""
    if not data:
        return
    sel, body = data[0], data[1:]
    if sel < SEND:
        _, fn = DECODERS[sel]
        try:
            value = fn(body)
        except DecodeError:
            return
        from cxlctl import render as rd

        rd.to_data(value)
        return
    dev = _device()
    if sel % 2 == SEND % 2:  # SEND: the struct, then how to point its payloads
        arg = bytearray(body[: uapi.SEND_SIZE].ljust(uapi.SEND_SIZE, b"\0"))
        tail = body[uapi.SEND_SIZE :]
        choices = tail[:2].ljust(2, b"\0")
        f = uapi.SEND_FORMAT.unpack_from(arg)
        in_size, out_size = f[5], f[8]
        given = bytes(tail[2:])
        in_buf = ctypes.create_string_buffer(given, max(in_size & 0xFFFFF, len(given), 1))
        out_buf = ctypes.create_string_buffer(max(out_size & 0xFFFFF, 1))
        struct.pack_into("<Q", arg, _IN_PTR, _pointer(choices[0], in_buf))
        struct.pack_into("<Q", arg, _OUT_PTR, _pointer(choices[1], out_buf))
        if choices[0] % 4 == 0 and in_size > len(in_buf):  # keep to our own memory
            struct.pack_into("<I", arg, 16, len(in_buf))
        if choices[1] % 4 == 0 and (out_size & 0xFFFFFFFF) > len(out_buf):
            struct.pack_into("<I", arg, 32, len(out_buf))
        request = uapi.CXL_MEM_SEND_COMMAND
    else:  # QUERY: header and entries, any length
        arg = bytearray(body[:4096])
        request = uapi.CXL_MEM_QUERY_COMMANDS
    try:
        dev.ioctl(request, arg)
    except OSError:
        return


def main() -> None:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
