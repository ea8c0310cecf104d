"""Property tests of the hostile-input bar (issue 13), on hypothesis' fixed budget
(tests/conftest.py: the ``ci`` profile is derandomized, so CI is reproducible):

* random ``cxl_send_command`` structs through ``SimDevice.ioctl`` follow the kernel's
  rules (docs: /work/shared/reference, tests/data/reference) and never write outside
  the caller's output buffer, nor touch its input;
* random payloads through every decoder and both renderers (table, JSON) give a value
  or ``DecodeError``, and the table never carries a control character;
* random argument strings for every numeric, hex, log-UUID and file option of every
  command (found by walking the click tree, so new options are covered) either fit
  the option or give exit 2 (a file that cannot be written: 1) and one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import click
import pytest
from click.testing import CliRunner
from goldens import CLI_ENV
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl import render as rd
from cxlctl import transport as tp
from cxlctl import uapi
from cxlctl.cli import COMMANDS, main
from cxlctl.cli.options import Duration, Size
from cxlctl.errors import DecodeError
from cxlctl.mailbox.logs import decode_cel
from cxlctl.sim import DeviceConfig, SimDevice
from cxlctl.sim.driver.mbox import DISABLED_RAW_OPCODES, SECURITY_COMMAND_SETS
from cxlctl.uapi import CommandId as K

# --- random SEND structs ---------------------------------------------------------------

VAR = 0xFFFFFFFF  # CXL_VARIABLE_PAYLOAD; also out.size -1
GUARD = 256
PATTERN = 0xA5


def _expected_errno(
    dev: SimDevice, table: dict[int, tp.CommandInfo], f: dict[str, int]
) -> int | None:
    """What Linux 6.12's cxl_validate_cmd_from_user() says, from the QUERY table and
    the reference rules; None: it passes (the device runs it)."""
    pmax = dev.config.payload_max
    cid = f["id"]
    if cid == 0 or cid >= K.MAX:
        return errno.ENOTTY
    if f["in_size"] > pmax:
        return errno.EINVAL
    raw_opcode, raw_rsvd = f["rsvd"] & 0xFFFF, f["rsvd"] >> 16
    if cid == K.RAW:
        if raw_rsvd or f["out_size"] > pmax:
            return errno.EINVAL
        op = raw_opcode
        allowed = dev.driver.raw_commands and not (
            op >> 8 in SECURITY_COMMAND_SETS or op in DISABLED_RAW_OPCODES
        )
        return None if allowed else errno.EPERM
    if f["flags"] & ~uapi.CXL_MEM_COMMAND_FLAG_MASK or f["rsvd"]:
        return errno.EINVAL
    if f["in_rsvd"] or f["out_rsvd"]:
        return errno.EINVAL
    info = table.get(cid)
    if info is None or not info.enabled:
        return errno.ENOTTY
    if info.exclusive:
        return errno.EBUSY
    if info.size_in != VAR and info.size_in != f["in_size"]:
        return errno.ENOMEM
    if info.size_out != VAR and f["out_size"] < info.size_out:
        return errno.ENOMEM
    return None


@st.composite
def send_structs(draw: st.DrawFn) -> dict[str, Any]:
    from cxlctl.sim.driver.mbox import MEM_COMMANDS

    sizes = {c.id: (c.size_in, c.size_out) for c in MEM_COMMANDS}
    pmax = draw(st.sampled_from([256, 2048, 4096]))
    raw = draw(st.booleans())
    known = sorted(sizes) * 3 + ([int(K.RAW)] * 8 if raw else [int(K.RAW)])
    odd = [0, 15, 16, int(K.MAX) - 1, int(K.MAX), int(K.MAX) + 1, 2**31, 2**32 - 1]
    cid = draw(st.sampled_from(known + odd))
    size_in, size_out = sizes.get(cid, (VAR, VAR))
    fixed_in = [size_in] if size_in != VAR else []
    in_size = draw(st.sampled_from([*fixed_in * 4, 0, 0, 8, 16, 24, pmax, pmax + 1]))
    data = draw(st.binary(min_size=min(in_size, pmax + 1), max_size=min(in_size, pmax + 1)))
    fixed_out = [size_out, size_out - 1] if size_out not in (VAR, 0) else []
    out_size = draw(
        st.one_of(st.sampled_from([*fixed_out, 0, pmax, VAR]), st.integers(0, pmax + 64))
    )
    opcode = draw(st.one_of(st.sampled_from(sorted(mb.BY_OPCODE)), st.integers(0, 0xFFFF)))
    rare = st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 2**32 - 1))
    rsvd = opcode if cid == K.RAW else 0
    return {
        "payload_max": pmax,
        "raw_commands": raw,
        "kind": draw(st.sampled_from(["pmem", "ram"])),
        "id": cid,
        "flags": draw(st.sampled_from([0] * 8 + [1, 2, 0x80000000])),
        "rsvd": draw(st.one_of(st.just(rsvd), st.just(rsvd), rare)),
        "in_size": in_size,
        "in_rsvd": draw(st.sampled_from([0, 0, 0, 0, 1])),
        "out_size": out_size,
        "out_rsvd": draw(st.sampled_from([0, 0, 0, 0, 1 << 31])),
        "data": data,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=send_structs())
def test_random_send_structs_follow_the_kernel_and_stay_in_bounds(f: dict[str, Any]) -> None:
    cfg = DeviceConfig(payload_max=f["payload_max"], time_scale=0)
    if f["kind"] == "ram":
        cfg.volatile_bytes, cfg.persistent_bytes = cfg.persistent_bytes, 0
    dev = SimDevice("mem0", cfg, raw_commands=f["raw_commands"])
    table = {c.id: c for c in tp.query(dev)}
    want = _expected_errno(dev, table, f)

    room = f["payload_max"] if f["out_size"] == VAR else f["out_size"]
    out_buf = ctypes.create_string_buffer(bytes([PATTERN]) * (room + GUARD), room + GUARD)
    in_buf = ctypes.create_string_buffer(f["data"], max(len(f["data"]), 1))
    s = uapi.cxl_send_command()
    s.id, s.flags, s.rsvd = f["id"], f["flags"], f["rsvd"]
    s.in_.size, s.in_.rsvd, s.in_.payload = f["in_size"], f["in_rsvd"], ctypes.addressof(in_buf)
    s.out.size = f["out_size"] - (1 << 32) if f["out_size"] >= 1 << 31 else f["out_size"]
    s.out.rsvd, s.out.payload = f["out_rsvd"], ctypes.addressof(out_buf)
    before = bytes(s)
    arg = bytearray(before)
    try:
        dev.ioctl(uapi.CXL_MEM_SEND_COMMAND, arg)
        got = 0
    except OSError as e:
        got = e.errno or -1

    event(f"errno {errno.errorcode.get(got, got)}")
    assert in_buf.raw[: len(f["data"])] == f["data"]  # the input is never written
    if want is not None:
        assert got == want, (f, got, want)
        assert bytes(arg) == before  # a refused struct is not copied back
        assert out_buf.raw == bytes([PATTERN]) * (room + GUARD)
        return
    # the device ran it: Clear Log / Set Partition payloads the kernel refuses (EBUSY),
    # by their command id or through RAW (cxl_payload_from_user_allowed() looks at the
    # opcode, and RAW may send Clear Log)
    opcode = (
        f["rsvd"] & 0xFFFF
        if f["id"] == K.RAW
        else next(c.opcode for c in mb.CATALOGUE if c.kernel_id == f["id"])
    )
    assert got == 0 or (
        got == errno.EBUSY and opcode in (mb.CLEAR_LOG.opcode, mb.SET_PARTITION_INFO.opcode)
    ), (f, got)
    if got:
        return
    done = uapi.cxl_send_command.from_buffer(arg)
    n = int(done.out.size) & 0xFFFFFFFF
    assert n <= min(room, f["payload_max"])
    assert 0 <= int(done.retval) <= 0xFFFF
    assert out_buf.raw[n:] == bytes([PATTERN]) * (room + GUARD - n)  # nothing past out.size


# --- random payloads through every decoder and renderer ---------------------------------

DECODERS: Mapping[str, Callable[[bytes], Any]] = {
    c.name: c.decode for c in mb.CATALOGUE if c.has_decoder
} | {"cel": decode_cel}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _render(value: Any) -> tuple[str, str]:
    """The JSON and the table the decode command prints for VALUE."""
    data = {"command": "x", "decoded": rd.to_data(value)}
    js = io.StringIO()
    rd.dump_json(data, js)
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        rd.print_fields(rd.Style("never"), "decoded", data["decoded"])
    return js.getvalue(), table.getvalue()


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=600), st.binary(min_size=1).map(lambda b: b * 40)))
def test_random_payloads_decode_and_render_or_decode_error(name: str, data: bytes) -> None:
    message = ""
    try:
        value = DECODERS[name](data)
    except DecodeError as e:
        message = e.message
    if message:
        assert "\n" not in message
        return
    js, table = _render(value)
    json.loads(js)
    assert not _CONTROL.search(table), table  # escapes are shown, never obeyed


# --- random CLI arguments for every numeric, hex, UUID and file option --------------------

#: positionals a verb needs before the option under test can be reached
NEEDS: dict[str, list[str]] = {
    "get-log": ["cel"],
    "log-caps": ["cel"],
    "send": ["identify"],
    "raw": ["0x4000"],
    "scan-media-caps": [],
    "set-alert-config": [],
    "decode": ["identify"],
}
#: verbs whose MEMDEV is required
_FILE_METAVARS = ("FILE", "FILE|standard")


def _options() -> Iterator[tuple[str, click.Option, str]]:
    """(verb, option, kind) for every option whose value is a number, hex bytes, a
    log UUID or a file: kinds "number", "hex", "file", "file-out"."""
    ctx = click.Context(main)
    for name in sorted(COMMANDS):
        cmd = main.get_command(ctx, name)
        assert cmd is not None
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or p.count or p.hidden:
                continue
            if isinstance(p.type, (Size, Duration)):
                yield name, p, "number"
            elif p.metavar == "HEX":
                yield name, p, "hex"
            elif p.metavar in _FILE_METAVARS or (name == "read-labels" and "-o" in p.opts):
                writes = p.name in ("output_file", "output_file2", "log_file")
                yield name, p, "file-out" if writes else "file"


OPTIONS = list(_options())
IDS = [f"{n}:{max(p.opts, key=len)}" for n, p, _ in OPTIONS]


def _needs_memdev(name: str) -> list[str]:
    cmd = main.get_command(click.Context(main), name)
    assert cmd is not None
    takes = any(isinstance(p, click.Argument) and "memdev" in (p.name or "") for p in cmd.params)
    return ["mem0"] if takes else []


def test_the_walk_finds_the_options() -> None:
    kinds = {k for _, _, k in OPTIONS}
    assert kinds == {"number", "hex", "file", "file-out"}
    assert len([1 for _, _, k in OPTIONS if k == "number"]) >= 30


def _refused(p: click.Option, value: str) -> bool:
    message = ""
    try:
        p.type.convert(value, p, None)
    except click.BadParameter as e:
        message = e.format_message() or "refused"
    assert "\n" not in message
    return bool(message)


hostile_numbers = st.one_of(
    st.integers(min_value=1 << 64).map(str),
    st.integers(min_value=1 << 64).map(hex),
    st.integers(max_value=-1).map(str),
    st.text(alphabet=st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())),
    st.text(max_size=20),
    st.sampled_from(["nan", "inf", "-0x1", "0x", "1e9", "1.5", "4KK", "0b102", "\x1b[31m1"]),
)


def _run(argv: list[str]) -> Any:
    return CliRunner().invoke(main, argv, env={**CLI_ENV, "CXLCTL_SIM_STATE": ""})


@pytest.mark.parametrize(
    ("name", "opt", "kind"),
    [o for o in OPTIONS if o[2] == "number"],
    ids=[i for i, o in zip(IDS, OPTIONS, strict=True) if o[2] == "number"],
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile_numbers)
def test_random_numbers_fit_or_are_exit_2_with_one_line(
    name: str, opt: click.Option, kind: str, value: str
) -> None:
    refused = _refused(opt, value)
    event("refused" if refused else "fits")
    if not refused:  # it fits: the type's own bounds hold
        got = opt.type.convert(value, opt, None)
        assert isinstance(got, int)
        if isinstance(opt.type, Size):
            assert opt.type.minimum <= got < (1 << opt.type.bits)
        return
    assume(not value.startswith("-") or value[1:2].isdigit())  # not another option
    flag = max(opt.opts, key=len)
    r = _run([name, *_needs_memdev(name), *NEEDS.get(name, []), f"{flag}={value}"])
    assert r.exit_code == 2, (name, flag, value, r.exit_code, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("cxlctl: ")


@pytest.mark.parametrize(
    ("name", "opt", "kind"),
    [o for o in OPTIONS if o[2] != "number"],
    ids=[i for i, o in zip(IDS, OPTIONS, strict=True) if o[2] != "number"],
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=30).filter(lambda v: "\x00" not in v))
def test_random_hex_and_paths_are_exit_2_or_1_with_one_line(
    name: str, opt: click.Option, kind: str, value: str
) -> None:
    flag = max(opt.opts, key=len)
    if kind == "hex":
        assume(not re.fullmatch(r"[0-9a-fA-F\s:]*", value))  # not hex bytes
        arg = value
    else:  # a file that cannot exist: never creates anything
        arg = "/nonexistent-cxlctl-dir/" + value.replace("\x00", "")
    argv = [name, *_needs_memdev(name), *NEEDS.get(name, []), f"{flag}={arg}"]
    if name in ("write-labels", "update-firmware", "zero-labels"):
        argv.append("-y")
    if name == "monitor":
        argv += ["--timeout", "0"]
    r = _run(argv)
    want = {1, 2} if kind == "file-out" else {2}
    assert r.exit_code in want, (name, flag, arg, r.exit_code, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=40))
def test_random_log_names_and_uuids_are_exit_2_with_one_line(value: str) -> None:
    from cxlctl.mailbox.names import CEL_UUID, VENDOR_DEBUG_UUID

    assume(value.strip().lower() not in ("cel", "vendor-debug", CEL_UUID, VENDOR_DEBUG_UUID))
    assume(not value.startswith("-") and value.strip())
    r = _run(["log-caps", value, "mem0"])
    assert r.exit_code in (2, 3, 6), (value, r.exit_code, r.stderr)  # 3: a well-formed UUID
    assert len(r.stderr.splitlines()) == 1, r.stderr
