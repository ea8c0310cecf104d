"""On the kernel backend, the requests are what Linux 6.12 expects: a fake transport
records every CXL_MEM_SEND_COMMAND (id, input bytes, out.size) and answers with a
simulated device, while sysfs is a directory tree like /sys/bus/cxl/devices."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import Result
from fakesysfs import FakeSysfs, kernel_cli
from simio import Sent

from cxlctl import uapi
from cxlctl.mailbox import CEL_UUID

K = uapi.CommandId
VENDOR_DEBUG = "5e1819d9-11a9-400c-811f-d60719403d86"


Kernel = Callable[..., tuple[Result, list[Sent]]]


@pytest.fixture
def kernel(fake_sysfs: Callable[..., FakeSysfs]) -> Kernel:
    """``kernel(ARGS, profile=...)``: cxlctl ARGS on the kernel backend over a fake
    sysfs; returns (result, what was sent)."""

    def run(*args: str, profile: str = "full") -> tuple[Result, list[Sent]]:
        fs = fake_sysfs(["pmem"], profile=profile)
        return kernel_cli(*args), fs.sent

    return run


def _uuid(u: str) -> bytes:
    import uuid

    return uuid.UUID(u).bytes


def _fixed(sent: list[Sent], cid: int, size_out: int) -> None:
    """One request, no input, no flags, out.size at least the kernel's size_out (Linux
    answers ENOMEM below it; more is allowed and lets a newer device say more)."""
    (s,) = sent
    assert (s.id, s.payload, s.flags) == (cid, b"", 0)
    assert size_out <= s.out_size <= 2048


def test_health_request(kernel: Kernel) -> None:
    r, sent = kernel("health", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)[0]["memdev"] == "mem0"
    _fixed(sent, K.GET_HEALTH_INFO, 0x12)


def test_partition_and_fw_info_requests(kernel: Kernel) -> None:
    r, sent = kernel("partition", "--json")
    assert r.exit_code == 0, r.stderr
    _fixed(sent, K.GET_PARTITION_INFO, 0x20)
    r, sent = kernel("fw-info", "--json")
    assert r.exit_code == 0, r.stderr
    _fixed(sent, K.GET_FW_INFO, 0x50)


def test_health_enotty_on_qemu_is_exit_4(kernel: Kernel) -> None:
    r, sent = kernel("health", profile="qemu")
    assert r.exit_code == 4
    assert "mem0: get-health-info" in r.stderr
    assert [s.id for s in sent] == [K.GET_HEALTH_INFO]


def test_get_log_pages_by_payload_max_after_checking_the_size(
    kernel: Kernel,
) -> None:
    r, sent = kernel("get-log", "vendor-debug", "mem0", "--offset", "100", "-o", "raw")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout_bytes) == 2900
    assert sent[0] == Sent(K.GET_SUPPORTED_LOGS, b"", 2048, 0)
    pages = sent[1:]
    assert [s.id for s in pages] == [K.GET_LOG, K.GET_LOG]
    want = [(100, 2048), (2148, 852)]
    for s, (off, n) in zip(pages, want, strict=True):
        assert s.payload == _uuid(VENDOR_DEBUG) + off.to_bytes(4, "little") + n.to_bytes(
            4, "little"
        )
        assert s.out_size == 2048


def test_get_log_out_of_range_sends_no_get_log(kernel: Kernel) -> None:
    r, sent = kernel("get-log", "cel", "mem0", "--offset", "4096", profile="qemu")
    assert r.exit_code == 2
    assert [s.id for s in sent] == [K.GET_SUPPORTED_LOGS]


def test_cel_reads_the_advertised_size(kernel: Kernel) -> None:
    r, sent = kernel("cel", "mem0", "--json", profile="qemu")
    assert r.exit_code == 0, r.stderr
    assert sent[1].payload == _uuid(CEL_UUID) + (0).to_bytes(4, "little") + (104).to_bytes(
        4, "little"
    )


def test_read_labels_chunks(kernel: Kernel) -> None:
    r, sent = kernel("read-labels", "mem0", "-s", "5000", "-O", "100")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout_bytes) == 5000
    chunks = [
        (int.from_bytes(s.payload[:4], "little"), int.from_bytes(s.payload[4:], "little"))
        for s in sent
    ]
    assert chunks == [(100, 2048), (2148, 2048), (4196, 904)]
    assert all(s.id == K.GET_LSA for s in sent)
    assert all(0 < n <= 2048 for _, n in chunks)


def test_read_labels_bounds_checked_before_sending(kernel: Kernel) -> None:
    r, sent = kernel("read-labels", "mem0", "-O", str((256 << 20) - 1), "-s", "2")
    assert r.exit_code == 2
    assert sent == []


def test_security_state_reads_sysfs_and_sends_nothing(kernel: Kernel) -> None:
    r, sent = kernel("security-state", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == [{"memdev": "mem0", "security_state": "disabled"}]
    assert sent == []
