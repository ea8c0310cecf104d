"""The guest is the stack the tier says it booted (``CXLCTL_VM_STACK``).

Every stack-dependent assertion in tests/kernel goes by :data:`conftest.STACK`; this
checks its facts against the running kernel, QEMU's SMBIOS machine version and
cxl-cli, so a mislabelled run fails here instead of asserting the wrong stack.
"""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import STACK, Memdev, cxl


def test_kernel_is_the_stacks() -> None:
    assert os.uname().release.startswith(STACK.kernel), (os.uname().release, STACK)


def test_qemu_is_the_stacks() -> None:
    # QEMU puts its machine type in SMBIOS: pc-q35-10.0, pc-q35-11.1
    version = Path("/sys/class/dmi/id/product_version").read_text().strip()
    assert version == f"pc-q35-{STACK.qemu}", (version, STACK)


def test_cxl_cli_is_the_stacks() -> None:
    r = cxl("version")
    assert r.returncode == 0, r
    assert r.stdout.strip() == STACK.cxl_cli, (r.stdout, STACK)


def test_char_device_major_matches_sysfs(memdevs: list[Memdev]) -> None:
    """The memdev's char major moved (250 on 6.12, 249 on 7.3): it is never hard-coded,
    /dev/cxl/memN must carry the dev_t sysfs announces."""
    for m in memdevs:
        major, minor = (
            int(x) for x in Path(f"/sys/bus/cxl/devices/{m.name}/dev").read_text().split(":")
        )
        st = os.stat(m.dev)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), m
