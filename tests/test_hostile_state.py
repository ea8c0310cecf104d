"""Simulator state like a database (cxlctl/sim/state.py): symlinks, FIFOs, devices,
hostile JSON, unusable directories, failed writes, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import procs
import pytest
from click.testing import Result

from cxlctl.sim import state

Cli = Callable[..., Result]
SERIAL = 0x1234


def _clean(r: Result, code: int) -> str:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr
    return r.stderr


def test_state_round_trip(tmp_path: Path) -> None:
    state.save_state(str(tmp_path), SERIAL, a=1)
    state.save_state(str(tmp_path), SERIAL, b=2)
    assert state.load_state(str(tmp_path), SERIAL) == {"a": 1, "b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "0x1234.json"]


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("0x1234.json", ["disable-memdev", "mem0"]),
        # `ln -s ~/precious $STATE/0x1234.lsa; cxlctl --sim list` grew it to 256 MiB
        ("0x1234.lsa", ["read-labels", "mem0", "-s", "16"]),
    ],
)
def test_a_symlinked_state_file_is_refused_and_its_target_untouched(
    cli: Cli, tmp_path: Path, name: str, command: list[str]
) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    (d / name).symlink_to(precious)
    for args in (["list"], command):
        err = _clean(cli(*args, env={"CXLCTL_SIM_STATE": str(d)}), 1)
        assert f"{name}: is a symbolic link" in err
    assert precious.read_text() == "keep me"


def test_a_symlinked_state_dir_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path / "link")}), 1)
    assert "is a symbolic link" in err


def test_a_fifo_as_state_file_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "0x1234.json")
    env = {**os.environ, "CXLCTL_SIM_STATE": str(tmp_path), "CXLCTL_SIM_DEVICES": ""}
    for argv in (["--sim", "list"], ["--sim", "identify", "mem0"]):
        r = subprocess.run(
            [sys.executable, "-m", "cxlctl", *argv], capture_output=True, env=env, timeout=120
        )
        assert r.returncode == 1
        assert b"0x1234.json: is a FIFO, not a state file" in r.stderr
        assert b"Traceback" not in r.stderr
    # completion asks the backend for memdevs: it must not hang either
    r = procs.bash_complete("cxlctl --sim identify ", "3", env)
    assert b"Traceback" not in r.stderr


def test_a_device_node_as_state_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "0x1234.json").symlink_to("/dev/zero")  # a link to a device: refused too
    assert "symbolic link" in _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path)}), 1)
    fd = state.open_dir(str(tmp_path))
    try:
        os.unlink(tmp_path / "0x1234.json")
        os.mknod(tmp_path / "0x1234.json", 0o600 | 0o020000, os.makedev(1, 5))
    except PermissionError:  # pragma: no cover - not root: a FIFO stands in
        os.mkfifo(tmp_path / "0x1234.json")
    finally:
        os.close(fd)
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path)}), 1)
    assert "not a state file" in err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "larger than"),
        (b"[" * 5_000 + b"]" * 5_000, "nested more than"),
        (b'{"a":' * 20 + b"1" + b"}" * 20, "nested more than"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
    ids=["huge", "deep-list", "deep-object", "binary", "truncated", "array"],
)
def test_hostile_json_is_a_clean_error(cli: Cli, tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "0x1234.json").write_bytes(content)
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path)}), 1)
    assert f"0x1234.json: is {why}" in err


def test_a_file_where_the_state_dir_should_be(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path / "f")}), 1)
    assert "exists and is not a directory" in err
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(tmp_path / "f" / "sub")}), 1)
    assert "not a directory" in err


def test_a_state_dir_writable_by_others_is_refused(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    err = _clean(cli("list", env={"CXLCTL_SIM_STATE": str(d)}), 1)
    assert "is writable by others (mode 0777)" in err


def test_a_relative_state_dir_is_refused(cli: Cli, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = cli("list", env={"CXLCTL_SIM_STATE": "none"})
    finally:
        os.chdir(cwd)
    assert "is a relative path" in _clean(r, 2)
    assert list(tmp_path.iterdir()) == []  # no ./none/ created


def test_an_unwritable_state_dir_says_so(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(root ignores a read-only mode, so the failure is injected where it happens)"""

    def mkstemp(**kw: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    err = _clean(cli("disable-memdev", "mem0", env={"CXLCTL_SIM_STATE": str(tmp_path)}), 1)
    assert "simulator state: " in err
    assert ".json: cannot save: Permission denied [EACCES]" in err
    assert "root-only" not in err


def test_a_failed_write_leaves_no_temp_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state.save_state(str(tmp_path), SERIAL, cxl_mem_bound=True)

    made: set[int] = set()
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync

    def mkstemp(*, dir: str, prefix: str, suffix: str) -> tuple[int, str]:  # state's call
        fd, path = real_mkstemp(dir=dir, prefix=prefix, suffix=suffix)
        made.add(fd)
        return fd, path

    def fsync(fd: int) -> None:  # the disk fills up under the temp file only
        if fd in made:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr("cxlctl.sim.state.os.fsync", fsync)
    err = _clean(cli("disable-memdev", "mem0", env={"CXLCTL_SIM_STATE": str(tmp_path)}), 1)
    assert "cannot save: No space left on device [ENOSPC]" in err
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    monkeypatch.undo()
    assert state.load_state(str(tmp_path), SERIAL) == {"cxl_mem_bound": True}  # the old state


def test_a_planted_temp_name_is_not_used(tmp_path: Path) -> None:
    """The old temp name (0x1234.json.<pid>.tmp) as a symlink: never written through."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / f"0x1234.json.{os.getpid()}.tmp").symlink_to(victim)
    state.save_state(str(tmp_path), SERIAL, a=1)
    assert victim.read_text() == "keep"
    assert state.load_state(str(tmp_path), SERIAL) == {"a": 1}


WRITER = """
import sys
from cxlctl.sim import state
d, i = sys.argv[1], int(sys.argv[2])
for j in range(10):
    state.save_state(d, 0x1234, **{f"w{i}": j})
"""


def test_twenty_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(i)]) for i in range(20)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * 20
    assert state.load_state(str(tmp_path), SERIAL) == {f"w{i}": 9 for i in range(20)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "0x1234.json"]
    json.loads((tmp_path / "0x1234.json").read_text())


@pytest.mark.parametrize("name", ["topology.json", "0x1235.json", ".lock"])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "deep"])
def test_every_state_file_gets_the_same_checks(
    cli: Cli, tmp_path: Path, name: str, kind: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    if kind == "symlink":
        (d / name).symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(d / name)
    else:
        (d / name).write_bytes(b"[" * 50 + b"]" * 50)
    r = cli("disable-memdev", "mem1", env={"CXLCTL_SIM_STATE": str(d)})
    if kind == "deep" and name == ".lock":  # the lock file's contents are never read
        assert r.exit_code == 0, r.stderr
        return
    err = _clean(r, 1)
    assert f"state/{name}: " in err
    assert victim.read_text() == "keep"


def test_byte_files_go_through_the_same_checks(tmp_path: Path) -> None:
    """The firmware-upload image (and any other byte state) is written atomically
    under the lock and read bounded, never through a planted symlink."""
    d = str(tmp_path)
    os.chmod(d, 0o700)
    state.write_bytes(d, "0x1234.fwimage", b"x" * 100)
    assert state.read_bytes(d, "0x1234.fwimage", max_bytes=100) == b"x" * 100
    assert state.read_bytes(d, "missing", max_bytes=1) == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "0x1234.fwimage"]
    with pytest.raises(state.StateError, match="larger than 99 bytes"):
        state.read_bytes(d, "0x1234.fwimage", max_bytes=99)
    precious = tmp_path.parent / f"{tmp_path.name}-precious"
    precious.write_bytes(b"keep")
    (tmp_path / "0x1235.fwimage").symlink_to(precious)
    with pytest.raises(state.StateError, match="symbolic link"):
        state.read_bytes(d, "0x1235.fwimage", max_bytes=100)
    assert precious.read_bytes() == b"keep"
