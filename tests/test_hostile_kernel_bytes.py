"""Bytes from the kernel are bytes: sysfs attributes with bytes that are not UTF-8,
escape sequences, or numbers out of range, on the kernel backend over a fake sysfs,
for every command that reads sysfs (docs/hostile-input.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fakesysfs import FakeSysfs, kernel_cli

from cxlctl.backends import KernelBackend
from cxlctl.tracefs import KernelTracing

#: per-memdev commands that read sysfs (memdev selection, payload_max, label size)
READERS = [
    ["list"],
    ["list", "-I", "-F", "-H", "-A"],
    ["query", "mem0"],
    ["identify", "mem0"],
    ["send", "mem0", "identify"],
    ["health", "mem0"],
    ["partition", "mem0"],
    ["fw-info", "mem0"],
    ["alert-config", "mem0"],
    ["shutdown-state", "mem0"],
    ["timestamp", "mem0"],
    ["security-state", "mem0"],
    ["logs", "mem0"],
    ["cel", "mem0"],
    ["get-log", "cel", "mem0"],
    ["log-caps", "cel", "mem0"],
    ["read-labels", "mem0", "-s", "64"],
    ["zero-labels", "mem0", "-s", "64", "-y"],
    ["scan-media-caps", "mem0", "0+0x40"],
    ["events", "mem0"],
]


@pytest.fixture
def kernel(
    fake_sysfs: Callable[..., FakeSysfs], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``kernel(ARGS, {attribute: bytes})``: cxlctl ARGS on the kernel backend over a
    fake sysfs whose mem0 attributes read as given."""

    def run(args: list[str], overrides: dict[str, bytes]) -> Result:
        fs = fake_sysfs(["pmem"])
        for key, value in overrides.items():
            fs.set(f"bus/cxl/devices/mem0/{key}", value)
        monkeypatch.setattr(KernelBackend, "labels_owned", lambda self, name: False)
        return kernel_cli(*args, env={"COLUMNS": "200"})

    return run


def _clean(r: Result) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) <= 1, r.stderr


EVIL_FW = b"FW\xff\x1b]0;PWNED\x07\x1b[2J\n"


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_non_utf8_and_escapes_in_sysfs(kernel: Callable[..., Result], args: list[str]) -> None:
    """`printf 'FW\\377\\n' > mem0/firmware_version`: every command ends clean."""
    r = kernel(args, {"firmware_version": EVIL_FW, "security/state": b"\xfe\x9b2J\n"})
    _clean(r)
    assert r.exit_code in (0, 4, 7), r.stderr  # 4, 7: what the fake kernel disables, owns
    assert "\x1b" not in r.stdout
    assert "\x07" not in r.stdout


def test_firmware_version_is_shown_escaped(kernel: Callable[..., Result]) -> None:
    r = kernel(["list"], {"firmware_version": EVIL_FW})
    assert r.exit_code == 0, r.stderr
    assert "FW\\xff\\x1b]0;PWNED\\x07\\x1b[2J" in r.stdout
    r = kernel(["list", "--json"], {"firmware_version": EVIL_FW})
    assert json.loads(r.stdout)[0]["firmware_version"] == "FW\\xff\x1b]0;PWNED\x07\x1b[2J"
    assert "\x1b" not in r.stdout  # JSON escapes it (\u001b)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("payload_max", b"2147483648\n"),
        ("payload_max", b"-1\n"),
        ("payload_max", b"1048577\n"),
        ("payload_max", b"\xff\n"),
        ("payload_max", b"\xd9\xa3\n"),  # an Arabic-Indic three: not a kernel number
        ("label_storage_size", b"0x100000000000000000\n"),
        ("serial", b"0x1" + b"0" * 20 + b"\n"),
        ("numa_node", b"-2\n"),
        ("ram/size", b"lots\n"),
    ],
)
@pytest.mark.parametrize(
    "args", [["list"], ["identify", "mem0"], ["read-labels", "mem0", "-s", "64"]]
)
def test_numbers_out_of_range_are_a_clean_error(
    kernel: Callable[..., Result], key: str, value: bytes, args: list[str]
) -> None:
    r = kernel(args, {key: value})
    _clean(r)
    assert r.exit_code == 3, (r.exit_code, r.stderr)
    assert f"mem0: sysfs {key} is" in r.stderr


def test_payload_max_at_the_edges_is_accepted(kernel: Callable[..., Result]) -> None:
    for v in (b"0\n", b"256\n", b"1048576\n"):
        r = kernel(["list", "--json"], {"payload_max": v})
        assert r.exit_code == 0, r.stderr


def test_tracefs_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "trace").write_bytes(b"# tracer: nop\n\xff\xfe garbage\n")
    t = KernelTracing(str(tmp_path), tracefs_root=str(tmp_path))
    assert "\\xff\\xfe garbage" in t.read(str(tmp_path / "trace"))
