"""The output layer (cxlctl/cli/output.py), proved for every command in real processes:
closed fds, a reader that went away, a full disk, encodings that cannot show a
character, escape sequences in untrusted strings, signals. docs/hostile-input.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import procs
import pytest

from cxlctl.cli import COMMANDS
from cxlctl.cli.output import sanitize

HERE = Path(__file__).parent


def _identify() -> bytes:
    from cxlctl.backends import SimBackend
    from cxlctl.memdev import Memdev
    from cxlctl.sim import make_devices

    md = Memdev(SimBackend(make_devices(["pmem"])), "mem0")
    return md.run("identify")


IDENTIFY = _identify()
ENV = {
    "CXLCTL_BACKEND": "sim",
    "NO_COLOR": "1",
    "COLUMNS": "100",
    "CXLCTL_SIM_STATE": "",
    "CXLCTL_SIM_DEVICES": "",
    "CXLCTL_SIM_PROFILE": "",
    "CXLCTL_SIM_RAW": "",
    "CXLCTL_DEBUG": "",
}


@pytest.fixture(scope="module")
def payload_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("payload")
    (d / "id.bin").write_bytes(IDENTIFY[:0x43])
    (d / "labels.bin").write_bytes(bytes(64))
    (d / "requests.jsonl").write_text('{"id": 1, "memdev": "mem0", "command": "health"}\n')
    return str(d)


def every_command(d: str) -> dict[str, list[str]]:
    """One invocation per command that writes to stdout (or changes something)."""
    return {
        "list": ["list"],
        "query": ["query", "mem0"],
        "identify": ["identify", "mem0"],
        "send": ["send", "mem0", "identify"],
        "raw": ["raw", "mem0", "0x4000", "--dry-run"],
        "health": ["health", "mem0"],
        "partition": ["partition", "mem0"],
        "fw-info": ["fw-info", "mem0"],
        "alert-config": ["alert-config", "mem0"],
        "shutdown-state": ["shutdown-state", "mem0"],
        "timestamp": ["timestamp", "mem0"],
        "security-state": ["security-state", "mem0"],
        "logs": ["logs", "mem0"],
        "cel": ["cel", "mem0"],
        "get-log": ["get-log", "cel", "mem0"],
        "log-caps": ["log-caps", "cel", "mem0"],
        "read-labels": ["read-labels", "mem0", "-s", "64K"],
        "write-labels": ["write-labels", "mem1", "-y", "-i", f"{d}/labels.bin", "--json"],
        "zero-labels": ["zero-labels", "mem1", "-y", "-s", "64", "--json"],
        "disable-memdev": ["disable-memdev", "mem1", "--json"],
        "enable-memdev": ["enable-memdev", "mem1", "--json"],
        "set-alert-config": [
            "set-alert-config",
            "mem0",
            "-L",
            "80",
            "--life-used-alert",
            "on",
            "--json",
        ],
        "decode": ["decode", "identify", f"{d}/id.bin"],
        "completion": ["completion", "bash"],
        "batch": ["batch", "-i", f"{d}/requests.jsonl"],
        "poison": ["poison", "mem0"],
        "scan-media-caps": ["scan-media-caps", "mem0", "0+0x40"],
        "events": ["events", "mem0"],
        "event-interrupt-policy": ["event-interrupt-policy", "mem0"],
        "monitor": ["monitor", "--timeout", "0"],
        "create-region": ["create-region", "-y", "-t", "ram", "mem1", "--json"],
        "enable-region": ["enable-region", "-y", "all", "--json"],
        "disable-region": ["disable-region", "-y", "all", "--json"],
        "destroy-region": ["destroy-region", "-y", "all", "--json"],
        "reserve-dpa": ["reserve-dpa", "-y", "mem0", "-t", "pmem", "--json"],
        "free-dpa": ["free-dpa", "-y", "mem0", "--json"],
        "enable-port": ["enable-port", "-y", "port1", "--json"],
        "disable-port": ["disable-port", "-y", "-e", "endpoint2", "--json"],
        "disable-bus": ["disable-bus", "-y", "root0", "--json"],
        "set-partition": ["set-partition", "--help"],
        "update-firmware": ["update-firmware", "mem1", "-F", f"{d}/labels.bin", "-y", "--json"],
        "sanitize": ["sanitize", "mem1", "-y", "--json"],
        "secure-erase": ["secure-erase", "mem1", "-y", "--json"],
        "wait-sanitize": ["wait-sanitize", "mem1", "--json"],
        "inject-media-poison": ["inject-media-poison", "mem0", "-a", "0x40", "-y", "--json"],
        "clear-media-poison": ["clear-media-poison", "mem0", "-a", "0x40", "--json"],
        # the simulated platform offers no EINJ (exit 4): its help is what prints
        "inject-protocol-error": ["inject-protocol-error", "--help"],
        "set-timestamp": ["set-timestamp", "mem1", "--now", "--json"],
        "set-shutdown-state": ["set-shutdown-state", "mem1", "dirty", "--json"],
        "clear-log": ["clear-log", "mem0", "vendor-debug", "-y", "--json"],
        "set-event-interrupt-policy": ["set-event-interrupt-policy", "mem0", "--info", "none"],
    }


#: the environment a command's invocation needs beyond ENV (RAW for a command
#: Linux has no id for)
COMMAND_ENV: dict[str, dict[str, str]] = {
    name: {"CXLCTL_SIM_RAW": "1"}
    for name in ("event-interrupt-policy", "set-timestamp", "set-event-interrupt-policy")
}


class Run(TypedDict):
    """One invocation's outcome, as tests/hostile.py reports it."""

    rc: int
    stdout: bytes
    stderr: bytes


