"""Label storage through the real driver: EBUSY while the nvdimm bridge owns it,
a write/read round trip once the memdev is unbound from cxl_mem (as
``cxl disable-memdev`` does), and the driver rebound afterwards."""

from __future__ import annotations

from .conftest import Memdev, cli_commands, cxlctl, cxlctl_bytes

OFFSET = 0x10000  # well away from the namespace index blocks at 0


def _le32(n: int) -> str:
    return n.to_bytes(4, "little").hex()


def get_lsa(m: Memdev, offset: int, length: int) -> bytes:
    return cxlctl_bytes("send", m.name, "get-lsa", "-o", "raw", "-i", _le32(offset) + _le32(length))


def set_lsa(m: Memdev, offset: int, data: bytes) -> tuple[int, str]:
    r = cxlctl("send", m.name, "set-lsa", "-i", _le32(offset) + _le32(0) + data.hex())
    return r.returncode, r.stderr


def test_set_lsa_busy_while_bridge_owns_labels(pmem: Memdev) -> None:
    assert pmem.bound
    rc, err = set_lsa(pmem, OFFSET, b"\x5a" * 16)
    assert rc == 7, (rc, err)
    assert "the kernel has claimed Set Label Storage Area for exclusive use" in err
    assert "[EBUSY]" in err
    assert "disable the memdev" in err


def test_label_round_trip_when_unbound(unbound: Memdev) -> None:
    m = unbound
    data = bytes(range(256)) * 2
    before = get_lsa(m, OFFSET, len(data))
    try:
        rc, err = set_lsa(m, OFFSET, data)
        assert rc == 0, err
        assert get_lsa(m, OFFSET, len(data)) == data
        if "read-labels" in cli_commands():
            got = cxlctl_bytes("read-labels", m.name, "-s", str(len(data)), "-O", str(OFFSET))
            assert got == data
    finally:
        rc, err = set_lsa(m, OFFSET, before)  # later tests expect the old bytes
        assert rc == 0, err
    assert get_lsa(m, OFFSET, len(data)) == before
