"""Bytes from the kernel are bytes: sysfs attributes with bytes that are not UTF-8,
escape sequences, or numbers out of range, on the kernel backend over a fake sysfs,
for every command that reads sysfs (docs/hostile-input.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from simio import Recorder, Sent

from cxlctl.backends import KernelBackend
from cxlctl.cli import main
from cxlctl.sim import SimDevice, make_devices
from cxlctl.tracefs import KernelTracing
from cxlctl.transport import Transport

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


def _tree(root: Path, dev: SimDevice, overrides: dict[str, bytes]) -> None:
    base = root / "devices" / "pci0000:0c" / dev.config.host / dev.name
    for key, value in dev.sysfs().items():
        if key == "host":
            continue
        p = base / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(overrides.get(key, value.encode() + b"\n"))
    (base / "dev").write_bytes(b"250:0\n")
    (root / "bus").mkdir(exist_ok=True)
    (root / "bus" / dev.name).symlink_to(base)


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    def run(args: list[str], overrides: dict[str, bytes]) -> Result:
        (dev,) = make_devices(["pmem"])
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        _tree(root, dev, overrides)
        sent: list[Sent] = []

        def open_(self: KernelBackend, name: str) -> Transport:
            return Recorder(dev, sent)

        def init(self: KernelBackend, *a: Any, **k: Any) -> None:
            self.sysfs_root = str(root / "bus")
            self.dev_root = str(root / "dev")
            self._tracing = None

        monkeypatch.setattr(KernelBackend, "open", open_)
        monkeypatch.setattr(KernelBackend, "__init__", init)
        monkeypatch.setattr(KernelBackend, "labels_owned", lambda self, name: False)
        env = {"CXLCTL_BACKEND": "kernel", "NO_COLOR": "1", "CXLCTL_DEBUG": "", "COLUMNS": "200"}
        return CliRunner().invoke(main, args, env=env)

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