def run_many(cases: list[dict[str, Any]]) -> list[Run]:
    with tempfile.TemporaryDirectory() as tmp:
        todo, done = Path(tmp) / "cases.json", Path(tmp) / "results.json"
        for c in cases:
            c["env"] = {**ENV, **c.get("env", {})}
        todo.write_text(json.dumps(cases))
        subprocess.run(
            [sys.executable, str(HERE / "hostile.py"), str(todo), str(done)],
            check=True,
            timeout=900,
            cwd=tmp,
        )
        results: list[dict[str, Any]] = json.loads(done.read_text())
    return [
        {"rc": r["rc"], "stdout": bytes.fromhex(r["stdout"]), "stderr": bytes.fromhex(r["stderr"])}
        for r in results
    ]


def clean(r: Run, *, lines: int = 1) -> str:
    """No traceback, at most LINES lines on stderr, and the stderr text."""
    err = r["stderr"].decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert len(err.splitlines()) <= lines, err
    return err


def test_every_command_has_an_invocation(payload_file: str) -> None:
    assert set(every_command(payload_file)) == set(COMMANDS)


@pytest.fixture(scope="module")
def matrix(payload_file: str) -> dict[tuple[str, str], Run]:
    """Every command x (closed stdout, closed pipe, full disk, closed stderr, stderr full)."""
    modes = {
        "closed": {"stdout": "closed"},
        "epipe": {"stdout": "epipe"},
        "full": {"stdout": "full"},
        "stderr-closed": {"stdout": "null", "stderr": "closed"},
        "stderr-full": {"stdout": "null", "stderr": "full"},
        "ok": {},
    }
    keys, cases = [], []
    for name, argv in every_command(payload_file).items():
        for mode, fds in modes.items():
            keys.append((name, mode))
            cases.append({"argv": argv, "env": COMMAND_ENV.get(name, {}), **fds})
    return dict(zip(keys, run_many(cases), strict=True))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_closed_stdout_is_one_line_and_exit_1(
    name: str, matrix: dict[tuple[str, str], Run]
) -> None:
    """`>&-`: the data cannot be delivered; one line, exit 1, whatever was done."""
    r = matrix[(name, "closed")]
    err = clean(r, lines=2)  # a change's own report line may come first
    if matrix[(name, "ok")]["rc"] == 0 and r["rc"] != 0:
        assert r["rc"] == 1
        assert err.splitlines()[-1] == "cxlctl: cannot write to stdout: stdout is closed [EBADF]"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_closed_pipe_is_141_quietly(name: str, matrix: dict[tuple[str, str], Run]) -> None:
    """A reader that went away before the first byte: 141, nothing said, any format."""
    r = matrix[(name, "epipe")]
    ok = matrix[(name, "ok")]
    clean(r, lines=2)
    assert r["rc"] in (141, ok["rc"])
    if ok["stdout"] == b"" and ok["rc"] == 0:  # wrote nothing: nothing to fail
        return
    assert r["rc"] == 141
    assert b"stdout" not in r["stderr"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_full_disk_is_one_line_and_exit_1(name: str, matrix: dict[tuple[str, str], Run]) -> None:
    r = matrix[(name, "full")]
    err = clean(r, lines=2)
    if r["rc"] != 0:
        assert r["rc"] == 1
        assert err.splitlines()[-1] == (
            "cxlctl: cannot write to stdout: No space left on device [ENOSPC]"
        )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_stderr_never_changes_the_exit_code(name: str, matrix: dict[tuple[str, str], Run]) -> None:
    """`2>&-` and `2>/dev/full`: messages are lost, the exit code is not."""
    ok = matrix[(name, "ok")]["rc"]
    assert ok == 0, matrix[(name, "ok")]
    assert matrix[(name, "stderr-closed")]["rc"] == ok
    assert matrix[(name, "stderr-full")]["rc"] == ok


def test_help_and_usage_errors_into_full_or_closed_stdout() -> None:
    cases = [
        {"argv": ["--help"], "stdout": "full"},
        {"argv": ["--help"], "stdout": "epipe"},
        {"argv": ["--help"], "stdout": "closed"},
        {"argv": ["identify", "--help"], "stdout": "full"},
        {"argv": ["--version"], "stdout": "full"},
        {"argv": ["nosuch"], "stdout": "full"},
        {"argv": ["nosuch"], "stderr": "full"},
    ]
    r = run_many(cases)
    assert [x["rc"] for x in r] == [1, 141, 1, 1, 1, 2, 2]
    for x in r:
        clean(x, lines=4)
    assert r[0]["stderr"] == b"cxlctl: cannot write to stdout: No space left on device [ENOSPC]\n"


def test_closed_stdin_is_a_usage_error(payload_file: str) -> None:
    cases = [
        {"argv": ["decode", "identify"], "stdin": "closed"},
        {"argv": ["send", "mem0", "set-lsa", "-i", "-"], "stdin": "closed"},
        {"argv": ["write-labels", "mem1"], "stdin": "closed"},
        {"argv": ["raw", "mem0", "0x4000", "-i", "-", "--dry-run"], "stdin": "closed"},
    ]
    for r in run_many(cases):
        err = clean(r)
        assert r["rc"] == 2, err
        assert "stdin is closed" in err


def test_a_file_opened_with_stdout_closed_is_not_stdout(tmp_path: Path) -> None:
    """With fd 1 closed, `-o FILE` must not become fd 1 and receive other output."""
    out = tmp_path / "labels.bin"
    (r,) = run_many(
        [{"argv": ["read-labels", "mem0", "-s", "64", "-o", str(out)], "stdout": "closed"}]
    )
    assert r["rc"] == 0, r
    assert out.read_bytes() == bytes(64)


# --- encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
        {"PYTHONIOENCODING": "iso8859-1"},
        {"PYTHONIOENCODING": "iso8859-15"},
    ],
    ids=["ascii", "C-locale", "latin-1", "latin-9"],
)
def test_tables_in_an_encoding_without_box_characters(env: dict[str, str]) -> None:
    """Narrow columns force rich's ellipsis; ASCII boxes and a '.' stand in."""
    r = subprocess.run(
        [sys.executable, "-m", "cxlctl", "list"],
        capture_output=True,
        env={**os.environ, **ENV, "COLUMNS": "40", **env},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert b"Traceback" not in r.stderr
    r.stdout.decode("ascii")  # nothing but ASCII
    assert b"+-" in r.stdout or b"|" in r.stdout


def test_sanitiser_in_a_narrow_encoding_escapes_what_it_cannot_show() -> None:
    assert sanitize("caf\u00e9 \u2026", "ascii") == "caf\\xe9 \\u2026"
    assert sanitize("caf\u00e9", "iso8859-1") == "caf\u00e9"
    assert sanitize("caf\u00e9", "utf-8") == "caf\u00e9"


# --- escapes --------------------------------------------------------------------------

HOSTILE = [
    "\x1b]0;PWNED\x07\x1b[2J\x1b[31m",  # OSC title, CSI clear, SGR
    "\x1b]52;c;cHduZWQ=\x07",  # OSC 52: write the clipboard
    "\x9b31m\x9d0;T\x9c",  # C1 CSI/OSC/ST
    "a\u202eb\u2066c\u2069",  # bidi override, isolate
    "x\r\ny\x00z\x7f",
    "\udcff",  # an undecodable byte carried by surrogateescape
]


@pytest.mark.parametrize("text", HOSTILE)
def test_sanitiser_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    out = sanitize(text)
    assert all(ch.isprintable() and ord(ch) < 0x7F for ch in out), out
    assert sanitize(out) == out  # idempotent
    assert "\\x1b" in sanitize("\x1b")


def test_sanitiser_is_linear() -> None:
    big = "\x1b[31m" * 200_000
    assert sanitize(big) == "\\x1b[31m" * 200_000


def test_escape_in_a_file_name_is_shown_not_obeyed(tmp_path: Path) -> None:
    name = "/tmp/\x1b[31mRED\x1b]0;T\x07"
    r = subprocess.run(
        [sys.executable, "-m", "cxlctl", "write-labels", "mem1", "-i", name],
        capture_output=True,
        env={**os.environ, **ENV},
        timeout=120,
    )
    assert r.returncode == 2
    assert b"\x1b" not in r.stderr
    assert b"\x07" not in r.stderr
    assert b"\\x1b[31mRED\\x1b]0;T\\x07" in r.stderr


def test_escape_in_an_argument_echoed_by_click_is_shown_not_obeyed() -> None:
    for argv in (["\x1b]0;T\x07"], ["list", "--color", "\x1b[2J"], ["identify", "\x9b2J"]):
        r = subprocess.run(
            [sys.executable, "-m", "cxlctl", *argv],
            capture_output=True,
            env={**os.environ, **ENV},
            timeout=120,
        )
        assert r.returncode == 2
        for bad in (b"\x1b", b"\x07", b"\xc2\x9b"):
            assert bad not in r.stderr


def test_escape_in_a_decoded_payload_is_shown_not_obeyed(tmp_path: Path) -> None:
    """`decode identify esc.bin`: fw_revision is the device's bytes, unfiltered."""
    evil = b"\x1b]0;PWNED\x07\x1b[2J\x1b[31m"[:16].ljust(16, b"\0")
    p = tmp_path / "esc.bin"
    p.write_bytes(evil + IDENTIFY[16:0x43])
    for fmt in ("table", "json"):
        r = subprocess.run(
            [sys.executable, "-m", "cxlctl", "decode", "identify", str(p), "-o", fmt],
            capture_output=True,
            env={**os.environ, **ENV},
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert b"\x1b" not in r.stdout
        assert b"\x07" not in r.stdout
        assert b"\\x1b]0;PWNED" in r.stdout or b"\\u001b]0;PWNED" in r.stdout


# --- signals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signal_during_a_change_reports_how_far_it_got(signum: int, code: int) -> None:
    cases = [
        {"argv": ["zero-labels", "mem1", "-y", "-s", "64K"], "signal_at": [signum, 3]},
        {
            "argv": ["write-labels", "mem1", "-y", "-i", "/dev/zero", "-s", "64K"],
            "signal_at": [signum, 5],
        },
    ]
    for r in run_many(cases):
        err = clean(r, lines=2)
        assert r["rc"] == code, err
        first, last = err.splitlines()
        assert first.startswith("cxlctl: mem1: interrupted: ")
        assert " bytes were written (0x0.." in first or "nothing was written" in first
        assert last == f"cxlctl: interrupted by {signal.Signals(signum).name}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_an_ignored_signal_stays_ignored(signum: int) -> None:
    """``nohup cxlctl zero-labels ...``: a hangup the caller chose to ignore does not
    stop the change halfway."""
    (r,) = run_many(
        [
            {
                "argv": ["zero-labels", "mem1", "-y", "-s", "64K"],
                "signal_at": [signum, 3],
                "ignored": True,
            }
        ]
    )
    err = clean(r)
    assert r["rc"] == 0, err
    assert "zeroed 65536 bytes at offset 0" in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_read_labels_to_a_file_leaves_no_temp_file(
    signum: int, tmp_path: Path
) -> None:
    out = tmp_path / "lsa.bin"
    (r,) = run_many(
        [{"argv": ["read-labels", "mem0", "-s", "1M", "-o", str(out)], "signal_at": [signum, 10]}]
    )
    clean(r)
    assert r["rc"] == 128 + signum
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_imports_is_130_without_a_traceback() -> None:
    code = (
        "import os, signal, sys\n"
        # a non-interactive shell starts background jobs (CI) with SIGINT ignored,
        # and Python then installs no KeyboardInterrupt handler: restore a terminal's
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Finder())\n"
        "sys.argv = ['cxlctl', '--sim', 'list']\n"
        "from cxlctl.__main__ import main\n"
        "main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env={**os.environ, **ENV}, timeout=120
    )
    assert r.returncode == 130
    assert r.stderr == b""


def test_odd_completion_requests_end_quietly() -> None:
    r = procs.bash_complete("cxlctl ", "abc", {**os.environ, **ENV})
    assert r.returncode == 1
    assert r.stderr == b""


def test_sim_and_backend_kernel_contradict(cli: Callable[..., Any]) -> None:
    r = cli("--sim", "--backend", "kernel", "list")
    assert r.exit_code == 2
    assert "--sim and --backend kernel contradict each other" in r.stderr
    # CXLCTL_BACKEND=kernel is only a default: --sim on the command line wins
    r = cli("--sim", "list", "--json", env={"CXLCTL_BACKEND": "kernel"})
    assert r.exit_code == 0, r.stderr
