"""Write the seed corpus of fuzz_decoders.py into tools/fuzz/corpus/ (committed):
each decoder's real payload from the simulator, a valid SEND struct for every
command of Linux's table, and QUERY buffers.  File names are the SHA-1 of the
content, as libFuzzer names them.  Rerun after adding a decoder.

    python tools/fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_decoders import DECODERS, QUERY, SEND  # noqa: E402

from cxlctl import mailbox as mb  # noqa: E402
from cxlctl import uapi  # noqa: E402
from cxlctl.backends import SimBackend  # noqa: E402
from cxlctl.errors import CxlError  # noqa: E402
from cxlctl.memdev import Memdev  # noqa: E402
from cxlctl.sim import make_devices  # noqa: E402
from cxlctl.sim.driver.mbox import MEM_COMMANDS  # noqa: E402


def seeds() -> list[bytes]:
    md = Memdev(SimBackend(make_devices(["mixed"], raw_commands=True)), "mem0")
    out: list[bytes] = []
    for i, (name, _) in enumerate(DECODERS):
        payload = b""
        cmd = mb.BY_NAME.get(name)
        try:
            if name == "cel":
                from cxlctl.mailbox.names import CEL_UUID

                payload = b"".join(md.iter_log(CEL_UUID, 0, None))
            elif cmd is not None and not cmd.size_in and not cmd.destructive:
                payload = md.run(cmd)
        except CxlError:  # a command this profile lacks: an empty seed
            payload = b""
        out.append(bytes([i]) + payload)
        out.append(bytes([i]) + payload[: len(payload) // 2])
    for c in MEM_COMMANDS:
        size_in = 0 if c.size_in == uapi.CXL_VARIABLE_PAYLOAD else c.size_in
        s = uapi.SEND_FORMAT.pack(c.id, 0, 0, 0, 0, size_in, 0, 0, 2048, 0, 0)
        out.append(bytes([SEND]) + s + b"\0\0" + bytes(size_in))
    raw = uapi.SEND_FORMAT.pack(int(uapi.CommandId.RAW), 0, 0x4000, 0, 0, 0, 0, 0, 2048, 0, 0)
    out.append(bytes([SEND]) + raw + b"\0\0")
    for n in (0, 1, 25, 40):
        out.append(bytes([QUERY]) + struct.pack("<II", n, 0) + bytes(16 * n))
    return out


def main() -> None:
    corpus = HERE / "corpus"
    corpus.mkdir(exist_ok=True)
    for old in corpus.iterdir():
        old.unlink()
    for data in seeds():
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{len(list(corpus.iterdir()))} seeds in {corpus}")


if __name__ == "__main__":
    main()
