"""Run many real cxlctl processes cheaply: one interpreter imports cxlctl once, then
forks a child per case; each child sets up its fds (closed, a pipe whose reader is
gone, /dev/full...), its environment and argv, and runs the real entry point
(``cxlctl.__main__.main``) to the end, interpreter shutdown included.

    python tests/hostile.py CASES.json RESULTS.json

A case: ``{"argv": [...], "env": {...}, "stdin": "null|closed|PATH",
"stdout": "pipe|closed|epipe|full|null", "stderr": "pipe|closed|full",
"signal_at": [SIGNUM, N]}`` -- ``signal_at`` sends SIGNUM to the child itself
when its Nth SEND_COMMAND ioctl reaches a simulated device (a deterministic
"Ctrl-C in the middle of a change", no sleeps).  A result: ``{"rc", "stdout",
"stderr"}`` (hex of the bytes).  Every child is killed by SIGALRM after 120 s, so
nothing can hang the suite.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
from typing import Any


def _child(case: dict[str, Any], w_out: int, w_err: int) -> None:
    signal.alarm(120)
    stdin = case.get("stdin", "null")
    if stdin == "closed":
        os.close(0)
    else:
        fd = os.open(os.devnull if stdin == "null" else stdin, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    for target, mode, w in (
        (1, case.get("stdout", "pipe"), w_out),
        (2, case.get("stderr", "pipe"), w_err),
    ):
        if mode == "closed":
            os.close(target)
        elif mode == "epipe":
            r, wp = os.pipe()
            os.close(r)
            os.dup2(wp, target)
            os.close(wp)
        elif mode in ("full", "null"):
            fd = os.open("/dev/full" if mode == "full" else os.devnull, os.O_WRONLY)
            os.dup2(fd, target)
            os.close(fd)
        else:
            os.dup2(w, target)
    os.close(w_out)
    os.close(w_err)
    for k, v in case.get("env", {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if "signal_at" in case:
        signum, nth = case["signal_at"]
        # as from a terminal: the signal's default action, whatever this test run
        # inherited (nohup and some CI runners start everything with SIGHUP ignored,
        # which cxlctl then rightly keeps); "ignored": true keeps it ignored
        signal.signal(signum, signal.SIG_IGN if case.get("ignored") else signal.SIG_DFL)
        from cxlctl import uapi
        from cxlctl.sim import SimDevice

        real = SimDevice.ioctl
        count = [0]

        def ioctl(self: SimDevice, request: int, arg: Any) -> int:
            if request == uapi.CXL_MEM_SEND_COMMAND:
                count[0] += 1
                if count[0] == nth:
                    os.kill(os.getpid(), signum)
            return real(self, request, arg)

        SimDevice.ioctl = ioctl  # type: ignore[method-assign]  # this child process only
    sys.argv = ["cxlctl", *case["argv"]]
    from cxlctl.__main__ import main

    main()  # raises SystemExit: the child ends like a real cxlctl process


def run_cases(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import cxlctl.cli
    import cxlctl.sim  # noqa: F401

    results = []
    for case in cases:
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(r_out)
            os.close(r_err)
            _child(case, w_out, w_err)
            os._exit(99)  # pragma: no cover - main() always exits
        os.close(w_out)
        os.close(w_err)
        bufs = {r_out: bytearray(), r_err: bytearray()}
        sel = selectors.DefaultSelector()
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                chunk = os.read(key.fd, 65536)
                if chunk:
                    bufs[key.fd] += chunk
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        results.append({"rc": rc, "stdout": bufs[r_out].hex(), "stderr": bufs[r_err].hex()})
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        todo = json.load(f)
    done = run_cases(todo)
    with open(sys.argv[2], "w") as f:
        json.dump(done, f)
