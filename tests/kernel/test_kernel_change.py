"""The change verbs against the real driver, cross-checked with cxl-cli.

update-firmware through the firmware-upload class (QEMU 10 and 11 implement Transfer
FW and Activate FW: hw/cxl/cxl-mailbox-utils.c; topology.md 8), sanitize and
wait-sanitize (security/sanitize, security/state; topology.md 9), inject/clear poison
through debugfs (topology.md 10), inject-protocol-error where QEMU offers no EINJ, and
the mailbox settings verbs with the kernel's exact answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import STACK, Memdev, cxl, cxlctl

DPA = 0x2000
SECURITY = Path("/sys/bus/cxl/devices")


def _cxl_memdev(name: str, *opts: str) -> dict[str, Any]:
    r = cxl("list", "-M", "-m", name, *opts)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    d: dict[str, Any] = data[0] if isinstance(data, list) else data
    return d


def _mine(name: str, *opts: str) -> dict[str, Any]:
    r = cxlctl("list", name, *opts, "--json")
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)
    assert isinstance(d, dict)
    return d


# --- update-firmware ---------------------------------------------------------------------


def test_update_firmware_stages_slot_2_as_cxl_cli_sees_it(pmem: Memdev, tmp_path: Path) -> None:
    img = tmp_path / "fw.bin"
    img.write_bytes(bytes(range(256)) * 16)  # 4096 bytes: three parts of 1920 bytes
    r = cxlctl("update-firmware", pmem.name, "-F", str(img), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"firmware/{pmem.name}/loading <- '1\\n\\x00'" in r.stdout
    r = cxlctl("update-firmware", pmem.name, "-F", str(img), "-w", "-y", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert (row["outcome"], row["changed"]) == ("changed", True)
    assert "slot 2 staged for the next reset" in r.stderr
    theirs = _cxl_memdev(pmem.name, "-F")["firmware"]
    assert theirs["staged_slot"] == 2
    assert theirs["fw_update_in_progress"] is False
    assert _mine(pmem.name, "-F")["firmware"] == theirs


def test_update_firmware_in_progress_shows_in_both_tools(pmem: Memdev, tmp_path: Path) -> None:
    img = tmp_path / "fw8k.bin"
    img.write_bytes(b"\x5a" * 8192)  # five parts: about 10 s of QEMU background work
    r = cxlctl("update-firmware", pmem.name, "-F", str(img), "-y", "--json")
    assert r.returncode == 0, r.stderr
    mine = _mine(pmem.name, "-F")["firmware"]
    theirs = _cxl_memdev(pmem.name, "-F")["firmware"]
    if theirs["fw_update_in_progress"]:  # still running when cxl-cli looked
        assert mine["fw_update_in_progress"] is True
        assert 0 < mine["remaining_size"] <= 8192
    r = cxlctl("update-firmware", pmem.name, "-w", "--json", timeout=600)  # wait, no -F
    assert r.returncode == 0, r.stderr
    theirs = _cxl_memdev(pmem.name, "-F")["firmware"]
    assert theirs["fw_update_in_progress"] is False
    assert _mine(pmem.name, "-F")["firmware"] == theirs


# --- sanitize and wait-sanitize ------------------------------------------------------------


def _state(m: Memdev) -> str:
    return str((SECURITY / m.name / "security" / "state").read_text().strip())


def test_sanitize_and_wait_sanitize(pmem: Memdev) -> None:
    r = cxlctl("sanitize", pmem.name, "--json")
    assert r.returncode == 2  # destroys everything: no terminal, no -y
    r = cxlctl("sanitize", pmem.name, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "security/sanitize <- '1\\n'" in r.stdout
    assert _state(pmem) != "sanitize"
    r = cxlctl("sanitize", pmem.name, "-y", "--json")
    assert r.returncode == 0, r.stderr
    # QEMU takes ~4 s: the mailbox is refused meanwhile, with the hint for that cause
    busy = cxlctl("identify", pmem.name)
    if busy.returncode == 7:
        assert "a sanitize (or secure erase) is running" in busy.stderr
        assert f"cxlctl wait-sanitize {pmem.name}" in busy.stderr
    else:  # the sanitize had already ended
        assert busy.returncode == 0, busy.stderr
    r = cxlctl("wait-sanitize", pmem.name, "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["security_state"] == "disabled"
    if row["waited"]:
        assert "for the running sanitize to finish: it has finished" in r.stderr
    assert _state(pmem) == "disabled"
    theirs = cxl("wait-sanitize", pmem.name)
    assert theirs.returncode == 0, theirs.stderr
    assert "completed on 1 mem device" in theirs.stderr


def test_secure_erase_is_not_offered_by_qemu(pmem: Memdev) -> None:
    r = cxlctl("secure-erase", pmem.name, "-y", "--json")
    assert r.returncode == 4, r.stderr
    assert "security/erase does not exist" in r.stderr


# --- poison --------------------------------------------------------------------------------


def test_inject_and_clear_media_poison_agree_with_cxl_cli(pmem: Memdev) -> None:
    r = cxlctl("inject-media-poison", pmem.name, "-a", hex(DPA), "--dry-run")
    assert r.returncode == 0
    assert f"/sys/kernel/debug/cxl/{pmem.name}/inject_poison <- '{DPA:#x}\\n'" in r.stdout
    r = cxlctl("inject-media-poison", pmem.name, "-a", hex(DPA), "-y", "--json")
    assert r.returncode == 0, r.stderr
    try:
        theirs = _cxl_memdev(pmem.name, "-L").get("media_errors", [])
        assert {"offset": DPA, "length": 64, "source": "Injected"} in theirs
        assert _mine(pmem.name, "-L").get("media_errors", []) == theirs
    finally:
        r = cxlctl("clear-media-poison", pmem.name, "-a", hex(DPA), "--json")
        assert r.returncode == 0, r.stderr
    theirs = _cxl_memdev(pmem.name, "-L").get("media_errors", [])
    assert all(e["offset"] != DPA for e in theirs)
    assert _mine(pmem.name, "-L").get("media_errors", []) == theirs
    r = cxlctl("inject-media-poison", pmem.name, "-a", hex(DPA + 1), "-y")
    assert r.returncode == 2  # not 64-byte aligned: refused before the write


# --- what QEMU and the kernel do not offer ----------------------------------------------------


def test_inject_protocol_error_says_the_kernel_offers_no_einj() -> None:
    assert not Path("/sys/kernel/debug/cxl/einj_types").exists()  # no EINJ table in QEMU
    r = cxlctl("inject-protocol-error", "0000:0c:00.0", "-s", "correctable", "-y")
    assert r.returncode == 4, r.stderr
    assert "/sys/kernel/debug/cxl/einj_types does not exist" in r.stderr


def test_set_shutdown_state_is_disabled_by_the_cel(pmem: Memdev) -> None:
    """QEMU's CEL lists neither Get nor Set Shutdown State: the kernel enables neither."""
    r = cxlctl("set-shutdown-state", pmem.name, "dirty")
    assert r.returncode == 4, r.stderr
    assert "its Command Effects Log does not list Set Shutdown State (0x4204)" in r.stderr


def test_clear_log_on_qemu(pmem: Memdev) -> None:
    """QEMU's CEL has no Clear Log (0x0403): ENOTTY before the kernel's vendor-debug rule."""
    r = cxlctl("clear-log", pmem.name, "cel", "-y")
    assert r.returncode == 4, r.stderr
    assert "does not list Clear Log (0x0403)" in r.stderr


@pytest.mark.parametrize(
    "args",
    [["set-timestamp", "--now"], ["set-event-interrupt-policy", "--info", "none"]],
    ids=["set-timestamp", "set-event-interrupt-policy"],
)
def test_commands_without_an_id_need_raw(pmem: Memdev, args: list[str]) -> None:
    r = cxlctl(args[0], pmem.name, *args[1:])
    assert r.returncode == 4, r.stderr
    assert "not available on this kernel, because" in r.stderr
    assert "CONFIG_CXL_MEM_RAW_COMMANDS" in r.stderr
    assert STACK.name in ("6.12", "7.3")
